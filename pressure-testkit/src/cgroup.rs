//! Real memory cgroups for system tests: kubelet-shaped v1 trees that remove themselves.
//!
//! [`KubeletV1Pod`] makes `/sys/fs/cgroup/memory/kubepods/<qos>/pod<uid>/<64-hex id>` with a unique UID
//! and ID per call, so tests can run in parallel. [`CgroupDirs`] remembers every directory it made and,
//! on drop (also when a test panics), kills what runs inside and removes them leaf first; shared parents
//! (`kubepods`, `kubepods/burstable`) are removed only when empty, so a parallel test keeps its own.
//! [`OomKillClock`] timestamps the moment `memory.oom_control`'s `oom_kill` counter moves.

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Where this machine kind mounts the v1 memory hierarchy.
pub const V1_MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";

/// 64 random bits (std's randomly keyed hasher, mixed with a counter and the clock).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A fresh version-4 UUID, as kubelet gives pods.
#[must_use]
pub fn unique_pod_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// A fresh 64-hex container ID.
#[must_use]
pub fn unique_container_id() -> String {
    (0..4).map(|_| format!("{:016x}", random_u64())).collect()
}

/// Whether real v1 memory cgroups can be made here: root, and a writable memory hierarchy.
///
/// # Errors
/// Why not, for the skip message (or the failure under CI).
pub fn v1_memcg_available() -> Result<PathBuf, String> {
    let root = PathBuf::from(V1_MEMORY_ROOT);
    if !root.join("memory.limit_in_bytes").is_file() {
        return Err(format!("no cgroup v1 memory hierarchy at {V1_MEMORY_ROOT}"));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: cannot create memory cgroups".to_owned());
    }
    Ok(root)
}

/// For tests that need real v1 memory cgroups: the memory root, or `None` after printing why the test
/// is skipped. Under CI ([`crate::under_ci`]) a missing capability fails the test instead.
///
/// # Panics
/// Under CI when cgroups are unavailable.
#[must_use]
pub fn require_v1_memcg(test: &str) -> Option<PathBuf> {
    crate::require(test, &crate::Capability::V1Memcg).flatten()
}

/// Directories made under a cgroup hierarchy, removed on drop (the leaves in reverse order, then
/// the parents nobody uses any more).
#[derive(Debug, Default)]
pub struct CgroupDirs {
    created: Vec<PathBuf>,
}

impl CgroupDirs {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        CgroupDirs::default()
    }

    /// Makes `dir` and its missing parents, remembering each one made here.
    ///
    /// Retries when a parallel test removes a shared parent in between.
    ///
    /// # Errors
    /// The `mkdir` error naming the directory.
    pub fn create_all(&mut self, dir: &Path) -> io::Result<()> {
        for _ in 0..50 {
            let mut missing = Vec::new();
            let mut cur = dir;
            while !cur.exists() {
                missing.push(cur.to_owned());
                match cur.parent() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            let mut raced = false;
            let mut shared = shared_parents();
            for d in missing.into_iter().rev() {
                match fs::create_dir(&d) {
                    Ok(()) if d == dir => self.created.push(d),
                    Ok(()) => {
                        shared.insert(d);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        raced = true;
                        break;
                    }
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("mkdir {}: {e}", d.display()),
                        ));
                    }
                }
            }
            if !raced && dir.is_dir() {
                return Ok(());
            }
        }
        Err(io::Error::other(format!(
            "mkdir {}: parent kept vanishing",
            dir.display()
        )))
    }

    /// Removes everything made here, leaf first (also run by drop).
    ///
    /// Parents made on the way (`kubepods`, a pod) are shared by every `CgroupDirs` of this process:
    /// each removal also removes those that have become empty, deepest first.
    pub fn remove_all(&mut self) {
        while let Some(dir) = self.created.pop() {
            remove_cgroup(&dir);
        }
        let mut shared = shared_parents();
        let mut parents: Vec<PathBuf> = shared.iter().cloned().collect();
        parents.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in parents {
            remove_cgroup(&dir);
            if !dir.exists() {
                shared.remove(&dir);
            }
        }
    }
}

/// Parent directories made by any [`CgroupDirs`] of this process; the lock also orders creation
/// against removal, so one test never removes a parent another is about to use.
fn shared_parents() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    static SHARED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Kills every process in the cgroup `dir`, then removes it.
///
/// Never recurses: a directory that still has child cgroups (a parallel test's pod under a shared
/// `kubepods`) is left alone, and nothing in it is killed.
pub fn remove_cgroup(dir: &Path) {
    if !dir.is_dir() || has_subdirs(dir) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            // Someone made a child cgroup meanwhile: not ours to remove.
            Err(_) if has_subdirs(dir) => return,
            Err(e) if Instant::now() >= deadline => {
                eprintln!("cannot remove cgroup {}: {e}", dir.display());
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn has_subdirs(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

/// The `oom_kill` counter of a v1 memory cgroup (`memory.oom_control`).
///
/// # Errors
/// Reading the file; `InvalidData` without an `oom_kill` line.
pub fn v1_oom_kill_count(dir: &Path) -> io::Result<u64> {
    let text = fs::read_to_string(dir.join("memory.oom_control"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no oom_kill line"))
}

/// A kubelet-shaped v1 pod with one container: `<root>/kubepods/<qos>/pod<uid>/<id>` (kubelet's
/// cgroupfs driver) or, from [`KubeletV1Pod::create_systemd`],
/// `<root>/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/cri-containerd-<id>.scope`.
#[derive(Debug)]
pub struct KubeletV1Pod {
    /// The pod UID (a fresh UUID, or the one given to [`KubeletV1Pod::create_for`]).
    pub pod_uid: String,
    /// The container ID (64 fresh hex digits).
    pub container_id: String,
    /// `<root>/kubepods/<qos>/pod<uid>`.
    pub pod_dir: PathBuf,
    /// `<pod_dir>/<id>`.
    pub container_dir: PathBuf,
    /// Named as the systemd cgroup driver names them.
    systemd: bool,
    dirs: CgroupDirs,
}

impl KubeletV1Pod {
    /// Creates the pod and container cgroups under `memory_root`; the container gets `limit_bytes`.
    ///
    /// `qos` is `burstable`, `besteffort`, or empty for a Guaranteed pod directly under `kubepods`.
    ///
    /// # Errors
    /// `mkdir` or limit write failures (everything made so far is removed again).
    pub fn create(memory_root: &Path, qos: &str, limit_bytes: u64) -> io::Result<Self> {
        Self::create_for(memory_root, qos, &unique_pod_uid(), limit_bytes)
    }

    /// Like [`KubeletV1Pod::create`] for a given pod UID: the one a real API server gave the pod.
    ///
    /// # Errors
    /// `mkdir` or limit write failures (everything made so far is removed again).
    pub fn create_for(
        memory_root: &Path,
        qos: &str,
        pod_uid: &str,
        limit_bytes: u64,
    ) -> io::Result<Self> {
        let pod_uid = pod_uid.to_owned();
        let mut kubepods = memory_root.join("kubepods");
        if !qos.is_empty() {
            kubepods = kubepods.join(qos);
        }
        let pod_dir = kubepods.join(format!("pod{pod_uid}"));
        Self::create_at(pod_uid, pod_dir, false, limit_bytes)
    }

    /// As [`create`](Self::create), named as kubelet's systemd cgroup driver (with containerd)
    /// names them; `qos` empty puts a Guaranteed pod directly under `kubepods.slice`.
    ///
    /// # Errors
    /// As for [`create`](Self::create).
    pub fn create_systemd(memory_root: &Path, qos: &str, limit_bytes: u64) -> io::Result<Self> {
        let pod_uid = unique_pod_uid();
        let uid_ = pod_uid.replace('-', "_");
        let kubepods = memory_root.join("kubepods.slice");
        let pod_dir = if qos.is_empty() {
            kubepods.join(format!("kubepods-pod{uid_}.slice"))
        } else {
            kubepods
                .join(format!("kubepods-{qos}.slice"))
                .join(format!("kubepods-{qos}-pod{uid_}.slice"))
        };
        Self::create_at(pod_uid, pod_dir, true, limit_bytes)
    }

    fn container_dir_name(systemd: bool, id: &str) -> String {
        if systemd {
            format!("cri-containerd-{id}.scope")
        } else {
            id.to_owned()
        }
    }

    fn create_at(
        pod_uid: String,
        pod_dir: PathBuf,
        systemd: bool,
        limit_bytes: u64,
    ) -> io::Result<Self> {
        let container_id = unique_container_id();
        let container_dir = pod_dir.join(Self::container_dir_name(systemd, &container_id));
        let mut dirs = CgroupDirs::new();
        dirs.create_all(&container_dir)?;
        let limit = container_dir.join("memory.limit_in_bytes");
        fs::write(&limit, limit_bytes.to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", limit.display())))?;
        Ok(KubeletV1Pod {
            pod_uid,
            container_id,
            pod_dir,
            container_dir,
            systemd,
            dirs,
        })
    }

    /// Adds another container cgroup without a limit (e.g. a sidecar's); returns its ID and
    /// directory. It is removed with the pod.
    ///
    /// # Errors
    /// The `mkdir` error.
    pub fn add_container(&mut self) -> io::Result<(String, PathBuf)> {
        let id = unique_container_id();
        let dir = self
            .pod_dir
            .join(Self::container_dir_name(self.systemd, &id));
        self.dirs.create_all(&dir)?;
        Ok((id, dir))
    }

    /// The container's `cgroup.procs`, for [`crate::Hog::spawn_in`].
    #[must_use]
    pub fn procs(&self) -> PathBuf {
        self.container_dir.join("cgroup.procs")
    }

    /// Removes the cgroups now (drop does the same).
    pub fn remove(&mut self) {
        self.dirs.remove_all();
    }
}

/// Timestamps the first increase of a v1 cgroup's `oom_kill` counter, polling every millisecond.
#[derive(Debug)]
pub struct OomKillClock {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Option<SystemTime>>>,
}

impl OomKillClock {
    /// Starts watching `dir/memory.oom_control` from its current value.
    ///
    /// # Errors
    /// Reading the counter.
    pub fn start(dir: &Path) -> io::Result<Self> {
        let base = v1_oom_kill_count(dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let dir = dir.to_owned();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match v1_oom_kill_count(&dir) {
                    Ok(n) if n > base => return Some(SystemTime::now()),
                    Ok(_) => {}
                    Err(_) => return None,
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        });
        Ok(OomKillClock {
            stop,
            thread: Some(thread),
        })
    }

    /// Waits up to `timeout` for the kill; its wall-clock time (±1 ms), or `None`.
    #[must_use]
    pub fn wait(mut self, timeout: Duration) -> Option<SystemTime> {
        let deadline = Instant::now() + timeout;
        let thread = self.thread.take()?;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.stop.store(true, Ordering::Relaxed);
        thread.join().ok().flatten()
    }
}

impl Drop for OomKillClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hog::{Hog, HogExit, HogSpec};

    #[test]
    fn ids_look_like_kubelets() {
        let uid = unique_pod_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(uid.as_bytes()[14], b'4');
        assert_ne!(uid, unique_pod_uid());
        let id = unique_container_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn removal_spares_other_tests_cgroups_under_shared_parents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mine = dir.path().join("kubepods/burstable/pod1/ctr");
        let theirs = dir.path().join("kubepods/burstable/pod2/ctr");
        let mut a = CgroupDirs::new();
        a.create_all(&mine).expect("mkdir");
        let mut b = CgroupDirs::new();
        b.create_all(&theirs).expect("mkdir");
        a.remove_all();
        assert!(!mine.exists() && !dir.path().join("kubepods/burstable/pod1").exists());
        assert!(theirs.is_dir(), "the other test's cgroup survives");
        b.remove_all();
        assert!(
            !dir.path().join("kubepods").exists(),
            "last one out removes the shared parents"
        );
    }

    #[test]
    fn kubelet_pod_is_removed_and_hog_is_oom_killed() {
        let Some(root) = require_v1_memcg("kubelet_pod_is_removed_and_hog_is_oom_killed") else {
            return;
        };
        let mut pod = KubeletV1Pod::create(&root, "burstable", 32 << 20).expect("create");
        assert!(pod.container_dir.is_dir());
        let clock = OomKillClock::start(&pod.container_dir).expect("clock");
        let spec = HogSpec {
            step_bytes: 8 << 20,
            interval: Duration::from_millis(10),
            max_bytes: None,
        };
        let mut hog = Hog::spawn_in(&pod.procs(), spec).expect("hog");
        let procs = fs::read_to_string(pod.procs()).expect("procs");
        assert!(
            procs.lines().any(|l| l.trim() == hog.pid().to_string()),
            "{procs}"
        );
        let exit = hog.wait_timeout(Duration::from_secs(20)).expect("wait");
        assert_eq!(exit, Some(HogExit::Signaled(libc::SIGKILL)));
        assert!(
            clock.wait(Duration::from_secs(5)).is_some(),
            "oom_kill moved"
        );
        assert_eq!(v1_oom_kill_count(&pod.container_dir).expect("count"), 1);
        let pod_dir = pod.pod_dir.clone();
        pod.remove();
        assert!(!pod_dir.exists());
    }
}
