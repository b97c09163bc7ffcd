//! pressure-kubelet through a real kube-apiserver (pressure-testkit's control plane): the Events
//! recorder as `pressured`'s chart ServiceAccount with only the chart's RBAC (create and patch on
//! Events); the pod cache, summaries through the node proxy and from a kubelet stand-in, and Lease
//! election as the admin.

use std::path::Path;
use std::time::{Duration, SystemTime};

use pressure_kubelet::k8s_openapi::api::core::v1::ObjectReference;
use pressure_kubelet::kube::Client;
use pressure_kubelet::{
    ClientSource, EventKind, EventRecorder, EventSpec, OomTracker, PodCache, PodScope, PodUpdate,
    Recorded, SummarySource,
};
use pressure_testkit::{ContainerUsage, ControlPlane, require_control_plane, wait_for};
use serde_json::{Value, json};

async fn recorder(kubeconfig: &Path, instance: &str) -> EventRecorder {
    let client = ClientSource::Kubeconfig {
        path: Some(kubeconfig.to_owned()),
        context: None,
    }
    .connect()
    .await
    .expect("client");
    EventRecorder::new(client, "pressure.dev/pressured", instance)
}

#[tokio::test]
async fn real_apiserver_events_fold_into_one_series_across_restarts() {
    const TEST: &str = "real_apiserver_events_fold_into_one_series_across_restarts";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pevents").expect("namespace");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/pressured");
    let rbac = cp
        .apply_chart_rbac(&chart, &ns, &ns, &json!({"mode": "node"}))
        .expect("the chart's RBAC");
    let sa = ControlPlane::chart_service_account(&rbac).expect("the chart's ServiceAccount");
    let kubeconfig = cp.service_account_kubeconfig(&ns, &sa).expect("kubeconfig");
    let pod = cp
        .create(
            &format!("/api/v1/namespaces/{ns}/pods"),
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns},
                    "spec": {"nodeName": "n0", "containers": [{"name": "app", "image": "app:1"}]}}),
        )
        .expect("pod");
    let spec = |note: &str, reason: &str| EventSpec {
        regarding: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some("web".into()),
            namespace: Some(ns.clone()),
            uid: pod["metadata"]["uid"].as_str().map(str::to_owned),
            field_path: Some("spec.containers{app}".into()),
            ..ObjectReference::default()
        },
        kind: EventKind::Warning,
        reason: reason.into(),
        action: "Observed".into(),
        note: note.into(),
    };

    // One process: the same pod and reason, with the figures of the moment in the note, is one series.
    let first = recorder(&kubeconfig, "replica-a").await;
    let Recorded::Created { name } = first
        .record(&spec("app at 90% of 64Mi", "MemoryPressureCritical"))
        .await
        .expect("create")
    else {
        panic!("expected a new Event")
    };
    assert_eq!(
        first
            .record(&spec("app at 95% of 64Mi", "MemoryPressureCritical"))
            .await
            .expect("fold"),
        Recorded::Folded {
            name: name.clone(),
            count: 2
        }
    );
    // A restart (a new recorder with no memory, another replica's name): the same Event continues.
    let restarted = recorder(&kubeconfig, "replica-b").await;
    assert_eq!(
        restarted
            .record(&spec("app at 97% of 64Mi", "MemoryPressureCritical"))
            .await
            .expect("fold after a restart"),
        Recorded::Folded {
            name: name.clone(),
            count: 3
        }
    );
    assert_eq!(
        restarted
            .record(&spec("app at 99% of 64Mi", "MemoryPressureCritical"))
            .await
            .expect("fold"),
        Recorded::Folded {
            name: name.clone(),
            count: 4
        }
    );
    // Another reason is another series.
    assert!(matches!(
        restarted
            .record(&spec("predicted", "PredictedOOM"))
            .await
            .expect("create"),
        Recorded::Created { .. }
    ));

    let events = cp.events_about(&ns, "web");
    assert_eq!(events.len(), 2, "{events:#?}");
    let ev = events
        .iter()
        .find(|e| e["metadata"]["name"] == name.as_str())
        .expect("the series Event");
    assert_eq!(ev["series"]["count"], 4, "{ev:#?}");
    assert!(ev["series"]["lastObservedTime"].is_string(), "{ev:#?}");
    assert_eq!(ev["reason"], "MemoryPressureCritical");
    assert_eq!(
        ev["note"], "app at 90% of 64Mi",
        "the note of a series is its first"
    );
    assert_eq!(ev["regarding"]["uid"], pod["metadata"]["uid"]);
    assert_eq!(ev["reportingController"], "pressure.dev/pressured");
}

/// A client with the admin's rights (the tests below check the library, not RBAC; the binaries' tests
/// run as their charts' ServiceAccounts).
async fn admin(cp: &ControlPlane) -> Client {
    ClientSource::Kubeconfig {
        path: Some(cp.admin_kubeconfig().to_owned()),
        context: None,
    }
    .connect()
    .await
    .expect("admin client")
}

/// Creates pod `name` on `node` (container `app`, 256Mi limit) and patches its status as a kubelet
/// would: running, `pod_ip`, container ID `containerd://<64 hex>`. Returns the pod as stored.
fn running_pod(cp: &ControlPlane, ns: &str, name: &str, node: &str, pod_ip: &str) -> Value {
    cp.create(
        &format!("/api/v1/namespaces/{ns}/pods"),
        &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app:1",
                    "resources": {"limits": {"memory": "256Mi"}}}]}}),
    )
    .expect("create pod");
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
        &json!({"status": {"phase": "Running", "podIP": pod_ip, "containerStatuses": [{
            "name": "app", "image": "app:1", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": format!("containerd://{}", pressure_testkit::unique_container_id()),
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}),
    )
    .expect("status patch")
}

/// Deletes a pod at once (`gracePeriodSeconds=0`: no kubelet runs to confirm a graceful deletion).
fn delete_pod(cp: &ControlPlane, ns: &str, name: &str) {
    cp.call(
        "DELETE",
        &format!("/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0"),
        "application/json",
        None,
    )
    .expect("delete pod");
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apiserver_node_scoped_cache_indexes_uids_and_container_ids() {
    const TEST: &str = "real_apiserver_node_scoped_cache_indexes_uids_and_container_ids";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("pcache").expect("namespace");
    let (mine, other) = (format!("{ns}-n1"), format!("{ns}-n2"));
    for i in 0..3 {
        running_pod(cp, &ns, &format!("here-{i}"), &mine, &format!("10.1.0.{i}"));
    }
    for i in 0..2 {
        running_pod(
            cp,
            &ns,
            &format!("there-{i}"),
            &other,
            &format!("10.2.0.{i}"),
        );
    }
    let cache = PodCache::spawn(admin(cp).await, &PodScope::node(&mine));
    cache.ready().await;
    assert_eq!(cache.len(), 3, "{:?}", cache.pods());
    assert!(
        cache
            .pods()
            .iter()
            .all(|p| p.node_name.as_deref() == Some(mine.as_str()))
    );
    // The node scope is a server-side field selector, not a filter over every pod of the cluster.
    let selector = format!("fieldSelector=spec.nodeName%3D{mine}");
    wait_for(
        "the node-scoped list in the audit log",
        Duration::from_secs(20),
        || {
            cp.audit_events()
                .expect("audit log")
                .iter()
                .any(|e| {
                    e["requestURI"]
                        .as_str()
                        .is_some_and(|u| u.contains(&selector))
                })
                .then_some(())
        },
    );
    let pod = cp
        .get(&format!("/api/v1/namespaces/{ns}/pods/here-2"))
        .expect("pod");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_owned();
    assert_eq!(
        cache.by_uid(&uid).map(|p| p.name.clone()).as_deref(),
        Some("here-2")
    );
    assert_eq!(
        cache.by_uid(&uid.replace('-', "_")).map(|p| p.uid.clone()),
        Some(uid.clone()),
        "systemd-style underscores"
    );
    let cid = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .expect("cid")
        .to_owned();
    let (found, name) = cache.by_container_id(&cid).expect("by runtime://id");
    assert_eq!((found.name.as_str(), name.as_str()), ("here-2", "app"));
    assert!(
        cache
            .by_container_id(pressure_kubelet::bare_container_id(&cid))
            .is_some(),
        "by bare id"
    );

    // A restarted container keeps its old ID findable through lastState; init containers too. The
    // status patch is what a kubelet sends after an OOM kill and restart.
    let mut updates = cache.subscribe();
    let fresh = pressure_testkit::unique_container_id();
    let (init, eph) = (
        pressure_testkit::unique_container_id(),
        pressure_testkit::unique_container_id(),
    );
    cp.call(
        "PATCH",
        &format!("/api/v1/namespaces/{ns}/pods/here-2/status"),
        "application/merge-patch+json",
        Some(&json!({"status": {
            "containerStatuses": [{"name": "app", "image": "app:1", "imageID": "", "ready": true,
                "restartCount": 1, "containerID": format!("containerd://{fresh}"),
                "state": {"running": {"startedAt": "2026-01-01T00:01:00Z"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "containerID": cid.clone(),
                    "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}}}],
            "initContainerStatuses": [{"name": "init", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "containerID": format!("cri-o://{init}"),
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                    "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}],
            "ephemeralContainerStatuses": [{"name": "debug", "image": "x", "imageID": "", "ready": false,
                "restartCount": 0, "containerID": format!("containerd://{eph}"),
                "state": {"running": {"startedAt": "2026-01-01T00:02:00Z"}}}],
        }})),
    )
    .expect("status patch");
    let pod = loop {
        let update = tokio::time::timeout(Duration::from_secs(10), updates.recv())
            .await
            .expect("an update")
            .expect("recv");
        if let PodUpdate::Applied { pod, initial } = update
            && pod.name == "here-2"
        {
            assert!(!initial);
            break pod;
        }
    };
    let kills = OomTracker::new().observe(&pod, false);
    assert_eq!(kills.len(), 1);
    assert_eq!(kills[0].pod, "here-2");
    assert_eq!(
        cache.by_container_id(&cid).map(|(_, n)| n).as_deref(),
        Some("app"),
        "old instance via lastState"
    );
    assert_eq!(
        cache.by_container_id(&init).map(|(_, n)| n).as_deref(),
        Some("init")
    );
    assert!(cache.by_container_id(&fresh).is_some());
    // kube-apiserver 1.20 keeps ephemeral container statuses only with the EphemeralContainers
    // feature gate (alpha, off); where the server kept them, they are indexed too.
    let stored = cp
        .get(&format!("/api/v1/namespaces/{ns}/pods/here-2"))
        .expect("pod");
    if stored["status"]["ephemeralContainerStatuses"].is_array() {
        assert_eq!(
            cache.by_container_id(&eph).map(|(_, n)| n).as_deref(),
            Some("debug")
        );
    }

    // Pods scheduled elsewhere never enter; a new pod here does; a deleted pod leaves.
    running_pod(cp, &ns, "elsewhere", &other, "10.2.0.9");
    let arrived = running_pod(cp, &ns, "arrived", &mine, "10.1.0.9");
    let arrived_uid = arrived["metadata"]["uid"].as_str().expect("uid").to_owned();
    eventually("the new pod", || cache.by_uid(&arrived_uid).is_some()).await;
    assert!(cache.pods().iter().all(|p| p.name != "elsewhere"));
    delete_pod(cp, &ns, "here-2");
    eventually("the deletion", || cache.by_uid(&uid).is_none()).await;
    assert!(cache.by_container_id(&cid).is_none());
    assert_eq!(cache.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apiserver_summary_through_the_node_proxy_and_the_kubelet_with_cache_targets() {
    const TEST: &str =
        "real_apiserver_summary_through_the_node_proxy_and_the_kubelet_with_cache_targets";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("psummary").expect("namespace");
    let node = format!("{ns}-node");
    let kubelet = cp.kubelet(&node).expect("kubelet stand-in");
    for i in 0..3 {
        let pod = running_pod(cp, &ns, &format!("web-{i}"), &node, &format!("10.3.0.{i}"));
        let usage = (i == 1).then(|| ContainerUsage::working_set(200 << 20));
        kubelet.set_pod(&pod, &[usage]);
    }
    let client = admin(cp).await;
    let cache = PodCache::spawn(client.clone(), &PodScope::node(&node));
    cache.ready().await;
    cp.merge_patch(
        &format!("/api/v1/namespaces/{ns}/pods/web-1"),
        &json!({"metadata": {"annotations": {"pressured.io/warn-percent": "50"}}}),
    )
    .expect("annotate");
    eventually("the annotation", || {
        cache
            .pods()
            .iter()
            .any(|p| p.annotations.contains_key("pressured.io/warn-percent"))
    })
    .await;
    let summary = SummarySource::ApiProxy(client)
        .fetch(&node)
        .await
        .expect("summary through the node proxy");
    assert_eq!(summary.node.node_name, node);
    assert_eq!(kubelet.summary_requests(), 1, "reached the stand-in");
    let samples = summary.samples(SystemTime::now(), |uid| cache.by_uid(uid));
    assert_eq!(samples.len(), 3);
    let s = samples
        .iter()
        .find(|s| s.target.pod_name.as_deref() == Some("web-1"))
        .expect("web-1");
    assert_eq!(s.reading.working_set_bytes, 200 << 20);
    assert_eq!(s.reading.limit_bytes, Some(256 << 20));
    assert_eq!(s.target.pod_ip.as_deref(), Some("10.3.0.1"));
    assert_eq!(
        s.target
            .annotations
            .get("pressured.io/warn-percent")
            .map(String::as_str),
        Some("50")
    );
    assert!(s.target.container_id.is_some());
    // The node's kubelet endpoint itself (node-local mode) gives the same numbers.
    let direct = ClientSource::Kubeconfig {
        path: Some(cp.admin_kubeconfig().to_owned()),
        context: None,
    }
    .connect_to(&format!("https://{}", kubelet.addr()), None)
    .await
    .expect("kubelet client");
    let direct = SummarySource::Kubelet(direct)
        .fetch(&node)
        .await
        .expect("summary from the kubelet");
    let samples = direct.samples(SystemTime::now(), |_| None);
    let s = samples
        .iter()
        .find(|s| s.target.pod_name.as_deref() == Some("web-1"))
        .expect("web-1");
    assert_eq!(s.reading.working_set_bytes, 200 << 20);
    assert_eq!(
        s.reading.limit_bytes,
        Some(256 << 20),
        "from availableBytes"
    );
    assert_eq!(kubelet.summary_requests(), 2);
    let missing = SummarySource::ApiProxy(admin(cp).await)
        .fetch(&format!("{ns}-no-such-node"))
        .await
        .expect_err("no such node");
    assert_eq!(missing.status_code(), Some(404), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apiserver_lease_leader_election_one_leader_and_takeover() {
    use pressure_kubelet::LeaderElector;
    use pressure_kubelet::k8s_openapi::api::coordination::v1::Lease;
    use pressure_kubelet::kube::Api;
    const TEST: &str = "real_apiserver_lease_leader_election_one_leader_and_takeover";
    let Some(cp) = require_control_plane(TEST) else {
        return;
    };
    let ns = cp.create_namespace("please").expect("namespace");
    let client = admin(cp).await;
    let duration = Duration::from_secs(2);
    let a = LeaderElector::new(client.clone(), &ns, "pressured", "pod-a", duration);
    let b = LeaderElector::new(client.clone(), &ns, "pressured", "pod-b", duration);
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a creates the lease"
    );
    assert!(!b.try_acquire_or_renew().await.unwrap(), "b must wait");
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    assert!(!b.try_acquire_or_renew().await.unwrap());
    // a stops renewing: b keeps trying and takes over once the lease expires (not before), and a no
    // longer leads.
    let renewed = tokio::time::Instant::now();
    while !b.try_acquire_or_renew().await.unwrap() {
        assert!(renewed.elapsed() < duration * 5, "b never took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(renewed.elapsed() >= duration, "b took over before expiry");
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a lost it");
    let lease: Lease = Api::namespaced(client, &ns).get("pressured").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_transitions, Some(1));
}
