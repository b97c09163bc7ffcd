//! Pod caches fed by watches (never relisted per cycle), scoped by namespaces, a label selector or
//! `spec.nodeName`, indexed by pod UID and container ID; and the pod facts the tools need.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use pressure_core::Target;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::quantity::parse_bytes;

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
        let mut c = watcher::Config::default();
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
        pod: Arc<Pod>,
        /// Part of a (re)list.
        initial: bool,
    },
    /// A pod is gone.
    Deleted {
        /// The last known state.
        pod: Arc<Pod>,
    },
}

#[derive(Default)]
struct Index {
    by_uid: HashMap<String, Arc<Pod>>,
    by_container_id: HashMap<String, (String, String)>,
    /// UIDs per watch stream, to drop pods a relist no longer has.
    per_stream: Vec<HashSet<String>>,
}

impl Index {
    fn insert(&mut self, stream: usize, pod: Arc<Pod>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if let Some(old) = self.by_uid.get(&uid).cloned() {
            self.unindex_containers(&old);
        }
        for (name, id) in container_ids(&pod) {
            self.by_container_id.insert(id, (uid.clone(), name));
        }
        self.per_stream[stream].insert(uid.clone());
        self.by_uid.insert(uid, pod);
    }

    fn unindex_containers(&mut self, pod: &Pod) {
        for (_, id) in container_ids(pod) {
            self.by_container_id.remove(&id);
        }
    }

    fn remove(&mut self, stream: usize, uid: &str) -> Option<Arc<Pod>> {
        self.per_stream[stream].remove(uid);
        let pod = self.by_uid.remove(uid)?;
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
        let apis: Vec<Api<Pod>> = if scope.namespaces.is_empty() {
            vec![Api::all(client)]
        } else {
            scope
                .namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        };
        let streams = apis.len();
        let index = Arc::new(RwLock::new(Index {
            per_stream: vec![HashSet::new(); streams],
            ..Index::default()
        }));
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
    pub fn by_uid(&self, uid: &str) -> Option<Arc<Pod>> {
        let i = self.read();
        i.by_uid
            .get(uid)
            .or_else(|| i.by_uid.get(&uid.replace('_', "-")))
            .cloned()
    }

    /// The pod and container name of a container ID (bare hex or `runtime://hex`), searching
    /// `containerStatuses`, `initContainerStatuses` and `ephemeralContainerStatuses`, current and last state.
    pub fn by_container_id(&self, id: &str) -> Option<(Arc<Pod>, String)> {
        let id = bare_container_id(id);
        let i = self.read();
        let (uid, name) = i.by_container_id.get(id)?;
        Some((i.by_uid.get(uid)?.clone(), name.clone()))
    }

    /// All cached pods.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.read().by_uid.values().cloned().collect()
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
    api: Api<Pod>,
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
                let pod = Arc::new(pod);
                if let (Some(seen), Some(uid)) = (relist.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                idx.insert(i, pod.clone());
                let _ = updates.send(PodUpdate::Applied { pod, initial: true });
            }
            Event::InitDone => {
                if let Some(seen) = relist.take() {
                    let gone: Vec<String> = idx.per_stream[i]
                        .iter()
                        .filter(|u| !seen.contains(*u))
                        .cloned()
                        .collect();
                    for uid in gone {
                        if let Some(pod) = idx.remove(i, &uid) {
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
                let pod = Arc::new(pod);
                idx.insert(i, pod.clone());
                let _ = updates.send(PodUpdate::Applied {
                    pod,
                    initial: false,
                });
            }
            Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref()
                    && let Some(old) = idx.remove(i, uid)
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

fn all_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let st = pod.status.as_ref();
    [
        st.and_then(|s| s.container_statuses.as_ref()),
        st.and_then(|s| s.init_container_statuses.as_ref()),
        st.and_then(|s| s.ephemeral_container_statuses.as_ref()),
    ]
    .into_iter()
    .flatten()
    .flatten()
}

/// `(container name, bare container ID)` of every container of a pod, current and previous instance.
pub fn container_ids(pod: &Pod) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for cs in all_statuses(pod) {
        let mut push = |id: Option<&String>| {
            if let Some(id) = id.map(|i| bare_container_id(i)).filter(|i| !i.is_empty()) {
                out.push((cs.name.clone(), id.to_owned()));
            }
        };
        push(cs.container_id.as_ref());
        push(
            cs.state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.container_id.as_ref()),
        );
        push(
            cs.last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .and_then(|t| t.container_id.as_ref()),
        );
    }
    out
}

/// The memory limit of a container from the pod spec (regular, init or ephemeral).
pub fn memory_limit(pod: &Pod, container: &str) -> Option<u64> {
    let spec = pod.spec.as_ref()?;
    let limits = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == container)
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())?;
    parse_bytes(&limits.get("memory")?.0).ok()
}

/// The current container ID (bare) of a named container.
pub fn current_container_id(pod: &Pod, container: &str) -> Option<String> {
    all_statuses(pod)
        .find(|c| c.name == container)
        .and_then(|c| c.container_id.as_deref())
        .map(|i| bare_container_id(i).to_owned())
        .filter(|i| !i.is_empty())
}

/// The engine's [`Target`] for a container of a pod: names, UID, node, IP, annotations, container ID.
pub fn target_for(pod: &Pod, container: Option<&str>) -> Target {
    let m = &pod.metadata;
    Target {
        namespace: m.namespace.clone(),
        pod_name: m.name.clone(),
        pod_uid: m.uid.clone(),
        container_name: container.map(str::to_owned),
        container_id: container.and_then(|c| current_container_id(pod, c)),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        pod_ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
        annotations: m
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        cgroup_path: None,
    }
}
