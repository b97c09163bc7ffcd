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
const MIN_POINTS: u32 = 8;
/// The fit must explain this share of the variance (R²), so noisy-but-flat series don't predict.
const MIN_R2: f64 = 0.6;

/// Weighted sums of `1, t, w, t², w², t·w` over past points, relative to the newest point.
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
    /// Points pushed since the last clear (not decayed).
    count: u32,
}

impl Trend {
    /// Forgets every point.
    pub(crate) fn clear(&mut self) {
        *self = Trend::default();
    }

    /// Adds a point at time `now` (seconds). `decay` maps an interval to its weight factor
    /// (`exp(-dt / tau)`); the engine caches it because intervals repeat.
    #[inline]
    pub(crate) fn push(&mut self, now: f64, bytes: u64, decay: impl FnOnce(f64) -> f64) {
        if self.n == 0.0 {
            self.n = 1.0;
            self.count = 1;
            self.last_t = now;
            self.last_w = bytes;
            return;
        }
        let dt = now - self.last_t;
        if dt <= 0.0 {
            if dt < 0.0 {
                // The clock went backwards (a replay out of order): start over.
                self.clear();
                self.push(now, bytes, decay);
            }
            return;
        }
        let dw = bytes as f64 - self.last_w as f64;
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
        self.count = self.count.saturating_add(1);
    }

    /// Bytes per second of a significant upward trend, or `None` (too few points, flat, falling or noisy).
    #[inline]
    pub(crate) fn rising_slope(&self) -> Option<f64> {
        // The newest point must lie above the weighted mean (whose coordinate is w / n): a non-increasing
        // series never passes, whatever the rounding (half a byte of tolerance).
        if self.count < MIN_POINTS || self.w > -0.5 * self.n {
            return None;
        }
        let sxx = self.n * self.tt - self.t * self.t;
        let syy = self.n * self.ww - self.w * self.w;
        let sxy = self.n * self.tw - self.t * self.w;
        if sxx <= 0.0 || syy <= 0.0 || sxy <= 0.0 {
            return None;
        }
        if (sxy / sxx) * (sxy / syy) < MIN_R2 {
            return None;
        }
        Some(sxy / sxx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(series: &[(f64, u64)], window: f64) -> Trend {
        let mut tr = Trend::default();
        for &(t, w) in series {
            tr.push(t, w, |dt| (-dt / (window / 2.0)).exp());
        }
        tr
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
        let mut tr = fill(
            &(0..20).map(|i| (i as f64, i * 1000)).collect::<Vec<_>>(),
            30.0,
        );
        tr.push(5.0, 0, |_| 1.0);
        assert_eq!((tr.n, tr.count), (1.0, 1));
    }
}
