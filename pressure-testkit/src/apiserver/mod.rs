//! A fake Kubernetes API server good enough for the real `kubectl` and for kube-rs clients.
//!
//! It keeps Pods, Nodes, Namespaces, Events (`core/v1` and `events.k8s.io/v1`, one storage) and
//! Leases in memory with a global resourceVersion and a bounded change log, serves list and watch
//! (selectors, `limit`/`continue`, bookmarks, `timeoutSeconds`, in-stream `410 Expired`), server-side
//! `Table`s, merge / strategic-merge / JSON patches (409 on a resourceVersion conflict), the kubelet
//! Summary API through `/api/v1/nodes/{node}/proxy/stats/summary`, and fault injection.

mod http;
mod resources;
mod select;
pub(crate) mod store;
pub(crate) mod summary;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use store::ContainerUsage;
use store::Store;

/// Errors of the fake API server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FakeApiError {
    /// A world file could not be read.
    #[error("reading world file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A world file is not YAML or JSON Kubernetes objects.
    #[error("parsing world {path}: {message}")]
    Parse {
        /// The file, or `<inline>`.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate could not be made.
    #[error("making the TLS certificate: {0}")]
    Tls(String),
    /// A kubeconfig could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The objects a fake API server starts with: Nodes, Pods, Namespaces, Events, Leases.
#[derive(Debug, Clone, Default)]
pub struct World {
    objects: Vec<Value>,
}

impl World {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a YAML or JSON document: a `List` (or `PodList`, `NodeList`), an array, one object, or
    /// several YAML documents.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, FakeApiError> {
        let mut world = Self::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v: Value =
                serde::Deserialize::deserialize(doc).map_err(|e| FakeApiError::Parse {
                    path: origin.to_owned(),
                    message: e.to_string(),
                })?;
            world.add_document(v, origin)?;
        }
        Ok(world)
    }

    fn add_document(&mut self, v: Value, origin: &Path) -> Result<(), FakeApiError> {
        match v {
            Value::Null => Ok(()),
            Value::Array(items) => items
                .into_iter()
                .try_for_each(|i| self.add_document(i, origin)),
            Value::Object(ref o) if o.get("items").is_some_and(Value::is_array) => {
                let kind = o.get("kind").and_then(Value::as_str).unwrap_or("List");
                let item_kind = kind
                    .strip_suffix("List")
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned);
                for mut item in o["items"].as_array().cloned().unwrap_or_default() {
                    if item.get("kind").is_none()
                        && let (Some(k), Some(obj)) = (&item_kind, item.as_object_mut())
                    {
                        obj.insert("kind".into(), json!(k));
                    }
                    self.add_document(item, origin)?;
                }
                Ok(())
            }
            Value::Object(_) => {
                if resources::for_object(&v).is_none() {
                    return Err(FakeApiError::Parse {
                        path: origin.to_owned(),
                        message: format!(
                            "unsupported kind {}",
                            v.get("kind").unwrap_or(&Value::Null)
                        ),
                    });
                }
                self.objects.push(v);
                Ok(())
            }
            other => Err(FakeApiError::Parse {
                path: origin.to_owned(),
                message: format!("expected an object, got {other}"),
            }),
        }
    }

    /// Reads a world file (YAML or JSON).
    pub fn from_path(path: &Path) -> Result<Self, FakeApiError> {
        let text = std::fs::read_to_string(path).map_err(|source| FakeApiError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Adds one object.
    #[must_use]
    pub fn with(mut self, object: Value) -> Self {
        self.objects.push(object);
        self
    }

    /// Adds all objects of another world.
    pub fn extend(&mut self, other: World) {
        self.objects.extend(other.objects);
    }

    /// The objects.
    pub fn objects(&self) -> &[Value] {
        &self.objects
    }

    /// `nodes` Ready nodes with `pods_per_node` running pods each (one container, 256Mi limit),
    /// in ten namespaces `ns-0`..`ns-9`, for scale tests.
    pub fn synthetic(nodes: usize, pods_per_node: usize) -> Self {
        let mut w = Self::new();
        for n in 0..nodes {
            w.objects.push(synthetic_node(
                &format!("node-{n}"),
                &format!("10.0.{}.{}", n / 250, n % 250 + 1),
            ));
            for i in 0..pods_per_node {
                let name = format!("pod-{n}-{i}");
                let uid = format!("{:08x}-0000-4000-8000-{:012x}", n, i);
                w.objects.push(synthetic_pod(
                    &format!("ns-{}", i % 10),
                    &name,
                    &uid,
                    &format!("node-{n}"),
                    &format!("10.{}.{}.{}", 100 + n / 250, n % 250, i % 250 + 1),
                ));
            }
        }
        w
    }
}

/// A Ready node object with an InternalIP and 16Gi of memory.
pub fn synthetic_node(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "15Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "fake", "kernelVersion": "6.18.0", "containerRuntimeVersion": "containerd://2.2.1"},
        },
    })
}

/// A running pod with one container `app` (256Mi limit) on `node`.
pub fn synthetic_pod(namespace: &str, name: &str, uid: &str, node: &str, ip: &str) -> Value {
    let cid: String = uid.chars().filter(char::is_ascii_hexdigit).collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox", "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "128Mi"}}}]},
        "status": {
            "phase": "Running", "podIP": ip, "hostIP": "10.0.0.1", "qosClass": "Burstable",
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "busybox", "imageID": "",
                "containerID": format!("containerd://{cid:0<64}"), "started": true, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}],
        },
    })
}

/// An injected fault.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long before answering.
    Latency(Duration),
    /// Answer `429 Too Many Requests` with this `Retry-After` (seconds).
    TooManyRequests {
        /// The `Retry-After` header value.
        retry_after_secs: u64,
    },
    /// Answer `500 Internal Server Error`.
    InternalError,
    /// Close the connection without an answer.
    DropConnection,
    /// Answer `401 Unauthorized`, as for an expired token.
    Unauthorized,
    /// The answer to a resourceVersion the server no longer has: a watch gets `200` with one in-stream
    /// `ERROR` event (`410`, reason `Expired`) and ends, as a real API server sends it; any other
    /// request gets `410 Gone` (reason `Expired`). A client relists.
    Expired,
}

/// A fault applied to requests whose path contains a string, optionally a limited number of times.
#[derive(Debug, Clone)]
pub struct FaultRule {
    fault: Fault,
    path_contains: Option<String>,
    remaining: Option<u32>,
    until: Option<Instant>,
}

impl FaultRule {
    /// A rule applying `fault` to every request.
    pub fn new(fault: Fault) -> Self {
        Self {
            fault,
            path_contains: None,
            remaining: None,
            until: None,
        }
    }

    /// Only requests whose path and query contain `s`.
    #[must_use]
    pub fn path_contains(mut self, s: &str) -> Self {
        self.path_contains = Some(s.to_owned());
        self
    }

    /// Only the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Only for `d` from now: a run of faults of a given length (a phase of 500s, of 429s, of slow
    /// answers), after which requests are served again. Combines with [`times`](Self::times).
    #[must_use]
    pub fn during(mut self, d: Duration) -> Self {
        self.until = Some(Instant::now() + d);
        self
    }
}

/// Options for [`FakeApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Listen address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Serve HTTPS with a fresh self-signed CA.
    pub tls: bool,
    /// Require `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// How many changes the watch log keeps before older resourceVersions expire.
    pub log_capacity: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            token: None,
            log_capacity: 10_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

pub(crate) struct Tokens {
    valid: Vec<String>,
    expired: Vec<String>,
}

pub(crate) struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<Vec<FaultRule>>,
    pub(crate) tokens: Mutex<Option<Tokens>>,
    pub(crate) requests: Mutex<Vec<String>>,
    pub(crate) bookmark_interval: Duration,
    pub(crate) addr: SocketAddr,
    /// An outage ([`FakeApiServer::outage`]) lasts until then: every connection is closed at once.
    pub(crate) outage_until: Mutex<Option<Instant>>,
    /// Bumped to close every open connection (watches included).
    pub(crate) cut: tokio::sync::watch::Sender<u64>,
    /// Connections closed unanswered by an outage.
    pub(crate) refused: AtomicU64,
}

impl Shared {
    /// Whether an outage is on now.
    pub(crate) fn in_outage(&self) -> bool {
        lock(&self.outage_until).is_some_and(|t| Instant::now() < t)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    url: String,
    ca_pem: Option<String>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApiServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FakeApiServer {
    /// Starts a plain-HTTP server on a free loopback port. Needs a tokio runtime.
    pub async fn start(world: World) -> Result<Self, FakeApiError> {
        Self::start_with(world, Options::default()).await
    }

    /// Starts a server with `options`. Needs a tokio runtime.
    pub async fn start_with(world: World, options: Options) -> Result<Self, FakeApiError> {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| FakeApiError::Bind {
                addr: options.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FakeApiError::Bind {
            addr: options.listen,
            source,
        })?;
        let mut store = Store::new(options.log_capacity);
        let mut namespaces = std::collections::BTreeSet::new();
        for obj in world.objects {
            if let Some(res) = resources::for_object(&obj) {
                if res.namespaced {
                    namespaces.insert(
                        store::meta_str(&obj, "namespace")
                            .unwrap_or("default")
                            .to_owned(),
                    );
                }
                let obj = res.stored_form(obj);
                store.upsert(res, obj);
            }
        }
        namespaces.insert("default".into());
        let ns_res = resources::find("", "v1", "namespaces").expect("namespaces are served");
        for ns in namespaces {
            if !store
                .objects
                .contains_key(&("namespaces", String::new(), ns.clone()))
            {
                store.upsert(ns_res, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}));
            }
        }
        let tls = if options.tls {
            Some(http::make_tls()?)
        } else {
            None
        };
        let ca_pem = tls.as_ref().map(|t| t.1.clone());
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            faults: Mutex::new(Vec::new()),
            tokens: Mutex::new(options.token.map(|t| Tokens {
                valid: vec![t],
                expired: Vec::new(),
            })),
            requests: Mutex::new(Vec::new()),
            bookmark_interval: options.bookmark_interval,
            addr,
            outage_until: Mutex::new(None),
            cut: tokio::sync::watch::channel(0).0,
            refused: AtomicU64::new(0),
        });
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(http::serve(listener, shared.clone(), tls.map(|t| t.0), rx));
        Ok(Self {
            shared,
            url: format!("{scheme}://{addr}"),
            ca_pem,
            shutdown,
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// PEM of the CA that signed the server certificate, when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes `kubeconfig` (and `ca.crt` for HTTPS) into `dir`; returns the kubeconfig path.
    pub fn write_kubeconfig(&self, dir: &Path) -> Result<PathBuf, FakeApiError> {
        let write = |p: PathBuf, s: &str| {
            std::fs::write(&p, s)
                .map(|()| p.clone())
                .map_err(|source| FakeApiError::Write { path: p, source })
        };
        let mut cluster = format!("    server: {}\n", self.url);
        if let Some(ca) = &self.ca_pem {
            let p = write(dir.join("ca.crt"), ca)?;
            cluster.push_str(&format!("    certificate-authority: {}\n", p.display()));
        }
        let token = lock(&self.shared.tokens)
            .as_ref()
            .and_then(|t| t.valid.first().cloned());
        let user = token.map_or_else(
            || "  user: {}\n".to_owned(),
            |t| format!("  user:\n    token: {t}\n"),
        );
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n{cluster}contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n{user}"
        );
        write(dir.join("kubeconfig"), &text)
    }

    /// Creates or replaces an object (Node, Pod, Event, Lease, Namespace); returns it as stored.
    ///
    /// # Panics
    /// When the kind is not served.
    pub fn upsert(&self, object: Value) -> Value {
        let res = resources::for_object(&object)
            .unwrap_or_else(|| panic!("unsupported kind in {object}"));
        let obj = res.stored_form(object);
        (*lock(&self.shared.store).upsert(res, obj)).clone()
    }

    /// Changes a stored pod in place (for example its status); `false` when it does not exist.
    pub fn update_pod(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) -> bool {
        let mut store = lock(&self.shared.store);
        let key = ("pods", namespace.to_owned(), name.to_owned());
        let Some(old) = store.objects.get(&key).cloned() else {
            return false;
        };
        let mut obj = (*old).clone();
        f(&mut obj);
        store.replace_unchecked(key, obj);
        true
    }

    /// Deletes a pod; `false` when it does not exist.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> bool {
        lock(&self.shared.store)
            .delete(&("pods", namespace.to_owned(), name.to_owned()))
            .is_ok()
    }

    /// A pod as stored.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.store)
            .objects
            .get(&("pods", namespace.to_owned(), name.to_owned()))
            .map(|v| (**v).clone())
    }

    /// All Events in `core/v1` form.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.store)
            .objects
            .iter()
            .filter(|(k, _)| k.0 == "events")
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    /// All Leases.
    pub fn leases(&self) -> Vec<Value> {
        lock(&self.shared.store)
            .objects
            .iter()
            .filter(|(k, _)| k.0 == "leases")
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    /// Sets what the Summary API reports for one container.
    pub fn set_usage(&self, namespace: &str, pod: &str, container: &str, usage: ContainerUsage) {
        lock(&self.shared.store).usage.insert(
            (namespace.to_owned(), pod.to_owned(), container.to_owned()),
            usage,
        );
    }

    /// Adds a fault rule; rules are checked in order and the first one matching applies.
    pub fn add_fault(&self, rule: FaultRule) {
        lock(&self.shared.faults).push(rule);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Closes every open connection now, watches included, as an API server restart does: clients
    /// reconnect (a watch resumes from its last resourceVersion).
    pub fn close_connections(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// An outage of `d` from now: every open connection is closed at once, and every new one is
    /// accepted and closed unanswered until the time is up (the client sees the connection reset
    /// before any answer, as from a restarting or unreachable API server). Nothing is logged in
    /// [`requests`](Self::requests) meanwhile; [`refused_connections`](Self::refused_connections)
    /// counts the attempts.
    pub fn outage(&self, d: Duration) {
        *lock(&self.shared.outage_until) = Some(Instant::now() + d);
        self.close_connections();
    }

    /// Ends an outage early.
    pub fn end_outage(&self) {
        *lock(&self.shared.outage_until) = None;
    }

    /// How many connections outages closed unanswered so far.
    pub fn refused_connections(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Makes the current bearer token(s) expired (answered with 401) and accepts `new` instead.
    pub fn rotate_token(&self, new: &str) {
        if let Some(t) = lock(&self.shared.tokens).as_mut() {
            let old = std::mem::take(&mut t.valid);
            t.expired.extend(old);
            t.valid.push(new.to_owned());
        }
    }

    /// Drops the watch change log: watches from any older resourceVersion get `410 Expired`.
    pub fn compact(&self) {
        lock(&self.shared.store).compact();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.store).current_rv()
    }

    /// `METHOD path?query` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.requests).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
