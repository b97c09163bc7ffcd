//! The pod directory of the cgroup-based modes: who a cgroup-derived [`Target`] is (pod and container
//! names, namespace, IP, annotations), from this node's pods (node mode) or the own pod (sidecar).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kube::{Api, Client};
use pressure_core::Target;

use crate::client::ClientSource;
use crate::pods::{PodCache, PodInfo, PodScope, target_for};
use crate::slim::SlimPod;

/// Whether an API server is configured at all (in-cluster or a kubeconfig).
fn api_configured() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("KUBECONFIG").is_some()
}

/// How long the sidecar waits for its own pod before going on with container IDs only.
const OWN_POD_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two re-reads of the own pod (for a container ID it does not know yet).
const OWN_POD_REFRESH: Duration = Duration::from_secs(10);
/// Re-reads of the own pod for one unknown container ID.
const OWN_POD_REREADS: u32 = 3;

/// The cgroup modes' view of the API, to give cgroup-derived targets their names, namespace, IP and
/// annotations: node mode watches this node's pods (`spec.nodeName`); sidecar mode reads its own pod.
///
/// Hand [`PodDirectory::enrich`] to a cgroup watch loop as its enrichment.
pub struct PodDirectory {
    client: Client,
    source: PodsSource,
}

enum PodsSource {
    /// Node mode: every pod of this node.
    Node(PodCache),
    /// Sidecar mode: the own pod, re-read when a container ID shows up that it does not list.
    Own(Box<OwnPod>),
}

/// The sidecar's own pod (`GET pods/{POD_NAME}` in `POD_NAMESPACE`).
struct OwnPod {
    api: Api<SlimPod>,
    name: String,
    pod: Arc<RwLock<Arc<PodInfo>>>,
    /// When the last re-read started (`None`: never re-read), and how many re-reads each unknown
    /// container ID has caused.
    refreshed: Mutex<(Option<Instant>, HashMap<String, u32>)>,
}

impl OwnPod {
    fn enrich(&self, target: &mut Target) -> bool {
        let pod = self
            .pod
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if target
            .pod_uid
            .as_deref()
            .is_some_and(|u| u.replace('_', "-") != pod.uid)
        {
            return false;
        }
        let container = match target.container_id.as_deref() {
            Some(id) => match pod.container_by_id(id) {
                Some(c) => Some(c.name.clone()),
                None => {
                    self.refresh(id);
                    None
                }
            },
            None => None,
        };
        enrich_from(target, &pod, container.as_deref());
        true
    }

    /// Re-reads the pod in the background (a restarted or new container has an ID the last read
    /// did not list); at most every [`OWN_POD_REFRESH`], and at most [`OWN_POD_REREADS`] times for
    /// one ID: the sandbox (pause) container has a cgroup but no status and would cause a read forever.
    fn refresh(&self, unknown_id: &str) {
        let mut guard = self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, tries) = &mut *guard;
        if last.is_some_and(|t| t.elapsed() < OWN_POD_REFRESH) {
            return;
        }
        let n = tries.entry(unknown_id.to_owned()).or_default();
        if *n >= OWN_POD_REREADS {
            return;
        }
        *n += 1;
        *last = Some(Instant::now());
        let (api, name, slot) = (self.api.clone(), self.name.clone(), self.pod.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(OWN_POD_TIMEOUT, api.get(&name)).await {
                Ok(Ok(pod)) => {
                    *slot
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Arc::new(PodInfo::from(&pod));
                }
                Ok(Err(e)) => {
                    tracing::debug!(pod = %name, error = %e, "re-reading the own pod failed")
                }
                Err(_) => tracing::debug!(pod = %name, "re-reading the own pod timed out"),
            }
        });
    }
}

impl PodDirectory {
    /// Starts the watch of `node`'s pods and waits up to `sync` for its first list. `None` outside
    /// Kubernetes (neither `KUBERNETES_SERVICE_HOST` nor `KUBECONFIG` set) or when no client can be built.
    pub async fn connect(node: &str, sync: Duration) -> Option<PodDirectory> {
        if !api_configured() {
            tracing::debug!(
                "no Kubernetes API configured: node-mode events carry cgroup identities only"
            );
            return None;
        }
        let client = match ClientSource::infer().connect().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "no Kubernetes API: node-mode events carry cgroup identities only");
                return None;
            }
        };
        Some(Self::node(client, node, sync).await)
    }

    /// [`PodDirectory::connect`] with a given client: starts the watch of `node`'s pods and waits up to
    /// `sync` for its first list (then goes on; names follow as the list arrives).
    pub async fn node(client: Client, node: &str, sync: Duration) -> PodDirectory {
        let cache = PodCache::spawn(client.clone(), &PodScope::node(node));
        if tokio::time::timeout(sync, cache.ready()).await.is_err() {
            tracing::warn!(
                node,
                "this node's pod list is not complete yet; names follow as it arrives"
            );
        }
        tracing::info!(
            node,
            pods = cache.len(),
            "node mode: watching this node's pods for names, IPs and annotations"
        );
        PodDirectory {
            client,
            source: PodsSource::Node(cache),
        }
    }

    /// Sidecar mode: reads the own pod (`POD_NAMESPACE`/`POD_NAME`) once, so container cgroups get
    /// their names (joined by container ID across all container statuses, current and last state).
    /// `None`, with one info line, when the names are unset, no API is configured, or the read fails
    /// (e.g. no RBAC `get pods`): the sidecar then goes on with container IDs.
    pub async fn own_pod(namespace: Option<&str>, name: Option<&str>) -> Option<PodDirectory> {
        let (Some(namespace), Some(name)) = (namespace, name) else {
            tracing::info!("POD_NAME/POD_NAMESPACE unset: container names stay unknown (IDs only)");
            return None;
        };
        if !api_configured() {
            tracing::info!("no Kubernetes API configured: container names stay unknown (IDs only)");
            return None;
        }
        let client = match ClientSource::infer().connect().await {
            Ok(client) => client,
            Err(e) => {
                tracing::info!(error = %e, "no Kubernetes API client: container names stay unknown (IDs only)");
                return None;
            }
        };
        Self::own_pod_with(client, namespace, name).await
    }

    /// [`PodDirectory::own_pod`] with a given client and the pod's namespace and name.
    pub async fn own_pod_with(client: Client, namespace: &str, name: &str) -> Option<PodDirectory> {
        let api: Api<SlimPod> = Api::namespaced(client.clone(), namespace);
        let pod = match tokio::time::timeout(OWN_POD_TIMEOUT, api.get(name)).await {
            Ok(Ok(pod)) => PodInfo::from(&pod),
            Ok(Err(e)) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), error = %e,
                    "cannot read the own pod (RBAC: get pods): container names stay unknown (IDs only)");
                return None;
            }
            Err(_) => {
                tracing::info!(pod = %format!("{namespace}/{name}"),
                    "reading the own pod timed out: container names stay unknown (IDs only)");
                return None;
            }
        };
        tracing::info!(pod = %pod.full_name(), containers = pod.containers.len(),
            "sidecar: container names from the own pod");
        Some(PodDirectory {
            client,
            source: PodsSource::Own(Box::new(OwnPod {
                api,
                name: name.to_owned(),
                pod: Arc::new(RwLock::new(Arc::new(pod))),
                refreshed: Mutex::new((None, HashMap::new())),
            })),
        })
    }

    /// The API client the directory reads with (node mode posts its Kubernetes Events through it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Fills `target` from the pod with its UID (else its container ID): names, IP, annotations.
    /// Returns whether a pod was found.
    pub fn enrich(&self, target: &mut Target) -> bool {
        let cache = match &self.source {
            PodsSource::Node(cache) => cache,
            PodsSource::Own(own) => return own.enrich(target),
        };
        let found = target
            .pod_uid
            .as_deref()
            .and_then(|uid| cache.by_uid(uid))
            .map(|p| {
                let name = target
                    .container_id
                    .as_deref()
                    .and_then(|id| cache.by_container_id(id))
                    .filter(|(q, _)| q.uid == p.uid)
                    .map(|(_, n)| n);
                (p, name)
            })
            .or_else(|| {
                target
                    .container_id
                    .as_deref()
                    .and_then(|id| cache.by_container_id(id))
                    .map(|(p, n)| (p, Some(n)))
            });
        let Some((pod, container)) = found else {
            return false;
        };
        enrich_from(target, &pod, container.as_deref());
        true
    }
}

/// Copies a pod's identity into a cgroup-derived target, keeping what the cgroup knows (container ID,
/// cgroup path).
fn enrich_from(target: &mut Target, pod: &PodInfo, container: Option<&str>) {
    let from_api = target_for(pod, container.or(target.container_name.as_deref()));
    target.namespace = from_api.namespace;
    target.pod_name = from_api.pod_name;
    target.pod_uid = target.pod_uid.take().or(from_api.pod_uid);
    target.node_name = from_api.node_name.or(target.node_name.take());
    target.pod_ip = from_api.pod_ip;
    target.annotations = from_api.annotations;
    if target.container_name.is_none() {
        target.container_name = container.map(Arc::from);
    }
    if target.container_id.is_none() {
        target.container_id = from_api.container_id;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;

    fn pod() -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "annotations": {"pressured.io/warn-percent": "50"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}]},
            "status": {"podIP": "10.1.2.3", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "containerID": "containerd://abc"}]},
        }))
        .unwrap();
        PodInfo::from(&pod)
    }

    #[test]
    fn enrichment_keeps_cgroup_identity_and_adds_names() {
        let mut t = Target {
            pod_uid: Some("u-1".into()),
            container_id: Some("abc".into()),
            cgroup_path: Some("/kubepods/podu-1/abc".into()),
            ..Target::default()
        };
        enrich_from(&mut t, &pod(), Some("app"));
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.pod_name.as_deref(), Some("web-1"));
        assert_eq!(t.container_name.as_deref(), Some("app"));
        assert_eq!(t.pod_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(t.node_name.as_deref(), Some("n1"));
        assert_eq!(
            t.annotations
                .get("pressured.io/warn-percent")
                .map(String::as_str),
            Some("50")
        );
        assert_eq!(t.cgroup_path.as_deref(), Some("/kubepods/podu-1/abc"));
    }
}
