//! The threshold state machine: samples and a clock value in, events out.

use std::collections::{HashMap, HashSet};
use std::hint::cold_path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Signal, ThresholdsConfig};
use crate::event::{Event, EventType, Severity};
use crate::sample::{Psi, Reading, Sample, Target};
use crate::trend::{Epoch, MIN_POINTS, Point, Pushed, Rise, Trend};

/// Annotation overriding `thresholds.warn_percent` for one pod.
pub const ANNOTATION_WARN_PERCENT: &str = "pressured.io/warn-percent";
/// Annotation overriding `thresholds.critical_percent` for one pod.
pub const ANNOTATION_CRITICAL_PERCENT: &str = "pressured.io/critical-percent";
/// Annotation overriding `thresholds.cooldown_seconds` for one pod.
pub const ANNOTATION_COOLDOWN_SECONDS: &str = "pressured.io/cooldown-seconds";
/// Annotation overriding `thresholds.hysteresis_percent` for one pod.
pub const ANNOTATION_HYSTERESIS_PERCENT: &str = "pressured.io/hysteresis-percent";

/// Containers not seen for this many cycles are forgotten.
const FORGET_AFTER_CYCLES: u64 = 3;

/// Evidence rule of `predicted_oom`: the rise must have lasted at least this share of the ETA it
/// implies (for a linear rise: it has consumed at least `k / (1 + k)` of the headroom it started
/// from). A start-up, a batch or a step rises for a moment and implies an ETA much longer than that.
pub(crate) const EVIDENCE_SHARE: f64 = 0.5;

/// And it must have lasted this long, however short the ETA: a rise of a second or two (a batch filling
/// its buffers) is no trend, and an announcement less than a few seconds ahead is no use.
pub(crate) const MIN_RISE_SECONDS: f64 = 3.0;

/// A sample more than `limit >> JUMP_SHIFT` bytes (1/32 of the limit) away from the level of a trend of
/// at least [`MIN_POINTS`] points that does not rise is a step, not a trend: the trend starts over from it, so that a start-up,
/// a batch or a sudden jump is not extrapolated. Within a rise it is part of the rise (a JVM or Go heap
/// grows in steps).
const JUMP_SHIFT: u32 = 5;

/// The thresholds in effect for one container: the global ones with its pod's annotation overrides.
///
/// The same type as the configuration section, so an override changes a copy of it.
pub type Thresholds = ThresholdsConfig;

impl ThresholdsConfig {
    /// The severity for `percent` when the container was at `current`.
    ///
    /// Rising is immediate; to fall from a level, the value must drop below that level's threshold minus
    /// the hysteresis band. A pure function: the heart of the state machine.
    pub fn severity(&self, percent: f64, current: Severity) -> Severity {
        let h = self.hysteresis_percent;
        let rising = if percent >= self.critical_percent {
            Severity::Critical
        } else if percent >= self.warn_percent {
            Severity::Warn
        } else {
            Severity::Ok
        };
        let held = match current {
            Severity::Critical if percent >= self.critical_percent - h => Severity::Critical,
            Severity::Critical | Severity::Warn if percent >= self.warn_percent - h => {
                Severity::Warn
            }
            _ => Severity::Ok,
        };
        rising.max(held)
    }

    /// The signal bytes `[lo, hi]` (inclusive; empty when `lo > hi`) for which
    /// [`severity`](Self::severity) keeps `current` under `limit` bytes (0 = unlimited: always ok).
    /// Exact: computed with the same percentage as a sample.
    fn band(&self, current: Severity, limit: u64) -> (u64, u64) {
        const EMPTY: (u64, u64) = (1, 0);
        if limit == 0 {
            return if current == Severity::Ok {
                (0, u64::MAX)
            } else {
                EMPTY
            };
        }
        let h = self.hysteresis_percent;
        let at = |percent| first_at_least(percent, limit);
        // The last signal below `percent`: None when even 0 reaches it.
        let below = |percent| match at(percent) {
            None => Some(u64::MAX),
            Some(first) => first.checked_sub(1),
        };
        let band = match current {
            Severity::Ok => Some(0).zip(below(self.warn_percent)),
            Severity::Warn => at(self.warn_percent - h).zip(below(self.critical_percent)),
            Severity::Critical => at(self.critical_percent - h).zip(Some(u64::MAX)),
        };
        band.unwrap_or(EMPTY)
    }

    /// Applies the `pressured.io/*` annotations; each invalid one is returned as `(annotation, reason)` and
    /// ignored (the global value stays).
    pub fn with_annotations<'a>(
        mut self,
        annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> (ThresholdsConfig, Vec<(String, String)>) {
        let mut rejected = Vec::new();
        let mut overrides: Vec<(&str, &str)> = annotations
            .into_iter()
            .filter(|(k, _)| k.starts_with("pressured.io/"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .filter(|(k, _)| {
                [
                    ANNOTATION_WARN_PERCENT,
                    ANNOTATION_CRITICAL_PERCENT,
                    ANNOTATION_COOLDOWN_SECONDS,
                    ANNOTATION_HYSTERESIS_PERCENT,
                ]
                .contains(k)
            })
            .collect();
        // Critical first, so a pod raising both warn and critical above the global critical works.
        overrides.sort_by_key(|(k, _)| match *k {
            ANNOTATION_CRITICAL_PERCENT => 0,
            ANNOTATION_WARN_PERCENT => 1,
            _ => 2,
        });
        let mut pending = Vec::new();
        for (key, raw) in overrides {
            let value = match raw.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    rejected.push((key.to_string(), format!("{raw:?} is not a number")));
                    continue;
                }
            };
            pending.push((key, value));
        }
        // Apply in two passes so that the order of annotations doesn't matter for consistency checks.
        for pass in 0..2 {
            let mut left = Vec::new();
            for (key, value) in pending {
                let mut candidate = self;
                let percent = match key {
                    ANNOTATION_WARN_PERCENT => {
                        candidate.warn_percent = value;
                        true
                    }
                    ANNOTATION_CRITICAL_PERCENT => {
                        candidate.critical_percent = value;
                        true
                    }
                    ANNOTATION_HYSTERESIS_PERCENT => {
                        candidate.hysteresis_percent = value;
                        true
                    }
                    _ => {
                        candidate.cooldown_seconds = value;
                        false
                    }
                };
                let problem = if percent && !(0.0..=100.0).contains(&value) {
                    Some(format!("{value} is outside 0–100"))
                } else if !percent && value < 0.0 {
                    Some(format!("{value} is negative"))
                } else if candidate.warn_percent >= candidate.critical_percent {
                    Some(format!(
                        "warn {} would not be below critical {}",
                        candidate.warn_percent, candidate.critical_percent
                    ))
                } else if candidate.hysteresis_percent >= candidate.warn_percent {
                    Some(format!(
                        "hysteresis {} would not be below warn {}",
                        candidate.hysteresis_percent, candidate.warn_percent
                    ))
                } else {
                    None
                };
                match problem {
                    None => self = candidate,
                    Some(p) if pass == 1 => rejected.push((key.to_string(), p)),
                    Some(_) => left.push((key, value)),
                }
            }
            pending = left;
        }
        (self, rejected)
    }
}

/// A handle to one tracked container, returned by [`Engine::track`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId {
    index: u32,
    generation: u32,
}

/// What the engine remembers about one container: the hot state, dense and exactly two cache lines (the
/// first for the threshold check and the evidence of a prediction, the second for the trend), so a poll
/// over thousands of containers streams through memory.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct State {
    /// Matches the [`SlotId`] handed out; 0 = free slot.
    generation: u32,
    /// The engine cycle of the last sample (wrapping: a container is forgotten 4 cycles after it, long
    /// before the counter wraps).
    seen_cycle: u16,
    /// The ETA the long trend announced in its current rise (`Long::announced` while it rises, else
    /// [`NOT_ANNOUNCED`]), mirrored here so that the short trend's announcement reads no cold line.
    long_announced: u16,
    /// Index into `Engine::thresholds`.
    thresholds: u16,
    severity: Severity,
    /// The engine's long tick (`Engine::long_tick`) of the last sample fed to the long trend:
    /// the first sample of a new tick feeds it.
    long_tick: u8,
    /// Points in `trend` since it was last cleared, saturating at [`MIN_POINTS`] (see [`Trend::push`]).
    trend_points: u8,
    /// Whether the trend rises significantly, since `rise_since`. Only after a fit, so only when
    /// `trend_points` is [`MIN_POINTS`]: set by [`weigh`] alone, cleared wherever the count is (a
    /// restart, a rebase that empties the trend, a push of a first point).
    rising: bool,
    /// ETA of the last `predicted_oom` of this rise, as the upper half of an `f32` (a bfloat16: 3
    /// significant digits are plenty to halve it); infinite when none.
    announced: u16,
    /// The OOM-kill counter last seen; [`NO_OOM_BASELINE`] before the first.
    oom_baseline: u64,
    /// Clock since which the trend has risen significantly without a break (valid while `rising`).
    rise_since: f64,
    /// The band of signal bytes `[band_lo, band_hi]` in which the severity stays what it is, for the
    /// limit `band_limit` (0 = unlimited): inside it a sample needs no percentage and no comparison with
    /// the thresholds. Empty (`lo > hi`) until the first sample.
    band_lo: u64,
    band_hi: u64,
    band_limit: u64,
    /// Clock of the last memory_pressure/recovered event.
    last_emit: f64,
    trend: Trend,
}

const _: () = assert!(size_of::<State>() == 128);

/// `oom_baseline` before the first counter value.
const NO_OOM_BASELINE: u64 = u64::MAX;

/// `announced` when nothing was: +inf as a bfloat16.
const NOT_ANNOUNCED: u16 = (f32::INFINITY.to_bits() >> 16) as u16;

/// An ETA as a bfloat16, rounded up (so that "below half of it" never fires early).
fn to_bf16(eta: f64) -> u16 {
    let bits = (eta as f32).to_bits();
    let up = (bits >> 16) + u32::from(bits & 0xffff != 0);
    (up.min(NOT_ANNOUNCED as u32)) as u16
}

fn from_bf16(v: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(v) << 16))
}

impl State {
    /// The severity of a signal outside the band, and the band around it. Rare (a sample crossing a
    /// threshold, a changed limit, the first sample), so out of line: the hot path keeps its registers.
    #[cold]
    #[inline(never)]
    fn reclassify(&mut self, th: &Thresholds, signal: u64, limit: u64) -> Severity {
        let severity = if limit > 0 {
            th.severity(percent_of(signal, limit), self.severity)
        } else {
            Severity::Ok
        };
        (self.band_lo, self.band_hi) = th.band(severity, limit);
        self.band_limit = limit;
        severity
    }
}

impl State {
    /// Forgets the trend and its evidence (no limit any more, or a step). Rare: out of line.
    #[cold]
    #[inline(never)]
    fn restart_trend(&mut self) {
        self.trend.clear();
        self.trend_points = 0;
        self.rising = false;
    }

    /// Fits the short trend after a push that said to ([`Pushed::Fit`]): its newest point is `signal`
    /// at the epoch's point `at`. Takes the rise into the evidence ([`weigh`]) and returns the ETA to
    /// announce, if any ([`announce`]).
    #[inline(always)]
    fn fit(&mut self, signal: u64, limit: u64, now: f64, at: &Point, horizon: f64) -> Option<f64> {
        let rise = self.trend.rise(signal, limit);
        let rise = weigh(
            &mut self.rising,
            &mut self.rise_since,
            &mut self.announced,
            rise,
            now,
            horizon,
        )?;
        announce(
            &self.trend,
            &mut self.announced,
            rise,
            from_bf16(self.long_announced),
            signal,
            at.x,
            limit,
        )
    }

    /// [`fit`](Self::fit) after the point that filled the trend ([`Pushed::Filled`]): once per rise,
    /// out of line, so that the hot [`fit`](Self::fit) is not merged with it.
    #[cold]
    #[inline(never)]
    fn fit_filled(
        &mut self,
        signal: u64,
        limit: u64,
        now: f64,
        at: &Point,
        horizon: f64,
    ) -> Option<f64> {
        self.fit(signal, limit, now, at, horizon)
    }

    /// The ETA the short trend's rise last announced (infinite when its rise announced nothing or ended).
    fn last_announced(&self) -> f64 {
        if self.rising {
            from_bf16(self.announced)
        } else {
            f64::INFINITY
        }
    }
}

/// The second, long trend of one container, for leaks too slow for the short window to see above the
/// noise (hours ahead): fed one sample per long tick (1/32 of `thresholds.predict_long_window_seconds`),
/// so it lives apart from the hot state and is touched once per tick, not per sample. The same rules as
/// the short trend: steps start it over, a rise is announced on the same evidence.
#[derive(Debug, Clone, Copy)]
struct Long {
    trend: Trend,
    /// As `State::rise_since`, `trend_points`, `rising` and `announced`, for the long trend.
    rise_since: f64,
    points: u8,
    rising: bool,
    announced: u16,
}

impl Long {
    const EMPTY: Long = Long {
        trend: Trend::EMPTY,
        rise_since: f64::NAN,
        points: 0,
        rising: false,
        announced: NOT_ANNOUNCED,
    };

    /// The ETA announced in the current rise (`State::long_announced` mirrors it), as a bfloat16.
    fn announced_in_rise(&self) -> u16 {
        if self.rising {
            self.announced
        } else {
            NOT_ANNOUNCED
        }
    }

    fn restart(&mut self) {
        self.trend.clear();
        self.points = 0;
        self.rising = false;
    }

    /// Feeds the long trend `signal` at clock `now` (a container's first sample of a long tick);
    /// returns the ETA to announce, if any (see [`weigh`] and [`announce`]; `short` is the ETA the short
    /// trend last announced).
    #[cold]
    #[inline(never)]
    fn observe(
        &mut self,
        epoch: &Epoch,
        now: f64,
        signal: u64,
        limit: u64,
        horizon: f64,
        short: f64,
    ) -> Option<f64> {
        if limit == 0 {
            self.restart();
            return None;
        }
        if !self.rising
            && self.points >= MIN_POINTS
            && signal.abs_diff(self.trend.level()) > limit >> JUMP_SHIFT
        {
            self.restart();
        }
        // The tick's shared point when the container is sampled at the tick's clock value (a poll
        // cycle), else its own (one `exp`).
        let at = if epoch.is_at(now) {
            *epoch.point()
        } else {
            epoch.point_at(now)
        };
        match self.trend.push(&mut self.points, now, signal, &at) {
            Pushed::Fit | Pushed::Filled => {}
            Pushed::Early => {
                // Too few points: no rise (as `weigh` of none).
                self.rising = false;
                return None;
            }
            Pushed::Ignored => return None,
        }
        let rise = self.trend.rise(signal, limit);
        let rise = weigh(
            &mut self.rising,
            &mut self.rise_since,
            &mut self.announced,
            rise,
            now,
            horizon,
        )?;
        announce(
            &self.trend,
            &mut self.announced,
            rise,
            short,
            signal,
            at.x,
            limit,
        )
    }
}

/// The last reading of a container, for [`Engine::containers`]. Compared on every sample, so 24 bytes
/// with sentinels rather than `Option`s (40).
#[derive(Debug, Clone, Copy, PartialEq)]
struct LastReading {
    working_set: u64,
    /// The usage, kept only where it is the signal (`thresholds.signal = usage`; else the working set
    /// is, and this stays as in [`NONE`](Self::NONE)).
    usage: u64,
    /// PSI memory `some` avg10 as `f32` bits; [`NO_PSI`] when the source has none (cgroup v1,
    /// summaries). Bits, not a float, so that equality (write only on change) is exact.
    psi_bits: u32,
}

/// [`LastReading::psi_bits`] without a PSI figure (a NaN pattern no reading produces).
const NO_PSI: u32 = u32::MAX;

impl LastReading {
    /// Before the first reading (no reading is 16 EiB).
    const NONE: LastReading = LastReading {
        working_set: u64::MAX,
        usage: u64::MAX,
        psi_bits: NO_PSI,
    };

    /// Stores the PSI figure of a reading (`None`: [`NO_PSI`]).
    #[cold]
    #[inline(never)]
    fn set_psi(&mut self, psi: Option<&Psi>) {
        self.psi_bits = psi.map_or(NO_PSI, |p| (p.some_avg10 as f32).to_bits());
    }

    fn get(self) -> Option<LastReading> {
        (self != LastReading::NONE).then_some(self)
    }

    fn psi_some_avg10(self) -> Option<f64> {
        (self.psi_bits != NO_PSI).then(|| f64::from(f32::from_bits(self.psi_bits)))
    }
}

/// One tracked container as the engine sees it after its last reading: what a per-container gauge
/// exports. From [`Engine::containers`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ContainerView<'a> {
    /// Who.
    pub target: &'a Target,
    /// The last reading's working set; `None` before any reading (an OOM kill known from pod status).
    pub working_set_bytes: Option<u64>,
    /// The limit of the last reading; `None` when unlimited (or before any reading).
    pub limit_bytes: Option<u64>,
    /// The configured signal (`thresholds.signal`) ÷ the limit, as `usage_percent` / 100; `None`
    /// when unlimited.
    pub usage_ratio: Option<f64>,
    /// The current severity.
    pub severity: Severity,
    /// [`Engine::eta`]: seconds to the limit while a rise is significant and evidenced.
    pub eta_seconds: Option<f64>,
    /// The container's OOM-kill counter as last reported; `None` when unknown.
    pub oom_kills: Option<u64>,
    /// PSI memory `some` avg10 of the last reading, when the source knows it (cgroup v2).
    pub psi_some_avg10: Option<f64>,
}

/// Whether a rise that has lasted `lasted` seconds without a break is evidence of a trend: at least
/// [`MIN_RISE_SECONDS`] and [`EVIDENCE_SHARE`] of the ETA it implies (compared as fractions: no
/// division).
#[inline]
fn evident(rise: Rise, lasted: f64) -> bool {
    lasted >= MIN_RISE_SECONDS && rise.within(lasted * (1.0 / EVIDENCE_SHARE))
}

/// Takes in a trend's rise at clock `now` (`None`: it does not rise significantly) into its evidence (`rising`, since
/// `rise_since`, and the ETA `announced` during this rise); returns the rise when it may be announced:
/// its ETA within `horizon`, [`evident`], and below half of the last ETA announced (but not below
/// [`MIN_RISE_SECONDS`] then). The short and the long trend
/// share it.
///
/// A rise lasts while every sample finds it significant: a rise judged by its direction alone between
/// announcements was tried (it saves the R² on the samples of a long rise) and announced a warm-up's
/// tail and a staircase's step far too early (ETA errors of +76 % and −55 % on the corpus).
#[inline]
fn weigh(
    rising: &mut bool,
    rise_since: &mut f64,
    announced: &mut u16,
    rise: Option<Rise>,
    now: f64,
    horizon: f64,
) -> Option<Rise> {
    let Some(rise) = rise else {
        *rising = false;
        return None;
    };
    if !*rising {
        cold_path();
        *rising = true;
        *rise_since = now;
        *announced = NOT_ANNOUNCED;
    }
    // Half of the last announcement first: a rise that was announced fails there on most samples (and
    // a rise announced nothing yet passes at once). With the horizon in the same comparison: `within`
    // compares with a product by a positive covariance, which rounding keeps monotonic in the bound,
    // so within the lesser bound is within both (neither is NaN: `to_bf16` gives none, and the
    // horizon is positive). An ETA under MIN_RISE_SECONDS is not announced again: a poll or two from
    // the kill, critical has fired and no action can finish.
    let half = 0.5 * from_bf16(*announced);
    // Not `f64::min`: its NaN handling costs five instructions here, and there is no NaN.
    (rise.within(if half < horizon { half } else { horizon })
        && evident(rise, now - *rise_since)
        && (*announced == NOT_ANNOUNCED || !rise.within(MIN_RISE_SECONDS)))
    .then_some(rise)
}

/// The ETA of `rise` to announce (and the new `announced`) unless the other trend announced an ETA less than twice as long (`other`: one `predicted_oom` series per
/// container, whichever trend sees the rise) or the rise is slowing down: the newest point, `signal`
/// at coordinate `x`, lies below the fitted line (warm-ups and ramps levelling off).
#[cold]
#[inline(never)]
fn announce(
    trend: &Trend,
    announced: &mut u16,
    rise: Rise,
    other: f64,
    signal: u64,
    x: f64,
    limit: u64,
) -> Option<f64> {
    // A thousandth of the limit: a straight line's rounding is no slowing down.
    if !rise.within(0.5 * other) || trend.below_fit(signal, x, limit >> 10) {
        return None;
    }
    let eta = rise.eta();
    *announced = to_bf16(eta);
    Some(eta)
}

/// The current ETA of a trend (see [`Engine::eta`]): from the fitted bytes at its newest point, under
/// the evidence rule, `None` when it does not rise.
fn current_eta(
    trend: &Trend,
    points: u8,
    rise_since: f64,
    epoch: &Epoch,
    limit: u64,
) -> Option<f64> {
    if points < MIN_POINTS {
        return None;
    }
    // The fitted bytes at the newest point: a gauge should not jump with each sample's noise.
    let fitted = trend.fitted(epoch.x_of(trend.last_t()));
    let rise = trend.rise(fitted, limit)?;
    evident(rise, trend.last_t() - rise_since).then(|| rise.eta())
}

/// The threshold engine: one state per container, fed readings with a clock value, returning events.
///
/// Pure: no I/O, no threads, no clock of its own. The caller passes `now` (seconds on a monotonic clock, or
/// the replay's `t`) and calls [`Engine::end_cycle`] after each poll cycle so that containers not seen for
/// three cycles are forgotten ([`Engine::end_cycle_keeping`] when some sources could not be read: their
/// containers keep their state).
///
/// ```
/// use pressure_core::{Engine, EventType, Reading, Sample, Target, ThresholdsConfig};
/// use std::time::UNIX_EPOCH;
///
/// let mut engine = Engine::new(&ThresholdsConfig::default(), false);
/// let target = Target { pod_uid: Some("uid-1".into()), ..Target::default() };
/// let mut events = Vec::new();
/// let reading = Reading::new(UNIX_EPOCH, 90, Some(100));
/// engine.observe_sample(&Sample { target, reading }, 0.0, &mut events);
/// assert_eq!(events[0].event_type, EventType::MemoryPressure);
/// ```
#[derive(Debug)]
pub struct Engine {
    global: Thresholds,
    dry_run: bool,
    /// `predict_seconds > 0`: whether the trends run. The same for every threshold set (no annotation
    /// overrides it), so a byte of the engine rather than a float comparison per sample.
    predicts: bool,
    states: Vec<State>,
    /// The last reading's working set and signal per slot (beside `states`, not in it: only the gauges
    /// of [`Engine::containers`] read it); [`LastReading::NONE`] before the first reading.
    last: Vec<LastReading>,
    /// Who each slot is (`None`: free), shared with every event about it: dense (8 bytes a slot), so
    /// that building an event misses the cache once, on the reference count.
    targets: Vec<Option<Arc<Target>>>,
    /// The key each slot is indexed under (empty when free).
    keys: Vec<String>,
    /// Distinct threshold sets in use; index 0 is the global one.
    thresholds: Vec<Thresholds>,
    free: Vec<u32>,
    index: HashMap<String, SlotId>,
    cycle: u64,
    /// Containers seen (tracked or observed) in the current cycle: when all were, `end_cycle` has
    /// nothing to forget and skips its scan.
    seen: usize,
    next_generation: u32,
    /// The trends' time origin and the weight of a point at the current clock value: one `exp` per
    /// clock value for all containers. The window is global (no annotation overrides it).
    epoch: Epoch,
    /// The long trends, by slot (cold: touched once per long tick).
    long: Vec<Long>,
    /// The long trends' epoch, advanced once per long tick.
    long_epoch: Epoch,
    /// Clock seconds per long tick: 1/32 of `predict_long_window_seconds`; 0 = no long trend.
    long_tick_seconds: f64,
    /// `floor(now / long_tick_seconds)` of the current long tick.
    long_bucket: f64,
    /// Counts the long ticks (wrapping): a container whose `State::long_tick` differs feeds its long
    /// trend with this sample.
    long_tick: u8,
    warned: HashSet<(String, String, String)>,
}

/// Points per `predict_long_window_seconds` of the long trend.
const LONG_TICKS_PER_WINDOW: f64 = 32.0;

impl Engine {
    /// An engine with the global `thresholds` (the `thresholds` section of the configuration).
    ///
    /// `dry_run` is not used by the state machine: it is stamped on every event (`Event::dry_run`), so
    /// that the actions and the event consumers downstream see the run's flag without a second pass.
    pub fn new(thresholds: &ThresholdsConfig, dry_run: bool) -> Engine {
        let global = *thresholds;
        Engine {
            global,
            dry_run,
            predicts: global.predict_seconds > 0.0,
            states: Vec::new(),
            last: Vec::new(),
            targets: Vec::new(),
            keys: Vec::new(),
            thresholds: vec![global],
            free: Vec::new(),
            index: HashMap::new(),
            cycle: 0,
            seen: 0,
            next_generation: 0,
            epoch: Epoch::new(global.predict_window_seconds),
            long: Vec::new(),
            long_epoch: Epoch::new(global.predict_long_window_seconds),
            long_tick_seconds: global.predict_long_window_seconds / LONG_TICKS_PER_WINDOW,
            long_bucket: f64::NAN,
            long_tick: 0,
            warned: HashSet::new(),
        }
    }

    /// Number of containers tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no container is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn live(&self, id: SlotId) -> bool {
        self.states
            .get(id.index as usize)
            .is_some_and(|s| s.generation == id.generation)
    }

    /// The current ETA of a tracked container's memory reaching its limit, in seconds from its last
    /// sample: `Some` while its rise is significant and has lasted half of that ETA (the evidence
    /// `predicted_oom` needs, without the horizon), `None` otherwise or when `id` is stale. The short
    /// trend's when it has one, else the long trend's (hours ahead). For a gauge; `predicted_oom` is
    /// announced only within `thresholds.predict_seconds`.
    pub fn eta(&self, id: SlotId) -> Option<f64> {
        let i = id.index as usize;
        let st = self.states.get(i)?;
        if st.generation != id.generation || st.band_limit == 0 {
            return None;
        }
        let limit = st.band_limit;
        let short = st
            .rising
            .then(|| {
                current_eta(
                    &st.trend,
                    st.trend_points,
                    st.rise_since,
                    &self.epoch,
                    limit,
                )
            })
            .flatten();
        short.or_else(|| {
            let lg = &self.long[i];
            let eta = current_eta(&lg.trend, lg.points, lg.rise_since, &self.long_epoch, limit)
                .filter(|_| lg.rising)?;
            // From the container's last sample, which may be newer than the long trend's.
            let newer = st.trend.last_t() - lg.trend.last_t();
            Some(if newer > 0.0 {
                (eta - newer).max(0.0)
            } else {
                eta
            })
        })
    }

    /// Every tracked container as of its last reading (in slot order), for per-container gauges.
    /// Containers forgotten by [`end_cycle`](Engine::end_cycle) are not listed, so a gauge built from this
    /// list each time loses the series of gone containers.
    pub fn containers(&self) -> impl Iterator<Item = ContainerView<'_>> + '_ {
        self.states
            .iter()
            .zip(&self.targets)
            .zip(&self.last)
            .enumerate()
            .filter(|(_, ((st, target), _))| st.generation != 0 && target.is_some())
            .map(|(i, ((st, target), last))| {
                let last = last.get();
                let id = SlotId {
                    index: i as u32,
                    generation: st.generation,
                };
                let limit = (last.is_some() && st.band_limit > 0).then_some(st.band_limit);
                ContainerView {
                    target: target.as_deref().expect("filtered"),
                    working_set_bytes: last.map(|l| l.working_set),
                    limit_bytes: limit,
                    usage_ratio: last
                        .zip(limit)
                        .map(|(l, limit)| percent_of(self.signal_of(l), limit) / 100.0),
                    severity: st.severity,
                    eta_seconds: self.eta(id),
                    oom_kills: (st.oom_baseline != NO_OOM_BASELINE).then_some(st.oom_baseline),
                    psi_some_avg10: last.and_then(LastReading::psi_some_avg10),
                }
            })
    }

    /// The signal of a last reading (see [`LastReading::usage`]).
    fn signal_of(&self, last: LastReading) -> u64 {
        match self.global.signal {
            Signal::WorkingSet => last.working_set,
            Signal::Usage => last.usage,
        }
    }

    /// The thresholds in effect for a tracked container.
    pub fn thresholds(&self, id: SlotId) -> Option<&Thresholds> {
        self.live(id)
            .then(|| &self.thresholds[self.states[id.index as usize].thresholds as usize])
    }

    /// Starts tracking `target` or finds it; updates its identity (names, annotations) if they changed.
    pub fn track(&mut self, target: &Target) -> SlotId {
        let key = target.key();
        if let Some(&id) = self.index.get(&key) {
            let i = id.index as usize;
            let changed = self.targets[i].as_deref().is_some_and(|t| t != target);
            if changed {
                let th = self.resolve(target);
                self.states[i].thresholds = th;
                self.targets[i] = Some(Arc::new(target.clone()));
            }
            return id;
        }
        let thresholds = self.resolve(target);
        self.next_generation = self.next_generation.checked_add(1).unwrap_or(1);
        let generation = self.next_generation;
        self.seen += 1;
        let state = State {
            generation,
            thresholds,
            seen_cycle: self.cycle as u16,
            long_announced: NOT_ANNOUNCED,
            severity: Severity::Ok,
            // Its first sample feeds the long trend.
            long_tick: self.long_tick.wrapping_sub(1),
            trend_points: 0,
            rising: false,
            announced: NOT_ANNOUNCED,
            oom_baseline: NO_OOM_BASELINE,
            rise_since: f64::NAN,
            band_lo: 1,
            band_hi: 0,
            band_limit: 0,
            last_emit: f64::NEG_INFINITY,
            trend: Trend::default(),
        };
        let shared = Some(Arc::new(target.clone()));
        let index = match self.free.pop() {
            Some(i) => {
                self.states[i as usize] = state;
                self.last[i as usize] = LastReading::NONE;
                self.targets[i as usize] = shared;
                self.keys[i as usize] = key.clone();
                self.long[i as usize] = Long::EMPTY;
                i
            }
            None => {
                self.states.push(state);
                self.last.push(LastReading::NONE);
                self.targets.push(shared);
                self.keys.push(key.clone());
                self.long.push(Long::EMPTY);
                (self.states.len() - 1) as u32
            }
        };
        let id = SlotId { index, generation };
        self.index.insert(key, id);
        id
    }

    /// Resolves the target's thresholds (global plus annotations) to an index of the thresholds table.
    fn resolve(&mut self, target: &Target) -> u16 {
        let (thresholds, rejected) = self.global.with_annotations(target.annotations.iter());
        for (annotation, reason) in rejected {
            let pod = match (&target.namespace, &target.pod_name, &target.pod_uid) {
                (Some(ns), Some(name), _) => format!("{ns}/{name}"),
                (_, _, Some(uid)) => format!("uid {uid}"),
                _ => target.key(),
            };
            let value = target
                .annotations
                .get(&annotation)
                .cloned()
                .unwrap_or_default();
            if self.warned.insert((pod.clone(), annotation.clone(), value)) {
                tracing::warn!(pod = %pod, annotation = %annotation, "ignoring invalid annotation: {reason}; the global value applies");
            }
        }
        if let Some(i) = self.thresholds.iter().position(|t| *t == thresholds) {
            return i as u16;
        }
        if self.thresholds.len() > usize::from(u16::MAX) {
            self.compact_thresholds();
        }
        self.thresholds.push(thresholds);
        u16::try_from(self.thresholds.len() - 1).expect("compaction keeps the table below 2^16")
    }

    /// Drops threshold sets no tracked container uses any more (pods with their own overrides come and
    /// go); the global set stays at index 0.
    #[cold]
    fn compact_thresholds(&mut self) {
        let mut remap = vec![u16::MAX; self.thresholds.len()];
        remap[0] = 0;
        let mut kept = vec![self.thresholds[0]];
        for st in self.states.iter_mut().filter(|s| s.generation != 0) {
            let old = usize::from(st.thresholds);
            if remap[old] == u16::MAX {
                remap[old] = kept.len() as u16;
                kept.push(self.thresholds[old]);
            }
            st.thresholds = remap[old];
        }
        self.thresholds = kept;
    }

    /// Tracks the sample's container and feeds it its reading. Events are appended to `out`.
    pub fn observe_sample(&mut self, sample: &Sample, now: f64, out: &mut Vec<Event>) {
        let id = self.track(&sample.target);
        self.observe(id, &sample.reading, now, out);
    }

    /// Feeds one reading of a tracked container at clock `now` (seconds). Events are appended to `out`.
    ///
    /// Returns `false` (and does nothing) if `id` is stale: the container was forgotten since `track`.
    #[inline]
    pub fn observe(
        &mut self,
        id: SlotId,
        reading: &Reading,
        now: f64,
        out: &mut Vec<Event>,
    ) -> bool {
        if !self.epoch.is_at(now) {
            self.advance_epoch(now);
        }
        let i = id.index as usize;
        let Some(st) = self
            .states
            .get_mut(i)
            .filter(|s| s.generation == id.generation)
        else {
            cold_path();
            return false;
        };
        // The container's own thresholds only where an annotation can change what they say (the bands,
        // the cooldown): the signal and the horizon are global. Looked up there, not here: a steady
        // sample reads no threshold set.
        let th = usize::from(st.thresholds);
        if st.seen_cycle != self.cycle as u16 {
            st.seen_cycle = self.cycle as u16;
            self.seen += 1;
        } else {
            // A second reading in one cycle.
            cold_path();
        }
        // The gauges' copy of the reading, only when it changed: against an unconditional store, steady
        // +6 % (benches/engine, 10 000 containers, same run); a steady container only reads it. The
        // signal only when it is not the working set. The PSI figure (a conversion) out of line, only
        // when there is or was one. First, while the figures are in registers: at the end, the working
        // set was spilled and reloaded.
        let mut last = self.last.get_mut(i);
        let working_set = reading.working_set_bytes;
        let signal = match self.global.signal {
            Signal::WorkingSet => {
                if let Some(last) = last.as_deref_mut()
                    && last.working_set != working_set
                {
                    last.working_set = working_set;
                }
                working_set
            }
            Signal::Usage => {
                let usage = reading.usage_bytes;
                if let Some(last) = last.as_deref_mut()
                    && (last.working_set != working_set || last.usage != usage)
                {
                    last.working_set = working_set;
                    last.usage = usage;
                }
                usage
            }
        };
        if let Some(last) = last
            && (reading.psi.is_some() || last.psi_bits != NO_PSI)
        {
            last.set_psi(reading.psi.as_ref());
        }
        // 0 = unlimited (a zero limit is treated as none).
        let limit = reading.limit_bytes.unwrap_or(0);
        // Built only when an event is: its fields stay in registers on the hot path. References, not
        // values: a value captured here is loaded (and spilled) on every sample.
        let (targets, dry_run) = (&self.targets, &self.dry_run);
        let emit = move |event_type, severity, previous_severity, eta_seconds| {
            EventMaker {
                targets,
                slot: i,
                reading,
                signal,
                limit,
                dry_run,
            }
            .event(event_type, severity, previous_severity, eta_seconds)
        };

        if let Some(count) = reading.oom_kill_count
            && count != st.oom_baseline
        {
            cold_path();
            if st.oom_baseline != NO_OOM_BASELINE && count > st.oom_baseline {
                out.push(emit(EventType::OomKilled, st.severity, st.severity, None));
            }
            st.oom_baseline = count;
        }

        let previous = st.severity;
        let in_band = limit == st.band_limit && st.band_lo <= signal && signal <= st.band_hi;
        let severity = if in_band {
            previous
        } else {
            st.reclassify(&self.thresholds[th], signal, limit)
        };
        if severity != previous {
            cold_path();
            let kind = if severity == Severity::Ok {
                EventType::Recovered
            } else {
                EventType::MemoryPressure
            };
            out.push(emit(kind, severity, previous, None));
            st.last_emit = now;
            st.severity = severity;
        } else if severity != Severity::Ok
            && now - st.last_emit >= self.thresholds[th].cooldown_seconds
        {
            cold_path();
            out.push(emit(EventType::MemoryPressure, severity, previous, None));
            st.last_emit = now;
        }

        if self.predicts {
            if limit > 0 {
                // A point not added (a repeated clock value) predicts nothing new.
                let at = self.epoch.point();
                let pushed = if st.rising {
                    // A rising trend is full (`rising` only after a fit, cleared whenever the count
                    // is, see `State::rising`), and a rise takes steps: neither the count nor the jump
                    // is tested (ramping: two comparisons per sample less).
                    st.trend.push_full(&mut st.trend_points, now, signal, at)
                } else {
                    // `==` is `>=`: the count saturates at MIN_POINTS.
                    if st.trend_points == MIN_POINTS
                        && signal.abs_diff(st.trend.level()) > limit >> JUMP_SHIFT
                    {
                        st.restart_trend();
                    }
                    st.trend.push(&mut st.trend_points, now, signal, at)
                };
                match pushed {
                    Pushed::Fit => {
                        if let Some(eta) =
                            st.fit(signal, limit, now, at, self.global.predict_seconds)
                        {
                            out.push(emit(EventType::PredictedOom, severity, severity, Some(eta)));
                        }
                    }
                    Pushed::Filled => {
                        if let Some(eta) =
                            st.fit_filled(signal, limit, now, at, self.global.predict_seconds)
                        {
                            out.push(emit(EventType::PredictedOom, severity, severity, Some(eta)));
                        }
                    }
                    Pushed::Early => {
                        // Too few points: no rise (as `weigh` of none).
                        cold_path();
                        st.rising = false;
                    }
                    Pushed::Ignored => {}
                }
            } else if st.trend_points > 0 {
                st.restart_trend();
            }
            if st.long_tick != self.long_tick {
                cold_path();
                st.long_tick = self.long_tick;
                if self.long_tick_seconds > 0.0 {
                    let long = &mut self.long[i];
                    let eta = long.observe(
                        &self.long_epoch,
                        now,
                        signal,
                        limit,
                        self.global.predict_seconds,
                        st.last_announced(),
                    );
                    st.long_announced = long.announced_in_rise();
                    if let Some(eta) = eta {
                        out.push(emit(EventType::PredictedOom, severity, severity, Some(eta)));
                    }
                }
            }
        }
        true
    }

    /// Feeds an OOM kill known without a memory reading (cluster mode: a kill in pod status before any
    /// summary reading of the container): `count` is the container's OOM-kill counter after it.
    ///
    /// Emits one `oom_killed` whose usage and working set are `None` (no reading is made up) and whose
    /// severity stays what it was; the counter becomes the baseline that later readings compare
    /// with. Unlike a reading's first counter value, a first `count` here is not a silent baseline: the
    /// caller reports a kill it knows to be new. A `count` the engine already saw (a repeated report)
    /// emits nothing. `limit_bytes` is the container's limit as far as the caller knows it (pod spec).
    pub fn observe_oom_kills(
        &mut self,
        target: &Target,
        count: u64,
        limit_bytes: Option<u64>,
        timestamp: SystemTime,
        out: &mut Vec<Event>,
    ) {
        let id = self.track(target);
        let i = id.index as usize;
        let st = &mut self.states[i];
        if st.seen_cycle != self.cycle as u16 {
            st.seen_cycle = self.cycle as u16;
            self.seen += 1;
        }
        if st.oom_baseline != NO_OOM_BASELINE && count <= st.oom_baseline {
            return;
        }
        st.oom_baseline = count;
        let target = self.targets[i].as_ref().expect("live slot has a target");
        out.push(Event {
            timestamp,
            event_type: EventType::OomKilled,
            severity: st.severity,
            previous_severity: st.severity,
            target: Arc::clone(target),
            usage_bytes: None,
            working_set_bytes: None,
            limit_bytes: limit_bytes.filter(|&l| l > 0),
            usage_percent: None,
            oom_kill_count: Some(count),
            eta_seconds: None,
            psi_some_avg10: None,
            dry_run: self.dry_run,
            profile: None,
        });
    }

    /// Moves the trends' epoch to clock value `now`, rebasing every trend when its origin moves (rare:
    /// every few prediction windows, or when the clock jumps).
    #[cold]
    #[inline(never)]
    fn advance_epoch(&mut self, now: f64) {
        if let Some(rebase) = self.epoch.advance(now) {
            for st in &mut self.states {
                st.trend.rebase(&mut st.trend_points, rebase);
                // A trend the rebase cleared does not rise (the next push would say so too).
                st.rising &= st.trend_points > 0;
            }
        }
        if self.long_tick_seconds > 0.0 {
            let bucket = (now / self.long_tick_seconds).floor();
            if bucket.to_bits() != self.long_bucket.to_bits() {
                self.long_bucket = bucket;
                self.long_tick = self.long_tick.wrapping_add(1);
                if let Some(rebase) = self.long_epoch.advance(now) {
                    for lg in &mut self.long {
                        lg.trend.rebase(&mut lg.points, rebase);
                    }
                }
            }
        }
    }

    /// Ends a poll cycle: forgets containers not seen in the last three cycles. Returns how many were forgotten.
    pub fn end_cycle(&mut self) -> usize {
        self.end_cycle_keeping(|_| false)
    }

    /// Ends a poll cycle like [`end_cycle`](Self::end_cycle), except that a container not seen in the
    /// cycle that ended counts as seen when `unread(target)` says its source could not be read (cluster
    /// mode: its node's summary failed, is backing off or is still running). Its absence then says
    /// nothing about it, so it keeps its state — severity, cooldown clock, OOM-kill counter, trend —
    /// through an outage of any length, and its next reading is compared with that state, not taken
    /// for a first one. Only containers whose source was read without them for three cycles (gone) are
    /// forgotten; the caller bounds what it calls unread (e.g. pods that still exist). Returns how many
    /// were forgotten.
    ///
    /// `unread` is asked only about containers not seen in the cycle, at most once each per cycle.
    pub fn end_cycle_keeping(&mut self, mut unread: impl FnMut(&Target) -> bool) -> usize {
        let ended = self.cycle as u16;
        self.cycle += 1;
        let cycle = self.cycle as u16;
        let all_seen = self.seen >= self.index.len();
        self.seen = 0;
        if all_seen {
            // Every container was seen in the cycle that ended: none can be three cycles stale.
            return 0;
        }
        let mut forgotten = 0;
        for (i, st) in self.states.iter_mut().enumerate() {
            if st.generation == 0 || st.seen_cycle == ended {
                continue;
            }
            let Some(target) = &self.targets[i] else {
                continue;
            };
            if unread(target) {
                st.seen_cycle = ended;
                continue;
            }
            if cycle.wrapping_sub(st.seen_cycle) > FORGET_AFTER_CYCLES as u16 {
                st.generation = 0;
                self.targets[i] = None;
                self.index.remove(&std::mem::take(&mut self.keys[i]));
                self.free.push(i as u32);
                forgotten += 1;
            }
        }
        forgotten
    }
}

/// The signal as a percentage of the limit: the one formula of the engine.
#[inline]
fn percent_of(signal: u64, limit: u64) -> f64 {
    signal as f64 * 100.0 / limit as f64
}

/// The least signal whose percentage of `limit` is at least `percent`, if any is.
///
/// Searches around the estimate `percent · limit / 100`, so the bound agrees with [`percent_of`] to the
/// byte whatever its rounding.
fn first_at_least(percent: f64, limit: u64) -> Option<u64> {
    let reaches = |s: u64| percent_of(s, limit) >= percent;
    if reaches(0) {
        return Some(0);
    }
    if !reaches(u64::MAX) {
        return None;
    }
    // Invariant: !reaches(lo), reaches(hi).
    let estimate = (percent / 100.0 * limit as f64) as u64;
    let slack = (estimate >> 40).max(4);
    let (mut lo, mut hi) = (
        estimate.saturating_sub(slack),
        estimate.saturating_add(slack),
    );
    if reaches(lo) {
        lo = 0;
    }
    if !reaches(hi) {
        hi = u64::MAX;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// What an event of one sample is made of; building one is the cold path of [`Engine::observe`].
struct EventMaker<'a> {
    targets: &'a [Option<Arc<Target>>],
    slot: usize,
    reading: &'a Reading,
    signal: u64,
    /// 0 = unlimited.
    limit: u64,
    dry_run: &'a bool,
}

impl EventMaker<'_> {
    #[cold]
    #[inline(never)]
    fn event(
        &self,
        event_type: EventType,
        severity: Severity,
        previous_severity: Severity,
        eta_seconds: Option<f64>,
    ) -> Event {
        let target = self.targets[self.slot]
            .as_ref()
            .expect("live slot has a target");
        let reading = self.reading;
        let usage_percent = (self.limit > 0).then(|| percent_of(self.signal, self.limit));
        Event {
            timestamp: reading.timestamp,
            event_type,
            severity,
            previous_severity,
            target: Arc::clone(target),
            usage_bytes: Some(reading.usage_bytes),
            working_set_bytes: Some(reading.working_set_bytes),
            limit_bytes: reading.limit_bytes,
            // The real ratio, not capped at 100: a pod-level figure can exceed a container's limit
            // (issue 15), and a capped figure would hide by how much. Severity never reads it.
            usage_percent: usage_percent.map(|p| (p * 100.0).round() / 100.0),
            oom_kill_count: reading.oom_kill_count,
            eta_seconds: eta_seconds.map(|e| (e * 10.0).round() / 10.0),
            psi_some_avg10: reading.psi.map(|p| p.some_avg10),
            dry_run: *self.dry_run,
            profile: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    fn severities() -> impl Strategy<Value = Severity> {
        prop_oneof![
            Just(Severity::Ok),
            Just(Severity::Warn),
            Just(Severity::Critical)
        ]
    }

    proptest! {
        /// The byte band agrees with the percentage comparison for every signal: inside it the severity
        /// stays, outside it the full evaluation runs.
        #[test]
        fn band_matches_severity(
            warn in 1.0f64..99.0,
            gap in 0.01f64..50.0,
            hysteresis_share in 0.0f64..1.0,
            limit in prop_oneof![1u64..10_000, 1u64..u64::MAX, Just(u64::MAX)],
            current in severities(),
            signals in proptest::collection::vec(any::<u64>(), 1..16),
            near in proptest::collection::vec(-3i64..3, 1..8),
        ) {
            let th = ThresholdsConfig {
                warn_percent: warn,
                critical_percent: (warn + gap).min(100.0),
                hysteresis_percent: warn * hysteresis_share * 0.99,
                ..ThresholdsConfig::default()
            };
            prop_assume!(th.warn_percent < th.critical_percent);
            let (lo, hi) = th.band(current, limit);
            // Random signals, and the ones next to the band's edges.
            let edges = [lo, hi].into_iter().flat_map(|e| near.iter().map(move |d| e.saturating_add_signed(*d)));
            for s in signals.iter().copied().chain(edges) {
                let stays = th.severity(percent_of(s, limit), current) == current;
                prop_assert_eq!(lo <= s && s <= hi, stays, "signal {} band [{}, {}]", s, lo, hi);
            }
        }
    }

    #[test]
    fn a_container_watched_for_hours_predicts_like_a_new_one() {
        // The trends' origin moves every few windows (hundreds of times here). A container watched for four
        // hours and one watched for the last 20 time constants, fed the same series (noisy and flat at
        // 32 GiB, then a 100 MiB/s ramp to a 64 GiB limit), predict at the same samples, the same eta.
        let thresholds = ThresholdsConfig {
            cooldown_seconds: 0.0,
            ..ThresholdsConfig::default()
        };
        let mut engine = Engine::new(&thresholds, false);
        let target = |uid: &str| Target {
            pod_uid: Some(uid.into()),
            ..Target::default()
        };
        let limit = 64u64 << 30;
        let usage = |t: u64| {
            let noise = (t * 7919 % 1000) * 1000;
            (32u64 << 30) + noise + t.saturating_sub(14_000) * (100 << 20)
        };
        let old = engine.track(&target("old"));
        let mut young = None;
        let mut predicted = [Vec::new(), Vec::new()];
        let mut out = Vec::new();
        for t in 0..14_400u64 {
            let now = 1.7e9 + t as f64;
            if t == 13_700 {
                young = Some(engine.track(&target("young")));
            }
            let used = usage(t).min(limit);
            let reading = Reading::new(UNIX_EPOCH, used, Some(limit));
            for (k, id) in [Some(old), young].into_iter().enumerate() {
                let Some(id) = id else { continue };
                assert!(engine.observe(id, &reading, now, &mut out));
                for e in out.drain(..) {
                    if e.event_type == EventType::PredictedOom {
                        predicted[k].push((t, e.eta_seconds.unwrap()));
                    }
                }
            }
            engine.end_cycle();
        }
        let [old, young] = predicted;
        // The first at the horizon, then one each time the ETA halves: 60, 30, 15, 7.5, 3.8, 1.9, ...
        assert!(old.len() >= 5, "{old:?}");
        for pair in old.windows(2) {
            assert!(pair[1].1 < pair[0].1 / 2.0 + 0.1, "{old:?}");
        }
        assert_eq!(old.len(), young.len(), "{old:?} {young:?}");
        for ((t0, eta0), (t1, eta1)) in old.iter().zip(&young) {
            assert_eq!(t0, t1);
            assert!(
                (eta0 - eta1).abs() <= 0.1 + 1e-9,
                "t={t0}: {eta0} vs {eta1}"
            );
        }
        // The ramp starts at t = 14 000 and reaches the limit at t = 14 327: the first prediction comes
        // when the rise has lasted half the ETA (t ≈ 14 109, plus the points a significant fit needs),
        // with the true ETA.
        let (t, eta) = old[0];
        assert!((14_109..=14_130).contains(&t), "{old:?}");
        assert!((eta - (14_327 - t) as f64).abs() < 3.0, "{old:?}");
    }

    /// A rising trend that a clock jump empties (the rebase clears it) no longer rises: it is pushed as a
    /// trend with no points (a rising trend is pushed as a full one), and from then on it predicts like
    /// a container first seen after the jump.
    #[test]
    fn a_rise_emptied_by_a_clock_jump_starts_over_like_a_new_container() {
        let mut engine = Engine::new(&ThresholdsConfig::default(), false);
        let target = |uid: &str| Target {
            pod_uid: Some(uid.into()),
            ..Target::default()
        };
        let limit = 1u64 << 30;
        let ramp = |t: u64| (100u64 << 20) + t * (10 << 20);
        let old = engine.track(&target("old"));
        let mut out = Vec::new();
        for t in 0..60u64 {
            let reading = Reading::new(UNIX_EPOCH, ramp(t), Some(limit));
            engine.observe(old, &reading, t as f64, &mut out);
            engine.end_cycle();
        }
        assert!(engine.states[old.index as usize].rising);
        assert!(engine.eta(old).is_some());
        // A day later (thousands of time constants: every weight underflows).
        let young = engine.track(&target("young"));
        let mut etas = [Vec::new(), Vec::new()];
        for t in 0..60u64 {
            let now = 86_400.0 + t as f64;
            let reading = Reading::new(UNIX_EPOCH, ramp(t), Some(limit));
            for (k, id) in [old, young].into_iter().enumerate() {
                engine.observe(id, &reading, now, &mut out);
                etas[k].push(engine.eta(id));
            }
            out.clear();
            engine.end_cycle();
        }
        assert_eq!(etas[0][0], None);
        assert!(etas[0][59].is_some(), "{:?}", etas[0]);
        assert_eq!(etas[0], etas[1]);
    }

    /// Issue 18: the per-container view gives the last reading, the ratio of the signal, severity,
    /// the gauge ETA and the OOM counter, and drops forgotten containers.
    #[test]
    fn issue_18_containers_view_follows_readings_and_forgets_gone_ones() {
        let mut engine = Engine::new(&ThresholdsConfig::default(), false);
        let mut out = Vec::new();
        let target = |uid: &str| Target {
            pod_uid: Some(uid.into()),
            ..Target::default()
        };
        let (a, b) = (target("a"), target("b"));
        let mut reading = Reading::new(UNIX_EPOCH, 900, Some(1000));
        reading.working_set_bytes = 800;
        reading.oom_kill_count = Some(2);
        let unlimited = Reading::new(UNIX_EPOCH, 10, None);
        let (ia, ib) = (engine.track(&a), engine.track(&b));
        engine.observe(ia, &reading, 0.0, &mut out);
        engine.observe(ib, &unlimited, 0.0, &mut out);
        let views: Vec<_> = engine.containers().collect();
        assert_eq!(views.len(), 2);
        let va = views.iter().find(|v| *v.target == a).unwrap();
        assert_eq!(va.working_set_bytes, Some(800));
        assert_eq!(va.limit_bytes, Some(1000));
        assert_eq!(
            va.usage_ratio,
            Some(0.8),
            "working set is the default signal"
        );
        assert_eq!(va.severity, Severity::Warn);
        assert_eq!(va.oom_kills, Some(2));
        assert_eq!(va.eta_seconds, None);
        let vb = views.iter().find(|v| *v.target == b).unwrap();
        assert_eq!((vb.limit_bytes, vb.usage_ratio), (None, None));
        assert_eq!(vb.severity, Severity::Ok);
        // A leak: the view's ETA is the engine's.
        for t in 1..=60u64 {
            let r = Reading::new(UNIX_EPOCH, 100 + 10 * t, Some(1000));
            engine.observe(ia, &r, t as f64, &mut out);
            engine.observe(ib, &unlimited, t as f64, &mut out);
            engine.end_cycle();
        }
        let va = engine.containers().find(|v| *v.target == a).unwrap();
        assert_eq!(va.working_set_bytes, Some(700));
        let eta = va.eta_seconds.expect("a steady leak has an ETA");
        assert_eq!(Some(eta), engine.eta(ia));
        assert!((eta - 30.0).abs() < 3.0, "{eta}");
        // b alone goes on: a is forgotten after three cycles and leaves the view.
        for t in 61..=65u64 {
            engine.observe(ib, &unlimited, t as f64, &mut out);
            engine.end_cycle();
        }
        let left: Vec<_> = engine.containers().map(|v| v.target.clone()).collect();
        assert_eq!(left, [b]);
    }

    #[test]
    fn first_at_least_is_exact_at_small_and_huge_limits() {
        assert_eq!(first_at_least(70.0, 100), Some(70));
        assert_eq!(first_at_least(70.0, 1000), Some(700));
        assert_eq!(first_at_least(0.0, 1000), Some(0));
        assert_eq!(first_at_least(-5.0, 1000), Some(0));
        let big = u64::MAX / 3;
        let s = first_at_least(85.0, big).unwrap();
        assert!(percent_of(s, big) >= 85.0 && percent_of(s - 1, big) < 85.0);
        // Above 100 % of u64::MAX nothing reaches.
        assert_eq!(first_at_least(200.0, u64::MAX), None);
    }

    #[test]
    fn threshold_sets_nobody_uses_are_dropped_when_the_table_fills() {
        let mut engine = Engine::new(&ThresholdsConfig::default(), false);
        let pod = |uid: &str, warn: &str| Target {
            pod_uid: Some(uid.into()),
            annotations: std::collections::BTreeMap::from([(
                ANNOTATION_WARN_PERCENT.to_owned(),
                warn.to_owned(),
            )])
            .into(),
            ..Target::default()
        };
        let kept = engine.track(&pod("kept", "50"));
        let gone = engine.track(&pod("gone", "60"));
        // Fill the table to its limit with sets nobody uses.
        let filler = engine.global;
        engine.thresholds.resize(usize::from(u16::MAX) + 1, filler);
        engine.states[gone.index as usize].generation = 0;
        let fresh = engine.track(&pod("fresh", "55"));
        assert_eq!(engine.thresholds.len(), 3, "global, kept's and fresh's");
        assert_eq!(engine.thresholds(kept).unwrap().warn_percent, 50.0);
        assert_eq!(engine.thresholds(fresh).unwrap().warn_percent, 55.0);
    }

    /// Issue 14 item 6: an OOM kill without a reading is reported with no usage, leaves the severity
    /// as it was, and becomes the counter baseline for the readings that follow.
    #[test]
    fn an_oom_kill_without_a_reading_makes_up_no_usage() {
        let mut engine = Engine::new(&ThresholdsConfig::default(), false);
        let target = Target {
            pod_uid: Some("uid-1".into()),
            container_name: Some("app".into()),
            ..Target::default()
        };
        let mut out = Vec::new();
        engine.observe_oom_kills(&target, 1, Some(100), UNIX_EPOCH, &mut out);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(e.event_type, EventType::OomKilled);
        assert_eq!(
            (e.severity, e.previous_severity),
            (Severity::Ok, Severity::Ok)
        );
        assert_eq!((e.usage_bytes, e.working_set_bytes), (None, None));
        assert_eq!(
            (e.limit_bytes, e.usage_percent, e.oom_kill_count),
            (Some(100), None, Some(1))
        );
        let json: serde_json::Value = serde_json::from_str(&e.to_json_line()).unwrap();
        assert!(json["usage_bytes"].is_null() && json["working_set_bytes"].is_null());
        // The same report again: nothing.
        out.clear();
        engine.observe_oom_kills(&target, 1, Some(100), UNIX_EPOCH, &mut out);
        assert!(out.is_empty());
        // A reading with the same counter is not a new kill; its usage classifies as usual.
        let mut reading = Reading::new(UNIX_EPOCH, 50, Some(100));
        reading.oom_kill_count = Some(1);
        engine.observe_sample(
            &Sample {
                target: target.clone(),
                reading,
            },
            1.0,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // At critical, a kill without a reading keeps critical.
        reading.usage_bytes = 95;
        reading.working_set_bytes = 95;
        engine.observe_sample(
            &Sample {
                target: target.clone(),
                reading,
            },
            2.0,
            &mut out,
        );
        assert_eq!(out.pop().map(|e| e.severity), Some(Severity::Critical));
        engine.observe_oom_kills(&target, 2, Some(100), UNIX_EPOCH, &mut out);
        assert_eq!(
            out.iter()
                .map(|e| (e.event_type, e.severity, e.oom_kill_count))
                .collect::<Vec<_>>(),
            [(EventType::OomKilled, Severity::Critical, Some(2))]
        );
    }
}
