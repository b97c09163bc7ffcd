//! The extension point: the [`Action`] trait and the [`ActionContext`] every action gets.
//!
//! Its own module so that the built-in actions and the dispatcher both depend on it and not on each
//! other.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::future::BoxFuture;
use pressure_core::Event;
use tokio::sync::mpsc;

use crate::ActionsError;
use crate::counters::Shared;
use crate::registry::Registry;
use crate::storage::Storage;

/// Something done about an event. Register your own with [`DispatcherBuilder::action`](crate::DispatcherBuilder::action).
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
    /// The context of a dispatcher's worker: `followups` also receives every emitted event.
    pub(crate) fn new(
        dry_run: bool,
        storages: Arc<Registry<dyn Storage>>,
        shared: Arc<Shared>,
        requeue: mpsc::UnboundedSender<Event>,
        followups: Option<mpsc::Sender<Event>>,
    ) -> Self {
        ActionContext {
            dry_run,
            storages,
            shared,
            requeue,
            followups,
        }
    }

    /// The context for one event: dry run when the run or the event says so.
    pub(crate) fn for_event(&self, event: &Event) -> Self {
        let mut ctx = self.clone();
        ctx.dry_run = self.dry_run || event.dry_run;
        ctx
    }

    /// The storages, for the dispatcher's start-up log line.
    pub(crate) fn storage_names(&self) -> Vec<&str> {
        self.storages.iter().map(|(n, _, _)| n).collect()
    }

    /// The dispatcher's counters.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

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
