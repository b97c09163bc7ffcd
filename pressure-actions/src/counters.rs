//! The counters a dispatcher shares with its actions: drops, runs, failures (and the last few failures).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pressure_core::Event;
use tokio::sync::mpsc;

use crate::ActionsError;

/// Failures kept for [`Dispatcher::recent_failures`](crate::Dispatcher::recent_failures).
const RECENT_FAILURES: usize = 64;

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

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) processed: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) followups_dropped: AtomicU64,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) recent: Mutex<VecDeque<Failure>>,
}

impl Shared {
    pub(crate) fn new() -> Self {
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

    pub(crate) fn submit(&self, tx: &mpsc::Sender<Event>, event: Event) -> bool {
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

    pub(crate) fn failure(&self, action: &str, error: &ActionsError) {
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

    pub(crate) fn stats(&self) -> DispatchStats {
        DispatchStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            processed: self.processed.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            followups_dropped: self.followups_dropped.load(Ordering::Relaxed),
        }
    }
}
