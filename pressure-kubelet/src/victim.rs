//! Marking OOM-kill victims: find the pod in a node-scoped [`PodCache`] (by pod UID from the cgroup
//! path, else by container ID across all container statuses including `lastState`), annotate it when
//! the key is absent, and post a Warning Event (`OOMKilled`, or `SystemOOM` for a global OOM).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::KubeletError;
use crate::annotate::{AnnotateOutcome, Annotator};
use crate::events::{EventRecorder, EventSpec, EventSubject, event_spec};
use crate::pending::{DropReason, MarkTarget, PendingEvent, PendingMark};
use crate::pods::{PodCache, PodInfo, bare_container_id};

/// What is known about one OOM-kill victim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Victim {
    /// Pod UID from the victim's cgroup path.
    pub pod_uid: Option<String>,
    /// Container ID from the victim's cgroup path.
    pub container_id: Option<String>,
    /// A global (node-wide) OOM rather than a cgroup limit.
    pub global: bool,
    /// Victim command name.
    pub comm: String,
    /// Victim pid.
    pub pid: u32,
    /// The cgroup whose limit was hit, as the kernel printed it.
    pub oom_memcg: Option<String>,
    /// Why it was killed, as one clause after the subject (`was OOM-killed at its 300 MiB limit:
    /// leaky (pid 4123) held 298 MiB anon; 2 other tasks held 1 MiB`, from
    /// `pressure_ebpf::Explanation`); the Event's note when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// What [`VictimMarker::mark`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VictimOutcome {
    /// Annotated (and the Event posted, if enabled).
    Marked {
        /// `namespace/name` of the pod.
        pod: String,
    },
    /// The pod already had the annotation.
    AlreadyMarked {
        /// `namespace/name` of the pod.
        pod: String,
    },
    /// Found; no annotation configured (an Event may have been posted).
    Identified {
        /// `namespace/name` of the pod.
        pod: String,
    },
    /// No pod of this node matches.
    NoPodMatch,
    /// Annotating failed.
    Failed(String),
    /// Not marked yet (the API server failed or is unreachable): kept in the
    /// [`crate::MarkQueue`] and retried.
    Pending {
        /// `namespace/name` of the pod, when it is known.
        pod: Option<String>,
        /// Why the attempt failed.
        error: String,
    },
}

/// What one attempt on a [`PendingMark`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Every part is done (or nothing was to do).
    Done(VictimOutcome),
    /// A part failed for now; try again later (not before `retry_after` when the server said).
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// It cannot be done: drop it.
    Drop { reason: DropReason, error: String },
}

/// How a failed request is handled: 404 → the pod is gone; other 4xx except 401, 403, 408, 409 and
/// 429 → refused for good; everything else (transport errors, 5xx, throttling, expired or not yet
/// granted credentials) → later.
fn classify(e: &KubeletError) -> Step {
    let error = e.to_string();
    match e.status_code() {
        Some(404) => Step::Drop {
            reason: DropReason::PodGone,
            error,
        },
        Some(c) if (400..500).contains(&c) && !matches!(c, 401 | 403 | 408 | 409 | 429) => {
            Step::Drop {
                reason: DropReason::Rejected,
                error,
            }
        }
        _ => Step::Retry {
            retry_after: e.retry_after(),
            error,
        },
    }
}

/// Finds victims' pods and marks them.
pub struct VictimMarker {
    cache: Arc<PodCache>,
    annotation: Option<(Annotator, String, String)>,
    recorder: Option<EventRecorder>,
    lookup_wait: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for VictimMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VictimMarker")
            .field("cache", &self.cache)
            .field("events", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl VictimMarker {
    /// A marker over `cache` (scope it to this node with [`crate::PodScope::node`]).
    pub fn new(cache: Arc<PodCache>) -> Self {
        Self {
            cache,
            annotation: None,
            recorder: None,
            lookup_wait: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Annotate victims' pods with `key: value` (only when the key is absent).
    #[must_use]
    pub fn annotate(mut self, annotator: Annotator, key: &str, value: &str) -> Self {
        self.annotation = Some((annotator, key.to_owned(), value.to_owned()));
        self
    }

    /// Post a Warning Event on victims' pods.
    #[must_use]
    pub fn events(mut self, recorder: EventRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// How long to wait for a pod the cache does not know yet (a watch event in flight).
    #[must_use]
    pub fn lookup_wait(mut self, wait: Duration) -> Self {
        self.lookup_wait = wait;
        self
    }

    /// The victim's pod and container name: by pod UID, else by container ID.
    pub fn find(&self, v: &Victim) -> Option<(Arc<PodInfo>, Option<String>)> {
        let by_cid = v
            .container_id
            .as_deref()
            .and_then(|id| self.cache.by_container_id(bare_container_id(id)));
        if let Some(uid) = v.pod_uid.as_deref()
            && let Some(pod) = self.cache.by_uid(uid)
        {
            let container = by_cid.filter(|(p, _)| p.uid == pod.uid).map(|(_, c)| c);
            return Some((pod, container));
        }
        by_cid.map(|(p, c)| (p, Some(c)))
    }

    /// How long one part of a mark (the annotation with its short retries, or the Event) may take
    /// before the attempt counts as failed (a slow API server); default 10 s.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether the pod cache has completed its first list (a victim it does not know is then not on
    /// this node).
    pub(crate) fn cache_ready(&self) -> bool {
        self.cache.is_ready()
    }

    /// The victim's pod and the Event to post there, from the cache as it is now.
    pub(crate) fn resolve(&self, v: &Victim) -> Option<MarkTarget> {
        let (pod, container) = self.find(v)?;
        let event = self.recorder.as_ref().and_then(|_| {
            event_spec(EventSubject::Victim {
                pod: &pod,
                container: container.as_deref(),
                victim: v,
            })
            .map(|s| PendingEvent::from(&s))
        });
        Some(MarkTarget {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            event,
        })
    }

    /// [`VictimMarker::resolve`], waiting up to the lookup wait for a pod the cache does not know yet.
    pub(crate) async fn resolve_waiting(&self, v: &Victim) -> Option<MarkTarget> {
        let deadline = tokio::time::Instant::now() + self.lookup_wait;
        loop {
            if let Some(t) = self.resolve(v) {
                return Some(t);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new mark of `v`: the parts that are not configured count as done.
    pub(crate) fn new_mark(&self, v: &Victim, killed_at: std::time::SystemTime) -> PendingMark {
        let mut m = PendingMark::new(v.clone(), killed_at);
        m.annotated = self.annotation.is_none();
        m.event_posted = self.recorder.is_none();
        m
    }

    async fn timed<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, KubeletError>>,
    ) -> Result<T, Step> {
        match tokio::time::timeout(self.request_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(Step::Retry {
                error: format!("{what}: no answer within {:?}", self.request_timeout),
                retry_after: None,
            }),
        }
    }

    /// One attempt at the parts of `m` not done yet: resolve the pod (when the cache did not know it
    /// at the kill), annotate it when the key is absent, post the Event. `m` records what got done.
    ///
    /// An annotation already there (someone else's, or a mark of an earlier kill) is not overwritten
    /// and no Event is posted: the pod is marked once.
    pub(crate) async fn attempt(&self, m: &mut PendingMark) -> Step {
        let target = match &m.target {
            Some(t) => t.clone(),
            None => match self.resolve(&m.victim) {
                Some(t) => {
                    m.target = Some(t.clone());
                    t
                }
                None if self.cache_ready() => {
                    return Step::Drop {
                        reason: DropReason::PodGone,
                        error: "no pod of this node matches".to_owned(),
                    };
                }
                None => {
                    return Step::Retry {
                        error: "the pod list of this node is not complete yet".to_owned(),
                        retry_after: None,
                    };
                }
            },
        };
        let shown = target.full_name();
        let mut outcome = VictimOutcome::Identified { pod: shown.clone() };
        if let Some((annotator, key, value)) = &self.annotation {
            outcome = VictimOutcome::Marked { pod: shown.clone() };
            if !m.annotated {
                let done = self
                    .timed(
                        "annotating",
                        annotator.annotate_if_absent(&target.namespace, &target.name, key, value),
                    )
                    .await;
                match done {
                    Ok(AnnotateOutcome::Annotated { .. }) => m.annotated = true,
                    Ok(AnnotateOutcome::AlreadyPresent) => {
                        m.annotated = true;
                        m.event_posted = true;
                        return Step::Done(VictimOutcome::AlreadyMarked { pod: shown });
                    }
                    Ok(AnnotateOutcome::PodNotFound) => {
                        return Step::Drop {
                            reason: DropReason::PodGone,
                            error: format!("pod {shown} not found"),
                        };
                    }
                    Err(step) => return step,
                }
            }
        }
        if !m.event_posted {
            match (&self.recorder, &target.event) {
                (Some(recorder), Some(event)) => {
                    let spec = EventSpec::from(event);
                    match self
                        .timed("posting the Event", recorder.record(&spec))
                        .await
                    {
                        Ok(_) => m.event_posted = true,
                        Err(step) => return step,
                    }
                }
                _ => m.event_posted = true,
            }
        }
        Step::Done(outcome)
    }

    /// Finds and marks the victim's pod, once: no retries beyond the annotator's own (see
    /// [`crate::MarkQueue`] for marks that outlive an outage).
    pub async fn mark(&self, v: &Victim) -> VictimOutcome {
        let Some(target) = self.resolve_waiting(v).await else {
            return VictimOutcome::NoPodMatch;
        };
        let mut m = self.new_mark(v, std::time::SystemTime::now());
        m.target = Some(target);
        match self.attempt(&mut m).await {
            Step::Done(o) => o,
            Step::Drop {
                reason: DropReason::PodGone,
                ..
            } => VictimOutcome::NoPodMatch,
            Step::Drop { error, .. } | Step::Retry { error, .. } => VictimOutcome::Failed(error),
        }
    }
}
