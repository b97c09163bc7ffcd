//! The Events recorder through a real kube-apiserver (pressure-testkit's control plane), authenticated
//! as `pressured`'s chart ServiceAccount with only the chart's RBAC (create and patch on Events).

use std::path::Path;

use pressure_kubelet::k8s_openapi::api::core::v1::ObjectReference;
use pressure_kubelet::{ClientSource, EventKind, EventRecorder, EventSpec, Recorded};
use pressure_testkit::require_control_plane;
use serde_json::json;

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
    let sa = rbac
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .and_then(|o| o["metadata"]["name"].as_str())
        .expect("the chart's ServiceAccount")
        .to_owned();
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
