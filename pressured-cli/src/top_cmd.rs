//! `pressured top`: the live view of `pressure-top`, fed by the configured source (the cgroup tree in
//! cgroup/node mode, the Summary API in cluster mode) or by a replay timeline (`--replay FILE`, at its
//! own pace or `--speed` times faster). Without a terminal on stdout, or with `--once`, one plain table.
//!
//! A viewer: it runs its own engine over the samples, and posts no Kubernetes Events and runs no actions.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Context;
use pressure_cgroup::{Observer, WatchOptions, Watcher};
use pressure_core::replay::Replayer;
use pressure_core::{Config, Engine, Event, SourceMode};
use pressure_kubelet::ClusterPoller;
use pressure_top::{Entry, TopModel, Update};

use crate::replay::Records;

/// Cycles queued for the view; a live source drops a cycle the view has not taken (the next one says
/// it all), a replay waits.
const QUEUE: usize = 4;
/// The longest a replay waits between two clock values, whatever the timeline's gap.
const MAX_REPLAY_GAP: Duration = Duration::from_secs(60);

/// The most live cycles `--once` waits for two with containers.
const ONCE_MAX_CYCLES: u64 = 20;

/// Arguments of `pressured top`.
#[derive(Debug, clap::Args)]
pub(crate) struct TopArgs {
    /// Show a recorded timeline (JSON lines, the `--replay` format) instead of the configured source.
    #[arg(long = "replay", value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Replay this many times faster than the timeline's own clock.
    #[arg(long = "speed", value_name = "X", default_value_t = 1.0, value_parser = parse_speed)]
    speed: f64,
    /// Print one plain table and exit (the default when stdout is not a terminal): the end of a
    /// replay, or the second poll cycle of a live source that shows containers (so that the trend is
    /// known; at most 20 cycles).
    #[arg(long = "once")]
    once: bool,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed from 0 (exclusive) to 1000000"
        )),
    }
}

/// Whether `pressured top` shows the live view: stdout is a terminal and `--once` is not given.
pub(crate) fn interactive(args: &TopArgs) -> bool {
    !args.once && std::io::stdout().is_terminal()
}

/// Runs `pressured top`.
pub(crate) fn run(args: TopArgs, config: Config) -> anyhow::Result<()> {
    let interactive = interactive(&args);
    let (tx, rx) = sync_channel(QUEUE);
    // Keeps the source's runtime (pod watch, cluster poller) alive as long as the view.
    let (title, _runtime) = match &args.replay {
        Some(path) => {
            let path = path.clone();
            let pace = interactive.then_some(args.speed);
            let title = format!("pressured top: replay {} x{}", path.display(), args.speed);
            std::thread::Builder::new()
                .name("replay".into())
                .spawn(move || replay(&path, &config, pace, &tx))
                .context("starting the replay thread")?;
            (title, None)
        }
        None => live(config, tx)?,
    };
    if interactive {
        pressure_top::run(rx, &title).context("pressured top")
    } else {
        print_once(&rx, args.replay.is_some())
    }
}

/// Reads cycles until the source ends (a replay) or two live cycles, then prints the table.
fn print_once(rx: &Receiver<Update>, replay: bool) -> anyhow::Result<()> {
    let mut model = TopModel::new();
    let mut ended = None;
    // Live: two cycles with containers (a cluster's first cycles may come before any summary), or
    // what there is after ONCE_MAX_CYCLES.
    let mut seen = 0;
    for update in rx {
        match update {
            Update::Cycle { t, entries } => {
                seen += usize::from(!entries.is_empty());
                model.update(t, entries);
            }
            Update::Ended(text) => ended = Some(text),
            _ => {}
        }
        if !replay && (seen >= 2 || model.cycles() >= ONCE_MAX_CYCLES) {
            break;
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(model.plain_table().as_bytes())
        .context("writing the table")?;
    out.flush().context("writing the table")?;
    match ended {
        Some(text) if text.contains("failed") => anyhow::bail!("{text}"),
        _ if !replay && model.cycles() < 2 => anyhow::bail!("the source stopped before a cycle"),
        _ => Ok(()),
    }
}

/// The view's entries for the engine's containers now.
fn entries(engine: &Engine) -> Vec<Entry> {
    engine.containers().map(|v| Entry::from_view(&v)).collect()
}

/// Feeds the timeline through an engine and sends a cycle per clock value; with `pace`, waits the
/// timeline's time between clock values divided by it. Ends when the view is gone.
fn replay(path: &Path, config: &Config, pace: Option<f64>, tx: &SyncSender<Update>) {
    let result = (|| -> anyhow::Result<usize> {
        let mut records = Records::open(path)?;
        let mut replayer = Replayer::new(Engine::new(&config.thresholds, config.dry_run));
        let mut events = Vec::new();
        let mut clock: Option<f64> = None;
        let mut samples = 0;
        while let Some(record) = records.next_record()? {
            if let Some(t) = clock.filter(|t| *t != record.t) {
                let cycle = Update::Cycle {
                    t,
                    entries: entries(replayer.engine()),
                };
                if tx.send(cycle).is_err() {
                    return Ok(samples);
                }
                if let Some(speed) = pace {
                    let gap = ((record.t - t) / speed).max(0.0);
                    std::thread::sleep(Duration::from_secs_f64(gap).min(MAX_REPLAY_GAP));
                }
            }
            clock = Some(record.t);
            samples += 1;
            replayer.feed(&record, &mut events);
            events.clear();
        }
        if let Some(t) = clock {
            let _ = tx.send(Update::Cycle {
                t,
                entries: entries(replayer.engine()),
            });
        }
        records.finish()?;
        Ok(samples)
    })();
    let text = match result {
        Ok(samples) => format!("replay ended ({samples} samples)"),
        Err(e) => format!("replay failed: {e:#}"),
    };
    let _ = tx.send(Update::Ended(text));
}

/// Starts the configured source on its own thread; returns the title and the runtime it needs.
fn live(
    config: Config,
    tx: SyncSender<Update>,
) -> anyhow::Result<(String, Option<tokio::runtime::Runtime>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let start = Instant::now();
    let end = tx.clone();
    let send = move |engine: &Engine| {
        let cycle = Update::Cycle {
            t: start.elapsed().as_secs_f64(),
            entries: entries(engine),
        };
        // A full queue: the view is behind (or paused on a terminal that is not read); the next cycle
        // replaces this one.
        if let Err(TrySendError::Disconnected(_)) = tx.try_send(cycle) {
            tracing::debug!("the view is gone");
        }
    };
    let interval = Duration::from_millis(config.source.effective_poll_interval_ms());
    match config.source.mode {
        SourceMode::Cgroup | SourceMode::Node => {
            let (layout, env, scope) = crate::watch::layout_and_scope(&config)?;
            let title = format!(
                "pressured top: {} {}",
                format!("{:?}", config.source.mode).to_lowercase(),
                config.source.cgroup.path
            );
            let pods = runtime.block_on(crate::watch::pod_directory(&scope, &env));
            let mut options = WatchOptions::new(scope);
            options.interval = interval;
            options.pod = env;
            let mut watcher = Watcher::new(
                layout,
                Engine::new(&config.thresholds, config.dry_run),
                options,
            )?;
            if let Some(pods) = pods {
                watcher = watcher.with_enrich(move |target: &mut _| pods.enrich(target));
            }
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("sampling".into())
                .spawn(move || {
                    let _runtime = handle.enter();
                    let mut view = ToView(send);
                    let text = match watcher.run(&mut view) {
                        Ok(()) => "the cgroup watch stopped".to_owned(),
                        Err(e) => format!("the cgroup watch failed: {e}"),
                    };
                    let _ = end.send(Update::Ended(text));
                })
                .context("starting the sampling thread")?;
            Ok((title, Some(runtime)))
        }
        SourceMode::Kubelet => {
            let (client, summaries) = runtime.block_on(crate::cluster::clients())?;
            let mut options = crate::cluster::poller_options(&config);
            // A viewer polls on its own: no Lease.
            options.leader_election = None;
            let poller = ClusterPoller::new(
                Engine::new(&config.thresholds, config.dry_run),
                client,
                summaries,
                options,
            )
            .on_cycle(send);
            runtime.spawn(async move {
                let text = match poller.run(|_| {}, std::future::pending()).await {
                    Ok(()) => "the cluster poller stopped".to_owned(),
                    Err(e) => format!("the cluster poller failed: {e}"),
                };
                let _ = end.send(Update::Ended(text));
            });
            Ok(("pressured top: cluster".into(), Some(runtime)))
        }
        other => anyhow::bail!("source.mode {other:?} is not supported by this build"),
    }
}

/// The watch loop's observer: engine events are not shown (the rows say it), cycles go to the view.
struct ToView<F>(F);

impl<F: FnMut(&Engine)> Observer for ToView<F> {
    fn event(&mut self, _event: &Event) {}

    fn cycle(&mut self, engine: &Engine) {
        (self.0)(engine);
    }
}
