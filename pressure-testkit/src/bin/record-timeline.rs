//! `record-timeline --name N --limit-mib M --duration S --shape X --split Y [--expect-oom] -- CMD...`:
//! records one real memory timeline for the prediction corpus (see `pressure_testkit::recorder`). Run as
//! root on a host with the cgroup v1 memory controller.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pressure_testkit::recorder::{RecordSpec, record};

#[derive(Parser)]
#[command(about = "Record a real memcg memory timeline in the replay format")]
struct Args {
    #[arg(long)]
    name: String,
    #[arg(long)]
    limit_mib: u64,
    /// Seconds the workload runs at most when it is not killed.
    #[arg(long)]
    duration: f64,
    #[arg(long)]
    shape: String,
    #[arg(long, default_value = "holdout")]
    split: String,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long)]
    expect_oom: bool,
    #[arg(long, default_value = "pressure-testkit/fixtures/growth")]
    out: PathBuf,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let spec = RecordSpec {
        name: a.name,
        description: a.description,
        shape: a.shape,
        split: a.split,
        limit_bytes: a.limit_mib << 20,
        duration: Duration::from_secs_f64(a.duration),
        command: a.command,
        expect_oom: a.expect_oom,
    };
    let killed = record(&spec, &a.out)?;
    println!(
        "{}: {}",
        spec.name,
        if killed { "OOM-killed" } else { "no kill" }
    );
    Ok(())
}
