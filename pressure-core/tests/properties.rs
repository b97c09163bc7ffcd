//! Property tests of the engine's invariants.

use proptest::prelude::*;

use pressure_core::{Config, EventType, Severity};

use crate::util::Drive;

fn config(warn: f64, gap: f64, hysteresis: f64, cooldown: f64) -> Config {
    let mut c = Config::default();
    c.thresholds.warn_percent = warn;
    c.thresholds.critical_percent = (warn + gap).min(100.0);
    c.thresholds.hysteresis_percent = hysteresis.min(warn - 1.0);
    c.thresholds.cooldown_seconds = cooldown;
    c
}

proptest! {
    /// No two pressure events for one container inside the cooldown unless the severity changed.
    #[test]
    fn no_repeat_inside_cooldown(
        warn in 20.0f64..80.0,
        gap in 2.0f64..15.0,
        hysteresis in 0.0f64..10.0,
        cooldown in 1.0f64..30.0,
        series in prop::collection::vec(0.0f64..100.0, 1..200),
    ) {
        let mut d = Drive::new(&config(warn, gap, hysteresis, cooldown));
        let mut last: Option<(f64, Severity)> = None;
        for (i, p) in series.iter().enumerate() {
            let t = i as f64 * 0.5;
            for e in d.pct(t, *p) {
                if !matches!(e.event_type, EventType::MemoryPressure | EventType::Recovered) {
                    continue;
                }
                if let Some((lt, ls)) = last {
                    prop_assert!(
                        e.severity != ls || t - lt >= cooldown,
                        "repeat of {:?} at {} after {}", e.severity, t, lt
                    );
                }
                last = Some((t, e.severity));
            }
        }
    }

    /// Values oscillating inside the hysteresis band below a level never flap out of it.
    #[test]
    fn no_flapping_inside_hysteresis_band(
        warn in 20.0f64..80.0,
        gap in 6.0f64..15.0,
        hysteresis in 1.0f64..5.0,
        offsets in prop::collection::vec(0.0f64..1.0, 1..200),
    ) {
        let c = config(warn, gap, hysteresis, 1e9);
        let crit = c.thresholds.critical_percent;
        let h = c.thresholds.hysteresis_percent;
        for (level, start) in [(warn, Severity::Warn), (crit, Severity::Critical)] {
            let mut d = Drive::new(&c);
            let first = d.pct(0.0, level + 0.01);
            prop_assert_eq!(first.len(), 1);
            prop_assert_eq!(first[0].severity, start);
            for (i, o) in offsets.iter().enumerate() {
                // Strictly inside [level - h, level]: never leaves `start`.
                let p = level - h + 0.001 + o * (h - 0.002);
                let events = d.pct(1.0 + i as f64, p);
                prop_assert!(events.is_empty(), "{:?} at {}", events, p);
            }
        }
    }

    /// Prediction never fires on a non-increasing series.
    #[test]
    fn no_prediction_on_non_increasing_series(
        start in 1.0f64..100.0,
        steps in prop::collection::vec(0.0f64..3.0, 1..200),
        dt in 0.05f64..5.0,
    ) {
        let mut c = Config::default();
        c.thresholds.predict_seconds = 1e9;
        c.thresholds.cooldown_seconds = 0.0;
        let mut d = Drive::new(&c);
        let mut p = start;
        for (i, s) in steps.iter().enumerate() {
            p = (p - s).max(0.0);
            for e in d.pct(i as f64 * dt, p) {
                prop_assert!(e.event_type != EventType::PredictedOom, "{:?}", e);
            }
        }
    }
}

/// The `predicted_oom` events of a series of `(t, percent)` samples, as `(t, eta, percent)`.
fn predictions(series: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut d = Drive::new(&Config::default());
    let mut out = Vec::new();
    for (t, p) in series {
        for e in d.pct(t, p) {
            if e.event_type == EventType::PredictedOom {
                out.push((t, e.eta_seconds.unwrap()));
            }
        }
    }
    out
}

proptest! {
    /// Issue 17: a linear leak from any level, at any rate and sampling interval, is announced with
    /// its true ETA (to 5 %), only after it has lasted half of that ETA, and before the limit.
    #[test]
    fn a_linear_leak_is_announced_with_its_eta(
        from in 0.0f64..60.0,
        // Percent of the limit per second, and seconds per sample: the limit is 10 s to 6 h away.
        rate in 0.005f64..4.0,
        interval in prop_oneof![Just(0.1f64), Just(1.0), Just(10.0)],
    ) {
        let full = (100.0 - from) / rate;
        prop_assume!(full / interval >= 40.0 && full <= 21_600.0 * 1.5);
        let n = (full / interval) as usize;
        let predicted = predictions((0..n).map(|i| {
            let t = i as f64 * interval;
            (t, from + rate * t)
        }));
        let &(t, eta) = predicted.first().expect("announced");
        let actual = full - t;
        prop_assert!((eta - actual).abs() <= 0.05 * actual + 0.1, "{predicted:?} full {full}");
        prop_assert!(t >= 0.5 * eta - interval && t >= 3.0, "{predicted:?}");
    }

    /// Issue 17: a step up from any level (a start-up, a batch, a cache fill) that then stays flat with
    /// noise is never announced, however close to the limit it lands.
    #[test]
    fn a_step_that_levels_off_is_never_announced(
        from in 0.0f64..50.0,
        height in 5.0f64..45.0,
        ramp_samples in 1usize..6,
        noise in prop::collection::vec(0.0f64..1.0, 200),
    ) {
        let to = from + height;
        let series = (0..200).map(|i| {
            let p = if i < 30 {
                from
            } else if i < 30 + ramp_samples {
                from + height * (i - 29) as f64 / ramp_samples as f64
            } else {
                to
            };
            (i as f64 * 0.1, p + noise[i])
        });
        prop_assert_eq!(predictions(series), vec![]);
    }
}
