//! The sampling loop of `pressured`'s sidecar and node modes, for any embedder: real cgroups in,
//! [`pressure_core`] events out.
//!
//! A [`Watcher`] runs on the caller's thread (a blocking loop: no async runtime, see `wait`) and
//! ticks on a fixed grid of the monotonic clock: no drift, and a slow cycle skips the ticks it missed
//! instead of bunching them up. Between ticks it sleeps in one `epoll_wait` whose timeout is the time
//! left to the next grid point (no timerfd). Every tick samples each watched cgroup through an open
//! [`CgroupReader`] and feeds the [`Engine`]; every [`WatchOptions::rescan`] (or every tick, if
//! slower) the set of cgroups is refreshed ([`Scope::Node`]: the whole kubepods hierarchy; [`Scope::Pod`]: the pod's
//! cgroup and its containers). An [`OomNotifier`] (v1 eventfd, v2 inotify) wakes the loop the moment a
//! cgroup goes OOM, so `oom_killed` is not a poll interval late; because the v1 notification comes
//! just before the kill, the cgroup is re-sampled every 5 ms for up to 300 ms until its `oom_kill`
//! counter moves. A [`StopToken`] ends the loop; the crate installs no signal handler.
//!
//! ```no_run
//! use pressure_cgroup::{CgroupLayout, Scope, WatchOptions, Watcher};
//! use pressure_core::{Engine, Event, ThresholdsConfig};
//!
//! let layout = CgroupLayout::detect("/sys/fs/cgroup".as_ref())?;
//! let engine = Engine::new(&ThresholdsConfig::default(), false);
//! let mut watcher = Watcher::new(layout, engine, WatchOptions::new(Scope::Node))?;
//! let stop = watcher.stop_token(); // e.g. for a signal handler or another thread
//! watcher.run(&mut |event: &Event| println!("{}", event.to_json_line()))?;
//! # drop(stop);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod plan;
mod wait;

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use pressure_core::{Engine, Event, Psi, Reading, SlotId, Target};

use crate::{
    CgroupError, CgroupLayout, CgroupReader, MemoryStats, OomNotifier, ReadBuffer, Refresh,
};
use plan::{Found, Plan};
pub use plan::{PodEnv, Scope};
pub use wait::StopToken;

/// How long after an OOM wake-up a cgroup is re-sampled waiting for its `oom_kill` counter.
const OOM_FOLLOW_UP: Duration = Duration::from_millis(300);
/// The re-sample period during an OOM follow-up.
const OOM_FOLLOW_UP_STEP: Duration = Duration::from_millis(5);
/// PSI (v2 `memory.pressure`) is re-read at least this often; the ticks in between keep the last value.
const PSI_READ_PERIOD: Duration = Duration::from_secs(1);
/// Limits are re-read at least this often, each cgroup at its own phase of the period (so that a node
/// with thousands of cgroups opens a tenth of their limit files per second, not all of them in one
/// tick); the ticks in between read usage only. A lowered limit is seen within this; a raised one at
/// once, since usage above the known limit makes the reader re-read it (see
/// [`CgroupReader::read_with`]); an OOM kill at once through the notification. Opening a limit file
/// costs some 5–10 µs of kernel time, which at one read a second was half of node mode's CPU.
const LIMIT_READ_PERIOD: Duration = Duration::from_secs(10);
/// Phases of [`LIMIT_READ_PERIOD`] over which the limit reads of a node's cgroups are spread.
const LIMIT_READ_PHASES: u32 = 10;
/// A newly found cgroup reads its limit again this long after its first read.
const LIMIT_CONFIRM_AFTER: Duration = Duration::from_secs(1);
/// The OOM counters of a cgroup with an armed OOM notification are re-read at least this often (a
/// safety net: the notification reports kills at once). Each read opens the file (see
/// `CgroupReader`), so skipping it on the once-a-second full reads saves a third of their cost.
const NOTIFIED_COUNTER_PERIOD: Duration = Duration::from_secs(10);

/// What a [`Watcher`] watches and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Which cgroups.
    pub scope: Scope,
    /// The tick period [1 s].
    pub interval: Duration,
    /// The least time between two rescans of the scope for new and removed cgroups [1 s]; a rescan
    /// happens on the first tick at least this long after the previous one.
    pub rescan: Duration,
    /// The downward-API values of the own pod: `node_name` goes on every target; the pod name,
    /// namespace and IP on the targets of [`Scope::Pod`] and [`Scope::Cgroup`] \[none\].
    pub pod: PodEnv,
    /// The most cgroups whose usage file stays open between ticks \[512\]; the others open it
    /// for each read. Each open file costs a descriptor and about 4.4 KiB of kernel memory charged
    /// to the watcher's memory cgroup (its `seq_file` and read buffer); each reopen some 9 µs of CPU
    /// (`scripts/bench-node-cpu.sh` with `OPEN_FILES`: at 1 000 containers and 1 s, 0 open files
    /// charge 11.1 MB at 1.9 % of a core, 512 charge 13.2 MB at 1.3 %, all of them 15.7 MB at
    /// 0.9 %). Never more than the soft `RLIMIT_NOFILE` less 256 (for the files opened per read,
    /// sockets and the like): raise it first ([`raise_nofile_limit`](crate::raise_nofile_limit)).
    /// The other files of a cgroup (limit, `memory.stat`, OOM counters, PSI) are opened for each
    /// read, the limit every 10 s, and v1 OOM notifications share one eventfd, so the descriptors
    /// stay bounded by this plus a few.
    pub open_files: usize,
}

impl WatchOptions {
    /// Options for `scope` with the defaults above.
    pub fn new(scope: Scope) -> Self {
        WatchOptions {
            scope,
            interval: Duration::from_secs(1),
            rescan: Duration::from_secs(1),
            pod: PodEnv::default(),
            open_files: 512,
        }
    }
}

/// Errors that end [`Watcher::new`] or [`Watcher::run`]. A cgroup that cannot be read is not one:
/// it is logged (a permission error once per path) and skipped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The epoll set or the stop eventfd could not be created.
    #[error("creating the watch loop's epoll set and stop eventfd")]
    Setup(#[source] io::Error),
    /// `epoll_wait` failed (other than `EINTR`).
    #[error("waiting for the next tick (epoll_wait)")]
    Wait(#[source] io::Error),
    /// [`Scope::sidecar`] could not tell which pod or cgroup the sidecar runs in.
    #[error(
        "cannot tell which pod this sidecar runs in: POD_UID is unset, /proc/self/cgroup names \
         {own_cgroup:?} (no kubelet pod; `/` inside a cgroup namespace) and no kubelet cgroup under \
         {} lists this process (PID {pid}) in cgroup.procs (is the host's /sys/fs/cgroup mounted \
         there?): set POD_UID from the downward API (fieldRef metadata.uid), or point \
         source.cgroup.path at the cgroup to watch",
        memory_root.display()
    )]
    NoOwnCgroup {
        /// The memory cgroup `/proc/self/cgroup` names.
        own_cgroup: String,
        /// The memory root searched.
        memory_root: PathBuf,
        /// The own PID, as the own PID namespace sees it.
        pid: u32,
    },
}

/// Gives a cgroup-derived [`Target`] its names, IP and annotations (e.g. from the Kubernetes API);
/// returns whether it knew the target. Called on the sampling thread when a cgroup is first seen and
/// at every rescan (so names follow as the caller learns them): it must not block. A closure
/// `Fn(&mut Target) -> bool + Send` is one.
pub trait Enrich: Send {
    /// Fills in what is known about `target`; `true` when something was.
    fn enrich(&self, target: &mut Target) -> bool;
}

impl<F: Fn(&mut Target) -> bool + Send> Enrich for F {
    fn enrich(&self, target: &mut Target) -> bool {
        self(target)
    }
}

/// Receives what a [`Watcher`] produces, on its thread. A closure `FnMut(&Event)` is one.
pub trait Observer {
    /// One engine event (warn, critical, `predicted_oom`, `oom_killed`, `recovered`); must not block
    /// for long, the next tick waits for it.
    fn event(&mut self, event: &Event);

    /// Called once, after the first tick's samples: start-up is over (e.g. a good moment to drop
    /// start-up pages from the resident set).
    fn first_tick(&mut self) {}

    /// Called after every tick's samples with the engine, e.g. to refresh per-container gauges from
    /// [`Engine::containers`]; must be quick, the loop waits for it.
    fn cycle(&mut self, engine: &Engine) {
        let _ = engine;
    }
}

impl<F: FnMut(&Event)> Observer for F {
    fn event(&mut self, event: &Event) {
        self(event);
    }
}

/// Whether an OOM kill wakes the [`Watcher`] at once (v1 eventfd, v2 inotify) or waits for the next
/// tick: a view of the state another thread can read (e.g. for a metrics gauge), from
/// [`Watcher::oom_wakeups`]. Wake-ups end for good when the kernel refuses them: v1's
/// `cgroup.event_control` needs uid 0 (or `CAP_DAC_OVERRIDE`) and a writable cgroupfs mount.
#[derive(Debug, Clone)]
pub struct OomWakeups(Arc<AtomicBool>);

impl OomWakeups {
    /// `true` while OOM kills wake the loop at once; `false` once they are reported at most one
    /// tick late.
    #[must_use]
    pub fn active(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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
    /// When its limit was last read (back-dated after the first two reads, see `limit_read`).
    limit_read_at: Option<Instant>,
    /// The limit was read twice: [`LIMIT_READ_PERIOD`] applies.
    limit_confirmed: bool,
    /// When its PSI was last read.
    psi_read_at: Option<Instant>,
    /// When its OOM counters were last read.
    counters_read_at: Option<Instant>,
}

impl Watched {
    /// What a regular tick at `now` re-reads: usage; the limit once per [`LIMIT_READ_PERIOD`]; PSI
    /// once per [`PSI_READ_PERIOD`]; the OOM counters every tick when no notification announces
    /// kills, else once per [`NOTIFIED_COUNTER_PERIOD`].
    fn refresh(&self, now: Instant) -> Refresh {
        let due =
            |at: Option<Instant>, period| at.is_none_or(|at| now.duration_since(at) >= period);
        Refresh {
            limit: due(self.limit_read_at, LIMIT_READ_PERIOD),
            events: !self.notified || due(self.counters_read_at, NOTIFIED_COUNTER_PERIOD),
            pressure: due(self.psi_read_at, PSI_READ_PERIOD),
        }
    }

    /// Records that the limit was read at `now`. The second read comes [`LIMIT_CONFIRM_AFTER`] after
    /// the first (a cgroup found between its creation and the write of its limit reads "no limit"
    /// first, and no usage can exceed that); it is back-dated by a phase of [`LIMIT_READ_PERIOD`]
    /// chosen by `key`, so that the cgroups found in one rescan do not all re-read their limits in
    /// the same tick afterwards.
    fn limit_read(&mut self, key: u64, now: Instant) {
        let back = match (self.limit_read_at, self.limit_confirmed) {
            (None, _) => LIMIT_READ_PERIOD.saturating_sub(LIMIT_CONFIRM_AFTER),
            (Some(_), false) => {
                self.limit_confirmed = true;
                // The remainder is below LIMIT_READ_PHASES, so it fits in a u32.
                LIMIT_READ_PERIOD / LIMIT_READ_PHASES * (key % u64::from(LIMIT_READ_PHASES)) as u32
            }
            (Some(_), true) => Duration::ZERO,
        };
        self.limit_read_at = Some(now.checked_sub(back).unwrap_or(now));
    }
}

/// The sampling loop over the cgroups of a [`Scope`]: build it with [`Watcher::new`], take a
/// [`StopToken`], then [`run`](Watcher::run) it on a thread of its own.
pub struct Watcher {
    layout: CgroupLayout,
    plan: Plan,
    env: PodEnv,
    engine: Engine,
    interval: Duration,
    /// [`WatchOptions::rescan`].
    min_rescan: Duration,
    waiter: wait::Waiter,
    /// [`WatchOptions::open_files`], capped by the descriptor limit.
    open_files: usize,
    /// Readers that keep a file open.
    held: usize,
    watched: HashMap<u64, Watched>,
    by_path: HashMap<String, u64>,
    next_key: u64,
    notifier: Option<OomNotifier>,
    /// Mirrors `notifier.is_some()` for other threads.
    oom_wakeups: OomWakeups,
    buf: ReadBuffer,
    events: Vec<Event>,
    /// Paths whose permission error was reported (each once).
    reported: HashSet<PathBuf>,
    /// Cgroups in an OOM follow-up: key → (oom_kill at the wake-up, deadline).
    follow_ups: HashMap<u64, (u64, Instant)>,
    start: Instant,
    last_rescan: Option<Instant>,
    /// Names, IPs and annotations for the targets (e.g. the node's pods from the API).
    enrich: Option<Box<dyn Enrich>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("layout", &self.layout)
            .field("plan", &self.plan)
            .field("interval", &self.interval)
            .field("watched", &self.watched.len())
            .field("enrich", &self.enrich.is_some())
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher of `options.scope` under `layout` that feeds `engine`. Opens no cgroup yet (that is
    /// the first tick's work); without OOM notifications (e.g. no `cgroup.event_control` access) it
    /// warns once and polls.
    ///
    /// # Errors
    /// [`WatchError::Setup`] when the epoll set cannot be created.
    pub fn new(
        layout: CgroupLayout,
        engine: Engine,
        options: WatchOptions,
    ) -> Result<Self, WatchError> {
        let waiter = wait::Waiter::new().map_err(WatchError::Setup)?;
        let notifier = match OomNotifier::new() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("OOM wake-ups unavailable ({e}); polling only");
                None
            }
        };
        let oom_wakeups = OomWakeups(Arc::new(AtomicBool::new(notifier.is_some())));
        let nofile = crate::limits::nofile_soft_limit().unwrap_or(1024);
        let open_files = options
            .open_files
            .min(usize::try_from(nofile.saturating_sub(256)).unwrap_or(usize::MAX));
        Ok(Watcher {
            layout,
            plan: options.scope.into(),
            env: options.pod,
            engine,
            interval: options.interval.max(Duration::from_millis(1)),
            min_rescan: options.rescan,
            waiter,
            open_files,
            held: 0,
            watched: HashMap::new(),
            by_path: HashMap::new(),
            next_key: 0,
            notifier,
            oom_wakeups,
            buf: ReadBuffer::new(),
            events: Vec::new(),
            reported: HashSet::new(),
            follow_ups: HashMap::new(),
            start: Instant::now(),
            last_rescan: None,
            enrich: None,
        })
    }

    /// Names the targets through `enrich` (see [`Enrich`]).
    #[must_use]
    pub fn with_enrich(mut self, enrich: impl Enrich + 'static) -> Self {
        self.enrich = Some(Box::new(enrich));
        self
    }

    /// A token that ends [`run`](Watcher::run).
    pub fn stop_token(&self) -> StopToken {
        self.waiter.stop_token()
    }

    /// Whether OOM kills wake the loop at once (see [`OomWakeups`]); the start-up line's
    /// `oom_wakeups=` says the same after the first scan.
    pub fn oom_wakeups(&self) -> OomWakeups {
        self.oom_wakeups.clone()
    }

    /// The engine, e.g. for its state after [`run`](Watcher::run) returned.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs the loop until the [`StopToken`] is used, handing events to `observer`. Logs one info
    /// line when it starts (`watching N cgroups (mode)`). Ticks fall on a fixed grid of the monotonic
    /// clock (`start + k · interval`); a late tick samples once and skips the ones it missed. A stop
    /// is for good: `run` on a stopped watcher returns after its start-up rescan, without a tick.
    ///
    /// # Errors
    /// [`WatchError::Wait`] when `epoll_wait` fails.
    pub fn run(&mut self, observer: &mut impl Observer) -> Result<(), WatchError> {
        use std::os::fd::AsRawFd as _;
        if let Some(notifier) = &self.notifier
            && let Err(e) = self.waiter.watch_notifier(notifier.as_raw_fd())
        {
            tracing::warn!("OOM wake-ups unavailable (epoll: {e}); polling only");
            self.drop_notifier();
        }
        self.rescan();
        self.announce();
        let mut woken = Vec::new();
        let mut first_tick = true;
        let mut next_tick = Instant::now();
        let mut next_follow_up: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let due = next_follow_up.map_or(next_tick, |f| f.min(next_tick));
            let ready = self
                .waiter
                .wait(due.saturating_duration_since(now))
                .map_err(WatchError::Wait)?;
            if ready.stop {
                break;
            }
            if ready.notify
                && let Some(notifier) = &mut self.notifier
            {
                if let Err(e) = notifier.drain(&mut woken) {
                    tracing::warn!("OOM wake-ups failed ({e:#}); polling only from now on");
                    self.waiter.forget_notifier();
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
            let ticked = now >= next_tick;
            if ticked {
                if self
                    .last_rescan
                    .is_none_or(|t| t.elapsed() >= self.rescan_period())
                {
                    self.rescan();
                }
                self.sample_all();
                self.engine.end_cycle();
                next_tick = next_grid_point(next_tick, self.interval, now);
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
                observer.event(&event);
            }
            if ticked {
                observer.cycle(&self.engine);
            }
            if ticked && first_tick {
                first_tick = false;
                observer.first_tick();
            }
        }
        Ok(())
    }

    /// Polling only from now on: OOM counters are re-read every tick.
    fn drop_notifier(&mut self) {
        self.notifier = None;
        self.oom_wakeups.0.store(false, Ordering::Relaxed);
        for w in self.watched.values_mut() {
            w.notified = false;
        }
    }

    fn rescan_period(&self) -> Duration {
        self.interval.max(self.min_rescan)
    }

    fn announce(&self) {
        let mode = match &self.plan {
            Plan::Node => "node".to_owned(),
            Plan::Pod { pod_uid, .. } => format!("sidecar, pod {pod_uid}"),
            Plan::Own { path } => format!("sidecar outside Kubernetes, own cgroup {path}"),
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
        let found = match plan::discover(&self.layout, &mut self.plan) {
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
            } else if let Some(enrich) = &self.enrich {
                // Names, IPs and annotation overrides as the caller learns or changes them.
                let mut target = plan::target(&self.plan, &self.env, cgroup);
                if enrich.enrich(&mut target) {
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
        let open = if self.held < self.open_files {
            CgroupReader::open
        } else {
            CgroupReader::on_demand
        };
        let reader = match open(&dir, self.layout.version()) {
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
                // What refuses one cgroup (a read-only mount, a uid other than 0) refuses them all:
                // say so once and poll, rather than try, fail and warn for every cgroup.
                tracing::warn!(
                    "OOM wake-ups refused ({e}): oom_killed may come up to one poll interval ({:?}) \
                     late; v1 needs uid 0 and the cgroupfs mounted read-write for them",
                    self.interval
                );
                self.waiter.forget_notifier();
                self.drop_notifier();
            } else {
                self.report(&e);
            }
        }
        let mut target = plan::target(&self.plan, &self.env, cgroup);
        if let Some(enrich) = &self.enrich {
            enrich.enrich(&mut target);
        }
        let slot = self.engine.track(&target);
        let mut reader = reader;
        reader.set_stat_skip_below(self.stat_skip_below(slot));
        tracing::debug!(path = %cgroup.path, "watching");
        self.held += usize::from(reader.holds_file());
        self.by_path.insert(cgroup.path.clone(), key);
        self.watched.insert(
            key,
            Watched {
                reader,
                slot,
                path: cgroup.path.clone(),
                oom_kill: 0,
                notified,
                limit_read_at: None,
                limit_confirmed: false,
                psi_read_at: None,
                counters_read_at: None,
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
            self.held -= usize::from(w.reader.holds_file());
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
                    if refresh.limit {
                        w.limit_read(key, instant);
                    }
                    if refresh.pressure {
                        w.psi_read_at = Some(instant);
                    }
                    if refresh.events {
                        w.counters_read_at = Some(instant);
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

    #[test]
    fn limits_are_reread_every_ten_seconds_at_phases_spread_over_the_period() {
        let (dir, _) = v2_tree();
        let mut engine = Engine::new(&Default::default(), false);
        let slot = engine.track(&Target::default());
        let pod = dir.path().join(format!("kubepods/burstable/pod{UID}"));
        let watched = |key: u64| Watched {
            reader: CgroupReader::on_demand(&pod, crate::CgroupVersion::V2).expect("reader"),
            slot,
            path: format!("/c{key}"),
            oom_kill: 0,
            notified: true,
            limit_read_at: None,
            limit_confirmed: false,
            psi_read_at: None,
            counters_read_at: None,
        };
        let t0 = Instant::now() + LIMIT_READ_PERIOD;
        let s = Duration::from_secs;
        // A second read 1 s after the first (a limit written just after the cgroup was found); the
        // key picks the phase of the next: (10 - key % 10) s after the second.
        let mut due_after = Vec::new();
        for key in [0, 3, 9, 13] {
            let mut w = watched(key);
            assert!(w.refresh(t0).limit, "the first read reads the limit");
            w.limit_read(key, t0);
            assert!(!w.refresh(t0).limit);
            assert!(w.refresh(t0 + s(1)).limit, "confirmed a second later");
            w.limit_read(key, t0 + s(1));
            let next = (1..=10)
                .find(|&n| w.refresh(t0 + s(1 + n)).limit)
                .expect("due");
            w.limit_read(key, t0 + s(1 + next));
            // After that, every LIMIT_READ_PERIOD.
            assert!(!w.refresh(t0 + s(1 + next + 9)).limit);
            assert!(w.refresh(t0 + s(1 + next + 10)).limit);
            due_after.push(next);
        }
        assert_eq!(due_after, [10, 7, 1, 7]);
        // PSI stays at once a second; the OOM counters of a notified cgroup at NOTIFIED_COUNTER_PERIOD.
        let mut w = watched(0);
        w.psi_read_at = Some(t0);
        w.counters_read_at = Some(t0);
        assert!(w.refresh(t0 + PSI_READ_PERIOD).pressure);
        assert!(!w.refresh(t0 + PSI_READ_PERIOD).events);
    }

    const UID: &str = "0b7632a2-a56e-4278-987a-22de18008dbe";
    const ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    /// A v2 tree (the files and formats the kernel writes) with one burstable pod and its container,
    /// both at 90 % of 256 MiB.
    fn v2_tree() -> (tempfile::TempDir, CgroupLayout) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cgroup.controllers"), "memory pids\n").expect("write");
        let pod = dir.path().join(format!("kubepods/burstable/pod{UID}"));
        for cgroup in [pod.clone(), pod.join(ID)] {
            std::fs::create_dir_all(&cgroup).expect("mkdir");
            for (name, text) in [
                ("memory.current", "241591910\n"),
                ("memory.max", "268435456\n"),
                ("memory.stat", "anon 241591910\nfile 0\ninactive_file 0\n"),
                ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
            ] {
                std::fs::write(cgroup.join(name), text).expect("write");
            }
        }
        let layout = CgroupLayout::detect(dir.path()).expect("layout");
        (dir, layout)
    }

    /// Collects events and first-tick calls; stops the watcher at the container's first event.
    struct Collect {
        events: Vec<Event>,
        first_ticks: usize,
        stop: StopToken,
    }

    impl Observer for Collect {
        fn event(&mut self, event: &Event) {
            if event.target.container_id.as_deref() == Some(ID) {
                self.stop.stop();
            }
            self.events.push(event.clone());
        }

        fn first_tick(&mut self) {
            self.first_ticks += 1;
        }
    }

    #[test]
    fn node_scope_feeds_the_engine_names_through_enrich_and_stops_on_the_token() {
        let (_dir, layout) = v2_tree();
        let mut options = WatchOptions::new(Scope::Node);
        options.interval = Duration::from_millis(10);
        options.pod = PodEnv::from_lookup(|k| (k == "NODE_NAME").then(|| "n1".to_owned()));
        let engine = Engine::new(&Default::default(), false);
        let mut watcher = Watcher::new(layout, engine, options)
            .expect("watcher")
            .with_enrich(|t: &mut Target| {
                t.pod_name = Some("web-0".into());
                t.container_name = t.container_id.is_some().then(|| "app".into());
                true
            });
        let mut out = Collect {
            events: Vec::new(),
            first_ticks: 0,
            stop: watcher.stop_token(),
        };
        watcher.run(&mut out).expect("run");
        assert_eq!(out.first_ticks, 1);
        let critical = out
            .events
            .iter()
            .find(|e| e.target.container_id.as_deref() == Some(ID))
            .expect("the container's event");
        assert_eq!(critical.severity, pressure_core::Severity::Critical);
        assert_eq!(critical.target.pod_uid.as_deref(), Some(UID));
        assert_eq!(critical.target.pod_name.as_deref(), Some("web-0"));
        assert_eq!(critical.target.container_name.as_deref(), Some("app"));
        assert_eq!(critical.target.node_name.as_deref(), Some("n1"));
        assert_eq!(critical.limit_bytes, Some(256 << 20));
    }

    #[test]
    fn a_stop_before_run_ends_it_before_the_first_tick() {
        let (_dir, layout) = v2_tree();
        let engine = Engine::new(&Default::default(), false);
        let mut watcher =
            Watcher::new(layout, engine, WatchOptions::new(Scope::Node)).expect("watcher");
        let stop = watcher.stop_token();
        std::thread::spawn(move || stop.stop())
            .join()
            .expect("stop");
        let mut events = 0;
        watcher.run(&mut |_: &Event| events += 1).expect("run");
        assert_eq!(events, 0, "stopped before the first tick");
    }
}
