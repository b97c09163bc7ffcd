//! Marking OOM-kill victims: find the pod in a node-scoped [`PodCache`] (by pod UID from the cgroup
//! path, else by container ID across all container statuses including `lastState`), annotate it when
//! the key is absent, and post a Warning Event (`OOMKilled`, or `SystemOOM` for a global OOM).

use std::sync::Arc;
use std::time::Duration;

use crate::annotate::{AnnotateOutcome, Annotator};
use crate::events::{EventRecorder, EventSubject, event_spec};
use crate::pods::{PodCache, PodInfo, bare_container_id};

/// What is known about one OOM-kill victim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

/// Finds victims' pods and marks them.
pub struct VictimMarker {
    cache: Arc<PodCache>,
    annotation: Option<(Annotator, String, String)>,
    recorder: Option<EventRecorder>,
    lookup_wait: Duration,
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

    /// Finds and marks the victim's pod.
    pub async fn mark(&self, v: &Victim) -> VictimOutcome {
        let deadline = tokio::time::Instant::now() + self.lookup_wait;
        let (pod, container) = loop {
            if let Some(found) = self.find(v) {
                break found;
            }
            if tokio::time::Instant::now() >= deadline {
                return VictimOutcome::NoPodMatch;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ns = pod.namespace.clone();
        let name = pod.name.clone();
        let shown = format!("{ns}/{name}");
        let mut outcome = VictimOutcome::Identified { pod: shown.clone() };
        if let Some((annotator, key, value)) = &self.annotation {
            outcome = match annotator.annotate_if_absent(&ns, &name, key, value).await {
                Ok(AnnotateOutcome::Annotated { .. }) => {
                    VictimOutcome::Marked { pod: shown.clone() }
                }
                Ok(AnnotateOutcome::AlreadyPresent) => {
                    return VictimOutcome::AlreadyMarked { pod: shown };
                }
                Ok(AnnotateOutcome::PodNotFound) => return VictimOutcome::NoPodMatch,
                Err(e) => VictimOutcome::Failed(e.to_string()),
            };
        }
        if let Some(recorder) = &self.recorder {
            let subject = EventSubject::Victim {
                pod: &pod,
                container: container.as_deref(),
                victim: v,
            };
            if let Some(spec) = event_spec(subject)
                && let Err(e) = recorder.record(&spec).await
            {
                tracing::warn!(pod = %shown, error = %e, "posting the OOM event failed");
            }
        }
        outcome
    }
}
