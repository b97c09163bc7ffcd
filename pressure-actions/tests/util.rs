//! Test helpers: a real HTTP server on 127.0.0.1, events, configs, dispatch-and-wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use pressure_actions::{DispatchConfig, Dispatcher, ShutdownReport};
use pressure_core::{Event, EventType, Severity};

/// One request the server saw.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

#[derive(Default)]
struct ServerState {
    seen: Mutex<Vec<Seen>>,
    flaky: AtomicU64,
}

/// A real HTTP server on 127.0.0.1:<ephemeral>, stopped when dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        let state = Arc::new(ServerState::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer { addr, state, task }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub(crate) fn seen_path(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    state.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    });
    let resp = |status: u16, body: Body| {
        Response::builder()
            .status(status)
            .header("x-test", "yes")
            .body(body)
            .unwrap()
    };
    match path.as_str() {
        "/hello" => resp(200, Body::from("hello world")),
        "/echo" => resp(200, Body::from(body)),
        "/redirect" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "/hello")
            .body(Body::empty())
            .unwrap(),
        // 307 to the URL given as the whole query string (`/r307?http://other/x`).
        "/r307" => Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header("location", uri.query().unwrap_or("/"))
            .body(Body::empty())
            .unwrap(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            resp(200, Body::from("late"))
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            resp(200, Body::empty())
        }
        "/big" => {
            // 1 MiB in 64 KiB chunks, bytes i % 251.
            let chunks = (0..16).map(|c| {
                let v: Vec<u8> = (0..65536).map(|i| ((c * 65536 + i) % 251) as u8).collect();
                Ok::<_, std::io::Error>(Bytes::from(v))
            });
            resp(200, Body::from_stream(futures::stream::iter(chunks)))
        }
        "/flaky" => {
            // Fails twice, then succeeds.
            if state.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
                resp(503, Body::from("try again"))
            } else {
                resp(200, Body::from("ok"))
            }
        }
        "/missing" => resp(404, Body::from("no")),
        "/bad-request" => resp(400, Body::from("no")),
        _ => resp(200, Body::from("ok")),
    }
}

/// The bytes `/big` serves.
pub(crate) fn big_body() -> Vec<u8> {
    (0..16 * 65536).map(|i| (i % 251) as u8).collect()
}

/// A critical memory_pressure event of `default/app-0/app`.
pub(crate) fn event() -> Event {
    Event {
        timestamp: SystemTime::now(),
        event_type: EventType::MemoryPressure,
        severity: Severity::Critical,
        previous_severity: Severity::Warn,
        target: Arc::new(pressure_core::Target {
            namespace: Some("default".into()),
            pod_name: Some("app-0".into()),
            pod_uid: Some("0f1e2d3c-aaaa-bbbb-cccc-123456789abc".into()),
            container_name: Some("app".into()),
            container_id: Some("containerd://abc".into()),
            node_name: Some("node-a".into()),
            pod_ip: Some("127.0.0.1".into()),
            annotations: BTreeMap::from([("team".to_string(), "core".to_string())]).into(),
            ..pressure_core::Target::default()
        }),
        usage_bytes: Some(900 << 20),
        working_set_bytes: Some(880 << 20),
        limit_bytes: Some(1000 << 20),
        usage_percent: Some(88.0),
        oom_kill_count: Some(0),
        eta_seconds: None,
        psi_some_avg10: Some(1.5),
        dry_run: false,
        profile: None,
    }
}

/// Parses a config from JSON built with `serde_json::json!`.
pub(crate) fn config(v: serde_json::Value) -> DispatchConfig {
    DispatchConfig::from_json(&v.to_string()).unwrap()
}

/// Builds a dispatcher, submits the events, shuts down (30 s deadline).
pub(crate) async fn run(config: &DispatchConfig, events: Vec<Event>) -> ShutdownReport {
    let d = Dispatcher::builder(config).build().unwrap();
    for e in events {
        assert!(d.submit(e));
    }
    d.shutdown(Duration::from_secs(30)).await
}

/// Panics with the failures unless there are none.
pub(crate) fn assert_no_failures(report: &ShutdownReport) {
    assert!(report.drained, "{report:?}");
    assert!(
        report.failures.is_empty(),
        "failures: {:#?}",
        report.failures
    );
    assert_eq!(report.stats.failures, 0, "{report:?}");
}

/// `rclone serve s3` on 127.0.0.1 over a temp dir (the bucket is a subdirectory), killed on drop.
pub(crate) struct Rclone {
    child: std::process::Child,
    pub(crate) endpoint: String,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: &'static str,
    pub(crate) secret: &'static str,
}

impl Drop for Rclone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rclone {
    /// Starts the server with bucket `bucket`; `None` (test skipped) when rclone is missing outside CI.
    pub(crate) fn start(bucket: &str) -> Option<Rclone> {
        pressure_testkit::require("the S3 tests", &pressure_testkit::Capability::RCLONE)?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(bucket)).unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (key, secret) = ("pressuretestkey", "pressuretestsecret");
        let child = std::process::Command::new("rclone")
            .arg("serve")
            .arg("s3")
            .arg(dir.path())
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--auth-key")
            .arg(format!("{key},{secret}"))
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start rclone");
        let server = Rclone {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
            key,
            secret,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("rclone serve s3 did not listen on {port}");
    }

    /// An S3 storage on this server (path-style, explicit credentials).
    pub(crate) fn storage(
        &self,
        bucket: &str,
        prefix: &str,
        secret: &str,
    ) -> pressure_actions::ObjectStorage {
        let s3 = pressure_actions::S3Config {
            bucket: Some(bucket.to_string()),
            region: Some("us-east-1".into()),
            prefix: Some(prefix.to_string()),
            endpoint: Some(self.endpoint.clone()),
            path_style: true,
        };
        let builder = object_store::aws::AmazonS3Builder::new()
            .with_access_key_id(self.key)
            .with_secret_access_key(secret);
        pressure_actions::ObjectStorage::s3_from_builder(&s3, builder).unwrap()
    }
}
