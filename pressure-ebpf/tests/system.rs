//! Real OOM kills on this kernel, in kubelet-shaped cgroup v1 memory cgroups (root only).
//!
//! Other tests may OOM other cgroups at the same time: events are filtered by our own pod UIDs.
//! Ours run one at a time, because the kernel prints the `oom-kill:` summary (which names the
//! limit-hit cgroup) at most 10 times per 5 s: a single-kill test waits for a burst's window to end.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use pressure_ebpf::{
    AttachMode, EventSource, KillKind, KillStream, OomKill, OomTracer, TraceSource, TracerOptions,
    TracerStats,
};
use pressure_testkit::{Hog, HogExit, HogSpec, KubeletV1Pod, require_v1_memcg, v1_oom_kill_count};
use tokio::sync::Mutex;

const MIB: u64 = 1 << 20;

/// A kubelet-shaped burstable pod in the v1 memory hierarchy at `root`, limited at the pod cgroup
/// (`pod_limit`: the kernel names the pod as the limit-hit cgroup) or at the container.
fn kube_pod(root: &Path, pod_limit: Option<u64>, container_limit: Option<u64>) -> KubeletV1Pod {
    let pod = KubeletV1Pod::create(root, "burstable", container_limit.unwrap_or(64 * MIB))
        .expect("create the pod cgroups");
    if let Some(limit) = pod_limit {
        std::fs::write(pod.pod_dir.join("memory.limit_in_bytes"), limit.to_string())
            .expect("pod limit");
    }
    if container_limit.is_none() {
        // -1 = unlimited in v1: the pod's limit is the one hit.
        std::fs::write(pod.container_dir.join("memory.limit_in_bytes"), "-1")
            .expect("lift the container limit");
    }
    pod
}

/// A cgroup directory as a path inside the hierarchy (`/kubepods/burstable/pod…/…`).
fn in_hierarchy(root: &Path, dir: &Path) -> String {
    format!(
        "/{}",
        dir.strip_prefix(root).expect("under the root").display()
    )
}

/// A hog growing 1 MiB per millisecond in the pod's container (it reaches any test limit at once).
fn spawn_hog(pod: &KubeletV1Pod) -> (Hog, String) {
    let hog = Hog::spawn_in(
        &pod.procs(),
        HogSpec {
            step_bytes: 1 << 20,
            interval: Duration::from_millis(1),
            max_bytes: None,
        },
    )
    .expect("spawn hog");
    // The forked hog has the test thread's name; the events must report it.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", hog.pid()))
        .expect("hog comm")
        .trim_end()
        .to_owned();
    (hog, comm)
}
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
    let Some(root) = require_v1_memcg(&format!("single_memcg_kill({mode:?})")) else {
        return;
    };
    let last_burst = SERIAL.lock().await;
    if let Some(t) = *last_burst {
        tokio::time::sleep(RATELIMIT_WINDOW.saturating_sub(t.elapsed())).await;
    }
    let (mut stream, stats) = start(mode);
    // The pod's limit is the one hit: the kernel names the pod cgroup as oom_memcg.
    let cg = kube_pod(&root, Some(48 * MIB), None);
    let (mut hog, comm) = spawn_hog(&cg);
    assert!(
        hog.wait_exit_unreaped(Duration::from_secs(60))
            .expect("waitid"),
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
    assert_eq!(
        hog.try_wait().expect("reap"),
        Some(HogExit::Signaled(libc::SIGKILL)),
        "hog ended by SIGKILL"
    );
    assert_eq!(
        v1_oom_kill_count(&cg.container_dir).expect("memory.oom_control"),
        1,
        "memory.oom_control oom_kill"
    );
    assert_eq!(kills.len(), 1, "exactly one event: {kills:#?}");
    let k = &kills[0];
    eprintln!("{}", serde_json::to_string(k).unwrap());
    assert_eq!(k.pid, pid);
    assert_eq!(k.tgid, pid);
    assert_eq!(k.comm, comm);
    assert_eq!(k.kind, KillKind::Memcg);
    assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert_eq!(
        k.task_memcg.as_deref(),
        Some(in_hierarchy(&root, &cg.container_dir).as_str())
    );
    assert_eq!(
        k.oom_memcg.as_deref(),
        Some(in_hierarchy(&root, &cg.pod_dir).as_str()),
        "limit-hit cgroup"
    );
    assert_eq!(k.pod_uid.as_deref(), Some(cg.pod_uid.as_str()));
    assert_eq!(k.container_id.as_deref(), Some(cg.container_id.as_str()));
    assert_eq!(k.qos.as_deref(), Some("Burstable"));
    assert_eq!(
        k.cgroup_id,
        Some(std::fs::metadata(&cg.container_dir).expect("cgroup").ino()),
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
            assert_eq!(k.trigger_comm.as_deref(), Some(comm.as_str()));
            if stats.sources().and_then(|s| s.bpf) == Some(AttachMode::TpBtf) {
                assert!(k.dfl_cgroup_id.is_some());
            }
        }
    }
    assert_eq!(stats.ringbuf_drops(), 0);
    assert_eq!(stats.kmsg_parse_errors(), 0);
}

async fn burst(mode: TraceSource, n: usize) {
    let Some(root) = require_v1_memcg(&format!("burst({mode:?}, {n})")) else {
        return;
    };
    let mut last_burst = SERIAL.lock().await;
    let (mut stream, stats) = start(mode);
    let cgs: Vec<KubeletV1Pod> = (0..n)
        .map(|_| kube_pod(&root, None, Some(16 * MIB)))
        .collect();
    let (mut hogs, comms): (Vec<Hog>, Vec<String>) = cgs.iter().map(spawn_hog).unzip();
    let deadline = Instant::now() + Duration::from_secs(120);
    let all_dead = hogs.iter_mut().all(|h| {
        h.wait_exit_unreaped(deadline.saturating_duration_since(Instant::now()))
            .expect("waitid")
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
    let expected: HashMap<u32, (&KubeletV1Pod, &String)> = hogs
        .iter()
        .map(Hog::pid)
        .zip(cgs.iter().zip(&comms))
        .collect();
    let oom_kills: u64 = cgs
        .iter()
        .map(|cg| v1_oom_kill_count(&cg.container_dir).unwrap_or(0))
        .sum();
    for h in &mut hogs {
        assert_eq!(
            h.try_wait().expect("reap"),
            Some(HogExit::Signaled(libc::SIGKILL))
        );
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
        let (cg, comm) = expected[&k.pid];
        // BPF reads the victim's cgroup in the kernel: always attributed. The kernel log names it
        // only in the rate-limited summary (10 per 5 s); the rest come from /proc/<pid>/cgroup,
        // which reads "/" once the victim has exited: there attribution is best effort.
        if mode != TraceSource::KmsgOnly || k.pod_uid.is_some() {
            assert_eq!(k.pod_uid.as_ref(), Some(&cg.pod_uid), "pod of {}", k.pid);
            assert_eq!(k.container_id.as_ref(), Some(&cg.container_id));
            assert_eq!(
                k.task_memcg.as_deref(),
                Some(in_hierarchy(&root, &cg.container_dir).as_str())
            );
            attributed += 1;
        }
        assert_eq!(k.kind, KillKind::Memcg);
        assert_eq!(&k.comm, comm);
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
