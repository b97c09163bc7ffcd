//! Sidecar (`source.mode = "cgroup"`) and node (`source.mode = "node"`) modes: the wiring of
//! [`pressure_cgroup::Watcher`] (the loop itself) with the environment, the pod names from the API,
//! the event sink, the Kubernetes Events, SIGTERM/SIGINT and the start-up trims.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pressure_cgroup::{
    CgroupLayout, Observer, PodEnv, Scope, WatchOptions, Watcher, raise_nofile_limit,
};
use pressure_core::{Config, Engine, Event, SourceMode};

use crate::server::ContainerGauges;
use crate::sink::{ActionsSetup, EventSink};
use pressure_kubelet::{EventRecorder, PodDirectory};

/// Runs the cgroup-based modes until SIGTERM/SIGINT.
pub(crate) async fn run(config: Config, actions: &ActionsSetup) -> anyhow::Result<()> {
    let (layout, env, scope) = layout_and_scope(&config)?;
    if let Err(e) = raise_nofile_limit() {
        tracing::warn!("cannot raise the open-file limit: {e}");
    }
    let sink = EventSink::new(actions)?;
    let pods = pod_directory(&scope, &env).await;
    // Node mode posts Kubernetes Events through the pod watch's client; the sidecar does not.
    let kube = match scope {
        Scope::Node => pods
            .as_ref()
            .and_then(|p| crate::cluster::kube_events(p.client(), &config)),
        _ => None,
    };
    if matches!(scope, Scope::Node) && pods.is_some() {
        let state = if kube.is_some() { "on" } else { "off" };
        tracing::info!(dry_run = config.dry_run, "Kubernetes Events: {state}");
    }
    let mut options = WatchOptions::new(scope);
    options.interval = Duration::from_millis(config.source.effective_poll_interval_ms());
    options.pod = env;
    if let Some(open_files) = config.source.cgroup.open_files {
        options.open_files = open_files;
    }
    let mut watcher = Watcher::new(
        layout,
        Engine::new(&config.thresholds, config.dry_run),
        options,
    )?;
    crate::server::telemetry().watch_oom_wakeups(watcher.oom_wakeups());
    let gauges = crate::server::telemetry().container_gauges(&config);
    if let Some(pods) = pods {
        watcher = watcher.with_enrich(move |target: &mut _| pods.enrich(target));
    }
    let stop = watcher.stop_token();
    let stop_signal = crate::stop_signal()?;
    // The loop runs on its own thread; this runtime meanwhile runs the actions, the pod watch and
    // the Kubernetes Events, and waits for a signal. Tasks spawned on the loop's thread (Events, the
    // sidecar's re-reads of its own pod) go to it.
    let runtime = tokio::runtime::Handle::current();
    // Start-up is done: its code (flags, config, logger, runtime, TLS roots) is not run again.
    trim("start-up");
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sampling".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            let mut out = Out {
                sink,
                kube,
                gauges,
                last_cache_drop: Instant::now(),
            };
            let result = watcher.run(&mut out);
            let _ = done_tx.send((result, out.sink));
        })
        .context("starting the sampling thread")?;
    let ended = tokio::select! {
        ended = &mut done => Some(ended),
        () = stop_signal => None,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            stop.stop();
            done.await
        }
    };
    let (result, sink) = ended.context("the sampling thread ended without a result")?;
    sink.shutdown().await;
    Ok(result?)
}

/// The cgroup hierarchy at `source.cgroup.path`, the downward-API environment, and what to watch:
/// every pod of the node (node mode) or this process's own pod (sidecar).
pub(crate) fn layout_and_scope(config: &Config) -> anyhow::Result<(CgroupLayout, PodEnv, Scope)> {
    let root = PathBuf::from(&config.source.cgroup.path);
    let layout = CgroupLayout::detect(&root)
        .with_context(|| format!("source.cgroup.path = {}", root.display()))?;
    let env = PodEnv::from_lookup(|name| std::env::var(name).ok());
    let scope = match config.source.mode {
        SourceMode::Node => Scope::Node,
        _ => {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            Scope::sidecar(&layout, &env, &own, std::process::id())?
        }
    };
    Ok((layout, env, scope))
}

/// The pod names from the API: the node's pods (node mode, `NODE_NAME` set) or the own pod; `None`
/// without an API server.
pub(crate) async fn pod_directory(scope: &Scope, env: &PodEnv) -> Option<PodDirectory> {
    match (scope, env.node_name.clone()) {
        (Scope::Node, Some(node)) => PodDirectory::connect(&node, Duration::from_secs(5)).await,
        (Scope::Pod { .. }, _) => {
            PodDirectory::own_pod(env.namespace.as_deref(), env.pod_name.as_deref()).await
        }
        _ => None,
    }
}

/// Drops the resident pages of code that ran before `stage` (see [`pressure_cgroup::footprint`]),
/// with a debug log. The page cache stays: dropping it here would make the next code fault read a
/// readahead window back from disk (`main` dropped it before start-up, the loop drops it every
/// [`CACHE_DROP_PERIOD`]).
fn trim(stage: &str) {
    match pressure_cgroup::footprint::release_startup_pages() {
        Ok(released) => tracing::debug!(
            mappings = released.mappings,
            "dropped {stage} pages from the resident set"
        ),
        Err(e) => tracing::debug!("cannot drop {stage} pages from the resident set: {e}"),
    }
}

/// Where the loop's events go: a JSON line on stdout and the action dispatcher, and (node mode) a
/// Kubernetes Event, recorded on its own task so the loop does not wait for the API.
struct Out {
    sink: EventSink,
    kube: Option<EventRecorder>,
    /// `metrics.container_gauges`.
    gauges: Option<Arc<ContainerGauges>>,
    /// When the binary's unmapped page cache was last dropped.
    last_cache_drop: Instant,
}

/// How often the loop drops the binary's unmapped page cache (see `Out::cycle`).
const CACHE_DROP_PERIOD: Duration = Duration::from_secs(30);

impl Observer for Out {
    fn event(&mut self, event: &Event) {
        self.sink.emit(event);
        if let Some(kube) = &self.kube {
            kube.post(event);
        }
    }

    fn cycle(&mut self, engine: &Engine) {
        if let Some(gauges) = &self.gauges {
            gauges.refresh(engine);
        }
        // Code run for the first time since (an event, an action) read a readahead window of the
        // binary into the page cache, charged to this container: give back what no process maps.
        if self.last_cache_drop.elapsed() >= CACHE_DROP_PERIOD {
            self.last_cache_drop = Instant::now();
            pressure_cgroup::footprint::drop_executable_cache();
        }
    }

    fn first_tick(&mut self) {
        // Nor is the first tick's code (opening the cgroups, the announcement).
        trim("first tick");
    }
}
