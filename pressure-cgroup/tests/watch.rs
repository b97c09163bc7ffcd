//! The watch loop of `examples/watch_node.rs` (node scope over the real `/sys/fs/cgroup`, default
//! thresholds) against a real kubelet-shaped v1 pod whose container a hog fills: the events arrive,
//! and the stop token ends the loop.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pressure_cgroup::{CgroupLayout, Scope, StopToken, WatchOptions, Watcher};
use pressure_core::{Engine, Event, EventType, Severity, ThresholdsConfig};
use pressure_testkit::{
    CgroupDirs, Hog, HogSpec, KubeletV1Pod, require_v1_memcg, unique_container_id, unique_pod_uid,
};

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
    let (stop, rx, tick_rx, looping) = start_watching(layout, options);
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

    let mine = |e: &Event| e.target.container_id.as_deref() == Some(pod.container_id.as_str());
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
    assert_eq!(
        critical.target.pod_uid.as_deref(),
        Some(pod.pod_uid.as_str())
    );
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

/// Issue 19: a node of 5 000 containers (500 kubelet-shaped pods of 10, 5 500 real v1 memory cgroups)
/// is watched with a bounded number of descriptors: at most `open_files` usage files plus a few, not
/// five per cgroup. A container beyond that budget (its files opened for each read) still reports
/// its pressure.
#[test]
fn five_thousand_cgroups_with_bounded_descriptors() {
    let Some(memory_root) = require_v1_memcg("five_thousand_cgroups_with_bounded_descriptors")
    else {
        return;
    };
    const PODS: usize = 500;
    const CONTAINERS: usize = 10;
    const OPEN_FILES: usize = 1000;
    let parent = memory_root.join(format!("pressure-5k-{}", unique_pod_uid()));
    let mut dirs = CgroupDirs::new();
    let qos = parent.join("kubepods/burstable");
    for dir in [parent.clone(), parent.join("kubepods"), qos.clone()] {
        dirs.create_all(&dir).expect("mkdir");
    }
    for _ in 0..PODS {
        let pod = qos.join(format!("pod{}", unique_pod_uid()));
        dirs.create_all(&pod).expect("mkdir pod");
        for _ in 0..CONTAINERS {
            let container = pod.join(unique_container_id());
            dirs.create_all(&container).expect("mkdir container");
            std::fs::write(container.join("memory.limit_in_bytes"), "67108864")
                .expect("limit 64 MiB");
        }
    }
    // Discovery sorts by name: the greatest container ID is added last, beyond the budget.
    let last = {
        let mut all: Vec<_> = std::fs::read_dir(&qos)
            .expect("readdir")
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .flat_map(|pod| {
                std::fs::read_dir(pod.path())
                    .expect("readdir pod")
                    .flatten()
            })
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        all.sort();
        all.pop().expect("a container")
    };
    let container_id = last
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();

    let fds = || std::fs::read_dir("/proc/self/fd").expect("fds").count();
    let before = fds();
    let layout = CgroupLayout::detect(&parent).expect("layout");
    let mut options = WatchOptions::new(Scope::Node);
    options.interval = Duration::from_millis(200);
    options.open_files = OPEN_FILES;
    let (stop, rx, tick_rx, looping) = start_watching(layout, options);
    tick_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("first tick over 5 500 cgroups");
    let during = fds();
    // Other tests of this binary run alongside and hold a few descriptors of their own.
    assert!(
        during <= before + OPEN_FILES + 64,
        "{during} descriptors open while watching {} cgroups (before: {before}; budget {OPEN_FILES})",
        PODS * (CONTAINERS + 1)
    );

    let _hog = Hog::spawn_in(
        &last.join("cgroup.procs"),
        HogSpec {
            step_bytes: 4 << 20,
            interval: Duration::from_millis(20),
            max_bytes: Some(56 << 20),
        },
    )
    .expect("hog");
    let deadline = Instant::now() + Duration::from_secs(30);
    let critical = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx
            .recv_timeout(left)
            .expect("a critical event for the container beyond the descriptor budget");
        if event.target.container_id.as_deref() == Some(container_id.as_str())
            && event.severity == Severity::Critical
        {
            break event;
        }
    };
    assert_eq!(critical.limit_bytes, Some(64 << 20));
    stop.stop();
    looping
        .join()
        .expect("loop thread")
        .expect("the loop ends cleanly on stop");
    drop(_hog);
    dirs.remove_all();
}

/// The thread running a [`Watcher`].
type WatchThread = std::thread::JoinHandle<Result<(), pressure_cgroup::WatchError>>;

/// Runs a [`Watcher`] with default thresholds on a thread: its stop token, its events, a message at its
/// first tick, and the thread.
fn start_watching(
    layout: CgroupLayout,
    options: WatchOptions,
) -> (
    StopToken,
    mpsc::Receiver<Event>,
    mpsc::Receiver<()>,
    WatchThread,
) {
    struct Forward(mpsc::Sender<Event>, mpsc::Sender<()>);
    impl pressure_cgroup::Observer for Forward {
        fn event(&mut self, event: &Event) {
            let _ = self.0.send(event.clone());
        }
        fn first_tick(&mut self) {
            let _ = self.1.send(());
        }
    }
    let mut watcher = Watcher::new(
        layout,
        Engine::new(&ThresholdsConfig::default(), false),
        options,
    )
    .expect("watcher");
    let stop = watcher.stop_token();
    let (tx, rx) = mpsc::channel::<Event>();
    let (tick_tx, tick_rx) = mpsc::channel::<()>();
    let looping = std::thread::spawn(move || watcher.run(&mut Forward(tx, tick_tx)));
    (stop, rx, tick_rx, looping)
}
