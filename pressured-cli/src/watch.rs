//! Sidecar (`source.mode = "cgroup"`) and node (`source.mode = "node"`) modes: real cgroups in, events out.
//!
//! One loop, driven by a monotonic timerfd on a fixed period grid (no drift; a slow cycle skips the
//! ticks it missed instead of bunching them up, see [`ticker`]): every tick samples each watched cgroup
//! through an open [`CgroupReader`] and feeds the [`Engine`]; every `rescan` the set of cgroups is
//! refreshed (node: the whole kubepods hierarchy; sidecar: the own pod cgroup). An [`OomNotifier`] (v1 eventfd, v2 inotify)
//! wakes the loop the moment a cgroup goes OOM, so `oom_killed` is not a poll interval late; because the
//! v1 notification comes just before the kill, the cgroup is re-sampled every 5 ms for up to 300 ms
//! until its `oom_kill` counter moves. SIGTERM and SIGINT stop the loop cleanly.

mod plan;
mod ticker;
mod trim;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use pressure_cgroup::{
    CgroupError, CgroupLayout, CgroupReader, MemoryStats, OomNotifier, ReadBuffer, Refresh,
    raise_nofile_limit,
};
use pressure_core::{Config, Engine, Event, Psi, Reading, SlotId, SourceMode};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::sink::EventSink;
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
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
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
    let mut sink = EventSink::new(&config)?;
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
    let result = watcher
        .run(&mut |event| dispatch(&mut sink, kube_events.as_ref(), event))
        .await;
    sink.shutdown().await;
    result
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
    notifier: Option<AsyncFd<OomNotifier>>,
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
            // SAFETY: the notifier owns its epoll descriptor for its whole life and never swaps it.
            Ok(n) => match unsafe { AsyncFd::register_with_interest(n, Interest::READABLE) } {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(
                        "OOM wake-ups unavailable (registering with tokio: {e}); polling only"
                    );
                    None
                }
            },
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
            engine: Engine::new(config),
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

    async fn run(&mut self, sink: &mut dyn FnMut(&Event)) -> anyhow::Result<()> {
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut ticker = ticker::Ticker::new(self.interval).context("creating the poll timer")?;
        self.rescan();
        self.announce();
        let mut woken = Vec::new();
        let mut trimmed = false;
        loop {
            let follow_up = !self.follow_ups.is_empty();
            tokio::select! {
                tick = ticker.tick() => {
                    if let Err(e) = tick {
                        anyhow::bail!("poll timer failed: {e}");
                    }
                    if self.last_rescan.is_none_or(|t| t.elapsed() >= self.rescan_period()) {
                        self.rescan();
                    }
                    self.sample_all();
                    self.engine.end_cycle();
                    if !trimmed {
                        trimmed = true;
                        match trim::drop_startup_pages() {
                            Ok(bytes) => tracing::debug!(kib = bytes / 1024, "dropped start-up pages from the resident set"),
                            Err(e) => tracing::debug!("cannot trim start-up pages: {e}"),
                        }
                    }
                }
                result = wait_oom(self.notifier.as_mut(), &mut woken) => {
                    if let Err(e) = result {
                        tracing::warn!("OOM wake-ups failed ({e:#}); polling only from now on");
                        self.notifier = None;
                        for w in self.watched.values_mut() {
                            w.notified = false;
                        }
                    }
                    for key in woken.drain(..) {
                        tracing::debug!(key, "OOM notification");
                        if let Some(w) = self.watched.get(&key) {
                            self.follow_ups.insert(key, (w.oom_kill, Instant::now() + OOM_FOLLOW_UP));
                        }
                        self.sample_one(key);
                    }
                }
                _ = tokio::time::sleep(OOM_FOLLOW_UP_STEP), if follow_up => {
                    self.follow_up();
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    break;
                }
            }
            for event in self.events.drain(..) {
                sink(&event);
            }
        }
        Ok(())
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
            && let Err(e) = notifier
                .get_mut()
                .watch(key, &reader)
                .inspect(|()| notified = true)
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
            notifier.get_mut().unwatch(key);
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

/// Waits until the notifier reports cgroups (appended to `woken`); pending forever without a notifier.
async fn wait_oom(
    notifier: Option<&mut AsyncFd<OomNotifier>>,
    woken: &mut Vec<u64>,
) -> anyhow::Result<()> {
    let Some(notifier) = notifier else {
        return std::future::pending().await;
    };
    loop {
        let mut guard = notifier.readable_mut().await?;
        let result = guard.try_io(|inner| {
            let before = woken.len();
            inner
                .get_mut()
                .drain(woken)
                .map_err(std::io::Error::other)?;
            if woken.len() == before {
                Err(std::io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match result {
            Ok(r) => return r.map_err(Into::into),
            Err(_would_block) => continue,
        }
    }
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
