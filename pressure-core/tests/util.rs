//! Helpers to drive the engine with plain numbers.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use pressure_core::{Config, Engine, Event, Reading, Sample, Target};

pub(crate) const MIB: u64 = 1 << 20;

pub(crate) fn target(uid: &str) -> Target {
    Target {
        namespace: Some("ns".into()),
        pod_name: Some(format!("pod-{uid}").into()),
        pod_uid: Some(uid.into()),
        container_name: Some("app".into()),
        ..Target::default()
    }
}

pub(crate) fn annotated(uid: &str, annotations: &[(&str, &str)]) -> Target {
    let mut t = target(uid);
    t.annotations = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>()
        .into();
    t
}

pub(crate) fn reading(t: f64, used: u64, limit: Option<u64>, ooms: Option<u64>) -> Reading {
    Reading {
        oom_kill_count: ooms,
        ..Reading::new(UNIX_EPOCH + Duration::from_secs_f64(t), used, limit)
    }
}

/// A driver: one engine, one container, a list of (t, percent-of-100MiB) points.
pub(crate) struct Drive {
    pub(crate) engine: Engine,
    pub(crate) target: Target,
}

impl Drive {
    pub(crate) fn new(config: &Config) -> Drive {
        Drive {
            engine: Engine::new(&config.thresholds, config.dry_run),
            target: target("u1"),
        }
    }

    /// Feeds usage as a percent of a 100 MiB limit at time `t`.
    pub(crate) fn pct(&mut self, t: f64, percent: f64) -> Vec<Event> {
        let used = (percent / 100.0 * (100 * MIB) as f64) as u64;
        self.feed(reading(t, used, Some(100 * MIB), None), t)
    }

    pub(crate) fn feed(&mut self, r: Reading, t: f64) -> Vec<Event> {
        let mut out = Vec::new();
        let sample = Sample {
            target: self.target.clone(),
            reading: r,
        };
        self.engine.observe_sample(&sample, t, &mut out);
        self.engine.end_cycle();
        out
    }
}

pub(crate) fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}:{}<-{}",
                e.event_type.as_str(),
                e.severity.as_str(),
                e.previous_severity.as_str()
            )
        })
        .collect()
}
