//! Least-squares trend of a container's memory, for `predicted_oom`.
//!
//! An exponentially weighted least-squares fit: each point's weight decays with its age as
//! `exp(-age / tau)` with `tau = window / 2`, which gives the same mean age as a sliding window of
//! `window` seconds. It needs no ring of points: six running sums in one cache line per container, and
//! O(1) work per sample — what lets the engine evaluate tens of millions of samples per second.
//!
//! Coordinates are kept relative to the newest point (which is therefore `(0, 0)`), so the sums stay small
//! and well inside f64 precision however long a container lives.

/// Fewer points than this never predict: a slope from a handful of samples is noise.
pub(crate) const MIN_POINTS: u32 = 8;
/// The fit must explain this share of the variance (R²), so noisy-but-flat series don't predict.
const MIN_R2: f64 = 0.6;

/// Weighted sums of `1, t, w, t², w², t·w` over past points, relative to the newest point: exactly one
/// cache line. The number of points pushed is kept by the caller (see [`Trend::push`]), so the engine
/// can pack it with its other counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Trend {
    n: f64,
    t: f64,
    w: f64,
    tt: f64,
    ww: f64,
    tw: f64,
    last_t: f64,
    last_w: u64,
}

/// A rising trend that reaches the limit soon: what `predicted_oom` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prediction {
    /// Seconds until the limit is reached at the fitted slope.
    pub(crate) eta_seconds: f64,
}

impl Trend {
    /// Forgets every point.
    pub(crate) fn clear(&mut self) {
        *self = Trend::default();
    }

    /// Adds a point at time `now` (seconds) and counts it in `points` (the points since the last clear,
    /// saturating). A point at the newest point's time is ignored; one before it (a clock going
    /// backwards, e.g. a replay out of order) starts over. `decay` maps an interval to its weight
    /// factor (`exp(-dt / tau)`); the engine caches it because intervals repeat.
    #[inline]
    pub(crate) fn push(
        &mut self,
        points: &mut u32,
        now: f64,
        bytes: u64,
        decay: impl FnOnce(f64) -> f64,
    ) {
        if self.n == 0.0 {
            self.n = 1.0;
            self.last_t = now;
            self.last_w = bytes;
            *points = 1;
            return;
        }
        let dt = now - self.last_t;
        if dt <= 0.0 {
            if dt < 0.0 {
                self.clear();
                self.push(points, now, bytes, decay);
            }
            return;
        }
        // Signed integer difference, then one conversion (exact below 2^53 bytes; u64 → f64 is slow).
        let dw = bytes.wrapping_sub(self.last_w) as i64 as f64;
        // Move the origin to the new point: every old point's coordinates shift by (-dt, -dw).
        let Trend { n, t, w, .. } = *self;
        self.tt += -2.0 * dt * t + dt * dt * n;
        self.ww += -2.0 * dw * w + dw * dw * n;
        self.tw += -dt * w - dw * t + dt * dw * n;
        self.t -= dt * n;
        self.w -= dw * n;
        // Age the old points, then add the new one at the origin (it only adds to `n`).
        let k = decay(dt);
        self.n = self.n * k + 1.0;
        self.t *= k;
        self.w *= k;
        self.tt *= k;
        self.ww *= k;
        self.tw *= k;
        self.last_t = now;
        self.last_w = bytes;
        *points = points.saturating_add(1);
    }

    /// Bytes per second of a significant upward trend, or `None` (too few points, flat, falling or noisy).
    #[cfg(test)]
    pub(crate) fn rising_slope(&self, points: u32) -> Option<f64> {
        let (sxx, sxy) = self.rising(points)?;
        self.significant(sxx, sxy).then(|| sxy / sxx)
    }

    /// When the trend over `points` points is significant, rising, and reaches `room` more bytes within
    /// `horizon` seconds.
    ///
    /// The cheap tests come first and nothing is divided unless it predicts: for most samples of most
    /// containers this is two comparisons.
    #[inline]
    pub(crate) fn predict(&self, points: u32, room: u64, horizon: f64) -> Option<Prediction> {
        let (sxx, sxy) = self.rising(points)?;
        // eta = room / slope = room · sxx / sxy <= horizon, without dividing (sxx, sxy > 0).
        if room as f64 * sxx > horizon * sxy || !self.significant(sxx, sxy) {
            return None;
        }
        Some(Prediction {
            eta_seconds: room as f64 * sxx / sxy,
        })
    }

    /// The scaled variance of time and covariance of time and bytes when the series rises: the newest
    /// point lies above the weighted mean (whose coordinate is w / n; a non-increasing series never
    /// passes, whatever the rounding: half a byte of tolerance) and the covariance is positive.
    #[inline]
    fn rising(&self, points: u32) -> Option<(f64, f64)> {
        if points < MIN_POINTS || self.w > -0.5 * self.n {
            return None;
        }
        let sxx = self.n * self.tt - self.t * self.t;
        let sxy = self.n * self.tw - self.t * self.w;
        (sxx > 0.0 && sxy > 0.0).then_some((sxx, sxy))
    }

    /// Whether the fit explains at least [`MIN_R2`] of the variance.
    fn significant(&self, sxx: f64, sxy: f64) -> bool {
        let syy = self.n * self.ww - self.w * self.w;
        syy > 0.0 && sxy * sxy >= MIN_R2 * sxx * syy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(series: &[(f64, u64)], window: f64) -> Fit {
        let mut fit = Fit::default();
        for &(t, w) in series {
            fit.tr
                .push(&mut fit.points, t, w, |dt| (-dt / (window / 2.0)).exp());
        }
        fit
    }

    #[derive(Default)]
    struct Fit {
        tr: Trend,
        points: u32,
    }

    impl Fit {
        fn rising_slope(&self) -> Option<f64> {
            self.tr.rising_slope(self.points)
        }
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
        fit.tr.push(&mut fit.points, 5.0, 0, |_| 1.0);
        assert_eq!((fit.tr.n, fit.points), (1.0, 1));
    }
}
