//! Least-squares trend of a container's memory over a sliding window, for `predicted_oom`.

/// Points kept per container; at 1 s polling this covers the default 30 s window.
const CAPACITY: usize = 32;
/// Fewer points than this never predict (a slope from a handful of samples is noise).
const MIN_POINTS: usize = 8;
/// The fit must explain this share of the variance (R²), so noisy-but-flat series don't predict.
const MIN_R2: f64 = 0.6;

/// A ring of `(time, bytes)` points with running sums for an O(1) least-squares slope.
///
/// Values are kept relative to the first point of the current run (`base_t`, `base_w`) so the sums of
/// squares stay well inside f64 precision; the sums are recomputed exactly whenever the ring wraps, so
/// rounding from add/subtract never accumulates.
#[derive(Debug, Clone)]
pub(crate) struct Trend {
    t: [f64; CAPACITY],
    w: [f64; CAPACITY],
    head: usize,
    len: usize,
    base_t: f64,
    base_w: f64,
    sums: Sums,
    pushes: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    t: f64,
    w: f64,
    tt: f64,
    ww: f64,
    tw: f64,
}

impl Sums {
    fn add(&mut self, t: f64, w: f64, sign: f64) {
        self.t += sign * t;
        self.w += sign * w;
        self.tt += sign * t * t;
        self.ww += sign * w * w;
        self.tw += sign * t * w;
    }
}

impl Default for Trend {
    fn default() -> Self {
        Trend {
            t: [0.0; CAPACITY],
            w: [0.0; CAPACITY],
            head: 0,
            len: 0,
            base_t: 0.0,
            base_w: 0.0,
            sums: Sums::default(),
            pushes: 0,
        }
    }
}

impl Trend {
    /// Forgets every point.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
        self.sums = Sums::default();
        self.pushes = 0;
    }

    fn index(&self, i: usize) -> usize {
        // i = 0 is the oldest point.
        (self.head + CAPACITY - self.len + i) % CAPACITY
    }

    fn newest_t(&self) -> f64 {
        self.t[self.index(self.len - 1)]
    }

    fn pop_oldest(&mut self) {
        let i = self.index(0);
        let (t, w) = (self.t[i], self.w[i]);
        self.sums.add(t, w, -1.0);
        self.len -= 1;
    }

    /// Adds a point at time `now` (seconds) and drops points older than `window` seconds.
    pub(crate) fn push(&mut self, now: f64, bytes: u64, window: f64) {
        if self.len == 0 {
            self.base_t = now;
            self.base_w = bytes as f64;
        } else {
            let last = self.newest_t() + self.base_t;
            if now < last {
                // The clock went backwards (a replay out of order): start over.
                self.clear();
                self.base_t = now;
                self.base_w = bytes as f64;
            } else if now == last {
                return;
            }
        }
        let t = now - self.base_t;
        let w = bytes as f64 - self.base_w;
        while self.len > 0 && (self.len == CAPACITY || self.t[self.index(0)] < t - window) {
            self.pop_oldest();
        }
        self.t[self.head] = t;
        self.w[self.head] = w;
        self.head = (self.head + 1) % CAPACITY;
        self.len += 1;
        self.sums.add(t, w, 1.0);
        self.pushes += 1;
        if self.pushes >= CAPACITY {
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        self.pushes = 0;
        let mut sums = Sums::default();
        for i in 0..self.len {
            let k = self.index(i);
            sums.add(self.t[k], self.w[k], 1.0);
        }
        self.sums = sums;
    }

    /// Bytes per second of a significant upward trend, or `None` (too few points, flat, falling or noisy).
    pub(crate) fn rising_slope(&self) -> Option<f64> {
        if self.len < MIN_POINTS {
            return None;
        }
        // A non-increasing series never predicts: its least-squares slope is <= 0 mathematically, and
        // this check keeps rounding from turning a flat series into a tiny positive slope.
        if self.w[self.index(self.len - 1)] <= self.w[self.index(0)] {
            return None;
        }
        let n = self.len as f64;
        let s = self.sums;
        let sxx = n * s.tt - s.t * s.t;
        let syy = n * s.ww - s.w * s.w;
        let sxy = n * s.tw - s.t * s.w;
        if sxx <= 0.0 || syy <= 0.0 || sxy <= 0.0 {
            return None;
        }
        let r2 = (sxy / sxx) * (sxy / syy);
        if r2 < MIN_R2 {
            return None;
        }
        Some(sxy / sxx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(series: &[(f64, u64)]) -> Trend {
        let mut tr = Trend::default();
        for &(t, w) in series {
            tr.push(t, w, 30.0);
        }
        tr
    }

    #[test]
    fn linear_ramp_gives_its_slope() {
        let series: Vec<_> = (0..20).map(|i| (i as f64, 1_000_000 + i * 4096)).collect();
        let slope = fill(&series).rising_slope().unwrap();
        assert!((slope - 4096.0).abs() < 1e-6, "{slope}");
    }

    #[test]
    fn too_few_points_flat_and_falling_do_not_predict() {
        let few: Vec<_> = (0..MIN_POINTS as u64 - 1)
            .map(|i| (i as f64, i * 1000))
            .collect();
        assert_eq!(fill(&few).rising_slope(), None);
        let flat: Vec<_> = (0..20).map(|i| (i as f64, 5_000_000)).collect();
        assert_eq!(fill(&flat).rising_slope(), None);
        let falling: Vec<_> = (0..20).map(|i| (i as f64, 5_000_000 - i * 1000)).collect();
        assert_eq!(fill(&falling).rising_slope(), None);
    }

    #[test]
    fn noisy_flat_does_not_predict() {
        // A deterministic zig-zag around 100 MB with a one-sample upward blip at the end.
        let series: Vec<_> = (0..30u64)
            .map(|i| {
                let noise = [0, 3, 1, 4, 1, 5, 9, 2, 6, 5][(i % 10) as usize] * 100_000;
                (i as f64, 100_000_000 + noise)
            })
            .collect();
        assert_eq!(fill(&series).rising_slope(), None);
    }

    #[test]
    fn window_drops_old_points() {
        let mut tr = Trend::default();
        // A long flat stretch, then a steep ramp: only the ramp is inside the window.
        for i in 0..100u64 {
            tr.push(i as f64, 1_000_000, 10.0);
        }
        for i in 100..120u64 {
            tr.push(i as f64, 1_000_000 + (i - 99) * 10_000, 10.0);
        }
        let slope = tr.rising_slope().unwrap();
        assert!((slope - 10_000.0).abs() < 1e-3, "{slope}");
    }

    #[test]
    fn clock_going_backwards_restarts() {
        let mut tr = fill(&(0..20).map(|i| (i as f64, i * 1000)).collect::<Vec<_>>());
        tr.push(5.0, 0, 30.0);
        assert_eq!(tr.len, 1);
    }
}
