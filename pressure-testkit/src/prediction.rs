//! The prediction benchmark: replays a corpus of recorded memory timelines through the engine and
//! measures how early and how accurately `predicted_oom` warns of each real OOM kill, and whether it
//! stays quiet on the timelines that were never killed.
//!
//! A corpus is a directory of `<name>.jsonl` timelines (the `pressured --replay` format) each with a
//! `<name>.meta.json` sidecar (see `fixtures/growth/README.md`): `oom_killed`, `kill_t` (the clock of the
//! first sample whose `oom_kill_count` rose), and the keys this project adds, `shape` (what the workload
//! does: `leak`, `steady`, `sawtooth`, `page-cache`, `batch`, `start-up`, `warm-up`, `ramp-plateau`) and
//! `split` (`tune`: used to choose the rules and defaults; `holdout`: only measured).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pressure_core::{Config, Engine, Event, EventType, Severity, replay};
use serde::Deserialize;

/// A corpus that cannot be read; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or the directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A meta file is not the expected JSON.
    #[error("{path}: {source}")]
    Meta {
        /// The meta file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A timeline line is malformed.
    #[error("{path}: {source}")]
    Timeline {
        /// The timeline.
        path: PathBuf,
        /// The error.
        #[source]
        source: replay::ReplayError,
    },
    /// A killed timeline without a kill time.
    #[error("{path}: oom_killed without kill_t")]
    NoKillTime {
        /// The meta file.
        path: PathBuf,
    },
}

/// What the sidecar of a timeline says (foreign-ish JSON: lenient, unknown keys ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct TimelineMeta {
    /// Whether the run ended in a real kernel OOM kill.
    pub oom_killed: bool,
    /// Clock of the first sample whose `oom_kill_count` rose.
    #[serde(default)]
    pub kill_t: Option<f64>,
    /// What the workload does (see the module documentation).
    #[serde(default)]
    pub shape: Option<String>,
    /// `tune` or `holdout`.
    #[serde(default)]
    pub split: Option<String>,
    /// One sentence on the workload.
    #[serde(default)]
    pub description: String,
}

/// One recorded timeline of the corpus.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The file name without `.jsonl`.
    pub name: String,
    /// Its sidecar.
    pub meta: TimelineMeta,
    /// The samples in file order.
    pub records: Vec<replay::ReplayRecord>,
}

/// Reads every `<name>.jsonl` with its `<name>.meta.json` in `dir`, sorted by name.
pub fn load_corpus(dir: &Path) -> Result<Vec<Timeline>, CorpusError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CorpusError::Io { path, source }
    };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut corpus = Vec::with_capacity(names.len());
    for name in names {
        let meta_path = dir.join(format!("{name}.meta.json"));
        let text = std::fs::read_to_string(&meta_path).map_err(io(&meta_path))?;
        let meta: TimelineMeta =
            serde_json::from_str(&text).map_err(|source| CorpusError::Meta {
                path: meta_path.clone(),
                source,
            })?;
        if meta.oom_killed && meta.kill_t.is_none() {
            return Err(CorpusError::NoKillTime { path: meta_path });
        }
        let path = dir.join(format!("{name}.jsonl"));
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match replay::parse_line(i + 1, line) {
                Ok(Some(r)) => records.push(r),
                Ok(None) => {}
                Err(source) => return Err(CorpusError::Timeline { path, source }),
            }
        }
        corpus.push(Timeline {
            name,
            meta,
            records,
        });
    }
    Ok(corpus)
}

/// How the engine did on one timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The timeline's name.
    pub name: String,
    /// Its shape, `?` when the meta file names none.
    pub shape: String,
    /// Its split, `?` when the meta file names none.
    pub split: String,
    /// Clock of the kill, for killed runs.
    pub kill_t: Option<f64>,
    /// Clock and ETA of the first `predicted_oom` (before the kill, for killed runs).
    pub first_prediction: Option<(f64, f64)>,
    /// Clock of the first critical `memory_pressure` (before the kill, for killed runs).
    pub first_critical: Option<f64>,
    /// `predicted_oom` events before the kill (all of them for runs without one).
    pub predictions: usize,
    /// Critical `memory_pressure` events before the kill (all of them for runs without one).
    pub criticals: usize,
}

impl Outcome {
    /// Seconds from the first `predicted_oom` to the kill.
    pub fn lead(&self) -> Option<f64> {
        Some(self.kill_t? - self.first_prediction?.0)
    }

    /// Seconds from the first critical to the kill: the threshold-only baseline.
    pub fn critical_lead(&self) -> Option<f64> {
        Some(self.kill_t? - self.first_critical?)
    }

    /// `(eta − actual) / actual` of the first `predicted_oom`, actual being its lead.
    pub fn eta_error(&self) -> Option<f64> {
        let lead = self.lead()?;
        let (_, eta) = self.first_prediction?;
        (lead > 0.0).then(|| (eta - lead) / lead)
    }
}

/// Replays `timeline` through an engine configured by `config`, one poll cycle per clock value, as
/// `pressured --replay` does.
pub fn evaluate(timeline: &Timeline, config: &Config) -> Outcome {
    let mut engine = Engine::new(&config.thresholds, config.dry_run);
    let kill_t = timeline.meta.kill_t.filter(|_| timeline.meta.oom_killed);
    let mut outcome = Outcome {
        name: timeline.name.clone(),
        shape: timeline.meta.shape.clone().unwrap_or_else(|| "?".into()),
        split: timeline.meta.split.clone().unwrap_or_else(|| "?".into()),
        kill_t,
        first_prediction: None,
        first_critical: None,
        predictions: 0,
        criticals: 0,
    };
    let mut events: Vec<Event> = Vec::new();
    let mut last_t = None;
    for record in &timeline.records {
        if kill_t.is_some_and(|k| record.t >= k) {
            // What comes after the kill (the next container's start) is no warning of it.
            break;
        }
        if last_t.is_some_and(|t| t != record.t) {
            engine.end_cycle();
        }
        last_t = Some(record.t);
        engine.observe_sample(&record.sample, record.t, &mut events);
        for e in events.drain(..) {
            match e.event_type {
                EventType::PredictedOom => {
                    outcome.predictions += 1;
                    if outcome.first_prediction.is_none() {
                        outcome.first_prediction = Some((record.t, e.eta_seconds.unwrap_or(0.0)));
                    }
                }
                EventType::MemoryPressure if e.severity == Severity::Critical => {
                    outcome.criticals += 1;
                    outcome.first_critical.get_or_insert(record.t);
                }
                _ => {}
            }
        }
    }
    outcome
}

/// Whether a run without a kill may carry a `predicted_oom`: only a ramp that stops short of the limit,
/// which no causal predictor can tell from a leak until it stops.
pub fn forgiven(shape: &str) -> bool {
    shape == "ramp-plateau"
}

/// The corpus-wide figures the goals are about.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Killed runs.
    pub killed: usize,
    /// Killed runs predicted at least [`MIN_LEAD_SECONDS`] before the kill.
    pub predicted_in_time: usize,
    /// Median lead of the first prediction over the killed runs (a run never predicted counts 0).
    pub median_lead: f64,
    /// Median lead of the first critical over the killed runs (0 when never critical).
    pub median_critical_lead: f64,
    /// Median |ETA error| of the first predictions.
    pub median_abs_eta_error: f64,
    /// The largest |ETA error| of a first prediction, with its run.
    pub worst_eta_error: Option<(String, f64)>,
    /// Runs without a kill that got a `predicted_oom` and may not: their names.
    pub false_alarms: Vec<String>,
    /// Runs without a kill of a forgiven shape that got one.
    pub forgiven_alarms: Vec<String>,
}

/// The least lead of every OOM run's first prediction (goal).
pub const MIN_LEAD_SECONDS: f64 = 5.0;
/// The median lead must be this many times critical's (goal).
pub const LEAD_OVER_CRITICAL: f64 = 2.0;
/// Median |ETA error| at the first prediction (goal).
pub const MAX_MEDIAN_ETA_ERROR: f64 = 0.2;
/// No |ETA error| at a first prediction beyond this (goal).
pub const MAX_ETA_ERROR: f64 = 0.5;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl Summary {
    /// The figures of `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let killed: Vec<&Outcome> = outcomes.iter().filter(|o| o.kill_t.is_some()).collect();
        let errors: Vec<(String, f64)> = killed
            .iter()
            .filter_map(|o| Some((o.name.clone(), o.eta_error()?.abs())))
            .collect();
        let (forgiven_alarms, false_alarms) = outcomes
            .iter()
            .filter(|o| o.kill_t.is_none() && o.predictions > 0)
            .map(|o| (o.name.clone(), forgiven(&o.shape)))
            .partition::<Vec<_>, _>(|(_, f)| *f);
        Summary {
            killed: killed.len(),
            predicted_in_time: killed
                .iter()
                .filter(|o| o.lead().is_some_and(|l| l >= MIN_LEAD_SECONDS))
                .count(),
            median_lead: median(killed.iter().map(|o| o.lead().unwrap_or(0.0)).collect()),
            median_critical_lead: median(
                killed
                    .iter()
                    .map(|o| o.critical_lead().unwrap_or(0.0))
                    .collect(),
            ),
            median_abs_eta_error: median(errors.iter().map(|e| e.1).collect()),
            worst_eta_error: errors.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)),
            false_alarms: false_alarms.into_iter().map(|a| a.0).collect(),
            forgiven_alarms: forgiven_alarms.into_iter().map(|a| a.0).collect(),
        }
    }

    /// Each goal with whether it is met, in words.
    pub fn goals(&self) -> Vec<(String, bool)> {
        vec![
            (
                format!(
                    "every OOM run predicted >= {MIN_LEAD_SECONDS} s before the kill: {}/{}",
                    self.predicted_in_time, self.killed
                ),
                self.predicted_in_time == self.killed,
            ),
            (
                format!(
                    "median lead {:.1} s >= {LEAD_OVER_CRITICAL} x critical's {:.1} s",
                    self.median_lead, self.median_critical_lead
                ),
                self.median_lead >= LEAD_OVER_CRITICAL * self.median_critical_lead,
            ),
            (
                format!(
                    "median |ETA error| {:.0} % <= {:.0} %",
                    self.median_abs_eta_error * 100.0,
                    MAX_MEDIAN_ETA_ERROR * 100.0
                ),
                self.median_abs_eta_error <= MAX_MEDIAN_ETA_ERROR,
            ),
            (
                match &self.worst_eta_error {
                    Some((name, e)) => format!(
                        "worst |ETA error| {:.0} % ({name}) <= {:.0} %",
                        e * 100.0,
                        MAX_ETA_ERROR * 100.0
                    ),
                    None => "no ETA to judge".into(),
                },
                self.worst_eta_error
                    .as_ref()
                    .is_some_and(|e| e.1 <= MAX_ETA_ERROR),
            ),
            (
                format!(
                    "no predicted_oom without a kill: {} ({}; forgiven ramps: {})",
                    self.false_alarms.len(),
                    self.false_alarms.join(", "),
                    self.forgiven_alarms.join(", ")
                ),
                self.false_alarms.is_empty(),
            ),
        ]
    }
}

/// The per-timeline table and the goals, as the benchmark prints them.
pub fn report(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let secs = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1} s"));
    let _ = writeln!(
        s,
        "{:<30} {:<8} {:<12} {:>10} {:>9} {:>10} {:>5} {:>5}",
        "timeline", "split", "shape", "lead", "ETA err", "crit lead", "pred", "crit"
    );
    for o in outcomes {
        let err = match (o.eta_error(), o.first_prediction) {
            (Some(e), _) => format!("{:+.0} %", e * 100.0),
            // Without a kill: the ETA the false alarm announced.
            (None, Some((_, eta))) if o.kill_t.is_none() => format!("eta {eta:.0} s"),
            _ => "–".to_owned(),
        };
        let (lead, crit) = if o.kill_t.is_some() {
            (secs(o.lead()), secs(o.critical_lead()))
        } else {
            ("no kill".to_owned(), "–".to_owned())
        };
        let _ = writeln!(
            s,
            "{:<30} {:<8} {:<12} {:>10} {:>9} {:>10} {:>5} {:>5}",
            o.name, o.split, o.shape, lead, err, crit, o.predictions, o.criticals
        );
    }
    for (split, filter) in [
        ("all", None),
        ("tune", Some("tune")),
        ("holdout", Some("holdout")),
    ] {
        let part: Vec<Outcome> = outcomes
            .iter()
            .filter(|o| filter.is_none_or(|f| o.split == f))
            .cloned()
            .collect();
        if part.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\ngoals on {split} ({} timelines):", part.len());
        for (goal, met) in Summary::of(&part).goals() {
            let _ = writeln!(s, "  [{}] {goal}", if met { "met" } else { "MISSED" });
        }
    }
    s
}
