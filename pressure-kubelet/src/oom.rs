//! OOMKilled detection from pod status: `state.terminated` / `lastState.terminated` with reason
//! `OOMKilled`, each kill reported once, including a container's very first one (restart count 0 → 1).

use std::collections::{HashMap, VecDeque};

use k8s_openapi::api::core::v1::Pod;

use crate::pods::{ContainerInfo, PodInfo, Termination};

/// One OOM kill of a container, as pod status shows it (named apart from `pressure_ebpf::OomKill`,
/// the kernel's view of a kill).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOomKill {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub container: String,
    /// Bare ID of the killed container instance, when the status has it.
    pub container_id: Option<String>,
    /// Restart count when seen.
    pub restart_count: i32,
    /// Exit code of the killed instance (137 for SIGKILL).
    pub exit_code: i32,
    /// When the killed instance ended (RFC 3339), when known.
    pub finished_at: Option<String>,
}

/// Remembers which OOM kills were already reported, per pod UID and container.
#[derive(Debug, Default)]
pub struct OomTracker {
    seen: HashMap<(String, String), VecDeque<String>>,
}

/// How many kill identities are remembered per container (a container shows at most two at once).
const REMEMBER: usize = 4;

/// What identifies one killed instance: its container ID and finish time; the restart count when
/// the status has neither (some runtimes omit them in `lastState`).
fn identity(t: &Termination, restart_count: i32) -> String {
    let id = t.container_id.as_deref().unwrap_or("");
    let fin = t.finished_at.as_deref().unwrap_or("");
    if id.is_empty() && fin.is_empty() {
        format!("restart:{restart_count}")
    } else {
        format!("{id}@{fin}")
    }
}

impl OomTracker {
    /// A tracker that has reported nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// New OOM kills in `pod`'s status. With `baseline` (pods of the first list at startup) kills are
    /// only remembered, so a restart of the watcher does not report history again.
    pub fn observe(&mut self, pod: &PodInfo, baseline: bool) -> Vec<StatusOomKill> {
        if pod.uid.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for cs in &pod.containers {
            for t in terminated_ooms(cs) {
                let id = identity(t, cs.restart_count);
                let seen = self
                    .seen
                    .entry((pod.uid.clone(), cs.name.clone()))
                    .or_default();
                if seen.contains(&id) {
                    continue;
                }
                seen.push_back(id);
                if seen.len() > REMEMBER {
                    seen.pop_front();
                }
                if !baseline {
                    out.push(StatusOomKill {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        pod_uid: pod.uid.clone(),
                        container: cs.name.clone(),
                        container_id: t.container_id.clone(),
                        restart_count: cs.restart_count,
                        exit_code: t.exit_code,
                        finished_at: t.finished_at.clone(),
                    });
                }
            }
        }
        out
    }

    /// [`OomTracker::observe`] for an API object, e.g. one a watch event carries.
    pub fn observe_pod(&mut self, pod: &Pod, baseline: bool) -> Vec<StatusOomKill> {
        self.observe(&PodInfo::from(pod), baseline)
    }

    /// Forgets a deleted pod.
    pub fn forget(&mut self, pod_uid: &str) {
        self.seen.retain(|(uid, _), _| uid != pod_uid);
    }
}

/// The OOM terminations of a container: the previous instance (`lastState`), then the current one.
fn terminated_ooms(cs: &ContainerInfo) -> impl Iterator<Item = &Termination> {
    [cs.last_terminated.as_ref(), cs.terminated.as_ref()]
        .into_iter()
        .flatten()
        .filter(|t| t.is_oom())
}

impl PodInfo {
    /// Names of the containers whose status shows an OOM kill (current or previous instance).
    pub fn oom_killed_containers(&self) -> impl Iterator<Item = &str> {
        self.containers
            .iter()
            .filter(|c| terminated_ooms(c).next().is_some())
            .map(|c| c.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
            "status": {"containerStatuses": statuses},
        }))
        .unwrap()
    }

    fn running(restarts: i32, last: serde_json::Value) -> serde_json::Value {
        json!([{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": restarts,
            "containerID": "containerd://cur", "state": {"running": {"startedAt": "2026-01-01T00:00:10Z"}}, "lastState": last}])
    }

    fn oom_last(id: &str, fin: &str) -> serde_json::Value {
        json!({"terminated": {"reason": "OOMKilled", "exitCode": 137, "containerID": format!("containerd://{id}"), "finishedAt": fin}})
    }

    #[test]
    fn first_oom_counts_and_is_reported_once() {
        let mut t = OomTracker::new();
        assert!(t.observe_pod(&pod(running(0, json!({}))), false).is_empty());
        let p = pod(running(1, oom_last("a1", "2026-01-01T00:00:05Z")));
        let kills = t.observe_pod(&p, false);
        assert_eq!(
            kills.len(),
            1,
            "restart 0 -> 1 with an OOM lastState is a kill"
        );
        assert_eq!(kills[0].container, "app");
        assert_eq!(kills[0].container_id.as_deref(), Some("a1"));
        assert_eq!(kills[0].exit_code, 137);
        assert!(t.observe_pod(&p, false).is_empty(), "same status again");
        let p2 = pod(running(2, oom_last("a2", "2026-01-01T00:01:05Z")));
        assert_eq!(t.observe_pod(&p2, false).len(), 1, "a second kill");
    }

    #[test]
    fn baseline_remembers_without_reporting() {
        let mut t = OomTracker::new();
        let p = pod(running(3, oom_last("old", "2026-01-01T00:00:05Z")));
        assert!(t.observe_pod(&p, true).is_empty());
        assert!(t.observe_pod(&p, false).is_empty());
        t.forget("u-1");
        assert_eq!(t.observe_pod(&p, false).len(), 1);
    }

    #[test]
    fn terminated_without_restart_and_other_reasons() {
        let mut t = OomTracker::new();
        let p = pod(
            json!([{"name": "job", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]),
        );
        assert_eq!(
            t.observe_pod(&p, false).len(),
            1,
            "restartPolicy Never: state.terminated"
        );
        let p = pod(running(
            1,
            json!({"terminated": {"reason": "Error", "exitCode": 1, "containerID": "containerd://e"}}),
        ));
        assert!(t.observe_pod(&p, false).is_empty());
    }

    #[test]
    fn real_status_fixtures() {
        // DataDog integrations-core kubelet fixture (GKE 1.9), containerStatuses excerpt.
        let text = include_str!("../testdata/pods_crashed_oomkilled_excerpt.json");
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "fluentd", "namespace": "kube-system", "uid": "u-2"}}),
        )
        .unwrap();
        p.status = Some(serde_json::from_value(v["status"].clone()).unwrap());
        let kills = OomTracker::new().observe_pod(&p, false);
        assert_eq!(kills.len(), 1);
        assert_eq!(kills[0].container, "fluentd-gcp");
        assert_eq!(
            kills[0].container_id.as_deref(),
            Some("3eca48f90f5203547bc1f08fc0e3ee50cb3d82d6014d666075d5d9d1ee6efc16")
        );
        assert_eq!(kills[0].exit_code, 2);
    }
}
