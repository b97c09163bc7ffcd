//! Reader, discovery and OOM notification on real v1 memory cgroups (kubelet-shaped, removed afterwards).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use pressure_cgroup::{
    CgroupLayout, CgroupReader, CgroupRole, CgroupVersion, OomNotifier, ReadBuffer,
    discover_kubepods, parse_cgroup_path,
};
use pressure_testkit::{Hog, HogExit, HogSpec, KubeletV1Pod, require_v1_memcg, v1_oom_kill_count};

fn poll_readable(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&raw mut pfd, 1, timeout.as_millis() as i32) == 1 }
}

#[test]
fn layout_of_this_machine_is_v1_memory() {
    let Some(root) = require_v1_memcg("layout_of_this_machine_is_v1_memory") else {
        return;
    };
    let sys = root.parent().expect("parent of memory/");
    let layout = CgroupLayout::detect(sys).expect("detect");
    assert_eq!(layout.version(), CgroupVersion::V1);
    assert_eq!(layout.memory_root(), root);
}

#[test]
fn reader_reports_a_real_hog() {
    let Some(root) = require_v1_memcg("reader_reports_a_real_hog") else {
        return;
    };
    let pod = KubeletV1Pod::create(&root, "burstable", 64 << 20).expect("pod");
    let spec = HogSpec {
        step_bytes: 16 << 20,
        interval: Duration::from_millis(1),
        max_bytes: Some(16 << 20),
    };
    let _hog = Hog::spawn_in(&pod.procs(), spec).expect("hog");
    let mut reader = CgroupReader::open(&pod.container_dir, CgroupVersion::V1).expect("open");
    let mut buf = ReadBuffer::new();
    let mut stats = reader.read(&mut buf).expect("read");
    for _ in 0..500 {
        if stats.usage_bytes >= 16 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        stats = reader.read(&mut buf).expect("read");
    }
    assert!(stats.usage_bytes >= 16 << 20, "{stats:?}");
    assert!(stats.usage_bytes < 64 << 20, "{stats:?}");
    assert_eq!(stats.limit_bytes, Some(64 << 20));
    assert!(stats.working_set_bytes <= stats.usage_bytes);
    assert!(
        stats.working_set_bytes >= 16 << 20,
        "anonymous memory is all working set"
    );
    assert_eq!(stats.oom.oom_kill, 0);
    assert_eq!(stats.psi, None, "v1 has no memory.pressure");

    // The pod cgroup has no limit of its own: unlimited (2^63 - page).
    let mut pod_reader = CgroupReader::open(&pod.pod_dir, CgroupVersion::V1).expect("open");
    let pod_stats = pod_reader.read(&mut buf).expect("read");
    assert_eq!(pod_stats.limit_bytes, None);
    assert!(
        pod_stats.usage_bytes >= stats.usage_bytes - (1 << 20),
        "hierarchical usage"
    );
}

#[test]
fn discovery_finds_the_pod_and_container() {
    let Some(root) = require_v1_memcg("discovery_finds_the_pod_and_container") else {
        return;
    };
    let pod = KubeletV1Pod::create(&root, "besteffort", 64 << 20).expect("pod");
    let mine: Vec<_> = discover_kubepods(&root)
        .expect("walk")
        .into_iter()
        .filter(|c| c.identity.pod_uid == pod.pod_uid)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert_eq!(mine[0].role, CgroupRole::Pod);
    assert_eq!(mine[1].role, CgroupRole::Container);
    assert_eq!(
        mine[1].identity.container_id.as_deref(),
        Some(pod.container_id.as_str())
    );
    assert_eq!(
        parse_cgroup_path(&pod.container_dir.to_string_lossy()),
        Some(mine[1].identity.clone())
    );
}

#[test]
fn eventfd_wakes_on_a_real_oom_kill_and_vanished_is_reported() {
    let Some(root) = require_v1_memcg("eventfd_wakes_on_a_real_oom_kill") else {
        return;
    };
    let mut pod = KubeletV1Pod::create(&root, "burstable", 32 << 20).expect("pod");
    let mut reader = CgroupReader::open(&pod.container_dir, CgroupVersion::V1).expect("open");
    let mut notifier = OomNotifier::new().expect("notifier");
    notifier.watch(42, &reader).expect("watch");
    let mut ready = Vec::new();
    notifier.drain(&mut ready).expect("drain");
    assert!(ready.is_empty());

    let spec = HogSpec {
        step_bytes: 4 << 20,
        interval: Duration::from_millis(5),
        max_bytes: None,
    };
    let mut hog = Hog::spawn_in(&pod.procs(), spec).expect("hog");
    assert!(
        poll_readable(notifier.as_raw_fd(), Duration::from_secs(20)),
        "no OOM notification"
    );
    notifier.drain(&mut ready).expect("drain");
    assert_eq!(ready, vec![42]);
    assert_eq!(
        hog.wait_timeout(Duration::from_secs(10)).expect("wait"),
        Some(HogExit::Signaled(libc::SIGKILL))
    );
    let mut buf = ReadBuffer::new();
    assert_eq!(reader.read(&mut buf).expect("read").oom.oom_kill, 1);
    assert_eq!(v1_oom_kill_count(&pod.container_dir).expect("count"), 1);

    // The container exits and its cgroup goes: the open reader reports it vanished.
    let dir = pod.container_dir.clone();
    pod.remove();
    assert!(!Path::new(&dir).exists());
    let err = reader.read(&mut buf).expect_err("gone");
    assert!(err.is_vanished(), "{err}");
    notifier.unwatch(42);
    assert!(notifier.is_empty());
}
