//! `pressured`: watches container memory and acts before the kernel OOM-kills it.
//!
//! Thin on purpose: parse flags, build the typed config, run the chosen mode, map errors to exit codes.

mod cluster;
mod config;
#[cfg(test)]
mod fuzz;
mod logging;
mod plot_cmd;
mod pprof_cmd;
mod replay;
mod server;
mod sink;
#[cfg(target_feature = "crt-static")]
mod static_libm;
mod top_cmd;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgAction, Parser, Subcommand};
use pressure_core::{LogLevel, SourceMode};

use crate::config::FileConfig;

/// Watches container memory (cgroup v1/v2, kubelet Summary API) and acts before the kernel OOM-kills.
#[derive(Debug, Parser)]
#[command(
    name = "pressured",
    version,
    disable_version_flag = true,
    after_help = "Events are written to stdout as JSON lines; logs go to stderr."
)]
struct Args {
    /// Path of the JSON configuration file (defaults apply without one).
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log level: trace, debug, info, warn or error (overrides `log_level`).
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL")]
    log_level: Option<LogLevel>,
    /// Log format on stderr.
    #[arg(long = "log-format", value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,
    /// Dry run: actions get `ctx.dry_run = true`, built-in actions write nothing (overrides `dry_run`).
    #[arg(short = 'd', long = "dry-run")]
    dry_run: bool,
    /// Validate the configuration, print the effective configuration as JSON and exit (0 valid, 1 invalid).
    #[arg(long = "check-config")]
    check_config: bool,
    /// Replay samples from a JSON-lines file (`-` for stdin) through the engine and print the events.
    #[arg(long = "replay", value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this address (`:8080`, `127.0.0.1:8080`); empty disables.
    #[arg(
        long = "metrics-bind-address",
        alias = "metrics_bind_address",
        value_name = "ADDR",
        default_value = ""
    )]
    metrics_bind_address: String,
    /// Print version.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: (),
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Analyse pprof profiles.
    Pprof(pprof_cmd::PprofArgs),
    /// Draw a replay timeline (SVG or PNG): working set against limit, thresholds, predicted OOMs, kills.
    Plot(plot_cmd::PlotArgs),
    /// A live view of the containers closest to OOM (the configured source, or `--replay FILE`).
    Top(top_cmd::TopArgs),
}

fn main() -> ExitCode {
    // What the dynamic loader and libc's start-up touched (relocations, IFUNC resolvers) is not run
    // again; a sidecar should not keep it resident (see `pressure_cgroup::footprint`). Best effort: a
    // failure only costs memory.
    let _ = pressure_cgroup::footprint::release_startup_pages();
    // With the page cache of the binary's constants gone, start-up reads them page by page instead
    // of mapping 64 KiB around each (see `pressure_cgroup::footprint`); the code's cache stays (its
    // faults would read whole readahead windows back). The watch loop drops the rest later. Not for
    // a one-shot subcommand named first (`pprof`, `plot`, `top`), which gains nothing from it.
    let one_shot = std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "pprof" || a == "plot" || a == "top");
    if !one_shot {
        pressure_cgroup::footprint::drop_executable_constants();
    }
    let mut args = Args::parse();
    let (plot, top) = match args.command.take() {
        Some(Command::Pprof(pprof)) => return report(pprof_cmd::run(pprof)),
        Some(Command::Plot(plot)) => (Some(plot), None),
        Some(Command::Top(top)) => (None, Some(top)),
        None => (None, None),
    };
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("pressured: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.check_config {
        println!("{}", config.to_json_pretty());
        return ExitCode::SUCCESS;
    }
    if let Some(top) = top {
        // Logs would scribble over the live view: only without it (on stderr, beside the table).
        if !top_cmd::interactive(&top)
            && let Err(err) = logging::init(config.log_level, args.log_format)
        {
            eprintln!("pressured: {err:#}");
            return ExitCode::FAILURE;
        }
        return report(top_cmd::run(top, config.split().0));
    }
    if let Err(err) = logging::init(config.log_level, args.log_format) {
        eprintln!("pressured: {err:#}");
        return ExitCode::FAILURE;
    }
    if let Some(plot) = plot {
        return report(plot_cmd::run(plot, &config));
    }
    let metrics = match pressure_kubelet::parse_bind_address(&args.metrics_bind_address) {
        Ok(addr) => addr,
        Err(err) => {
            eprintln!("pressured: --metrics-bind-address: {err}");
            return ExitCode::FAILURE;
        }
    };
    report(run(config, args.replay, metrics))
}

/// A future that completes on the first SIGTERM or SIGINT (logged): the stop of the watch loops.
/// Installs the handlers at once, so a signal that arrives before the future is polled still counts.
pub(crate) fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
    })
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pressured: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the config file (if any) and applies the flags on top; flags win.
fn load_config(args: &Args) -> anyhow::Result<FileConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = config::read_file(path)?;
            FileConfig::from_json(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    if let Some(level) = args.log_level {
        config.log_level = level;
    }
    if args.dry_run {
        config.dry_run = true;
    }
    Ok(config)
}

fn run(
    config: FileConfig,
    replay: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let (config, actions) = config.split();
    // The cgroup and node modes are one sampling loop on its own thread (see `watch`) beside a
    // single-threaded runtime for the actions and the API, which sleeps while there is nothing to do:
    // what the sidecar footprint goal (≤ 0.035 s CPU per 30 s at 100 ms) needs. Blocking action work
    // still gets tokio's blocking pool.
    let single_loop =
        replay.is_none() && matches!(config.source.mode, SourceMode::Cgroup | SourceMode::Node);
    if single_loop {
        // Two threads (the sampling loop and the runtime) that allocate little: one malloc arena
        // instead of glibc's one per thread, whose first pages would add about 1 MiB to the resident
        // set of a sidecar.
        // SAFETY: mallopt only tunes the allocator; it is called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
    let mut builder = if single_loop {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(async move {
        if let Some(addr) = metrics {
            server::spawn(addr).await?;
        }
        if let Some(path) = replay {
            return replay::run(&config, &actions, &path).await;
        }
        match config.source.mode {
            SourceMode::Cgroup | SourceMode::Node => watch::run(config, &actions).await,
            SourceMode::Kubelet => cluster::run(config, &actions).await,
            other => anyhow::bail!("source.mode {other:?} is not supported by this build"),
        }
    });
    // The actions were drained (or abandoned at their deadline, which stops Lua scripts); a blocking
    // thread still running past that must not keep the process alive (issue 16).
    runtime.shutdown_timeout(EXIT_GRACE);
    result
}

/// How long the exit waits for blocking threads after the actions' drain deadline.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
