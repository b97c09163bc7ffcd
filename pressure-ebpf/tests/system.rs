//! Real OOM kills on this kernel, in kubelet-shaped cgroup v1 memory cgroups (root only).
//!
//! Other tests may OOM other cgroups at the same time: events are filtered by our own pod UIDs.
//! Ours run one at a time, because the kernel prints the `oom-kill:` summary (which names the
//! limit-hit cgroup) at most 10 times per 5 s: a single-kill test waits for a burst's window to end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pressure_ebpf::{
    AttachMode, EventSource, KillKind, KillStream, OomKill, OomTracer, TraceSource, TracerOptions,
    TracerStats,
};
use tokio::sync::Mutex;

use crate::util::{Hog, KubeCgroup, have_root_v1, wait_until};

const MIB: u64 = 1 << 20;
/// `DEFAULT_RATELIMIT_INTERVAL` of the OOM killer's report, plus margin.
const RATELIMIT_WINDOW: Duration = Duration::from_secs(6);

/// Serialises the system tests; holds when the last burst ended.
static SERIAL: Mutex<Option<Instant>> = Mutex::const_new(None);

fn start(mode: TraceSource) -> (KillStream, TracerStats) {
    let (stream, stats) = OomTracer::start(TracerOptions {
        mode,
        ..TracerOptions::default()
    })
    .expect("start tracer");
    let sources = stats.sources().expect("sources");
    match mode {
        TraceSource::KmsgOnly => assert_eq!(sources.bpf, None),
        _ => assert!(sources.bpf.is_some(), "BPF attached"),
    }
    assert!(sources.kmsg);
    eprintln!("tracer sources: {sources:?}");
    (stream, stats)
}

/// Collects kills of the given victims until `want` arrived, then `settle` longer to catch extras.
async fn collect(
    stream: &mut KillStream,
    pids: &HashSet<u32>,
    want: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<OomKill> {
    let mut got = Vec::new();
    let mut end = Instant::now() + timeout;
    let mut settling = false;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Some(k)) => {
                if pids.contains(&k.pid) {
                    got.push(k);
                }
            }
            Ok(None) => panic!("tracer stream ended"),
            Err(_) if settling => return got,
            Err(_) => {
                settling = true;
                end = Instant::now() + settle;
            }
        }
        if got.len() >= want && !settling {
            settling = true;
            end = Instant::now() + settle;
        }
    }
}

async fn single_memcg_kill(mode: TraceSource) {
    if !have_root_v1(&format!("single_memcg_kill({mode:?})")) {
        return;
    }
    let last_burst = SERIAL.lock().await;
    if let Some(t) = *last_burst {
        tokio::time::sleep(RATELIMIT_WINDOW.saturating_sub(t.elapsed())).await;
    }
    let (mut stream, stats) = start(mode);
    // The pod's limit is the one hit: the kernel names the pod cgroup as oom_memcg.
    let cg = KubeCgroup::new(Some(48 * MIB), None);
    let mut hog = cg.spawn_hog();
    assert!(
        wait_until(Duration::from_secs(60), || hog.is_dead()),
        "hog was not OOM-killed"
    );
    let pids = HashSet::from([hog.pid()]);
    let kills = collect(
        &mut stream,
        &pids,
        1,
        Duration::from_secs(15),
        Duration::from_secs(3),
    )
    .await;
    let pid = hog.pid();
    assert!(hog.reap_killed(), "hog ended by SIGKILL");
    assert_eq!(cg.oom_kills(), 1, "memory.oom_control oom_kill");
    assert_eq!(kills.len(), 1, "exactly one event: {kills:#?}");
    let k = &kills[0];
    eprintln!("{}", serde_json::to_string(k).unwrap());
    assert_eq!(k.pid, pid);
    assert_eq!(k.tgid, pid);
    assert_eq!(k.comm, "tail");
    assert_eq!(k.kind, KillKind::Memcg);
    assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert_eq!(k.task_memcg.as_deref(), Some(cg.container_path().as_str()));
    assert_eq!(
        k.oom_memcg.as_deref(),
        Some(cg.pod_path().as_str()),
        "limit-hit cgroup"
    );
    assert_eq!(k.pod_uid.as_deref(), Some(cg.pod_uid.as_str()));
    assert_eq!(k.container_id.as_deref(), Some(cg.container_id.as_str()));
    assert_eq!(k.qos.as_deref(), Some("Burstable"));
    assert_eq!(
        k.cgroup_id,
        Some(cg.container_inode()),
        "kernfs id = cgroup inode"
    );
    assert!(
        k.rss_anon_kb.is_some_and(|kb| kb > 16 * 1024),
        "rss_anon_kb {:?}",
        k.rss_anon_kb
    );
    assert_eq!(k.uid, Some(0));
    match mode {
        TraceSource::KmsgOnly => assert_eq!(k.source, EventSource::Kmsg),
        _ => {
            assert_eq!(k.source, EventSource::Bpf);
            // Memory is charged by the hog itself: it triggers the OOM killer.
            assert_eq!(k.trigger_pid, Some(pid));
            assert_eq!(k.trigger_comm.as_deref(), Some("tail"));
            if stats.sources().and_then(|s| s.bpf) == Some(AttachMode::TpBtf) {
                assert!(k.dfl_cgroup_id.is_some());
            }
        }
    }
    assert_eq!(stats.ringbuf_drops(), 0);
    assert_eq!(stats.kmsg_parse_errors(), 0);
}

async fn burst(mode: TraceSource, n: usize) {
    if !have_root_v1(&format!("burst({mode:?}, {n})")) {
        return;
    }
    let mut last_burst = SERIAL.lock().await;
    let (mut stream, stats) = start(mode);
    let cgs: Vec<KubeCgroup> = (0..n)
        .map(|_| KubeCgroup::new(None, Some(16 * MIB)))
        .collect();
    let mut hogs: Vec<_> = cgs.iter().map(KubeCgroup::spawn_hog).collect();
    let all_dead = wait_until(Duration::from_secs(120), || {
        hogs.iter().all(|h| h.is_dead())
    });
    let pids: HashSet<u32> = hogs.iter().map(Hog::pid).collect();
    let kills = collect(
        &mut stream,
        &pids,
        n,
        Duration::from_secs(30),
        Duration::from_secs(3),
    )
    .await;
    *last_burst = Some(Instant::now());
    assert!(all_dead, "every hog OOM-killed");
    let expected: HashMap<u32, &KubeCgroup> = hogs.iter().map(Hog::pid).zip(&cgs).collect();
    let oom_kills: u64 = cgs.iter().map(KubeCgroup::oom_kills).sum();
    for h in &mut hogs {
        assert!(h.reap_killed());
    }
    assert_eq!(oom_kills, n as u64, "sum of memory.oom_control oom_kill");
    assert_eq!(
        kills.len(),
        n,
        "one event per kill (kernel counted {oom_kills})"
    );
    let mut seen = HashSet::new();
    let mut attributed = 0;
    for k in &kills {
        let cg = expected[&k.pid];
        // BPF reads the victim's cgroup in the kernel: always attributed. The kernel log names it
        // only in the rate-limited summary (10 per 5 s); the rest come from /proc/<pid>/cgroup,
        // which reads "/" once the victim has exited: there attribution is best effort.
        if mode != TraceSource::KmsgOnly || k.pod_uid.is_some() {
            assert_eq!(k.pod_uid.as_ref(), Some(&cg.pod_uid), "pod of {}", k.pid);
            assert_eq!(k.container_id.as_ref(), Some(&cg.container_id));
            assert_eq!(k.task_memcg.as_deref(), Some(cg.container_path().as_str()));
            attributed += 1;
        }
        assert_eq!(k.kind, KillKind::Memcg);
        assert_eq!(k.comm, "tail");
        assert!(seen.insert(k.pid), "duplicate event for {}", k.pid);
        let want = if mode == TraceSource::KmsgOnly {
            EventSource::Kmsg
        } else {
            EventSource::Bpf
        };
        assert_eq!(k.source, want);
    }
    assert_eq!(stats.ringbuf_drops(), 0, "ring-buffer drops");
    assert_eq!(stats.kmsg_parse_errors(), 0);
    let with_limit = kills.iter().filter(|k| k.oom_memcg.is_some()).count();
    eprintln!(
        "burst of {n} ({mode:?}): {} events, {attributed} mapped to their pod, {with_limit} with the (rate-limited) oom-kill summary",
        kills.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bpf_single_memcg_kill_in_kubelet_v1_cgroup() {
    single_memcg_kill(TraceSource::Bpf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsg_only_single_memcg_kill_in_kubelet_v1_cgroup() {
    single_memcg_kill(TraceSource::KmsgOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bpf_burst_of_50_memcg_kills() {
    burst(TraceSource::Bpf, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kmsg_only_burst_of_50_memcg_kills() {
    burst(TraceSource::KmsgOnly, 50).await;
}
