//! Chaos (issue 16 item 2): `ClusterPoller` through API-server faults of 20 s and 60 s — an outage
//! (every connection closed, new ones refused), 429 with `Retry-After`, a run of 500s, watches answered
//! `410 Expired`, slow answers — against the fake API server, which can fail on cue where a real one
//! cannot.
//!
//! Each scenario: a container goes critical and another warns; the fault starts (open connections,
//! watches included, are cut first, so the watch must come back through it); halfway through, the
//! critical container is OOM-killed (pod status `restartCount` 1 and `lastState` `OOMKilled`, as the
//! kubelet writes it) and its new instance uses little memory, and an idle pod is deleted; the fault
//! ends. Expected, whatever the fault: exactly one `oom_killed` (counter 1) and one `recovered` for
//! the killed container, no second critical or warn (the cooldown is 600 s), no event for the idle
//! pods, and the deleted pod's container forgotten (the poller's `tracked` gauge). The fault kinds of
//! one duration run side by side (a server and a poller each), so a duration costs its own length
//! once. Waits are for events, the server's request log and counters; the fault durations and the
//! kill at half of them are the scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pressure_core::{Config, Engine, Event};
use pressure_kubelet::{ClientSource, ClusterPoller, PollerOptions};
use pressure_testkit::{ContainerUsage, FakeApiServer, Fault, FaultRule, World};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

const MIB: u64 = 1 << 20;
/// `Retry-After` of the 429 phase, in seconds.
const RETRY_AFTER: u64 = 5;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Every connection closed, every new one closed unanswered.
    Outage,
    /// Every request answered 429 with `Retry-After`.
    TooManyRequests,
    /// Every request answered 500.
    InternalErrors,
    /// The watch log compacted and every watch answered `410 Expired` in-stream: relists only.
    WatchExpired,
    /// Every answer 4 s late: summaries outlive many poll intervals.
    Slow,
}

const KINDS: [Kind; 5] = [
    Kind::Outage,
    Kind::TooManyRequests,
    Kind::InternalErrors,
    Kind::WatchExpired,
    Kind::Slow,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_loses_nothing_through_faults_of_20_s() {
    every_kind(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_loses_nothing_through_faults_of_60_s() {
    every_kind(Duration::from_secs(60)).await;
}

async fn every_kind(d: Duration) {
    let runs = KINDS.map(|kind| tokio::spawn(scenario(kind, d)));
    let mut failures = Vec::new();
    for (kind, run) in KINDS.iter().zip(runs) {
        match run.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{kind:?} for {d:?}: {e}")),
            Err(e) => failures.push(format!("{kind:?} for {d:?}: panicked: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A poller against its own fake server, with the events it emitted.
struct Run {
    server: FakeApiServer,
    rx: mpsc::UnboundedReceiver<Event>,
    events: Vec<Event>,
    tracked: Arc<AtomicU64>,
}

impl Run {
    /// Waits up to `timeout` for an event matching `f` (every event received is kept).
    async fn event(
        &mut self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Event) -> bool,
    ) -> Result<(), String> {
        if self.events.iter().any(&f) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => {
                    let hit = f(&e);
                    self.events.push(e);
                    if hit {
                        return Ok(());
                    }
                }
                Ok(None) => return Err(format!("the poller stopped before {what}")),
                Err(_) => {
                    return Err(format!(
                        "no {what} within {timeout:?}; events: {:?}",
                        summary(&self.events)
                    ));
                }
            }
        }
    }

    /// Summary requests for `node` in the server's log from entry `from` on.
    fn summaries(&self, node: &str, from: usize) -> usize {
        let needle = format!("/nodes/{node}/proxy/stats/summary");
        self.server
            .requests()
            .iter()
            .skip(from)
            .filter(|r| r.contains(&needle))
            .count()
    }
}

fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}:{}<-{} count={:?}",
                e.target.pod_name.as_deref().unwrap_or_default(),
                e.event_type.as_str(),
                e.severity.as_str(),
                e.previous_severity.as_str(),
                e.oom_kill_count
            )
        })
        .collect()
}

fn is(e: &Event, pod: &str, ty: &str) -> bool {
    e.target.pod_name.as_deref() == Some(pod) && e.event_type.as_str() == ty
}

/// Polls `f` every 50 ms until it holds or `timeout` passes.
async fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn scenario(kind: Kind, d: Duration) -> Result<(), String> {
    // node-0: pod-0-0 (ns-0, goes critical, killed), pod-0-1 (ns-1, idle); node-1: pod-1-0 (ns-0,
    // warns), pod-1-1 (ns-1, idle, deleted during the fault).
    let server = FakeApiServer::start(World::synthetic(2, 2))
        .await
        .map_err(|e| e.to_string())?;
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(240 * MIB),
    );
    server.set_usage(
        "ns-0",
        "pod-1-0",
        "app",
        ContainerUsage::working_set(200 * MIB),
    );
    let source = ClientSource::Proxy {
        url: server.url().to_owned(),
    };
    let client = source.connect().await.map_err(|e| e.to_string())?;
    let summaries = source
        .connect_without_retries()
        .await
        .map_err(|e| e.to_string())?;
    let mut config = Config::default();
    config.thresholds.cooldown_seconds = 600.0;
    config.thresholds.predict_seconds = 0.0;
    let engine = Engine::new(&config.thresholds, false);
    let options = PollerOptions {
        interval: Duration::from_millis(100),
        ..PollerOptions::default()
    };
    let poller = ClusterPoller::new(engine, client, summaries, options);
    let tracked = poller.tracked();
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(
        poller.run(move |e: &Event| drop(tx.send(e.clone())), async move {
            let _ = stop_rx.await;
        }),
    );
    let mut run = Run {
        server,
        rx,
        events: Vec::new(),
        tracked,
    };
    let result = faults(&mut run, kind, d).await;
    let _ = stop_tx.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), task).await;
    result?;
    match stopped {
        Ok(Ok(Ok(()))) => Ok(()),
        other => Err(format!("the poller did not stop cleanly: {other:?}")),
    }
}

async fn faults(run: &mut Run, kind: Kind, d: Duration) -> Result<(), String> {
    let start = Duration::from_secs(30);
    run.event("critical for pod-0-0", start, |e| {
        is(e, "pod-0-0", "memory_pressure") && e.severity.as_str() == "critical"
    })
    .await?;
    run.event("warn for pod-1-0", start, |e| {
        is(e, "pod-1-0", "memory_pressure") && e.severity.as_str() == "warn"
    })
    .await?;
    until("4 containers tracked", start, || {
        run.tracked.load(Ordering::Relaxed) == 4
    })
    .await?;

    let server = &run.server;
    let logged = server.requests().len();
    let began = tokio::time::Instant::now();
    match kind {
        Kind::Outage => server.outage(d),
        Kind::TooManyRequests => {
            server.add_fault(
                FaultRule::new(Fault::TooManyRequests {
                    retry_after_secs: RETRY_AFTER,
                })
                .during(d),
            );
            server.close_connections();
        }
        Kind::InternalErrors => {
            server.add_fault(FaultRule::new(Fault::InternalError).during(d));
            server.close_connections();
        }
        Kind::WatchExpired => {
            server.add_fault(
                FaultRule::new(Fault::Expired)
                    .path_contains("watch=true")
                    .during(d),
            );
            server.compact();
            server.close_connections();
        }
        Kind::Slow => {
            server.add_fault(FaultRule::new(Fault::Latency(Duration::from_secs(4))).during(d));
            server.close_connections();
        }
    }
    // Halfway through: the kernel kills pod-0-0's container, the kubelet restarts it and writes the
    // status; the new instance is small. pod-1-1 is deleted.
    tokio::time::sleep_until(began + d / 2).await;
    let killed = server.update_pod("ns-0", "pod-0-0", |p| {
        let cs = &mut p["status"]["containerStatuses"][0];
        let old = cs["containerID"].clone();
        cs["restartCount"] = json!(1);
        cs["containerID"] = json!(format!("containerd://{}", "e".repeat(64)));
        cs["lastState"] = json!({"terminated": {"reason": "OOMKilled", "exitCode": 137,
            "containerID": old, "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:10:00Z"}});
    });
    server.set_usage(
        "ns-0",
        "pod-0-0",
        "app",
        ContainerUsage::working_set(20 * MIB),
    );
    let deleted = server.delete_pod("ns-1", "pod-1-1");
    if !(killed && deleted) {
        return Err("the fake server lost its pods".into());
    }
    tokio::time::sleep_until(began + d).await;
    server.end_outage();
    server.clear_faults();
    let phase: Vec<String> = server.requests().into_iter().skip(logged).collect();

    // The fault did bite: the poller met it.
    let met = match kind {
        Kind::Outage => server.refused_connections() as usize,
        Kind::WatchExpired => phase.iter().filter(|r| r.contains("watch=true")).count(),
        _ => phase
            .iter()
            .filter(|r| r.contains("/stats/summary"))
            .count(),
    };
    if met == 0 {
        return Err(format!("the poller never met the fault: {phase:?}"));
    }
    // 429: each node is left alone for Retry-After (5 s) each time, not polled every 100 ms.
    if let Kind::TooManyRequests = kind {
        let node0 = phase
            .iter()
            .filter(|r| r.contains("/nodes/node-0/proxy/stats/summary"))
            .count();
        let most = (d.as_secs() / RETRY_AFTER + 3) as usize;
        if node0 > most {
            return Err(format!(
                "node-0 was asked {node0} times in a {d:?} phase of 429 with Retry-After: {RETRY_AFTER}"
            ));
        }
    }

    // After the fault: the kill and the recovery, each once. The watch's backoff may reach 30 s.
    let after = Duration::from_secs(120);
    run.event("oom_killed for pod-0-0", after, |e| {
        is(e, "pod-0-0", "oom_killed")
    })
    .await?;
    run.event("recovered for pod-0-0", after, |e| {
        is(e, "pod-0-0", "recovered")
    })
    .await?;
    // Proof that a duplicate would have been seen: both nodes read at least 20 more times, and the
    // deleted pod's container forgotten.
    let mark = run.server.requests().len();
    until("20 more summaries of each node", after, || {
        run.summaries("node-0", mark) >= 20 && run.summaries("node-1", mark) >= 20
    })
    .await?;
    until("pod-1-1's container forgotten", after, || {
        run.tracked.load(Ordering::Relaxed) == 3
    })
    .await?;
    while let Ok(e) = run.rx.try_recv() {
        run.events.push(e);
    }

    let got = summary(&run.events);
    let of = |pod: &str| -> Vec<String> {
        got.iter()
            .filter(|s| s.starts_with(&format!("{pod} ")))
            .cloned()
            .collect()
    };
    let mut killed = of("pod-0-0");
    killed.sort();
    let expected = [
        "pod-0-0 memory_pressure:critical<-ok count=Some(0)",
        "pod-0-0 oom_killed:critical<-critical count=Some(1)",
        "pod-0-0 recovered:ok<-critical count=Some(1)",
    ];
    // The kill may be seen before or after the first reading of the new instance.
    let expected_after_recovery = [
        "pod-0-0 memory_pressure:critical<-ok count=Some(0)",
        "pod-0-0 oom_killed:ok<-ok count=Some(1)",
        "pod-0-0 recovered:ok<-critical count=Some(0)",
    ];
    if killed != expected && killed != expected_after_recovery {
        return Err(format!("pod-0-0's events: {killed:?}; all: {got:?}"));
    }
    if of("pod-1-0") != ["pod-1-0 memory_pressure:warn<-ok count=Some(0)"] {
        return Err(format!("pod-1-0's events: {:?}", of("pod-1-0")));
    }
    if got.len() != 4 {
        return Err(format!("events for idle pods: {got:?}"));
    }
    Ok(())
}
