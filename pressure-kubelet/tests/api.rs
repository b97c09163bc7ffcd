//! Fault injection against `pressure_testkit::FakeApiServer`: token rotation, 410 and failing watches,
//! 429/500/dropped connections on annotations and summaries, an outage, an endless summary body. What
//! a real API server shows without a fault is tested against one in `real_apiserver.rs`.

use std::time::Duration;

use pressure_kubelet::kube::Client;
use pressure_kubelet::{
    AnnotateOutcome, Annotator, Backoff, ClientSource, PodCache, PodScope, SummarySource,
};
use pressure_testkit::{FakeApiServer, Fault, FaultRule, Options, World, synthetic_pod};
use serde_json::json;

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

async fn proxy_client(server: &FakeApiServer) -> Client {
    ClientSource::Proxy {
        url: server.url().to_owned(),
    }
    .connect()
    .await
    .expect("client")
}

#[tokio::test]
async fn kubeconfig_and_in_cluster_with_token_rotation() {
    let options = Options {
        tls: true,
        token: Some("sa-token-1".into()),
        ..Options::default()
    };
    let server = FakeApiServer::start_with(World::synthetic(2, 2), options)
        .await
        .expect("server");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = server.write_kubeconfig(dir.path()).expect("kubeconfig");
    let client = ClientSource::Kubeconfig {
        path: Some(kubeconfig),
        context: None,
    }
    .connect()
    .await
    .expect("kubeconfig client");
    let cache = PodCache::spawn(client, &PodScope::default());
    cache.ready().await;
    assert_eq!(cache.len(), 4);

    // In-cluster: token, ca.crt and namespace files as the kubelet projects them.
    let sa = tempfile::tempdir().expect("tempdir");
    std::fs::write(sa.path().join("token"), "sa-token-1").expect("token");
    std::fs::write(sa.path().join("ca.crt"), server.ca_pem().expect("ca")).expect("ca");
    std::fs::write(sa.path().join("namespace"), "ns-1").expect("ns");
    let source = ClientSource::InCluster {
        service_account_dir: sa.path().to_owned(),
        api_server: Some(server.url().to_owned()),
    };
    let client = source.connect().await.expect("in-cluster client");
    assert_eq!(client.default_namespace(), "ns-1");
    let annotator = Annotator::new(client, "test").with_backoff(Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        attempts: 2,
    });
    assert!(matches!(
        annotator
            .annotate_if_absent("ns-0", "pod-0-0", "a", "1")
            .await,
        Ok(AnnotateOutcome::Annotated { .. })
    ));
    // The server rotates the token; until the file changes requests fail, then they work at once.
    server.rotate_token("sa-token-2");
    let err = annotator
        .annotate_if_absent("ns-0", "pod-0-0", "b", "1")
        .await
        .expect_err("old token refused");
    assert_eq!(err.status_code(), Some(401), "{err}");
    let tmp = sa.path().join("..data.tmp");
    std::fs::write(&tmp, "sa-token-2").expect("token");
    std::fs::rename(&tmp, sa.path().join("token")).expect("rotate");
    assert!(matches!(
        annotator
            .annotate_if_absent("ns-0", "pod-0-0", "b", "1")
            .await,
        Ok(AnnotateOutcome::Annotated { .. })
    ));
}

#[tokio::test]
async fn namespaces_and_labels_scope_the_cache_and_survive_410_and_faults() {
    let server = FakeApiServer::start(World::synthetic(2, 10))
        .await
        .expect("server");
    let scope = PodScope {
        namespaces: vec!["ns-1".into(), "ns-3".into()],
        label_selector: Some("app in (pod-0-1,pod-1-1,pod-0-3)".into()),
        node_name: None,
    };
    let cache = PodCache::spawn(proxy_client(&server).await, &scope);
    cache.ready().await;
    let mut names: Vec<String> = cache.pods().iter().map(|p| p.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["pod-0-1", "pod-0-3", "pod-1-1"]);
    // The log is compacted and the watch connections fail for a while: the cache relists and catches up.
    server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("/namespaces/ns-1/pods")
            .times(3),
    );
    server.add_fault(
        FaultRule::new(Fault::DropConnection)
            .path_contains("/namespaces/ns-3/pods")
            .times(2),
    );
    server.compact();
    server.upsert(synthetic_pod(
        "ns-1",
        "late",
        "f0000000-0000-4000-8000-000000000001",
        "node-0",
        "10.1.1.1",
    ));
    server.update_pod("ns-1", "late", |p| {
        p["metadata"]["labels"]["app"] = json!("pod-1-1")
    });
    eventually("the late pod", || {
        cache
            .by_uid("f0000000-0000-4000-8000-000000000001")
            .is_some()
    })
    .await;
    assert_eq!(cache.len(), 4);
}

#[tokio::test]
async fn annotation_only_when_absent_with_retries() {
    let server = FakeApiServer::start(World::synthetic(1, 1))
        .await
        .expect("server");
    let fast = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
        attempts: 6,
    };
    let a = Annotator::new(proxy_client(&server).await, "oom-tracer").with_backoff(fast);
    server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 0,
        })
        .path_contains("pods/pod-0-0")
        .times(1),
    );
    server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("pods/pod-0-0")
            .times(1),
    );
    server.add_fault(
        FaultRule::new(Fault::DropConnection)
            .path_contains("pods/pod-0-0")
            .times(1),
    );
    let out = a
        .annotate_if_absent("ns-0", "pod-0-0", "pressure.dev/oom-killed", "app")
        .await
        .expect("annotated");
    // 429 and 500 each cost an attempt; hyper may retry the dropped connection by itself.
    assert!(
        matches!(out, AnnotateOutcome::Annotated { attempts: 3 | 4 }),
        "{out:?}"
    );
    assert_eq!(
        server.pod("ns-0", "pod-0-0").expect("pod")["metadata"]["annotations"]["pressure.dev/oom-killed"],
        "app"
    );
    let patches = server
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    assert_eq!(
        a.annotate_if_absent("ns-0", "pod-0-0", "pressure.dev/oom-killed", "other")
            .await
            .expect("checked"),
        AnnotateOutcome::AlreadyPresent
    );
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|r| r.starts_with("PATCH"))
            .count(),
        patches,
        "no patch when present"
    );
    assert_eq!(
        server.pod("ns-0", "pod-0-0").expect("pod")["metadata"]["annotations"]["pressure.dev/oom-killed"],
        "app"
    );
    assert_eq!(
        a.annotate_if_absent("ns-0", "gone", "k", "v")
            .await
            .expect("checked"),
        AnnotateOutcome::PodNotFound
    );
    // Always failing: gives up after the configured attempts.
    server.add_fault(FaultRule::new(Fault::InternalError).path_contains("pods/pod-0-0"));
    let err = a
        .annotate_if_absent("ns-0", "pod-0-0", "x", "y")
        .await
        .expect_err("gives up");
    assert!(err.to_string().contains("6 attempts"), "{err}");
}

#[tokio::test]
async fn summary_429_reports_retry_after_and_other_errors_their_status() {
    let server = FakeApiServer::start(World::synthetic(1, 2))
        .await
        .expect("server");
    let client = ClientSource::Proxy {
        url: server.url().to_owned(),
    }
    .connect_without_retries()
    .await
    .expect("client");
    let source = SummarySource::ApiProxy(client);
    server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 7,
        })
        .path_contains("nodes/node-0/proxy")
        .times(1),
    );
    let err = source.fetch("node-0").await.expect_err("429");
    assert_eq!(err.status_code(), Some(429), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err}");
    assert!(err.to_string().contains("node node-0"), "{err}");
    server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("nodes/node-0/proxy")
            .times(1),
    );
    let err = source.fetch("node-0").await.expect_err("500");
    assert_eq!(err.status_code(), Some(500), "{err}");
    assert_eq!(err.retry_after(), None);
    let err = source.fetch("no-such-node").await.expect_err("404");
    assert_eq!(err.status_code(), Some(404), "{err}");
    let summary = source
        .fetch("node-0")
        .await
        .expect("summary after the faults");
    assert_eq!(summary.pods.len(), 2);
}

#[tokio::test]
async fn summary_from_a_dead_api_server_is_an_error() {
    let server = FakeApiServer::start(World::synthetic(1, 1))
        .await
        .expect("server");
    let client = proxy_client(&server).await;
    drop(server);
    let err = SummarySource::ApiProxy(client)
        .fetch("node-0")
        .await
        .expect_err("no server");
    assert_eq!(err.status_code(), None, "{err}");
    assert!(err.to_string().contains("node node-0"), "{err}");
}

/// Issue 16 (5): a 512 MiB summary body was read whole. The server here never ends its body: reading it
/// whole would never return, so an answer at all shows the read stopped at the cap.
#[tokio::test]
async fn issue_16_summary_body_is_read_with_a_cap() {
    use futures::StreamExt;
    let app = axum::Router::new().fallback(|| async {
        let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
        let endless = futures::stream::repeat(chunk).map(Ok::<_, std::io::Error>);
        axum::response::Response::builder()
            .header("content-type", "application/json")
            .body(axum::body::Body::from_stream(endless))
            .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = ClientSource::Proxy {
        url: format!("http://{addr}"),
    }
    .connect_without_retries()
    .await
    .expect("client");
    let err = tokio::time::timeout(
        Duration::from_secs(120),
        SummarySource::ApiProxy(client).fetch("node-0"),
    )
    .await
    .expect("the read stops at the cap")
    .expect_err("too large");
    assert!(
        matches!(err, pressure_kubelet::KubeletError::SummaryTooLarge { max, .. } if max == pressure_kubelet::MAX_SUMMARY_BYTES),
        "{err}"
    );
    assert!(err.to_string().contains("node node-0"), "{err}");
    server.abort();
}
