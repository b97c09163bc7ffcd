//! Pod caches fed by watches (never relisted per cycle), scoped by namespaces, a label selector or
//! `spec.nodeName`, indexed by pod UID and container ID; and the pod facts the tools need.
//!
//! The cache keeps a [`PodInfo`] per pod, not the API's `Pod`: a pod with `managedFields`, its full
//! spec and status is 10–20 KiB in memory, the facts the tools use are a few hundred bytes, and a
//! cluster-wide cache holds every pod of the cluster (10 000 pods: ~150 MiB against ~5 MiB). The
//! watches decode pods as [`SlimPod`]s (only the fields a `PodInfo` is made of), never as full `Pod`s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use pressure_core::Target;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::quantity::parse_bytes;
use crate::slim::{self, SlimPod};

/// Annotations not kept in a [`PodInfo`]: a copy of the whole object `kubectl apply` writes, often
/// kilobytes, and of no use to thresholds, events or actions.
const DROPPED_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// Objects per page of a watch's (re)list: each page is decoded whole (as [`SlimPod`]s, with their
/// `metadata`) before its pods are slimmed further, so a smaller page lowers the peak while the cache
/// fills (kube-rs' default is 500).
const LIST_PAGE_SIZE: u32 = 100;

/// What the tools keep of a pod: identity, node, IP, annotations and, per container, its memory
/// limit, container IDs and terminations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodInfo {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.nodeName`, once scheduled.
    pub node_name: Option<String>,
    /// `status.podIP`.
    pub pod_ip: Option<String>,
    /// `metadata.annotations` (without `kubectl.kubernetes.io/last-applied-configuration`).
    pub annotations: BTreeMap<String, String>,
    /// Regular, init and ephemeral containers: spec order, then containers only the status names.
    pub containers: Vec<ContainerInfo>,
}

/// What the tools keep of one container of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerInfo {
    /// Container name.
    pub name: String,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<u64>,
    /// Bare ID of the current instance (`containerStatuses[].containerID`).
    pub id: Option<String>,
    /// `restartCount`.
    pub restart_count: i32,
    /// `state.terminated`: the current instance has ended.
    pub terminated: Option<Termination>,
    /// `lastState.terminated`: how the previous instance ended.
    pub last_terminated: Option<Termination>,
}

/// How a container instance ended (`ContainerStateTerminated`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Termination {
    /// `reason`, e.g. `OOMKilled`, `Completed`, `Error`.
    pub reason: Option<String>,
    /// `exitCode`.
    pub exit_code: i32,
    /// Bare ID of the ended instance.
    pub container_id: Option<String>,
    /// `finishedAt`, RFC 3339.
    pub finished_at: Option<String>,
}

impl Termination {
    fn from_api(t: &slim::Terminated) -> Self {
        Self {
            reason: t.reason.clone(),
            exit_code: t.exit_code,
            container_id: t
                .container_id
                .as_deref()
                .map(bare_container_id)
                .filter(|i| !i.is_empty())
                .map(str::to_owned),
            finished_at: t.finished_at.as_ref().map(|f| f.0.to_string()),
        }
    }

    /// Whether the kernel OOM killer ended this instance.
    pub fn is_oom(&self) -> bool {
        self.reason.as_deref() == Some("OOMKilled")
    }
}

impl ContainerInfo {
    /// Every known bare ID of this container: current, ended current, previous instance.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        [
            self.id.as_deref(),
            self.terminated
                .as_ref()
                .and_then(|t| t.container_id.as_deref()),
            self.last_terminated
                .as_ref()
                .and_then(|t| t.container_id.as_deref()),
        ]
        .into_iter()
        .flatten()
    }

    fn status(&mut self, cs: &slim::ContainerStatus) {
        self.id = cs
            .container_id
            .as_deref()
            .map(bare_container_id)
            .filter(|i| !i.is_empty())
            .map(str::to_owned);
        self.restart_count = cs.restart_count;
        self.terminated = cs.state.terminated.as_ref().map(Termination::from_api);
        self.last_terminated = cs.last_state.terminated.as_ref().map(Termination::from_api);
    }
}

impl From<&SlimPod> for PodInfo {
    fn from(pod: &SlimPod) -> Self {
        let m = &pod.metadata;
        let spec = &pod.spec;
        let limit = |c: &slim::Container| {
            c.resources
                .limits
                .memory
                .as_deref()
                .and_then(|q| parse_bytes(q).ok())
        };
        let mut containers: Vec<ContainerInfo> = Vec::new();
        for c in spec.containers.iter().chain(&spec.init_containers) {
            containers.push(ContainerInfo {
                name: c.name.clone(),
                memory_limit: limit(c),
                ..ContainerInfo::default()
            });
        }
        for c in &spec.ephemeral_containers {
            containers.push(ContainerInfo {
                name: c.name.clone(),
                ..ContainerInfo::default()
            });
        }
        let st = &pod.status;
        let statuses = st
            .container_statuses
            .iter()
            .chain(&st.init_container_statuses)
            .chain(&st.ephemeral_container_statuses);
        for cs in statuses {
            match containers.iter_mut().find(|c| c.name == cs.name) {
                Some(c) => c.status(cs),
                None => {
                    let mut c = ContainerInfo {
                        name: cs.name.clone(),
                        ..ContainerInfo::default()
                    };
                    c.status(cs);
                    containers.push(c);
                }
            }
        }
        let mut annotations: BTreeMap<String, String> = m
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        for key in DROPPED_ANNOTATIONS {
            annotations.remove(key);
        }
        Self {
            uid: m.uid.clone().unwrap_or_default(),
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            node_name: spec.node_name.clone(),
            pod_ip: st.pod_ip.clone().filter(|ip| !ip.is_empty()),
            annotations,
            containers,
        }
    }
}

impl From<&Pod> for PodInfo {
    /// Through [`SlimPod`] (`SlimPod::from(&Pod)`): one implementation of the field logic.
    fn from(pod: &Pod) -> Self {
        Self::from(&SlimPod::from(pod))
    }
}

impl PodInfo {
    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The name of the container one of whose instances has this ID (bare or `runtime://id`).
    pub fn container_by_id(&self, id: &str) -> Option<&ContainerInfo> {
        let id = bare_container_id(id);
        self.containers.iter().find(|c| c.ids().any(|i| i == id))
    }

    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Which pods a cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodScope {
    /// Namespaces to watch, one watch each; empty watches all namespaces.
    pub namespaces: Vec<String>,
    /// Label selector, e.g. `app in (web,api),tier!=batch`.
    pub label_selector: Option<String>,
    /// Only pods on this node (`spec.nodeName` field selector): what node-local tools use.
    pub node_name: Option<String>,
}

impl PodScope {
    /// Pods of one node, in every namespace.
    pub fn node(name: &str) -> Self {
        Self {
            node_name: Some(name.to_owned()),
            ..Self::default()
        }
    }

    fn watcher_config(&self) -> watcher::Config {
        let mut c = watcher::Config::default().page_size(LIST_PAGE_SIZE);
        if let Some(l) = self.label_selector.as_deref().filter(|l| !l.is_empty()) {
            c = c.labels(l);
        }
        if let Some(n) = &self.node_name {
            c = c.fields(&format!("spec.nodeName={n}"));
        }
        c
    }
}

/// A change seen by a [`PodCache`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PodUpdate {
    /// A pod was added or changed; `initial` for pods of a (re)list rather than a watch event.
    Applied {
        /// The pod as now known.
        pod: Arc<PodInfo>,
        /// Part of a (re)list.
        initial: bool,
    },
    /// A pod is gone.
    Deleted {
        /// The last known state.
        pod: Arc<PodInfo>,
    },
}

#[derive(Default)]
struct Index {
    /// Pod UID → (the watch stream that delivered it, the pod).
    by_uid: HashMap<String, (usize, Arc<PodInfo>)>,
    /// Bare container ID → pod UID.
    by_container_id: HashMap<String, String>,
}

impl Index {
    fn insert(&mut self, stream: usize, pod: Arc<PodInfo>) {
        if pod.uid.is_empty() {
            return;
        }
        if let Some((_, old)) = self.by_uid.get(&pod.uid).cloned() {
            self.unindex_containers(&old);
        }
        for c in &pod.containers {
            for id in c.ids() {
                self.by_container_id.insert(id.to_owned(), pod.uid.clone());
            }
        }
        self.by_uid.insert(pod.uid.clone(), (stream, pod));
    }

    fn unindex_containers(&mut self, pod: &PodInfo) {
        for c in &pod.containers {
            for id in c.ids() {
                if self.by_container_id.get(id) == Some(&pod.uid) {
                    self.by_container_id.remove(id);
                }
            }
        }
    }

    fn remove(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let (_, pod) = self.by_uid.remove(uid)?;
        self.unindex_containers(&pod);
        Some(pod)
    }
}

/// A watch-fed cache of pods; the watches stop when it is dropped.
pub struct PodCache {
    index: Arc<RwLock<Index>>,
    ready: watch::Receiver<usize>,
    streams: usize,
    updates: broadcast::Sender<PodUpdate>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for PodCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodCache")
            .field("pods", &self.len())
            .finish_non_exhaustive()
    }
}

impl PodCache {
    /// Starts the watches of `scope` (one per namespace, or one cluster-wide). Watch errors (API
    /// server down, 429, 410 Expired) are retried with kube-rs' default backoff; a 410 relists.
    pub fn spawn(client: Client, scope: &PodScope) -> Self {
        let apis: Vec<Api<SlimPod>> = if scope.namespaces.is_empty() {
            vec![Api::all(client)]
        } else {
            scope
                .namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        };
        let streams = apis.len();
        let index = Arc::new(RwLock::new(Index::default()));
        let (ready_tx, ready) = watch::channel(0usize);
        let ready_tx = Arc::new(ready_tx);
        let (updates, _) = broadcast::channel(4096);
        let config = scope.watcher_config();
        let tasks = apis
            .into_iter()
            .enumerate()
            .map(|(i, api)| {
                let index = index.clone();
                let updates = updates.clone();
                let ready_tx = ready_tx.clone();
                let config = config.clone();
                tokio::spawn(
                    async move { run_stream(i, api, config, index, updates, ready_tx).await },
                )
            })
            .collect();
        Self {
            index,
            ready,
            streams,
            updates,
            tasks,
        }
    }

    /// Waits until every watch has completed its first list.
    pub async fn ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|n| *n >= self.streams).await;
    }

    /// Whether every watch has completed its first list.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow() >= self.streams
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PodUpdate> {
        self.updates.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Number of cached pods.
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pod with this UID (dashes as the API writes them; underscores are accepted).
    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.read();
        i.by_uid
            .get(uid)
            .or_else(|| {
                uid.contains('_')
                    .then(|| i.by_uid.get(&uid.replace('_', "-")))
                    .flatten()
            })
            .map(|(_, p)| p.clone())
    }

    /// The pod and container name of a container ID (bare hex or `runtime://hex`), searching
    /// `containerStatuses`, `initContainerStatuses` and `ephemeralContainerStatuses`, current and last state.
    pub fn by_container_id(&self, id: &str) -> Option<(Arc<PodInfo>, String)> {
        let id = bare_container_id(id);
        let i = self.read();
        let uid = i.by_container_id.get(id)?;
        let (_, pod) = i.by_uid.get(uid)?;
        let name = pod.container_by_id(id)?.name.clone();
        Some((pod.clone(), name))
    }

    /// All cached pods.
    pub fn pods(&self) -> Vec<Arc<PodInfo>> {
        self.read()
            .by_uid
            .values()
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The nodes the cached pods are scheduled on.
    pub fn node_names(&self) -> HashSet<String> {
        let i = self.read();
        let mut nodes: HashSet<&str> = HashSet::new();
        for (_, p) in i.by_uid.values() {
            if let Some(n) = p.node_name.as_deref() {
                nodes.insert(n);
            }
        }
        nodes.into_iter().map(str::to_owned).collect()
    }
}

impl Drop for PodCache {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn run_stream(
    i: usize,
    api: Api<SlimPod>,
    config: watcher::Config,
    index: Arc<RwLock<Index>>,
    updates: broadcast::Sender<PodUpdate>,
    ready: Arc<watch::Sender<usize>>,
) {
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut relist: Option<HashSet<String>> = None;
    let mut first_done = false;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                continue;
            }
        };
        let mut idx = index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ev {
            Event::Init => relist = Some(HashSet::new()),
            Event::InitApply(pod) => {
                // Slimmed at once: the API object is dropped here, not kept for the whole list.
                let pod = Arc::new(PodInfo::from(&pod));
                if let Some(seen) = relist.as_mut() {
                    seen.insert(pod.uid.clone());
                }
                idx.insert(i, pod.clone());
                let _ = updates.send(PodUpdate::Applied { pod, initial: true });
            }
            Event::InitDone => {
                if let Some(seen) = relist.take() {
                    let gone: Vec<String> = idx
                        .by_uid
                        .iter()
                        .filter(|(u, (s, _))| *s == i && !seen.contains(*u))
                        .map(|(u, _)| u.clone())
                        .collect();
                    for uid in gone {
                        if let Some(pod) = idx.remove(&uid) {
                            let _ = updates.send(PodUpdate::Deleted { pod });
                        }
                    }
                }
                if !first_done {
                    first_done = true;
                    ready.send_modify(|n| *n += 1);
                }
            }
            Event::Apply(pod) => {
                let pod = Arc::new(PodInfo::from(&pod));
                idx.insert(i, pod.clone());
                let _ = updates.send(PodUpdate::Applied {
                    pod,
                    initial: false,
                });
            }
            Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref()
                    && let Some(old) = idx.remove(uid)
                {
                    let _ = updates.send(PodUpdate::Deleted { pod: old });
                }
            }
        }
    }
}

/// `containerd://abc` → `abc`; a bare ID is returned as is.
pub fn bare_container_id(id: &str) -> &str {
    id.rsplit_once("://").map_or(id, |(_, b)| b)
}

/// `(container name, bare container ID)` of every container of a pod, current and previous instance.
pub fn container_ids(pod: &PodInfo) -> Vec<(String, String)> {
    pod.containers
        .iter()
        .flat_map(|c| c.ids().map(|id| (c.name.clone(), id.to_owned())))
        .collect()
}

/// The memory limit of a container from the pod spec (regular or init).
pub fn memory_limit(pod: &PodInfo, container: &str) -> Option<u64> {
    pod.container(container)?.memory_limit
}

/// The current container ID (bare) of a named container.
pub fn current_container_id(pod: &PodInfo, container: &str) -> Option<String> {
    pod.container(container)?.id.clone()
}

/// The engine's [`Target`] for a container of a pod: names, UID, node, IP, annotations, container ID.
pub fn target_for(pod: &PodInfo, container: Option<&str>) -> Target {
    let opt = |s: &str| (!s.is_empty()).then(|| Arc::from(s));
    Target {
        namespace: opt(&pod.namespace),
        pod_name: opt(&pod.name),
        pod_uid: opt(&pod.uid),
        container_name: container.map(Arc::from),
        container_id: container.and_then(|c| current_container_id(pod, c).map(Arc::from)),
        node_name: pod.node_name.as_deref().map(Arc::from),
        pod_ip: pod.pod_ip.as_deref().map(Arc::from),
        annotations: Arc::new(pod.annotations.clone()),
        cgroup_path: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn slim_record_keeps_what_the_tools_use() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                "annotations": {"pressured.io/warn-percent": "50",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"nodeName": "n1",
                "containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}],
                "initContainers": [{"name": "init", "image": "x", "resources": {"limits": {"memory": "1Gi"}}}]},
            "status": {"podIP": "10.1.2.3",
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                    "containerID": "containerd://cur",
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "containerID": "containerd://old", "finishedAt": "2026-01-01T00:00:05Z"}}}],
                "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                    "containerID": "cri-o://ini", "state": {"terminated": {"reason": "Completed", "exitCode": 0, "containerID": "cri-o://ini"}}}],
                "ephemeralContainerStatuses": [{"name": "debug", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "containerID": "containerd://eph"}]},
        }))
        .expect("pod");
        let info = PodInfo::from(&pod);
        assert_eq!(
            (
                info.uid.as_str(),
                info.namespace.as_str(),
                info.name.as_str()
            ),
            ("u-1", "shop", "web")
        );
        assert_eq!(info.node_name.as_deref(), Some("n1"));
        assert_eq!(info.pod_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(
            info.annotations.keys().collect::<Vec<_>>(),
            ["pressured.io/warn-percent"]
        );
        assert_eq!(memory_limit(&info, "app"), Some(64 << 20));
        assert_eq!(memory_limit(&info, "init"), Some(1 << 30));
        assert_eq!(current_container_id(&info, "app").as_deref(), Some("cur"));
        let app = info.container("app").expect("app");
        assert_eq!(app.restart_count, 1);
        assert!(
            app.last_terminated
                .as_ref()
                .is_some_and(Termination::is_oom)
        );
        assert_eq!(
            container_ids(&info),
            [
                ("app".to_owned(), "cur".to_owned()),
                ("app".to_owned(), "old".to_owned()),
                ("init".to_owned(), "ini".to_owned()),
                ("init".to_owned(), "ini".to_owned()),
                ("debug".to_owned(), "eph".to_owned()),
            ]
        );
        assert_eq!(
            info.container_by_id("containerd://old")
                .map(|c| c.name.as_str()),
            Some("app")
        );
        let t = target_for(&info, Some("app"));
        assert_eq!(t.container_id.as_deref(), Some("cur"));
        assert_eq!(t.pod_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(t.namespace.as_deref(), Some("shop"));
    }
}
