//! An Events recorder (`events.k8s.io/v1`) that folds repeats of the same event on the same object
//! into a series (`series.count`, `series.lastObservedTime`) instead of creating new objects, the way
//! client-go's `EventRecorder` does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Mutex;

use crate::KubeletError;

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
    name: String,
    count: i32,
    last: Instant,
}

/// Records Events as `reporting_controller` / `reporting_instance`.
pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    window: Duration,
    series: Mutex<HashMap<String, Series>>,
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
            controller: controller.to_owned(),
            instance: instance.to_owned(),
            window: Duration::from_secs(6 * 60),
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the folding window.
    #[must_use]
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    fn key(spec: &EventSpec) -> String {
        let r = &spec.regarding;
        format!(
            "{}/{}/{}/{}|{}|{}|{}|{}",
            r.kind.as_deref().unwrap_or(""),
            r.namespace.as_deref().unwrap_or(""),
            r.name.as_deref().unwrap_or(""),
            r.uid.as_deref().unwrap_or(""),
            spec.kind.as_str(),
            spec.reason,
            spec.action,
            spec.note
        )
    }

    /// Creates the Event, or folds it into the series of an identical recent one.
    pub async fn record(&self, spec: &EventSpec) -> Result<Recorded, KubeletError> {
        let ns = spec
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let key = Self::key(spec);
        let mut series = self.series.lock().await;
        series.retain(|_, s| s.last.elapsed() < self.window);
        if let Some(s) = series.get_mut(&key) {
            let count = s.count + 1;
            let patch = json!({"series": {"count": count, "lastObservedTime": now()}});
            match api
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    s.count = count;
                    s.last = Instant::now();
                    return Ok(Recorded::Folded {
                        name: s.name.clone(),
                        count,
                    });
                }
                Err(kube::Error::Api(st)) if st.code == 404 => {}
                Err(e) => {
                    return Err(KubeletError::api(
                        format!("updating event {ns}/{}", s.name),
                        e,
                    ));
                }
            }
        }
        let base = spec.regarding.name.as_deref().unwrap_or("event");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{base}.{nanos:x}");
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
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        api.create(&PostParams::default(), &ev)
            .await
            .map_err(|e| KubeletError::api(format!("creating event {ns}/{name}"), e))?;
        series.insert(
            key,
            Series {
                name: name.clone(),
                count: 1,
                last: Instant::now(),
            },
        );
        Ok(Recorded::Created { name })
    }
}
