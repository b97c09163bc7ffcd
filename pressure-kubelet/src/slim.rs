//! [`SlimPod`]: what the tools decode of a pod from the API (list, watch, get, patch answers).
//!
//! It declares only the fields [`PodInfo`](crate::PodInfo) is made of and ignores the rest, so the
//! binaries do not link k8s-openapi's deserializers of the whole `Pod` (spec, volumes, containers,
//! affinity, probes, ...: about 300 KB of code), and decoding a pod allocates only what is kept.
//! `metadata` is k8s-openapi's `ObjectMeta`, so kube-rs handles it like any other resource:
//! `kube::Api<SlimPod>` lists, watches, gets and patches pods.

use k8s_openapi::api::core::v1::{self as api, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

/// A pod with only the fields the tools read: `metadata`; `spec.nodeName`, the names and memory
/// limits of the (init, ephemeral) containers; `status.podIP` and, per container status, its name,
/// container ID, restart count and `state`/`lastState.terminated`. Unknown fields are ignored, missing
/// or `null` ones are empty (as k8s-openapi's `Pod` reads them).
///
/// The conversion to the tools' [`PodInfo`](crate::PodInfo) is `PodInfo::from(&SlimPod)`; a full
/// k8s-openapi `Pod` converts with `SlimPod::from(&Pod)`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimPod {
    /// `metadata`, whole.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) spec: Spec,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) status: Status,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Spec {
    #[serde(default)]
    pub(crate) node_name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) init_containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) ephemeral_containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Container {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) resources: Resources,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Resources {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) limits: Limits,
}

/// `resources.limits`: only `memory` (a quantity string, e.g. `64Mi`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct Limits {
    #[serde(default)]
    pub(crate) memory: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    #[serde(default, rename = "podIP")]
    pub(crate) pod_ip: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) container_statuses: Vec<ContainerStatus>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) ephemeral_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerStatus {
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) name: String,
    #[serde(default, rename = "containerID")]
    pub(crate) container_id: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) restart_count: i32,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) state: State,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) last_state: State,
}

/// `state` / `lastState`: only `terminated`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub(crate) struct State {
    #[serde(default)]
    pub(crate) terminated: Option<Terminated>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Terminated {
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) exit_code: i32,
    #[serde(default, rename = "containerID")]
    pub(crate) container_id: Option<String>,
    #[serde(default)]
    pub(crate) finished_at: Option<Time>,
}

/// A missing or `null` field as its type's default (what k8s-openapi does for required fields).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl k8s_openapi::Resource for SlimPod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::ListableResource for SlimPod {
    const LIST_KIND: &'static str = <Pod as k8s_openapi::ListableResource>::LIST_KIND;
}

impl k8s_openapi::Metadata for SlimPod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<&Pod> for SlimPod {
    /// The fields [`SlimPod`] declares, copied from a full pod (no field is interpreted here).
    fn from(pod: &Pod) -> Self {
        let container = |name: &str, resources: Option<&api::ResourceRequirements>| Container {
            name: name.to_owned(),
            resources: Resources {
                limits: Limits {
                    memory: resources
                        .and_then(|r| r.limits.as_ref())
                        .and_then(|l| l.get("memory"))
                        .map(|q| q.0.clone()),
                },
            },
        };
        let spec = pod.spec.as_ref().map(|s| Spec {
            node_name: s.node_name.clone(),
            containers: s
                .containers
                .iter()
                .map(|c| container(&c.name, c.resources.as_ref()))
                .collect(),
            init_containers: s
                .init_containers
                .iter()
                .flatten()
                .map(|c| container(&c.name, c.resources.as_ref()))
                .collect(),
            ephemeral_containers: s
                .ephemeral_containers
                .iter()
                .flatten()
                .map(|c| container(&c.name, c.resources.as_ref()))
                .collect(),
        });
        let statuses = |list: Option<&Vec<api::ContainerStatus>>| {
            list.into_iter()
                .flatten()
                .map(ContainerStatus::from)
                .collect()
        };
        let status = pod.status.as_ref().map(|s| Status {
            pod_ip: s.pod_ip.clone(),
            container_statuses: statuses(s.container_statuses.as_ref()),
            init_container_statuses: statuses(s.init_container_statuses.as_ref()),
            ephemeral_container_statuses: statuses(s.ephemeral_container_statuses.as_ref()),
        });
        Self {
            metadata: pod.metadata.clone(),
            spec: spec.unwrap_or_default(),
            status: status.unwrap_or_default(),
        }
    }
}

impl From<&api::ContainerStatus> for ContainerStatus {
    fn from(cs: &api::ContainerStatus) -> Self {
        let terminated = |t: &api::ContainerStateTerminated| Terminated {
            reason: t.reason.clone(),
            exit_code: t.exit_code,
            container_id: t.container_id.clone(),
            finished_at: t.finished_at.clone(),
        };
        Self {
            name: cs.name.clone(),
            container_id: cs.container_id.clone(),
            restart_count: cs.restart_count,
            state: State {
                terminated: cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(terminated),
            },
            last_state: State {
                terminated: cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(terminated),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A pod with every field the slim type reads, and many it does not.
    fn full_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                "labels": {"app": "web"}, "annotations": {"a": "b"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1", "restartPolicy": "Always",
                "volumes": [{"name": "v", "emptyDir": {}}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
                "containers": [{"name": "app", "image": "x", "args": ["-v"],
                    "resources": {"limits": {"memory": "64Mi", "cpu": "1"}, "requests": {"memory": "32Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 80}}},
                    {"name": "side", "image": "y"}],
                "initContainers": [{"name": "init", "image": "x", "resources": {"limits": {"memory": "1Gi"}}}],
                "ephemeralContainers": [{"name": "debug", "image": "z"}]},
            "status": {"phase": "Running", "podIP": "10.1.2.3", "podIPs": [{"ip": "10.1.2.3"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                    "containerID": "containerd://cur", "state": {"running": {"startedAt": "2026-01-01T00:00:10Z"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "containerID": "containerd://old",
                        "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:05Z"}}}],
                "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "containerID": "cri-o://ini", "state": {"terminated": {"reason": "Completed", "exitCode": 0, "containerID": "cri-o://ini"}}}],
                "ephemeralContainerStatuses": [{"name": "debug", "image": "z", "imageID": "", "ready": false, "restartCount": 0,
                    "containerID": "containerd://eph", "state": {"waiting": {"reason": "x"}}}]},
        })
    }

    #[test]
    fn decoding_keeps_the_declared_fields() {
        let slim: SlimPod = serde_json::from_value(full_json()).expect("slim pod");
        assert_eq!(slim.metadata.uid.as_deref(), Some("u-1"));
        assert_eq!(slim.metadata.managed_fields.as_ref().map(Vec::len), Some(1));
        assert_eq!(slim.spec.node_name.as_deref(), Some("n1"));
        let names: Vec<&str> = slim
            .spec
            .containers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["app", "side"]);
        assert_eq!(
            slim.spec.containers[0].resources.limits.memory.as_deref(),
            Some("64Mi")
        );
        assert_eq!(slim.spec.containers[1].resources.limits.memory, None);
        assert_eq!(slim.status.pod_ip.as_deref(), Some("10.1.2.3"));
        let app = &slim.status.container_statuses[0];
        assert_eq!(app.container_id.as_deref(), Some("containerd://cur"));
        assert_eq!(app.restart_count, 1);
        assert_eq!(app.state.terminated, None);
        let last = app.last_state.terminated.as_ref().expect("lastState");
        assert_eq!(
            (
                last.reason.as_deref(),
                last.exit_code,
                last.container_id.as_deref()
            ),
            (Some("OOMKilled"), 137, Some("containerd://old"))
        );
        assert_eq!(
            last.finished_at
                .as_ref()
                .map(|t| t.0.to_string())
                .as_deref(),
            Some("2026-01-01T00:00:05Z")
        );
        assert_eq!(slim.status.init_container_statuses.len(), 1);
        assert_eq!(slim.status.ephemeral_container_statuses.len(), 1);
    }

    #[test]
    fn from_full_pod_equals_decoding() {
        let full: Pod = serde_json::from_value(full_json()).expect("pod");
        let decoded: SlimPod = serde_json::from_value(full_json()).expect("slim pod");
        assert_eq!(SlimPod::from(&full), decoded);
        let bare = json!({"metadata": {"name": "p"}});
        let full: Pod = serde_json::from_value(bare.clone()).expect("pod");
        let decoded: SlimPod = serde_json::from_value(bare).expect("slim pod");
        assert_eq!(SlimPod::from(&full), decoded);
    }

    #[test]
    fn nulls_and_missing_fields_are_empty() {
        let slim: SlimPod = serde_json::from_value(json!({
            "metadata": {"name": "p"}, "spec": {"containers": null, "nodeName": null},
            "status": {"containerStatuses": [{"name": null, "restartCount": null, "state": null, "lastState": {}}]},
        }))
        .expect("slim pod");
        assert_eq!(slim.spec, Spec::default());
        assert_eq!(slim.status.container_statuses, [ContainerStatus::default()]);
        let empty: SlimPod = serde_json::from_value(json!({})).expect("empty object");
        assert_eq!(empty, SlimPod::default());
    }

    #[test]
    fn is_a_kube_resource_for_pods() {
        use kube::Resource as _;
        assert_eq!(SlimPod::kind(&()), "Pod");
        assert_eq!(SlimPod::plural(&()), "pods");
        assert_eq!(SlimPod::api_version(&()), "v1");
        assert_eq!(
            SlimPod::url_path(&(), Some("shop")),
            "/api/v1/namespaces/shop/pods"
        );
    }
}
