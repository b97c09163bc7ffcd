//! [`MarkQueue`]: every OOM-kill victim's mark (annotation and Warning Event) is made, through API
//! server outages and restarts of the process. A kill is marked at once when the API server answers;
//! otherwise it waits in a bounded [`PendingMarks`] queue and [`MarkQueue::run`] retries it with
//! backoff until it is made, its pod is gone, it is refused for good, or it is older than the maximum
//! age. With a [`StateFile`] the queue is saved after every change and reloaded at start.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::pending::{DropReason, PendingMark, PendingMarks, PendingOptions, StateFile};
use crate::victim::{Step, Victim, VictimMarker, VictimOutcome};

/// The wall clock, injectable (the age bound counts from the kill's wall-clock time, so it holds
/// across restarts).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// [`Clock`] of [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Counters of a [`MarkQueue`], cumulative since start (the gauge `pending` excepted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MarkQueueStats {
    /// Marks waiting now.
    pub pending: usize,
    /// Attempts made from the queue (each retry of a pending mark).
    pub retries: u64,
    /// Pending marks made in the end.
    pub marked_late: u64,
    /// Pending marks whose pod had the annotation by then (not overwritten, no Event).
    pub already_marked_late: u64,
    /// Marks dropped because they were older than the maximum age.
    pub dropped_expired: u64,
    /// Marks dropped to stay within the capacity (the oldest first).
    pub dropped_capacity: u64,
    /// Marks dropped because the pod was gone.
    pub dropped_pod_gone: u64,
    /// Marks dropped because the API server refused them for good.
    pub dropped_rejected: u64,
}

impl MarkQueueStats {
    /// The dropped count for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Expired => self.dropped_expired,
            DropReason::Capacity => self.dropped_capacity,
            DropReason::PodGone => self.dropped_pod_gone,
            DropReason::Rejected => self.dropped_rejected,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    retries: AtomicU64,
    marked_late: AtomicU64,
    already_marked_late: AtomicU64,
    dropped: [AtomicU64; 4],
}

fn slot(reason: DropReason) -> usize {
    match reason {
        DropReason::Expired => 0,
        DropReason::Capacity => 1,
        DropReason::PodGone => 2,
        DropReason::Rejected => 3,
    }
}

/// Marks OOM-kill victims through a [`VictimMarker`], keeping what cannot be marked yet.
pub struct MarkQueue {
    marker: VictimMarker,
    queue: Mutex<PendingMarks>,
    store: Option<StateFile>,
    /// Serialises writes of the state file (one temp file name per process).
    save: Mutex<()>,
    store_failing: AtomicBool,
    clock: Arc<dyn Clock>,
    wake: Notify,
    counters: Counters,
}

impl std::fmt::Debug for MarkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkQueue")
            .field("marker", &self.marker)
            .field("pending", &self.lock().len())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl MarkQueue {
    /// A queue over `marker` with `opts` (validate them first: [`PendingOptions::validate`]).
    pub fn new(marker: VictimMarker, opts: PendingOptions) -> Self {
        Self {
            marker,
            queue: Mutex::new(PendingMarks::new(opts)),
            store: None,
            save: Mutex::new(()),
            store_failing: AtomicBool::new(false),
            clock: Arc::new(SystemClock),
            wake: Notify::new(),
            counters: Counters::default(),
        }
    }

    /// Replaces the wall clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps the queue in `file` and loads what an earlier process left there: marks past the
    /// maximum age are dropped, the capacity holds. A file that cannot be read is logged and ignored
    /// (never fatal); the next change replaces it.
    #[must_use]
    pub fn with_state_file(mut self, file: StateFile) -> Self {
        match file.load() {
            Ok(marks) => {
                let now = self.clock.now();
                let restored = marks.len();
                let mut dropped = Vec::new();
                {
                    let mut q = self.lock();
                    for m in marks {
                        dropped.extend(q.push(m, now).1);
                    }
                    for m in q.expire(now) {
                        self.count_drop(&m, DropReason::Expired, "older than the maximum age");
                    }
                    // The API server may be back: try at once rather than after the saved backoff.
                    q.retry_all_now(now);
                }
                for m in &dropped {
                    self.count_drop(m, DropReason::Capacity, "the pending queue is full");
                }
                if restored > 0 {
                    tracing::info!(
                        path = %file.path().display(),
                        restored,
                        pending = self.lock().len(),
                        "pending OOM marks restored from the state file"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the state file of pending OOM marks");
            }
        }
        self.store = Some(file);
        self
    }

    fn lock(&self) -> MutexGuard<'_, PendingMarks> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The marker.
    pub fn marker(&self) -> &VictimMarker {
        &self.marker
    }

    /// The counters and the number of pending marks.
    pub fn stats(&self) -> MarkQueueStats {
        let c = &self.counters;
        let d = |r: DropReason| c.dropped[slot(r)].load(Ordering::Relaxed);
        MarkQueueStats {
            pending: self.lock().len(),
            retries: c.retries.load(Ordering::Relaxed),
            marked_late: c.marked_late.load(Ordering::Relaxed),
            already_marked_late: c.already_marked_late.load(Ordering::Relaxed),
            dropped_expired: d(DropReason::Expired),
            dropped_capacity: d(DropReason::Capacity),
            dropped_pod_gone: d(DropReason::PodGone),
            dropped_rejected: d(DropReason::Rejected),
        }
    }

    /// The marks waiting now, oldest kill first.
    pub fn pending(&self) -> Vec<PendingMark> {
        self.lock().marks()
    }

    fn count_drop(&self, m: &PendingMark, reason: DropReason, why: &str) {
        self.counters.dropped[slot(reason)].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            pod = %m.describe(),
            pid = m.victim.pid,
            reason = reason.as_str(),
            attempts = m.attempts,
            "pending OOM mark dropped: {why}"
        );
    }

    /// Writes the queue to the state file, if any; a failure is logged once until a write succeeds.
    fn persist(&self) {
        let Some(store) = &self.store else { return };
        let _guard = self
            .save
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let marks = self.lock().marks();
        match store.save(&marks) {
            Ok(()) => {
                if self.store_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(path = %store.path().display(), "state file written again");
                }
            }
            Err(e) => {
                if !self.store_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "pending OOM marks are not kept across a restart");
                }
            }
        }
    }

    /// Marks victim `v` killed at `killed_at`: one attempt now; what fails for now is queued for
    /// [`MarkQueue::run`] ([`VictimOutcome::Pending`]). A victim the pod cache does not know is
    /// [`VictimOutcome::NoPodMatch`] once the cache is complete, and pending while it is not (the API
    /// server was not reachable since the start).
    pub async fn mark(&self, v: &Victim, killed_at: SystemTime) -> VictimOutcome {
        let mut m = self.marker.new_mark(v, killed_at);
        m.target = self.marker.resolve_waiting(v).await;
        if m.target.is_none() && self.marker.cache_ready() {
            return VictimOutcome::NoPodMatch;
        }
        let (error, retry_after) = match self.marker.attempt(&mut m).await {
            Step::Done(outcome) => return outcome,
            Step::Drop { reason, error } => {
                tracing::warn!(pod = %m.describe(), pid = v.pid, reason = reason.as_str(), error = %error, "OOM victim not marked");
                return match reason {
                    DropReason::PodGone => VictimOutcome::NoPodMatch,
                    _ => VictimOutcome::Failed(error),
                };
            }
            Step::Retry { error, retry_after } => (error, retry_after),
        };
        let pod = m.target.as_ref().map(crate::pending::MarkTarget::full_name);
        let now = self.clock.now();
        let (id, dropped) = {
            let mut q = self.lock();
            let (id, dropped) = q.push(m.clone(), now);
            if let Some(id) = id {
                q.retry_later(id, m.clone(), now, retry_after);
            }
            (id, dropped)
        };
        for d in &dropped {
            self.count_drop(d, DropReason::Capacity, "the pending queue is full");
        }
        // In the state file before it is announced: a restart from here on keeps it.
        self.persist();
        if id.is_some() {
            tracing::info!(
                pod = %m.describe(),
                pid = v.pid,
                error = %error,
                pending = self.lock().len(),
                "OOM mark pending; retrying with backoff"
            );
        }
        self.wake.notify_one();
        VictimOutcome::Pending { pod, error }
    }

    /// Retries pending marks until `stop` completes: each when its backoff ends (or the server's
    /// `Retry-After`), dropping those past the maximum age. Run it on its own task.
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            let mut changed = false;
            let expired = self.lock().expire(self.clock.now());
            for m in &expired {
                self.count_drop(m, DropReason::Expired, "older than the maximum age");
                changed = true;
            }
            loop {
                let Some((id, mut m)) = self.lock().next_due(self.clock.now()) else {
                    break;
                };
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                let step = tokio::select! {
                    () = &mut stop => {
                        if changed { self.persist(); }
                        return;
                    }
                    s = self.marker.attempt(&mut m) => s,
                };
                changed = true;
                match step {
                    Step::Done(outcome) => {
                        // The API server answers again: the others need not wait out their backoff.
                        let mut q = self.lock();
                        q.remove(id);
                        q.retry_all_now(self.clock.now());
                        drop(q);
                        let counter = match &outcome {
                            VictimOutcome::AlreadyMarked { .. } => {
                                &self.counters.already_marked_late
                            }
                            _ => &self.counters.marked_late,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            pod = %m.describe(),
                            pid = m.victim.pid,
                            attempts = m.attempts + 1,
                            outcome = ?outcome,
                            "pending OOM mark made"
                        );
                    }
                    Step::Drop { reason, error } => {
                        if let Some(m) = self.lock().remove(id) {
                            self.count_drop(&m, reason, &error);
                        }
                    }
                    Step::Retry { error, retry_after } => {
                        let delay =
                            self.lock()
                                .retry_later(id, m.clone(), self.clock.now(), retry_after);
                        tracing::debug!(pod = %m.describe(), error = %error, delay = ?delay, "OOM mark still pending");
                    }
                }
            }
            if changed {
                self.persist();
            }
            let wait = self
                .lock()
                .wait(self.clock.now())
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}
