//! `pressured` cluster mode against the fake API server, for what a real one cannot do: the loop keeps
//! going through injected faults (500, 429 with Retry-After, dropped connections, latency). The happy
//! paths (leader election, an OOM kill before any reading, Events) run against the real API server in
//! `k8s_real_apiserver.rs`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pressure_testkit::{ContainerUsage, FakeApiServer, Fault, FaultRule, World};
use serde_json::{Value, json};

use crate::util::{Pressured, next_event, spawn, start_server};

const MIB: u64 = 1 << 20;

fn is(ev: &Value, pod: &str, ty: &str, severity: &str) -> bool {
    ev["pod_name"] == pod && ev["event_type"] == ty && ev["severity"] == severity
}

#[test]
fn cluster_mode_events_from_usage_and_pod_status_through_faults() {
    // 3 nodes x 4 pods in ns-0..ns-3; the filter keeps ns-0 and ns-1.
    let (_rt, server) = start_server(World::synthetic(3, 4));
    assert!(
        server.update_pod("ns-1", "pod-1-1", |p| p["metadata"]["annotations"] =
            json!({"pressured.io/warn-percent": "40"}))
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = dir.path().join("config.json");
    let cfg = json!({
        "source": {"mode": "cluster", "poll_interval_ms": 100, "kubelet": {"namespace_filter": "ns-0, ns-1"}},
        "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 600, "predict_seconds": 0},
    });
    std::fs::write(&config, cfg.to_string()).expect("config");
    let running = spawn(
        Command::new(env!("CARGO_BIN_EXE_pressured"))
            .args(["-c", config.to_str().unwrap_or_default()])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "info")
            .env("POD_NAME", "pressured-test"),
    );
    let (_p, rx) = (running.process, running.events);

    // 75% of 256Mi: warn for the pod on node 0.
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(192 * MIB),
    );
    let warn = next_event(&rx, "warn", |e| is(e, "pod-0-0", "memory_pressure", "warn"));
    assert_eq!(warn["namespace"], "ns-0");
    assert_eq!(warn["node_name"], "node-0");
    assert_eq!(warn["pod_ip"], "10.100.0.1");
    assert_eq!(warn["container_name"], "app");
    assert_eq!(warn["limit_bytes"], 256 * MIB);
    assert!(warn["pod_uid"].as_str().is_some_and(|u| !u.is_empty()));

    // The annotation override: warn at 40%, so 45% warns for pod-1-1 only.
    server.set_usage(
        "ns-1",
        "pod-1-1",
        "app",
        ContainerUsage::working_set(116 * MIB),
    );
    let over = next_event(&rx, "override warn", |e| {
        is(e, "pod-1-1", "memory_pressure", "warn")
    });
    assert_eq!(over["annotations"]["pressured.io/warn-percent"], "40");
    assert_eq!(over["node_name"], "node-1");

    // Faults: node-2's summaries fail (500, then 429, then dropped connections) while node-0 goes
    // critical: its event is not held up.
    server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("nodes/node-2/proxy")
            .times(3),
    );
    server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 1,
        })
        .path_contains("nodes/node-2/proxy")
        .times(2),
    );
    server.add_fault(
        FaultRule::new(Fault::DropConnection)
            .path_contains("nodes/node-2/proxy")
            .times(2),
    );
    server.add_fault(
        FaultRule::new(Fault::Latency(Duration::from_secs(3)))
            .path_contains("nodes/node-1/proxy")
            .times(1),
    );
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(230 * MIB),
    );
    let t = Instant::now();
    let crit = next_event(&rx, "critical", |e| {
        is(e, "pod-0-0", "memory_pressure", "critical")
    });
    assert!(crit["usage_percent"].as_f64().is_some_and(|p| p > 85.0));
    eprintln!("critical after {:?} despite a 3 s slow node", t.elapsed());

    // ns-2 is filtered out: no events for it even when high.
    server.set_usage(
        "ns-2",
        "pod-0-2",
        "app",
        ContainerUsage::working_set(250 * MIB),
    );
    // node-2 recovers from its faults and reports too.
    server.set_usage(
        "ns-0",
        "pod-2-0",
        "app",
        ContainerUsage::working_set(200 * MIB),
    );
    let _ = next_event(&rx, "warn after faults", |e| {
        is(e, "pod-2-0", "memory_pressure", "warn")
    });

    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(20 * MIB),
    );
    let rec = next_event(&rx, "recovered", |e| {
        e["pod_name"] == "pod-0-0" && e["event_type"] == "recovered"
    });
    assert_eq!(rec["severity"], "ok");

    // OOMKilled in pod status: oom_killed, the first kill counts.
    assert!(server.update_pod("ns-1", "pod-2-1", |p| {
        let cs = &mut p["status"]["containerStatuses"][0];
        cs["restartCount"] = json!(1);
        cs["lastState"] = json!({"terminated": {"reason": "OOMKilled", "exitCode": 137, "containerID": "containerd://dead", "finishedAt": "2026-01-01T00:00:00Z"}});
    }));
    let oom = next_event(&rx, "oom_killed", |e| {
        e["pod_name"] == "pod-2-1" && e["event_type"] == "oom_killed"
    });
    assert_eq!(oom["namespace"], "ns-1");
    assert_eq!(oom["oom_kill_count"], 1);

    // Kubernetes Events for critical and oom_killed, on the right pods.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let evs = server.events();
        let has = |reason: &str, pod: &str| {
            evs.iter()
                .any(|e| e["reason"] == reason && e["involvedObject"]["name"] == pod)
        };
        if has("MemoryPressureCritical", "pod-0-0") && has("OOMKilled", "pod-2-1") {
            assert!(
                evs.iter()
                    .all(|e| e["involvedObject"]["namespace"] != "ns-2")
            );
            assert!(
                evs.iter()
                    .all(|e| e["reportingComponent"] == "pressure.dev/pressured")
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Kubernetes Events missing: {evs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every event came from one watch-fed cache: pods were listed once per namespace, not per cycle.
    let lists = server
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /api/v1/namespaces/")
                && r.contains("/pods?")
                && !r.contains("watch=true")
        })
        .count();
    assert!(lists <= 4, "pods relisted {lists} times");
    while let Ok(ev) = rx.try_recv() {
        assert_ne!(ev["namespace"], "ns-2", "filtered namespace leaked: {ev}");
    }
}

/// Requests for `node`'s summary so far.
fn summary_requests(server: &FakeApiServer, node: &str) -> usize {
    let needle = format!("/nodes/{node}/proxy/stats/summary");
    server
        .requests()
        .iter()
        .filter(|r| r.contains(&needle))
        .count()
}

#[test]
fn cluster_mode_leaves_a_429_node_alone_for_its_retry_after() {
    let (_rt, server) = start_server(World::synthetic(2, 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = dir.path().join("config.json");
    let cfg = json!({
        "source": {"mode": "cluster", "poll_interval_ms": 100},
        "thresholds": {"predict_seconds": 0},
        "kubernetes": {"events": false},
    });
    std::fs::write(&config, cfg.to_string()).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_pressured"))
        .args(["-c", config.to_str().unwrap_or_default()])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pressured");
    let _p = Pressured(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while summary_requests(&server, "node-1") < 3 {
        assert!(Instant::now() < deadline, "node-1 is never polled");
        std::thread::sleep(Duration::from_millis(10));
    }
    // node-1's next summary answers 429 with Retry-After: 3.
    let before = summary_requests(&server, "node-1");
    let node0_before = summary_requests(&server, "node-0");
    let added = Instant::now();
    server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 3,
        })
        .path_contains("/nodes/node-1/proxy")
        .times(1),
    );
    // The refused request, then the next one: not before the 3 s are up (polling is every 100 ms).
    while summary_requests(&server, "node-1") < before + 2 {
        assert!(
            added.elapsed() < Duration::from_secs(10),
            "node-1 is not polled again after its Retry-After"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let waited = added.elapsed();
    assert!(
        waited >= Duration::from_millis(2900),
        "node-1 re-requested {waited:?} after a 429 with Retry-After: 3"
    );
    // node-0 kept being polled meanwhile.
    let node0 = summary_requests(&server, "node-0") - node0_before;
    assert!(node0 >= 10, "only {node0} node-0 summaries in {waited:?}");
}
