//! `pressured` through a real kube-apiserver (pressure-testkit's control plane), authenticated as the
//! ServiceAccount its Helm chart creates for the mode and holding only the chart's rendered RBAC:
//! node mode over a real memcg OOM kill, cluster mode with two replicas electing a leader through a
//! real Lease and reading summaries through the node proxy, and sidecar mode reading its own pod.
//! Each scenario ends with the audit log: zero 403s, and only requests the chart grants.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pressure_testkit::{
    ContainerUsage, ControlPlane, Hog, HogSpec, KubeletV1Pod, granted_rules, require_control_plane,
    require_v1_memcg, used_requests, wait_for,
};
use serde_json::{Value, json};

use crate::util::{Running, next_event, spawn, wait_log};

const MIB: u64 = 1 << 20;

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/pressured")
}

/// The chart's RBAC for `values`, applied as release `ns` in `ns`; returns the rendered RBAC objects
/// and the workload's literal environment (`value:` entries; the downward-API ones a test sets).
pub(crate) fn install(
    cp: &ControlPlane,
    ns: &str,
    values: &Value,
) -> (Vec<Value>, Vec<(String, String)>, String) {
    let rbac = cp
        .apply_chart_rbac(&chart(), ns, ns, values)
        .expect("the chart's RBAC");
    let sa = ControlPlane::chart_service_account(&rbac).expect("the chart's ServiceAccount");
    let workloads =
        ControlPlane::render_chart(&chart(), ns, ns, values, &["Deployment", "DaemonSet"])
            .expect("render");
    let env = workloads
        .iter()
        .flat_map(|w| {
            w["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|c| c["name"] == "pressured")
        .flat_map(|c| c["env"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    (rbac, env, sa)
}

/// The chart's rendered `config.json` (its ConfigMap) for `values`, release `ns`.
fn chart_config(ns: &str, values: &Value) -> Value {
    let maps =
        ControlPlane::render_chart(&chart(), ns, ns, values, &["ConfigMap"]).expect("render");
    maps.iter()
        .find_map(|m| m["data"]["config.json"].as_str())
        .map(|c| serde_json::from_str(c).expect("the chart's config.json"))
        .expect("the chart's ConfigMap")
}

pub(crate) fn pressured(
    config: &Value,
    dir: &Path,
    kubeconfig: &Path,
    env: &[(String, String)],
    extra: &[(&str, &str)],
) -> Running {
    let path = dir.join(format!(
        "config-{}.json",
        pressure_testkit::unique_pod_uid()
    ));
    std::fs::write(&path, config.to_string()).expect("config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pressured"));
    cmd.arg("-c")
        .arg(&path)
        .env_remove("POD_UID")
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    spawn(&mut cmd)
}

pub(crate) fn create_pod(
    cp: &ControlPlane,
    ns: &str,
    name: &str,
    node: &str,
    limit: &str,
) -> Value {
    cp.create(
        &format!("/api/v1/namespaces/{ns}/pods"),
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1",
                "resources": {"limits": {"memory": limit}}}]},
        }),
    )
    .expect("create pod")
}

/// Patches the pod's status as a kubelet would: running, with `container_id`.
pub(crate) fn set_running(cp: &ControlPlane, ns: &str, name: &str, container_id: &str) {
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
        &json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": format!("containerd://{container_id}"),
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}),
    )
    .expect("status patch");
}

/// Reasons of the Events on pod `name` (events.k8s.io/v1).
fn event_reasons(cp: &ControlPlane, ns: &str, name: &str) -> BTreeSet<String> {
    cp.get(&format!("/apis/events.k8s.io/v1/namespaces/{ns}/events"))
        .expect("events")["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name)
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// After the binaries stopped (kube-apiserver 1.20 logs a watch when it ends): the ServiceAccount's
/// requests had no 403, every one is granted by the chart, and every grant not used is in
/// `documented` (a fallback or a path this scenario does not take). Returns what was used.
pub(crate) fn check_least_privilege(
    cp: &ControlPlane,
    ns: &str,
    sa: &str,
    rbac: &[Value],
    expect_watch: bool,
    documented: &[(&str, &str, &str)],
) -> BTreeSet<(String, String, String)> {
    let user = format!("system:serviceaccount:{ns}:{sa}");
    let events = wait_for("the audit log", Duration::from_secs(20), || {
        let events: Vec<Value> = cp
            .audit_events()
            .expect("audit log")
            .into_iter()
            .filter(|e| e["user"]["username"] == user.as_str())
            .collect();
        (!events.is_empty() && (!expect_watch || events.iter().any(|e| e["verb"] == "watch")))
            .then_some(events)
    });
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .collect();
    assert!(refused.is_empty(), "403s: {refused:#?}");
    let used = used_requests(&events);
    let granted = granted_rules(rbac);
    let beyond: Vec<_> = used.difference(&granted).collect();
    assert!(beyond.is_empty(), "used without a grant: {beyond:?}");
    let documented: BTreeSet<(String, String, String)> = documented
        .iter()
        .map(|(g, r, v)| ((*g).to_owned(), (*r).to_owned(), (*v).to_owned()))
        .collect();
    let unused: BTreeSet<_> = granted.difference(&used).cloned().collect();
    assert!(
        unused.is_subset(&documented),
        "granted but never used (drop them from the chart, or document why): {:?}; used: {used:?}",
        unused.difference(&documented).collect::<Vec<_>>()
    );
    used
}

/// Requests outside the role, refused for the ServiceAccount.
fn check_refused(cp: &ControlPlane, ns: &str, sa: &str, pod: &str) {
    let token = cp.service_account_token(ns, sa).expect("token");
    for (method, path, body) in [
        (
            "PATCH",
            format!("/api/v1/namespaces/{ns}/pods/{pod}"),
            r#"{"metadata":{"annotations":{"x":"y"}}}"#,
        ),
        ("GET", format!("/api/v1/namespaces/{ns}/secrets"), ""),
        ("GET", "/api/v1/secrets".to_owned(), ""),
    ] {
        let (code, _) = cp
            .request_with_token(
                &token,
                method,
                &path,
                "application/merge-patch+json",
                body.as_bytes(),
            )
            .expect("request");
        assert_eq!(code, 403, "{method} {path} must be refused");
    }
}

// Core/v1 Events are the fallback for API servers without events.k8s.io/v1; Event patches update
// a repeated Event's series (only the restart scenario repeats one).
pub(crate) const EVENT_FALLBACKS: [(&str, &str, &str); 3] = [
    ("", "events", "create"),
    ("", "events", "patch"),
    ("events.k8s.io", "events", "patch"),
];

#[test]
fn real_apiserver_node_mode_warns_predicts_and_reports_a_real_oom_kill_with_events() {
    const TEST: &str =
        "real_apiserver_node_mode_warns_predicts_and_reports_a_real_oom_kill_with_events";
    let Some(root) = require_v1_memcg(TEST) else {
        return;
    };
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pnode").expect("namespace");
    let node = format!("{ns}-node");
    let (rbac, env, sa) = install(cp, &ns, &json!({"mode": "node"}));
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let pod = create_pod(cp, &ns, "hungry", &node, "64Mi");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_owned();
    let cg = KubeletV1Pod::create_for(&root, "burstable", &uid, 64 * MIB).expect("cgroup");
    set_running(cp, &ns, "hungry", &cg.container_id);
    // The pod's own warn threshold (an annotation) and its IP, as the events must carry them.
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/hungry"),
        &json!({"metadata": {"annotations": {"pressured.io/warn-percent": "30"}}}),
    )
    .expect("annotate");
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/hungry/status"),
        &json!({"status": {"podIP": "10.44.0.7"}}),
    )
    .expect("pod IP");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({
        "source": {"mode": "node", "cgroup": {"path": "/sys/fs/cgroup", "poll_interval_ms": 100}},
        "thresholds": {"warn_percent": 60, "critical_percent": 80, "predict_seconds": 30,
                       "predict_window_seconds": 2, "cooldown_seconds": 600},
        // Debug names each container cgroup as node mode finds it.
        "log_level": "debug",
    });
    let run = pressured(
        &config,
        dir.path(),
        &kubeconfig,
        &env,
        &[
            ("NODE_NAME", &node),
            ("POD_NAME", "pressured-0"),
            ("POD_NAMESPACE", &ns),
        ],
    );
    wait_for(
        "pressured sees the container",
        Duration::from_secs(30),
        || {
            run.log
                .try_iter()
                .any(|l| l.contains(&cg.container_id))
                .then_some(())
        },
    );
    // 10 MiB/s: the 64 MiB fill in about 6 s, long enough for the prediction's evidence rule (a rise
    // of at least 3 s, MIN_RISE_SECONDS in pressure-core) before the kill.
    let spec = HogSpec {
        step_bytes: 1 << 20,
        interval: Duration::from_millis(100),
        max_bytes: None,
    };
    let mut hog = Hog::spawn_in(&cg.procs(), spec).expect("hog");
    let ours = |e: &Value| e["container_id"] == cg.container_id.as_str();
    let warn = next_event(&run.events, "warn", |e| ours(e) && e["severity"] == "warn");
    assert_eq!(
        warn["pod_name"], "hungry",
        "named from the real API server: {warn}"
    );
    assert!(
        warn["usage_percent"]
            .as_f64()
            .is_some_and(|p| (30.0..60.0).contains(&p)),
        "the pod's 30 % override applies, not the configured 60 %: {warn}"
    );
    next_event(&run.events, "critical", |e| {
        ours(e) && e["severity"] == "critical"
    });
    hog.wait_timeout(Duration::from_secs(60))
        .expect("wait")
        .expect("the hog was OOM-killed");
    let oom = next_event(&run.events, "oom_killed", |e| {
        ours(e) && e["event_type"] == "oom_killed"
    });
    for ev in [&warn, &oom] {
        assert_eq!(ev["pod_name"], "hungry", "{ev}");
        assert_eq!(ev["namespace"], ns.as_str());
        assert_eq!(ev["pod_uid"], uid.as_str());
        assert_eq!(ev["pod_ip"], "10.44.0.7");
        assert_eq!(ev["node_name"], node.as_str());
        assert_eq!(ev["container_name"], "app");
        assert_eq!(ev["annotations"]["pressured.io/warn-percent"], "30");
    }

    let reasons = wait_for("the Events on the pod", Duration::from_secs(20), || {
        let r = event_reasons(cp, &ns, "hungry");
        (r.contains("MemoryPressureCritical") && r.contains("OOMKilled")).then_some(r)
    });
    assert!(
        reasons.contains("PredictedOOM"),
        "predicted before the kill: {reasons:?}"
    );
    let describe = cp
        .kubectl()
        .args(["describe", "pod", "-n", &ns, "hungry"])
        .output()
        .expect("kubectl describe");
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(
        text.contains("MemoryPressureCritical") && text.contains("OOMKilled"),
        "{text}"
    );

    drop(run);
    check_least_privilege(cp, &ns, &sa, &rbac, true, &EVENT_FALLBACKS);
    check_refused(cp, &ns, &sa, "hungry");
}

fn lease_holder(cp: &ControlPlane, ns: &str, name: &str) -> Option<String> {
    let (code, body) = cp
        .request(
            "GET",
            &format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}"),
            "application/json",
            b"",
        )
        .expect("lease");
    if code != 200 {
        return None;
    }
    let lease: Value = serde_json::from_slice(&body).ok()?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

#[test]
fn real_apiserver_cluster_mode_two_replicas_one_leader_summaries_through_the_node_proxy() {
    const TEST: &str =
        "real_apiserver_cluster_mode_two_replicas_one_leader_summaries_through_the_node_proxy";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pclus").expect("namespace");
    let values = json!({"mode": "cluster", "replicaCount": 2});
    let (rbac, env, sa) = install(cp, &ns, &values);
    // The chart's leader election, from its rendered configuration (config keys, not env vars).
    let mut leader_election =
        chart_config(&ns, &values)["source"]["kubelet"]["leader_election"].clone();
    assert_eq!(
        leader_election["enabled"], true,
        "the chart turns leader election on for 2 replicas"
    );
    let lease = leader_election["lease_name"]
        .as_str()
        .expect("lease name")
        .to_owned();
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let nodes: Vec<_> = (0..2)
        .map(|i| cp.kubelet(&format!("{ns}-n{i}")).expect("kubelet stand-in"))
        .collect();
    let mut pods = Vec::new();
    for (i, k) in nodes.iter().enumerate() {
        let name = format!("web-{i}");
        create_pod(cp, &ns, &name, k.name(), "64Mi");
        set_running(cp, &ns, &name, &pressure_testkit::unique_container_id());
        let pod = cp
            .get(&format!("/api/v1/namespaces/{ns}/pods/{name}"))
            .expect("pod");
        k.set_pod(&pod, &[Some(ContainerUsage::working_set(8 * MIB))]);
        pods.push(pod);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    const LEASE_SECONDS: u64 = 4;
    leader_election["lease_duration_seconds"] = json!(LEASE_SECONDS);
    let config = json!({
        "source": {"mode": "cluster", "poll_interval_ms": 200,
                   "kubelet": {"namespace_filter": ns, "leader_election": leader_election}},
        "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 600,
                       "predict_seconds": 0},
    });
    let start = |name: &str| {
        let extra = [("POD_NAME", name), ("POD_NAMESPACE", ns.as_str())];
        pressured(&config, dir.path(), &kubeconfig, &env, &extra)
    };
    let a = start("replica-a");
    wait_for("replica-a holds the Lease", Duration::from_secs(30), || {
        (lease_holder(cp, &ns, &lease).as_deref() == Some("replica-a")).then_some(())
    });
    let b = start("replica-b");
    // Its first election round found the holder (its pod list is in by then): as ready as a standby gets.
    let standby = wait_log(&b.log, "standing by");
    assert!(standby.contains("replica-b"), "{standby}");

    // 56 of 64 MiB (87.5 %): critical, from the leader only, read through the node proxy.
    let before = nodes[0].summary_requests();
    nodes[0].set_pod(&pods[0], &[Some(ContainerUsage::working_set(56 * MIB))]);
    let crit = next_event(&a.events, "critical from the leader", |e| {
        e["pod_name"] == "web-0" && e["severity"] == "critical"
    });
    assert_eq!(crit["node_name"], nodes[0].name());
    assert_eq!(crit["namespace"], ns.as_str());
    assert!(
        nodes[0].summary_requests() > before,
        "summaries came through the node proxy"
    );
    assert_eq!(
        lease_holder(cp, &ns, &lease).as_deref(),
        Some("replica-a"),
        "one leader"
    );
    assert!(
        b.events.try_recv().is_err(),
        "the standby emits nothing while the leader polls"
    );

    // `oom_killed` from a pod status patch (the kubelet's lastState after a restart).
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/web-1/status"),
        &json!({"status": {"containerStatuses": [{
            "name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 1,
            "containerID": format!("containerd://{}", pressure_testkit::unique_container_id()),
            "state": {"running": {"startedAt": "2026-01-01T00:01:00Z"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:59Z"}}}]}}),
    )
    .expect("status patch");
    let oom = next_event(&a.events, "oom_killed from the status patch", |e| {
        e["pod_name"] == "web-1" && e["event_type"] == "oom_killed"
    });
    assert_eq!(oom["node_name"], nodes[1].name());

    // The leader stops without releasing the Lease: the standby takes over within the lease duration.
    let Running { process, .. } = a;
    let stopped = Instant::now();
    drop(process);
    wait_for(
        "replica-b takes the Lease",
        Duration::from_secs(LEASE_SECONDS * 3),
        || (lease_holder(cp, &ns, &lease).as_deref() == Some("replica-b")).then_some(()),
    );
    let took = stopped.elapsed();
    eprintln!("takeover after {took:?} (lease {LEASE_SECONDS} s)");
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 2),
        "takeover in {took:?}, lease {LEASE_SECONDS} s"
    );
    let crit = next_event(&b.events, "critical from the new leader", |e| {
        e["pod_name"] == "web-0" && e["severity"] == "critical"
    });
    assert_eq!(crit["node_name"], nodes[0].name());
    // It fed its engine nothing while standing by: its critical comes from ok.
    assert_eq!(crit["previous_severity"], "ok", "{crit}");

    drop(b);
    check_least_privilege(cp, &ns, &sa, &rbac, true, &EVENT_FALLBACKS);
    check_refused(cp, &ns, &sa, "web-0");
}

/// Issue 14 item 6: an OOM kill in pod status before any summary reading of the container (here its
/// node's kubelet reports no stats for it) is reported with usage and working set null, severity
/// unchanged (ok), and the Kubernetes Event names no working set.
#[test]
fn real_apiserver_an_oom_kill_before_any_reading_reports_no_usage() {
    const TEST: &str = "real_apiserver_an_oom_kill_before_any_reading_reports_no_usage";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pnoread").expect("namespace");
    let (_rbac, env, sa) = install(cp, &ns, &json!({"mode": "cluster"}));
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let node = cp.kubelet(&format!("{ns}-n0")).expect("kubelet stand-in");
    create_pod(cp, &ns, "quiet", node.name(), "256Mi");
    set_running(cp, &ns, "quiet", &pressure_testkit::unique_container_id());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({"source": {"mode": "cluster", "poll_interval_ms": 100,
                                   "kubelet": {"namespace_filter": ns}}});
    let run = pressured(
        &config,
        dir.path(),
        &kubeconfig,
        &env,
        &[("POD_NAME", "pressured-0"), ("POD_NAMESPACE", &ns)],
    );
    // Ready: the pod list is in (the kill below is news, not history) and a summary without the pod
    // has been read.
    wait_log(&run.log, "cluster mode: watching pods");
    wait_for("a summary request", Duration::from_secs(20), || {
        (node.summary_requests() > 0).then_some(())
    });
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/quiet/status"),
        &json!({"status": {"containerStatuses": [{
            "name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 1,
            "containerID": format!("containerd://{}", pressure_testkit::unique_container_id()),
            "state": {"running": {"startedAt": "2026-01-01T00:01:00Z"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:59Z"}}}]}}),
    )
    .expect("status patch");
    let oom = next_event(&run.events, "oom_killed", |e| {
        e["pod_name"] == "quiet" && e["event_type"] == "oom_killed"
    });
    assert!(oom["usage_bytes"].is_null(), "{oom}");
    assert!(oom["working_set_bytes"].is_null(), "{oom}");
    assert!(oom["usage_percent"].is_null(), "{oom}");
    assert_eq!(oom["severity"], "ok");
    assert_eq!(oom["previous_severity"], "ok");
    assert_eq!(oom["oom_kill_count"], 1);
    assert_eq!(oom["limit_bytes"], 256 * MIB);
    let events = wait_for("the OOMKilled Event", Duration::from_secs(20), || {
        let evs = kubectl_events(cp, &ns, "quiet", "OOMKilled");
        (!evs.is_empty()).then_some(evs)
    });
    assert_eq!(
        events[0]["note"],
        "container app was OOM-killed (256 MiB limit)"
    );
}

/// The Events (events.k8s.io/v1) on pod `name` with `reason`, read with kubectl as the admin.
fn kubectl_events(cp: &ControlPlane, ns: &str, name: &str, reason: &str) -> Vec<Value> {
    cp.events_about(ns, name)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// The findings of issue 15 through the real API server: a summary figure above the limit reads as
/// its real percentage; a summary pod the API server does not know is logged once, not per cycle; a
/// restarted `pressured` continues the same Event series instead of posting a new object.
#[test]
fn real_apiserver_cluster_mode_real_percent_unknown_pods_once_and_events_across_restarts() {
    const TEST: &str =
        "real_apiserver_cluster_mode_real_percent_unknown_pods_once_and_events_across_restarts";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pfind").expect("namespace");
    let (rbac, env, sa) = install(cp, &ns, &json!({"mode": "cluster"}));
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let node = cp.kubelet(&format!("{ns}-n0")).expect("kubelet stand-in");
    create_pod(cp, &ns, "big", node.name(), "64Mi");
    set_running(cp, &ns, "big", &pressure_testkit::unique_container_id());
    let pod = cp
        .get(&format!("/api/v1/namespaces/{ns}/pods/big"))
        .expect("pod");
    // The pod-level figure of a 64 MiB container: 500 MiB.
    node.set_pod(&pod, &[Some(ContainerUsage::working_set(500 * MIB))]);
    // A pod the node runs but the API server does not have (e.g. listed before its watch event).
    let ghost = json!({
        "metadata": {"name": "ghost", "namespace": ns, "uid": pressure_testkit::unique_pod_uid()},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
    });
    node.set_pod(&ghost, &[Some(ContainerUsage::working_set(8 * MIB))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({
        "source": {"mode": "cluster", "poll_interval_ms": 100,
                   "kubelet": {"namespace_filter": ns}},
        "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 600,
                       "predict_seconds": 0},
    });
    let extra = [("POD_NAME", "pressured-0"), ("POD_NAMESPACE", ns.as_str())];
    let first = pressured(&config, dir.path(), &kubeconfig, &env, &extra);

    let crit = next_event(&first.events, "critical of the big pod", |e| {
        e["pod_name"] == "big" && e["severity"] == "critical"
    });
    assert_eq!(crit["usage_percent"], 781.25, "500 MiB of 64 MiB: {crit}");

    let line = wait_log(&first.log, "not in the pod cache");
    assert!(line.contains("ghost"), "{line}");
    // A request to the node follows the previous one's processing (one in flight per node), so five
    // more requests mean at least four more summaries with the ghost in them were processed.
    let seen = node.summary_requests();
    wait_for("five more summaries", Duration::from_secs(20), || {
        (node.summary_requests() >= seen + 5).then_some(())
    });
    let again: Vec<String> = first
        .log
        .try_iter()
        .filter(|l| l.contains("not in the pod cache"))
        .collect();
    assert!(
        again.is_empty(),
        "logged once per pod, not per cycle: {again:?}"
    );

    let created = wait_for(
        "the MemoryPressureCritical Event",
        Duration::from_secs(20),
        || {
            let evs = kubectl_events(cp, &ns, "big", "MemoryPressureCritical");
            (!evs.is_empty()).then_some(evs)
        },
    );
    assert_eq!(created.len(), 1, "{created:#?}");
    let name = created[0]["metadata"]["name"].clone();
    drop(first);

    // A restart: the fresh engine reports critical again; the Event is the same object, count 2.
    let second = pressured(&config, dir.path(), &kubeconfig, &env, &extra);
    next_event(&second.events, "critical after the restart", |e| {
        e["pod_name"] == "big" && e["severity"] == "critical"
    });
    let folded = wait_for("the series count 2", Duration::from_secs(20), || {
        let evs = kubectl_events(cp, &ns, "big", "MemoryPressureCritical");
        (evs.len() == 1 && evs[0]["series"]["count"] == 2).then_some(evs)
    });
    assert_eq!(folded[0]["metadata"]["name"], name, "the same Event object");
    drop(second);
    check_least_privilege(cp, &ns, &sa, &rbac, true, &EVENT_FALLBACKS);
}

#[test]
fn real_apiserver_sidecar_reads_its_own_pod_with_the_sidecar_role_only() {
    const TEST: &str = "real_apiserver_sidecar_reads_its_own_pod_with_the_sidecar_role_only";
    let Some(root) = require_v1_memcg(TEST) else {
        return;
    };
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pside").expect("namespace");
    let (rbac, env, sa) = install(cp, &ns, &json!({"mode": "sidecar"}));
    assert!(
        rbac.iter().all(|o| o["kind"] != "ClusterRole"),
        "the sidecar gets no cluster-wide rights"
    );
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let pod = create_pod(cp, &ns, "api-0", &format!("{ns}-node"), "64Mi");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_owned();
    let cg = KubeletV1Pod::create_for(&root, "burstable", &uid, 64 * MIB).expect("cgroup");
    set_running(cp, &ns, "api-0", &cg.container_id);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({
        "source": {"mode": "cgroup", "cgroup": {"path": "/sys/fs/cgroup", "poll_interval_ms": 100}},
        "thresholds": {"warn_percent": 50, "critical_percent": 90, "predict_seconds": 0,
                       "cooldown_seconds": 600},
    });
    let run = pressured(
        &config,
        dir.path(),
        &kubeconfig,
        &env,
        &[
            ("POD_UID", &uid),
            ("POD_NAME", "api-0"),
            ("POD_NAMESPACE", &ns),
        ],
    );
    let mut hog = Hog::spawn_in(&cg.procs(), HogSpec::four_mib_per_100ms()).expect("hog");
    let warn = next_event(&run.events, "warn", |e| {
        e["container_id"] == cg.container_id.as_str() && e["severity"] == "warn"
    });
    assert_eq!(
        warn["container_name"], "app",
        "named from its own pod: {warn}"
    );
    assert_eq!(warn["pod_name"], "api-0");
    hog.kill();
    drop(run);
    let used = check_least_privilege(cp, &ns, &sa, &rbac, false, &[]);
    assert!(used.contains(&(String::new(), "pods".to_owned(), "get".to_owned())));
    check_refused(cp, &ns, &sa, "api-0");
}
