//! The Kubernetes side of the tracer: the [`KillSink`] that finds the victim's pod in a cache of this
//! node's pods (`spec.nodeName` field selector, never the whole cluster), annotates it when the key is
//! absent and posts a Warning Event (`OOMKilled`, or `SystemOOM` for a global OOM).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pressure_ebpf::{BoxFuture, KillKind, KillSink, MarkOutcome, OomKill};
use pressure_kubelet::{
    Annotator, ClientSource, EventRecorder, PodCache, PodScope, Victim, VictimMarker, VictimOutcome,
};

use crate::flags::Config;

/// How long start-up waits for the first list of this node's pods before tracing anyway.
const CACHE_SYNC: Duration = Duration::from_secs(30);

/// Builds the Kubernetes sink for `cfg` (`--kube_config`, `--node_name`, `--victim_annotation`).
pub(crate) async fn build_sink(cfg: &Config) -> anyhow::Result<Arc<dyn KillSink>> {
    // kube-rs has no client-side rate limiter; the tracer sends two requests per victim, far below
    // the QPS/burst budget the original's flags set.
    tracing::debug!(
        qps = cfg.kube_client_qps,
        burst = cfg.kube_client_burst,
        "Kubernetes client settings"
    );
    let node = cfg
        .node_name
        .clone()
        .context("--node_name (or K8S_NODENAME) is required with Kubernetes")?;
    let source = match &cfg.kube_config {
        Some(path) => ClientSource::Kubeconfig {
            path: Some(path.clone()),
            context: None,
        },
        None => ClientSource::infer(),
    };
    let client = source
        .connect()
        .await
        .context("connecting to the API server")?;
    let cache = Arc::new(PodCache::spawn(client.clone(), &PodScope::node(&node)));
    if tokio::time::timeout(CACHE_SYNC, cache.ready())
        .await
        .is_err()
    {
        tracing::warn!(node = %node, "the pod list of this node is not complete yet; tracing anyway");
    }
    tracing::info!(node = %node, pods = cache.len(), "watching this node's pods");
    let mut marker = VictimMarker::new(cache).events(EventRecorder::new(
        client.clone(),
        "pressure.dev/oom-tracer",
        &node,
    ));
    if let Some(a) = &cfg.annotation {
        marker = marker.annotate(Annotator::new(client, "oom-tracer"), &a.key, &a.value);
    }
    Ok(Arc::new(KubeSink { marker }))
}

/// [`KillSink`] over a [`VictimMarker`].
struct KubeSink {
    marker: VictimMarker,
}

impl KillSink for KubeSink {
    fn mark_victim<'a>(&'a self, kill: &'a OomKill) -> BoxFuture<'a, MarkOutcome> {
        Box::pin(async move {
            let victim = Victim {
                pod_uid: kill.pod_uid.clone(),
                container_id: kill.container_id.clone(),
                global: kill.kind == KillKind::Global,
                comm: kill.comm.clone(),
                pid: kill.pid,
                oom_memcg: kill.oom_memcg.clone(),
            };
            match self.marker.mark(&victim).await {
                VictimOutcome::Marked { pod } => {
                    tracing::info!(pod = %pod, pid = kill.pid, "OOM victim's pod annotated");
                    MarkOutcome::Marked
                }
                VictimOutcome::AlreadyMarked { .. } => MarkOutcome::AlreadyMarked,
                VictimOutcome::NoPodMatch => MarkOutcome::NoPodMatch,
                VictimOutcome::Failed(e) => MarkOutcome::Failed(e),
                _ => MarkOutcome::Identified,
            }
        })
    }
}
