//! Raw HTTP against the fake API server: watch semantics kubectl does not expose directly.

use std::time::{Duration, Instant};

use pressure_testkit::{FakeApiServer, Fault, FaultRule, World};
use serde_json::Value;

use crate::util::{fixture_world, raw_http};

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// The JSON lines of a chunked watch body.
fn watch_events(response: &str) -> Vec<Value> {
    response
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_old_resource_version_gets_in_stream_410() {
    let server = FakeApiServer::start(fixture_world()).await.expect("server");
    let rv = server.resource_version();
    server.compact();
    let url = server.url().to_owned();
    let resp = tokio::task::spawn_blocking(move || {
        raw_http(
            &url,
            &get(&format!(
                "/api/v1/pods?watch=true&resourceVersion={}",
                rv - 1
            )),
            Duration::from_secs(5),
        )
    })
    .await
    .expect("join")
    .expect("http");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let events = watch_events(&resp);
    assert_eq!(events.len(), 1, "{resp}");
    assert_eq!(events[0]["type"], "ERROR");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_version_replays_then_bookmarks_until_timeout() {
    let server = FakeApiServer::start(fixture_world()).await.expect("server");
    let rv = server.resource_version();
    assert!(server.update_pod(
        "kube-system",
        "kube-proxy-8k9zt",
        |p| p["metadata"]["labels"]["x"] = "1".into()
    ));
    let url = server.url().to_owned();
    let t = Instant::now();
    let path = format!(
        "/api/v1/namespaces/kube-system/pods?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2"
    );
    let resp =
        tokio::task::spawn_blocking(move || raw_http(&url, &get(&path), Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("http");
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(8),
        "timeoutSeconds ends the stream: {elapsed:?}"
    );
    let events = watch_events(&resp);
    assert_eq!(events[0]["type"], "MODIFIED", "{resp}");
    assert_eq!(events[0]["object"]["metadata"]["labels"]["x"], "1");
    assert!(
        events[1..].iter().all(|e| e["type"] == "BOOKMARK") && events.len() >= 2,
        "{resp}"
    );
    assert_eq!(
        events
            .last()
            .map(|e| e["object"]["metadata"]["resourceVersion"].clone()),
        Some(Value::String((rv + 1).to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let server = FakeApiServer::start(World::synthetic(2, 3))
        .await
        .expect("server");
    let url = server.url().to_owned();
    let path = "/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&fieldSelector=spec.nodeName%3Dnode-1&timeoutSeconds=1";
    let resp =
        tokio::task::spawn_blocking(move || raw_http(&url, &get(path), Duration::from_secs(5)))
            .await
            .expect("join")
            .expect("http");
    let events = watch_events(&resp);
    let added: Vec<&Value> = events.iter().filter(|e| e["type"] == "ADDED").collect();
    assert_eq!(added.len(), 3);
    assert!(
        added
            .iter()
            .all(|e| e["object"]["spec"]["nodeName"] == "node-1")
    );
    assert_eq!(events[3]["type"], "BOOKMARK");
    assert_eq!(
        events[3]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_has_no_response() {
    let server = FakeApiServer::start(World::synthetic(1, 1))
        .await
        .expect("server");
    server.add_fault(
        FaultRule::new(Fault::DropConnection)
            .path_contains("/api/v1/nodes")
            .times(1),
    );
    let url = server.url().to_owned();
    let u2 = url.clone();
    let first = tokio::task::spawn_blocking(move || {
        raw_http(&u2, &get("/api/v1/nodes"), Duration::from_secs(5))
    })
    .await
    .expect("join");
    assert!(
        first.map_or(true, |r| r.is_empty()),
        "no bytes before the connection closes"
    );
    let second = tokio::task::spawn_blocking(move || {
        raw_http(&url, &get("/api/v1/nodes"), Duration::from_secs(5))
    })
    .await
    .expect("join")
    .expect("http");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(second.contains("node-0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_carries_retry_after() {
    let server = FakeApiServer::start(World::synthetic(1, 1))
        .await
        .expect("server");
    server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 7,
        })
        .times(1),
    );
    let url = server.url().to_owned();
    let resp = tokio::task::spawn_blocking(move || {
        raw_http(&url, &get("/api/v1/nodes"), Duration::from_secs(5))
    })
    .await
    .expect("join")
    .expect("http");
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("retry-after: 7"),
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_cuts_open_watches_and_refuses_new_connections_until_it_ends() {
    let server = FakeApiServer::start(World::synthetic(1, 1))
        .await
        .expect("server");
    let url = server.url().to_owned();
    // A watch that would run for 30 s: the outage ends it at once.
    let u = url.clone();
    let watch = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let r = raw_http(
            &u,
            &get("/api/v1/pods?watch=true&timeoutSeconds=30"),
            Duration::from_secs(40),
        );
        (r, t.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.requests().iter().any(|r| r.contains("watch=true")) {
        assert!(Instant::now() < deadline, "the watch never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.outage(Duration::from_secs(600));
    let (_, took) = watch.await.expect("join");
    assert!(
        took < Duration::from_secs(20),
        "the watch outlived the outage's start: {took:?}"
    );
    let u = url.clone();
    let refused = tokio::task::spawn_blocking(move || {
        raw_http(&u, &get("/api/v1/nodes"), Duration::from_secs(5))
    })
    .await
    .expect("join");
    assert!(
        refused.map_or(true, |r| r.is_empty()),
        "no answer during an outage"
    );
    assert_eq!(server.refused_connections(), 1);
    server.end_outage();
    let served = tokio::task::spawn_blocking(move || {
        raw_http(&url, &get("/api/v1/nodes"), Duration::from_secs(5))
    })
    .await
    .expect("join")
    .expect("http");
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_fault_answers_watches_in_stream_and_lists_with_410_for_its_time() {
    let server = FakeApiServer::start(World::synthetic(1, 1))
        .await
        .expect("server");
    server.add_fault(FaultRule::new(Fault::Expired).during(Duration::from_secs(600)));
    let url = server.url().to_owned();
    let u = url.clone();
    let (watch, list) = tokio::task::spawn_blocking(move || {
        (
            raw_http(&u, &get("/api/v1/pods?watch=true"), Duration::from_secs(5)),
            raw_http(&u, &get("/api/v1/pods"), Duration::from_secs(5)),
        )
    })
    .await
    .expect("join");
    let watch = watch.expect("http");
    assert!(watch.starts_with("HTTP/1.1 200"), "{watch}");
    let events = watch_events(&watch);
    assert_eq!(events.len(), 1, "{watch}");
    assert_eq!(events[0]["object"]["code"], 410);
    assert!(list.expect("http").starts_with("HTTP/1.1 410"));
    // A rule whose time is up no longer applies.
    server.clear_faults();
    server.add_fault(FaultRule::new(Fault::Expired).during(Duration::ZERO));
    let list = tokio::task::spawn_blocking(move || {
        raw_http(&url, &get("/api/v1/pods"), Duration::from_secs(5))
    })
    .await
    .expect("join")
    .expect("http");
    assert!(list.starts_with("HTTP/1.1 200"), "{list}");
}
