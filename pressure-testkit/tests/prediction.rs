//! The prediction benchmark's evaluation on the repository's corpus of real recordings, with the
//! default configuration: the goals of issue 17 hold on all of it.

use std::path::Path;

use pressure_core::Config;
use pressure_testkit::prediction::{self, Summary};

fn outcomes() -> Vec<prediction::Outcome> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/growth");
    let corpus = prediction::load_corpus(&dir).expect("corpus");
    assert!(corpus.len() >= 14, "{} timelines", corpus.len());
    corpus
        .iter()
        .map(|t| prediction::evaluate(t, &Config::default()))
        .collect()
}

#[test]
fn issue_17_prediction_goals_hold_on_the_whole_corpus() {
    let outcomes = outcomes();
    let summary = Summary::of(&outcomes);
    let report = prediction::report(&outcomes);
    // The corpus has both kinds of runs, so every goal is judged on something.
    assert!(summary.killed >= 8, "{report}");
    assert!(
        outcomes.iter().filter(|o| o.kill_t.is_none()).count() >= 6,
        "{report}"
    );
    for (goal, met) in summary.goals() {
        assert!(met, "goal missed: {goal}\n{report}");
    }
}

#[test]
fn issue_17_the_threshold_only_baseline_is_what_the_goals_are_measured_against() {
    // With prediction off, no run is predicted and every OOM run still goes critical before its kill:
    // the baseline the median lead is compared with exists for every run.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/growth");
    let mut config = Config::default();
    config.thresholds.predict_seconds = 0.0;
    for t in prediction::load_corpus(&dir).expect("corpus") {
        let o = prediction::evaluate(&t, &config);
        assert_eq!(o.predictions, 0, "{}", o.name);
        if o.kill_t.is_some() {
            assert!(o.critical_lead().is_some_and(|l| l > 0.0), "{o:?}");
        }
    }
}
