//! Kubelet stand-ins: an HTTPS server per Node, on its own loopback address, serving the kubelet
//! Summary API (`/stats/summary`) so that `GET /api/v1/nodes/N/proxy/stats/summary` through the real
//! API server reaches it. The JSON comes from the fake API server's summary builder.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::{ControlPlane, KubeError, certs};
use crate::ContainerUsage;
use crate::apiserver::summary::{NodeSnapshot, render};

/// The runtime every stand-in of this process serves on (a static: stand-ins come and go).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            // Two: a bench's 100 stand-ins answer a summary each per second next to the API server.
            .worker_threads(2)
            .thread_name("kubelet-stand-ins")
            .enable_all()
            .build()
            .expect("kubelet stand-in runtime")
    })
}

/// The next loopback address: 127.0.0.2, .3, … (all of 127/8 routes to `lo` on Linux), so that each
/// Node has its own InternalIP as on a real cluster.
fn next_loopback() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (254 * 254);
    Ipv4Addr::new(127, 0, (n / 254) as u8, (n % 254) as u8 + 2)
}

type PodKey = (String, String);

struct State {
    node: Value,
    pods: BTreeMap<PodKey, (Value, Vec<Option<ContainerUsage>>)>,
    /// The last summary rendered, until a pod changes: a kubelet too answers from stats it gathered
    /// earlier (cAdvisor's housekeeping), and a bench's 100 stand-ins must not cost more CPU than the
    /// `pressured` they feed.
    rendered: Option<Bytes>,
    /// Bumped by every change of `pods`, so a body rendered from an older state is not kept.
    generation: u64,
}

/// A kubelet stand-in registered as a Node. Stops serving on drop (the Node object stays: the
/// control plane is per test process and names are unique).
pub struct KubeletStandIn {
    name: String,
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for KubeletStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletStandIn")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl KubeletStandIn {
    pub(crate) fn start(cp: &ControlPlane, name: &str) -> Result<KubeletStandIn, KubeError> {
        let ip = next_loopback();
        let bind = SocketAddr::from((ip, 0));
        let std_listener = std::net::TcpListener::bind(bind).map_err(|source| KubeError::Io {
            path: bind.to_string().into(),
            source,
        })?;
        let addr = std_listener.local_addr().map_err(|source| KubeError::Io {
            path: bind.to_string().into(),
            source,
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| KubeError::Io {
                path: addr.to_string().into(),
                source,
            })?;
        let (cert, key) = certs::kubelet_serving(&ip.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeError::Pki(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| KubeError::Pki(e.to_string()))?;

        let node = cp.create(
            "/api/v1/nodes",
            &json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": ip.to_string()},
                        {"type": "Hostname", "address": name},
                    ],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": addr.port()}},
                    "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                    "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "message": "kubelet stand-in (pressure-testkit)"}],
                },
            }),
        )?;
        let state = Arc::new(Mutex::new(State {
            node,
            pods: BTreeMap::new(),
            rendered: None,
            generation: 0,
        }));
        let requests = Arc::new(AtomicU64::new(0));
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let (st, rq, node_name) = (state.clone(), requests.clone(), name.to_owned());
        let rt = runtime();
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(|source| KubeError::Io {
                path: addr.to_string().into(),
                source,
            })?
        };
        rt.spawn(serve(listener, Arc::new(tls), st, rq, node_name, rx));
        Ok(KubeletStandIn {
            name: name.to_owned(),
            addr,
            state,
            requests,
            shutdown,
        })
    }

    /// The Node's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens (the Node's InternalIP and kubelet port).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets a pod the summary reports: the pod object as the API server returned it (its UID and
    /// containers are used) and the usage of each container in `spec.containers` order (`None`:
    /// 16 MiB working set).
    pub fn set_pod(&self, pod: &Value, usages: &[Option<ContainerUsage>]) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let mut state = lock(&self.state);
        state.pods.insert(
            (ns.to_owned(), name.to_owned()),
            (pod.clone(), usages.to_vec()),
        );
        state.rendered = None;
        state.generation += 1;
    }

    /// Stops reporting a pod.
    pub fn remove_pod(&self, namespace: &str, name: &str) {
        let mut state = lock(&self.state);
        state.pods.remove(&(namespace.to_owned(), name.to_owned()));
        state.rendered = None;
        state.generation += 1;
    }

    /// How many `/stats/summary` requests it answered.
    #[must_use]
    pub fn summary_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for KubeletStandIn {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The summary's JSON: the one rendered last, or a new one when a pod changed since.
fn summary(state: &Mutex<State>, node: &str) -> Bytes {
    let (snap, generation) = {
        let s = lock(state);
        if let Some(body) = &s.rendered {
            return body.clone();
        }
        let snap = NodeSnapshot::new(
            s.node.clone(),
            s.pods
                .iter()
                .map(|((ns, name), (pod, usages))| {
                    (ns.clone(), name.clone(), pod.clone(), usages.clone())
                })
                .collect(),
        );
        (snap, s.generation)
    };
    let body = Bytes::from(render(&snap, node).to_string());
    // A pod set while rendering is newer than this body: the next request renders again.
    let mut s = lock(state);
    if s.generation == generation {
        s.rendered = Some(body.clone());
    }
    body
}

async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    node: String,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let (acceptor, state, requests, node) = (
            acceptor.clone(),
            state.clone(),
            requests.clone(),
            node.clone(),
        );
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (state, requests, node) = (state.clone(), requests.clone(), node.clone());
                async move {
                    let resp = if req.uri().path() == "/stats/summary" {
                        requests.fetch_add(1, Ordering::Relaxed);
                        Response::builder()
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(Full::new(summary(&state, &node)))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"404 page not found\n")))
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_default())
                }
            });
            // HTTP/1.1 only, as the product's clients speak (no h2 in the binaries, issue 19).
            let builder = hyper::server::conn::http1::Builder::new();
            tokio::select! {
                _ = builder.serve_connection(TokioIo::new(tls), svc) => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}
