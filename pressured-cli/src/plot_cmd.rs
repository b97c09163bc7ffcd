//! `pressured plot FILE.jsonl -o episode.svg`: a picture of a replay timeline, drawn by `pressure-plot`.
//!
//! The timeline goes through the engine as with `--replay` (the configuration's thresholds and the pods'
//! annotations apply); the picture shows, per container, working set against limit over time, the warn
//! and critical levels, and markers for critical, `predicted_oom` (with its ETA) and the kill.

use std::path::PathBuf;

use anyhow::Context;
use pressure_plot::{EpisodeBuilder, Format, PlotOptions};

use crate::config::FileConfig;
use crate::replay::Records;

/// Arguments of `pressured plot`.
#[derive(Debug, clap::Args)]
pub(crate) struct PlotArgs {
    /// Replay timeline (JSON lines, the `--replay` format; `-` for stdin).
    file: PathBuf,
    /// Output picture: `.svg` or `.png`.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: PathBuf,
    /// Panels: the N containers most at risk (killed, then predicted, then by peak usage).
    #[arg(long = "top", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    top: u16,
    /// Picture width in pixels.
    #[arg(long = "width", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(200..=8000))]
    width: u32,
    /// Height of one panel in pixels.
    #[arg(long = "panel-height", default_value_t = 320, value_parser = clap::value_parser!(u32).range(100..=4000))]
    panel_height: u32,
}

/// Draws the picture; malformed lines are skipped (and fail the run at the end, as `--replay` does).
pub(crate) fn run(args: PlotArgs, config: &FileConfig) -> anyhow::Result<()> {
    let format = Format::from_path(&args.output)?;
    let mut records = Records::open(&args.file)?;
    let mut episode = EpisodeBuilder::new(&config.thresholds);
    while let Some(record) = records.next_record()? {
        episode
            .push(&record)
            .with_context(|| format!("plotting {}", args.file.display()))?;
    }
    let options = PlotOptions {
        top: usize::from(args.top),
        width: args.width,
        panel_height: args.panel_height,
    };
    let picture = episode.finish().render(&options, format)?;
    std::fs::write(&args.output, picture)
        .with_context(|| format!("writing {}", args.output.display()))?;
    records.finish()
}
