//! `ClusterPoller` (through the `cluster_poller` example's own code) and `PodDirectory` against the
//! fake API server.

use std::time::Duration;

use pressure_core::Target;
use pressure_kubelet::{ClientSource, PodDirectory, PollerOptions};
use pressure_testkit::{ContainerUsage, FakeApiServer, World};

#[path = "../examples/cluster_poller.rs"]
#[expect(
    dead_code,
    reason = "the test runs the example's `poll`, not its `main`"
)]
mod example;

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn example_cluster_poller() {
    let server = FakeApiServer::start(World::synthetic(2, 1))
        .await
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    // 16 MiB of 256 MiB (the fake's default) is 6 %: warn at 5 % gives an event on each node's pod.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = PollerOptions {
        interval: Duration::from_millis(50),
        ..PollerOptions::default()
    };
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
        warned.push(e.node_name.as_deref().unwrap_or_default().to_owned());
    }
    warned.sort();
    assert_eq!(warned, ["node-0", "node-1"]);
    // A change of usage shows up as a new event: critical at 90 %.
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(230 * MIB),
    );
    let crit = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("critical in time")
        .expect("the poller runs");
    assert_eq!(crit.pod_name.as_deref(), Some("pod-0-0"));
    assert_eq!(crit.severity.as_str(), "critical");
    // The stop future ends the loop cleanly.
    stop_tx.send(()).expect("poller alive");
    let ended = tokio::time::timeout(Duration::from_secs(10), poller)
        .await
        .expect("the poller stops")
        .expect("no panic");
    assert_eq!(ended, Ok(()));
}

#[tokio::test]
async fn pod_directory_names_this_nodes_pods_only() {
    let server = FakeApiServer::start(World::synthetic(2, 1))
        .await
        .expect("server");
    let client = ClientSource::Proxy {
        url: server.url().to_owned(),
    }
    .connect()
    .await
    .expect("client");
    let pods = PodDirectory::node(client, "node-0", Duration::from_secs(20)).await;
    // A cgroup-derived target: the UID (underscores on systemd paths) and the cgroup path only.
    let mut mine = Target {
        pod_uid: Some("00000000_0000_4000_8000_000000000000".into()),
        cgroup_path: Some("/kubepods/pod00000000".into()),
        ..Target::default()
    };
    assert!(pods.enrich(&mut mine));
    assert_eq!(mine.pod_name.as_deref(), Some("pod-0-0"));
    assert_eq!(mine.namespace.as_deref(), Some("ns-0"));
    assert_eq!(mine.node_name.as_deref(), Some("node-0"));
    assert_eq!(mine.cgroup_path.as_deref(), Some("/kubepods/pod00000000"));
    let mut other = Target {
        pod_uid: Some("00000001-0000-4000-8000-000000000000".into()),
        ..Target::default()
    };
    assert!(
        !pods.enrich(&mut other),
        "a pod of node-1 is not in node-0's directory"
    );
    assert_eq!(other.pod_name, None);
}
