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
