//! Which cgroup layout a root holds and where its memory hierarchy is.

use std::path::{Path, PathBuf};

use crate::error::CgroupError;

/// The cgroup version the memory controller runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CgroupVersion {
    /// The legacy memory controller (`memory.usage_in_bytes`, `memory.oom_control`).
    V1,
    /// The unified hierarchy (`memory.current`, `memory.events`, `memory.pressure`).
    V2,
}

/// How the hierarchies under a root are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LayoutKind {
    /// cgroup v2 only: the root holds `cgroup.controllers`.
    Unified,
    /// cgroup v1 only: one directory per controller (`memory/`), or the root is a v1 memory mount.
    Legacy,
    /// v1 controllers plus a v2 mount at `unified/` (systemd's hybrid mode, as on this project's CI).
    Hybrid,
}

/// The detected layout under a root such as `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLayout {
    root: PathBuf,
    kind: LayoutKind,
    version: CgroupVersion,
    memory_root: PathBuf,
}

impl CgroupLayout {
    /// Detects the layout under `root` by the files the kernel puts there.
    ///
    /// - `root/cgroup.controllers` → v2 unified, memory root = `root`;
    /// - `root/memory/memory.usage_in_bytes` → v1 (hybrid when `root/unified/cgroup.controllers` exists),
    ///   memory root = `root/memory`;
    /// - `root/memory.usage_in_bytes` → `root` is itself a v1 memory cgroup (a mount or any cgroup in it);
    /// - `root/unified/cgroup.controllers` listing `memory` → hybrid with memory on v2.
    ///
    /// # Errors
    /// [`CgroupError::NoMemoryHierarchy`] when none of these is found.
    pub fn detect(root: &Path) -> Result<Self, CgroupError> {
        let layout = |kind, version, memory_root: PathBuf| CgroupLayout {
            root: root.to_owned(),
            kind,
            version,
            memory_root,
        };
        if root.join("cgroup.controllers").is_file() {
            return Ok(layout(
                LayoutKind::Unified,
                CgroupVersion::V2,
                root.to_owned(),
            ));
        }
        let hybrid = root.join("unified/cgroup.controllers").is_file();
        if root.join("memory/memory.usage_in_bytes").is_file() {
            let kind = if hybrid {
                LayoutKind::Hybrid
            } else {
                LayoutKind::Legacy
            };
            return Ok(layout(kind, CgroupVersion::V1, root.join("memory")));
        }
        if root.join("memory.usage_in_bytes").is_file() {
            return Ok(layout(
                LayoutKind::Legacy,
                CgroupVersion::V1,
                root.to_owned(),
            ));
        }
        if hybrid
            && std::fs::read_to_string(root.join("unified/cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
        {
            return Ok(layout(
                LayoutKind::Hybrid,
                CgroupVersion::V2,
                root.join("unified"),
            ));
        }
        Err(CgroupError::NoMemoryHierarchy {
            root: root.to_owned(),
        })
    }

    /// The root this layout was detected under.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How the hierarchies are mounted.
    #[must_use]
    pub fn kind(&self) -> LayoutKind {
        self.kind
    }

    /// The cgroup version of the memory controller.
    #[must_use]
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory of the memory hierarchy's root cgroup; cgroup paths are relative to it.
    #[must_use]
    pub fn memory_root(&self) -> &Path {
        &self.memory_root
    }

    /// The directory of the memory cgroup at `cgroup_path` (`/kubepods/...`, as in `/proc/<pid>/cgroup`).
    #[must_use]
    pub fn memory_dir(&self, cgroup_path: &str) -> PathBuf {
        self.memory_root.join(cgroup_path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(dir: &Path, rel: &str, contents: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, contents).expect("write");
    }

    #[test]
    fn unified() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(
            dir.path(),
            "cgroup.controllers",
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        );
        let layout = CgroupLayout::detect(dir.path()).expect("detect");
        assert_eq!(layout.kind(), LayoutKind::Unified);
        assert_eq!(layout.version(), CgroupVersion::V2);
        assert_eq!(layout.memory_root(), dir.path());
        assert_eq!(
            layout.memory_dir("/kubepods.slice/x.scope"),
            dir.path().join("kubepods.slice/x.scope")
        );
    }

    #[test]
    fn legacy_and_hybrid() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(dir.path(), "memory/memory.usage_in_bytes", "0\n");
        let layout = CgroupLayout::detect(dir.path()).expect("detect");
        assert_eq!(layout.kind(), LayoutKind::Legacy);
        assert_eq!(layout.version(), CgroupVersion::V1);
        assert_eq!(layout.memory_root(), dir.path().join("memory"));

        touch(dir.path(), "unified/cgroup.controllers", "\n");
        let layout = CgroupLayout::detect(dir.path()).expect("detect");
        assert_eq!(layout.kind(), LayoutKind::Hybrid);
        assert_eq!(layout.version(), CgroupVersion::V1);

        let sub = CgroupLayout::detect(&dir.path().join("memory")).expect("detect");
        assert_eq!(sub.kind(), LayoutKind::Legacy);
        assert_eq!(sub.memory_root(), dir.path().join("memory"));
    }

    #[test]
    fn hybrid_with_memory_on_v2() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(
            dir.path(),
            "unified/cgroup.controllers",
            "cpu io memory pids\n",
        );
        let layout = CgroupLayout::detect(dir.path()).expect("detect");
        assert_eq!(layout.kind(), LayoutKind::Hybrid);
        assert_eq!(layout.version(), CgroupVersion::V2);
        assert_eq!(layout.memory_root(), dir.path().join("unified"));
    }

    #[test]
    fn nothing_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        touch(dir.path(), "unified/cgroup.controllers", "cpu io pids\n");
        let err = CgroupLayout::detect(dir.path()).expect_err("no memory");
        assert!(matches!(err, CgroupError::NoMemoryHierarchy { .. }));
        assert_eq!(err.path(), dir.path());
    }

    #[test]
    fn this_machine_if_present() {
        let root = Path::new("/sys/fs/cgroup");
        match CgroupLayout::detect(root) {
            Ok(layout) => assert!(layout.memory_root().starts_with(root)),
            Err(e) => eprintln!("skipping: no cgroup memory hierarchy here: {e}"),
        }
    }
}
