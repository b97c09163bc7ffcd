//! [`MarkQueue`] under the faults a real API server cannot produce on cue (the fake one injects
//! them): 429 with Retry-After, runs of 500s, slow answers, a pod deleted while its mark waits, a
//! queue at its capacity. Outages of the real API server: `oom-tracer-cli/tests/chaos.rs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pressure_kubelet::{
    Annotator, Backoff, ClientSource, EventRecorder, MarkQueue, MarkQueueStats, PendingOptions,
    PodCache, PodScope, Victim, VictimMarker, VictimOutcome,
};
use pressure_testkit::{FakeApiServer, Fault, FaultRule, World};
use tokio::sync::oneshot;

const KEY: &str = "pressure.dev/oom-victim";

struct Setup {
    server: FakeApiServer,
    queue: Arc<MarkQueue>,
    stop: Option<oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<()>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.run.abort();
    }
}

fn options(capacity: usize) -> PendingOptions {
    PendingOptions {
        capacity,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..PendingOptions::default()
    }
}

/// One node with `pods` pods, a node-scoped cache, a marker annotating and posting Events as
/// `oom-tracer` does (short annotator retries, 500 ms per request), and the queue running.
async fn setup(pods: usize, capacity: usize) -> Setup {
    let server = FakeApiServer::start(World::synthetic(1, pods))
        .await
        .expect("server");
    let client = ClientSource::Proxy {
        url: server.url().to_owned(),
    }
    .connect_without_retries()
    .await
    .expect("client");
    let cache = Arc::new(PodCache::spawn(client.clone(), &PodScope::node("node-0")));
    cache.ready().await;
    let annotator = Annotator::new(client.clone(), "oom-tracer").with_backoff(Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(20),
        attempts: 2,
    });
    let marker = VictimMarker::new(cache)
        .events(EventRecorder::new(
            client,
            "pressure.dev/oom-tracer",
            "node-0",
        ))
        .annotate(annotator, KEY, "true")
        .request_timeout(Duration::from_millis(500));
    let queue = Arc::new(MarkQueue::new(marker, options(capacity)));
    let (tx, rx) = oneshot::channel::<()>();
    let run = tokio::spawn({
        let queue = queue.clone();
        async move {
            queue
                .run(async {
                    let _ = rx.await;
                })
                .await;
        }
    });
    Setup {
        server,
        queue,
        stop: Some(tx),
        run,
    }
}

fn victim(i: usize) -> Victim {
    Victim {
        pod_uid: Some(format!("00000000-0000-4000-8000-{i:012x}")),
        comm: "app".into(),
        pid: 1000 + u32::try_from(i).unwrap_or(0),
        ..Victim::default()
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stats(s: &Setup) -> MarkQueueStats {
    s.queue.stats()
}

/// The Events about pod `name` (one object per series) and the annotation.
fn marked(s: &Setup, ns: &str, name: &str) -> (Option<String>, Vec<serde_json::Value>) {
    let pod = s.server.pod(ns, name).expect("pod");
    let ann = pod["metadata"]["annotations"][KEY]
        .as_str()
        .map(str::to_owned);
    let events = s
        .server
        .events()
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name || e["involvedObject"]["name"] == name)
        .collect();
    (ann, events)
}

#[tokio::test]
async fn issue_16_429_with_retry_after_is_waited_out_then_marked_once() {
    let s = setup(1, 16).await;
    s.server.add_fault(
        FaultRule::new(Fault::TooManyRequests {
            retry_after_secs: 1,
        })
        .path_contains("pods/pod-0-0")
        .times(1),
    );
    let out = s.queue.mark(&victim(0), SystemTime::now()).await;
    assert!(matches!(out, VictimOutcome::Pending { .. }), "{out:?}");
    assert!(stats(&s).pending == 1 || stats(&s).marked_late == 1);
    until("the late mark", || stats(&s).marked_late == 1).await;
    let (ann, events) = marked(&s, "ns-0", "pod-0-0");
    assert_eq!(ann.as_deref(), Some("true"));
    assert_eq!(events.len(), 1, "one Event: {events:?}");
    assert!(
        events[0]["series"].is_null(),
        "not folded twice: {events:?}"
    );
    // The 429 asked for 1 s: the annotator did not spend its own retries against it.
    let reads = s
        .server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET") && r.contains("pods/pod-0-0"))
        .count();
    assert_eq!(reads, 2, "{:?}", s.server.requests());
    assert_eq!(stats(&s).pending, 0);
}

#[tokio::test]
async fn issue_16_a_run_of_500s_and_slow_answers_end_in_one_mark() {
    let s = setup(2, 16).await;
    // Ten 500s on the first pod (more than the annotator's own retries), then answers slower than
    // the request timeout on the second.
    s.server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("pods/pod-0-0")
            .times(10),
    );
    s.server.add_fault(
        FaultRule::new(Fault::Latency(Duration::from_secs(2)))
            .path_contains("pods/pod-0-1")
            .times(3),
    );
    let a = s.queue.mark(&victim(0), SystemTime::now()).await;
    let b = s.queue.mark(&victim(1), SystemTime::now()).await;
    assert!(matches!(a, VictimOutcome::Pending { .. }), "{a:?}");
    assert!(matches!(b, VictimOutcome::Pending { .. }), "{b:?}");
    until("both late marks", || stats(&s).marked_late == 2).await;
    for (ns, name) in [("ns-0", "pod-0-0"), ("ns-1", "pod-0-1")] {
        let (ann, events) = marked(&s, ns, name);
        assert_eq!(ann.as_deref(), Some("true"), "{name}");
        assert_eq!(events.len(), 1, "{name}: {events:?}");
    }
    let st = stats(&s);
    assert!(st.retries >= 2, "{st:?}");
    assert_eq!(
        (st.pending, st.dropped_rejected, st.dropped_pod_gone),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn issue_16_an_event_that_failed_is_posted_later_without_a_second_annotation() {
    let s = setup(1, 16).await;
    s.server.add_fault(
        FaultRule::new(Fault::InternalError)
            .path_contains("/events")
            .times(3),
    );
    let out = s.queue.mark(&victim(0), SystemTime::now()).await;
    assert!(matches!(out, VictimOutcome::Pending { .. }), "{out:?}");
    assert!(
        s.queue
            .pending()
            .iter()
            .all(|m| m.annotated && !m.event_posted)
    );
    until("the late Event", || stats(&s).marked_late == 1).await;
    let (ann, events) = marked(&s, "ns-0", "pod-0-0");
    assert_eq!((ann.as_deref(), events.len()), (Some("true"), 1));
    let patches = s
        .server
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH") && r.contains("pods/pod-0-0"))
        .count();
    assert_eq!(patches, 1, "annotated once: {:?}", s.server.requests());
}

#[tokio::test]
async fn issue_16_a_pod_deleted_while_pending_is_dropped() {
    let s = setup(1, 16).await;
    s.server
        .add_fault(FaultRule::new(Fault::InternalError).path_contains("pods/pod-0-0"));
    let out = s.queue.mark(&victim(0), SystemTime::now()).await;
    assert!(matches!(out, VictimOutcome::Pending { .. }), "{out:?}");
    assert!(s.server.delete_pod("ns-0", "pod-0-0"));
    s.server.clear_faults();
    until("the drop", || stats(&s).dropped_pod_gone == 1).await;
    assert_eq!(stats(&s).pending, 0);
    assert!(s.server.events().is_empty(), "no Event for a gone pod");
}

#[tokio::test]
async fn issue_16_the_queue_holds_its_capacity_dropping_the_oldest() {
    let s = setup(5, 2).await;
    s.server
        .add_fault(FaultRule::new(Fault::InternalError).path_contains("/pods/"));
    for i in 0..5 {
        let out = s.queue.mark(&victim(i), SystemTime::now()).await;
        assert!(matches!(out, VictimOutcome::Pending { .. }), "{out:?}");
        assert!(stats(&s).pending <= 2, "{:?}", stats(&s));
    }
    let st = stats(&s);
    assert_eq!((st.pending, st.dropped_capacity), (2, 3), "{st:?}");
    let left: Vec<u32> = s.queue.pending().iter().map(|m| m.victim.pid).collect();
    assert_eq!(left, [1003, 1004], "the youngest kept");
    s.server.clear_faults();
    until("the two kept marks", || stats(&s).marked_late == 2).await;
}

#[tokio::test]
async fn issue_16_state_file_restores_marks_drops_expired_ones_and_survives_garbage() {
    use pressure_kubelet::{MarkTarget, PendingMark, StateFile};
    let s = setup(2, 16).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = StateFile::new(dir.path().join("pending.json"));
    // Two marks an earlier process left: one of a kill two hours ago (past the 1 h maximum age).
    let now = SystemTime::now();
    let mut fresh = PendingMark::new(victim(0), now);
    fresh.target = Some(MarkTarget {
        namespace: "ns-0".into(),
        name: "pod-0-0".into(),
        event: None,
    });
    fresh.event_posted = true;
    fresh.attempts = 5;
    let old = PendingMark::new(victim(1), now - Duration::from_secs(7200));
    file.save(&[old, fresh]).expect("save");
    let q = MarkQueue::new(fresh_marker(&s).await, options(16)).with_state_file(file.clone());
    let st = q.stats();
    assert_eq!((st.pending, st.dropped_expired), (1, 1), "{st:?}");
    // Restored marks are due at once, whatever backoff they had reached.
    let (tx, rx) = oneshot::channel::<()>();
    let q = Arc::new(q);
    let run = tokio::spawn({
        let q = q.clone();
        async move {
            q.run(async {
                let _ = rx.await;
            })
            .await;
        }
    });
    until("the restored mark", || q.stats().marked_late == 1).await;
    let _ = tx.send(());
    let _ = run.await;
    assert_eq!(marked(&s, "ns-0", "pod-0-0").0.as_deref(), Some("true"));
    assert!(!file.path().exists(), "nothing pending: no file");
    // A corrupt file is ignored (logged), never fatal, and replaced by the next write.
    std::fs::write(file.path(), b"\x00garbage").expect("write");
    let q = MarkQueue::new(fresh_marker(&s).await, options(16)).with_state_file(file);
    assert_eq!(q.stats().pending, 0);
}

/// Another marker over the same fake server (a second process's).
async fn fresh_marker(s: &Setup) -> VictimMarker {
    let client = ClientSource::Proxy {
        url: s.server.url().to_owned(),
    }
    .connect_without_retries()
    .await
    .expect("client");
    let cache = Arc::new(PodCache::spawn(client.clone(), &PodScope::node("node-0")));
    VictimMarker::new(cache).annotate(Annotator::new(client, "oom-tracer"), KEY, "true")
}
