//! Sidecar (`source.mode = "cgroup"`) and node (`source.mode = "node"`) modes. Being written (issue 3).

use pressure_core::Config;

/// Runs the cgroup-based modes until SIGTERM/SIGINT.
pub(crate) async fn run(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("the cgroup and node modes are not in this build yet; use --replay")
}
