//! Which cgroups a scope covers and who they are: node (all kubepods), own pod (sidecar), one cgroup.

use std::sync::Arc;

use pressure_core::Target;

use crate::{
    CgroupError, CgroupLayout, CgroupRole, KubeCgroup, discover_kubepods, find_pod,
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
    /// The sidecar's scope: the pod of `POD_UID`, else the pod named by `proc_self_cgroup` (the text
    /// of `/proc/self/cgroup`), else the own cgroup (the memory root inside a cgroup namespace).
    pub fn sidecar(layout: &CgroupLayout, env: &PodEnv, proc_self_cgroup: &str) -> Scope {
        if let Some(uid) = &env.pod_uid {
            tracing::info!(pod_uid = %uid, "sidecar: own pod from POD_UID");
            return Scope::Pod {
                uid: uid.replace('_', "-"),
            };
        }
        let entries = parse_proc_cgroup(proc_self_cgroup);
        let own_path =
            memory_cgroup_entry(&entries).map_or_else(|| "/".to_owned(), |e| e.path.clone());
        if let Some(pod) = parse_cgroup_path(&own_path) {
            tracing::info!(pod_uid = %pod.pod_uid, cgroup = %own_path, "sidecar: own pod from /proc/self/cgroup");
            return Scope::Pod { uid: pod.pod_uid };
        }
        // Inside a cgroup namespace the own cgroup is `/`, which is the memory root as mounted here.
        let path = if layout.memory_dir(&own_path).is_dir() {
            own_path
        } else {
            "/".to_owned()
        };
        tracing::warn!(
            cgroup = %path,
            "no Kubernetes pod found (POD_UID unset, /proc/self/cgroup names no kubelet pod): watching the own cgroup"
        );
        Scope::Cgroup { path }
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
    use std::path::Path;

    const UID: &str = "0b7632a2-a56e-4278-987a-22de18008dbe";
    const ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn v1_tree() -> (tempfile::TempDir, CgroupLayout) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mem = dir.path().join("memory");
        fs::create_dir_all(&mem).expect("mkdir");
        fs::write(mem.join("memory.usage_in_bytes"), "0\n").expect("write");
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
        let mut scope = Plan::from(Scope::sidecar(&layout, &e, "4:memory:/\n"));
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
        let scope = Scope::sidecar(&layout, &PodEnv::default(), &v1);
        assert!(matches!(&scope, Scope::Pod { uid } if uid == UID));

        let uid_ = UID.replace('-', "_");
        let v2 = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{ID}.scope\n"
        );
        let scope = Scope::sidecar(&layout, &PodEnv::default(), &v2);
        assert!(matches!(&scope, Scope::Pod { uid } if uid == UID));
    }

    #[test]
    fn outside_kubernetes_watches_own_cgroup() {
        let (dir, layout) = v1_tree();
        let mut scope = Plan::from(Scope::sidecar(
            &layout,
            &PodEnv::default(),
            "4:memory:/user.slice\n",
        ));
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

        // A cgroup namespace shows `0::/`; a path not visible here falls back to the root.
        let scope = Scope::sidecar(&layout, &PodEnv::default(), "4:memory:/elsewhere\n");
        assert_eq!(
            scope,
            Scope::Cgroup {
                path: "/".to_owned()
            }
        );
        assert!(Path::new(&layout.memory_dir("/")).is_dir());
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
