//! Runs the real `oom-tracer --no-kubernetes` against a real memcg OOM kill (root, cgroup v1).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pressure_testkit::{Hog, HogExit, HogSpec, KubeletV1Pod, require_v1_memcg};

/// The tracer process; killed on drop.
struct Tracer(Child);

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn version_flag_prints_the_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_oom-tracer"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("oom-tracer {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn kubernetes_mode_without_node_name_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_oom-tracer"))
        .env_remove("K8S_NODENAME")
        .env_remove("NODE_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node_name"));
}

#[test]
fn no_kubernetes_prints_a_real_kill_and_counts_it() {
    let Some(root) = require_v1_memcg("no_kubernetes_prints_a_real_kill_and_counts_it") else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_oom-tracer"))
        .args(["--no-kubernetes", "--metrics_bind_address", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oom-tracer");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _tracer = Tracer(child);

    // The port from the log; the kill lines from stdout.
    let (port_tx, port_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("oom-tracer: {line}");
            if let Some(p) = line.split("address=127.0.0.1:").nth(1) {
                let _ = port_tx.send(p.trim().parse::<u16>().unwrap_or(0));
            }
        }
    });
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("metrics endpoint address in the log");
    assert_eq!(http_get(port, "/readyz").0, 200);
    assert_eq!(http_get(port, "/healthz").0, 200);

    let pod = KubeletV1Pod::create(&root, "burstable", 32 << 20).expect("pod cgroup");
    let mut hog = Hog::spawn_in(&pod.procs(), HogSpec::four_mib_per_100ms()).expect("hog");
    let pid = hog.pid();
    assert_eq!(
        hog.wait_timeout(Duration::from_secs(60)).unwrap(),
        Some(HogExit::Signaled(libc_sigkill()))
    );

    let kill = loop {
        let line = line_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("a JSON line for the kill");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        if v["pid"] == pid {
            break v;
        }
    };
    assert_eq!(kill["kind"], "memcg");
    assert_eq!(kill["pod_uid"], pod.pod_uid.as_str());
    assert_eq!(kill["container_id"], pod.container_id.as_str());
    assert_eq!(kill["qos"], "Burstable");
    assert_eq!(kill["source"], "bpf");
    for key in [
        "tgid",
        "comm",
        "uid",
        "constraint",
        "oom_memcg",
        "task_memcg",
        "cgroup_id",
        "rss_anon_kb",
        "rss_file_kb",
        "rss_shmem_kb",
        "trigger_pid",
        "trigger_comm",
        "timestamp",
    ] {
        assert!(kill.get(key).is_some(), "field {key} in {kill}");
    }

    let (code, metrics) = http_get(port, "/metrics");
    assert_eq!(code, 200);
    for want in [
        "oom_tracer_events_total{stage=\"observed\",reason=\"ebpf_capture\"}",
        "oom_tracer_kills_total{kind=\"memcg\"}",
        "oom_tracer_ringbuf_drops_total 0",
        "oom_tracer_build_info{",
        "oom_tracer_source_info{bpf=\"tp_btf\",kmsg=\"true\"} 1",
    ] {
        assert!(metrics.contains(want), "missing {want} in\n{metrics}");
    }
}

fn libc_sigkill() -> i32 {
    9
}
