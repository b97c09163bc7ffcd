//! Node and sidecar modes with the API against a cgroup v2 tree written to a temp dir (the files and
//! formats the kernel writes), so they run without root or a v1 memcg: through a real kube-apiserver
//! (pressure-testkit's control plane) as the chart's ServiceAccount for the mode, node mode posts
//! Kubernetes Events on the pod (none in dry run), and the sidecar names its containers from its own
//! pod's status (and keeps container IDs when the API refuses it). With the fake API server only
//! what a real one cannot be made to do: an outage.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use pressure_testkit::{
    ControlPlane, World, require_control_plane, synthetic_node, unique_container_id,
    unique_pod_uid, wait_for,
};
use serde_json::{Value, json};

use crate::k8s_real_apiserver::{
    EVENT_FALLBACKS, check_least_privilege, create_pod, install, pressured, set_running,
};
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

/// The configuration of a test over the tree at `cgroup_root`, with `extra` top-level keys.
fn tree_config(mode: &str, cgroup_root: &Path, extra: Value) -> Value {
    let mut cfg = json!({
        "source": {"mode": mode, "poll_interval_ms": 100, "cgroup": {"path": cgroup_root}},
        "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 600, "predict_seconds": 0},
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    cfg
}

fn config_file(dir: &Path, mode: &str, cgroup_root: &Path, extra: Value) -> PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, tree_config(mode, cgroup_root, extra).to_string()).expect("config");
    path
}

/// The `events.k8s.io/v1` Events in `ns` (read as the admin).
fn events_in(cp: &ControlPlane, ns: &str) -> Vec<Value> {
    cp.get(&format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"))
        .expect("events")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The audit log's requests by ServiceAccount `ns/sa`.
fn requests_by(cp: &ControlPlane, ns: &str, sa: &str) -> Vec<Value> {
    let user = format!("system:serviceaccount:{ns}:{sa}");
    cp.audit_events()
        .expect("audit log")
        .into_iter()
        .filter(|e| e["user"]["username"] == user.as_str())
        .collect()
}

/// A pod `name` of `node` in the API server, running as `container_id`, and a v2 tree at `<dir>/cgroup`
/// with its pod and container cgroups at `usage` of 256 MiB. Returns the pod's UID, the tree's root and
/// the container's cgroup.
fn pod_and_tree(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    node: &str,
    container_id: &str,
    dir: &Path,
    usage: u64,
) -> (String, PathBuf, PathBuf) {
    let pod = create_pod(cp, ns, name, node, "256Mi");
    set_running(cp, ns, name, container_id);
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_owned();
    let cg_root = dir.join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    let container = v2_tree(&cg_root, &uid, container_id, usage, 256 * MIB);
    (uid, cg_root, container)
}

#[test]
fn real_apiserver_node_mode_posts_kubernetes_events_on_the_pod() {
    const TEST: &str = "real_apiserver_node_mode_posts_kubernetes_events_on_the_pod";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("ptree").expect("namespace");
    let node = format!("{ns}-node");
    let (rbac, env, sa) = install(cp, &ns, &json!({"mode": "node"}));
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let dir = tempfile::tempdir().expect("tempdir");
    let cid = unique_container_id();
    // 90 % of 256 MiB from the start: critical at once.
    let (uid, cg_root, container) =
        pod_and_tree(cp, &ns, "cart-1", &node, &cid, dir.path(), 230 * MIB);
    let run = pressured(
        &tree_config("node", &cg_root, json!({})),
        dir.path(),
        &kubeconfig,
        &env,
        &[
            ("NODE_NAME", &node),
            ("POD_NAME", "pressured-node-t"),
            ("POD_NAMESPACE", &ns),
        ],
    );
    // The twin of the dry-run test's readiness line: with it on, the Events below arrive.
    wait_log(&run.log, "Kubernetes Events: on");
    let crit = next_event(&run.events, "critical", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "critical"
    });
    assert_eq!(crit["pod_name"], "cart-1", "{crit}");
    assert_eq!(crit["container_name"], "app");

    // The Kubernetes Event on the pod: reason, type, the pod and container it regards.
    let ev = wait_for("the container's Event", Duration::from_secs(20), || {
        // The container's Event (the pod cgroup, also at 90 %, gets one without a fieldPath).
        events_in(cp, &ns).into_iter().find(|e| {
            e["reason"] == "MemoryPressureCritical"
                && e["regarding"]["fieldPath"] == "spec.containers{app}"
        })
    });
    assert_eq!(ev["type"], "Warning", "{ev}");
    let regarding = &ev["regarding"];
    assert_eq!(regarding["kind"], "Pod", "{ev}");
    assert_eq!(regarding["name"], "cart-1");
    assert_eq!(regarding["namespace"], ns.as_str());
    assert_eq!(regarding["uid"], uid.as_str());
    assert_eq!(ev["reportingController"], "pressure.dev/pressured", "{ev}");
    assert!(
        ev["note"]
            .as_str()
            .is_some_and(|m| m.starts_with("container app at 89.8% of its 256 MiB limit")),
        "{ev}"
    );
    let pod_level = events_in(cp, &ns)
        .into_iter()
        .find(|e| e["reason"] == "MemoryPressureCritical" && e["regarding"]["fieldPath"].is_null());
    if let Some(p) = pod_level {
        assert!(
            p["note"]
                .as_str()
                .is_some_and(|m| m.starts_with("the pod at")),
            "{p}"
        );
    }

    // An OOM kill in the cgroup: oom_killed, and its Event.
    write_one_oom_kill(&container);
    let oom = next_event(&run.events, "oom_killed", |e| {
        e["container_id"] == cid.as_str() && e["event_type"] == "oom_killed"
    });
    assert_eq!(oom["pod_name"], "cart-1");
    wait_for("the OOMKilled Event", Duration::from_secs(20), || {
        events_in(cp, &ns)
            .iter()
            .any(|e| e["reason"] == "OOMKilled" && e["regarding"]["name"] == "cart-1")
            .then_some(())
    });
    drop(run);
    check_least_privilege(cp, &ns, &sa, &rbac, true, &EVENT_FALLBACKS);
}

#[test]
fn real_apiserver_node_mode_posts_no_kubernetes_events_in_dry_run() {
    const TEST: &str = "real_apiserver_node_mode_posts_no_kubernetes_events_in_dry_run";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("ptreedry").expect("namespace");
    let node = format!("{ns}-node");
    let (_, env, sa) = install(cp, &ns, &json!({"mode": "node"}));
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let dir = tempfile::tempdir().expect("tempdir");
    let cid = unique_container_id();
    let (_, cg_root, _) = pod_and_tree(cp, &ns, "cart-2", &node, &cid, dir.path(), 230 * MIB);
    let run = pressured(
        &tree_config("node", &cg_root, json!({"dry_run": true})),
        dir.path(),
        &kubeconfig,
        &env,
        &[("NODE_NAME", &node), ("POD_NAMESPACE", &ns)],
    );
    // Said once the pod watch is up and before the loop starts: no recorder exists, so no Event can
    // be posted later either (the test above sees "on" and its Events).
    let line = wait_log(&run.log, "Kubernetes Events: ");
    assert!(
        line.contains("Kubernetes Events: off") && line.contains("dry_run=true"),
        "{line}"
    );
    let crit = next_event(&run.events, "critical", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "critical"
    });
    // The name came through the same API client the Events would use: it works.
    assert_eq!(crit["pod_name"], "cart-2");
    drop(run);
    assert!(events_in(cp, &ns).is_empty(), "{:?}", events_in(cp, &ns));
    let on_events: Vec<Value> = requests_by(cp, &ns, &sa)
        .into_iter()
        .filter(|e| e["objectRef"]["resource"] == "events")
        .collect();
    assert!(on_events.is_empty(), "{on_events:#?}");
}

#[test]
fn real_apiserver_sidecar_names_its_containers_from_its_own_pod() {
    const TEST: &str = "real_apiserver_sidecar_names_its_containers_from_its_own_pod";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("ptreeside").expect("namespace");
    let (_, env, sa) = install(cp, &ns, &json!({"mode": "sidecar"}));
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let (cid, old) = (unique_container_id(), unique_container_id());
    // A second container known only by its previous instance (lastState), as after a restart.
    let pod = cp
        .create(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-0", "namespace": ns},
                    "spec": {"nodeName": format!("{ns}-node"), "containers": [
                        {"name": "app", "image": "app:1", "resources": {"limits": {"memory": "256Mi"}}},
                        {"name": "worker", "image": "x", "resources": {"limits": {"memory": "256Mi"}}}]}}),
        )
        .expect("pod");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_owned();
    let statuses = |app_id: &str| {
        json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 0,
             "containerID": format!("containerd://{app_id}"), "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
            {"name": "worker", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
             "containerID": "containerd://ffff", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "containerID": format!("containerd://{old}"),
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}]}})
    };
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/api-0/status"),
        &statuses(&cid),
    )
    .expect("status");
    let dir = tempfile::tempdir().expect("tempdir");
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    v2_tree(&cg_root, &uid, &cid, 200 * MIB, 256 * MIB);
    write_v2_cgroup(
        &cg_root.join(format!("kubepods/burstable/pod{uid}/{old}")),
        200 * MIB,
        256 * MIB,
    );
    let run = pressured(
        &tree_config("cgroup", &cg_root, json!({})),
        dir.path(),
        &kubeconfig,
        &env,
        &[
            ("POD_UID", &uid),
            ("POD_NAME", "api-0"),
            ("POD_NAMESPACE", &ns),
        ],
    );
    // Both warn in the same tick, in no particular order.
    let (mut app, mut worker) = (None, None);
    while app.is_none() || worker.is_none() {
        let e = next_event(&run.events, "warn for app and worker", |e| {
            e["severity"] == "warn"
        });
        if e["container_id"] == cid.as_str() {
            app = Some(e);
        } else if e["container_id"] == old.as_str() {
            worker = Some(e);
        }
    }
    let (app, worker) = (app.expect("app"), worker.expect("worker"));
    assert_eq!(app["container_name"], "app", "{app}");
    assert_eq!(app["pod_name"], "api-0");
    assert_eq!(app["namespace"], ns.as_str());
    assert_eq!(worker["container_name"], "worker", "{worker}");

    // A container restarts under a new ID the first read did not list: the pod is read again.
    let fresh = unique_container_id();
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/api-0/status"),
        &statuses(&fresh),
    )
    .expect("status");
    let fresh_dir = cg_root.join(format!("kubepods/burstable/pod{uid}/{fresh}"));
    write_v2_cgroup(&fresh_dir, 10 * MIB, 256 * MIB);
    std::thread::sleep(Duration::from_millis(2500));
    write_v2_cgroup(&fresh_dir, 200 * MIB, 256 * MIB);
    let restarted = next_event(&run.events, "warn for the restarted app", |e| {
        e["container_id"] == fresh.as_str() && e["severity"] == "warn"
    });
    assert_eq!(restarted["container_name"], "app", "{restarted}");
    drop(run);
    let own_pod_reads = |events: &[Value]| {
        events
            .iter()
            .filter(|e| {
                e["verb"] == "get"
                    && e["objectRef"]["resource"] == "pods"
                    && e["objectRef"]["name"] == "api-0"
            })
            .count()
    };
    let gets = wait_for("the reads of its own pod", Duration::from_secs(20), || {
        let n = own_pod_reads(&requests_by(cp, &ns, &sa));
        (n >= 2).then_some(n)
    });
    assert!(gets <= 4, "{gets} reads of the own pod");
    // The sidecar posts no Kubernetes Events (no RBAC for them is asked of it).
    assert!(events_in(cp, &ns).is_empty());
}

#[test]
fn real_apiserver_sidecar_refused_its_pod_keeps_container_ids() {
    const TEST: &str = "real_apiserver_sidecar_refused_its_pod_keeps_container_ids";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("ptreedeny").expect("namespace");
    // A ServiceAccount without any role: reading its own pod is refused (403), as with RBAC missing.
    cp.create(
        &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody"}}),
    )
    .expect("ServiceAccount");
    let kubeconfig = cp
        .service_account_kubeconfig(&ns, "nobody")
        .expect("kubeconfig");
    let dir = tempfile::tempdir().expect("tempdir");
    let cid = unique_container_id();
    let (uid, cg_root, _) = pod_and_tree(
        cp,
        &ns,
        "gone-0",
        &format!("{ns}-node"),
        &cid,
        dir.path(),
        200 * MIB,
    );
    let run = pressured(
        &tree_config("cgroup", &cg_root, json!({})),
        dir.path(),
        &kubeconfig,
        &[],
        &[
            ("POD_UID", &uid),
            ("POD_NAME", "gone-0"),
            ("POD_NAMESPACE", &ns),
        ],
    );
    let warn = next_event(&run.events, "warn", |e| {
        e["container_id"] == cid.as_str() && e["severity"] == "warn"
    });
    assert!(warn["container_name"].is_null(), "{warn}");
    assert_eq!(warn["pod_name"], "gone-0", "the downward API name stays");
    drop(run);
    wait_for("the refused read", Duration::from_secs(20), || {
        requests_by(cp, &ns, "nobody")
            .iter()
            .any(|e| {
                e["verb"] == "get"
                    && e["objectRef"]["name"] == "gone-0"
                    && e["responseStatus"]["code"] == 403
            })
            .then_some(())
    });
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
