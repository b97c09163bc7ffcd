//! Marks of OOM-kill victims that could not be made yet (API server down, throttling, server errors):
//! [`PendingMarks`], a bounded queue with per-mark backoff that takes the time as a parameter (no
//! clock inside, so its unit tests need no sleeps), and [`StateFile`], which keeps the queue across a
//! restart of the process (JSON, written with temp file + rename, read with a size cap).
//!
//! A mark leaves the queue when it is done, when its pod is gone (404), when the API server refuses it
//! for good (a 4xx other than 401/403/408/409/429), when it is older than [`PendingOptions::max_age`],
//! or, the oldest first, when a new one would exceed [`PendingOptions::capacity`].

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::KubeletError;
use crate::events::{EventKind, EventSpec};
use crate::victim::Victim;

/// The largest `capacity` accepted (each mark takes at most a few KiB in memory and in the state file).
pub const MAX_PENDING_CAPACITY: usize = 4096;
/// The largest state file read; a larger one is ignored (logged).
pub const MAX_STATE_FILE_BYTES: u64 = 16 << 20;

/// Bounds and backoff of [`PendingMarks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingOptions {
    /// A mark older than this (from the kill) is dropped.
    pub max_age: Duration,
    /// At most this many marks are kept; the oldest goes first.
    pub capacity: usize,
    /// Delay after the first failed attempt, doubling per attempt.
    pub initial_backoff: Duration,
    /// Largest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for PendingOptions {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(3600),
            capacity: 1024,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl PendingOptions {
    /// Checks the bounds: `max_age` from 1 s to 7 days, `capacity` from 1 to
    /// [`MAX_PENDING_CAPACITY`], `0 < initial_backoff <= max_backoff <= 1 h`.
    ///
    /// # Errors
    /// [`KubeletError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), KubeletError> {
        let invalid = |key: &str, reason: String| {
            Err(KubeletError::Invalid {
                key: key.to_owned(),
                reason,
            })
        };
        if self.max_age < Duration::from_secs(1) || self.max_age > Duration::from_secs(7 * 86_400) {
            return invalid(
                "max_age",
                format!("{:?} is not between 1s and 7 days", self.max_age),
            );
        }
        if self.capacity == 0 || self.capacity > MAX_PENDING_CAPACITY {
            return invalid(
                "capacity",
                format!(
                    "{} is not between 1 and {MAX_PENDING_CAPACITY}",
                    self.capacity
                ),
            );
        }
        if self.initial_backoff.is_zero()
            || self.initial_backoff > self.max_backoff
            || self.max_backoff > Duration::from_secs(3600)
        {
            return invalid(
                "backoff",
                format!(
                    "{:?}..{:?} is not 0 < initial <= max <= 1h",
                    self.initial_backoff, self.max_backoff
                ),
            );
        }
        Ok(())
    }

    /// The delay after failed attempt `n` (1-based): `initial_backoff` doubling up to `max_backoff`.
    pub fn delay(&self, n: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max_backoff)
    }
}

/// The Event a mark posts, kept with the mark so a restarted process can post it without the pod
/// cache (the note names the container's limit, read from the pod at the kill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEvent {
    /// The Event's object reference.
    pub regarding: k8s_openapi::api::core::v1::ObjectReference,
    /// `Warning` or `Normal`.
    pub warning: bool,
    /// Reason.
    pub reason: String,
    /// Action.
    pub action: String,
    /// Note.
    pub note: String,
}

impl From<&EventSpec> for PendingEvent {
    fn from(s: &EventSpec) -> Self {
        Self {
            regarding: s.regarding.clone(),
            warning: s.kind == EventKind::Warning,
            reason: s.reason.clone(),
            action: s.action.clone(),
            note: s.note.clone(),
        }
    }
}

impl From<&PendingEvent> for EventSpec {
    fn from(e: &PendingEvent) -> Self {
        Self {
            regarding: e.regarding.clone(),
            kind: if e.warning {
                EventKind::Warning
            } else {
                EventKind::Normal
            },
            reason: e.reason.clone(),
            action: e.action.clone(),
            note: e.note.clone(),
        }
    }
}

/// The pod a mark goes to, resolved from the pod cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkTarget {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The Event to post (none when Events are off).
    #[serde(default)]
    pub event: Option<PendingEvent>,
}

impl MarkTarget {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One kill whose mark is not complete: what is known of it and which parts are done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingMark {
    /// The victim.
    pub victim: Victim,
    /// Wall-clock time of the kill, milliseconds since the Unix epoch (the age bound counts from it,
    /// also across a restart).
    pub killed_at_ms: u64,
    /// The pod, once resolved (`None`: the pod cache did not know it yet).
    #[serde(default)]
    pub target: Option<MarkTarget>,
    /// The annotation is on the pod (or none is configured).
    #[serde(default)]
    pub annotated: bool,
    /// The Event is posted (or Events are off).
    #[serde(default)]
    pub event_posted: bool,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
}

impl PendingMark {
    /// A mark of `victim` killed at `killed_at`, nothing done yet.
    pub fn new(victim: Victim, killed_at: SystemTime) -> Self {
        Self {
            victim,
            killed_at_ms: unix_ms(killed_at),
            target: None,
            annotated: false,
            event_posted: false,
            attempts: 0,
        }
    }

    /// Whether every part is done.
    pub fn is_done(&self) -> bool {
        self.annotated && self.event_posted
    }

    /// The same kill (a replayed kernel log reports it again): pid, kill time and cgroup.
    fn same_kill(&self, other: &PendingMark) -> bool {
        self.victim.pid == other.victim.pid
            && self.killed_at_ms == other.killed_at_ms
            && self.victim.pod_uid == other.victim.pod_uid
            && self.victim.container_id == other.victim.container_id
    }

    /// For logs: the pod when resolved, else the victim's pod UID or container ID.
    pub fn describe(&self) -> String {
        match &self.target {
            Some(t) => t.full_name(),
            None => self
                .victim
                .pod_uid
                .clone()
                .or_else(|| self.victim.container_id.clone())
                .unwrap_or_else(|| format!("pid {}", self.victim.pid)),
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a mark left the queue without being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Older than `max_age`.
    Expired,
    /// The queue was full: the oldest mark made room.
    Capacity,
    /// The pod is gone (404).
    PodGone,
    /// The API server refused the request for good (a 4xx that retrying cannot change).
    Rejected,
}

impl DropReason {
    /// The metric label: `expired`, `capacity`, `pod_gone`, `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Capacity => "capacity",
            Self::PodGone => "pod_gone",
            Self::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: u64,
    mark: PendingMark,
    next_at_ms: u64,
}

/// A bounded queue of [`PendingMark`]s in kill order, each with its next attempt time. Pure: every
/// method takes the current time.
#[derive(Debug)]
pub struct PendingMarks {
    opts: PendingOptions,
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl PendingMarks {
    /// An empty queue. `opts` should be [validated](PendingOptions::validate); a capacity of 0 is
    /// treated as 1.
    pub fn new(opts: PendingOptions) -> Self {
        Self {
            opts: PendingOptions {
                capacity: opts.capacity.max(1),
                ..opts
            },
            entries: VecDeque::new(),
            next_id: 0,
        }
    }

    /// The options.
    pub fn options(&self) -> &PendingOptions {
        &self.opts
    }

    /// Marks queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Queues `mark` for an attempt at `now + delay(mark.attempts)` (now when it has none). Returns
    /// the id, or `None` when the same kill is already queued; and the marks dropped to stay within
    /// the capacity (the oldest kills).
    pub fn push(&mut self, mark: PendingMark, now: SystemTime) -> (Option<u64>, Vec<PendingMark>) {
        if self.entries.iter().any(|e| e.mark.same_kill(&mark)) {
            return (None, Vec::new());
        }
        let now_ms = unix_ms(now);
        let next_at_ms = if mark.attempts == 0 {
            now_ms
        } else {
            now_ms.saturating_add(ms(self.opts.delay(mark.attempts)))
        };
        let id = self.next_id;
        self.next_id += 1;
        // Kill order: a restored or late mark goes before younger kills.
        let at = self
            .entries
            .iter()
            .position(|e| e.mark.killed_at_ms > mark.killed_at_ms)
            .unwrap_or(self.entries.len());
        self.entries.insert(
            at,
            Entry {
                id,
                mark,
                next_at_ms,
            },
        );
        let mut dropped = Vec::new();
        while self.entries.len() > self.opts.capacity {
            if let Some(e) = self.entries.pop_front() {
                dropped.push(e.mark);
            }
        }
        let kept = self.entries.iter().any(|e| e.id == id).then_some(id);
        (kept, dropped)
    }

    /// Removes and returns the marks older than `max_age` at `now`.
    pub fn expire(&mut self, now: SystemTime) -> Vec<PendingMark> {
        let limit = unix_ms(now).saturating_sub(ms(self.opts.max_age));
        let mut out = Vec::new();
        self.entries.retain(|e| {
            let keep = e.mark.killed_at_ms > limit;
            if !keep {
                out.push(e.mark.clone());
            }
            keep
        });
        out
    }

    /// The first mark due at `now` (its id and a copy), oldest kill first.
    pub fn next_due(&self, now: SystemTime) -> Option<(u64, PendingMark)> {
        let now_ms = unix_ms(now);
        self.entries
            .iter()
            .filter(|e| e.next_at_ms <= now_ms)
            .min_by_key(|e| (e.next_at_ms, e.mark.killed_at_ms))
            .map(|e| (e.id, e.mark.clone()))
    }

    /// How long from `now` until a mark is due or one expires (`None` when the queue is empty).
    pub fn wait(&self, now: SystemTime) -> Option<Duration> {
        let now_ms = unix_ms(now);
        let max_age = ms(self.opts.max_age);
        self.entries
            .iter()
            .map(|e| {
                e.next_at_ms
                    .min(e.mark.killed_at_ms.saturating_add(max_age))
            })
            .min()
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms)))
    }

    /// Stores the progress of attempt on mark `id` that failed at `now`: its attempts + 1 and the next
    /// attempt after the backoff, or after `retry_after` when the server asked for longer. Returns the
    /// delay, `None` when `id` is not queued (dropped meanwhile).
    pub fn retry_later(
        &mut self,
        id: u64,
        progress: PendingMark,
        now: SystemTime,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let e = self.entries.iter_mut().find(|e| e.id == id)?;
        e.mark = progress;
        e.mark.attempts = e.mark.attempts.saturating_add(1);
        let delay = self
            .opts
            .delay(e.mark.attempts)
            .max(retry_after.unwrap_or_default().min(self.opts.max_age));
        e.next_at_ms = unix_ms(now).saturating_add(ms(delay));
        Some(delay)
    }

    /// Removes mark `id` (done or dropped); returns it.
    pub fn remove(&mut self, id: u64) -> Option<PendingMark> {
        let at = self.entries.iter().position(|e| e.id == id)?;
        self.entries.remove(at).map(|e| e.mark)
    }

    /// Every mark in kill order, e.g. for the state file.
    pub fn marks(&self) -> Vec<PendingMark> {
        self.entries.iter().map(|e| e.mark.clone()).collect()
    }

    /// Makes every mark due now (the API server is reachable again).
    pub fn retry_all_now(&mut self, now: SystemTime) {
        let now_ms = unix_ms(now);
        for e in &mut self.entries {
            e.next_at_ms = e.next_at_ms.min(now_ms);
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The on-disk form of the queue.
#[derive(Debug, Serialize, Deserialize)]
struct StateDoc {
    version: u32,
    marks: Vec<PendingMark>,
}

const STATE_VERSION: u32 = 1;

/// The pending marks across a restart: one JSON file, replaced atomically (a temp file in the same
/// directory, fsync, rename), read with a size cap.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file at `path` (its directory is created on the first write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The marks saved by an earlier process; none when the file does not exist.
    ///
    /// # Errors
    /// [`KubeletError::StateFile`] when it cannot be read, is larger than
    /// [`MAX_STATE_FILE_BYTES`], or is not a state file of this version: the caller logs it and
    /// starts empty (the next write replaces the file).
    pub fn load(&self) -> Result<Vec<PendingMark>, KubeletError> {
        let err = |reason: String| KubeletError::StateFile {
            path: self.path.clone(),
            reason,
        };
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e.to_string())),
        };
        let meta = file.metadata().map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".to_owned()));
        }
        if meta.len() > MAX_STATE_FILE_BYTES {
            return Err(err(format!(
                "{} bytes, larger than {MAX_STATE_FILE_BYTES}",
                meta.len()
            )));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_STATE_FILE_BYTES + 1),
            &mut bytes,
        )
        .map_err(|e| err(e.to_string()))?;
        if bytes.len() as u64 > MAX_STATE_FILE_BYTES {
            return Err(err(format!("larger than {MAX_STATE_FILE_BYTES} bytes")));
        }
        let doc: StateDoc =
            serde_json::from_slice(&bytes).map_err(|e| err(format!("not a state file: {e}")))?;
        if doc.version != STATE_VERSION {
            return Err(err(format!(
                "version {} (this build reads {STATE_VERSION})",
                doc.version
            )));
        }
        Ok(doc.marks)
    }

    /// Replaces the file with `marks` (removes it when there are none).
    ///
    /// # Errors
    /// [`KubeletError::StateFile`] when the directory, the temp file or the rename fails.
    pub fn save(&self, marks: &[PendingMark]) -> Result<(), KubeletError> {
        let err = |reason: String| KubeletError::StateFile {
            path: self.path.clone(),
            reason,
        };
        if marks.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(e.to_string())),
                _ => Ok(()),
            };
        }
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(format!("creating its directory: {e}")))?;
        let bytes = serde_json::to_vec(&StateDoc {
            version: STATE_VERSION,
            marks: marks.to_vec(),
        })
        .map_err(|e| err(e.to_string()))?;
        let name = self
            .path
            .file_name()
            .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn mark(pid: u32, killed: u64) -> PendingMark {
        PendingMark::new(
            Victim {
                pid,
                comm: "app".into(),
                pod_uid: Some(format!("uid-{pid}")),
                ..Victim::default()
            },
            t(killed),
        )
    }

    fn opts() -> PendingOptions {
        PendingOptions {
            max_age: Duration::from_secs(3600),
            capacity: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }

    #[test]
    fn options_are_validated_naming_the_setting() {
        assert!(PendingOptions::default().validate().is_ok());
        for (bad, key) in [
            (
                PendingOptions {
                    max_age: Duration::ZERO,
                    ..opts()
                },
                "max_age",
            ),
            (
                PendingOptions {
                    capacity: 0,
                    ..opts()
                },
                "capacity",
            ),
            (
                PendingOptions {
                    capacity: MAX_PENDING_CAPACITY + 1,
                    ..opts()
                },
                "capacity",
            ),
            (
                PendingOptions {
                    initial_backoff: Duration::from_secs(60),
                    ..opts()
                },
                "backoff",
            ),
        ] {
            let e = bad.validate().expect_err(key).to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_max_and_honours_retry_after() {
        let mut q = PendingMarks::new(opts());
        let (id, _) = q.push(mark(1, 0), t(0));
        let id = id.unwrap();
        assert_eq!(q.next_due(t(0)).map(|(i, _)| i), Some(id), "due at once");
        let mut delays = Vec::new();
        for _ in 0..7 {
            let m = q.next_due(t(10_000)).unwrap().1;
            delays.push(q.retry_later(id, m, t(0), None).unwrap().as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert!(q.next_due(t(29)).is_none());
        assert_eq!(q.wait(t(20)), Some(Duration::from_secs(10)));
        assert!(q.next_due(t(30)).is_some());
        // Retry-After longer than the backoff wins.
        let m = q.next_due(t(30)).unwrap().1;
        assert_eq!(
            q.retry_later(id, m, t(30), Some(Duration::from_secs(120))),
            Some(Duration::from_secs(120))
        );
        assert!(q.next_due(t(149)).is_none());
        assert!(q.next_due(t(150)).is_some());
        assert_eq!(q.next_due(t(150)).unwrap().1.attempts, 8);
        q.retry_all_now(t(40));
        assert!(q.next_due(t(40)).is_some());
    }

    #[test]
    fn issue_16_never_more_than_the_capacity_the_oldest_dropped_first() {
        let mut q = PendingMarks::new(opts());
        let mut dropped = Vec::new();
        for pid in 0..50 {
            let (_, d) = q.push(mark(pid, u64::from(pid)), t(u64::from(pid)));
            dropped.extend(d);
            assert!(q.len() <= 3, "{} > capacity", q.len());
        }
        assert_eq!(q.len(), 3);
        assert_eq!(dropped.len(), 47);
        assert_eq!(dropped[0].victim.pid, 0, "oldest first");
        assert_eq!(
            q.marks().iter().map(|m| m.victim.pid).collect::<Vec<_>>(),
            [47, 48, 49]
        );
        // A late mark older than every queued one is itself the one dropped.
        let (id, d) = q.push(mark(99, 0), t(60));
        assert_eq!((id, d.len(), d[0].victim.pid), (None, 1, 99));
    }

    #[test]
    fn marks_expire_by_age_from_the_kill_and_duplicates_are_ignored() {
        let mut q = PendingMarks::new(opts());
        q.push(mark(1, 0), t(0));
        q.push(mark(2, 1000), t(1000));
        assert_eq!(q.push(mark(2, 1000), t(1001)).0, None, "same kill");
        assert_eq!(q.len(), 2);
        assert!(q.expire(t(3599)).is_empty());
        assert_eq!(q.wait(t(3599)), Some(Duration::ZERO), "due since 0");
        let gone = q.expire(t(3600));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].victim.pid, 1);
        assert_eq!(q.len(), 1);
        let (id, m) = q.next_due(t(3600)).unwrap();
        q.retry_later(id, m, t(3600), Some(Duration::from_secs(10_000)));
        // The wait ends at the expiry, not at a Retry-After beyond it.
        assert_eq!(q.wait(t(3600)), Some(Duration::from_secs(1000)));
        assert_eq!(q.remove(id).map(|m| m.victim.pid), Some(2));
        assert!(q.is_empty() && q.wait(t(0)).is_none());
    }

    #[test]
    fn state_file_round_trips_and_rejects_what_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("sub/pending.json"));
        assert_eq!(f.load().unwrap(), Vec::new(), "missing file: empty");
        let mut m = mark(7, 5);
        m.target = Some(MarkTarget {
            namespace: "ns".into(),
            name: "p".into(),
            event: None,
        });
        m.annotated = true;
        f.save(std::slice::from_ref(&m)).unwrap();
        assert_eq!(f.load().unwrap(), vec![m]);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
        f.save(&[]).unwrap();
        assert!(!f.path().exists(), "empty queue: no file");
        std::fs::write(f.path(), b"{not json").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(
            e.contains("pending.json") && e.contains("not a state file"),
            "{e}"
        );
        std::fs::write(f.path(), br#"{"version":9,"marks":[]}"#).unwrap();
        assert!(f.load().unwrap_err().to_string().contains("version 9"));
        let big = std::fs::File::create(f.path()).unwrap();
        big.set_len(MAX_STATE_FILE_BYTES + 1).unwrap();
        assert!(f.load().unwrap_err().to_string().contains("larger than"));
    }
}
