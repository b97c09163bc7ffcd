//! Cluster mode (`source.mode = "kubelet"`/`"cluster"`): the kubelet Summary API. Being written (issue 5).

use pressure_core::Config;

/// Runs cluster mode until SIGTERM/SIGINT.
pub(crate) async fn run(_config: Config) -> anyhow::Result<()> {
    anyhow::bail!("the kubelet/cluster mode is not in this build yet; use --replay")
}
