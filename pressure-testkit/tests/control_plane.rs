//! The real control plane itself: RBAC enforced on ServiceAccount tokens, the charts' RBAC applied
//! from their render, and the Summary API of a kubelet stand-in through the API server's node proxy.

use std::path::Path;

use pressure_testkit::{ContainerUsage, ControlPlane, require_control_plane};
use serde_json::{Value, json};

fn charts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts")
}

fn pod(ns: &str, name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1",
            "resources": {"limits": {"memory": "64Mi"}}}]},
    })
}

#[test]
fn summary_through_the_node_proxy_reaches_the_kubelet_stand_in() {
    let Some(cp) =
        require_control_plane("summary_through_the_node_proxy_reaches_the_kubelet_stand_in")
    else {
        return;
    };
    let ns = cp.create_namespace("proxy").expect("namespace");
    let node = format!("{ns}-node");
    let kubelet = cp.kubelet(&node).expect("kubelet stand-in");
    let created = cp
        .create(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &pod(&ns, "p", &node),
        )
        .expect("pod");
    kubelet.set_pod(&created, &[Some(ContainerUsage::working_set(48 << 20))]);

    let node_obj = cp.get(&format!("/api/v1/nodes/{node}")).expect("node");
    assert_eq!(
        node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        kubelet.addr().port(),
        "the Node keeps its kubelet port on create"
    );
    let summary = cp
        .get(&format!("/api/v1/nodes/{node}/proxy/stats/summary"))
        .expect("summary through the proxy");
    assert_eq!(kubelet.summary_requests(), 1);
    assert_eq!(summary["node"]["nodeName"], node.as_str());
    let pods = summary["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["podRef"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        pods[0]["containers"][0]["memory"]["workingSetBytes"],
        48 << 20
    );
}

#[test]
fn service_account_tokens_get_exactly_their_charts_rbac() {
    let Some(cp) = require_control_plane("service_account_tokens_get_exactly_their_charts_rbac")
    else {
        return;
    };
    let ns = cp.create_namespace("rbac").expect("namespace");
    let objects = cp
        .apply_chart_rbac(&charts().join("oom-tracer"), &ns, &ns, &json!({}))
        .expect("oom-tracer chart RBAC");
    let sa =
        ControlPlane::chart_service_account(&objects).expect("the chart renders a ServiceAccount");
    let token = cp.service_account_token(&ns, &sa).expect("token");
    let code = |method: &str, path: &str, ctype: &str, body: &str| {
        cp.request_with_token(&token, method, path, ctype, body.as_bytes())
            .expect("request")
            .0
    };
    assert_eq!(
        code("GET", "/api/v1/pods?limit=1", "application/json", ""),
        200
    );
    assert_eq!(
        code(
            "GET",
            &format!("/api/v1/namespaces/{ns}/secrets"),
            "application/json",
            ""
        ),
        403,
        "no secrets"
    );
    assert_eq!(
        code(
            "DELETE",
            &format!("/api/v1/namespaces/{ns}/pods/x"),
            "application/json",
            ""
        ),
        403,
        "no pod deletes"
    );
    // kubectl with the ServiceAccount's kubeconfig sees the same.
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let can_i = |verb: &str, resource: &str| {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["auth", "can-i", verb, resource])
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(can_i("patch", "pods"), "yes");
    assert_eq!(can_i("delete", "pods"), "no");
    assert_eq!(can_i("list", "secrets"), "no");
    // The audit log names the ServiceAccount and the refusals.
    let user = format!("system:serviceaccount:{ns}:{sa}");
    let refused = cp
        .audit_events()
        .expect("audit log")
        .into_iter()
        .filter(|e| e["user"]["username"] == user.as_str() && e["responseStatus"]["code"] == 403)
        .count();
    assert_eq!(refused, 2, "the two refused raw requests");
}

#[test]
fn control_plane_directory_is_removed_on_drop() {
    let Some(_) = require_control_plane("control_plane_directory_is_removed_on_drop") else {
        return;
    };
    let cp = ControlPlane::start().expect("a second control plane");
    let dir = cp.dir().to_owned();
    assert!(dir.join("admin.kubeconfig").is_file());
    let out = cp
        .kubectl()
        .args(["get", "--raw", "/readyz"])
        .output()
        .expect("kubectl");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    drop(cp);
    assert!(!dir.exists(), "{} removed", dir.display());
}

#[test]
fn issue_16_apiserver_outage_on_the_same_port_keeps_the_state_and_the_tokens() {
    let Some(_) = require_control_plane(
        "issue_16_apiserver_outage_on_the_same_port_keeps_the_state_and_the_tokens",
    ) else {
        return;
    };
    let cp = ControlPlane::start().expect("a control plane of its own");
    let ns = cp.create_namespace("outage").expect("namespace");
    cp.create(
        &format!("/api/v1/namespaces/{ns}/serviceaccounts"),
        &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
    )
    .expect("service account");
    let token = cp.service_account_token(&ns, "sa").expect("token");
    let (server, pid) = (cp.server(), cp.apiserver_pid());
    cp.stop_apiserver().expect("stop");
    assert!(cp.apiserver_pid().is_none());
    assert!(
        cp.request("GET", "/readyz", "text/plain", b"").is_err(),
        "the port refuses while it is down"
    );
    assert!(cp.stop_apiserver().is_err(), "stopped once");
    cp.restart_apiserver().expect("restart");
    assert!(cp.restart_apiserver().is_err(), "running: no second one");
    assert_eq!(cp.server(), server, "the same address");
    assert_ne!(cp.apiserver_pid(), pid, "a new process");
    cp.get(&format!("/api/v1/namespaces/{ns}"))
        .expect("etcd kept the namespace");
    // A token issued before the outage is still accepted (authenticated: 403, not 401).
    let (code, _) = cp
        .request_with_token(&token, "GET", "/api/v1/secrets", "application/json", b"")
        .expect("request");
    assert_eq!(code, 403);
}
