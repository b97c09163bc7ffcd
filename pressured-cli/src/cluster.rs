//! Cluster mode (`source.mode = "kubelet"`, alias `"cluster"`): every node's kubelet Summary API,
//! read through the API server, with pod metadata from watches.
//!
//! Pods come from a [`PodCache`] (one watch per namespace of `source.kubelet.namespace_filter`, or one
//! cluster-wide, with `source.kubelet.label_selector`), never relisted per cycle. Every poll interval
//! each node that hosts a watched pod gets one summary request, at most [`MAX_IN_FLIGHT`] at a time;
//! a node whose previous request is still running is skipped, so one slow node never delays the
//! others' events, and results are fed to the engine as they arrive. `oom_killed` comes from pod
//! status (`lastState.terminated.reason = OOMKilled`) through an [`OomTracker`]. Kubernetes Events
//! (critical, predicted_oom, oom_killed) are posted on the pod unless dry run or
//! `PRESSURED_KUBE_EVENTS=off`.
//!
//! API server down, 429, 5xx: watches retry with backoff (a 410 relists); a failed summary is logged
//! and the node is retried with exponential backoff, or after the 429's `Retry-After` (at most 60 s)
//! while the other nodes keep being polled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use pressure_core::{Config, Engine, Event, EventType, Reading, Sample, Severity, Target};
use pressure_kubelet::k8s_openapi::api::core::v1::{ObjectReference, Pod};
use pressure_kubelet::kube::{Api, Client};
use pressure_kubelet::{
    ClientSource, EventKind, EventRecorder, EventSpec, OomKill, OomTracker, PodCache, PodInfo,
    PodScope, PodUpdate, Summary, SummarySource, memory_limit, target_for,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::MissedTickBehavior;

use crate::sink::{ActionsSetup, EventSink};

/// Summary requests in flight at once.
pub(crate) const MAX_IN_FLIGHT: usize = 32;
/// The longest a node is left alone for a 429's `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Runs cluster mode until SIGTERM/SIGINT.
pub(crate) async fn run(config: Config, actions: &ActionsSetup) -> anyhow::Result<()> {
    let source = ClientSource::infer();
    let client = source
        .connect()
        .await
        .context("connecting to the API server (KUBECONFIG or in-cluster service account)")?;
    // Summaries back off per node on a 429 (Retry-After) instead of kube-rs sleeping inside the request.
    let summaries = source
        .connect_without_retries()
        .await
        .context("connecting to the API server (KUBECONFIG or in-cluster service account)")?;
    let leader = leader_election(&client);
    let mut sink = EventSink::new(actions)?;
    let mut cluster = Cluster::new(client, summaries, &config);
    cluster.leader = leader;
    let result = cluster.run(&mut |e| sink.emit(e)).await;
    sink.shutdown().await;
    result
}

/// Leader election when several replicas run (`PRESSURED_LEADER_ELECTION=true`, as the Helm chart sets
/// it): a `coordination.k8s.io/v1` Lease `PRESSURED_LEASE_NAME` in `PRESSURED_LEASE_NAMESPACE`, held by
/// `POD_NAME`, for `PRESSURED_LEASE_DURATION_SECONDS` [15]. Followers keep their pod cache and OOM baselines warm but poll nothing and emit nothing.
fn leader_election(client: &Client) -> Option<tokio::sync::watch::Receiver<bool>> {
    let on = std::env::var("PRESSURED_LEADER_ELECTION")
        .is_ok_and(|v| matches!(v.as_str(), "true" | "1" | "on"));
    if !on {
        return None;
    }
    let name = std::env::var("PRESSURED_LEASE_NAME").unwrap_or_else(|_| "pressured".into());
    let namespace = std::env::var("PRESSURED_LEASE_NAMESPACE")
        .or_else(|_| std::env::var("POD_NAMESPACE"))
        .unwrap_or_else(|_| "default".into());
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("pressured-{}", std::process::id()));
    let seconds = std::env::var("PRESSURED_LEASE_DURATION_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(15);
    tracing::info!(lease = %format!("{namespace}/{name}"), identity = %identity, seconds, "leader election on");
    let elector = pressure_kubelet::LeaderElector::new(
        client.clone(),
        &namespace,
        &name,
        &identity,
        Duration::from_secs(seconds),
    );
    Some(elector.spawn())
}

/// One node's summary fetch result.
struct Fetched {
    round: u64,
    node: String,
    result: Result<Summary, pressure_kubelet::KubeletError>,
    took: Duration,
}

/// The state of cluster mode.
pub(crate) struct Cluster {
    client: Client,
    /// For summaries: a client that leaves 429s to [`Cluster::summary`]'s per-node backoff.
    summaries: Client,
    scope: PodScope,
    engine: Engine,
    interval: Duration,
    recorder: Option<KubeEvents>,
    oom: OomTracker,
    /// OOM kills seen per (pod UID, container), fed to the engine as its `oom_kill_count`.
    oom_counts: HashMap<(String, String), u64>,
    /// Last reading per engine key, to report an `oom_killed` between summaries.
    last: HashMap<String, Reading>,
    in_flight: HashSet<String>,
    /// Nodes backing off after errors: node → not before.
    backoff: HashMap<String, (Instant, u32)>,
    start: Instant,
    cycles: u64,
    log_cycles: bool,
    /// Whether this replica leads (`None`: no election, always acts).
    leader: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Cluster {
    pub(crate) fn new(client: Client, summaries: Client, config: &Config) -> Self {
        let scope = PodScope {
            namespaces: config.source.kubelet.namespaces(),
            label_selector: config
                .source
                .kubelet
                .label_selector
                .clone()
                .filter(|l| !l.trim().is_empty()),
            node_name: None,
        };
        let recorder = KubeEvents::new(client.clone(), config);
        Self {
            client,
            summaries,
            scope,
            engine: Engine::new(&config.thresholds, config.dry_run),
            interval: Duration::from_millis(config.source.effective_poll_interval_ms().max(1)),
            recorder,
            oom: OomTracker::new(),
            oom_counts: HashMap::new(),
            last: HashMap::new(),
            in_flight: HashSet::new(),
            backoff: HashMap::new(),
            start: Instant::now(),
            cycles: 0,
            log_cycles: std::env::var_os("PRESSURED_LOG_CYCLES").is_some(),
            leader: None,
        }
    }

    pub(crate) async fn run(&mut self, sink: &mut dyn FnMut(&Event)) -> anyhow::Result<()> {
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let cache = Arc::new(PodCache::spawn(self.client.clone(), &self.scope));
        let mut updates = cache.subscribe();
        tokio::select! {
            _ = cache.ready() => {}
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
        // The first list's updates are covered by the baseline below; start from the current tail.
        updates = updates.resubscribe();
        // Kills already in the first list are history: remembered, not reported.
        for pod in cache.pods() {
            self.baseline(&pod);
        }
        tracing::info!(pods = cache.len(), namespaces = ?self.scope.namespaces, label_selector = ?self.scope.label_selector,
            interval_ms = self.interval.as_millis() as u64, kube_events = self.recorder.is_some(), "cluster mode: watching pods");
        let (tx, mut rx) = mpsc::channel::<Fetched>(256);
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let source = SummarySource::ApiProxy(self.summaries.clone());
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut events = Vec::new();
        // Poll rounds in progress: round → (started, requests pending). A round is one tick's requests.
        let mut rounds: HashMap<u64, (Instant, usize)> = HashMap::new();
        let mut round: u64 = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if !self.leading() {
                        continue;
                    }
                    round += 1;
                    let nodes = cache.node_names();
                    let now = Instant::now();
                    for node in nodes {
                        if self.in_flight.contains(&node) || self.backoff.get(&node).is_some_and(|(t, _)| *t > now) {
                            continue;
                        }
                        self.in_flight.insert(node.clone());
                        rounds.entry(round).or_insert((now, 0)).1 += 1;
                        let (tx, permits, source) = (tx.clone(), permits.clone(), source.clone());
                        tokio::spawn(async move {
                            let _permit = permits.acquire_owned().await;
                            let t = Instant::now();
                            let result = source.fetch(&node).await;
                            let _ = tx.send(Fetched { round, node, result, took: t.elapsed() }).await;
                        });
                    }
                    self.engine.end_cycle();
                }
                Some(f) = rx.recv() => {
                    self.in_flight.remove(&f.node);
                    let r = f.round;
                    self.summary(f, &cache, &mut events);
                    let done = rounds.get_mut(&r).map(|(started, pending)| {
                        *pending -= 1;
                        (*pending == 0).then_some(*started)
                    });
                    if let Some(Some(started)) = done {
                        rounds.remove(&r);
                        self.cycles += 1;
                        let took_ms = started.elapsed().as_millis() as u64;
                        // Every cycle with PRESSURED_LOG_CYCLES (scripts/bench-cluster.sh), else every 10th.
                        if self.log_cycles || self.cycles.is_multiple_of(10) {
                            tracing::info!(cycle = self.cycles, took_ms, pods = cache.len(), "cycle done");
                        } else {
                            tracing::debug!(cycle = self.cycles, took_ms, "cycle done");
                        }
                    }
                }
                update = updates.recv() => match update {
                    Ok(PodUpdate::Applied { pod, .. }) => self.pod_changed(&pod, &mut events),
                    Ok(PodUpdate::Deleted { pod }) => {
                        self.oom.forget(&pod.uid);
                        self.oom_counts.retain(|(u, _), _| *u != pod.uid);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "pod updates lagged; rechecking every pod for OOM kills");
                        for pod in cache.pods() {
                            self.pod_changed(&pod, &mut events);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => anyhow::bail!("the pod watch stopped"),
                },
                _ = term.recv() => {
                    tracing::info!("SIGTERM: stopping");
                    break;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping");
                    break;
                }
            }
            let leading = self.leading();
            for event in events.drain(..) {
                if leading {
                    sink(&event);
                    self.post(&event);
                }
            }
        }
        Ok(())
    }

    /// Whether this replica acts: always without leader election.
    fn leading(&self) -> bool {
        self.leader.as_ref().is_none_or(|rx| *rx.borrow())
    }

    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn baseline(&mut self, pod: &PodInfo) {
        // Remembered as reported, so the tracker does not report them again.
        let _ = self.oom.observe(pod, true);
        for kill in pod.oom_killed_containers() {
            self.oom_counts
                .entry((pod.uid.clone(), kill.to_owned()))
                .or_insert(1);
        }
    }

    fn summary(&mut self, f: Fetched, cache: &PodCache, events: &mut Vec<Event>) {
        let summary = match f.result {
            Ok(s) => {
                self.backoff.remove(&f.node);
                s
            }
            Err(e) => {
                let code = e.status_code();
                let (_, failures) = self
                    .backoff
                    .get(&f.node)
                    .copied()
                    .unwrap_or((Instant::now(), 0));
                let failures = failures + 1;
                // 429: the API server asks to slow down for Retry-After seconds (capped); 1 s without one.
                let wait = if code == Some(429) {
                    e.retry_after()
                        .unwrap_or(Duration::from_secs(1))
                        .min(MAX_RETRY_AFTER)
                } else {
                    self.interval
                        .saturating_mul(1 << failures.min(5))
                        .min(Duration::from_secs(30))
                };
                self.backoff
                    .insert(f.node.clone(), (Instant::now() + wait, failures));
                tracing::warn!(node = %f.node, error = %e, retry_in_ms = wait.as_millis() as u64, "stats summary failed");
                return;
            }
        };
        tracing::trace!(node = %f.node, took_ms = f.took.as_millis() as u64, pods = summary.pods.len(), "summary");
        let now = self.now();
        let samples = summary.samples(SystemTime::now(), |uid| cache.by_uid(uid));
        for mut sample in samples {
            // Only pods of the watched scope (the summary lists every pod of the node).
            let Some(uid) = sample.target.pod_uid.as_deref().map(str::to_owned) else {
                continue;
            };
            if cache.by_uid(&uid).is_none() {
                continue;
            }
            stabilise(&mut sample.target);
            let container = sample
                .target
                .container_name
                .as_deref()
                .unwrap_or_default()
                .to_owned();
            sample.reading.oom_kill_count =
                Some(self.oom_counts.get(&(uid, container)).copied().unwrap_or(0));
            self.last.insert(sample.target.key(), sample.reading);
            self.engine.observe_sample(&sample, now, events);
        }
    }

    fn pod_changed(&mut self, pod: &PodInfo, events: &mut Vec<Event>) {
        for kill in self.oom.observe(pod, false) {
            self.report_kill(pod, &kill, events);
        }
    }

    /// Feeds an OOM kill to the engine at once (not a poll interval later) as a counter increase.
    fn report_kill(&mut self, pod: &PodInfo, kill: &OomKill, events: &mut Vec<Event>) {
        let count = {
            let c = self
                .oom_counts
                .entry((kill.pod_uid.clone(), kill.container.clone()))
                .or_default();
            *c += 1;
            *c
        };
        let mut target = target_for(pod, Some(&kill.container));
        stabilise(&mut target);
        let key = target.key();
        let now = self.now();
        let base = self.last.get(&key).copied().unwrap_or_else(|| {
            let limit = memory_limit(pod, &kill.container);
            Reading::new(SystemTime::now(), limit.unwrap_or(0), limit)
        });
        if !self.last.contains_key(&key) {
            // The engine takes its first counter value as the baseline.
            let first = Reading {
                oom_kill_count: Some(count - 1),
                ..base
            };
            self.engine.observe_sample(
                &Sample {
                    target: target.clone(),
                    reading: first,
                },
                now,
                &mut Vec::new(),
            );
        }
        let reading = Reading {
            timestamp: SystemTime::now(),
            oom_kill_count: Some(count),
            ..base
        };
        self.last.insert(key, reading);
        self.engine
            .observe_sample(&Sample { target, reading }, now, events);
    }

    /// Posts the Kubernetes Event for critical, predicted_oom and oom_killed events, off the loop.
    fn post(&self, event: &Event) {
        if let Some(recorder) = &self.recorder {
            recorder.post(event);
        }
    }
}

/// Keys slots by pod UID and container name, so a restarted container (new ID) keeps its state.
fn stabilise(target: &mut Target) {
    target.container_id = None;
}

/// The Kubernetes Event for an engine event, when it is one that gets posted.
pub(crate) fn event_spec(event: &Event) -> Option<EventSpec> {
    let (reason, kind) = match (event.event_type, event.severity) {
        (EventType::MemoryPressure, Severity::Critical) => {
            ("MemoryPressureCritical", EventKind::Warning)
        }
        (EventType::PredictedOom, _) => ("PredictedOOM", EventKind::Warning),
        (EventType::OomKilled, _) => ("OOMKilled", EventKind::Warning),
        _ => return None,
    };
    let name = event.pod_name.as_deref()?.to_owned();
    // Node mode also watches pod cgroups (the pod's own limit): those events name no container.
    let who = event
        .container_name
        .as_ref()
        .map_or_else(|| "the pod".to_owned(), |c| format!("container {c}"));
    let mib = |b: u64| b >> 20;
    let limit = event.limit_bytes.map_or_else(
        || "no limit".to_owned(),
        |l| format!("{} MiB limit", mib(l)),
    );
    let note = match event.event_type {
        EventType::OomKilled => format!("{who} was OOM-killed ({limit})"),
        EventType::PredictedOom => format!(
            "{who} is predicted to reach its {limit} in {:.0}s (working set {} MiB)",
            event.eta_seconds.unwrap_or(0.0),
            mib(event.working_set_bytes)
        ),
        _ => format!(
            "{who} at {:.1}% of its {limit} (working set {} MiB)",
            event.usage_percent.unwrap_or(0.0),
            mib(event.working_set_bytes)
        ),
    };
    Some(EventSpec {
        regarding: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: event.namespace.as_deref().map(str::to_owned),
            uid: event.pod_uid.as_deref().map(str::to_owned),
            field_path: event
                .container_name
                .as_ref()
                .map(|c| format!("spec.containers{{{c}}}")),
            ..ObjectReference::default()
        },
        kind,
        reason: reason.into(),
        action: "Observed".into(),
        note,
    })
}

/// Kubernetes Events for engine events (critical, predicted_oom, oom_killed; see [`event_spec`]),
/// each recorded on its own task so the caller's loop never waits for the API server.
#[derive(Clone)]
pub(crate) struct KubeEvents {
    recorder: Arc<EventRecorder>,
}

impl KubeEvents {
    /// A recorder reporting as `pressure.dev/pressured`, instance `POD_NAME` (else `HOSTNAME`); `None`
    /// in dry run or with `PRESSURED_KUBE_EVENTS=off`.
    pub(crate) fn new(client: Client, config: &Config) -> Option<Self> {
        if config.dry_run || !kube_events_enabled() {
            return None;
        }
        let instance = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "pressured".into());
        Some(Self {
            recorder: Arc::new(EventRecorder::new(
                client,
                "pressure.dev/pressured",
                &instance,
            )),
        })
    }

    /// Posts the Kubernetes Event for `event` when it is one that gets posted; returns at once.
    pub(crate) fn post(&self, event: &Event) {
        let Some(spec) = event_spec(event) else {
            return;
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.record(&spec).await {
                tracing::warn!(error = %e, "posting a Kubernetes Event failed");
            }
        });
    }
}

/// `PRESSURED_KUBE_EVENTS` [on]: `off`, `false`, `0` or empty turn Kubernetes Events off.
fn kube_events_enabled() -> bool {
    std::env::var("PRESSURED_KUBE_EVENTS")
        .map_or(true, |v| !matches!(v.as_str(), "off" | "false" | "0" | ""))
}

/// Whether an API server is configured at all (in-cluster or a kubeconfig).
fn api_configured() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("KUBECONFIG").is_some()
}

/// How long the sidecar waits for its own pod before going on with container IDs only.
const OWN_POD_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two re-reads of the own pod (for a container ID it does not know yet).
const OWN_POD_REFRESH: Duration = Duration::from_secs(10);
/// Re-reads of the own pod for one unknown container ID.
const OWN_POD_REREADS: u32 = 3;

/// The cgroup modes' view of the API, to give cgroup-derived targets their names, namespace, IP and
/// annotations: node mode watches this node's pods (`spec.nodeName`); sidecar mode reads its own pod.
pub(crate) struct NodePods {
    client: Client,
    source: PodsSource,
}

enum PodsSource {
    /// Node mode: every pod of this node.
    Node(PodCache),
    /// Sidecar mode: the own pod, re-read when a container ID shows up that it does not list.
    Own(Box<OwnPod>),
}

/// The sidecar's own pod (`GET pods/{POD_NAME}` in `POD_NAMESPACE`).
struct OwnPod {
    api: Api<Pod>,
    name: String,
    pod: Arc<RwLock<Arc<PodInfo>>>,
    /// When the last re-read started (`None`: never re-read), and how many re-reads each unknown
    /// container ID has caused.
    refreshed: Mutex<(Option<Instant>, HashMap<String, u32>)>,
}

impl OwnPod {
    fn enrich(&self, target: &mut Target) -> bool {
        let pod = self
            .pod
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if target
            .pod_uid
            .as_deref()
            .is_some_and(|u| u.replace('_', "-") != pod.uid)
        {
            return false;
        }
        let container = match target.container_id.as_deref() {
            Some(id) => match pod.container_by_id(id) {
                Some(c) => Some(c.name.clone()),
                None => {
                    self.refresh(id);
                    None
                }
            },
            None => None,
        };
        enrich_from(target, &pod, container.as_deref());
        true
    }

    /// Re-reads the pod in the background (a restarted or new container has an ID the last read
    /// did not list); at most every [`OWN_POD_REFRESH`], and at most [`OWN_POD_REREADS`] times for
    /// one ID: the sandbox (pause) container has a cgroup but no status and would cause a read forever.
    fn refresh(&self, unknown_id: &str) {
        let mut guard = self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, tries) = &mut *guard;
        if last.is_some_and(|t| t.elapsed() < OWN_POD_REFRESH) {
            return;
        }
        let n = tries.entry(unknown_id.to_owned()).or_default();
        if *n >= OWN_POD_REREADS {
            return;
        }
        *n += 1;
        *last = Some(Instant::now());
        let (api, name, slot) = (self.api.clone(), self.name.clone(), self.pod.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(OWN_POD_TIMEOUT, api.get(&name)).await {
                Ok(Ok(pod)) => {
                    *slot
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Arc::new(PodInfo::from(&pod));
                }
                Ok(Err(e)) => {
                    tracing::debug!(pod = %name, error = %e, "re-reading the own pod failed")
                }
                Err(_) => tracing::debug!(pod = %name, "re-reading the own pod timed out"),
            }
        });
    }
}

impl NodePods {
    /// Starts the watch of `node`'s pods and waits up to `sync` for its first list. `None` outside
    /// Kubernetes (neither `KUBERNETES_SERVICE_HOST` nor `KUBECONFIG` set) or when no client can be built.
    pub(crate) async fn connect(node: &str, sync: Duration) -> Option<NodePods> {
        if !api_configured() {
            tracing::debug!(
                "no Kubernetes API configured: node-mode events carry cgroup identities only"
            );
            return None;
        }
        let client = match ClientSource::infer().connect().await {
            Ok(client) => client,
            Err(e) => {
                tracing::warn!(error = %e, "no Kubernetes API: node-mode events carry cgroup identities only");
                return None;
            }
        };
        let cache = PodCache::spawn(client.clone(), &PodScope::node(node));
        if tokio::time::timeout(sync, cache.ready()).await.is_err() {
            tracing::warn!(
                node,
                "this node's pod list is not complete yet; names follow as it arrives"
            );
        }
        tracing::info!(
            node,
            pods = cache.len(),
            "node mode: watching this node's pods for names, IPs and annotations"
        );
        Some(NodePods {
            client,
            source: PodsSource::Node(cache),
        })
    }

    /// Sidecar mode: reads the own pod (`POD_NAMESPACE`/`POD_NAME`) once, so container cgroups get
    /// their names (joined by container ID across all container statuses, current and last state).
    /// `None`, with one info line, when the names are unset, no API is configured, or the read fails
    /// (e.g. no RBAC `get pods`): the sidecar then goes on with container IDs.
    pub(crate) async fn own_pod(namespace: Option<&str>, name: Option<&str>) -> Option<NodePods> {
        let (Some(namespace), Some(name)) = (namespace, name) else {
            tracing::info!("POD_NAME/POD_NAMESPACE unset: container names stay unknown (IDs only)");
            return None;
        };
        if !api_configured() {
            tracing::info!("no Kubernetes API configured: container names stay unknown (IDs only)");
            return None;
        }
        let client = match ClientSource::infer().connect().await {
            Ok(client) => client,
            Err(e) => {
                tracing::info!(error = %e, "no Kubernetes API client: container names stay unknown (IDs only)");
                return None;
            }
        };
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let pod = match tokio::time::timeout(OWN_POD_TIMEOUT, api.get(name)).await {
            Ok(Ok(pod)) => PodInfo::from(&pod),
            Ok(Err(e)) => {
                tracing::info!(pod = %format!("{namespace}/{name}"), error = %e,
                    "cannot read the own pod (RBAC: get pods): container names stay unknown (IDs only)");
                return None;
            }
            Err(_) => {
                tracing::info!(pod = %format!("{namespace}/{name}"),
                    "reading the own pod timed out: container names stay unknown (IDs only)");
                return None;
            }
        };
        tracing::info!(pod = %pod.full_name(), containers = pod.containers.len(),
            "sidecar: container names from the own pod");
        Some(NodePods {
            client,
            source: PodsSource::Own(Box::new(OwnPod {
                api,
                name: name.to_owned(),
                pod: Arc::new(RwLock::new(Arc::new(pod))),
                refreshed: Mutex::new((None, HashMap::new())),
            })),
        })
    }

    /// Kubernetes Events through this API client (node mode); `None` when off (see [`KubeEvents::new`]).
    pub(crate) fn kube_events(&self, config: &Config) -> Option<KubeEvents> {
        KubeEvents::new(self.client.clone(), config)
    }

    /// Fills `target` from the pod with its UID (else its container ID): names, IP, annotations.
    /// Returns whether a pod was found.
    pub(crate) fn enrich(&self, target: &mut Target) -> bool {
        let cache = match &self.source {
            PodsSource::Node(cache) => cache,
            PodsSource::Own(own) => return own.enrich(target),
        };
        let found = target
            .pod_uid
            .as_deref()
            .and_then(|uid| cache.by_uid(uid))
            .map(|p| {
                let name = target
                    .container_id
                    .as_deref()
                    .and_then(|id| cache.by_container_id(id))
                    .filter(|(q, _)| q.uid == p.uid)
                    .map(|(_, n)| n);
                (p, name)
            })
            .or_else(|| {
                target
                    .container_id
                    .as_deref()
                    .and_then(|id| cache.by_container_id(id))
                    .map(|(p, n)| (p, Some(n)))
            });
        let Some((pod, container)) = found else {
            return false;
        };
        enrich_from(target, &pod, container.as_deref());
        true
    }
}

/// Copies a pod's identity into a cgroup-derived target, keeping what the cgroup knows (container ID,
/// cgroup path).
pub(crate) fn enrich_from(target: &mut Target, pod: &PodInfo, container: Option<&str>) {
    let from_api = target_for(pod, container.or(target.container_name.as_deref()));
    target.namespace = from_api.namespace;
    target.pod_name = from_api.pod_name;
    target.pod_uid = target.pod_uid.take().or(from_api.pod_uid);
    target.node_name = from_api.node_name.or(target.node_name.take());
    target.pod_ip = from_api.pod_ip;
    target.annotations = from_api.annotations;
    if target.container_name.is_none() {
        target.container_name = container.map(Arc::from);
    }
    if target.container_id.is_none() {
        target.container_id = from_api.container_id;
    }
}

#[cfg(test)]
mod tests {
    use pressure_kubelet::k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;

    fn pod() -> PodInfo {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "annotations": {"pressured.io/warn-percent": "50"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "x", "resources": {"limits": {"memory": "64Mi"}}}]},
            "status": {"podIP": "10.1.2.3", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "containerID": "containerd://abc"}]},
        }))
        .unwrap();
        PodInfo::from(&pod)
    }

    #[test]
    fn enrichment_keeps_cgroup_identity_and_adds_names() {
        let mut t = Target {
            pod_uid: Some("u-1".into()),
            container_id: Some("abc".into()),
            cgroup_path: Some("/kubepods/podu-1/abc".into()),
            ..Target::default()
        };
        enrich_from(&mut t, &pod(), Some("app"));
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.pod_name.as_deref(), Some("web-1"));
        assert_eq!(t.container_name.as_deref(), Some("app"));
        assert_eq!(t.pod_ip.as_deref(), Some("10.1.2.3"));
        assert_eq!(t.node_name.as_deref(), Some("n1"));
        assert_eq!(
            t.annotations
                .get("pressured.io/warn-percent")
                .map(String::as_str),
            Some("50")
        );
        assert_eq!(t.cgroup_path.as_deref(), Some("/kubepods/podu-1/abc"));
    }

    #[test]
    fn kubernetes_events_for_critical_predicted_and_oom_only() {
        let base = Event {
            timestamp: SystemTime::UNIX_EPOCH,
            event_type: EventType::MemoryPressure,
            severity: Severity::Warn,
            previous_severity: Severity::Ok,
            namespace: Some("shop".into()),
            pod_name: Some("web-1".into()),
            pod_uid: Some("u-1".into()),
            container_name: Some("app".into()),
            container_id: None,
            node_name: None,
            pod_ip: None,
            usage_bytes: 60 << 20,
            working_set_bytes: 60 << 20,
            limit_bytes: Some(64 << 20),
            usage_percent: Some(93.75),
            oom_kill_count: None,
            eta_seconds: None,
            psi_some_avg10: None,
            annotations: Default::default(),
            dry_run: false,
            profile: None,
        };
        assert!(event_spec(&base).is_none(), "warn is not posted");
        let crit = event_spec(&Event {
            severity: Severity::Critical,
            ..base.clone()
        })
        .unwrap();
        assert_eq!(crit.reason, "MemoryPressureCritical");
        assert_eq!(
            crit.note,
            "container app at 93.8% of its 64 MiB limit (working set 60 MiB)"
        );
        assert_eq!(crit.regarding.uid.as_deref(), Some("u-1"));
        assert_eq!(
            crit.regarding.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        let oom = event_spec(&Event {
            event_type: EventType::OomKilled,
            ..base.clone()
        })
        .unwrap();
        assert_eq!(oom.reason, "OOMKilled");
        let pred = event_spec(&Event {
            event_type: EventType::PredictedOom,
            eta_seconds: Some(42.0),
            ..base.clone()
        })
        .unwrap();
        assert_eq!(pred.reason, "PredictedOOM");
        assert!(pred.note.contains("in 42s"));
        assert!(
            event_spec(&Event {
                event_type: EventType::Recovered,
                severity: Severity::Ok,
                ..base
            })
            .is_none()
        );
    }
}
