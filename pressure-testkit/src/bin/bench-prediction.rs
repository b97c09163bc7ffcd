//! `bench-prediction [DIR...]`: replays every timeline of the corpus directories (default: the
//! repository's `pressure-testkit/fixtures/growth`) through the engine with the default configuration
//! (or `--config FILE`) and prints, per timeline, the lead and ETA error of the first `predicted_oom`,
//! the lead of the first critical, the event counts, and the goals. Exits 1 when a goal is missed.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use pressure_core::Config;
use pressure_testkit::prediction;

#[derive(Parser)]
#[command(about = "Prediction quality of predicted_oom on recorded timelines")]
struct Args {
    /// Corpus directories of `<name>.jsonl` + `<name>.meta.json`.
    dirs: Vec<PathBuf>,
    /// A pressured JSON configuration (default: the built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => Config::from_json(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("config {}", path.display()))?,
        None => Config::default(),
    };
    let dirs = if args.dirs.is_empty() {
        vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/growth")]
    } else {
        args.dirs
    };
    let mut outcomes = Vec::new();
    for dir in &dirs {
        for timeline in prediction::load_corpus(dir)? {
            outcomes.push(prediction::evaluate(&timeline, &config));
        }
    }
    print!("{}", prediction::report(&outcomes));
    let met = prediction::Summary::of(&outcomes)
        .goals()
        .iter()
        .all(|(_, met)| *met);
    std::process::exit(if met { 0 } else { 1 });
}
