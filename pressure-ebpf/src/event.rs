//! The typed OOM-kill event and how it is built from BPF and kernel-log records.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::kmsg::{KilledProcess, OomSummary};
use crate::raw::{self, RawOomEvent};
use crate::report::{Explanation, OomReport, VictimFacts};

/// What kind of OOM killed the victim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KillKind {
    /// The whole machine ran out of memory (`CONSTRAINT_NONE`).
    Global,
    /// A memory cgroup hit its limit (`CONSTRAINT_MEMCG`); see [`OomKill::oom_memcg`].
    Memcg,
    /// A cpuset or memory policy ran out of memory (`CONSTRAINT_CPUSET`, `CONSTRAINT_MEMORY_POLICY`).
    CpusetMempolicy,
    /// No kernel-log record told the kind.
    Unknown,
}

impl KillKind {
    /// The label value: `global`, `memcg`, `cpuset_mempolicy`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Memcg => "memcg",
            Self::CpusetMempolicy => "cpuset_mempolicy",
            Self::Unknown => "unknown",
        }
    }

    fn from_constraint(constraint: &str) -> Self {
        match constraint {
            "CONSTRAINT_NONE" => Self::Global,
            "CONSTRAINT_MEMCG" => Self::Memcg,
            "CONSTRAINT_CPUSET" | "CONSTRAINT_MEMORY_POLICY" => Self::CpusetMempolicy,
            _ => Self::Unknown,
        }
    }
}

/// Where the event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventSource {
    /// The BPF program at `oom/mark_victim` (enriched from the kernel log when it had a record).
    Bpf,
    /// The kernel log alone.
    Kmsg,
    /// A test's fake source.
    Fake,
}

impl EventSource {
    /// The label value: `bpf`, `kmsg`, `fake`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bpf => "bpf",
            Self::Kmsg => "kmsg",
            Self::Fake => "fake",
        }
    }
}

/// One OOM kill, classified and mapped to its pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OomKill {
    /// Victim thread id (host pid namespace).
    pub pid: u32,
    /// Victim process id.
    pub tgid: u32,
    /// Victim command name.
    pub comm: String,
    /// Victim uid.
    pub uid: Option<u32>,
    /// Victim `oom_score_adj`.
    pub oom_score_adj: Option<i32>,
    /// Kind of OOM.
    pub kind: KillKind,
    /// The kernel's constraint (`CONSTRAINT_MEMCG`…), when its summary record was printed.
    pub constraint: Option<String>,
    /// The cgroup whose limit was hit (memcg OOMs), as the kernel printed it.
    pub oom_memcg: Option<String>,
    /// The victim's memory cgroup path (v1 memory hierarchy or v2).
    pub task_memcg: Option<String>,
    /// kernfs id of the victim's memory cgroup, equal to its directory's inode number.
    pub cgroup_id: Option<u64>,
    /// The victim's cgroup on the default (v2) hierarchy, from BPF.
    pub dfl_cgroup_path: Option<String>,
    /// kernfs id of [`Self::dfl_cgroup_path`].
    pub dfl_cgroup_id: Option<u64>,
    /// Pod UID (dashes), when the cgroup path is kubelet's.
    pub pod_uid: Option<String>,
    /// Container ID, when the cgroup is a container's.
    pub container_id: Option<String>,
    /// Container runtime named by the cgroup (`containerd`, `cri-o`, `docker`).
    pub runtime: Option<String>,
    /// Pod QoS class from the cgroup path, spelled like `status.qosClass` (`Burstable`…).
    pub qos: Option<String>,
    /// Anonymous RSS at the kill, kB.
    pub rss_anon_kb: Option<u64>,
    /// File RSS at the kill, kB.
    pub rss_file_kb: Option<u64>,
    /// Shared-memory RSS at the kill, kB.
    pub rss_shmem_kb: Option<u64>,
    /// Task that ran the OOM killer (BPF only).
    pub trigger_pid: Option<u32>,
    /// Its command name.
    pub trigger_comm: Option<String>,
    /// Where the event came from.
    pub source: EventSource,
    /// Why it happened: the victim's RSS, the memcg's usage and limit, the largest tasks, one
    /// sentence. Built by the tracer for every kill (fakes have none).
    pub explanation: Option<Explanation>,
    /// Kernel time of the kill, as wall-clock RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: SystemTime,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

impl OomKill {
    /// A kill with only the victim known, for tests and fakes; fill the rest with the setters.
    pub fn new(pid: u32, comm: impl Into<String>, kind: KillKind) -> Self {
        Self {
            pid,
            tgid: pid,
            comm: comm.into(),
            uid: None,
            oom_score_adj: None,
            kind,
            constraint: None,
            oom_memcg: None,
            task_memcg: None,
            cgroup_id: None,
            dfl_cgroup_path: None,
            dfl_cgroup_id: None,
            pod_uid: None,
            container_id: None,
            runtime: None,
            qos: None,
            rss_anon_kb: None,
            rss_file_kb: None,
            rss_shmem_kb: None,
            trigger_pid: None,
            trigger_comm: None,
            source: EventSource::Fake,
            explanation: None,
            timestamp: SystemTime::now(),
        }
    }

    /// Sets the victim's memory cgroup and the pod, container and QoS parsed from it.
    pub fn with_task_memcg(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.set_pod_from(&path);
        self.task_memcg = Some(path);
        self
    }

    /// Sets the cgroup whose limit was hit.
    pub fn with_oom_memcg(mut self, path: impl Into<String>) -> Self {
        self.oom_memcg = Some(path.into());
        self
    }

    fn set_pod_from(&mut self, path: &str) {
        if let Some(pc) = pressure_cgroup::parse_cgroup_path(path) {
            self.pod_uid = Some(pc.pod_uid);
            self.container_id = pc.container_id;
            self.runtime = pc.runtime;
            self.qos = Some(pc.qos.as_str().to_owned());
        }
    }
}

/// Where the tracer reads host state to enrich kernel-log-only events; replaceable in tests.
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// procfs mount (`/proc`): `<pid>/cgroup` of a victim the summary record did not name.
    pub proc_root: PathBuf,
    /// cgroup v1 memory hierarchy mount (`/sys/fs/cgroup/memory`), if any.
    pub memcg_v1_root: Option<PathBuf>,
    /// cgroup v2 mount (`/sys/fs/cgroup`).
    pub unified_root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        let v1 = PathBuf::from("/sys/fs/cgroup/memory");
        Self {
            proc_root: PathBuf::from("/proc"),
            memcg_v1_root: v1.join("memory.limit_in_bytes").exists().then_some(v1),
            unified_root: PathBuf::from("/sys/fs/cgroup"),
        }
    }
}

impl HostPaths {
    /// The victim's memory cgroup from `/proc/<pid>/cgroup` (v1 memory line, else the v2 line).
    ///
    /// Only while the task is not exiting: once it has left its cgroups (`cgroup_exit`) the file
    /// reads `/`, which would be a wrong answer rather than none.
    fn proc_memcg(&self, pid: u32) -> Option<String> {
        let dir = self.proc_root.join(pid.to_string());
        let text = std::fs::read_to_string(dir.join("cgroup")).ok()?;
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        if task_exiting(&stat) {
            return None;
        }
        let entries = pressure_cgroup::parse_proc_cgroup(&text);
        pressure_cgroup::memory_cgroup_entry(&entries).map(|e| e.path.clone())
    }

    /// A memory cgroup's limit in kB from its files (v1 `memory.limit_in_bytes`, else v2
    /// `memory.max`); `None` when unlimited or unreadable (the cgroup may be gone already).
    fn memcg_limit_kb(&self, memcg: &str) -> Option<u64> {
        let rel = memcg.trim_start_matches('/');
        let text = match &self.memcg_v1_root {
            Some(v1) => std::fs::read_to_string(v1.join(rel).join("memory.limit_in_bytes")),
            None => std::fs::read_to_string(self.unified_root.join(rel).join("memory.max")),
        }
        .ok()?;
        // v1 prints "no limit" as PAGE_COUNTER_MAX pages in bytes (about 2^63), v2 as `max`.
        let bytes: u64 = text.trim().parse().ok().filter(|&b| b < 1 << 60)?;
        Some(bytes / 1024)
    }

    /// Inode of a memory cgroup's directory: its kernfs id.
    fn cgroup_inode(&self, memcg: &str) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let rel = memcg.trim_start_matches('/');
        let root: &Path = self.memcg_v1_root.as_deref().unwrap_or(&self.unified_root);
        std::fs::metadata(root.join(rel)).ok().map(|m| m.ino())
    }
}

/// `PF_EXITING` of `include/linux/sched.h`.
const PF_EXITING: u64 = 0x4;

/// Whether `/proc/<pid>/stat` shows a dead or exiting task (state `Z`/`X`, or `PF_EXITING`).
fn task_exiting(stat: &str) -> bool {
    // Fields after the comm (which may hold spaces and parentheses): state is the 1st, flags the 7th.
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return true;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("X");
    let flags: u64 = fields
        .nth(5)
        .and_then(|f| f.parse().ok())
        .unwrap_or(PF_EXITING);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// The records the correlator matched for one victim.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matched {
    pub(crate) bpf: Option<RawOomEvent>,
    pub(crate) summary: Option<OomSummary>,
    /// The OOM report printed before the summary.
    pub(crate) report: Option<OomReport>,
    pub(crate) killed: Option<KilledProcess>,
    /// `usec` of the kernel-log record.
    pub(crate) kmsg_usec: Option<u64>,
}

/// Kernel clocks at one instant, to turn boot-relative kernel times into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClockPair {
    pub(crate) wall: SystemTime,
    pub(crate) boot: Duration,
}

impl ClockPair {
    pub(crate) fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
        let boot = Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        );
        Self {
            wall: SystemTime::now(),
            boot,
        }
    }

    fn wall_of(&self, since_boot: Duration) -> SystemTime {
        match self.boot.checked_sub(since_boot) {
            Some(ago) => self.wall - ago,
            None => self.wall,
        }
    }
}

/// Builds the event; reads `/proc` and cgroupfs only for kernel-log-only records.
pub(crate) fn build_kill(
    m: Matched,
    host: &HostPaths,
    clock: ClockPair,
    page_kb: u64,
) -> Option<OomKill> {
    let pid = m
        .bpf
        .as_ref()
        .map(|b| b.pid)
        .or(m.killed.as_ref().map(|k| k.pid))
        .or(m.summary.as_ref().map(|s| s.pid))?;
    let comm = m
        .bpf
        .as_ref()
        .map(|b| raw::c_str(&b.comm))
        .filter(|c| !c.is_empty())
        .or_else(|| m.killed.as_ref().map(|k| k.comm.clone()))
        .or_else(|| m.summary.as_ref().map(|s| s.task.clone()))
        .unwrap_or_default();
    let kind = match (&m.summary, &m.killed) {
        (Some(s), _) => KillKind::from_constraint(&s.constraint),
        (None, Some(k)) if k.is_memcg() => KillKind::Memcg,
        // Without the (rate-limited) summary the kernel's reason cannot tell a cpuset or
        // mempolicy OOM from a global one; global is by far the common case.
        (None, Some(_)) => KillKind::Global,
        (None, None) => KillKind::Unknown,
    };
    let mut kill = OomKill::new(pid, comm, kind);
    kill.source = if m.bpf.is_some() {
        EventSource::Bpf
    } else {
        EventSource::Kmsg
    };
    if let Some(s) = &m.summary {
        kill.constraint = Some(s.constraint.clone());
        kill.oom_memcg = s.oom_memcg.clone();
        kill.task_memcg = Some(s.task_memcg.clone());
        kill.uid = Some(s.uid);
    }
    if let Some(k) = &m.killed {
        kill.uid = Some(k.uid);
        kill.oom_score_adj = Some(k.oom_score_adj);
        kill.rss_anon_kb = Some(k.anon_rss_kb);
        kill.rss_file_kb = Some(k.file_rss_kb);
        kill.rss_shmem_kb = Some(k.shmem_rss_kb);
    }
    if let Some(usec) = m.kmsg_usec {
        kill.timestamp = clock.wall_of(Duration::from_micros(usec));
    }
    if let Some(b) = &m.bpf {
        apply_bpf(&mut kill, b, page_kb, clock);
    }
    if kill.task_memcg.is_none() {
        kill.task_memcg = host.proc_memcg(pid);
    }
    if kill.cgroup_id.is_none() {
        kill.cgroup_id = kill
            .task_memcg
            .as_deref()
            .and_then(|p| host.cgroup_inode(p));
    }
    if let Some(path) = kill
        .task_memcg
        .clone()
        .or_else(|| kill.dfl_cgroup_path.clone())
    {
        kill.set_pod_from(&path);
    }
    // Without the kernel's (rate-limited) report, the limit from the cgroup's own file.
    let limit_kb = match (&m.report, kill.kind) {
        (Some(r), _) if r.limit_kb.is_some() => None,
        (_, KillKind::Memcg) => kill
            .oom_memcg
            .as_deref()
            .or(kill.task_memcg.as_deref())
            .and_then(|p| host.memcg_limit_kb(p)),
        _ => None,
    };
    kill.explanation = Some(Explanation::new(
        VictimFacts {
            pid: kill.pid,
            comm: &kill.comm,
            global: kill.kind == KillKind::Global,
            anon_kb: kill.rss_anon_kb,
            file_kb: kill.rss_file_kb,
            shmem_kb: kill.rss_shmem_kb,
            oom_memcg: kill.oom_memcg.as_deref(),
            task_memcg: kill.task_memcg.as_deref(),
            limit_kb,
        },
        m.report.as_ref(),
    ));
    Some(kill)
}

fn apply_bpf(kill: &mut OomKill, b: &RawOomEvent, page_kb: u64, clock: ClockPair) {
    kill.timestamp = clock.wall_of(Duration::from_nanos(b.ts_boot_ns));
    kill.trigger_pid = Some(b.trigger_pid);
    kill.trigger_comm = Some(raw::c_str(&b.trigger_comm));
    if b.flags & (raw::F_TASK | raw::F_RSS_KB) != 0 {
        kill.uid = Some(b.uid);
        kill.oom_score_adj = Some(b.oom_score_adj);
    }
    if b.flags & raw::F_TASK != 0 {
        kill.tgid = b.tgid;
        if let Some(path) = b.memcg.path() {
            kill.task_memcg = Some(path);
            kill.cgroup_id = Some(b.memcg.id);
        }
        kill.dfl_cgroup_path = b.dfl.path();
        kill.dfl_cgroup_id = (b.dfl.id != 0).then_some(b.dfl.id);
    }
    if b.flags & raw::F_RSS != 0 {
        let unit = if b.flags & raw::F_RSS_KB != 0 {
            1
        } else {
            page_kb
        };
        kill.rss_anon_kb = Some(b.rss_anon * unit);
        kill.rss_file_kb = Some(b.rss_file * unit);
        kill.rss_shmem_kb = Some(b.rss_shmem * unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exiting_and_dead_tasks_are_recognised() {
        // /proc/<pid>/stat heads: a sleeping task (flags 0x400100), an exiting one, a zombie.
        let live = "1234 (sh (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0";
        assert!(!task_exiting(live));
        let exiting = "1234 (tail) R 1 1234 1234 0 -1 4194564 100 0 0 0 0 0 0 0 20 0 1 0";
        assert!(task_exiting(exiting));
        let zombie = "1234 (tail) Z 1 1234 1234 0 -1 4227332 100 0 0 0 0 0 0 0 20 0 1 0";
        assert!(task_exiting(zombie));
        assert!(task_exiting("garbage"));
    }

    #[test]
    fn proc_cgroup_of_an_exiting_task_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("42");
        std::fs::create_dir(&pid).unwrap();
        let cgroup = "4:memory:/kubepods/burstable/podx/abc\n1:name=systemd:/\n";
        std::fs::write(pid.join("cgroup"), cgroup).unwrap();
        let host = HostPaths {
            proc_root: dir.path().to_owned(),
            memcg_v1_root: None,
            unified_root: dir.path().to_owned(),
        };
        std::fs::write(pid.join("stat"), "42 (tail) R 1 42 42 0 -1 4194560 1 0 0 0").unwrap();
        assert_eq!(
            host.proc_memcg(42).as_deref(),
            Some("/kubepods/burstable/podx/abc")
        );
        std::fs::write(pid.join("stat"), "42 (tail) Z 1 42 42 0 -1 4194564 1 0 0 0").unwrap();
        assert_eq!(host.proc_memcg(42), None);
    }

    #[test]
    fn limit_of_a_memcg_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("kubepods/podx");
        std::fs::create_dir_all(&cg).unwrap();
        let mut host = HostPaths {
            proc_root: dir.path().to_owned(),
            memcg_v1_root: Some(dir.path().to_owned()),
            unified_root: dir.path().to_owned(),
        };
        std::fs::write(cg.join("memory.limit_in_bytes"), "33554432\n").unwrap();
        assert_eq!(host.memcg_limit_kb("/kubepods/podx"), Some(32768));
        std::fs::write(cg.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(host.memcg_limit_kb("/kubepods/podx"), None);
        host.memcg_v1_root = None;
        std::fs::write(cg.join("memory.max"), "max\n").unwrap();
        assert_eq!(host.memcg_limit_kb("/kubepods/podx"), None);
        std::fs::write(cg.join("memory.max"), "1048576\n").unwrap();
        assert_eq!(host.memcg_limit_kb("/kubepods/podx"), Some(1024));
        assert_eq!(host.memcg_limit_kb("/gone"), None);
    }
}
