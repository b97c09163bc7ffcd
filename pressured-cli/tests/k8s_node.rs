//! Node mode with the API: a real kubelet-shaped v1 memcg whose pod the fake API server holds; the
//! events of that cgroup carry the pod's name, namespace, IP and annotations, and the pod's
//! `pressured.io/warn-percent` override applies.

use std::process::Command;
use std::time::{Duration, Instant};

use pressure_testkit::{
    Hog, HogSpec, KubeletV1Pod, World, require_v1_memcg, synthetic_node, synthetic_pod,
};
use serde_json::{Value, json};

use crate::util::{spawn, start_server};

#[test]
fn node_mode_events_carry_pod_names_ip_and_annotation_overrides() {
    let Some(root) =
        require_v1_memcg("node_mode_events_carry_pod_names_ip_and_annotation_overrides")
    else {
        return;
    };
    let cg = KubeletV1Pod::create(&root, "burstable", 64 << 20).expect("pod cgroup");
    let mut pod = synthetic_pod("shop", "web-7", &cg.pod_uid, "k8s-node-a", "10.44.0.7");
    pod["metadata"]["annotations"] = json!({"pressured.io/warn-percent": "30"});
    pod["status"]["containerStatuses"][0]["containerID"] =
        json!(format!("containerd://{}", cg.container_id));
    let world = World::new()
        .with(synthetic_node("k8s-node-a", "10.44.0.1"))
        .with(pod);
    let (_rt, server) = start_server(world);
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"source": {"mode": "node", "cgroup": {"path": "/sys/fs/cgroup", "poll_interval_ms": 100}}, "thresholds": {"predict_seconds": 0}}"#).expect("config");
    let running = spawn(
        Command::new(env!("CARGO_BIN_EXE_pressured"))
            .args(["-c", config.to_str().unwrap_or_default()])
            .env("KUBECONFIG", &kubeconfig)
            .env("NODE_NAME", "k8s-node-a")
            .env_remove("POD_UID"),
    );
    let (_p, rx) = (running.process, running.events);
    // Started once it logs what it watches.
    let ready_by = Instant::now() + Duration::from_secs(30);
    loop {
        let line = running
            .log
            .recv_timeout(ready_by.saturating_duration_since(Instant::now()))
            .expect("pressured started");
        if line.contains("watching") && line.contains("cgroups") {
            break;
        }
    }
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.contains("fieldSelector=spec.nodeName%3Dk8s-node-a")),
        "{:?}",
        server.requests()
    );
    let mut hog = Hog::spawn_in(&cg.procs(), HogSpec::four_mib_per_100ms()).expect("hog");
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut warn = None;
    let mut oom = None;
    while oom.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev: Value = rx
            .recv_timeout(left)
            .expect("events for the pod before the deadline");
        if ev["pod_uid"] != cg.pod_uid.as_str() {
            continue;
        }
        match ev["event_type"].as_str() {
            Some("memory_pressure") if warn.is_none() => warn = Some(ev),
            Some("oom_killed") => oom = Some(ev),
            _ => {}
        }
    }
    let _ = hog.wait_timeout(Duration::from_secs(5));
    let warn = warn.expect("a warn before the kill");
    assert_eq!(warn["severity"], "warn");
    assert!(
        warn["usage_percent"]
            .as_f64()
            .is_some_and(|p| (30.0..70.0).contains(&p)),
        "the 30% override applies: {warn}"
    );
    for ev in [&warn, oom.as_ref().expect("oom")] {
        assert_eq!(ev["pod_name"], "web-7", "{ev}");
        assert_eq!(ev["namespace"], "shop");
        assert_eq!(ev["pod_ip"], "10.44.0.7");
        assert_eq!(ev["node_name"], "k8s-node-a");
        assert_eq!(ev["container_name"], "app");
        assert_eq!(ev["container_id"], cg.container_id.as_str());
        assert_eq!(ev["annotations"]["pressured.io/warn-percent"], "30");
    }
}
