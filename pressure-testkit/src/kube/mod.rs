//! A real Kubernetes control plane for system tests: etcd and kube-apiserver on random 127.0.0.1
//! ports, RBAC on, service-account tokens, and kubelet stand-ins the node proxy reaches.
//!
//! The binaries come from `pressure-testkit/scripts/kube-apiserver.sh` (built from package
//! registries, cached outside the clone). [`ControlPlane::start`] makes a PKI with rcgen, starts
//! etcd, then kube-apiserver with `--authorization-mode=Node,RBAC`, waits for `/readyz`, and writes
//! an admin kubeconfig (`system:masters`, for setting the scene). The binaries under test get a
//! kubeconfig for a ServiceAccount's token ([`ControlPlane::service_account_kubeconfig`]) and so
//! only what their chart's RBAC grants. No controller-manager runs: no default ServiceAccounts, no
//! garbage collection, pods never run (their status is whatever a test patches in).
//!
//! [`ControlPlane::shared`] gives one control plane per test binary (tests use distinct namespaces);
//! it is stopped when the test process exits. Every child process also dies with the test process
//! (`PR_SET_PDEATHSIG`), and directories left by a killed run are removed by the next start.
//! [`require_control_plane`] is the capability guard: under CI a control plane that cannot be built
//! or started fails the test; elsewhere the test is skipped with the reason printed.

mod certs;
mod client;
mod kubelet;

use std::collections::BTreeSet;
use std::io::{BufRead, Read as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use certs::Pki;
use client::{Auth, Client};
pub use kubelet::KubeletStandIn;

/// Errors of the control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// The control plane binaries are not built (or the build script could not say where).
    #[error("kube-apiserver/etcd not built in {dir}: run {script} (about 5 min cold)")]
    NotBuilt {
        /// Where they were expected.
        dir: PathBuf,
        /// The build script.
        script: PathBuf,
    },
    /// A tool the tests need is missing.
    #[error("{0} not found on PATH")]
    MissingTool(&'static str),
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error("starting {what}: {source}")]
    Spawn {
        /// The program.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A process exited or did not become ready in time.
    #[error("{what} not ready: {reason}; last log lines:\n{log}")]
    NotReady {
        /// The program.
        what: String,
        /// Why.
        reason: String,
        /// The end of its log.
        log: String,
    },
    /// The certificates could not be made.
    #[error("making certificates: {0}")]
    Pki(String),
    /// A request to the API server failed or was refused.
    #[error("{method} {path}: {message}")]
    Api {
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// The status and body, or the transport error.
        message: String,
    },
    /// The shared control plane failed to start earlier in this process.
    #[error("the shared control plane failed to start: {0}")]
    Shared(String),
}

/// Polls `f` every 20 ms until it returns `Some` (a state the API server reaches on its own, e.g. a Lease
/// holder or an Event); panics naming `what` after `timeout`.
///
/// # Panics
/// When `timeout` passes first.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(apiGroup, resource[/subresource], verb)` of every rule of the ClusterRoles and Roles among
/// `objects` (a chart's render): what its ServiceAccount is granted.
#[must_use]
pub fn granted_rules(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    for o in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        for rule in o["rules"].as_array().into_iter().flatten() {
            for g in rule["apiGroups"].as_array().into_iter().flatten() {
                for r in rule["resources"].as_array().into_iter().flatten() {
                    for v in rule["verbs"].as_array().into_iter().flatten() {
                        out.insert((text(g), text(r), text(v)));
                    }
                }
            }
        }
    }
    out
}

/// `(apiGroup, resource[/subresource], verb)` of every request in `events` (audit log entries, see
/// [`ControlPlane::audit_events`]): what a client used, to compare with [`granted_rules`].
#[must_use]
pub fn used_requests(events: &[Value]) -> BTreeSet<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| {
            let r = &e["objectRef"];
            let resource = r["resource"].as_str()?;
            let resource = match r["subresource"].as_str() {
                Some(s) => format!("{resource}/{s}"),
                None => resource.to_owned(),
            };
            Some((
                r["apiGroup"].as_str().unwrap_or_default().to_owned(),
                resource,
                e["verb"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// For tests that need a real control plane: the shared one, or `None` after printing why the test
/// is skipped. Under CI (see [`crate::under_ci`]) a control plane that cannot be built or started fails the
/// test instead.
///
/// # Panics
/// Under CI when the control plane is unavailable.
#[must_use]
pub fn require_control_plane(test: &str) -> Option<&'static ControlPlane> {
    match ControlPlane::shared() {
        Ok(cp) => Some(cp),
        Err(reason) => {
            crate::skip_or_fail(test, &reason.to_string());
            None
        }
    }
}

/// Spawns `cmd` so that it dies with this process (`PR_SET_PDEATHSIG` = SIGKILL).
///
/// The death signal follows the *thread* that forked, so every child is forked by one thread that
/// lives as long as the process (a test thread ends with its test; a shared control plane must not).
fn spawn_kept(cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("control-plane-keeper".to_owned())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    use std::os::unix::process::CommandExt as _;
                    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the control-plane keeper thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("control-plane keeper thread gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("control-plane keeper thread gone"))?
}

/// A free TCP port on 127.0.0.1 (bound and released; the small race with another process is
/// covered by retrying the start).
fn free_port() -> Result<u16, KubeError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|source| KubeError::Io {
        path: "127.0.0.1:0".into(),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| KubeError::Io {
            path: "127.0.0.1:0".into(),
            source,
        })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KubeError + '_ {
    move |source| KubeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The last `n` lines of a log file.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes control plane directories of processes that no longer exist (a run killed before it could
/// clean up).
fn sweep_stale_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("pressure-kube-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A running etcd + kube-apiserver. Stopped (processes killed, directory removed) on drop.
pub struct ControlPlane {
    dir: PathBuf,
    addr: SocketAddr,
    pki: Pki,
    admin: Client,
    admin_kubeconfig: PathBuf,
    audit_log: PathBuf,
    children: Mutex<Vec<(String, Child)>>,
    /// The directory of the binaries.
    bin: PathBuf,
    /// etcd's client URL, once it runs.
    etcd_url: OnceLock<String>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// The build script of the control plane binaries.
    #[must_use]
    pub fn build_script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kube-apiserver.sh")
    }

    /// The directory holding `kube-apiserver` and `etcd`: `$PRESSURE_KUBE_BIN_DIR`, or the one the
    /// build script names for its current key.
    ///
    /// # Errors
    /// [`KubeError::NotBuilt`] when the binaries are not there.
    pub fn binaries() -> Result<PathBuf, KubeError> {
        let script = Self::build_script();
        let dir = match std::env::var_os("PRESSURE_KUBE_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let out = Command::new("bash")
                    .arg(&script)
                    .arg("--print-dir")
                    .output()
                    .map_err(|source| KubeError::Spawn {
                        what: script.display().to_string(),
                        source,
                    })?;
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        if dir.join("kube-apiserver").is_file() && dir.join("etcd").is_file() {
            Ok(dir)
        } else {
            Err(KubeError::NotBuilt { dir, script })
        }
    }

    /// Builds the binaries if they are missing (the build script; ~5 min cold), returning their
    /// directory.
    ///
    /// # Errors
    /// When the build fails.
    pub fn build() -> Result<PathBuf, KubeError> {
        let script = Self::build_script();
        let status = Command::new("bash")
            .arg(&script)
            .stdout(Stdio::null())
            .status()
            .map_err(|source| KubeError::Spawn {
                what: script.display().to_string(),
                source,
            })?;
        if !status.success() {
            return Err(KubeError::NotReady {
                what: script.display().to_string(),
                reason: format!("build failed ({status})"),
                log: String::new(),
            });
        }
        Self::binaries()
    }

    /// The control plane shared by every test of this process, started on first use and stopped
    /// when the process exits.
    ///
    /// # Errors
    /// Why it is not available (the same answer for every later call).
    pub fn shared() -> Result<&'static ControlPlane, KubeError> {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(Ok(cp)) = SHARED.get() {
                cp.stop();
            }
        }
        SHARED
            .get_or_init(|| {
                let started = ControlPlane::start().map_err(|e| e.to_string());
                if started.is_ok() {
                    // SAFETY: registers a plain function; it only kills children and removes files.
                    unsafe { libc::atexit(stop_shared) };
                }
                started
            })
            .as_ref()
            .map_err(|e| KubeError::Shared(e.clone()))
    }

    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    ///
    /// # Errors
    /// When the binaries are missing, a process cannot start, or it is not ready in time.
    pub fn start() -> Result<ControlPlane, KubeError> {
        let bin = Self::binaries()?;
        if Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            return Err(KubeError::MissingTool("kubectl"));
        }
        let base = std::env::temp_dir();
        sweep_stale_dirs(&base);
        let mut last = None;
        // A free port can be taken by someone else between probing and binding: try again.
        for _ in 0..3 {
            match Self::start_once(&bin, &base) {
                Ok(cp) => return Ok(cp),
                Err(e @ KubeError::NotReady { .. })
                    if e.to_string().contains("address already in use") =>
                {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(KubeError::Shared("no attempt".to_owned())))
    }

    fn start_once(bin: &Path, base: &Path) -> Result<ControlPlane, KubeError> {
        let dir = base.join(format!(
            "pressure-kube-{}-{}",
            std::process::id(),
            &crate::unique_container_id()[..12]
        ));
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let pki = certs::write_pki(&dir)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let admin = Client::new(
            addr,
            &pki.ca_der,
            Auth::Cert(pki.admin_cert_der.clone(), pki.admin_key_der.clone()),
        )
        .map_err(KubeError::Pki)?;
        let cp = ControlPlane {
            addr,
            admin,
            admin_kubeconfig: dir.join("admin.kubeconfig"),
            audit_log: dir.join("audit.log"),
            children: Mutex::new(Vec::new()),
            pki,
            dir,
            bin: bin.to_owned(),
            etcd_url: OnceLock::new(),
        };
        // On an error below, dropping `cp` kills what started and removes the directory.
        let etcd_url = cp.start_etcd(bin)?;
        let _ = cp.etcd_url.set(etcd_url);
        cp.start_apiserver()?;
        cp.write_kubeconfig(
            &cp.admin_kubeconfig,
            &format!(
                "    client-certificate: {}\n    client-key: {}\n",
                cp.pki.admin_cert.display(),
                cp.pki.admin_key.display()
            ),
        )?;
        Ok(cp)
    }

    fn spawn(&self, what: &str, mut cmd: Command) -> Result<PathBuf, KubeError> {
        let log = self.dir.join(format!("{what}.log"));
        // Appended: a restarted API server keeps the log of the one before.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err(&log))?;
        let err = file.try_clone().map_err(io_err(&log))?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        let child = spawn_kept(cmd).map_err(|source| KubeError::Spawn {
            what: what.to_owned(),
            source,
        })?;
        self.lock_children().push((what.to_owned(), child));
        Ok(log)
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, Vec<(String, Child)>> {
        self.children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(reason)` when the named child has exited.
    fn check_alive(&self, what: &str) -> Result<(), String> {
        let mut children = self.lock_children();
        for (name, child) in children.iter_mut() {
            if name == what
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exited ({status})"));
            }
        }
        Ok(())
    }

    /// Polls `ready` until it says yes, the process exits, or the deadline passes.
    fn wait_ready(
        &self,
        what: &str,
        log: &Path,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), KubeError> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            let reason = match self.check_alive(what) {
                Err(r) => r,
                Ok(()) if Instant::now() > deadline => format!("not ready after {timeout:?}"),
                Ok(()) => {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            return Err(KubeError::NotReady {
                what: what.to_owned(),
                reason,
                log: log_tail(log, 20),
            });
        }
    }

    fn start_etcd(&self, bin: &Path) -> Result<String, KubeError> {
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin.join("etcd"));
        cmd.arg("--name=testkit")
            .arg(format!("--data-dir={}", self.dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=testkit={peer_url}"))
            // Test data needs no durability; fsync per write costs seconds over a test run.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let log = self.spawn("etcd", cmd)?;
        self.wait_ready("etcd", &log, Duration::from_secs(30), || {
            etcd_healthy(client)
        })?;
        Ok(client_url)
    }

    fn start_apiserver(&self) -> Result<(), KubeError> {
        let (bin, etcd_url) = (&self.bin, self.etcd_url.get().map_or("", String::as_str));
        let policy = self.dir.join("audit-policy.yaml");
        // Metadata of every request: who did what to which resource, and the response code (the
        // least-privilege tests read it).
        std::fs::write(
            &policy,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )
        .map_err(io_err(&policy))?;
        let p = &self.pki;
        let mut cmd = Command::new(bin.join("kube-apiserver"));
        cmd.arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.addr.port()))
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", self.dir.join("certs").display()))
            .arg(format!("--tls-cert-file={}", p.serving_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                p.serving_key.display()
            ))
            .arg(format!("--client-ca-file={}", p.ca_cert.display()))
            // One API server, no Endpoints reconciliation: the `kubernetes` Service needs nothing.
            .arg("--endpoint-reconciler-type=none")
            .arg("--authorization-mode=Node,RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!("--service-account-key-file={}", p.sa_pub.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p.sa_key.display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/12")
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg(format!(
                "--kubelet-client-certificate={}",
                p.kubelet_client_cert.display()
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                p.kubelet_client_key.display()
            ))
            // No controller-manager runs, so no ServiceAccount `default` exists for pods to use.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg(format!("--audit-policy-file={}", policy.display()))
            .arg(format!("--audit-log-path={}", self.audit_log.display()))
            .arg("--profiling=false")
            .arg("--v=1");
        let log = self.spawn("kube-apiserver", cmd)?;
        self.wait_ready("kube-apiserver", &log, Duration::from_secs(120), || {
            matches!(
                self.admin.request("GET", "/readyz", "text/plain", b""),
                Ok((200, _))
            )
        })
    }

    fn write_kubeconfig(&self, path: &Path, user: &str) -> Result<(), KubeError> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testkit\n  cluster:\n    server: {}\n    certificate-authority: {}\ncontexts:\n- name: testkit\n  context:\n    cluster: testkit\n    user: testkit\n    namespace: default\ncurrent-context: testkit\nusers:\n- name: testkit\n  user:\n{user}",
            self.server(),
            self.pki.ca_cert.display()
        );
        std::fs::write(path, text).map_err(io_err(path))
    }

    /// The API server's URL, `https://127.0.0.1:PORT`.
    #[must_use]
    pub fn server(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The control plane's directory (certificates, logs, kubeconfigs, etcd data).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM) that signed the API server's certificate.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// A kubeconfig with `system:masters` rights (client certificate).
    #[must_use]
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// The `events.k8s.io/v1` Events about pod `name` in `ns`, read with kubectl as the admin.
    ///
    /// # Panics
    /// When kubectl fails or prints no JSON.
    #[must_use]
    pub fn events_about(&self, ns: &str, name: &str) -> Vec<Value> {
        let out = self
            .kubectl()
            .args(["get", "events.v1.events.k8s.io", "-n", ns, "-o", "json"])
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl json");
        list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["regarding"]["name"] == name)
            .collect()
    }

    /// `kubectl --kubeconfig <admin>`.
    #[must_use]
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(&self.admin_kubeconfig);
        c
    }

    /// Sends a request as the admin; returns the status code and body whatever the status.
    ///
    /// # Errors
    /// On a transport error.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), KubeError> {
        self.admin
            .request(method, path, content_type, body)
            .map_err(|message| KubeError::Api {
                method: method.to_owned(),
                path: path.to_owned(),
                message,
            })
    }

    /// Sends a request authenticated with a bearer `token` (e.g. a ServiceAccount's, to check what
    /// its role refuses); returns the status code and body whatever the status.
    ///
    /// # Errors
    /// On a transport error.
    pub fn request_with_token(
        &self,
        token: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), KubeError> {
        let api = |message: String| KubeError::Api {
            method: method.to_owned(),
            path: path.to_owned(),
            message,
        };
        Client::new(self.addr, &self.pki.ca_der, Auth::Token(token.to_owned()))
            .map_err(api)?
            .request(method, path, content_type, body)
            .map_err(api)
    }

    /// A JSON request as the admin that must succeed (2xx); returns the response object.
    ///
    /// # Errors
    /// On a transport error or a status other than 2xx (the status and body in the message).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<&Value>,
    ) -> Result<Value, KubeError> {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let (code, out) = self.request(method, path, content_type, bytes.as_bytes())?;
        if !(200..300).contains(&code) {
            return Err(KubeError::Api {
                method: method.to_owned(),
                path: path.to_owned(),
                message: format!("{code}: {}", String::from_utf8_lossy(&out)),
            });
        }
        serde_json::from_slice(&out).map_err(|e| KubeError::Api {
            method: method.to_owned(),
            path: path.to_owned(),
            message: format!("{code} but the body is not JSON: {e}"),
        })
    }

    /// `GET path` as the admin.
    ///
    /// # Errors
    /// See [`ControlPlane::call`].
    pub fn get(&self, path: &str) -> Result<Value, KubeError> {
        self.call("GET", path, "application/json", None)
    }

    /// `POST collection object` as the admin; returns the object as created.
    ///
    /// # Errors
    /// See [`ControlPlane::call`].
    pub fn create(&self, collection: &str, object: &Value) -> Result<Value, KubeError> {
        self.call("POST", collection, "application/json", Some(object))
    }

    /// A merge patch as the admin (`path` may end in `/status`).
    ///
    /// # Errors
    /// See [`ControlPlane::call`].
    pub fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, KubeError> {
        self.call("PATCH", path, "application/merge-patch+json", Some(patch))
    }

    /// Creates a namespace with a unique name starting with `prefix`; returns its name.
    ///
    /// # Errors
    /// See [`ControlPlane::call`].
    pub fn create_namespace(&self, prefix: &str) -> Result<String, KubeError> {
        let name = format!("{prefix}-{}", &crate::unique_container_id()[..8]);
        self.create(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        )?;
        Ok(name)
    }

    /// A token of ServiceAccount `ns/name` (TokenRequest API), valid for an hour.
    ///
    /// # Errors
    /// When the ServiceAccount does not exist or the request fails.
    pub fn service_account_token(&self, ns: &str, name: &str) -> Result<String, KubeError> {
        let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token");
        let resp = self.create(
            &path,
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600}}),
        )?;
        resp.pointer("/status/token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| KubeError::Api {
                method: "POST".to_owned(),
                path,
                message: format!("no status.token in {resp}"),
            })
    }

    /// Writes a kubeconfig authenticating as ServiceAccount `ns/name` (a TokenRequest token) whose
    /// default namespace is `ns`; returns its path.
    ///
    /// # Errors
    /// See [`ControlPlane::service_account_token`]; or when the file cannot be written.
    pub fn service_account_kubeconfig(&self, ns: &str, name: &str) -> Result<PathBuf, KubeError> {
        let token = self.service_account_token(ns, name)?;
        let path = self.dir.join(format!("sa-{ns}-{name}.kubeconfig"));
        self.write_kubeconfig(&path, &format!("    token: {token}\n"))?;
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        std::fs::write(
            &path,
            text.replace(
                "    namespace: default\n",
                &format!("    namespace: {ns}\n"),
            ),
        )
        .map_err(io_err(&path))?;
        Ok(path)
    }

    /// `kubectl apply -f -` of a YAML or JSON document as the admin.
    ///
    /// # Errors
    /// When kubectl fails (its stderr in the message).
    pub fn apply(&self, manifest: &str) -> Result<(), KubeError> {
        use std::io::Write as _;
        let mut child = self
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| KubeError::Spawn {
                what: "kubectl".to_owned(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(manifest.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|source| KubeError::Spawn {
                what: "kubectl".to_owned(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(KubeError::Api {
                method: "kubectl apply".to_owned(),
                path: "-".to_owned(),
                message: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Renders Helm chart `chart` (a directory) as release `release` in `namespace` with `values`,
    /// keeping the objects of `kinds` (all when empty). Runs `scripts/render-chart.sh`
    /// (helm-python-sdk in the venv `scripts/check-charts.sh` uses).
    ///
    /// # Errors
    /// When the render fails (its stderr in the message).
    pub fn render_chart(
        chart: &Path,
        release: &str,
        namespace: &str,
        values: &Value,
        kinds: &[&str],
    ) -> Result<Vec<Value>, KubeError> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/render-chart.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(chart)
            .args([release, namespace, &values.to_string()])
            .args(kinds)
            .output()
            .map_err(|source| KubeError::Spawn {
                what: script.display().to_string(),
                source,
            })?;
        let fail = |message: String| KubeError::Api {
            method: "helm template".to_owned(),
            path: chart.display().to_string(),
            message,
        };
        if !out.status.success() {
            return Err(fail(String::from_utf8_lossy(&out.stderr).into_owned()));
        }
        let list: Value = serde_json::from_slice(&out.stdout).map_err(|e| fail(e.to_string()))?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Applies the RBAC objects of a chart's render (ServiceAccount, Role, ClusterRole and their
    /// bindings; nothing hand-written) as the admin; returns them.
    ///
    /// # Errors
    /// When the render or `kubectl apply` fails.
    pub fn apply_chart_rbac(
        &self,
        chart: &Path,
        release: &str,
        namespace: &str,
        values: &Value,
    ) -> Result<Vec<Value>, KubeError> {
        let objects = Self::render_chart(
            chart,
            release,
            namespace,
            values,
            &[
                "ServiceAccount",
                "Role",
                "ClusterRole",
                "RoleBinding",
                "ClusterRoleBinding",
            ],
        )?;
        self.apply(&json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string())?;
        Ok(objects)
    }

    /// The name of the ServiceAccount among a chart's rendered objects (what
    /// [`apply_chart_rbac`](Self::apply_chart_rbac) returns); `None` when it renders none.
    #[must_use]
    pub fn chart_service_account(objects: &[Value]) -> Option<String> {
        objects
            .iter()
            .find(|o| o["kind"] == "ServiceAccount")
            .and_then(|o| o["metadata"]["name"].as_str())
            .map(str::to_owned)
    }

    /// Every audit event logged so far (one JSON object per request, level Metadata).
    ///
    /// # Errors
    /// When the audit log cannot be read.
    pub fn audit_events(&self) -> Result<Vec<Value>, KubeError> {
        let file = std::fs::File::open(&self.audit_log).map_err(io_err(&self.audit_log))?;
        Ok(std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }

    /// Registers Node `name` and starts its kubelet stand-in (HTTPS on a distinct 127.0.0.x address,
    /// set as the Node's InternalIP and kubelet port) serving the Summary API of the pods it is given.
    ///
    /// # Errors
    /// When the server cannot bind or the Node cannot be created.
    pub fn kubelet(&self, name: &str) -> Result<KubeletStandIn, KubeError> {
        KubeletStandIn::start(self, name)
    }

    /// The process ID of kube-apiserver (for CPU and RSS figures), while it runs.
    #[must_use]
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.lock_children()
            .iter()
            .find(|(name, _)| name == "kube-apiserver")
            .map(|(_, c)| c.id())
    }

    /// Stops kube-apiserver (SIGKILL, like a crash: open connections are reset and its port refuses
    /// new ones) while etcd keeps running and keeps the state: a real API server outage. Start it
    /// again with [`ControlPlane::restart_apiserver`]. Use a control plane of the test's own
    /// ([`ControlPlane::start`]), not the shared one other tests use.
    ///
    /// # Errors
    /// When it is not running.
    pub fn stop_apiserver(&self) -> Result<(), KubeError> {
        let mut child = {
            let mut children = self.lock_children();
            let at = children
                .iter()
                .position(|(name, _)| name == "kube-apiserver")
                .ok_or_else(|| KubeError::NotReady {
                    what: "kube-apiserver".to_owned(),
                    reason: "not running".to_owned(),
                    log: String::new(),
                })?;
            children.remove(at).1
        };
        let _ = child.kill();
        let _ = child.wait();
        Ok(())
    }

    /// Starts kube-apiserver again on the same address, with the same flags and certificates (so
    /// every kubeconfig and token stays valid), and waits until it is ready.
    ///
    /// # Errors
    /// When it is already running, or does not start or become ready.
    pub fn restart_apiserver(&self) -> Result<(), KubeError> {
        if self.apiserver_pid().is_some() {
            return Err(KubeError::NotReady {
                what: "kube-apiserver".to_owned(),
                reason: "already running".to_owned(),
                log: String::new(),
            });
        }
        self.start_apiserver()
    }

    /// A real outage of `length`: [`ControlPlane::stop_apiserver`], wait, then
    /// [`ControlPlane::restart_apiserver`]. Returns the time the API server was unreachable until
    /// ready again.
    ///
    /// # Errors
    /// See the two.
    pub fn apiserver_outage(&self, length: Duration) -> Result<Duration, KubeError> {
        let down = Instant::now();
        self.stop_apiserver()?;
        std::thread::sleep(length);
        self.restart_apiserver()?;
        Ok(down.elapsed())
    }

    /// Kills the processes and removes the directory (also done on drop).
    pub fn stop(&self) {
        let mut children = std::mem::take(&mut *self.lock_children());
        // The API server first, so it does not log etcd errors while going down.
        children.reverse();
        for (_, child) in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether etcd at `127.0.0.1:port` answers `/health` with `"health":"true"`.
fn etcd_healthy(port: u16) -> bool {
    use std::io::Write as _;
    let Ok(mut s) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.take(64 << 10).read_to_string(&mut out);
    out.contains("\"health\":\"true\"")
}
