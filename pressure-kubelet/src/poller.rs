//! Cluster mode's loop: every node's kubelet Summary API, read through the API server, with pod
//! metadata from watches, fed to a `pressure_core::Engine`.
//!
//! Pods come from a [`PodCache`] (one watch per namespace of the scope, or one cluster-wide, with its
//! label selector), never relisted per cycle. Every poll interval each node that hosts a watched pod
//! gets one summary request, at most [`MAX_IN_FLIGHT`] at a time; a node whose previous request is
//! still running is skipped, so one slow node never delays the others' events, and results are fed to
//! the engine as they arrive. `oom_killed` comes from pod status (`lastState.terminated.reason =
//! OOMKilled`) through an [`OomTracker`], fed to the engine at once as a counter increase without a
//! reading ([`Engine::observe_oom_kills`]): never with a made-up one, nor with the container's last
//! summary reading, which may be minutes old after an outage and would pass for a new one.
//!
//! API server down, 429, 5xx, slow answers: watches retry with backoff (a 410 relists, and every pod of
//! the relist is checked for kills, so a kill during an outage is reported after it); a failed summary
//! is logged and the node is retried with exponential backoff, or after the 429's `Retry-After` (at
//! most 60 s), while the other nodes keep being polled; a summary that takes longer than
//! [`SUMMARY_TIMEOUT`] counts as failed.
//!
//! State through faults (issue 16): a container whose node was not read in a cycle (its summary
//! failed, backs off or is still running) keeps its engine state however long that lasts
//! ([`Engine::end_cycle_keeping`]): severity, cooldown clock, OOM-kill counter. So after an outage its
//! next reading is compared with what it was — `recovered` when it fell, nothing new when it stayed
//! critical within the cooldown — and a kill is counted from the counter it had. Only containers
//! that are gone are forgotten, three cycles after: their pod deleted (or out of the scope), or their
//! node read without them. The poller's own state is O(1) per container of a watched pod and O(1)
//! per node hosting one; a deleted pod's and a vanished node's are dropped.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use kube::Client;
use pressure_core::{Engine, Event, Target};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::error::KubeletError;
use crate::events::EventRecorder;
use crate::lease::LeaderElector;
use crate::oom::{OomTracker, StatusOomKill};
use crate::pods::{PodCache, PodInfo, PodScope, PodUpdate, memory_limit, target_for};
use crate::summary::{Summary, SummarySource};

/// Summary requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 32;
/// The longest a node is left alone for a 429's `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// A summary request that has not completed after this long is abandoned and counts as failed: the
/// client has no read timeout (kube-rs leaves it unset for watches), and a request hanging on a dead
/// connection would otherwise keep its node unpolled for good.
pub const SUMMARY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a [`ClusterPoller`] watches and how often.
#[derive(Debug, Clone)]
pub struct PollerOptions {
    /// The pods to watch (namespaces, label selector); its node is ignored.
    pub scope: PodScope,
    /// The poll interval \[1 s\].
    pub interval: Duration,
    /// Leader election among replicas; `None` \[default\]: this one always acts.
    pub leader_election: Option<LeaseOptions>,
    /// Log every poll cycle at info \[false: every 10th; the others at debug\].
    pub log_cycles: bool,
}

impl Default for PollerOptions {
    fn default() -> Self {
        PollerOptions {
            scope: PodScope::default(),
            interval: Duration::from_secs(1),
            leader_election: None,
            log_cycles: false,
        }
    }
}

/// The `coordination.k8s.io/v1` Lease of leader election (see [`LeaderElector`]): only its holder
/// polls and emits; the others keep their pod cache and OOM baselines warm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (e.g. its pod name): the Lease's `holderIdentity`.
    pub identity: String,
    /// `leaseDurationSeconds`: how long a Lease not renewed stays with its holder.
    pub duration: Duration,
}

/// One node's summary fetch result.
struct Fetched {
    round: u64,
    node: String,
    result: Result<Summary, KubeletError>,
    took: Duration,
}

/// Cluster mode: polls the kubelet summaries of the nodes that host watched pods and feeds the
/// engine, until a stop future completes.
///
/// Installs no signal handler: the caller turns SIGTERM (or anything else) into the stop future.
pub struct ClusterPoller {
    client: Client,
    /// For summaries: a client that leaves 429s to the per-node backoff.
    summaries: Client,
    options: PollerOptions,
    engine: Engine,
    recorder: Option<EventRecorder>,
    oom: OomTracker,
    /// OOM kills seen per (pod UID, container), fed to the engine as its `oom_kill_count`.
    oom_counts: HashMap<(String, String), u64>,
    in_flight: HashSet<String>,
    /// Nodes whose summary was read since the last tick: the containers of the others are unread, not
    /// gone (see [`Engine::end_cycle_keeping`]).
    read: HashSet<String>,
    /// Nodes backing off after errors: node → (not before, consecutive failures).
    backoff: HashMap<String, (Instant, u32)>,
    start: Instant,
    cycles: u64,
    /// Whether this replica leads (`None`: no election, always acts).
    leader: Option<watch::Receiver<bool>>,
    /// Summary pods of a watched namespace missing from the pod cache, per node, as of that node's last
    /// summary: each is logged once when it first appears, not every cycle.
    unknown: HashMap<String, HashSet<String>>,
    /// How many distinct such pods were seen (see [`ClusterPoller::unknown_pods`]).
    unknown_total: Arc<AtomicU64>,
    /// Containers the engine keeps state for, as of the last tick (see [`ClusterPoller::tracked`]).
    tracked: Arc<AtomicU64>,
    /// Called with the engine after each poll cycle (see [`ClusterPoller::on_cycle`]).
    on_cycle: Option<Box<OnCycle>>,
}

/// What [`ClusterPoller::on_cycle`] calls.
type OnCycle = dyn FnMut(&Engine) + Send;

impl std::fmt::Debug for ClusterPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPoller")
            .field("options", &self.options)
            .field("events", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterPoller {
    /// A poller feeding `engine`: `client` watches pods (and holds the Lease), `summaries` reads the
    /// kubelet summaries through the API server proxy (build it with
    /// [`ClientSource::connect_without_retries`](crate::ClientSource::connect_without_retries), so a
    /// 429 backs off that node instead of sleeping inside the request).
    pub fn new(engine: Engine, client: Client, summaries: Client, options: PollerOptions) -> Self {
        Self {
            client,
            summaries,
            options,
            engine,
            recorder: None,
            oom: OomTracker::new(),
            oom_counts: HashMap::new(),
            in_flight: HashSet::new(),
            read: HashSet::new(),
            backoff: HashMap::new(),
            start: Instant::now(),
            cycles: 0,
            leader: None,
            unknown: HashMap::new(),
            unknown_total: Arc::new(AtomicU64::new(0)),
            tracked: Arc::new(AtomicU64::new(0)),
            on_cycle: None,
        }
    }

    /// Calls `f` with the engine at the end of each poll cycle this replica runs (as leader), e.g. to
    /// refresh per-container gauges from [`Engine::containers`]; it must be quick, the loop waits.
    #[must_use]
    pub fn on_cycle(mut self, f: impl FnMut(&Engine) + Send + 'static) -> Self {
        self.on_cycle = Some(Box::new(f));
        self
    }

    /// A counter of the summary pods, in a watched namespace, whose UID the pod cache does not hold
    /// (outside the label selector, not listed yet, or a static pod whose summary UID is its config
    /// hash): their samples are skipped. Counts each pod once per appearance in its node's summaries;
    /// each is logged once at info. Read it while [`run`](Self::run) owns the poller.
    pub fn unknown_pods(&self) -> Arc<AtomicU64> {
        self.unknown_total.clone()
    }

    /// A gauge of the containers whose state the engine keeps, updated every poll interval: the
    /// containers of watched pods, read or not (an unreachable node's keep theirs), plus those gone for
    /// less than three cycles. Read it while [`run`](Self::run) owns the poller.
    pub fn tracked(&self) -> Arc<AtomicU64> {
        self.tracked.clone()
    }

    /// Also posts Kubernetes Events (critical, predicted_oom, oom_killed) on the pods, each on its own
    /// task (see [`EventRecorder::post`]).
    #[must_use]
    pub fn events(mut self, recorder: EventRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Runs until `stop` completes; every event goes to `on_event` (and to the Kubernetes Events) while
    /// this replica leads. Errors only when the pod watch ends.
    ///
    /// Logs `cluster mode: watching pods` once the first pod list is in, and, with leader election,
    /// `standing by` when the first election round finds another holder.
    pub async fn run(
        mut self,
        mut on_event: impl FnMut(&Event),
        stop: impl Future<Output = ()>,
    ) -> Result<(), KubeletError> {
        let mut stop = std::pin::pin!(stop);
        let scope = PodScope {
            node_name: None,
            ..self.options.scope.clone()
        };
        let cache = Arc::new(PodCache::spawn(self.client.clone(), &scope));
        let mut updates = cache.subscribe();
        tokio::select! {
            _ = cache.ready() => {}
            _ = &mut stop => return Ok(()),
        }
        // The first list's updates are covered by the baseline below; start from the current tail.
        updates = updates.resubscribe();
        // Kills already in the first list are history: remembered, not reported.
        for pod in cache.pods() {
            self.baseline(&pod);
        }
        let interval = self.options.interval.max(Duration::from_millis(1));
        tracing::info!(pods = cache.len(), namespaces = ?scope.namespaces, label_selector = ?scope.label_selector,
            interval_ms = interval.as_millis() as u64, kube_events = self.recorder.is_some(), "cluster mode: watching pods");
        if let Some(lease) = self.options.leader_election.clone() {
            tracing::info!(lease = %format!("{}/{}", lease.namespace, lease.name), identity = %lease.identity,
                seconds = lease.duration.as_secs(), "leader election on");
            let elector = LeaderElector::new(
                self.client.clone(),
                &lease.namespace,
                &lease.name,
                &lease.identity,
                lease.duration,
            );
            let mut leader = elector.spawn();
            // The first round's answer: a follower says so once, the readiness line of a standby.
            tokio::select! {
                _ = leader.changed() => {}
                _ = &mut stop => return Ok(()),
            }
            if !*leader.borrow_and_update() {
                tracing::info!(lease = %lease.name, identity = %lease.identity,
                    "standing by: another replica holds the Lease");
            }
            self.leader = Some(leader);
        }
        let (tx, mut rx) = mpsc::channel::<Fetched>(256);
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let source = SummarySource::ApiProxy(self.summaries.clone());
        let mut ticker = tokio::time::interval(interval);
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
                    let now = Instant::now();
                    let nodes = cache.node_names();
                    // A node that hosts no watched pod any more: its bookkeeping goes.
                    self.backoff.retain(|n, _| nodes.contains(n));
                    self.unknown.retain(|n, _| nodes.contains(n));
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
                            let result = tokio::time::timeout(SUMMARY_TIMEOUT, source.fetch(&node))
                                .await
                                .unwrap_or_else(|_| Err(KubeletError::TimedOut {
                                    what: format!("fetching the stats summary of node {node}"),
                                    after: SUMMARY_TIMEOUT,
                                }));
                            let _ = tx.send(Fetched { round, node, result, took: t.elapsed() }).await;
                        });
                    }
                    // Containers of nodes not read in this cycle are unread, not gone: kept while
                    // their pod exists.
                    let read = std::mem::take(&mut self.read);
                    self.engine.end_cycle_keeping(|t| {
                        t.pod_uid
                            .as_deref()
                            .and_then(|uid| cache.by_uid(uid))
                            .and_then(|pod| pod.node_name.clone())
                            .is_some_and(|node| !read.contains(&node))
                    });
                    self.tracked.store(self.engine.len() as u64, Ordering::Relaxed);
                    if let Some(f) = &mut self.on_cycle {
                        f(&self.engine);
                    }
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
                        // Every cycle with `log_cycles` (scripts/bench-cluster.sh), else every 10th.
                        if self.options.log_cycles || self.cycles.is_multiple_of(10) {
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
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "pod updates lagged; rechecking every pod for OOM kills");
                        for pod in cache.pods() {
                            self.pod_changed(&pod, &mut events);
                        }
                        // Deletions may be among the missed updates.
                        let gone: HashSet<String> = self.oom_counts.keys()
                            .filter(|(uid, _)| cache.by_uid(uid).is_none())
                            .map(|(uid, _)| uid.clone())
                            .collect();
                        for uid in &gone {
                            self.oom.forget(uid);
                        }
                        self.oom_counts.retain(|(uid, _), _| !gone.contains(uid));
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(KubeletError::WatchStopped),
                },
                _ = &mut stop => break,
            }
            let leading = self.leading();
            for event in events.drain(..) {
                if leading {
                    on_event(&event);
                    if let Some(recorder) = &self.recorder {
                        recorder.post(&event);
                    }
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
                self.read.insert(f.node.clone());
                s
            }
            Err(e) => {
                let failures = self.backoff.get(&f.node).map_or(0, |(_, n)| *n) + 1;
                // 429: the API server asks to slow down for Retry-After seconds (capped); 1 s without one.
                let wait = if e.status_code() == Some(429) {
                    e.retry_after()
                        .unwrap_or(Duration::from_secs(1))
                        .min(MAX_RETRY_AFTER)
                } else {
                    self.options
                        .interval
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
        self.note_unknown(&f.node, &summary, cache);
        let now = self.now();
        for mut sample in summary.samples(SystemTime::now(), |uid| cache.by_uid(uid)) {
            // Only pods of the watched scope (the summary lists every pod of the node); the others
            // were counted above.
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
            self.engine.observe_sample(&sample, now, events);
        }
    }

    /// Counts and logs (once each) the pods of `node`'s summary that are in a watched namespace but
    /// not in the cache. Pods of other namespaces are outside the scope by configuration: not counted.
    fn note_unknown(&mut self, node: &str, summary: &Summary, cache: &PodCache) {
        let namespaces = &self.options.scope.namespaces;
        let mut now_unknown = HashSet::new();
        for p in &summary.pods {
            let r = &p.pod_ref;
            if !namespaces.is_empty() && !namespaces.contains(&r.namespace) {
                continue;
            }
            if cache.by_uid(&r.uid).is_some() {
                continue;
            }
            let seen = self.unknown.get(node).is_some_and(|s| s.contains(&r.uid));
            if !seen {
                self.unknown_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(node, namespace = %r.namespace, pod = %r.name, uid = %r.uid,
                    label_selector = ?self.options.scope.label_selector,
                    "summary pod not in the pod cache (outside the label selector, not listed yet, or a static pod): skipped");
            }
            now_unknown.insert(r.uid.clone());
        }
        // Only this summary's set is kept, so the memory is bounded by the node's pods.
        if now_unknown.is_empty() {
            self.unknown.remove(node);
        } else {
            self.unknown.insert(node.to_owned(), now_unknown);
        }
    }

    fn pod_changed(&mut self, pod: &PodInfo, events: &mut Vec<Event>) {
        for kill in self.oom.observe(pod, false) {
            self.report_kill(pod, &kill, events);
        }
    }

    /// Feeds an OOM kill to the engine at once (not a poll interval later) as a counter increase,
    /// without a reading: the last summary reading is not news (after an outage it may be minutes
    /// old), and the engine keeps the container's severity, so the event says what it was at.
    fn report_kill(&mut self, pod: &PodInfo, kill: &StatusOomKill, events: &mut Vec<Event>) {
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
        self.engine.observe_oom_kills(
            &target,
            count,
            memory_limit(pod, &kill.container),
            SystemTime::now(),
            events,
        );
    }
}

/// Keys slots by pod UID and container name, so a restarted container (new ID) keeps its state.
fn stabilise(target: &mut Target) {
    target.container_id = None;
}
