//! Sidecar (`source.mode = "cgroup"`) and node (`source.mode = "node"`) modes: real cgroups in, events out.
//!
//! One loop on its own thread, ticking on a fixed grid of the monotonic clock (no drift; a slow cycle
//! skips the ticks it missed instead of bunching them up; it sleeps in one `epoll_wait`, see [`wait`]):
//! every tick samples each watched cgroup through an open [`CgroupReader`] and feeds the [`Engine`]; every `rescan` the set of cgroups is
//! refreshed (node: the whole kubepods hierarchy; sidecar: the own pod cgroup). An [`OomNotifier`] (v1 eventfd, v2 inotify)
//! wakes the loop the moment a cgroup goes OOM, so `oom_killed` is not a poll interval late; because the
//! v1 notification comes just before the kill, the cgroup is re-sampled every 5 ms for up to 300 ms
//! until its `oom_kill` counter moves. SIGTERM and SIGINT stop the loop cleanly.

mod plan;
mod wait;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use pressure_cgroup::{
    CgroupError, CgroupLayout, CgroupReader, MemoryStats, OomNotifier, ReadBuffer, Refresh,
    raise_nofile_limit,
};
use pressure_core::{Config, Engine, Event, Psi, Reading, SlotId, SourceMode};
use tokio::signal::unix::{SignalKind, signal};

use crate::sink::{ActionsSetup, EventSink};
use plan::{Found, PodEnv, Scope};

/// How long after an OOM wake-up a cgroup is re-sampled waiting for its `oom_kill` counter.
const OOM_FOLLOW_UP: Duration = Duration::from_millis(300);
/// The re-sample period during an OOM follow-up.
const OOM_FOLLOW_UP_STEP: Duration = Duration::from_millis(5);
/// The least time between two rescans for new or removed cgroups.
const MIN_RESCAN: Duration = Duration::from_secs(1);
/// Limits (and, for a cgroup with an armed OOM notification, its OOM counters and PSI) are re-read at
/// least this often; the ticks in between read usage only. A resize is seen within this; an OOM kill
/// at once through the notification.
const FULL_READ_PERIOD: Duration = Duration::from_secs(1);

/// Runs the cgroup-based modes until SIGTERM/SIGINT.
pub(crate) async fn run(config: Config, actions: &ActionsSetup) -> anyhow::Result<()> {
    let root = PathBuf::from(&config.source.cgroup.path);
    let layout = CgroupLayout::detect(&root)
        .with_context(|| format!("source.cgroup.path = {}", root.display()))?;
    let env = PodEnv::from_env();
    let proc_self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let scope = match config.source.mode {
        SourceMode::Node => Scope::Node,
        _ => plan::sidecar_scope(&layout, &env, &proc_self_cgroup)?,
    };
    if let Err(e) = raise_nofile_limit() {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let mut sink = EventSink::new(actions)?;
    let pods = match (&scope, env.node_name.clone()) {
        (Scope::Node, Some(node)) => {
            crate::cluster::NodePods::connect(&node, Duration::from_secs(5)).await
        }
        (Scope::Pod { .. }, _) => {
            crate::cluster::NodePods::own_pod(env.namespace.as_deref(), env.pod_name.as_deref())
                .await
        }
        _ => None,
    };
    // Node mode posts Kubernetes Events through the pod watch's client; the sidecar does not.
    let kube_events = match scope {
        Scope::Node => pods.as_ref().and_then(|p| p.kube_events(&config)),
        _ => None,
    };
    let mut watcher = Watcher::new(&config, layout, scope, env)?;
    watcher.pods = pods;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let waiter = wait::Waiter::new().context("creating the sampling loop's epoll set")?;
    let stopper = waiter.stopper();
    // The loop runs on its own thread; this runtime meanwhile runs the actions, the pod watch and
    // the Kubernetes Events, and waits for a signal. Tasks the loop spawns (Events) go to it.
    let runtime = tokio::runtime::Handle::current();
    // Start-up is done: its code (flags, config, logger, runtime, TLS roots) is not run again.
    trim("start-up");
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sampling".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            let result = watcher.run_blocking(waiter, &mut |event| {
                dispatch(&mut sink, kube_events.as_ref(), event)
            });
            let _ = done_tx.send((result, sink));
        })
        .context("starting the sampling thread")?;
    let ended = tokio::select! {
        ended = &mut done => Some(ended),
        _ = term.recv() => {
            tracing::info!("SIGTERM: stopping");
            None
        }
        _ = int.recv() => {
            tracing::info!("SIGINT: stopping");
            None
        }
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            stopper.stop();
            done.await
        }
    };
    let (result, sink) = ended.context("the sampling thread ended without a result")?;
    sink.shutdown().await;
    result
}

/// Drops the resident pages of code that ran before `stage` (see [`crate::trim`]), with a debug log.
fn trim(stage: &str) {
    match crate::trim::drop_startup_pages() {
        Ok(mappings) => tracing::debug!(mappings, "dropped {stage} pages from the resident set"),
        Err(e) => tracing::debug!("cannot drop {stage} pages from the resident set: {e}"),
    }
}

/// Hands one event on: a JSON line on stdout and the action dispatcher (`pressure-actions`), and
/// (node mode) a Kubernetes Event, recorded on its own task so the loop does not wait for the API.
fn dispatch(sink: &mut EventSink, kube: Option<&crate::cluster::KubeEvents>, event: &Event) {
    sink.emit(event);
    if let Some(kube) = kube {
        kube.post(event);
    }
}

/// One watched cgroup.
#[derive(Debug)]
struct Watched {
    reader: CgroupReader,
    slot: SlotId,
    path: String,
    /// `oom_kill` at the last sample, to end an OOM follow-up when it moves.
    oom_kill: u64,
    /// An OOM notification is armed on this cgroup, so a tick need not re-read its OOM counters.
    notified: bool,
    /// When all its files were last read.
    full_read_at: Option<Instant>,
}

impl Watched {
    /// What a regular tick at `now` re-reads: everything once per [`FULL_READ_PERIOD`]; in between,
    /// usage, plus the OOM counters when no notification announces kills.
    fn refresh(&self, now: Instant) -> Refresh {
        if self
            .full_read_at
            .is_none_or(|at| now.duration_since(at) >= FULL_READ_PERIOD)
        {
            return Refresh::ALL;
        }
        Refresh {
            limit: false,
            events: !self.notified,
            pressure: false,
        }
    }
}

/// The state of the loop; everything but the tokio plumbing, so it can be driven synchronously in tests.
struct Watcher {
    layout: CgroupLayout,
    scope: Scope,
    env: PodEnv,
    engine: Engine,
    interval: Duration,
    watched: HashMap<u64, Watched>,
    by_path: HashMap<String, u64>,
    next_key: u64,
    notifier: Option<OomNotifier>,
    buf: ReadBuffer,
    events: Vec<Event>,
    /// Paths whose permission error was reported (each once).
    reported: HashSet<PathBuf>,
    /// Cgroups in an OOM follow-up: key → (oom_kill at the wake-up, deadline).
    follow_ups: HashMap<u64, (u64, Instant)>,
    start: Instant,
    last_rescan: Option<Instant>,
    /// This node's pods from the API (node mode): names, IP and annotations for the targets.
    pods: Option<crate::cluster::NodePods>,
}

impl Watcher {
    fn new(
        config: &Config,
        layout: CgroupLayout,
        scope: Scope,
        env: PodEnv,
    ) -> anyhow::Result<Self> {
        let notifier = match OomNotifier::new() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("OOM wake-ups unavailable ({e}); polling only");
                None
            }
        };
        let interval = Duration::from_millis(config.source.effective_poll_interval_ms().max(1));
        Ok(Watcher {
            layout,
            scope,
            env,
            engine: Engine::new(&config.thresholds, config.dry_run),
            interval,
            watched: HashMap::new(),
            by_path: HashMap::new(),
            next_key: 0,
            notifier,
            buf: ReadBuffer::new(),
            events: Vec::new(),
            reported: HashSet::new(),
            follow_ups: HashMap::new(),
            start: Instant::now(),
            last_rescan: None,
            pods: None,
        })
    }

    /// Runs the loop until `waiter` is told to stop. Ticks fall on a fixed grid of the monotonic clock
    /// (`start + k · interval`); a late tick samples once and skips the ones it missed.
    fn run_blocking(
        &mut self,
        mut waiter: wait::Waiter,
        sink: &mut dyn FnMut(&Event),
    ) -> anyhow::Result<()> {
        use std::os::fd::AsRawFd as _;
        if let Some(notifier) = &self.notifier
            && let Err(e) = waiter.watch_notifier(notifier.as_raw_fd())
        {
            tracing::warn!("OOM wake-ups unavailable (epoll: {e}); polling only");
            self.drop_notifier();
        }
        self.rescan();
        self.announce();
        let mut woken = Vec::new();
        let mut trimmed = false;
        let mut next_tick = Instant::now();
        let mut next_follow_up: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let due = next_follow_up.map_or(next_tick, |f| f.min(next_tick));
            let ready = waiter
                .wait(due.saturating_duration_since(now))
                .context("waiting for the next tick")?;
            if ready.stop {
                break;
            }
            if ready.notify
                && let Some(notifier) = &mut self.notifier
            {
                if let Err(e) = notifier.drain(&mut woken) {
                    tracing::warn!("OOM wake-ups failed ({e:#}); polling only from now on");
                    waiter.forget_notifier();
                    self.drop_notifier();
                }
                for key in woken.drain(..) {
                    tracing::debug!(key, "OOM notification");
                    if let Some(w) = self.watched.get(&key) {
                        self.follow_ups
                            .insert(key, (w.oom_kill, Instant::now() + OOM_FOLLOW_UP));
                    }
                    self.sample_one(key);
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                if self
                    .last_rescan
                    .is_none_or(|t| t.elapsed() >= self.rescan_period())
                {
                    self.rescan();
                }
                self.sample_all();
                self.engine.end_cycle();
                next_tick = next_grid_point(next_tick, self.interval, now);
                if !trimmed {
                    trimmed = true;
                    // Nor is the first tick's (opening the cgroups, the announcement).
                    trim("first tick");
                }
            }
            if self.follow_ups.is_empty() {
                next_follow_up = None;
            } else if next_follow_up.is_none_or(|f| now >= f) {
                if next_follow_up.is_some() {
                    self.follow_up();
                }
                next_follow_up = Some(now + OOM_FOLLOW_UP_STEP);
            }
            for event in self.events.drain(..) {
                sink(&event);
            }
        }
        Ok(())
    }

    /// Polling only from now on: OOM counters are re-read every tick.
    fn drop_notifier(&mut self) {
        self.notifier = None;
        for w in self.watched.values_mut() {
            w.notified = false;
        }
    }

    fn rescan_period(&self) -> Duration {
        self.interval.max(MIN_RESCAN)
    }

    fn announce(&self) {
        let mode = match &self.scope {
            Scope::Node => "node".to_owned(),
            Scope::Pod { pod_uid, .. } => format!("sidecar, pod {pod_uid}"),
            Scope::Own { path } => format!("sidecar outside Kubernetes, own cgroup {path}"),
        };
        tracing::info!(
            cgroups = self.watched.len(),
            interval_ms = self.interval.as_millis() as u64,
            memory_root = %self.layout.memory_root().display(),
            oom_wakeups = self.notifier.is_some(),
            "watching {} cgroups ({mode})",
            self.watched.len(),
        );
    }

    /// Refreshes the set of watched cgroups: opens new ones, drops those that went away.
    fn rescan(&mut self) {
        self.last_rescan = Some(Instant::now());
        let found = match plan::discover(&self.layout, &mut self.scope) {
            Ok(found) => found,
            Err(e) => {
                self.report(&e);
                return;
            }
        };
        let present: HashSet<&str> = found.iter().map(|c| c.path.as_str()).collect();
        let gone: Vec<u64> = self
            .by_path
            .iter()
            .filter(|(path, _)| !present.contains(path.as_str()))
            .map(|(_, &key)| key)
            .collect();
        for key in gone {
            self.drop_cgroup(key);
        }
        for cgroup in &found {
            if !self.by_path.contains_key(&cgroup.path) {
                self.add(cgroup);
            } else if let Some(pods) = &self.pods {
                // Names, IPs and annotation overrides as the pod watch learns or changes them.
                let mut target = plan::target(&self.scope, &self.env, cgroup);
                if pods.enrich(&mut target) {
                    let slot = self.engine.track(&target);
                    let skip = self.stat_skip_below(slot);
                    if let Some(w) = self
                        .by_path
                        .get(&cgroup.path)
                        .and_then(|k| self.watched.get_mut(k))
                    {
                        w.reader.set_stat_skip_below(skip);
                    }
                }
            }
        }
    }

    fn add(&mut self, cgroup: &Found) {
        let dir = self.layout.memory_dir(&cgroup.path);
        let reader = match CgroupReader::open(&dir, self.layout.version()) {
            Ok(reader) => reader,
            Err(e) => {
                self.report(&e);
                return;
            }
        };
        let key = self.next_key;
        self.next_key += 1;
        let mut notified = false;
        if let Some(notifier) = &mut self.notifier
            && let Err(e) = notifier.watch(key, &reader).inspect(|()| notified = true)
        {
            if e.is_permission_denied() {
                if self.reported.insert(PathBuf::from("<oom-notify>")) {
                    tracing::warn!(
                        "OOM wake-ups unavailable ({e}); relying on polling every {:?}",
                        self.interval
                    );
                }
            } else {
                self.report(&e);
            }
        }
        let mut target = plan::target(&self.scope, &self.env, cgroup);
        if let Some(pods) = &self.pods {
            pods.enrich(&mut target);
        }
        let slot = self.engine.track(&target);
        let mut reader = reader;
        reader.set_stat_skip_below(self.stat_skip_below(slot));
        tracing::debug!(path = %cgroup.path, "watching");
        self.by_path.insert(cgroup.path.clone(), key);
        self.watched.insert(
            key,
            Watched {
                reader,
                slot,
                path: cgroup.path.clone(),
                oom_kill: 0,
                notified,
                full_read_at: None,
            },
        );
    }

    /// Below this fraction of the limit a sample may skip `memory.stat` (the lowest threshold minus
    /// hysteresis and a 5 % margin): the working set is at most usage there, so no threshold event can
    /// depend on the skipped read. See `CgroupReader::set_stat_skip_below`.
    fn stat_skip_below(&self, slot: SlotId) -> f64 {
        self.engine.thresholds(slot).map_or(0.0, |t| {
            (t.warn_percent.min(t.critical_percent) - t.hysteresis_percent - 5.0) / 100.0
        })
    }

    fn drop_cgroup(&mut self, key: u64) {
        if let Some(w) = self.watched.remove(&key) {
            tracing::debug!(path = %w.path, "cgroup gone");
            self.by_path.remove(&w.path);
        }
        self.follow_ups.remove(&key);
        if let Some(notifier) = &mut self.notifier {
            notifier.unwatch(key);
        }
    }

    /// Logs an error: vanished quietly (debug), permission errors once per path, others as warnings.
    fn report(&mut self, e: &CgroupError) {
        if e.is_vanished() {
            tracing::debug!("{e}");
        } else if e.is_permission_denied() {
            if self.reported.insert(e.path().to_owned()) {
                tracing::warn!("{e}; skipping it (reported once)");
            }
        } else {
            tracing::warn!("{e:#}");
        }
    }

    fn sample_all(&mut self) {
        let instant = Instant::now();
        let now = instant.duration_since(self.start).as_secs_f64();
        let mut failed = Vec::new();
        for (&key, w) in &mut self.watched {
            let refresh = w.refresh(instant);
            match w.reader.read_with(&mut self.buf, refresh) {
                Ok(stats) => {
                    if refresh == Refresh::ALL {
                        w.full_read_at = Some(instant);
                    }
                    w.oom_kill = stats.oom.oom_kill;
                    let reading = reading(&stats);
                    self.engine.observe(w.slot, &reading, now, &mut self.events);
                }
                Err(e) => failed.push((key, e)),
            }
        }
        for (key, e) in failed {
            self.report(&e);
            self.drop_cgroup(key);
        }
    }

    /// Samples one cgroup out of turn; returns its `oom_kill` counter.
    fn sample_one(&mut self, key: u64) -> Option<u64> {
        let now = self.start.elapsed().as_secs_f64();
        let w = self.watched.get_mut(&key)?;
        match w.reader.read(&mut self.buf) {
            Ok(stats) => {
                w.oom_kill = stats.oom.oom_kill;
                self.engine
                    .observe(w.slot, &reading(&stats), now, &mut self.events);
                Some(stats.oom.oom_kill)
            }
            Err(e) => {
                self.report(&e);
                self.drop_cgroup(key);
                None
            }
        }
    }

    fn follow_up(&mut self) {
        let now = Instant::now();
        let keys: Vec<(u64, u64, Instant)> = self
            .follow_ups
            .iter()
            .map(|(&k, &(base, deadline))| (k, base, deadline))
            .collect();
        for (key, base, deadline) in keys {
            let done = match self.sample_one(key) {
                Some(kills) => kills > base || now >= deadline,
                None => true,
            };
            if done {
                self.follow_ups.remove(&key);
            }
        }
    }
}

/// The first point of the grid `last + k · interval` (k ≥ 1) after `now`.
fn next_grid_point(last: Instant, interval: Duration, now: Instant) -> Instant {
    let next = last + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(next).as_nanos();
    let skipped = behind / interval.as_nanos().max(1) + 1;
    next + interval * u32::try_from(skipped).unwrap_or(u32::MAX)
}

/// The engine's reading for cgroup statistics, stamped now.
fn reading(stats: &MemoryStats) -> Reading {
    Reading {
        timestamp: SystemTime::now(),
        usage_bytes: stats.usage_bytes,
        working_set_bytes: stats.working_set_bytes,
        limit_bytes: stats.limit_bytes,
        oom_kill_count: Some(stats.oom.oom_kill),
        psi: stats.psi.map(|p| Psi {
            some_avg10: p.some.avg10,
            some_avg60: p.some.avg60,
            full_avg10: p.full.avg10,
            full_avg60: p.full.avg60,
            some_total_us: p.some.total_us,
            full_total_us: p.full.total_us,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_stay_on_the_grid_and_skip_what_they_missed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // On time: the next point.
        assert_eq!(next_grid_point(t0, ms(100), t0 + ms(3)), t0 + ms(100));
        // 250 ms late: the points at 100 and 200 are skipped, no bunching up, no drift.
        assert_eq!(next_grid_point(t0, ms(100), t0 + ms(250)), t0 + ms(300));
        // Exactly on a point: the one after it.
        assert_eq!(next_grid_point(t0, ms(100), t0 + ms(200)), t0 + ms(300));
    }
}
