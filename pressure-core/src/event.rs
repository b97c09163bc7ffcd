//! Events: what the engine (and the actions after it) report, one JSON object per line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

/// How close a container is to its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Below the warn threshold (or recovered from it with hysteresis).
    Ok,
    /// At or above `warn_percent`.
    Warn,
    /// At or above `critical_percent`.
    Critical,
}

impl Severity {
    /// The lowercase name used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }

    /// The level as a number, 0 ok, 1 warn, 2 critical (a gauge's value).
    pub fn level(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warn => 1,
            Severity::Critical => 2,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventType {
    /// Entered, stayed in (after the cooldown) or de-escalated within warn/critical.
    MemoryPressure,
    /// Returned to ok.
    Recovered,
    /// The kernel OOM-killed a process of this container (the OOM-kill counter increased).
    OomKilled,
    /// The working-set trend reaches the limit within `predict_seconds`.
    PredictedOom,
    /// A heap profile was captured and analysed (follow-up event of the heap-dump action).
    HeapProfile,
}

impl EventType {
    /// The snake_case name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MemoryPressure => "memory_pressure",
            EventType::Recovered => "recovered",
            EventType::OomKilled => "oom_killed",
            EventType::PredictedOom => "predicted_oom",
            EventType::HeapProfile => "heap_profile",
        }
    }
}

/// One memory consumer of a heap profile (function and bytes in use).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopConsumer {
    /// Function name as pprof reports it.
    pub function: String,
    /// Flat bytes attributed to the function in the chosen sample type.
    pub flat_bytes: i64,
    /// Cumulative bytes (the function and its callees).
    pub cum_bytes: i64,
}

/// Where a captured heap profile went and what it showed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileSummary {
    /// Storage key (or URL) of the stored profile.
    pub location: String,
    /// Size of the stored profile in bytes.
    pub size_bytes: u64,
    /// Sample type analysed (e.g. `inuse_space`).
    pub sample_type: String,
    /// Top consumers, largest first.
    pub top: Vec<TopConsumer>,
    /// What grew since the previous capture of the same container, when there is one (omitted
    /// otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<ProfileGrowth>,
}

/// The growth between two heap profiles of one container, by function: the leak.
///
/// The rows are those of `go tool pprof -top -diff_base=BASE NEW`: flat and cumulative bytes of
/// NEW minus BASE (negative for what shrank), ordered by the size of the change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileGrowth {
    /// Location of the earlier profile (the diff base).
    pub base_location: String,
    /// Seconds between the two captures.
    pub interval_seconds: f64,
    /// Growth per function, largest change first.
    pub top: Vec<TopConsumer>,
}

/// A memory event about one container, serialized as one JSON object per line.
///
/// Absent values serialize as `null`, never as made-up numbers. The identity strings and the annotations
/// are shared with the container's [`Target`](crate::Target) (`Arc`), so building an event allocates
/// nothing for them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When the triggering reading was taken (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: SystemTime,
    /// What happened.
    pub event_type: EventType,
    /// Severity after the event.
    pub severity: Severity,
    /// Severity before the event.
    pub previous_severity: Severity,
    /// Namespace of the pod.
    pub namespace: Option<Arc<str>>,
    /// Pod name.
    pub pod_name: Option<Arc<str>>,
    /// Pod UID.
    pub pod_uid: Option<Arc<str>>,
    /// Container name.
    pub container_name: Option<Arc<str>>,
    /// Container ID.
    pub container_id: Option<Arc<str>>,
    /// Node name.
    pub node_name: Option<Arc<str>>,
    /// Pod IP.
    pub pod_ip: Option<Arc<str>>,
    /// Raw usage in bytes; `null` when no reading is known (an OOM kill seen in pod status before any
    /// reading of the container, see [`Engine::observe_oom_kills`](crate::Engine::observe_oom_kills)).
    pub usage_bytes: Option<u64>,
    /// Working set in bytes; `null` when no reading is known, as for `usage_bytes`.
    pub working_set_bytes: Option<u64>,
    /// Limit in bytes; `null` when unlimited.
    pub limit_bytes: Option<u64>,
    /// The threshold signal as a percentage of the limit; above 100 when the signal exceeds the limit
    /// (e.g. a pod-level figure against a container limit); `null` when unlimited.
    pub usage_percent: Option<f64>,
    /// OOM-kill counter, when known.
    pub oom_kill_count: Option<u64>,
    /// Predicted seconds until the limit is reached (`predicted_oom` only).
    pub eta_seconds: Option<f64>,
    /// PSI memory `some` avg10, when known (cgroup v2).
    pub psi_some_avg10: Option<f64>,
    /// Pod annotations.
    pub annotations: Arc<BTreeMap<String, String>>,
    /// Whether pressured runs in dry-run mode (actions must not change anything).
    pub dry_run: bool,
    /// Heap profile summary (`heap_profile` events only; omitted otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSummary>,
}

impl Event {
    /// Serializes the event as one line of JSON (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialize: no maps with non-string keys")
    }
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}
