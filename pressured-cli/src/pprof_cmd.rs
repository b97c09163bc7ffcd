//! `pressured pprof …`: profile analysis. Being written (issue 6).

/// Arguments of `pressured pprof`.
#[derive(Debug, clap::Args)]
pub(crate) struct PprofArgs {
    /// Profile file.
    file: Option<std::path::PathBuf>,
}

/// Runs `pressured pprof`.
pub(crate) fn run(_args: PprofArgs) -> anyhow::Result<()> {
    anyhow::bail!("pprof analysis is not in this build yet")
}
