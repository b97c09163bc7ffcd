//! Which cgroups a scope covers and who they are: node (all kubepods), own pod (sidecar), one cgroup.

use std::sync::Arc;

use pressure_core::Target;

use super::WatchError;
use crate::{
    CgroupError, CgroupLayout, CgroupRole, CgroupVersion, KubeCgroup, discover_kubepods, find_pod,
    memory_cgroup_entry, parse_cgroup_path, parse_proc_cgroup, scan_pod,
};

/// The downward-API values of the pod the watcher runs in (`POD_UID`, `POD_NAME`, `POD_NAMESPACE`,
/// `NODE_NAME`, `POD_IP`). The caller reads them; this crate reads no environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodEnv {
    /// `POD_UID`: the pod a sidecar watches (see [`Scope::sidecar`]).
    pub pod_uid: Option<String>,
    /// `POD_NAME`: the pod name on sidecar events.
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE`: the namespace on sidecar events.
    pub namespace: Option<String>,
    /// `NODE_NAME`: the node on every event.
    pub node_name: Option<String>,
    /// `POD_IP`: the pod IP on sidecar events.
    pub pod_ip: Option<String>,
}

impl PodEnv {
    /// Builds the values from a lookup by variable name (e.g. `|k| std::env::var(k).ok()`); values
    /// are trimmed and empty ones count as unset, as an unset `fieldRef` gives an empty variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        PodEnv {
            pod_uid: get("POD_UID"),
            pod_name: get("POD_NAME"),
            namespace: get("POD_NAMESPACE"),
            node_name: get("NODE_NAME"),
            pod_ip: get("POD_IP"),
        }
    }
}

/// Which cgroups a [`Watcher`](super::Watcher) samples.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Every pod and container cgroup under `kubepods`/`kubepods.slice` (a node DaemonSet).
    Node,
    /// One pod by UID: its pod cgroup (looked up until it appears, then remembered) and its
    /// container cgroups as they come and go (a sidecar).
    Pod {
        /// The pod UID, with dashes.
        uid: String,
    },
    /// One cgroup, by its path below the memory root (outside Kubernetes: the own cgroup).
    Cgroup {
        /// The path, e.g. `/user.slice`.
        path: String,
    },
}

impl Scope {
    /// The sidecar's scope, from the first of these that applies:
    ///
    /// 1. `POD_UID` (the downward API): that pod.
    /// 2. `proc_self_cgroup` (the text of `/proc/self/cgroup`) names a kubelet pod cgroup: that pod.
    /// 3. A kubelet pod or container cgroup under the memory root whose `cgroup.procs` lists `own_pid`
    ///    (the process's PID in its own PID namespace, `std::process::id()`): its pod. This finds
    ///    the pod of a container with its own cgroup namespace, where `/proc/self/cgroup` reads `/`,
    ///    given the host's cgroupfs mounted: the kernel lists `cgroup.procs` in the reader's PID
    ///    namespace and leaves out (v1) or shows as 0 (v2) the processes it cannot see there, so only
    ///    the own process can match.
    /// 4. Outside Kubernetes: the own cgroup, when `proc_self_cgroup` names one other than the root
    ///    that exists under the memory root.
    /// 5. The memory root itself, when it is not the hierarchy's root (`source.cgroup.path` names a
    ///    cgroup: the configuration asked for it).
    ///
    /// # Errors
    /// [`WatchError::NoOwnCgroup`](super::WatchError::NoOwnCgroup) when none applies, saying what is
    /// missing: the host's root cgroup is never watched by accident.
    pub fn sidecar(
        layout: &CgroupLayout,
        env: &PodEnv,
        proc_self_cgroup: &str,
        own_pid: u32,
    ) -> Result<Scope, WatchError> {
        if let Some(uid) = &env.pod_uid {
            tracing::info!(pod_uid = %uid, "sidecar: own pod from POD_UID");
            return Ok(Scope::Pod {
                uid: uid.replace('_', "-"),
            });
        }
        let entries = parse_proc_cgroup(proc_self_cgroup);
        let own_path =
            memory_cgroup_entry(&entries).map_or_else(|| "/".to_owned(), |e| e.path.clone());
        if let Some(pod) = parse_cgroup_path(&own_path) {
            tracing::info!(pod_uid = %pod.pod_uid, cgroup = %own_path, "sidecar: own pod from /proc/self/cgroup");
            return Ok(Scope::Pod { uid: pod.pod_uid });
        }
        if let Some(own) = kube_cgroup_of_pid(layout, own_pid) {
            tracing::info!(
                pod_uid = %own.identity.pod_uid,
                cgroup = %own.path,
                pid = own_pid,
                "sidecar: own pod from the cgroup.procs listing this process"
            );
            return Ok(Scope::Pod {
                uid: own.identity.pod_uid,
            });
        }
        // `/` is the root of a cgroup namespace as often as the host's root: never a guess.
        if own_path != "/" && !own_path.starts_with("/..") && layout.memory_dir(&own_path).is_dir()
        {
            tracing::warn!(
                cgroup = %own_path,
                "no Kubernetes pod found (POD_UID unset, /proc/self/cgroup names no kubelet pod, no kubelet cgroup lists this process): watching the own cgroup"
            );
            return Ok(Scope::Cgroup { path: own_path });
        }
        if !is_hierarchy_root(layout) {
            tracing::info!(
                memory_root = %layout.memory_root().display(),
                "sidecar: the cgroup source.cgroup.path names"
            );
            return Ok(Scope::Cgroup {
                path: "/".to_owned(),
            });
        }
        Err(WatchError::NoOwnCgroup {
            own_cgroup: own_path,
            memory_root: layout.memory_root().to_owned(),
            pid: own_pid,
        })
    }
}

/// The kubelet cgroup (a container's before its pod's) whose `cgroup.procs` lists `pid`.
fn kube_cgroup_of_pid(layout: &CgroupLayout, pid: u32) -> Option<KubeCgroup> {
    let mut list = match discover_kubepods(layout.memory_root()) {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!("looking for the own pod under kubepods: {e}");
            return None;
        }
    };
    // Processes live in leaf cgroups: the containers'; a pod cgroup lists only its own members.
    list.sort_by_key(|c| c.role == CgroupRole::Pod);
    let wanted = pid.to_string();
    list.into_iter().find(|c| {
        std::fs::read_to_string(layout.memory_dir(&c.path).join("cgroup.procs"))
            .is_ok_and(|procs| procs.lines().any(|l| l.trim() == wanted))
    })
}

/// Whether the memory root is its hierarchy's root cgroup (v1: it holds the root-only
/// `release_agent`; v2: it lacks `cgroup.type`, which every other cgroup has), rather than a cgroup
/// that `source.cgroup.path` names.
fn is_hierarchy_root(layout: &CgroupLayout) -> bool {
    let root = layout.memory_root();
    match layout.version() {
        CgroupVersion::V1 => root.join("release_agent").exists(),
        CgroupVersion::V2 => !root.join("cgroup.type").exists(),
    }
}

/// A [`Scope`] with what discovery learnt: the own pod's cgroup once found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    Node,
    Pod {
        pod_uid: String,
        pod_path: Option<String>,
        warned_missing: bool,
    },
    Own {
        path: String,
    },
}

impl From<Scope> for Plan {
    fn from(scope: Scope) -> Plan {
        match scope {
            Scope::Node => Plan::Node,
            Scope::Pod { uid } => Plan::Pod {
                pod_uid: uid,
                pod_path: None,
                warned_missing: false,
            },
            Scope::Cgroup { path } => Plan::Own { path },
        }
    }
}

/// One cgroup to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) path: String,
    pub(super) kube: Option<KubeCgroup>,
}

/// Lists the cgroups of `plan` now; remembers the pod cgroup once found.
pub(super) fn discover(layout: &CgroupLayout, plan: &mut Plan) -> Result<Vec<Found>, CgroupError> {
    let root = layout.memory_root();
    let kube = |list: Vec<KubeCgroup>| {
        list.into_iter()
            .map(|k| Found {
                path: k.path.clone(),
                kube: Some(k),
            })
            .collect()
    };
    match plan {
        Plan::Node => Ok(kube(discover_kubepods(root)?)),
        Plan::Own { path } => Ok(vec![Found {
            path: path.clone(),
            kube: None,
        }]),
        Plan::Pod {
            pod_uid,
            pod_path,
            warned_missing,
        } => {
            if let Some(path) = pod_path.as_deref() {
                match scan_pod(root, path) {
                    Ok(list) => return Ok(kube(list)),
                    Err(e) if e.is_vanished() => *pod_path = None,
                    Err(e) => return Err(e),
                }
            }
            let list = find_pod(root, pod_uid)?;
            match list.iter().find(|c| c.role == CgroupRole::Pod) {
                Some(pod) => {
                    tracing::info!(pod_uid = %pod_uid, cgroup = %pod.path, "found the own pod cgroup");
                    *pod_path = Some(pod.path.clone());
                    *warned_missing = false;
                }
                None if !*warned_missing => {
                    tracing::warn!(
                        pod_uid = %pod_uid,
                        memory_root = %root.display(),
                        "no cgroup of this pod under kubepods yet (is the host's /sys/fs/cgroup mounted?); still looking"
                    );
                    *warned_missing = true;
                }
                None => {}
            }
            Ok(kube(list))
        }
    }
}

/// Who a cgroup is, with the names this mode knows.
pub(super) fn target(plan: &Plan, env: &PodEnv, found: &Found) -> Target {
    let mut target = Target {
        cgroup_path: Some(found.path.clone()),
        node_name: env.node_name.as_deref().map(Arc::from),
        ..Target::default()
    };
    if let Some(kube) = &found.kube {
        target.pod_uid = Some(kube.identity.pod_uid.as_str().into());
        target.container_id = kube.identity.container_id.as_deref().map(Arc::from);
    }
    if matches!(plan, Plan::Pod { .. } | Plan::Own { .. }) {
        target.namespace = env.namespace.as_deref().map(Arc::from);
        target.pod_name = env.pod_name.as_deref().map(Arc::from);
        target.pod_ip = env.pod_ip.as_deref().map(Arc::from);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const UID: &str = "0b7632a2-a56e-4278-987a-22de18008dbe";
    const ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn v1_tree() -> (tempfile::TempDir, CgroupLayout) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mem = dir.path().join("memory");
        fs::create_dir_all(&mem).expect("mkdir");
        fs::write(mem.join("memory.usage_in_bytes"), "0\n").expect("write");
        // Only the hierarchy's root has it: this is the whole hierarchy, not a named cgroup.
        fs::write(mem.join("release_agent"), "\n").expect("write");
        for d in [
            format!("kubepods/burstable/pod{UID}/{ID}"),
            "kubepods/besteffort/pod99999999-a56e-4278-987a-22de18008dbe".to_owned(),
            "user.slice".to_owned(),
        ] {
            fs::create_dir_all(mem.join(d)).expect("mkdir");
        }
        let layout = CgroupLayout::detect(dir.path()).expect("layout");
        (dir, layout)
    }

    fn env(pairs: &[(&str, &str)]) -> PodEnv {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PodEnv::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn env_reads_downward_api_and_ignores_empty() {
        let e = env(&[
            ("POD_UID", UID),
            ("POD_NAME", "web-0"),
            ("POD_IP", " "),
            ("NODE_NAME", "n1"),
        ]);
        assert_eq!(e.pod_uid.as_deref(), Some(UID));
        assert_eq!(e.pod_name.as_deref(), Some("web-0"));
        assert_eq!(e.pod_ip, None);
        assert_eq!(e.node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn sidecar_by_pod_uid_finds_pod_and_containers() {
        let (_dir, layout) = v1_tree();
        let e = env(&[
            ("POD_UID", UID),
            ("POD_NAME", "web-0"),
            ("POD_NAMESPACE", "shop"),
        ]);
        let mut scope = Plan::from(Scope::sidecar(&layout, &e, "4:memory:/\n", 1).expect("scope"));
        let found = discover(&layout, &mut scope).expect("discover");
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        let pod = format!("/kubepods/burstable/pod{UID}");
        let ctr = format!("{pod}/{ID}");
        assert_eq!(paths, vec![pod.as_str(), ctr.as_str()]);
        assert!(matches!(&scope, Plan::Pod { pod_path: Some(p), .. } if *p == pod));
        let t = target(&scope, &e, &found[1]);
        assert_eq!(t.pod_uid.as_deref(), Some(UID));
        assert_eq!(t.container_id.as_deref(), Some(ID));
        assert_eq!(t.pod_name.as_deref(), Some("web-0"));
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.container_name, None, "reported by ID");
    }

    #[test]
    fn sidecar_by_proc_self_cgroup_v1_and_v2() {
        let (_dir, layout) = v1_tree();
        let v1 = format!("9:pids:/\n4:memory:/kubepods/burstable/pod{UID}/{ID}\n0::/\n");
        let scope = Scope::sidecar(&layout, &PodEnv::default(), &v1, 1).expect("scope");
        assert!(matches!(&scope, Scope::Pod { uid } if uid == UID));

        let uid_ = UID.replace('-', "_");
        let v2 = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
        );
        let scope = Scope::sidecar(&layout, &PodEnv::default(), &v2, 1).expect("scope");
        assert!(matches!(&scope, Scope::Pod { uid } if uid == UID));
    }

    #[test]
    fn outside_kubernetes_watches_own_cgroup() {
        let (dir, layout) = v1_tree();
        let mut scope = Plan::from(
            Scope::sidecar(&layout, &PodEnv::default(), "4:memory:/user.slice\n", 1)
                .expect("scope"),
        );
        assert_eq!(
            scope,
            Plan::Own {
                path: "/user.slice".to_owned()
            }
        );
        let found = discover(&layout, &mut scope).expect("discover");
        assert_eq!(found.len(), 1);
        assert_eq!(
            layout.memory_dir(&found[0].path),
            dir.path().join("memory/user.slice")
        );
        let t = target(&scope, &PodEnv::default(), &found[0]);
        assert_eq!(t.pod_uid, None);
        assert_eq!(t.cgroup_path.as_deref(), Some("/user.slice"));
    }

    #[test]
    fn own_pod_from_the_cgroup_procs_that_lists_the_own_pid() {
        let (dir, layout) = v1_tree();
        let container = dir
            .path()
            .join(format!("memory/kubepods/burstable/pod{UID}/{ID}"));
        // v1 leaves out the PIDs the reader's namespace cannot see; v2 shows them as 0.
        fs::write(container.join("cgroup.procs"), "1\n7\n").expect("write");
        let other = dir
            .path()
            .join("memory/kubepods/besteffort/pod99999999-a56e-4278-987a-22de18008dbe");
        fs::write(other.join("cgroup.procs"), "0\n70\n").expect("write");
        // Inside its own cgroup and PID namespaces the sidecar is `/` and, say, PID 7.
        let scope = Scope::sidecar(&layout, &PodEnv::default(), "4:memory:/\n", 7).expect("scope");
        assert_eq!(
            scope,
            Scope::Pod {
                uid: UID.to_owned()
            }
        );
        let scope = Scope::sidecar(&layout, &PodEnv::default(), "0::/\n", 70).expect("scope");
        assert_eq!(
            scope,
            Scope::Pod {
                uid: "99999999-a56e-4278-987a-22de18008dbe".to_owned()
            }
        );
    }

    #[test]
    fn never_the_root_by_accident() {
        let (dir, layout) = v1_tree();
        // A cgroup namespace shows `/`; a path not visible here, or above the namespace, names nothing.
        for own in ["4:memory:/\n", "4:memory:/elsewhere\n", "0::/../../x\n", ""] {
            let err =
                Scope::sidecar(&layout, &PodEnv::default(), own, 4242).expect_err("no own cgroup");
            let text = err.to_string();
            assert!(text.contains("set POD_UID from the downward API"), "{text}");
            assert!(text.contains("PID 4242"), "{text}");
            assert!(
                matches!(err, WatchError::NoOwnCgroup { pid: 4242, .. }),
                "{err:?}"
            );
        }
        // Unless the configuration names a cgroup as the root: then that one is watched.
        let user = dir.path().join("memory/user.slice");
        fs::write(user.join("memory.usage_in_bytes"), "0\n").expect("write");
        let named = CgroupLayout::detect(&user).expect("layout of a named cgroup");
        let scope =
            Scope::sidecar(&named, &PodEnv::default(), "4:memory:/\n", 4242).expect("scope");
        assert_eq!(
            scope,
            Scope::Cgroup {
                path: "/".to_owned()
            }
        );
    }

    #[test]
    fn pod_not_there_yet_then_appears() {
        let (dir, layout) = v1_tree();
        let late = "abcdef01-a56e-4278-987a-22de18008dbe";
        let mut scope = Plan::from(Scope::Pod {
            uid: late.to_owned(),
        });
        assert!(discover(&layout, &mut scope).expect("discover").is_empty());
        assert!(matches!(
            scope,
            Plan::Pod {
                warned_missing: true,
                ..
            }
        ));
        fs::create_dir_all(dir.path().join(format!("memory/kubepods/pod{late}/{ID}")))
            .expect("mkdir");
        assert_eq!(discover(&layout, &mut scope).expect("discover").len(), 2);
        // Pod removed: forgotten, then looked up again.
        fs::remove_dir_all(dir.path().join(format!("memory/kubepods/pod{late}"))).expect("rm");
        assert!(discover(&layout, &mut scope).expect("discover").is_empty());
        assert!(matches!(scope, Plan::Pod { pod_path: None, .. }));
    }

    #[test]
    fn node_mode_sees_only_kubepods() {
        let (_dir, layout) = v1_tree();
        let found = discover(&layout, &mut Plan::Node).expect("discover");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|f| f.path.starts_with("/kubepods/")));
        let t = target(
            &Plan::Node,
            &env(&[("POD_NAME", "pressured-x"), ("NODE_NAME", "n1")]),
            &found[0],
        );
        assert_eq!(
            t.pod_name, None,
            "node mode does not claim its own pod's name for others"
        );
        assert_eq!(t.node_name.as_deref(), Some("n1"));
    }
}
