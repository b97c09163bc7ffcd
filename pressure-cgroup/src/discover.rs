//! Finds the pod and container cgroups of kubelet's hierarchy under a memory root.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::CgroupError;
use crate::kubepath::{PodContainer, parse_cgroup_path};

/// Whether a kubelet cgroup is a pod's or a container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CgroupRole {
    /// The pod cgroup (`pod<uid>`, `kubepods-…-pod<uid>.slice`); its limit covers all containers.
    Pod,
    /// A container cgroup below a pod cgroup.
    Container,
}

/// A pod or container cgroup found by a walk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubeCgroup {
    /// The path relative to the memory root, starting with `/` (as in `/proc/<pid>/cgroup`).
    pub path: String,
    /// Who the path names.
    pub identity: PodContainer,
    /// Pod or container.
    pub role: CgroupRole,
}

/// The top-level kubelet cgroups of the cgroupfs and systemd drivers.
const KUBEPODS_ROOTS: [&str; 2] = ["kubepods", "kubepods.slice"];

/// Walks `memory_root/kubepods` and `memory_root/kubepods.slice` for pod and container cgroups.
///
/// Only kubelet's hierarchy is visited, nothing else under the root. Directories that vanish during
/// the walk are skipped; CRI-O's `crio-conmon-*` scopes and other non-container children of a pod
/// are not listed.
///
/// # Errors
/// [`CgroupError::PermissionDenied`] or [`CgroupError::Io`] when a kubepods directory cannot be read.
pub fn discover_kubepods(memory_root: &Path) -> Result<Vec<KubeCgroup>, CgroupError> {
    let mut found = Vec::new();
    for top in KUBEPODS_ROOTS {
        walk(memory_root, &format!("/{top}"), 0, &mut found)?;
    }
    Ok(found)
}

/// Lists the pod cgroup at `pod_path` (relative to `memory_root`) and its container cgroups.
///
/// # Errors
/// [`CgroupError::Vanished`] when the pod cgroup is gone; other variants as for [`discover_kubepods`].
pub fn scan_pod(memory_root: &Path, pod_path: &str) -> Result<Vec<KubeCgroup>, CgroupError> {
    let identity = parse_cgroup_path(pod_path).ok_or_else(|| CgroupError::Parse {
        path: memory_root.join(pod_path.trim_start_matches('/')),
        what: "a kubelet pod cgroup path",
    })?;
    let mut found = vec![KubeCgroup {
        path: pod_path.to_owned(),
        identity,
        role: CgroupRole::Pod,
    }];
    let dir = memory_root.join(pod_path.trim_start_matches('/'));
    for name in subdirs(&dir)?.unwrap_or_default() {
        let path = format!("{pod_path}/{name}");
        if let Some(identity) = parse_cgroup_path(&path)
            && identity.container_id.is_some()
        {
            found.push(KubeCgroup {
                path,
                identity,
                role: CgroupRole::Container,
            });
        }
    }
    if !dir.is_dir() {
        return Err(CgroupError::Vanished { path: dir });
    }
    Ok(found)
}

/// Finds the pod cgroup of `pod_uid` (dashes or underscores) and lists it with its containers.
///
/// Returns an empty list when no such pod cgroup exists.
///
/// # Errors
/// As for [`discover_kubepods`].
pub fn find_pod(memory_root: &Path, pod_uid: &str) -> Result<Vec<KubeCgroup>, CgroupError> {
    let wanted = pod_uid.replace('_', "-");
    let all = discover_kubepods(memory_root)?;
    Ok(all
        .into_iter()
        .filter(|c| c.identity.pod_uid == wanted)
        .collect())
}

fn walk(
    memory_root: &Path,
    rel: &str,
    depth: usize,
    found: &mut Vec<KubeCgroup>,
) -> Result<(), CgroupError> {
    let dir = memory_root.join(rel.trim_start_matches('/'));
    let Some(names) = subdirs(&dir)? else {
        return Ok(());
    };
    for name in names {
        let path = format!("{rel}/{name}");
        if parse_cgroup_path(&path).is_some() {
            match scan_pod(memory_root, &path) {
                Ok(pod) => found.extend(pod),
                Err(e) if e.is_vanished() => {}
                Err(e) => return Err(e),
            }
        } else if depth < 1 {
            // The QoS level (`burstable`, `kubepods-besteffort.slice`) sits between kubepods and pods.
            walk(memory_root, &path, depth + 1, found)?;
        }
    }
    Ok(())
}

/// The names of the subdirectories of `dir`; `None` when `dir` does not exist (any more).
fn subdirs(dir: &Path) -> Result<Option<Vec<String>>, CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CgroupError::from_io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_owned());
        }
    }
    names.sort_unstable();
    Ok(Some(names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubepath::QosClass;

    const UID: &str = "0b7632a2-a56e-4278-987a-22de18008dbe";
    const UID_: &str = "0b7632a2_a56e_4278_987a_22de18008dbe";
    const ID1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const ID2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn mkdirs(root: &Path, paths: &[String]) {
        for p in paths {
            fs::create_dir_all(root.join(p)).expect("mkdir");
            fs::write(root.join(p).join("memory.current"), "0\n").expect("write");
        }
    }

    #[test]
    fn cgroupfs_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        mkdirs(
            dir.path(),
            &[
                format!("kubepods/burstable/pod{UID}/{ID1}"),
                format!("kubepods/burstable/pod{UID}/crio-conmon-{ID2}"),
                format!("kubepods/pod{UID}/{ID2}"),
                "kubepods/besteffort".to_owned(),
                "system.slice/docker.service".to_owned(),
                format!("notkube/pod{UID}/{ID1}"),
            ],
        );
        let found = discover_kubepods(dir.path()).expect("walk");
        let summary: Vec<(&str, CgroupRole, Option<&str>, QosClass)> = found
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.role,
                    c.identity.container_id.as_deref(),
                    c.identity.qos,
                )
            })
            .collect();
        let burstable_pod = format!("/kubepods/burstable/pod{UID}");
        let burstable_ctr = format!("/kubepods/burstable/pod{UID}/{ID1}");
        let guaranteed_pod = format!("/kubepods/pod{UID}");
        let guaranteed_ctr = format!("/kubepods/pod{UID}/{ID2}");
        assert_eq!(
            summary,
            vec![
                (
                    burstable_pod.as_str(),
                    CgroupRole::Pod,
                    None,
                    QosClass::Burstable
                ),
                (
                    burstable_ctr.as_str(),
                    CgroupRole::Container,
                    Some(ID1),
                    QosClass::Burstable
                ),
                (
                    guaranteed_pod.as_str(),
                    CgroupRole::Pod,
                    None,
                    QosClass::Guaranteed
                ),
                (
                    guaranteed_ctr.as_str(),
                    CgroupRole::Container,
                    Some(ID2),
                    QosClass::Guaranteed
                ),
            ]
        );
    }

    #[test]
    fn systemd_tree_and_find_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod =
            format!("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice");
        mkdirs(
            dir.path(),
            &[
                format!("{pod}/cri-containerd-{ID1}.scope"),
                format!("{pod}/crio-conmon-{ID2}.scope"),
                "kubepods.slice/kubepods-burstable.slice".to_owned(),
            ],
        );
        let found = find_pod(dir.path(), UID_).expect("find");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].role, CgroupRole::Pod);
        assert_eq!(found[0].path, format!("/{pod}"));
        assert_eq!(found[1].identity.container_id.as_deref(), Some(ID1));
        assert_eq!(found[1].identity.runtime.as_deref(), Some("containerd"));
        assert!(
            find_pod(dir.path(), "ffffffff-a56e-4278-987a-22de18008dbe")
                .expect("find")
                .is_empty()
        );
    }

    #[test]
    fn scan_of_a_vanished_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = scan_pod(dir.path(), &format!("/kubepods/pod{UID}")).expect_err("gone");
        assert!(err.is_vanished(), "{err}");
        let err = scan_pod(dir.path(), "/system.slice").expect_err("no pod");
        assert!(matches!(err, CgroupError::Parse { .. }));
    }

    #[test]
    fn empty_root_has_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(discover_kubepods(dir.path()).expect("walk").is_empty());
    }
}
