//! `oom-tracer`: catches every kernel OOM kill with eBPF (or the kernel log), classifies it
//! (global, memcg, cpuset/mempolicy), maps the victim to its pod and marks it.
//!
//! Thin on purpose: parse flags, build the tracer and the sink, run, map errors to exit codes.

mod flags;
mod kube;
mod metrics;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use pressure_ebpf::{KillSink, OomTracer, TraceSource, TracerOptions, handle_kill};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::flags::{Args, Config};

fn main() -> ExitCode {
    let args = Args::parse_from(flags::normalise_args(std::env::args()));
    let cfg = match Config::from_args(args, |k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("oom-tracer: {e:#}");
            return ExitCode::from(2);
        }
    };
    // `RUST_LOG` as `target=level` directives and a default level (`info` when unset); a `Targets`
    // filter rather than `EnvFilter`, whose span-field syntax would bring a regex engine along.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(tracing::Level::TRACE)
        .finish()
        .with(filter)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("oom-tracer: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oom-tracer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: Config) -> anyhow::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let kube = if cfg.kubernetes {
        let stop = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        Some(kube::build_sink(&cfg, stop).await?)
    } else {
        None
    };
    let sink: Option<Arc<dyn KillSink>> = kube.as_ref().map(|k| k.sink.clone());
    let queue = kube.as_ref().map(|k| k.queue.clone());
    let opts = TracerOptions {
        mode: if cfg.kmsg_only {
            TraceSource::KmsgOnly
        } else {
            TraceSource::Auto
        },
        kmsg_path: cfg.kmsg_path.clone(),
        replay_kmsg: cfg.replay_kmsg,
        ..TracerOptions::default()
    };
    let (mut kills, stats) = OomTracer::start(opts).context("starting the tracer")?;
    let sources = stats.sources();
    tracing::info!(
        bpf = sources.and_then(|s| s.bpf).map_or("none", |m| m.as_str()),
        kmsg = sources.is_some_and(|s| s.kmsg),
        "tracing OOM kills"
    );
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.sync(&stats, queue.as_deref());
    if let Some(addr) = cfg.metrics_addr {
        let (m, s, ready, q) = (metrics.clone(), stats.clone(), stats.clone(), queue.clone());
        // Ready once the probe is attached (or the kernel log is read) and while the reader runs.
        let probes = pressure_kubelet::ProbeServer::new(
            move || {
                m.sync(&s, q.as_deref());
                m.encode()
            },
            move || ready.is_running(),
        );
        let local = probes.spawn(addr).await?;
        tracing::info!(address = %local, "metrics endpoint listening");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    loop {
        let kill = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            k = kills.next() => k,
        };
        let Some(kill) = kill else {
            anyhow::bail!("the OOM-kill sources stopped")
        };
        if !cfg.kubernetes {
            let line = serde_json::to_string(&kill).context("encoding a kill")?;
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                break; // stdout closed
            }
        }
        let outcome = handle_kill(&kill, cfg.annotate, sink.as_deref()).await;
        metrics.record(&kill, &outcome);
        metrics.sync(&stats, queue.as_deref());
        tracing::info!(
            pid = kill.pid,
            comm = %kill.comm,
            kind = kill.kind.as_str(),
            pod_uid = kill.pod_uid.as_deref().unwrap_or(""),
            container_id = kill.container_id.as_deref().unwrap_or(""),
            oom_memcg = kill.oom_memcg.as_deref().unwrap_or(""),
            source = kill.source.as_str(),
            "OOM kill"
        );
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some(k) = kube {
        // The queue is already in the state file; this only lets the loop finish its attempt.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), k.retrier).await;
    }
    Ok(())
}
