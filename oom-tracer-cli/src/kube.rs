//! The Kubernetes side of the tracer: the [`KillSink`] that finds the victim's pod in a cache of this
//! node's pods (`spec.nodeName` field selector, never the whole cluster), annotates it when the key is
//! absent and posts a Warning Event (`OOMKilled`, or `SystemOOM` for a global OOM). Marks that fail
//! (API server down, throttled, erroring) wait in a [`MarkQueue`] that retries them and keeps them in
//! the state file across a restart.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use pressure_ebpf::{BoxFuture, KillKind, KillSink, MarkOutcome, OomKill};
use pressure_kubelet::{
    Annotator, Backoff, ClientSource, EventRecorder, MarkQueue, PodCache, PodScope, StateFile,
    Victim, VictimMarker, VictimOutcome,
};

use crate::flags::Config;

/// How long start-up waits for the first list of this node's pods before tracing anyway.
const CACHE_SYNC: Duration = Duration::from_secs(30);

/// The annotator's own retries, short: what outlasts them waits in the [`MarkQueue`].
const ANNOTATE_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(50),
    max: Duration::from_millis(400),
    attempts: 4,
};

/// The Kubernetes side: the sink for kills, and the queue of pending marks (for its metrics).
pub(crate) struct Kube {
    pub(crate) sink: Arc<dyn KillSink>,
    pub(crate) queue: Arc<MarkQueue>,
    /// The retry loop; ends when `stop` (given to [`build_sink`]) does.
    pub(crate) retrier: tokio::task::JoinHandle<()>,
}

/// Builds the Kubernetes sink for `cfg` (`--kube_config`, `--node_name`, `--victim_annotation`,
/// `--pending-marks-*`, `--state-file`) and starts retrying pending marks until `stop` completes.
pub(crate) async fn build_sink(
    cfg: &Config,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Kube> {
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
    // Without kube-rs' own retries of 429/503/504 (up to 15 sleeps inside one request): the mark
    // queue waits out `Retry-After` without holding the kill loop.
    let client = source
        .connect_without_retries()
        .await
        .context("connecting to the API server")?;
    let cache = Arc::new(PodCache::spawn(client.clone(), &PodScope::node(&node)));
    let mut marker = VictimMarker::new(cache.clone()).events(EventRecorder::new(
        client.clone(),
        "pressure.dev/oom-tracer",
        &node,
    ));
    if let Some(a) = &cfg.annotation {
        marker = marker.annotate(
            Annotator::new(client, "oom-tracer").with_backoff(ANNOTATE_BACKOFF),
            &a.key,
            &a.value,
        );
    }
    let mut queue = MarkQueue::new(marker, cfg.pending);
    if let Some(path) = &cfg.state_file {
        queue = queue.with_state_file(StateFile::new(path));
    }
    let queue = Arc::new(queue);
    // Restored marks carry their pod: they need no pod list, only the API server.
    let retrier = tokio::spawn({
        let queue = queue.clone();
        async move { queue.run(stop).await }
    });
    if tokio::time::timeout(CACHE_SYNC, cache.ready())
        .await
        .is_err()
    {
        tracing::warn!(node = %node, "the pod list of this node is not complete yet; tracing anyway");
    }
    tracing::info!(node = %node, pods = cache.len(), "watching this node's pods");
    Ok(Kube {
        sink: Arc::new(KubeSink {
            queue: queue.clone(),
        }),
        queue,
        retrier,
    })
}

/// [`KillSink`] over a [`MarkQueue`].
struct KubeSink {
    queue: Arc<MarkQueue>,
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
                explanation: kill.explanation.as_ref().map(|e| e.clause.clone()),
            };
            match self.queue.mark(&victim, kill.timestamp).await {
                VictimOutcome::Marked { pod } => {
                    tracing::info!(pod = %pod, pid = kill.pid, "OOM victim's pod annotated");
                    MarkOutcome::Marked
                }
                VictimOutcome::AlreadyMarked { .. } => MarkOutcome::AlreadyMarked,
                VictimOutcome::NoPodMatch => MarkOutcome::NoPodMatch,
                VictimOutcome::Failed(e) => MarkOutcome::Failed(e),
                VictimOutcome::Pending { error, .. } => {
                    MarkOutcome::Failed(format!("{error} (kept pending, retried with backoff)"))
                }
                _ => MarkOutcome::Identified,
            }
        })
    }
}
