//! `ClusterPoller` (through the `cluster_poller` example's own code) and `PodDirectory` through a real
//! kube-apiserver (pressure-testkit's control plane, kubelet stand-ins behind its node proxy).

use std::time::Duration;

use pressure_core::Target;
use pressure_kubelet::{ClientSource, PodDirectory, PodScope, PollerOptions};
use pressure_testkit::{ContainerUsage, ControlPlane, require_control_plane};
use serde_json::{Value, json};

#[path = "../examples/cluster_poller.rs"]
#[expect(
    dead_code,
    reason = "the test runs the example's `poll`, not its `main`"
)]
mod example;

const MIB: u64 = 1 << 20;

/// Creates pod `name` on `node` (container `app`, 256Mi limit), running; returns it as stored.
fn running_pod(cp: &ControlPlane, ns: &str, name: &str, node: &str) -> Value {
    cp.create(
        &format!("/api/v1/namespaces/{ns}/pods"),
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1",
                    "resources": {"limits": {"memory": "256Mi"}}}]}}),
    )
    .expect("create pod");
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
        &json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": format!("containerd://{}", pressure_testkit::unique_container_id()),
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}),
    )
    .expect("status patch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apiserver_example_cluster_poller() {
    const TEST: &str = "real_apiserver_example_cluster_poller";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("ppoller").expect("namespace");
    let nodes = [format!("{ns}-n0"), format!("{ns}-n1")];
    let kubelets: Vec<_> = nodes
        .iter()
        .map(|n| cp.kubelet(n).expect("kubelet stand-in"))
        .collect();
    let pods: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| running_pod(cp, &ns, &format!("web-{i}"), n))
        .collect();
    // 16 MiB (the stand-ins' default) of 256 MiB is 6 %: warn at 5 % gives an event on each node's pod.
    for (k, p) in kubelets.iter().zip(&pods) {
        k.set_pod(p, &[None]);
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Only this test's namespace: the control plane is shared with other tests.
    let options = PollerOptions {
        interval: Duration::from_millis(100),
        scope: PodScope {
            namespaces: vec![ns.clone()],
            ..PodScope::default()
        },
        ..PollerOptions::default()
    };
    let kubeconfig = cp.admin_kubeconfig().to_owned();
    let poller = tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.await;
        };
        example::poll(
            kubeconfig,
            5.0,
            options,
            move |e: &pressure_core::Event| drop(tx.send(e.clone())),
            stop,
        )
        .await
        .map_err(|e| e.to_string())
    });
    let mut warned = Vec::new();
    while warned.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("an event in time")
            .expect("the poller runs");
        assert_eq!(e.severity.as_str(), "warn", "{e:?}");
        warned.push(e.target.node_name.as_deref().unwrap_or_default().to_owned());
    }
    warned.sort();
    assert_eq!(warned, nodes);
    // A change of usage shows up as a new event: critical at 90 %.
    kubelets[0].set_pod(&pods[0], &[Some(ContainerUsage::working_set(230 * MIB))]);
    let crit = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("critical in time")
        .expect("the poller runs");
    assert_eq!(crit.target.pod_name.as_deref(), Some("web-0"));
    assert_eq!(crit.severity.as_str(), "critical");
    assert!(kubelets.iter().all(|k| k.summary_requests() > 0));
    // The stop future ends the loop cleanly.
    stop_tx.send(()).expect("poller alive");
    let ended = tokio::time::timeout(Duration::from_secs(10), poller)
        .await
        .expect("the poller stops")
        .expect("no panic");
    assert_eq!(ended, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apiserver_pod_directory_names_this_nodes_pods_only() {
    const TEST: &str = "real_apiserver_pod_directory_names_this_nodes_pods_only";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pdir").expect("namespace");
    let (here, there) = (format!("{ns}-n0"), format!("{ns}-n1"));
    let mine = running_pod(cp, &ns, "mine", &here);
    let theirs = running_pod(cp, &ns, "theirs", &there);
    let client = ClientSource::Kubeconfig {
        path: Some(cp.admin_kubeconfig().to_owned()),
        context: None,
    }
    .connect()
    .await
    .expect("client");
    let pods = PodDirectory::node(client, &here, Duration::from_secs(20)).await;
    // A cgroup-derived target: the UID (underscores on systemd paths) and the cgroup path only.
    let uid = mine["metadata"]["uid"].as_str().expect("uid");
    let mut target = Target {
        pod_uid: Some(uid.replace('-', "_").into()),
        cgroup_path: Some("/kubepods/pod-mine".into()),
        ..Target::default()
    };
    assert!(pods.enrich(&mut target));
    assert_eq!(target.pod_name.as_deref(), Some("mine"));
    assert_eq!(target.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(target.node_name.as_deref(), Some(here.as_str()));
    assert_eq!(target.cgroup_path.as_deref(), Some("/kubepods/pod-mine"));
    let mut other = Target {
        pod_uid: theirs["metadata"]["uid"].as_str().map(Into::into),
        ..Target::default()
    };
    assert!(
        !pods.enrich(&mut other),
        "a pod of another node is not in this node's directory"
    );
    assert_eq!(other.pod_name, None);
}
