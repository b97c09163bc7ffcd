//! What a source observed about one container at one moment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Who a sample is about: the container's identity as far as the source knows it.
///
/// Every field is optional because sources know different things: a cgroup walk knows the pod UID and
/// container ID from the path, the kubelet Summary API knows names but not IDs, a sidecar knows its own pod
/// from the downward API. Absent values stay `None` and are reported as `null`, never made up.
///
/// The engine keeps each tracked target in an `Arc` that every event about the container shares
/// ([`Event::target`](crate::Event::target)); the identity strings and the annotations are `Arc`s too, so
/// a copy of a target allocates nothing for them. Build them as usual with
/// `Some("x".into())` and `BTreeMap::from([..]).into()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Kubernetes namespace of the pod.
    pub namespace: Option<Arc<str>>,
    /// Pod name.
    pub pod_name: Option<Arc<str>>,
    /// Pod UID (with dashes).
    pub pod_uid: Option<Arc<str>>,
    /// Container name within the pod; `None` for the pod-level cgroup or when unknown.
    pub container_name: Option<Arc<str>>,
    /// Container runtime ID (hex, without `containerd://` prefix).
    pub container_id: Option<Arc<str>>,
    /// Node the pod runs on.
    pub node_name: Option<Arc<str>>,
    /// Pod IP.
    pub pod_ip: Option<Arc<str>>,
    /// Pod annotations (used for `pressured.io/*` overrides and passed on to actions).
    pub annotations: Arc<BTreeMap<String, String>>,
    /// Memory cgroup path of the container, relative to the hierarchy root, when known.
    pub cgroup_path: Option<String>,
}

impl Target {
    /// The key the engine tracks this container under.
    ///
    /// Pod UID plus container ID (or name) when known; else namespace/pod/container (a pod without a
    /// namespace is still keyed by its name, so two such pods never share a state; issue 16); else the
    /// cgroup path.
    pub fn key(&self) -> String {
        let container = self
            .container_id
            .as_deref()
            .or(self.container_name.as_deref())
            .unwrap_or("");
        if let Some(uid) = &self.pod_uid {
            return format!("uid:{uid}/{container}");
        }
        if let (Some(ns), Some(pod)) = (&self.namespace, &self.pod_name) {
            return format!("name:{ns}/{pod}/{container}");
        }
        if let Some(pod) = &self.pod_name {
            return format!("pod:{pod}/{container}");
        }
        match &self.cgroup_path {
            Some(path) => format!("cgroup:{path}"),
            None => format!("container:{container}"),
        }
    }
}

/// Memory pressure stall information (`memory.pressure`, cgroup v2 only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    /// Share of time (percent) some task stalled on memory, 10 s average.
    pub some_avg10: f64,
    /// Same, 60 s average.
    pub some_avg60: f64,
    /// Share of time (percent) all non-idle tasks stalled on memory, 10 s average.
    pub full_avg10: f64,
    /// Same, 60 s average.
    pub full_avg60: f64,
    /// Total `some` stall time in microseconds.
    pub some_total_us: u64,
    /// Total `full` stall time in microseconds.
    pub full_total_us: u64,
}

/// What was measured: one reading of a container's memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Wall-clock time of the reading (reported in events).
    pub timestamp: SystemTime,
    /// Raw usage (`memory.current` / `memory.usage_in_bytes`).
    pub usage_bytes: u64,
    /// Working set: usage minus inactive file cache, never below zero.
    pub working_set_bytes: u64,
    /// Memory limit; `None` means unlimited.
    pub limit_bytes: Option<u64>,
    /// Cumulative OOM-kill counter, if the source knows it.
    pub oom_kill_count: Option<u64>,
    /// Pressure stall information, if the source knows it.
    pub psi: Option<Psi>,
}

impl Reading {
    /// A reading with the given usage and limit at `timestamp`; working set equal to usage, nothing else known.
    pub fn new(timestamp: SystemTime, usage_bytes: u64, limit_bytes: Option<u64>) -> Self {
        Reading {
            timestamp,
            usage_bytes,
            working_set_bytes: usage_bytes,
            limit_bytes,
            oom_kill_count: None,
            psi: None,
        }
    }
}

/// One observation of one container: who and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The container.
    pub target: Target,
    /// The measurement.
    pub reading: Reading,
}
