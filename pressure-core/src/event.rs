//! Events: what the engine (and the actions after it) report, one JSON object per line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use crate::sample::Target;

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
/// Absent values serialize as `null`, never as made-up numbers. Who it is about is the container's
/// [`Target`], shared with the engine (`Arc`): building an event copies one pointer and counts one
/// reference, not one per identity string. Its JSON has the target's identity fields (`namespace`,
/// `pod_name`, `pod_uid`, `container_name`, `container_id`, `node_name`, `pod_ip`, `annotations`)
/// at the top level, in the order below; the cgroup path is not part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When the triggering reading was taken (RFC 3339, UTC).
    pub timestamp: SystemTime,
    /// What happened.
    pub event_type: EventType,
    /// Severity after the event.
    pub severity: Severity,
    /// Severity before the event.
    pub previous_severity: Severity,
    /// The container: namespace, pod name, pod UID, container name and ID, node, pod IP and the pod's
    /// annotations.
    pub target: Arc<Target>,
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
    /// Whether pressured runs in dry-run mode (actions must not change anything).
    pub dry_run: bool,
    /// Heap profile summary (`heap_profile` events only; omitted otherwise).
    pub profile: Option<ProfileSummary>,
}

/// The JSON form of an [`Event`]: its fields with the target's identity in place, borrowed.
#[derive(Serialize)]
struct EventJson<'a> {
    #[serde(serialize_with = "rfc3339")]
    timestamp: &'a SystemTime,
    event_type: EventType,
    severity: Severity,
    previous_severity: Severity,
    namespace: &'a Option<Arc<str>>,
    pod_name: &'a Option<Arc<str>>,
    pod_uid: &'a Option<Arc<str>>,
    container_name: &'a Option<Arc<str>>,
    container_id: &'a Option<Arc<str>>,
    node_name: &'a Option<Arc<str>>,
    pod_ip: &'a Option<Arc<str>>,
    usage_bytes: Option<u64>,
    working_set_bytes: Option<u64>,
    limit_bytes: Option<u64>,
    usage_percent: Option<f64>,
    oom_kill_count: Option<u64>,
    eta_seconds: Option<f64>,
    psi_some_avg10: Option<f64>,
    annotations: &'a BTreeMap<String, String>,
    dry_run: bool,
    #[serde(skip_serializing_if = "no_profile")]
    profile: &'a Option<ProfileSummary>,
}

fn no_profile(profile: &&Option<ProfileSummary>) -> bool {
    profile.is_none()
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = &*self.target;
        EventJson {
            timestamp: &self.timestamp,
            event_type: self.event_type,
            severity: self.severity,
            previous_severity: self.previous_severity,
            namespace: &t.namespace,
            pod_name: &t.pod_name,
            pod_uid: &t.pod_uid,
            container_name: &t.container_name,
            container_id: &t.container_id,
            node_name: &t.node_name,
            pod_ip: &t.pod_ip,
            usage_bytes: self.usage_bytes,
            working_set_bytes: self.working_set_bytes,
            limit_bytes: self.limit_bytes,
            usage_percent: self.usage_percent,
            oom_kill_count: self.oom_kill_count,
            eta_seconds: self.eta_seconds,
            psi_some_avg10: self.psi_some_avg10,
            annotations: &t.annotations,
            dry_run: self.dry_run,
            profile: &self.profile,
        }
        .serialize(s)
    }
}

impl Event {
    /// The target, to change it: shared with the engine and other events, so copied first if it is
    /// (copy-on-write).
    pub fn target_mut(&mut self) -> &mut Target {
        Arc::make_mut(&mut self.target)
    }

    /// Serializes the event as one line of JSON (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("events always serialize: no maps with non-string keys")
    }
}

fn rfc3339<S: Serializer>(t: &&SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(**t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// The JSON of an event is what it was when the identity fields were the event's own (before the
    /// shared target): byte for byte, with and without a profile.
    #[test]
    fn json_lines_are_unchanged_by_the_shared_target() {
        let mut e = Event {
            timestamp: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            event_type: EventType::PredictedOom,
            severity: Severity::Warn,
            previous_severity: Severity::Ok,
            target: Arc::new(Target {
                namespace: Some("shop".into()),
                pod_name: Some("web-1".into()),
                pod_uid: Some("u-1".into()),
                container_name: Some("app".into()),
                container_id: Some("abc".into()),
                node_name: Some("node-a".into()),
                pod_ip: Some("10.0.0.1".into()),
                annotations: BTreeMap::from([
                    ("a".to_owned(), "b".to_owned()),
                    ("pressured.io/x".to_owned(), "\"q\"".to_owned()),
                ])
                .into(),
                cgroup_path: Some("/kubepods/pod-u-1/abc".into()),
            }),
            usage_bytes: Some(900),
            working_set_bytes: Some(880),
            limit_bytes: Some(1000),
            usage_percent: Some(88.0),
            oom_kill_count: Some(1),
            eta_seconds: Some(42.5),
            psi_some_avg10: Some(0.25),
            dry_run: true,
            profile: None,
        };
        assert_eq!(
            e.to_json_line(),
            r#"{"timestamp":"2023-11-14T22:13:20.123Z","event_type":"predicted_oom","severity":"warn","previous_severity":"ok","namespace":"shop","pod_name":"web-1","pod_uid":"u-1","container_name":"app","container_id":"abc","node_name":"node-a","pod_ip":"10.0.0.1","usage_bytes":900,"working_set_bytes":880,"limit_bytes":1000,"usage_percent":88.0,"oom_kill_count":1,"eta_seconds":42.5,"psi_some_avg10":0.25,"annotations":{"a":"b","pressured.io/x":"\"q\""},"dry_run":true}"#
        );
        e.profile = Some(ProfileSummary {
            location: "s3://b/k".into(),
            size_bytes: 12,
            sample_type: "inuse_space".into(),
            top: vec![TopConsumer {
                function: "main.leak".into(),
                flat_bytes: 10,
                cum_bytes: 11,
            }],
            growth: Some(ProfileGrowth {
                base_location: "s3://b/j".into(),
                interval_seconds: 3.5,
                top: vec![],
            }),
        });
        e.target_mut().namespace = None;
        e.usage_bytes = None;
        assert_eq!(
            e.to_json_line(),
            r#"{"timestamp":"2023-11-14T22:13:20.123Z","event_type":"predicted_oom","severity":"warn","previous_severity":"ok","namespace":null,"pod_name":"web-1","pod_uid":"u-1","container_name":"app","container_id":"abc","node_name":"node-a","pod_ip":"10.0.0.1","usage_bytes":null,"working_set_bytes":880,"limit_bytes":1000,"usage_percent":88.0,"oom_kill_count":1,"eta_seconds":42.5,"psi_some_avg10":0.25,"annotations":{"a":"b","pressured.io/x":"\"q\""},"dry_run":true,"profile":{"location":"s3://b/k","size_bytes":12,"sample_type":"inuse_space","top":[{"function":"main.leak","flat_bytes":10,"cum_bytes":11}],"growth":{"base_location":"s3://b/j","interval_seconds":3.5,"top":[]}}}"#
        );
    }
}
