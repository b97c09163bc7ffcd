//! Cluster mode (`source.mode = "kubelet"`, alias `"cluster"`): the wiring of
//! [`pressure_kubelet::ClusterPoller`] (clients, options from the config, the event sink, signals).
//! Kubernetes Events (critical, predicted_oom, oom_killed) are posted on the pods unless dry run or
//! `kubernetes.events = false`.

use anyhow::Context;
use pressure_core::{Config, Engine};
use pressure_kubelet::kube::Client;
use pressure_kubelet::{
    ClientSource, ClusterPoller, EventRecorder, LeaseOptions, PodScope, PollerOptions,
};

use crate::sink::{ActionsSetup, EventSink};

/// Runs cluster mode until SIGTERM/SIGINT.
pub(crate) async fn run(config: Config, actions: &ActionsSetup) -> anyhow::Result<()> {
    let (client, summaries) = clients().await?;
    let stop = crate::stop_signal()?;
    let mut poller = ClusterPoller::new(
        Engine::new(&config.thresholds, config.dry_run),
        client.clone(),
        summaries,
        poller_options(&config),
    );
    if let Some(recorder) = kube_events(&client, &config) {
        poller = poller.events(recorder);
    }
    if let Some(gauges) = crate::server::telemetry().container_gauges(&config) {
        poller = poller.on_cycle(move |engine| gauges.refresh(engine));
    }
    let mut sink = EventSink::new(actions)?;
    let result = poller.run(|e| sink.emit(e), stop).await;
    sink.shutdown().await;
    Ok(result?)
}

/// The API client, and the one for summaries (KUBECONFIG or the in-cluster service account).
pub(crate) async fn clients() -> anyhow::Result<(Client, Client)> {
    let source = ClientSource::infer();
    let what = "connecting to the API server (KUBECONFIG or in-cluster service account)";
    let client = source.connect().await.context(what)?;
    // Summaries back off per node on a 429 (Retry-After) instead of kube-rs sleeping inside the request.
    let summaries = source.connect_without_retries().await.context(what)?;
    Ok((client, summaries))
}

/// The poller's options from `source.*`; the Lease holder identity is `POD_NAME` (else `HOSTNAME`)
/// and an unset `lease_namespace` is `POD_NAMESPACE` (else `default`), as the downward API sets them.
pub(crate) fn poller_options(config: &Config) -> PollerOptions {
    let kubelet = &config.source.kubelet;
    let le = &kubelet.leader_election;
    let leader_election = le.enabled.then(|| LeaseOptions {
        name: le.lease_name.clone(),
        namespace: le
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into()),
        identity: std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("pressured-{}", std::process::id())),
        duration: std::time::Duration::from_secs(le.lease_duration_seconds),
    });
    PollerOptions {
        scope: PodScope {
            namespaces: kubelet.namespaces(),
            label_selector: kubelet
                .label_selector
                .clone()
                .filter(|l| !l.trim().is_empty()),
            node_name: None,
        },
        interval: std::time::Duration::from_millis(config.source.effective_poll_interval_ms()),
        leader_election,
        log_cycles: kubelet.log_cycles,
    }
}

/// A recorder reporting as `pressure.dev/pressured`, instance `POD_NAME` (else `HOSTNAME`); `None` in
/// dry run or with `kubernetes.events = false`.
pub(crate) fn kube_events(client: &Client, config: &Config) -> Option<EventRecorder> {
    if config.dry_run || !config.kubernetes.events {
        return None;
    }
    let instance = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "pressured".into());
    Some(EventRecorder::new(
        client.clone(),
        "pressure.dev/pressured",
        &instance,
    ))
}
