//! The ring-buffer record of `bpf/oom_tracer.bpf.c`, mirrored from `bpf/oom_tracer.h`.

/// Length of a task's `comm`.
pub const COMM_LEN: usize = 16;
/// Cgroup path components the program keeps per hierarchy, leaf first.
pub const CG_DEPTH: usize = 8;
/// Bytes kept per path component.
pub const CG_NAME_LEN: usize = 128;

/// The program saw the victim's `task_struct` (cgroup paths and RSS valid).
pub const F_TASK: u32 = 0x1;
/// An OOM-killer SIGKILL preceded the mark: a real kill.
pub const F_KILLED: u32 = 0x2;
/// Attached as `tp_btf` rather than the plain tracepoint.
pub const F_TP_BTF: u32 = 0x4;
/// `rss_*` are in kB (plain tracepoint on >= 6.8) rather than pages.
pub const F_RSS_KB: u32 = 0x8;
/// The `rss_*` fields are set.
pub const F_RSS: u32 = 0x10;

/// `struct oom_cg_path`: one cgroup, as kernfs names from the leaf up.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawCgPath {
    /// kernfs id, the cgroup directory's inode number.
    pub id: u64,
    /// Components filled in `names`, leaf first.
    pub depth: u32,
    /// 1 when the walk stopped before reaching the root.
    pub truncated: u32,
    /// NUL-terminated kernfs names, leaf first.
    pub names: [[u8; CG_NAME_LEN]; CG_DEPTH],
}

/// `struct oom_event`: one mark of an OOM victim.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawOomEvent {
    /// `bpf_ktime_get_boot_ns()` at the mark.
    pub ts_boot_ns: u64,
    /// Victim thread id.
    pub pid: u32,
    /// Victim process id.
    pub tgid: u32,
    /// Victim's real uid.
    pub uid: u32,
    /// Victim's `oom_score_adj`.
    pub oom_score_adj: i32,
    /// Task that ran the OOM killer.
    pub trigger_pid: u32,
    /// Process of the task that ran the OOM killer.
    pub trigger_tgid: u32,
    /// `F_*` bits.
    pub flags: u32,
    /// Explicit padding.
    pub pad: u32,
    /// Anonymous RSS (pages, or kB with `F_RSS_KB`).
    pub rss_anon: u64,
    /// File RSS.
    pub rss_file: u64,
    /// Shared-memory RSS.
    pub rss_shmem: u64,
    /// Victim comm.
    pub comm: [u8; COMM_LEN],
    /// Trigger comm.
    pub trigger_comm: [u8; COMM_LEN],
    /// The memory controller's cgroup (v1 memory hierarchy, or v2).
    pub memcg: RawCgPath,
    /// The default (v2) hierarchy's cgroup.
    pub dfl: RawCgPath,
}

impl std::fmt::Debug for RawOomEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawOomEvent")
            .field("pid", &self.pid)
            .field("tgid", &self.tgid)
            .field("comm", &c_str(&self.comm))
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("memcg", &self.memcg.path())
            .field("dfl", &self.dfl.path())
            .field("trigger_pid", &self.trigger_pid)
            .finish_non_exhaustive()
    }
}

impl RawOomEvent {
    /// Copies a record out of ring-buffer bytes; `None` when too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: the length is checked, the type is plain old data (integers and byte arrays,
        // every bit pattern valid) and read_unaligned copes with any alignment.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

/// The bytes of a NUL-terminated C string, lossily as UTF-8.
pub(crate) fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl RawCgPath {
    /// The cgroup path from its hierarchy's root (`/a/b`), `None` when never filled.
    pub(crate) fn path(&self) -> Option<String> {
        if self.id == 0 {
            return None;
        }
        let depth = (self.depth as usize).min(CG_DEPTH);
        if depth == 0 {
            return Some("/".to_owned());
        }
        let mut path = String::new();
        if self.truncated != 0 {
            path.push_str("/...");
        }
        for name in self.names[..depth].iter().rev() {
            path.push('/');
            path.push_str(&c_str(name));
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(names: &[&str], id: u64) -> RawCgPath {
        let mut p = RawCgPath {
            id,
            depth: names.len() as u32,
            truncated: 0,
            names: [[0; CG_NAME_LEN]; CG_DEPTH],
        };
        for (i, n) in names.iter().enumerate() {
            p.names[i][..n.len()].copy_from_slice(n.as_bytes());
        }
        p
    }

    #[test]
    fn path_joins_leaf_first_components_from_the_root() {
        assert_eq!(
            cg(&["c", "pod1", "burstable", "kubepods"], 7)
                .path()
                .as_deref(),
            Some("/kubepods/burstable/pod1/c")
        );
        assert_eq!(cg(&[], 1).path().as_deref(), Some("/"));
        assert_eq!(cg(&[], 0).path(), None);
        let mut t = cg(&["b", "a"], 3);
        t.truncated = 1;
        assert_eq!(t.path().as_deref(), Some("/.../a/b"));
    }

    #[test]
    fn from_bytes_rejects_short_records() {
        assert!(RawOomEvent::from_bytes(&[0u8; 16]).is_none());
        let buf = vec![0u8; size_of::<RawOomEvent>()];
        assert_eq!(RawOomEvent::from_bytes(&buf).map(|e| e.pid), Some(0));
    }
}
