//! Shared helpers: the fixture world, a `kubectl` runner with its own cache dir, raw HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use pressure_testkit::World;

pub(crate) const FIXTURES: &str = "testdata/nri-kubernetes";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURES)
        .join(name)
}

/// The Pods and Nodes captured from a kubernetes v1.35 minikube cluster (see the fixture README).
pub(crate) fn fixture_world() -> World {
    let mut w = World::from_path(&fixture("apiserver_pods_1_35.yaml")).expect("pods fixture");
    w.extend(World::from_path(&fixture("apiserver_nodes_1_35.yaml")).expect("nodes fixture"));
    w
}

/// `kubectl` when installed; skipped with the reason otherwise, failed under CI.
pub(crate) fn kubectl_path() -> Option<PathBuf> {
    pressure_testkit::require("kubectl tests", &pressure_testkit::Capability::KUBECTL).flatten()
}

/// Runs `kubectl` against one server with a private discovery cache.
pub(crate) struct Kubectl {
    bin: PathBuf,
    base: Vec<String>,
    _cache: tempfile::TempDir,
}

impl Kubectl {
    pub(crate) fn new(bin: PathBuf, server: &str) -> Self {
        let cache = tempfile::tempdir().expect("tempdir");
        let base = vec![
            format!("--server={server}"),
            format!("--cache-dir={}", cache.path().display()),
            "--request-timeout=20s".into(),
        ];
        Self {
            bin,
            base,
            _cache: cache,
        }
    }

    pub(crate) fn with_args(mut self, args: &[&str]) -> Self {
        self.base.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bin);
        c.args(&self.base)
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .kill_on_drop(true);
        c
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Output {
        let fut = self.command(args).output();
        tokio::time::timeout(Duration::from_secs(60), fut)
            .await
            .expect("kubectl finished in time")
            .expect("kubectl ran")
    }

    /// Runs and asserts success; returns stdout.
    pub(crate) async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

/// Sends one raw HTTP/1.1 request and returns everything read until the server closes or `timeout`.
pub(crate) fn raw_http(url: &str, request: &str, timeout: Duration) -> std::io::Result<String> {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}
