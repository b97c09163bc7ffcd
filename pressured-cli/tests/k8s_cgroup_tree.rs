//! Node and sidecar modes with the API against a cgroup v2 tree written to a temp dir (the files and
//! formats the kernel writes), so they run anywhere: node mode posts Kubernetes Events on the pod, and
//! the sidecar names its containers from its own pod's status.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pressure_testkit::{World, synthetic_node, synthetic_pod, unique_container_id, unique_pod_uid};
use serde_json::{Value, json};

use crate::util::{Pressured, next_event, spawn, start_server, wait_log};

const MIB: u64 = 1 << 20;

/// Writes the memory files of one v2 cgroup: `memory.current` = `usage`, `memory.max` = `limit`.
pub(crate) fn write_v2_cgroup(dir: &Path, usage: u64, limit: u64) {
    std::fs::create_dir_all(dir).expect("mkdir cgroup");
    let files = [
        ("memory.current", format!("{usage}\n")),
        ("memory.max", format!("{limit}\n")),
        (
            "memory.stat",
            format!("anon {usage}\nfile 0\nactive_file 0\ninactive_file 0\n"),
        ),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n".to_owned(),
        ),
        (
            "memory.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                .to_owned(),
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write cgroup file");
    }
}

/// A v2 hierarchy (cgroupfs driver) with one burstable pod and its container, both at `usage`.
pub(crate) fn v2_tree(
    root: &Path,
    pod_uid: &str,
    container_id: &str,
    usage: u64,
    limit: u64,
) -> PathBuf {
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .expect("cgroup.controllers");
    let pod = root.join(format!("kubepods/burstable/pod{pod_uid}"));
    write_v2_cgroup(&pod, usage, limit);
    let container = pod.join(container_id);
    write_v2_cgroup(&container, usage, limit);
    container
}

/// Starts `pressured` with `config` and `env`; its JSON events arrive on the first channel, its log
/// lines on the second (and on the test's stderr).
fn start(
    config: &Path,
    env: &[(&str, &str)],
) -> (Pressured, mpsc::Receiver<Value>, mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pressured"));
    cmd.args(["-c", config.to_str().unwrap_or_default()])
        .env_remove("POD_UID")
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let running = spawn(&mut cmd);
    (running.process, running.events, running.log)
}

/// Writes `memory.events` of a v2 cgroup with one OOM kill, in place at the same length as
/// [`write_v2_cgroup`] wrote it, as the kernel's files change: a truncating write could be read empty
/// in between (a cgroup file never is) and drop the cgroup until the next rescan.
fn write_one_oom_kill(dir: &Path) {
    use std::io::Write as _;
    let mut events = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("memory.events"))
        .expect("open memory.events");
    events
        .write_all(b"low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
        .expect("memory.events");
}

fn config_file(dir: &Path, mode: &str, cgroup_root: &Path, extra: Value) -> PathBuf {
    let mut cfg = json!({
        "source": {"mode": mode, "poll_interval_ms": 100, "cgroup": {"path": cgroup_root}},
        "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 600, "predict_seconds": 0},
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    let path = dir.join("config.json");
    std::fs::write(&path, cfg.to_string()).expect("config");
    path
}

/// A pod of `node` whose only container `app` runs as `container_id`.
fn pod_with_container(ns: &str, name: &str, uid: &str, node: &str, container_id: &str) -> Value {
    let mut pod = synthetic_pod(ns, name, uid, node, "10.44.0.9");
    pod["status"]["containerStatuses"][0]["containerID"] =
        json!(format!("containerd://{container_id}"));
    pod
}

#[test]
fn node_mode_posts_kubernetes_events_on_the_pod() {
    let (uid, cid) = (unique_pod_uid(), unique_container_id());
    let world = World::new()
        .with(synthetic_node("node-t", "10.44.0.1"))
        .with(pod_with_container("shop", "cart-1", &uid, "node-t", &cid));
    let (_rt, server) = start_server(world);
    let dir = tempfile::tempdir().expect("tempdir");
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    // 90 % of 256 MiB from the start: critical at once.
    let container = v2_tree(&cg_root, &uid, &cid, 230 * MIB, 256 * MIB);
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = config_file(dir.path(), "node", &cg_root, json!({}));
    let (_p, rx, log) = start(
        &config,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("NODE_NAME", "node-t"),
            ("POD_NAME", "pressured-node-t"),
        ],
    );
    // The twin of the dry-run test's readiness line: with it on, the Events below arrive.
    wait_log(&log, "Kubernetes Events: on");
    let crit = next_event(&rx, "critical", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "critical"
    });
    assert_eq!(crit["pod_name"], "cart-1", "{crit}");
    assert_eq!(crit["container_name"], "app");

    // The Kubernetes Event on the pod: reason, type, the pod and container it regards.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ev = loop {
        // The container's Event (the pod cgroup, also at 90 %, gets one without a fieldPath).
        if let Some(ev) = server.events().into_iter().find(|e| {
            e["reason"] == "MemoryPressureCritical"
                && e["involvedObject"]["fieldPath"] == "spec.containers{app}"
        }) {
            break ev;
        }
        assert!(
            Instant::now() < deadline,
            "no Kubernetes Event: {:?}",
            server.events()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ev["type"], "Warning", "{ev}");
    // Stored in the core/v1 form (`involvedObject`), as the real API server does.
    let regarding = &ev["involvedObject"];
    assert_eq!(regarding["kind"], "Pod", "{ev}");
    assert_eq!(regarding["name"], "cart-1");
    assert_eq!(regarding["namespace"], "shop");
    assert_eq!(regarding["uid"], uid.as_str());
    assert_eq!(regarding["fieldPath"], "spec.containers{app}");
    assert_eq!(ev["reportingComponent"], "pressure.dev/pressured", "{ev}");
    assert!(
        ev["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("container app at 89.8% of its 256 MiB limit")),
        "{ev}"
    );
    let pod_level = server.events().into_iter().find(|e| {
        e["reason"] == "MemoryPressureCritical" && e["involvedObject"]["fieldPath"].is_null()
    });
    if let Some(p) = pod_level {
        assert!(
            p["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the pod at")),
            "{p}"
        );
    }
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("POST") && r.contains("events")),
        "{:?}",
        server.requests()
    );

    // An OOM kill in the cgroup: oom_killed, and its Event.
    write_one_oom_kill(&container);
    let oom = next_event(&rx, "oom_killed", |e| {
        e["container_id"] == cid.as_str() && e["event_type"] == "oom_killed"
    });
    assert_eq!(oom["pod_name"], "cart-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.events().iter().any(|e| e["reason"] == "OOMKilled") {
        assert!(
            Instant::now() < deadline,
            "no OOMKilled Event: {:?}",
            server.events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn node_mode_posts_no_kubernetes_events_in_dry_run() {
    let (uid, cid) = (unique_pod_uid(), unique_container_id());
    let world = World::new()
        .with(synthetic_node("node-d", "10.44.0.1"))
        .with(pod_with_container("shop", "cart-2", &uid, "node-d", &cid));
    let (_rt, server) = start_server(world);
    let dir = tempfile::tempdir().expect("tempdir");
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    v2_tree(&cg_root, &uid, &cid, 230 * MIB, 256 * MIB);
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = config_file(dir.path(), "node", &cg_root, json!({"dry_run": true}));
    let (_p, rx, log) = start(
        &config,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("NODE_NAME", "node-d"),
        ],
    );
    // Said once the pod watch is up and before the loop starts: no recorder exists, so no Event can
    // be posted later either (node_mode_posts_kubernetes_events_on_the_pod sees "on" and its Events).
    let line = wait_log(&log, "Kubernetes Events: ");
    assert!(
        line.contains("Kubernetes Events: off") && line.contains("dry_run=true"),
        "{line}"
    );
    let crit = next_event(&rx, "critical", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "critical"
    });
    // The name came through the same API client the Events would use: it works.
    assert_eq!(crit["pod_name"], "cart-2");
    assert!(server.events().is_empty(), "{:?}", server.events());
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.starts_with("POST") && r.contains("events")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn sidecar_names_its_containers_from_its_own_pod() {
    let (uid, cid, old) = (
        unique_pod_uid(),
        unique_container_id(),
        unique_container_id(),
    );
    let mut pod = pod_with_container("shop", "api-0", &uid, "node-s", &cid);
    // A second container known only by its previous instance (lastState), as after a restart.
    pod["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(
            json!({"name": "worker", "image": "x", "resources": {"limits": {"memory": "256Mi"}}}),
        );
    pod["status"]["containerStatuses"]
        .as_array_mut()
        .expect("statuses")
        .push(json!({"name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
            "containerID": "containerd://ffff", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "containerID": format!("containerd://{old}")}}}));
    let (_rt, server) = start_server(World::new().with(pod));
    let dir = tempfile::tempdir().expect("tempdir");
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    v2_tree(&cg_root, &uid, &cid, 200 * MIB, 256 * MIB);
    write_v2_cgroup(
        &cg_root.join(format!("kubepods/burstable/pod{uid}/{old}")),
        200 * MIB,
        256 * MIB,
    );
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = config_file(dir.path(), "cgroup", &cg_root, json!({}));
    let (_p, rx, _log) = start(
        &config,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("POD_UID", &uid),
            ("POD_NAME", "api-0"),
            ("POD_NAMESPACE", "shop"),
        ],
    );
    // Both warn in the same tick, in no particular order.
    let (mut app, mut worker) = (None, None);
    while app.is_none() || worker.is_none() {
        let e = next_event(&rx, "warn for app and worker", |e| e["severity"] == "warn");
        if e["container_id"] == cid.as_str() {
            app = Some(e);
        } else if e["container_id"] == old.as_str() {
            worker = Some(e);
        }
    }
    let (app, worker) = (app.expect("app"), worker.expect("worker"));
    assert_eq!(app["container_name"], "app", "{app}");
    assert_eq!(app["pod_name"], "api-0");
    assert_eq!(app["namespace"], "shop");
    assert_eq!(worker["container_name"], "worker", "{worker}");
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces/shop/pods/api-0")),
        "{:?}",
        server.requests()
    );

    // A container restarts under a new ID the first read did not list: the pod is read again.
    let fresh = unique_container_id();
    assert!(server.update_pod("shop", "api-0", |p| {
        p["status"]["containerStatuses"][0]["containerID"] = json!(format!("containerd://{fresh}"));
    }));
    let fresh_dir = cg_root.join(format!("kubepods/burstable/pod{uid}/{fresh}"));
    write_v2_cgroup(&fresh_dir, 10 * MIB, 256 * MIB);
    std::thread::sleep(Duration::from_millis(2500));
    write_v2_cgroup(&fresh_dir, 200 * MIB, 256 * MIB);
    let restarted = next_event(&rx, "warn for the restarted app", |e| {
        e["container_id"] == fresh.as_str() && e["severity"] == "warn"
    });
    assert_eq!(restarted["container_name"], "app", "{restarted}");
    let gets = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/namespaces/shop/pods/api-0"))
        .count();
    assert!((2..=4).contains(&gets), "{gets} reads of the own pod");
    // The sidecar posts no Kubernetes Events (no RBAC for them is asked of it).
    assert!(server.events().is_empty());
}

#[test]
fn sidecar_without_access_to_its_pod_keeps_container_ids() {
    let (uid, cid) = (unique_pod_uid(), unique_container_id());
    // The API server does not know the pod: the GET is a 404, as a missing RBAC grant would be a 403.
    let (_rt, server) = start_server(World::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    v2_tree(&cg_root, &uid, &cid, 200 * MIB, 256 * MIB);
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let config = config_file(dir.path(), "cgroup", &cg_root, json!({}));
    let (_p, rx, _log) = start(
        &config,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("POD_UID", &uid),
            ("POD_NAME", "gone-0"),
            ("POD_NAMESPACE", "shop"),
        ],
    );
    let warn = next_event(&rx, "warn", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "warn"
    });
    assert!(warn["container_name"].is_null(), "{warn}");
    assert_eq!(warn["pod_name"], "gone-0", "the downward API name stays");
}

#[test]
fn node_mode_goes_on_without_a_live_api_server() {
    let (uid, cid) = (unique_pod_uid(), unique_container_id());
    let (rt, server) = start_server(World::new().with(synthetic_node("node-x", "10.44.0.1")));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    // The server goes away before pressured starts: every API call is refused.
    drop(server);
    drop(rt);
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    let container = v2_tree(&cg_root, &uid, &cid, 230 * MIB, 256 * MIB);
    let config = config_file(dir.path(), "node", &cg_root, json!({}));
    let (mut p, rx, log) = start(
        &config,
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap_or_default()),
            ("NODE_NAME", "node-x"),
        ],
    );
    // Events still flow, identified by the cgroup (UID, container ID), and posting their
    // Kubernetes Events fails quietly.
    let crit = next_event(&rx, "critical", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "critical"
    });
    assert_eq!(crit["pod_uid"], uid.as_str());
    assert!(crit["pod_name"].is_null(), "{crit}");
    // The pod watch has failed against the refused connection (and retries) ...
    wait_log(&log, "pod watch failed");
    // ... and the loop still samples afterwards: an OOM kill written now is reported.
    write_one_oom_kill(&container);
    next_event(&rx, "oom_killed after the failed pod watch", |e| {
        e["container_id"] == cid.as_str() && e["event_type"] == "oom_killed"
    });
    assert!(
        p.0.try_wait().expect("try_wait").is_none(),
        "pressured exited without an API server"
    );
}
