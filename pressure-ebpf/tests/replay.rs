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
    // Issue 18 item 3: the kill explained from the kernel's report.
    let e = &json["explanation"];
    assert_eq!(e["report"], true, "{e}");
    assert_eq!(
        (e["usage_kb"].as_u64(), e["limit_kb"].as_u64()),
        (Some(65536), Some(65536))
    );
    assert_eq!(e["failcnt"], 5687);
    assert_eq!(e["memcg"], "/ceotest");
    assert_eq!(
        (e["victim_anon_kb"].as_u64(), e["victim_file_kb"].as_u64()),
        (Some(65152), Some(4796))
    );
    assert_eq!(e["tasks"], 1);
    assert_eq!(e["top_tasks"][0]["pid"], 28225);
    assert_eq!(e["top_tasks"][0]["rss_anon_kb"], 16288 * 4);
    assert_eq!(e["trigger_comm"], "python3");
    assert_eq!(
        e["clause"],
        "was OOM-killed at its 64 MiB limit: python3 (pid 28225) held 64 MiB anon, 5 MiB file; no other tasks"
    );
}

#[tokio::test]
async fn explains_v2_and_global_kills_on_6_1() {
    let kills = replay("memcg_v2_kernel_6.1.kmsg").await;
    let e = kills[0].explanation.as_ref().expect("explanation");
    assert_eq!((e.usage_kb, e.limit_kb), (Some(49152), Some(49152)));
    assert_eq!(e.memcg_anon_kb, Some(50_216_960 / 1024));
    assert_eq!(e.top_tasks[0].rss_kb, 12642 * 4);
    assert_eq!(
        e.clause,
        "was OOM-killed at its 48 MiB limit: dd (pid 85) held 48 MiB anon, 2 MiB shmem; no other tasks"
    );
    let kills = replay("global_kernel_6.1.kmsg").await;
    let e = kills[0].explanation.as_ref().expect("explanation");
    assert_eq!((e.usage_kb, e.limit_kb, e.tasks), (None, None, Some(1)));
    assert!(
        e.clause
            .starts_with("was OOM-killed because the node ran out of memory: hog (pid 89)"),
        "{}",
        e.clause
    );
}

#[tokio::test]
async fn a_kill_without_its_report_is_explained_from_the_killed_record() {
    // The report and summary are rate-limited together (dump_header); only `Killed process` remains.
    let text = std::fs::read_to_string(fixture("memcg_v1_kernel_6.18.kmsg")).unwrap();
    let last = text.lines().last().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed-only.kmsg");
    std::fs::write(&path, format!("{last}\n")).unwrap();
    let (mut stream, _stats) = OomTracer::start(TracerOptions {
        mode: TraceSource::KmsgOnly,
        kmsg_path: path,
        host: HostPaths {
            proc_root: dir.path().to_owned(),
            memcg_v1_root: None,
            unified_root: dir.path().to_owned(),
        },
        ..TracerOptions::default()
    })
    .unwrap();
    let k = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap();
    let e = k.explanation.expect("explanation");
    assert!(!e.report);
    assert_eq!((e.usage_kb, e.tasks), (None, None));
    assert_eq!(
        e.clause,
        "was OOM-killed at its memory limit: python3 (pid 28225) held 64 MiB anon, 5 MiB file"
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
