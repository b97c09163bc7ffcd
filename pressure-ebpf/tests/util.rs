//! Root / cgroup v1 helpers for the system tests: kubelet-shaped cgroups and memory hogs.
//!
//! Kept apart from `pressure_testkit::KubeletV1Pod` and `Hog` for now: these tests need a limit on the
//! pod cgroup, a hog whose `comm` is `tail`, and a victim left a zombie until the test reaps it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// Root with the cgroup v1 memory hierarchy mounted; skipped with the reason otherwise, failed under
/// CI.
pub(crate) fn have_root_v1(test: &str) -> bool {
    pressure_testkit::require(test, &pressure_testkit::Capability::V1Memcg).is_some()
}

/// `kubepods/burstable/pod<uid>/<container id>` in the v1 memory hierarchy; removed on drop.
pub(crate) struct KubeCgroup {
    pub(crate) pod_uid: String,
    pub(crate) container_id: String,
    pub(crate) pod_dir: PathBuf,
    pub(crate) container_dir: PathBuf,
    created_parents: Vec<PathBuf>,
}

impl KubeCgroup {
    /// Creates it; `pod_limit` / `container_limit` in bytes go to `memory.limit_in_bytes`.
    pub(crate) fn new(pod_limit: Option<u64>, container_limit: Option<u64>) -> Self {
        let root = Path::new(V1_MEMORY);
        let mut created_parents = Vec::new();
        for p in ["kubepods", "kubepods/burstable"] {
            let dir = root.join(p);
            if !dir.exists() && fs::create_dir(&dir).is_ok() {
                created_parents.push(dir);
            }
        }
        let pod_uid = pressure_testkit::unique_pod_uid();
        let container_id = pressure_testkit::unique_container_id();
        let pod_dir = root
            .join("kubepods/burstable")
            .join(format!("pod{pod_uid}"));
        let container_dir = pod_dir.join(&container_id);
        let cg = Self {
            pod_uid,
            container_id,
            pod_dir,
            container_dir,
            created_parents,
        };
        fs::create_dir(&cg.pod_dir).expect("create pod cgroup");
        fs::create_dir(&cg.container_dir).expect("create container cgroup");
        if let Some(l) = pod_limit {
            fs::write(cg.pod_dir.join("memory.limit_in_bytes"), l.to_string()).expect("pod limit");
        }
        if let Some(l) = container_limit {
            fs::write(
                cg.container_dir.join("memory.limit_in_bytes"),
                l.to_string(),
            )
            .expect("container limit");
        }
        cg
    }

    /// The container cgroup's path inside the hierarchy (`/kubepods/burstable/pod…/…`).
    pub(crate) fn container_path(&self) -> String {
        format!(
            "/kubepods/burstable/pod{}/{}",
            self.pod_uid, self.container_id
        )
    }

    /// The pod cgroup's path inside the hierarchy.
    pub(crate) fn pod_path(&self) -> String {
        format!("/kubepods/burstable/pod{}", self.pod_uid)
    }

    /// `oom_kill` of the container's `memory.oom_control`.
    pub(crate) fn oom_kills(&self) -> u64 {
        let text =
            fs::read_to_string(self.container_dir.join("memory.oom_control")).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Inode of the container cgroup directory.
    pub(crate) fn container_inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&self.container_dir)
            .map(|m| m.ino())
            .unwrap_or(0)
    }

    /// Starts `tail /dev/zero` (grows without bound) inside the container cgroup.
    pub(crate) fn spawn_hog(&self) -> Hog {
        let procs = self.container_dir.join("cgroup.procs");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {} && exec tail /dev/zero",
                procs.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hog");
        Hog { child: Some(child) }
    }
}

impl Drop for KubeCgroup {
    fn drop(&mut self) {
        for dir in [&self.container_dir, &self.pod_dir] {
            // Tasks (zombies aside) must be gone first; retry while the kernel finishes the exit.
            for _ in 0..50 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for dir in self.created_parents.iter().rev() {
            // Shared with other tests: only removed when empty, errors ignored.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// A memory hog child; killed and reaped on drop, left a zombie until then so its
/// `/proc/<pid>/cgroup` stays readable.
pub(crate) struct Hog {
    child: Option<Child>,
}

impl Hog {
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process has died (zombie, not reaped).
    pub(crate) fn is_dead(&self) -> bool {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        stat.rsplit_once(") ")
            .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X'))
    }

    /// Reaps the child; true when SIGKILL ended it.
    pub(crate) fn reap_killed(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.child
            .take()
            .and_then(|mut c| c.wait().ok())
            .is_some_and(|s| s.signal() == Some(libc::SIGKILL))
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until `f` holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}
