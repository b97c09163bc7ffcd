//! Issue 18: the per-container gauges on `/metrics` of the real binary — node mode over a real memcg
//! pod grown to a real kernel OOM kill, cluster mode against the fake API server (on only with
//! `metrics.container_gauges`) — and the exposition checked by `promtool check metrics` where promtool
//! is installed (Debian `prometheus`; skipped with a reason elsewhere, failed under CI).

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pressure_testkit::{
    Capability, ContainerUsage, HogSpec, KubeletV1Pod, World, require, require_v1_memcg,
};
use serde_json::{Value, json};

use crate::system_cgroup::{Pressured, config_file};

/// The body of `GET /metrics` at `address`.
pub(crate) fn scrape(address: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).expect("connect /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// The value of `metric` for the series whose labels contain `labels` (e.g. `pod="x"`).
pub(crate) fn value(body: &str, metric: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(labels))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
}

/// Scrapes until `ok` holds for the body; panics with the last body after `timeout`.
fn scrape_until(address: &str, timeout: Duration, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let body = scrape(address);
        if ok(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never; last scrape:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `promtool check metrics` on an exposition: no complaints (naming, help, units).
pub(crate) fn promtool_accepts(test: &str, body: &str) {
    let Some(promtool) = require(test, &Capability::PROMTOOL) else {
        return;
    };
    let promtool = promtool.expect("a program's path");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\non:\n{body}"
    );
}

/// The bound metrics address from the log line `serving /metrics … address=…`.
fn metrics_address(pressured: &mut Pressured) -> String {
    pressured.wait_log("serving /metrics", Duration::from_secs(20));
    let line = pressured.stderr_seen.last().expect("the line").clone();
    line.split("address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line}"))
        .to_string()
}

#[test]
fn issue_18_node_mode_exports_per_container_gauges_through_a_real_oom_kill() {
    const TEST: &str = "issue_18_node_mode_exports_per_container_gauges_through_a_real_oom_kill";
    let Some(root) = require_v1_memcg(TEST) else {
        return;
    };
    let limit: u64 = 128 << 20;
    let config = crate::system_cgroup::config("node", 100);
    let file = config_file(&config);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pressured"));
    cmd.arg("-c")
        .arg(file.path())
        .args(["--metrics-bind-address", "127.0.0.1:0"]);
    let mut pressured = Pressured::spawn(cmd, file, &[("NODE_NAME", "node-a")]);
    let address = metrics_address(&mut pressured);
    pressured.wait_log("watching", Duration::from_secs(20));
    let mut pod = KubeletV1Pod::create(&root, "burstable", limit).expect("pod");
    pressured.wait_log(&pod.container_id, Duration::from_secs(20));
    // Without the API the pod is named by its UID and the container by its ID.
    let labels = format!(
        r#"namespace="",pod="{}",container="{}""#,
        pod.pod_uid, pod.container_id
    );
    let body = scrape_until(&address, Duration::from_secs(10), "the limit gauge", |b| {
        value(b, "pressured_container_memory_limit_bytes", &labels).is_some()
    });
    assert_eq!(
        value(&body, "pressured_container_memory_limit_bytes", &labels),
        Some(limit as f64)
    );
    assert_eq!(
        value(&body, "pressured_container_severity", &labels),
        Some(0.0)
    );
    assert_eq!(
        value(&body, "pressured_container_oom_kills_total", &labels),
        Some(0.0)
    );

    // Grow to the kill: while the rise is announced, the ETA gauge is there.
    let spec = HogSpec {
        step_bytes: 2 << 20,
        ..HogSpec::four_mib_per_100ms()
    };
    let mut hog = pressure_testkit::Hog::spawn_in(&pod.procs(), spec).expect("hog");
    let id = pod.container_id.clone();
    let predicted = pressured.events_until(&pod.pod_uid, Duration::from_secs(30), |e| {
        e["event_type"] == "predicted_oom" && e["container_id"] == id.as_str()
    });
    let announced = predicted
        .last()
        .filter(|(_, e)| e["event_type"] == "predicted_oom")
        .map(|(_, e)| e["eta_seconds"].as_f64().expect("eta"))
        .expect("predicted_oom before the kill");
    let body = scrape_until(&address, Duration::from_secs(3), "the ETA gauge", |b| {
        value(b, "pressured_container_predicted_oom_seconds", &labels).is_some()
    });
    let eta = value(&body, "pressured_container_predicted_oom_seconds", &labels).expect("eta");
    eprintln!("predicted_oom announced {announced:.1} s; the gauge then read {eta:.1} s");
    assert!(
        eta > 0.0 && eta < 2.0 * announced + 1.0,
        "{eta} vs {announced}"
    );
    let ratio = value(&body, "pressured_container_memory_usage_ratio", &labels).expect("ratio");
    let ws = value(&body, "pressured_container_working_set_bytes", &labels).expect("ws");
    assert!((ratio - ws / limit as f64).abs() < 1e-9, "{ratio} vs {ws}");
    assert!(ratio > 0.3, "{ratio}");
    promtool_accepts(TEST, &body);

    let killed = pressured.events_until(&pod.pod_uid, Duration::from_secs(30), |e| {
        e["event_type"] == "oom_killed" && e["container_id"] == id.as_str()
    });
    assert!(
        killed.iter().any(|(_, e)| e["event_type"] == "oom_killed"),
        "{killed:?}"
    );
    let _ = hog.wait_timeout(Duration::from_secs(5));
    let body = scrape_until(&address, Duration::from_secs(3), "the kill counted", |b| {
        value(b, "pressured_container_oom_kills_total", &labels) >= Some(1.0)
    });
    promtool_accepts(TEST, &body);

    // The pod goes: its series go (three cycles, then the next refresh).
    pod.remove();
    scrape_until(
        &address,
        Duration::from_secs(10),
        "the series dropped",
        |b| !b.contains(&pod.pod_uid),
    );
    let status = pressured.terminate().expect("pressured stops on SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn issue_18_cluster_mode_gauges_only_with_the_config_key() {
    const TEST: &str = "issue_18_cluster_mode_gauges_only_with_the_config_key";
    const MIB: u64 = 1 << 20;
    let (_rt, server) = crate::util::start_server(World::synthetic(1, 2));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let start = |gauges: Option<bool>| {
        let mut cfg = json!({
            "source": {"mode": "cluster", "poll_interval_ms": 100},
            "thresholds": {"predict_seconds": 0},
        });
        if let Some(on) = gauges {
            cfg["metrics"] = json!({"container_gauges": on});
        }
        let config = dir.path().join(format!("config-{gauges:?}.json"));
        std::fs::write(&config, cfg.to_string()).expect("config");
        crate::util::spawn(
            Command::new(env!("CARGO_BIN_EXE_pressured"))
                .args(["-c", config.to_str().unwrap_or_default()])
                .args([
                    "--metrics-bind-address",
                    "127.0.0.1:0",
                    "--log-format",
                    "json",
                ])
                .env("KUBECONFIG", &kubeconfig)
                .env("RUST_LOG", "info")
                .env("POD_NAME", "pressured-test"),
        )
    };
    let address = |running: &crate::util::Running| {
        let line = crate::util::wait_log(&running.log, "serving /metrics");
        let v: Value = serde_json::from_str(&line).expect("a JSON log line");
        v["fields"]["address"]
            .as_str()
            .expect("address")
            .to_string()
    };
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(192 * MIB),
    );
    let labels = r#"namespace="ns-0",pod="pod-0-0",container="app""#;

    // On: the warn event comes, and the gauges name the container.
    let on = start(Some(true));
    let addr = address(&on);
    crate::util::next_event(&on.events, "warn", |e| {
        e["pod_name"] == "pod-0-0" && e["severity"] == "warn"
    });
    let body = scrape_until(&addr, Duration::from_secs(5), "cluster gauges", |b| {
        value(b, "pressured_container_severity", labels) == Some(1.0)
    });
    assert_eq!(
        value(&body, "pressured_container_working_set_bytes", labels),
        Some((192 * MIB) as f64)
    );
    assert_eq!(
        value(&body, "pressured_container_memory_limit_bytes", labels),
        Some((256 * MIB) as f64)
    );
    assert_eq!(
        value(&body, "pressured_container_memory_usage_ratio", labels),
        Some(0.75)
    );
    promtool_accepts(TEST, &body);
    drop(on);

    // Default in cluster mode: off. The same warn proves the poller ran before the scrape.
    let off = start(None);
    let addr = address(&off);
    crate::util::next_event(&off.events, "warn", |e| {
        e["pod_name"] == "pod-0-0" && e["severity"] == "warn"
    });
    let body = scrape(&addr);
    assert!(body.contains("pressured_build_info"), "{body}");
    assert!(!body.contains("pressured_container_"), "{body}");
}
