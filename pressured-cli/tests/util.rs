//! What the tests that run `pressured` against the fake API server share: the process (killed on
//! drop), its events as they arrive, and the server on its own runtime.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pressure_testkit::{FakeApiServer, World};
use serde_json::Value;

/// A running `pressured`, killed when dropped (also when the test fails).
pub(crate) struct Pressured(pub(crate) Child);

impl Drop for Pressured {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started `pressured`: its JSON events and its log lines (also echoed to the test's stderr).
pub(crate) struct Running {
    pub(crate) process: Pressured,
    pub(crate) events: mpsc::Receiver<Value>,
    pub(crate) log: mpsc::Receiver<String>,
}

/// Starts `cmd` (a `pressured` command line) with stdout and stderr piped.
pub(crate) fn spawn(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pressured");
    let (stdout, stderr) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let (log_tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("pressured: {line}");
            let _ = log_tx.send(line);
        }
    });
    let (tx, events) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    Running {
        process: Pressured(child),
        events,
        log,
    }
}

/// Waits (at most 30 s) for the next event matching `pred`, skipping others.
pub(crate) fn next_event(
    rx: &mpsc::Receiver<Value>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what} event in time"));
        if pred(&ev) {
            return ev;
        }
    }
}

/// Starts the fake API server on its own runtime, which must live as long as the server.
pub(crate) fn start_server(world: World) -> (tokio::runtime::Runtime, FakeApiServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(FakeApiServer::start(world)).expect("server");
    (rt, server)
}

/// Waits (at most 30 s) for a log line containing `needle`; returns it.
pub(crate) fn wait_log(log: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line with {needle:?} in time"));
        if line.contains(needle) {
            return line;
        }
    }
}
