//! Prints kernel OOM kills as typed [`OomKill`]s, the way `oom-tracer` consumes them.
//!
//! ```text
//! # replay a captured kernel log (any user); defaults to a bundled capture from kernel 6.1
//! cargo run -p pressure-ebpf --example kills [-- FILE.kmsg]
//! # trace live kills for SECONDS (default 30): BPF plus /dev/kmsg as root, /dev/kmsg alone otherwise
//! sudo cargo run -p pressure-ebpf --example kills -- --live [SECONDS]
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use pressure_ebpf::{HostPaths, OomKill, OomTracer, TraceSource, TracerOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Kept alive until the end: a replay's host paths point into it.
    let empty = tempfile::tempdir()?;
    let (opts, idle) = match args.as_slice() {
        [flag, rest @ ..] if flag == "--live" => {
            let secs = rest.first().map_or(Ok(30), |s| s.parse())?;
            (TracerOptions::default(), Duration::from_secs(secs))
        }
        [] | [_] => {
            let file = args.first().map_or_else(
                || {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                        .join("tests/fixtures/kmsg/memcg_v2_kernel_6.1.kmsg")
                },
                PathBuf::from,
            );
            // A regular file is read once from its start. Empty host paths keep this machine's
            // processes and cgroups out of a log captured elsewhere.
            let opts = TracerOptions {
                mode: TraceSource::KmsgOnly,
                kmsg_path: file,
                replay_kmsg: true,
                host: HostPaths {
                    proc_root: empty.path().to_owned(),
                    memcg_v1_root: None,
                    unified_root: empty.path().to_owned(),
                },
                ..TracerOptions::default()
            };
            (opts, Duration::from_secs(1))
        }
        _ => return Err("usage: kills [FILE.kmsg] | kills --live [SECONDS]".into()),
    };

    let (mut kills, stats) = OomTracer::start(opts)?;
    eprintln!("sources: {:?}", stats.sources());
    // The stream stays open after a replay (BPF could still be attached), so stop when idle.
    while let Ok(Some(kill)) = tokio::time::timeout(idle, kills.next()).await {
        print_kill(&kill);
    }
    eprintln!(
        "ring-buffer drops {}, unparsable kernel-log records {}",
        stats.ringbuf_drops(),
        stats.kmsg_parse_errors()
    );
    Ok(())
}

fn print_kill(k: &OomKill) {
    println!(
        "{} kill of pid {} ({}) from {}: pod {} container {} ({}), memcg {}, anon-rss {} kB",
        k.kind.as_str(),
        k.pid,
        k.comm,
        k.source.as_str(),
        k.pod_uid.as_deref().unwrap_or("-"),
        k.container_id.as_deref().unwrap_or("-"),
        k.qos.as_deref().unwrap_or("-"),
        k.task_memcg.as_deref().unwrap_or("-"),
        k.rss_anon_kb
            .map_or_else(|| "?".to_owned(), |v| v.to_string()),
    );
}
