//! The watch loop of `examples/watch_node.rs` (node scope over the real `/sys/fs/cgroup`, default
//! thresholds) against a real kubelet-shaped v1 pod whose container a hog fills: the events arrive,
//! and the stop token ends the loop.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pressure_cgroup::{CgroupLayout, Scope, WatchOptions, Watcher};
use pressure_core::{Engine, Event, EventType, Severity, ThresholdsConfig};
use pressure_testkit::{Hog, HogSpec, KubeletV1Pod, require_v1_memcg};

#[test]
fn node_watch_reports_a_real_pod_going_critical() {
    let Some(memory_root) = require_v1_memcg("node_watch_reports_a_real_pod_going_critical") else {
        return;
    };
    let sys = memory_root.parent().expect("parent of memory/");
    // 56 MiB of anonymous memory in a 64 MiB container: 87.5 % and more, critical (85 %), no OOM.
    let pod = KubeletV1Pod::create(&memory_root, "burstable", 64 << 20).expect("pod");
    let layout = CgroupLayout::detect(sys).expect("layout");
    let mut options = WatchOptions::new(Scope::Node);
    options.interval = Duration::from_millis(100);
    let mut watcher = Watcher::new(
        layout,
        Engine::new(&ThresholdsConfig::default(), false),
        options,
    )
    .expect("watcher");
    let stop = watcher.stop_token();
    let (tx, rx) = mpsc::channel::<Event>();
    let (tick_tx, tick_rx) = mpsc::channel::<()>();
    let looping = std::thread::spawn(move || {
        struct Forward(mpsc::Sender<Event>, mpsc::Sender<()>);
        impl pressure_cgroup::Observer for Forward {
            fn event(&mut self, event: &Event) {
                let _ = self.0.send(event.clone());
            }
            fn first_tick(&mut self) {
                let _ = self.1.send(());
            }
        }
        watcher.run(&mut Forward(tx, tick_tx))
    });
    // The pod is watched (the first tick is done) before it fills: the rise is seen, not only its end.
    tick_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("first tick");
    let _hog = Hog::spawn_in(
        &pod.procs(),
        HogSpec {
            step_bytes: 1 << 20,
            interval: Duration::from_millis(50),
            max_bytes: Some(56 << 20),
        },
    )
    .expect("hog");

    let mine = |e: &Event| e.container_id.as_deref() == Some(pod.container_id.as_str());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let critical = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no critical event for the pod; saw {seen:?}"));
        if !mine(&event) {
            continue;
        }
        seen.push((event.event_type, event.severity));
        if event.event_type == EventType::MemoryPressure && event.severity == Severity::Critical {
            break event;
        }
    };
    assert_eq!(critical.pod_uid.as_deref(), Some(pod.pod_uid.as_str()));
    assert_eq!(critical.limit_bytes, Some(64 << 20));
    assert!(
        critical.usage_percent.is_some_and(|p| p >= 85.0),
        "{critical:?}"
    );
    assert!(
        seen.contains(&(EventType::MemoryPressure, Severity::Warn)),
        "a 1 MiB-per-50 ms rise sampled every 100 ms passes warn (70-85 %, about 0.5 s) first: {seen:?}"
    );

    stop.stop();
    looping
        .join()
        .expect("loop thread")
        .expect("the loop ends cleanly on stop");
}
