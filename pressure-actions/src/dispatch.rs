//! The dispatcher: a bounded queue between sampling and the actions, drained by one worker task.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use pressure_core::{Config, Event, StorageBackend};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::registry::Registry;
use crate::storage::{LocalStorage, ObjectStorage, Storage};
use crate::{ActionsError, exec, heap, lua, webhook};

/// Queue capacity when `actions.queue_capacity` is not set.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Capacity of the follow-up channel (`heap_profile` events) handed to the caller.
const FOLLOWUP_CAPACITY: usize = 256;
/// Failures kept for [`Dispatcher::recent_failures`].
const RECENT_FAILURES: usize = 64;

/// Built-in priorities: the heap capture starts first, then Lua, exec, webhooks.
const PRIORITY_HEAP: i32 = 200;
const PRIORITY_LUA: i32 = 100;
const PRIORITY_EXEC: i32 = 50;
const PRIORITY_WEBHOOK: i32 = 40;
/// Built-in storage priorities (the original's: S3 100, local 50).
const PRIORITY_S3: i32 = 100;
const PRIORITY_LOCAL: i32 = 50;

/// Something done about an event. Register your own with [`DispatcherBuilder::action`].
///
/// An action must not block the async runtime (use `spawn_blocking` for blocking work) and should bound
/// its own run time; errors are logged and counted by the dispatcher, never propagated.
pub trait Action: Send + Sync + std::fmt::Debug {
    /// Runs the action for one event.
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>>;
}

/// What an action gets besides the event: dry run, storage, follow-up events, failure reports.
#[derive(Debug, Clone)]
pub struct ActionContext {
    dry_run: bool,
    storages: Arc<Registry<dyn Storage>>,
    shared: Arc<Shared>,
    /// Follow-ups for the other actions; the worker takes them before new events and drains them at
    /// shutdown, so a follow-up emitted during shutdown is still handled.
    requeue: mpsc::UnboundedSender<Event>,
    followups: Option<mpsc::Sender<Event>>,
}

impl ActionContext {
    /// Whether actions must not change anything (config `dry_run` or the event's own flag).
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The highest-priority storage (`storage`), if any is configured.
    pub fn storage(&self) -> Option<Arc<dyn Storage>> {
        self.storages.resolve("storage")
    }

    /// A storage by spec: `storage` or `storage:<name>`.
    pub fn storage_by_spec(&self, spec: &str) -> Option<Arc<dyn Storage>> {
        self.storages.resolve(spec)
    }

    /// Emits a follow-up event: to the other actions (before any newer event), and to the caller's
    /// follow-up channel. Never waits; the caller's channel drops (and counts) when full.
    pub fn emit(&self, event: Event) {
        if self.requeue.send(event.clone()).is_ok() {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tx) = &self.followups
            && tx.try_send(event.clone()).is_err()
        {
            self.shared
                .followups_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "follow-up channel full or closed: {} event dropped",
                event.event_type.as_str()
            );
        }
    }

    /// Records a failure of `action` (logged at error level and counted).
    pub fn report_failure(&self, action: &str, error: &ActionsError) {
        self.shared.failure(action, error);
    }

    /// Whether the dispatcher is shutting down past its deadline (long actions should stop).
    pub fn cancelled(&self) -> bool {
        self.shared.cancel.load(Ordering::Relaxed)
    }
}

/// One recorded action failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The action (`lua:<script>`, `exec[0]`, `webhook[1]`, `heap_profile`, or an embedder's name).
    pub action: String,
    /// The error message.
    pub message: String,
}

/// Counters of a dispatcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchStats {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events dropped because the queue was full or closed.
    pub dropped: u64,
    /// Events whose actions all finished.
    pub processed: u64,
    /// Action failures (each script, program and URL counts on its own).
    pub failures: u64,
    /// Follow-up events the caller's channel had no room for.
    pub followups_dropped: u64,
}

/// What [`Dispatcher::shutdown`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Counters at the end.
    pub stats: DispatchStats,
    /// Whether every queued event was handled before the deadline.
    pub drained: bool,
    /// Events still queued or running when the deadline passed.
    pub abandoned: u64,
    /// The last (up to 64) action failures, oldest first.
    pub failures: Vec<Failure>,
}

#[derive(Debug)]
struct Shared {
    queued: AtomicU64,
    dropped: AtomicU64,
    processed: AtomicU64,
    failures: AtomicU64,
    followups_dropped: AtomicU64,
    cancel: Arc<AtomicBool>,
    recent: Mutex<VecDeque<Failure>>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            followups_dropped: AtomicU64::new(0),
            cancel: Arc::new(AtomicBool::new(false)),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    fn submit(&self, tx: &mpsc::Sender<Event>, event: Event) -> bool {
        match tx.try_send(event) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // Log the first drop and then every 100th, so a flood does not flood the log too.
                if n == 1 || n.is_multiple_of(100) {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "action queue full",
                        mpsc::error::TrySendError::Closed(_) => "dispatcher shut down",
                    };
                    tracing::warn!(dropped_total = n, "{why}: event dropped");
                }
                false
            }
        }
    }

    fn failure(&self, action: &str, error: &ActionsError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(action, "action failed: {error}");
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_FAILURES {
            recent.pop_front();
        }
        recent.push_back(Failure {
            action: action.to_string(),
            message: error.to_string(),
        });
    }

    fn stats(&self) -> DispatchStats {
        DispatchStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            processed: self.processed.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            followups_dropped: self.followups_dropped.load(Ordering::Relaxed),
        }
    }
}

/// Builds a [`Dispatcher`]: the configured built-ins plus an embedder's own storages and actions.
#[derive(Debug)]
pub struct DispatcherBuilder {
    config: Config,
    storages: Registry<dyn Storage>,
    actions: Registry<dyn Action>,
    followups: Option<mpsc::Sender<Event>>,
    storage_path_env: Option<String>,
    builtin_storage: bool,
}

impl DispatcherBuilder {
    /// Adds (or replaces) a storage; `storage` resolves to the highest priority (built-ins: `s3` 100,
    /// `local` 50).
    pub fn storage(mut self, name: &str, priority: i32, storage: Arc<dyn Storage>) -> Self {
        self.storages.register(name, priority, storage);
        self
    }

    /// Adds (or replaces) an action; all actions run concurrently per event, started in priority order
    /// (built-ins: `heap_profile` 200, `lua` 100, `exec[i]` 50, `webhook[i]` 40).
    pub fn action(mut self, name: &str, priority: i32, action: Arc<dyn Action>) -> Self {
        self.actions.register(name, priority, action);
        self
    }

    /// Sends follow-up events (`heap_profile`) to this channel instead of the one
    /// [`Dispatcher::take_followups`] returns.
    pub fn followups(mut self, tx: mpsc::Sender<Event>) -> Self {
        self.followups = Some(tx);
        self
    }

    /// Overrides the `PRESSURED_STORAGE_PATH` environment variable (the local root when `storage.path`
    /// is unset); `None` means unset.
    pub fn storage_path_env(mut self, value: Option<String>) -> Self {
        self.storage_path_env = value;
        self
    }

    /// Skips the storage built from `storage.*` (use only storages added with [`Self::storage`]).
    pub fn without_config_storage(mut self) -> Self {
        self.builtin_storage = false;
        self
    }

    /// Builds the storages and actions and starts the worker task.
    ///
    /// Must run inside a tokio runtime (multi-threaded: Lua scripts run on blocking threads).
    /// Fails on unusable config values (e.g. an unreadable `plugins.lua.scripts_dir`); a script that does
    /// not compile is reported and skipped, so the others still run.
    pub fn build(mut self) -> Result<Dispatcher, ActionsError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ActionsError::NoRuntime(e.to_string()))?;
        let config = &self.config;
        let shared = Arc::new(Shared::new());

        if self.builtin_storage && config.storage.enabled {
            match config.storage.backend {
                StorageBackend::S3 => {
                    let s3 = ObjectStorage::s3(&config.storage.s3)?;
                    self.storages.register("s3", PRIORITY_S3, Arc::new(s3));
                }
                _ => {
                    let root = config
                        .storage
                        .path
                        .clone()
                        .filter(|p| !p.is_empty())
                        .or(self.storage_path_env.clone())
                        .ok_or_else(|| ActionsError::Config {
                            key: "storage.path".into(),
                            message: "local storage needs storage.path or PRESSURED_STORAGE_PATH"
                                .into(),
                        })?;
                    let local = LocalStorage::new(PathBuf::from(root))?;
                    self.storages
                        .register("local", PRIORITY_LOCAL, Arc::new(local));
                }
            }
        }
        let storages = Arc::new(self.storages);

        if config.actions.heap_profile.enabled {
            self.actions.register(
                "heap_profile",
                PRIORITY_HEAP,
                Arc::new(heap::HeapProfileAction::new(
                    config.actions.heap_profile.clone(),
                )),
            );
        }
        if config.plugins.lua.enabled {
            let (action, load_failures) = lua::LuaAction::load(
                config,
                Arc::clone(&storages),
                runtime.clone(),
                Arc::clone(&shared.cancel),
            )?;
            for f in load_failures {
                shared.failure(&f.0, &f.1);
            }
            self.actions.register("lua", PRIORITY_LUA, Arc::new(action));
        }
        for (i, e) in config.actions.exec.iter().enumerate() {
            self.actions.register(
                format!("exec[{i}]"),
                PRIORITY_EXEC,
                Arc::new(exec::ExecAction::new(e.clone())),
            );
        }
        for (i, w) in config.actions.webhook.iter().enumerate() {
            self.actions.register(
                format!("webhook[{i}]"),
                PRIORITY_WEBHOOK,
                Arc::new(webhook::WebhookAction::new(w.clone())),
            );
        }

        let capacity = config
            .actions
            .queue_capacity
            .unwrap_or(DEFAULT_QUEUE_CAPACITY)
            .max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (requeue_tx, requeue_rx) = mpsc::unbounded_channel();
        let (followups, followups_rx) = match self.followups {
            Some(tx) => (tx, None),
            None => {
                let (tx, rx) = mpsc::channel(FOLLOWUP_CAPACITY);
                (tx, Some(rx))
            }
        };
        let ctx = ActionContext {
            dry_run: config.dry_run,
            storages,
            shared: Arc::clone(&shared),
            requeue: requeue_tx,
            followups: Some(followups),
        };
        let actions: Vec<(String, Arc<dyn Action>)> = self
            .actions
            .iter()
            .map(|(n, _, a)| (n.to_string(), Arc::clone(a)))
            .collect();
        tracing::info!(
            actions = ?actions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            storages = ?ctx.storages.iter().map(|(n, _, _)| n).collect::<Vec<_>>(),
            capacity,
            "action dispatcher started"
        );
        let worker = runtime.spawn(worker(rx, requeue_rx, actions, ctx));
        Ok(Dispatcher {
            tx: Some(tx),
            worker: Some(worker),
            shared,
            followups_rx,
        })
    }
}

async fn worker(
    mut rx: mpsc::Receiver<Event>,
    mut requeued: mpsc::UnboundedReceiver<Event>,
    actions: Vec<(String, Arc<dyn Action>)>,
    ctx: ActionContext,
) {
    loop {
        let event = tokio::select! {
            biased;
            Some(e) = requeued.recv() => e,
            e = rx.recv() => match e {
                Some(e) => e,
                None => break,
            },
        };
        run_actions(&actions, &ctx, event).await;
    }
    // The queue is closed and empty: finish the follow-ups (they create no further ones).
    while let Ok(event) = requeued.try_recv() {
        run_actions(&actions, &ctx, event).await;
    }
}

async fn run_actions(actions: &[(String, Arc<dyn Action>)], ctx: &ActionContext, event: Event) {
    let mut ctx = ctx.clone();
    ctx.dry_run = ctx.dry_run || event.dry_run;
    let runs = actions.iter().map(|(name, action)| {
        let ctx = &ctx;
        let event = &event;
        async move {
            if let Err(e) = action.handle(event, ctx).await {
                ctx.report_failure(name, &e);
            }
        }
    });
    join_all(runs).await;
    ctx.shared.processed.fetch_add(1, Ordering::Relaxed);
}

/// Runs the configured actions off the sampling path.
///
/// [`submit`](Dispatcher::submit) never waits: events go into a bounded queue (`actions.queue_capacity`,
/// default [`DEFAULT_QUEUE_CAPACITY`]) and are dropped and counted when it is full. One worker task takes
/// them in order and runs every action for an event concurrently; a failing action is logged and counted
/// ([`stats`](Dispatcher::stats), [`recent_failures`](Dispatcher::recent_failures)) and never stops the
/// others. [`shutdown`](Dispatcher::shutdown) drains the queue with a deadline.
#[derive(Debug)]
pub struct Dispatcher {
    tx: Option<mpsc::Sender<Event>>,
    worker: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    followups_rx: Option<mpsc::Receiver<Event>>,
}

impl Dispatcher {
    /// A builder with the built-ins `config` asks for; add your own storages and actions to it.
    pub fn builder(config: &Config) -> DispatcherBuilder {
        DispatcherBuilder {
            config: config.clone(),
            storages: Registry::new("storage"),
            actions: Registry::new("action"),
            followups: None,
            storage_path_env: std::env::var("PRESSURED_STORAGE_PATH").ok(),
            builtin_storage: true,
        }
    }

    /// The dispatcher `config` describes (`plugins.lua`, `storage`, `actions`); see
    /// [`DispatcherBuilder::build`].
    pub fn from_config(config: &Config) -> Result<Dispatcher, ActionsError> {
        Dispatcher::builder(config).build()
    }

    /// Queues an event for the actions; never waits. Returns `false` (and counts a drop) when the queue
    /// is full or the dispatcher is shut down.
    pub fn submit(&self, event: Event) -> bool {
        match &self.tx {
            Some(tx) => self.shared.submit(tx, event),
            None => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The receiver of follow-up events (`heap_profile`), once; `None` if taken or if a channel was
    /// given to [`DispatcherBuilder::followups`]. Unread follow-ups beyond its capacity are dropped.
    pub fn take_followups(&mut self) -> Option<mpsc::Receiver<Event>> {
        self.followups_rx.take()
    }

    /// Current counters.
    pub fn stats(&self) -> DispatchStats {
        self.shared.stats()
    }

    /// The last (up to 64) action failures, oldest first.
    pub fn recent_failures(&self) -> Vec<Failure> {
        let recent = self.shared.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    /// Stops accepting events and waits until the queued ones are handled, at most `deadline`. Past the
    /// deadline, running Lua scripts are interrupted and the rest is abandoned (and reported).
    pub async fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        drop(self.tx.take());
        let mut drained = true;
        if let Some(mut worker) = self.worker.take()
            && tokio::time::timeout(deadline, &mut worker).await.is_err()
        {
            drained = false;
            self.shared.cancel.store(true, Ordering::Relaxed);
            worker.abort();
            let _ = worker.await;
        }
        let stats = self.shared.stats();
        let abandoned = stats.queued.saturating_sub(stats.processed);
        if drained {
            tracing::info!(?stats, "action dispatcher drained");
        } else {
            tracing::warn!(
                ?stats,
                abandoned,
                "action dispatcher shutdown deadline passed"
            );
        }
        ShutdownReport {
            stats,
            drained,
            abandoned,
            failures: self.recent_failures(),
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.shared.cancel.store(true, Ordering::Relaxed);
            worker.abort();
        }
    }
}
