//! `pressured pprof …`: profile analysis, backed by `pressure-pprof`.
//!
//! `pressured pprof top FILE [--sample-index NAME] [--nodecount N] [--cum] [--diff-base OLD]` prints
//! the same text as `go tool pprof -top` with the same options (`-diff_base=OLD`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use pressure_pprof::{Limits, Profile, TopOptions};

/// Arguments of `pressured pprof`.
#[derive(Debug, clap::Args)]
pub(crate) struct PprofArgs {
    #[command(subcommand)]
    command: PprofCommand,
}

/// Subcommands of `pressured pprof`.
#[derive(Debug, clap::Subcommand)]
enum PprofCommand {
    /// Print the functions with the highest flat (or cumulative) values, like `go tool pprof -top`.
    Top(TopArgs),
}

/// Arguments of `pressured pprof top`.
#[derive(Debug, clap::Args)]
struct TopArgs {
    /// Profile file: gzip-compressed or raw profile.proto (as written by Go's runtime/pprof).
    file: PathBuf,
    /// Sample type to report, by name (e.g. alloc_space) or number; default: the profile's
    /// default_sample_type, else the last one.
    #[arg(long = "sample-index", alias = "sample_index", value_name = "NAME")]
    sample_index: Option<String>,
    /// Show at most N functions (0 = all).
    #[arg(long = "nodecount", value_name = "N", default_value_t = 0)]
    nodecount: usize,
    /// Sort by cumulative value instead of flat value.
    #[arg(long = "cum")]
    cum: bool,
    /// Report the growth since OLD (another profile of the same kind, e.g. an earlier heap
    /// profile of the same process), like `go tool pprof -diff_base=OLD`.
    #[arg(long = "diff-base", alias = "diff_base", value_name = "OLD")]
    diff_base: Option<PathBuf>,
    /// Refuse input files larger than this many bytes.
    #[arg(long = "max-bytes", value_name = "BYTES", default_value_t = Limits::default().max_compressed_bytes)]
    max_bytes: u64,
    /// Refuse profiles larger than this many bytes once decompressed.
    #[arg(long = "max-decompressed-bytes", value_name = "BYTES", default_value_t = Limits::default().max_decompressed_bytes)]
    max_decompressed_bytes: u64,
}

/// Runs `pressured pprof`.
pub(crate) fn run(args: PprofArgs) -> anyhow::Result<()> {
    match args.command {
        PprofCommand::Top(top) => run_top(top),
    }
}

fn read_profile(path: &std::path::Path, limits: &Limits) -> anyhow::Result<Profile> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Profile::decode_reader(file, limits)
        .with_context(|| format!("reading profile {}", path.display()))
}

fn run_top(args: TopArgs) -> anyhow::Result<()> {
    let limits = Limits::new(args.max_bytes, args.max_decompressed_bytes);
    let mut profile = read_profile(&args.file, &limits)?;
    if let Some(base) = &args.diff_base {
        let base_profile = read_profile(base, &limits)?;
        profile = profile.diff_base(&base_profile).with_context(|| {
            format!(
                "{} as the diff base of {}",
                base.display(),
                args.file.display()
            )
        })?;
    }
    let options = TopOptions::new(args.sample_index, args.nodecount, args.cum);
    let report = pressure_pprof::top(&profile, &options)
        .with_context(|| format!("building report for {}", args.file.display()))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    report.write_text(&mut out).context("writing report")?;
    out.flush().context("writing report")?;
    Ok(())
}
