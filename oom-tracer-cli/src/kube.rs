//! The Kubernetes side of the tracer: the [`KillSink`] that finds the victim's pod in a node-scoped
//! cache, annotates it and posts an Event. It plugs in here (see the Kubernetes issue).

use std::sync::Arc;

use anyhow::bail;
use pressure_ebpf::KillSink;

use crate::flags::Config;

/// Builds the Kubernetes sink for `cfg` (`--kube_config`, QPS/burst, `--node_name`, annotation).
pub(crate) async fn build_sink(cfg: &Config) -> anyhow::Result<Arc<dyn KillSink>> {
    tracing::debug!(
        kube_config = ?cfg.kube_config,
        qps = cfg.kube_client_qps,
        burst = cfg.kube_client_burst,
        annotation = ?cfg.annotation,
        "Kubernetes client settings"
    );
    bail!(
        "Kubernetes mode (node {}) is not wired into oom-tracer yet: run with --no-kubernetes to observe kills",
        cfg.node_name.as_deref().unwrap_or("?")
    )
}
