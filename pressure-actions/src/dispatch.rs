//! The dispatcher: a bounded queue between sampling and the actions, drained by one worker task.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::join_all;
use pressure_core::Event;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::action::{Action, ActionContext};
use crate::config::{DispatchConfig, StorageBackend};
use crate::counters::{DispatchStats, Failure, Shared};
use crate::registry::Registry;
use crate::storage::{LocalStorage, ObjectStorage, Storage};
use crate::{ActionsError, exec, heap, lua, webhook};

/// Queue capacity when `actions.queue_capacity` is not set.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Capacity of the follow-up channel (`heap_profile` events) handed to the caller.
const FOLLOWUP_CAPACITY: usize = 256;

/// Built-in priorities: the heap capture starts first, then Lua, exec, webhooks.
const PRIORITY_HEAP: i32 = 200;
const PRIORITY_LUA: i32 = 100;
const PRIORITY_EXEC: i32 = 50;
const PRIORITY_WEBHOOK: i32 = 40;
/// Built-in storage priorities (the original's: S3 100, local 50).
const PRIORITY_S3: i32 = 100;
const PRIORITY_LOCAL: i32 = 50;

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

/// Builds a [`Dispatcher`]: the configured built-ins plus an embedder's own storages and actions.
#[derive(Debug)]
pub struct DispatcherBuilder {
    config: DispatchConfig,
    script_config: Option<serde_json::Value>,
    storages: Registry<dyn Storage>,
    actions: Registry<dyn Action>,
    followups: Option<mpsc::Sender<Event>>,
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

    /// The document Lua scripts see as their global `config` (the original's API: the whole
    /// configuration file); without it, this dispatcher's own sections.
    pub fn script_config(mut self, document: serde_json::Value) -> Self {
        self.script_config = Some(document);
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
                    // `validate` rejects an empty path; a config built in code may skip it.
                    if config.storage.path.is_empty() {
                        return Err(ActionsError::Config {
                            key: "storage.path".into(),
                            message: "local storage needs a root directory".into(),
                        });
                    }
                    let local = LocalStorage::new(PathBuf::from(&config.storage.path))?;
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
            let script_config = match self.script_config.take() {
                Some(document) => document,
                None => serde_json::to_value(config).map_err(|e| ActionsError::Config {
                    key: "plugins.lua".into(),
                    message: format!("config to Lua: {e}"),
                })?,
            };
            let (action, load_failures) = lua::LuaAction::load(
                &config.plugins.lua,
                &script_config,
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
        let ctx = ActionContext::new(
            config.dry_run,
            storages,
            Arc::clone(&shared),
            requeue_tx,
            Some(followups),
        );
        let actions: Vec<(String, Arc<dyn Action>)> = self
            .actions
            .iter()
            .map(|(n, _, a)| (n.to_string(), Arc::clone(a)))
            .collect();
        tracing::info!(
            actions = ?actions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            storages = ?ctx.storage_names(),
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
    let ctx = ctx.for_event(&event);
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
    ctx.shared().processed.fetch_add(1, Ordering::Relaxed);
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
    pub fn builder(config: &DispatchConfig) -> DispatcherBuilder {
        DispatcherBuilder {
            config: config.clone(),
            script_config: None,
            storages: Registry::new("storage"),
            actions: Registry::new("action"),
            followups: None,
            builtin_storage: true,
        }
    }

    /// The dispatcher `config` describes (`plugins.lua`, `storage`, `actions`); see
    /// [`DispatcherBuilder::build`].
    pub fn from_config(config: &DispatchConfig) -> Result<Dispatcher, ActionsError> {
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

    /// Queues an event for the actions, waiting for room when the queue is full: back-pressure for
    /// callers without a real-time deadline (`--replay`), which must drop nothing (issue 16). Returns
    /// `false` (and counts a drop) only when the dispatcher is shut down.
    pub async fn submit_wait(&self, event: Event) -> bool {
        let sent = match &self.tx {
            Some(tx) => tx.send(event).await.is_ok(),
            None => false,
        };
        if sent {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
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
