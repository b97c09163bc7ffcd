//! An Events recorder (`events.k8s.io/v1`) that folds repeats of the same event on the same object
//! into a series (`series.count`, `series.lastObservedTime`) instead of creating new objects, the way
//! client-go's `EventRecorder` does, and [`event_spec`]: the one place that words the Events both
//! binaries post (engine events of `pressured`, OOM-kill victims of `oom-tracer`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use pressure_core::EventType;
use serde_json::json;
use tokio::sync::Mutex;

use crate::KubeletError;
use crate::pods::{PodInfo, memory_limit};
use crate::victim::Victim;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// What to record.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    /// The object the event is about (a Pod, with uid so `kubectl describe` finds it).
    pub regarding: ObjectReference,
    /// Normal or Warning.
    pub kind: EventKind,
    /// Machine-readable reason, e.g. `OOMKilled`, `MemoryPressureCritical`.
    pub reason: String,
    /// What was done or observed, e.g. `Killed`, `Observed`.
    pub action: String,
    /// Human-readable note (at most 1 kB is kept).
    pub note: String,
}

/// What [`EventRecorder::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// A new Event object.
    Created {
        /// Its name.
        name: String,
    },
    /// The repeat was folded into an existing Event's series.
    Folded {
        /// The Event's name.
        name: String,
        /// `series.count` now.
        count: i32,
    },
}

#[derive(Debug)]
struct Series {
    count: i32,
    last: Instant,
}

/// Records Events as `reporting_controller` / `reporting_instance`.
///
/// Clones share the series, so a clone handed to a task folds repeats with the original.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    controller: Arc<str>,
    instance: Arc<str>,
    window: Duration,
    series: Arc<Mutex<HashMap<String, Series>>>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("controller", &self.controller)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl EventRecorder {
    /// A recorder; `controller` like `pressure.dev/oom-tracer`, `instance` like the node or pod name.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        // client-go folds repeats seen within 6 minutes (events.k8s.io series semantics).
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            window: Duration::from_secs(6 * 60),
            series: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Sets the folding window.
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The series key: the object, container, type, reason, action and reporting controller. The note
    /// is not part of it (it carries the figures of the moment; `note` is immutable in
    /// events.k8s.io/v1, so a series keeps its first note), nor is the reporting instance (a restarted
    /// or newly elected replica continues the series).
    fn key(&self, spec: &EventSpec) -> String {
        let r = &spec.regarding;
        format!(
            "{}/{}/{}/{}/{}|{}|{}|{}|{}",
            r.kind.as_deref().unwrap_or(""),
            r.namespace.as_deref().unwrap_or(""),
            r.name.as_deref().unwrap_or(""),
            r.uid.as_deref().unwrap_or(""),
            r.field_path.as_deref().unwrap_or(""),
            spec.kind.as_str(),
            spec.reason,
            spec.action,
            self.controller,
        )
    }

    /// The Event's name: deterministic per series key, so a restarted process finds its series by name
    /// (the chart grants create and patch only, no list): `{object}.{fnv64(key)}`.
    fn event_name(&self, spec: &EventSpec) -> String {
        let base = spec.regarding.name.as_deref().unwrap_or("event");
        // A DNS subdomain name: at most 253 characters with the 17 of the suffix.
        let base = &base[..base.len().min(200)];
        format!("{base}.{:016x}", fnv1a(self.key(spec).as_bytes()))
    }

    /// Posts the Kubernetes Event for an engine event when it is one that gets posted (see
    /// [`event_spec`]), on its own task: returns at once, so a sampling loop never waits for the API
    /// server. A failure is logged. Must be called inside a tokio runtime.
    pub fn post(&self, event: &pressure_core::Event) {
        let Some(spec) = event_spec(EventSubject::Pressure(event)) else {
            return;
        };
        let recorder = self.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.record(&spec).await {
                tracing::warn!(error = %e, "posting a Kubernetes Event failed");
            }
        });
    }

    /// Creates the Event, or folds the repeat into the series of the Event of the same object and
    /// reason (`series.count`, `series.lastObservedTime`), also one an earlier process created: its
    /// name is deterministic, so a create that meets `AlreadyExists` continues that Event's series.
    pub async fn record(&self, spec: &EventSpec) -> Result<Recorded, KubeletError> {
        let ns = spec
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let key = self.key(spec);
        let name = self.event_name(spec);
        let mut series = self.series.lock().await;
        // The window only bounds this memory: past it the count is read back from the Event.
        series.retain(|_, s| s.last.elapsed() < self.window);
        if let Some(s) = series.get_mut(&key) {
            let count = s.count + 1;
            match fold(&api, &name, count, None).await {
                Ok(()) => {
                    s.count = count;
                    s.last = Instant::now();
                    return Ok(Recorded::Folded { name, count });
                }
                // Deleted (TTL) or edited by another replica: start again from the server's state.
                Err(kube::Error::Api(st)) if st.code == 404 || st.code == 409 => {}
                Err(e) => return Err(KubeletError::api(format!("updating event {ns}/{name}"), e)),
            }
            series.remove(&key);
        }
        let mut note = spec.note.clone();
        if note.len() > 1024 {
            let mut cut = 1024;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(now()),
            action: Some(spec.action.clone()),
            reason: Some(spec.reason.clone()),
            note: Some(note),
            type_: Some(spec.kind.as_str().to_owned()),
            regarding: Some(spec.regarding.clone()),
            reporting_controller: Some(self.controller.to_string()),
            reporting_instance: Some(self.instance.to_string()),
            ..Event::default()
        };
        // A few rounds: another replica may create or fold the same Event between our read and write.
        let mut last_error = None;
        for _ in 0..3 {
            match api.create(&PostParams::default(), &ev).await {
                Ok(_) => {
                    series.insert(
                        key,
                        Series {
                            count: 1,
                            last: Instant::now(),
                        },
                    );
                    return Ok(Recorded::Created { name });
                }
                Err(kube::Error::Api(st)) if st.code == 409 => {}
                Err(e) => return Err(KubeletError::api(format!("creating event {ns}/{name}"), e)),
            }
            // It exists (an earlier process, or a restart): an empty merge patch returns it (patch is
            // what the chart grants, not get); then its count + 1, guarded by its resourceVersion.
            let current = match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&json!({})))
                .await
            {
                Ok(current) => current,
                // Deleted in between (TTL): create it again.
                Err(kube::Error::Api(st)) if st.code == 404 => {
                    last_error = Some(kube::Error::Api(st));
                    continue;
                }
                Err(e) => return Err(KubeletError::api(format!("reading event {ns}/{name}"), e)),
            };
            let count = current.series.as_ref().map_or(1, |s| s.count) + 1;
            match fold(
                &api,
                &name,
                count,
                current.metadata.resource_version.as_deref(),
            )
            .await
            {
                Ok(()) => {
                    series.insert(
                        key,
                        Series {
                            count,
                            last: Instant::now(),
                        },
                    );
                    return Ok(Recorded::Folded { name, count });
                }
                Err(kube::Error::Api(st)) if st.code == 404 || st.code == 409 => {
                    last_error = Some(kube::Error::Api(st));
                }
                Err(e) => return Err(KubeletError::api(format!("updating event {ns}/{name}"), e)),
            }
        }
        // Every round ended in a 404 or 409 (each sets `last_error`), so it is set here.
        match last_error {
            Some(e) => Err(KubeletError::api(format!("recording event {ns}/{name}"), e)),
            None => unreachable!("each round returns or records its error"),
        }
    }
}

/// Sets the series of Event `name` to `count` observed now; with `resource_version`, only if the Event
/// is still at that version (409 otherwise).
async fn fold(
    api: &Api<Event>,
    name: &str,
    count: i32,
    resource_version: Option<&str>,
) -> Result<(), kube::Error> {
    let mut patch = json!({"series": {"count": count, "lastObservedTime": now()}});
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

/// FNV-1a, 64 bits: a hash that stays the same across processes and builds (std's `DefaultHasher`
/// promises neither), for Event names a restarted process must find again.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What a Kubernetes Event is about: see [`event_spec`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum EventSubject<'a> {
    /// An engine event of `pressured`: critical pressure, a predicted OOM and an OOM kill get an Event.
    Pressure(&'a pressure_core::Event),
    /// An OOM-kill victim `oom-tracer` found in `pod` (`container` when known).
    Victim {
        /// The victim's pod.
        pod: &'a PodInfo,
        /// The victim's container, when known.
        container: Option<&'a str>,
        /// The victim.
        victim: &'a Victim,
    },
}

/// An Event's note is at most 1 kB (`events.k8s.io/v1` validation): cut on a character boundary.
fn truncate_note(mut note: String) -> String {
    const MAX: usize = 1024;
    if note.len() > MAX {
        let mut end = MAX - '…'.len_utf8();
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push('…');
    }
    note
}

/// The Kubernetes Event for `subject`, `None` when it gets none (a warn or a recovery, or an engine
/// event without a pod name).
///
/// Always a Warning on the Pod (`fieldPath` names the container): `MemoryPressureCritical`,
/// `PredictedOOM` and `OOMKilled` (action `Observed`) for engine events; `OOMKilled` or `SystemOOM`
/// for a global OOM (action `Killed`) for victims, naming the process and the limit.
pub fn event_spec(subject: EventSubject<'_>) -> Option<EventSpec> {
    let mib = |b: u64| b >> 20;
    let (pod, container, reason, action, note) = match subject {
        EventSubject::Pressure(event) => {
            let reason = match (event.event_type, event.severity) {
                (EventType::MemoryPressure, pressure_core::Severity::Critical) => {
                    "MemoryPressureCritical"
                }
                (EventType::PredictedOom, _) => "PredictedOOM",
                (EventType::OomKilled, _) => "OOMKilled",
                _ => return None,
            };
            let pod = PodRef {
                name: event.target.pod_name.as_deref()?,
                namespace: event.target.namespace.as_deref(),
                uid: event.target.pod_uid.as_deref(),
            };
            let container = event.target.container_name.as_deref();
            // Node mode also watches pod cgroups (the pod's own limit): those events name no container.
            let who = container.map_or_else(|| "the pod".to_owned(), |c| format!("container {c}"));
            let limit = event.limit_bytes.map_or_else(
                || "no limit".to_owned(),
                |l| format!("{} MiB limit", mib(l)),
            );
            // An OOM kill seen before any reading has no working set: the note says nothing of one.
            let working_set = event
                .working_set_bytes
                .map_or_else(String::new, |w| format!(" (working set {} MiB)", mib(w)));
            let note = match event.event_type {
                EventType::OomKilled => format!("{who} was OOM-killed ({limit})"),
                EventType::PredictedOom => format!(
                    "{who} is predicted to reach its {limit} in {:.0}s{working_set}",
                    event.eta_seconds.unwrap_or(0.0),
                ),
                _ => format!(
                    "{who} at {:.1}% of its {limit}{working_set}",
                    event.usage_percent.unwrap_or(0.0),
                ),
            };
            (pod, container, reason, "Observed", note)
        }
        EventSubject::Victim {
            pod,
            container,
            victim: v,
        } => {
            let who =
                container.map_or_else(|| "a container".to_owned(), |c| format!("container {c}"));
            let (reason, note) = if v.global {
                (
                    "SystemOOM",
                    format!(
                        "process {} (pid {}) in {who} was killed by a global OOM: the node ran out of memory",
                        v.comm, v.pid
                    ),
                )
            } else {
                let limit = container.and_then(|c| memory_limit(pod, c)).map_or_else(
                    || "its memory limit".to_owned(),
                    |l| format!("its memory limit of {} MiB", mib(l)),
                );
                let cg = v
                    .oom_memcg
                    .as_deref()
                    .map(|c| format!(" (cgroup {c})"))
                    .unwrap_or_default();
                (
                    "OOMKilled",
                    format!(
                        "process {} (pid {}) in {who} was OOM-killed: it hit {limit}{cg}",
                        v.comm, v.pid
                    ),
                )
            };
            // The tracer's explanation, when it has one, says more in one sentence.
            let note = match &v.explanation {
                Some(clause) => {
                    let who = container.map_or_else(
                        || format!("a container of {}/{}", pod.namespace, pod.name),
                        |c| format!("container {c} of {}/{}", pod.namespace, pod.name),
                    );
                    format!("{who} {clause}")
                }
                None => note,
            };
            let pod = PodRef {
                name: &pod.name,
                namespace: Some(&pod.namespace),
                uid: Some(&pod.uid),
            };
            (pod, container, reason, "Killed", truncate_note(note))
        }
    };
    Some(EventSpec {
        regarding: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.to_owned()),
            namespace: pod.namespace.map(str::to_owned),
            uid: pod.uid.map(str::to_owned),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            ..ObjectReference::default()
        },
        kind: EventKind::Warning,
        reason: reason.into(),
        action: action.into(),
        note,
    })
}

/// The pod an Event is about.
struct PodRef<'a> {
    name: &'a str,
    namespace: Option<&'a str>,
    uid: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use k8s_openapi::api::core::v1::Pod;
    use pressure_core::{Event, Severity};
    use serde_json::json;

    use super::*;

    fn engine_event() -> Event {
        Event {
            timestamp: SystemTime::UNIX_EPOCH,
            event_type: EventType::MemoryPressure,
            severity: Severity::Warn,
            previous_severity: Severity::Ok,
            target: Arc::new(pressure_core::Target {
                namespace: Some("shop".into()),
                pod_name: Some("web-1".into()),
                pod_uid: Some("u-1".into()),
                container_name: Some("app".into()),
                container_id: None,
                node_name: None,
                pod_ip: None,
                annotations: Default::default(),
                ..pressure_core::Target::default()
            }),
            usage_bytes: Some(60 << 20),
            working_set_bytes: Some(60 << 20),
            limit_bytes: Some(64 << 20),
            usage_percent: Some(93.75),
            oom_kill_count: None,
            eta_seconds: None,
            psi_some_avg10: None,
            dry_run: false,
            profile: None,
        }
    }

    fn spec(event: &Event) -> Option<EventSpec> {
        event_spec(EventSubject::Pressure(event))
    }

    #[test]
    fn kubernetes_events_for_critical_predicted_and_oom_only() {
        let base = engine_event();
        assert!(spec(&base).is_none(), "warn is not posted");
        let crit = spec(&Event {
            severity: Severity::Critical,
            ..base.clone()
        })
        .unwrap();
        assert_eq!(crit.reason, "MemoryPressureCritical");
        assert_eq!(
            (crit.kind, crit.action.as_str()),
            (EventKind::Warning, "Observed")
        );
        assert_eq!(
            crit.note,
            "container app at 93.8% of its 64 MiB limit (working set 60 MiB)"
        );
        assert_eq!(crit.regarding.uid.as_deref(), Some("u-1"));
        assert_eq!(
            crit.regarding.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        let oom = spec(&Event {
            event_type: EventType::OomKilled,
            ..base.clone()
        })
        .unwrap();
        assert_eq!(oom.reason, "OOMKilled");
        assert_eq!(oom.note, "container app was OOM-killed (64 MiB limit)");
        let pred = spec(&Event {
            event_type: EventType::PredictedOom,
            eta_seconds: Some(42.0),
            ..base.clone()
        })
        .unwrap();
        assert_eq!(pred.reason, "PredictedOOM");
        assert!(pred.note.contains("in 42s"));
        assert!(
            spec(&Event {
                event_type: EventType::Recovered,
                severity: Severity::Ok,
                ..base.clone()
            })
            .is_none()
        );
        // A pod cgroup's event (node mode) names the pod; no reading means no working set in the note.
        let mut pod = Event {
            severity: Severity::Critical,
            usage_bytes: None,
            working_set_bytes: None,
            ..base
        };
        pod.target_mut().container_name = None;
        let pod = spec(&pod).unwrap();
        assert_eq!(pod.note, "the pod at 93.8% of its 64 MiB limit");
        assert_eq!(pod.regarding.field_path, None);
    }

    #[test]
    fn victims_get_killed_events_naming_process_and_limit() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
            "spec": {"containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}]},
        }))
        .unwrap();
        let pod = PodInfo::from(&pod);
        let victim = Victim {
            comm: "java".into(),
            pid: 7,
            oom_memcg: Some("/kubepods/podu-1/abc".into()),
            ..Victim::default()
        };
        let s = event_spec(EventSubject::Victim {
            pod: &pod,
            container: Some("app"),
            victim: &victim,
        })
        .unwrap();
        assert_eq!(
            (s.reason.as_str(), s.action.as_str()),
            ("OOMKilled", "Killed")
        );
        assert_eq!(
            s.note,
            "process java (pid 7) in container app was OOM-killed: it hit its memory limit of 64 MiB (cgroup /kubepods/podu-1/abc)"
        );
        assert_eq!(s.regarding.namespace.as_deref(), Some("shop"));
        let global = Victim {
            global: true,
            ..victim
        };
        let s = event_spec(EventSubject::Victim {
            pod: &pod,
            container: None,
            victim: &global,
        })
        .unwrap();
        assert_eq!(s.reason, "SystemOOM");
        assert!(
            s.note.contains("in a container was killed by a global OOM"),
            "{}",
            s.note
        );
    }

    #[test]
    fn victims_with_an_explanation_get_it_as_the_note() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "cart-0", "namespace": "shop", "uid": "u-1"},
            "spec": {"containers": [{"name": "app", "image": "x"}]},
        }))
        .unwrap();
        let pod = PodInfo::from(&pod);
        let victim = Victim {
            comm: "leaky".into(),
            pid: 4123,
            explanation: Some("was OOM-killed at its 300 MiB limit: leaky (pid 4123) held 298 MiB anon; 2 other tasks held 1 MiB".into()),
            ..Victim::default()
        };
        let s = event_spec(EventSubject::Victim {
            pod: &pod,
            container: Some("app"),
            victim: &victim,
        })
        .unwrap();
        assert_eq!(
            s.note,
            "container app of shop/cart-0 was OOM-killed at its 300 MiB limit: leaky (pid 4123) held 298 MiB anon; 2 other tasks held 1 MiB"
        );
        let long = Victim {
            explanation: Some(format!(
                "was OOM-killed at the 1 MiB limit of /{}",
                "é".repeat(600)
            )),
            ..victim
        };
        let s = event_spec(EventSubject::Victim {
            pod: &pod,
            container: None,
            victim: &long,
        })
        .unwrap();
        assert!(
            s.note.len() <= 1024 && s.note.ends_with('…'),
            "{}",
            s.note.len()
        );
        assert!(
            s.note
                .starts_with("a container of shop/cart-0 was OOM-killed")
        );
    }
}
