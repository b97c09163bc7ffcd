//! Least-squares trend of a container's memory, for `predicted_oom`.
//!
//! An exponentially weighted least-squares fit: each point's weight decays with its age as
//! `exp(-age / tau)` with `tau = window / 2`, which gives the same mean age as a sliding window of
//! `window` seconds. It needs no ring of points: six running sums in one cache line per container, and
//! O(1) work per sample — what lets the engine evaluate tens of millions of samples per second.
//!
//! Instead of decaying every old point at each sample, the weights GROW: a point at time `t` weighs
//! `exp((t - origin) / tau)`, where the origin is shared by all containers of an engine (an [`Epoch`]).
//! Only the ratios of weights matter (a common factor cancels in the slope, R² and the rising test),
//! so a push is five multiplications and six additions, and the weight is one `exp` per distinct clock
//! value for the whole engine. Before the weights grow large the origin moves to the present and every
//! trend is rescaled once ([`Trend::rebase`]): rare, O(containers).
//!
//! Coordinates are kept relative to the origin (time) and to a per-container byte base that moves to the
//! weighted mean at every rebase, so the sums stay near the data and well inside f64 precision however
//! long a container lives and however large its memory.

/// Fewer points than this never predict: a slope from a handful of samples is noise.
pub(crate) const MIN_POINTS: u8 = 8;
/// The fit must explain this share of the variance (R²), so noisy-but-flat series don't predict.
const MIN_R2: f64 = 0.6;
/// The origin moves when the clock is this many time constants past it: the newest weights stay below
/// `e^8 ≈ 3000`, and the cancellation in the sums (whose coordinates then reach 8 time constants while
/// the data spreads over about one) costs a few bits of the 53.
const REBASE_AFTER_TAUS: f64 = 8.0;
/// A clock going back by more than this many time constants before the origin starts every trend over
/// (moving the origin back would scale the sums up by more than `e^64`).
const MAX_BACK_TAUS: f64 = 64.0;

/// Weighted sums of `1, t, w, t², w², t·w` over past points — time relative to the engine's [`Epoch`],
/// bytes relative to `base` — and the newest point's time: exactly one cache line. The number of points
/// pushed is kept by the caller (see [`Trend::push`]), so the engine can pack it with its other counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trend {
    t: f64,
    w: f64,
    tt: f64,
    tw: f64,
    n: f64,
    ww: f64,
    /// Clock of the newest point; `-inf` when empty.
    last_t: f64,
    /// The bytes that are `w = 0`.
    base: u64,
}

impl Default for Trend {
    fn default() -> Trend {
        Trend::EMPTY
    }
}

/// The engine-wide time origin of the trends, and the coordinate and weight of a point at the current
/// clock value (computed once per distinct clock value, shared by every container).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    /// The time constant `tau = window / 2`.
    tau: f64,
    /// Clock value of `x = 0`; NaN until the first clock value.
    origin: f64,
    /// The clock value `point` is for; NaN until the first one.
    now: f64,
    point: Point,
}

/// Where and how heavy a point at the epoch's current clock value is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    /// `now - origin`.
    pub(crate) x: f64,
    /// `exp(x / tau)`.
    weight: f64,
    /// `weight * x` and `weight * x * x`: the time sums' terms, the same for every container pushed at
    /// this clock value, so computed once per clock value rather than per sample.
    wx: f64,
    wxx: f64,
}

impl Point {
    /// The point at coordinate `x` with weight `weight`.
    #[inline]
    fn new(x: f64, weight: f64) -> Point {
        let wx = weight * x;
        Point {
            x,
            weight,
            wx,
            wxx: wx * x,
        }
    }
}

/// A move of the epoch's origin, to apply to every trend with [`Trend::rebase`] before the next push.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rebase {
    /// New origin minus old origin (seconds).
    shift: f64,
    /// `exp(-shift / tau)`: the weights relative to the new origin; 0 = start over.
    scale: f64,
}

impl Epoch {
    /// The epoch of trends fitted over `window` seconds.
    pub(crate) fn new(window: f64) -> Epoch {
        Epoch {
            // A window that is not positive (rejected by validation) fits only the newest point.
            tau: (window / 2.0).max(f64::MIN_POSITIVE),
            origin: f64::NAN,
            now: f64::NAN,
            point: Point::new(f64::NAN, f64::NAN),
        }
    }

    /// The coordinate of clock value `t` (NaN before the first clock value).
    pub(crate) fn x_of(&self, t: f64) -> f64 {
        t - self.origin
    }

    /// The coordinate and weight of a point at clock value `t`, near the last
    /// [`advance`](Self::advance) (the long trend's points: one `exp` per container and long tick).
    pub(crate) fn point_at(&self, t: f64) -> Point {
        let x = t - self.origin;
        Point::new(x, (x / self.tau).exp())
    }

    /// Whether [`point`](Self::point) is for clock value `now` (compared as bit patterns: cheaper than a
    /// float comparison, and exact).
    #[inline]
    pub(crate) fn is_at(&self, now: f64) -> bool {
        self.now.to_bits() == now.to_bits()
    }

    /// The coordinate and weight of a point at the clock value of the last [`advance`](Self::advance).
    #[inline]
    pub(crate) fn point(&self) -> &Point {
        &self.point
    }

    /// Moves to clock value `now`. When the origin has to move (the first clock value, `now` far past the
    /// origin, or before it), returns the [`Rebase`] that every trend must get before a push at `now`.
    pub(crate) fn advance(&mut self, now: f64) -> Option<Rebase> {
        self.now = now;
        if now.is_nan() {
            // Pushes ignore it; the origin stays.
            self.point = Point::new(f64::NAN, f64::NAN);
            return None;
        }
        let x = now - self.origin;
        if (0.0..=REBASE_AFTER_TAUS * self.tau).contains(&x) {
            self.point = Point::new(x, (x / self.tau).exp());
            return None;
        }
        // The first clock value (x is NaN), far past the origin, or before it.
        self.origin = now;
        self.point = Point::new(0.0, 1.0);
        let scale = if x >= -MAX_BACK_TAUS * self.tau {
            (-x / self.tau).exp()
        } else {
            0.0
        };
        Some(Rebase { shift: x, scale })
    }
}

/// A significant rise toward the limit (the newest point above the weighted mean, a positive slope, a fit
/// that explains at least [`MIN_R2`] of the variance): its ETA is `room_sxx / sxy` seconds, kept as a
/// fraction so that comparing it costs multiplications, and only an announcement divides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rise {
    /// The room to the limit times the scaled variance of time.
    pub(crate) room_sxx: f64,
    /// The scaled covariance of time and bytes (positive).
    pub(crate) sxy: f64,
}

impl Rise {
    /// Seconds until the limit at the fitted slope.
    pub(crate) fn eta(self) -> f64 {
        self.room_sxx / self.sxy
    }

    /// Whether the ETA is at most `seconds` (infinite: always).
    #[inline]
    pub(crate) fn within(self, seconds: f64) -> bool {
        self.room_sxx <= seconds * self.sxy
    }
}

/// What [`Trend::push`] did with a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Not added: at the newest point's time, or at a NaN clock. Nothing new to predict.
    Ignored,
    /// Added, but the trend has fewer than [`MIN_POINTS`] points: too few to fit (no rise).
    Early,
    /// Added to a trend that held [`MIN_POINTS`] points already: [`Trend::rise`] may fit it.
    Fit,
    /// Added as the [`MIN_POINTS`]th point: as [`Fit`](Pushed::Fit), but from the out-of-line path of
    /// the first points, so that a caller can fit it out of line too and the hot path keeps the sums
    /// of [`Fit`](Pushed::Fit) in registers (when the two paths merged, the fit reloaded every sum
    /// from memory: ramping +4 %, benches/engine same run).
    Filled,
}

/// The room from `bytes` to `limit` as f64: `limit.saturating_sub(bytes) as f64`, on the path to every
/// rise's comparison. Through i64 (one instruction, where u64 → f64 takes five dependent ones on
/// x86-64), and the subtraction's flags decide both rare cases at once — past the limit (room 0) and a
/// room of 8 EiB or more — which are out of line, or the compiler merges them into the slow path.
#[inline]
fn room(limit: u64, bytes: u64) -> f64 {
    #[cold]
    #[inline(never)]
    fn rare(limit: u64, bytes: u64) -> f64 {
        limit.saturating_sub(bytes) as f64
    }
    match limit.checked_sub(bytes) {
        Some(d) if d as i64 >= 0 => d as i64 as f64,
        _ => rare(limit, bytes),
    }
}

impl Trend {
    pub(crate) const EMPTY: Trend = Trend {
        n: 0.0,
        t: 0.0,
        w: 0.0,
        tt: 0.0,
        ww: 0.0,
        tw: 0.0,
        last_t: f64::NEG_INFINITY,
        base: 0,
    };

    /// Clock of the newest point; `-inf` when empty.
    pub(crate) fn last_t(&self) -> f64 {
        self.last_t
    }

    /// Forgets every point.
    pub(crate) fn clear(&mut self) {
        *self = Trend::EMPTY;
    }

    /// Adds `bytes` at time `now` (seconds), whose coordinate and weight `at` the engine's [`Epoch`] gives,
    /// and counts it in `points` (the points since the last clear, saturating at [`MIN_POINTS`], the only
    /// count a caller compares with besides 0: 0 exactly when the trend is empty, which the caller keeps
    /// true when it clears the trend). A point at the newest point's time (or at a NaN clock) is
    /// ignored; one before it (a clock going backwards, e.g. a replay out of order) starts over.
    ///
    /// Says which (see [`Pushed`]): the caller branches once, and the common case — a trend of
    /// [`MIN_POINTS`] points took the point — is a constant on the path that got there, so the count is
    /// not read again to decide whether to fit.
    #[inline]
    #[expect(
        clippy::neg_cmp_op_on_partial_ord,
        reason = "a NaN clock must fail the test"
    )]
    pub(crate) fn push(&mut self, points: &mut u8, now: f64, bytes: u64, at: &Point) -> Pushed {
        if !(now > self.last_t) {
            std::hint::cold_path();
            return self.push_not_after(points, now, bytes, at);
        }
        if *points < MIN_POINTS {
            // One comparison per sample once the count is full (it was a test for the first point and
            // a saturating increment: 6 instructions per sample more, scripts/engine-callgrind.sh).
            // As `push_not_after`'s: an answer the compiler sees is never `Fit`.
            return if self.push_early(points, now, bytes, at) {
                Pushed::Filled
            } else {
                Pushed::Early
            };
        }
        self.add(now, bytes, at);
        Pushed::Fit
    }

    /// [`push`](Self::push) into a trend that holds [`MIN_POINTS`] points (the caller knows it: the
    /// engine's rising trends), without testing the count.
    #[inline]
    #[expect(
        clippy::neg_cmp_op_on_partial_ord,
        reason = "a NaN clock must fail the test"
    )]
    pub(crate) fn push_full(
        &mut self,
        points: &mut u8,
        now: f64,
        bytes: u64,
        at: &Point,
    ) -> Pushed {
        debug_assert_eq!(*points, MIN_POINTS);
        if !(now > self.last_t) {
            std::hint::cold_path();
            return self.push_not_after(points, now, bytes, at);
        }
        self.add(now, bytes, at);
        Pushed::Fit
    }

    /// [`push`](Self::push) of a point not after the newest: ignored when at its time (or at a NaN
    /// clock), else the trend starts over from it. Never `Fit` (a trend started over has one point),
    /// and the compiler sees it: a `Fit` from here would merge with the hot one and cost it its sums in
    /// registers.
    #[inline(always)]
    fn push_not_after(&mut self, points: &mut u8, now: f64, bytes: u64, at: &Point) -> Pushed {
        const _: () = assert!(MIN_POINTS > 1);
        if self.restart_at(points, now, bytes, at) {
            Pushed::Early
        } else {
            Pushed::Ignored
        }
    }

    /// [`push_not_after`](Self::push_not_after)'s work, out of line: whether the point started the
    /// trend over.
    #[cold]
    #[inline(never)]
    fn restart_at(&mut self, points: &mut u8, now: f64, bytes: u64, at: &Point) -> bool {
        if now < self.last_t {
            self.clear();
            *points = 0;
            // After the clear only a clock of -inf is not after the newest point.
            return self.push(points, now, bytes, at) != Pushed::Ignored;
        }
        false
    }

    /// [`push`](Self::push) of one of the first [`MIN_POINTS`] points; the first is the byte origin.
    /// Returns whether the trend has [`MIN_POINTS`] points now.
    #[cold]
    #[inline(never)]
    fn push_early(&mut self, points: &mut u8, now: f64, bytes: u64, at: &Point) -> bool {
        if *points == 0 {
            self.base = bytes;
        }
        *points += 1;
        self.add(now, bytes, at);
        *points == MIN_POINTS
    }

    /// Adds the point to the sums.
    #[inline(always)]
    fn add(&mut self, now: f64, bytes: u64, at: &Point) {
        let &Point {
            weight: g, wx, wxx, ..
        } = at;
        let y = self.y(bytes);
        let gy = g * y;
        self.t += wx;
        self.w += gy;
        self.tt += wxx;
        self.tw += wx * y;
        self.n += g;
        self.ww += gy * y;
        self.last_t = now;
    }

    /// The byte coordinate of `bytes`: a signed integer difference, then one conversion (exact below
    /// 2^53 bytes; u64 → f64 is slow).
    #[inline]
    fn y(&self, bytes: u64) -> f64 {
        bytes.wrapping_sub(self.base) as i64 as f64
    }

    /// Moves the sums to the epoch's new origin (see [`Epoch::advance`]) and the byte base to the weighted
    /// mean, so the coordinates stay near the data. `points` as for [`push`](Self::push).
    pub(crate) fn rebase(&mut self, points: &mut u8, r: Rebase) {
        if *points == 0 {
            return;
        }
        if self.n * r.scale < f64::MIN_POSITIVE {
            // Everything faded (a clock jump of hundreds of time constants) or the clock went far back.
            self.clear();
            *points = 0;
            return;
        }
        // An integer byte shift keeps the coordinates of new points exact.
        let c = (self.w / self.n).round();
        let d = r.shift;
        // Every point's coordinates shift by (-d, -c).
        let Trend { n, t, w, .. } = *self;
        self.tt += -2.0 * d * t + d * d * n;
        self.ww += -2.0 * c * w + c * c * n;
        self.tw += -d * w - c * t + d * c * n;
        self.t -= d * n;
        self.w -= c * n;
        // Weights relative to the new origin.
        let k = r.scale;
        self.n *= k;
        self.t *= k;
        self.w *= k;
        self.tt *= k;
        self.ww *= k;
        self.tw *= k;
        self.base = self.base.wrapping_add_signed(c as i64);
    }

    /// Bytes per second of a significant upward trend ending at the newest point, `bytes`, or `None` (too
    /// few points, flat, falling or noisy).
    #[cfg(test)]
    pub(crate) fn rising_slope(&self, points: u8, bytes: u64) -> Option<f64> {
        if points < MIN_POINTS {
            return None;
        }
        let (sxx, sxy) = self.rising(bytes)?;
        Some(sxy / sxx)
    }

    /// The significant rise of a trend of at least [`MIN_POINTS`] points (one that
    /// [`push`](Self::push) said to fit), whose newest point is `bytes`, toward `limit`, or `None`
    /// (flat, falling or noisy).
    ///
    /// The cheap test comes first and nothing is divided: for most samples of most containers this is
    /// one comparison.
    #[inline]
    pub(crate) fn rise(&self, bytes: u64, limit: u64) -> Option<Rise> {
        let (sxx, sxy) = self.rising(bytes)?;
        let room = room(limit, bytes);
        Some(Rise {
            room_sxx: room * sxx,
            sxy,
        })
    }

    /// The level of a trend that does not rise, in bytes, without arithmetic: its byte base, which is its
    /// first point or its weighted mean at the last rebase (at most 8 time constants old; a flat or
    /// noisy-flat series stays near it).
    #[inline]
    pub(crate) fn level(&self) -> u64 {
        self.base
    }

    /// The fitted bytes at coordinate `x` (the epoch's point of the newest clock value), for a gauge.
    pub(crate) fn fitted(&self, x: f64) -> u64 {
        let sxx = self.n * self.tt - self.t * self.t;
        let sxy = self.n * self.tw - self.t * self.w;
        let y = (self.w + sxy / sxx * (x * self.n - self.t)) / self.n;
        self.base.wrapping_add_signed(y.round() as i64)
    }

    /// Whether `bytes` at coordinate `x` (the epoch's point) lies more than `tolerance` bytes below the
    /// fitted line: the rise is slowing down (a warm-up levelling off, a ramp reaching its plateau, a
    /// flat stretch of a staircase). Cold: only asked before an announcement.
    pub(crate) fn below_fit(&self, bytes: u64, x: f64, tolerance: u64) -> bool {
        let sxx = self.n * self.tt - self.t * self.t;
        let sxy = self.n * self.tw - self.t * self.w;
        let fitted = (self.w + sxy / sxx * (x * self.n - self.t)) / self.n;
        self.y(bytes) + (tolerance as f64) < fitted
    }

    /// The scaled variance of time and covariance of time and bytes when the series rises significantly:
    /// the newest point, `bytes`, lies above the weighted mean `w / n` (a non-increasing series never
    /// passes, whatever the rounding: half a byte of tolerance), the covariance is positive and the fit
    /// explains at least [`MIN_R2`] of the variance (noisy-but-flat series don't).
    ///
    /// The tests after the first are all made, and joined without short-circuit: one branch where a
    /// rise that lasts (every sample of it must be significant) took three, and the compiler does not
    /// merge the not-rising paths it used to keep apart (ramping +3 %, benches/engine same run).
    #[inline]
    fn rising(&self, bytes: u64) -> Option<(f64, f64)> {
        if self.w > (self.y(bytes) - 0.5) * self.n {
            return None;
        }
        let sxx = self.n * self.tt - self.t * self.t;
        let sxy = self.n * self.tw - self.t * self.w;
        let syy = self.n * self.ww - self.w * self.w;
        ((sxx > 0.0) & (sxy > 0.0) & (syy > 0.0) & (sxy * sxy >= MIN_R2 * sxx * syy))
            .then_some((sxx, sxy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One container's trend with its own epoch, as the engine drives it.
    struct Fit {
        epoch: Epoch,
        tr: Trend,
        points: u8,
        last: u64,
        rebases: u32,
    }

    impl Fit {
        fn new(window: f64) -> Fit {
            Fit {
                epoch: Epoch::new(window),
                tr: Trend::default(),
                points: 0,
                last: 0,
                rebases: 0,
            }
        }

        fn push(&mut self, t: f64, w: u64) -> bool {
            if !self.epoch.is_at(t)
                && let Some(r) = self.epoch.advance(t)
            {
                self.tr.rebase(&mut self.points, r);
                self.rebases += 1;
            }
            let added = self.tr.push(&mut self.points, t, w, self.epoch.point()) != Pushed::Ignored;
            if added {
                self.last = w;
            }
            added
        }

        fn rising_slope(&self) -> Option<f64> {
            self.tr.rising_slope(self.points, self.last)
        }
    }

    fn fill(series: &[(f64, u64)], window: f64) -> Fit {
        let mut fit = Fit::new(window);
        for &(t, w) in series {
            fit.push(t, w);
        }
        fit
    }

    /// The same fit computed directly (two passes, centred, weights relative to the newest point), and
    /// whether it is at a decision boundary where rounding may decide.
    fn reference(series: &[(f64, u64)], window: f64) -> (Option<f64>, bool) {
        let tau = window / 2.0;
        let &(t_last, w_last) = series.last().unwrap();
        let pts: Vec<(f64, f64, f64)> = series
            .iter()
            .filter(|(t, _)| t_last - t < 80.0 * tau)
            .map(|&(t, w)| {
                let g = ((t - t_last) / tau).exp();
                (g, t - t_last, w.wrapping_sub(w_last) as i64 as f64)
            })
            .collect();
        let n: f64 = pts.iter().map(|p| p.0).sum();
        let mx = pts.iter().map(|p| p.0 * p.1).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.0 * p.2).sum::<f64>() / n;
        let sxx: f64 = pts.iter().map(|p| p.0 * (p.1 - mx).powi(2)).sum();
        let syy: f64 = pts.iter().map(|p| p.0 * (p.2 - my).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| p.0 * (p.1 - mx) * (p.2 - my)).sum();
        let r2 = sxy * sxy / (sxx * syy);
        let slope = (series.len() >= MIN_POINTS as usize
            && my <= -0.5
            && sxx > 0.0
            && sxy > 0.0
            && syy > 0.0
            && r2 >= MIN_R2)
            .then(|| sxy / sxx);
        let borderline = (r2 - MIN_R2).abs() < 1e-6 || (my + 0.5).abs() < 1e-3;
        (slope, borderline)
    }

    #[test]
    fn linear_ramp_gives_its_slope() {
        let series: Vec<_> = (0..20).map(|i| (i as f64, 1_000_000 + i * 4096)).collect();
        let slope = fill(&series, 30.0).rising_slope().unwrap();
        assert!((slope - 4096.0).abs() < 1e-6, "{slope}");
    }

    #[test]
    fn too_few_points_flat_and_falling_do_not_predict() {
        let few: Vec<_> = (0..7u64).map(|i| (i as f64, i * 1000)).collect();
        assert_eq!(fill(&few, 30.0).rising_slope(), None);
        let flat: Vec<_> = (0..20).map(|i| (i as f64, 5_000_000)).collect();
        assert_eq!(fill(&flat, 30.0).rising_slope(), None);
        let falling: Vec<_> = (0..20).map(|i| (i as f64, 5_000_000 - i * 1000)).collect();
        assert_eq!(fill(&falling, 30.0).rising_slope(), None);
    }

    #[test]
    fn noisy_flat_does_not_predict() {
        // A deterministic zig-zag around 100 MB.
        let series: Vec<_> = (0..60u64)
            .map(|i| {
                let noise = [0, 3, 1, 4, 1, 5, 9, 2, 6, 5][(i % 10) as usize] * 100_000;
                (i as f64, 100_000_000 + noise)
            })
            .collect();
        for end in 10..series.len() {
            assert_eq!(fill(&series[..end], 30.0).rising_slope(), None, "end={end}");
        }
    }

    #[test]
    fn old_points_fade() {
        // A long flat stretch, then a steep ramp: after a few time constants the slope is the ramp's.
        let mut series: Vec<_> = (0..100u64).map(|i| (i as f64, 1_000_000)).collect();
        series.extend((100..130u64).map(|i| (i as f64, 1_000_000 + (i - 99) * 10_000)));
        let slope = fill(&series, 10.0).rising_slope().unwrap();
        assert!((slope - 10_000.0).abs() < 500.0, "{slope}");
    }

    #[test]
    fn long_lived_series_keep_precision() {
        // Ten years in, a 1 KiB/s ramp over 16 GiB is still measured exactly.
        let series: Vec<_> = (0..40u64)
            .map(|i| (3.15e8 + i as f64, (16u64 << 30) + i * 1024))
            .collect();
        let slope = fill(&series, 30.0).rising_slope().unwrap();
        assert!((slope - 1024.0).abs() < 1e-3, "{slope}");
    }

    #[test]
    fn clock_going_backwards_restarts() {
        let mut fit = fill(
            &(0..20).map(|i| (i as f64, i * 1000)).collect::<Vec<_>>(),
            30.0,
        );
        assert!(fit.push(5.0, 0));
        let one = fit.epoch.point().weight;
        assert_eq!((fit.tr.n, fit.points), (one, 1));
        // A repeated clock value is ignored, and so is NaN.
        assert!(!fit.push(5.0, 7));
        assert!(!fit.push(f64::NAN, 7));
        assert_eq!((fit.tr.n, fit.points), (one, 1));
        assert!(fit.push(6.0, 7));
        assert_eq!(fit.points, 2);
    }

    /// A deterministic pseudo-random sequence in [0, 1).
    fn lcg(state: &mut u64) -> f64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    #[test]
    fn many_origin_moves_fit_like_a_fresh_fit_of_the_recent_window() {
        // Three hours at irregular intervals of a series that ramps, holds, falls, and jumps, with noise;
        // the origin moves every 8 time constants. After every sample the running fit agrees with one
        // computed directly from the points.
        for (window, base) in [(30.0, 200u64 << 20), (10.0, 64u64 << 30)] {
            let mut seed = 7;
            let mut fit = Fit::new(window);
            let mut series = Vec::new();
            let (mut t, mut level) = (1.7e9, base as f64);
            let mut compared = 0;
            while t < 1.7e9 + 3.0 * 3600.0 {
                t += 0.1 + 2.9 * lcg(&mut seed);
                let phase = ((t - 1.7e9) / 600.0) as u64 % 4;
                level += match phase {
                    0 => 40_000.0,
                    1 => 0.0,
                    2 => -25_000.0,
                    _ => 60_000.0,
                } * (0.5 + lcg(&mut seed));
                if lcg(&mut seed) < 0.002 {
                    level += 300e6;
                }
                let w = (level + 50_000.0 * lcg(&mut seed)) as u64;
                assert!(fit.push(t, w));
                series.push((t, w));
                let got = fit.rising_slope();
                let (want, borderline) = reference(&series, window);
                match (got, want) {
                    (Some(a), Some(b)) => {
                        assert!((a - b).abs() <= 1e-9 * b.abs(), "t={t}: {a} vs {b}");
                        compared += 1;
                    }
                    (None, None) => {}
                    _ => assert!(borderline, "t={t}: {got:?} vs {want:?}"),
                }
            }
            assert!(fit.rebases >= 90, "{}", fit.rebases);
            assert!(compared > 1000, "{compared}");
        }
    }

    #[test]
    fn large_limits_keep_byte_precision() {
        // From 64 GiB for a day: a non-increasing series (flat stretches, small and 1 GiB drops) never
        // rises; then a 1 KiB/s ramp is measured to a millionth once the drops have faded.
        let mut seed = 11;
        let mut fit = Fit::new(30.0);
        let mut w = 64u64 << 30;
        let mut t = 0.0;
        for i in 0..86_400u64 {
            t = i as f64;
            let r = lcg(&mut seed);
            if r < 0.3 {
                w -= (r * 4_000_000.0) as u64;
            } else if r < 0.3002 {
                w -= 1 << 30;
            }
            fit.push(t, w);
            assert_eq!(fit.rising_slope(), None, "t={t} w={w}");
        }
        assert!(w > 16 << 30, "{w}");
        for i in 1..=600u64 {
            fit.push(t + i as f64, w + i * 1024);
        }
        let slope = fit.rising_slope().unwrap();
        assert!((slope - 1024.0).abs() < 1e-3, "{slope}");
    }

    #[test]
    fn far_clock_jumps_start_over() {
        // A ramp of 20 points; the count after its first point says whether the trend started over.
        let ramp = |fit: &mut Fit, from: f64| {
            fit.push(from, 1 << 30);
            let first = fit.points;
            for i in 1..20u64 {
                fit.push(from + i as f64, (1 << 30) + i * 4096);
            }
            first
        };
        let mut fit = Fit::new(30.0);
        assert_eq!(ramp(&mut fit, 0.0), 1);
        assert!(fit.rising_slope().is_some());
        // Far ahead: the old points weigh nothing.
        assert_eq!(ramp(&mut fit, 1e6), 1);
        assert_eq!(fit.points, MIN_POINTS);
        assert!((fit.rising_slope().unwrap() - 4096.0).abs() < 1e-6);
        // Far back: a fresh start.
        assert_eq!(ramp(&mut fit, -1e6), 1);
        assert_eq!(fit.points, MIN_POINTS);
        assert!((fit.rising_slope().unwrap() - 4096.0).abs() < 1e-6);
    }
}
