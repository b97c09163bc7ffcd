//! Kernel-log-only mode on real kernel logs (tests/fixtures/kmsg, see its README).

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use pressure_ebpf::{
    EventSource, HostPaths, KillKind, OomKill, OomTracer, TraceSource, TracerOptions,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kmsg")
        .join(name)
}

/// Replays a captured log with empty host paths (nothing of this machine leaks in).
async fn replay(name: &str) -> Vec<OomKill> {
    let empty = tempfile::tempdir().unwrap();
    let opts = TracerOptions {
        mode: TraceSource::KmsgOnly,
        kmsg_path: fixture(name),
        replay_kmsg: true,
        host: HostPaths {
            proc_root: empty.path().to_owned(),
            memcg_v1_root: None,
            unified_root: empty.path().to_owned(),
        },
        ..TracerOptions::default()
    };
    let (stream, stats) = OomTracer::start(opts).unwrap();
    let kills: Vec<OomKill> =
        tokio::time::timeout(Duration::from_secs(5), stream.take(1).collect())
            .await
            .expect("a kill from the captured log");
    assert_eq!(stats.kmsg_parse_errors(), 0);
    assert_eq!(stats.sources().map(|s| (s.bpf, s.kmsg)), Some((None, true)));
    kills
}

#[tokio::test]
async fn replays_memcg_kill_of_v2_container_scope_on_6_1() {
    let kills = replay("memcg_v2_kernel_6.1.kmsg").await;
    let k = &kills[0];
    assert_eq!(
        (k.pid, k.comm.as_str(), k.kind, k.source),
        (85, "dd", KillKind::Memcg, EventSource::Kmsg)
    );
    assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert_eq!(
        k.pod_uid.as_deref(),
        Some("0f3c1a2b-1111-2222-3333-444455556666")
    );
    assert_eq!(
        k.container_id.as_deref(),
        Some("aaaabbbbccccddddeeeeffff00001111222233334444555566667777888899990000")
    );
    assert_eq!(k.runtime.as_deref(), Some("containerd"));
    assert_eq!(k.qos.as_deref(), Some("Burstable"));
    assert_eq!(k.oom_memcg, k.task_memcg);
    assert_eq!(
        (k.rss_anon_kb, k.rss_file_kb, k.rss_shmem_kb),
        (Some(48984), Some(4), Some(1580))
    );
    assert_eq!(k.cgroup_id, None, "no cgroupfs to stat in this test");
}

#[tokio::test]
async fn replays_memcg_kill_in_v1_hierarchy_on_6_18() {
    let kills = replay("memcg_v1_kernel_6.18.kmsg").await;
    let k = &kills[0];
    assert_eq!(
        (k.pid, k.comm.as_str(), k.kind),
        (28225, "python3", KillKind::Memcg)
    );
    assert_eq!(k.oom_memcg.as_deref(), Some("/ceotest"));
    assert_eq!(k.task_memcg.as_deref(), Some("/ceotest"));
    assert_eq!(k.pod_uid, None);
    let json = serde_json::to_value(k).unwrap();
    assert_eq!(json["kind"], "memcg");
    assert_eq!(json["source"], "kmsg");
    assert_eq!(json["rss_anon_kb"], 65152);
    assert!(
        json["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{json}"
    );
}

#[tokio::test]
async fn replays_global_kill_on_6_1() {
    let kills = replay("global_kernel_6.1.kmsg").await;
    let k = &kills[0];
    assert_eq!(
        (k.pid, k.comm.as_str(), k.kind),
        (89, "hog", KillKind::Global)
    );
    assert_eq!(k.constraint.as_deref(), Some("CONSTRAINT_NONE"));
    assert_eq!(k.oom_memcg, None);
    assert_eq!(k.task_memcg.as_deref(), Some("/"));
}
