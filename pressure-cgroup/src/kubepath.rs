//! The kubelet cgroup-path parser: which pod and container a cgroup belongs to.
//!
//! kubelet names pod cgroups after the pod UID and the runtime names container cgroups after the
//! container ID, so the path alone identifies both. Two drivers shape the path
//! (kubernetes `pkg/kubelet/cm/cgroup_manager_linux.go`, `ToCgroupfs` / `ToSystemd`):
//!
//! - cgroupfs: `/kubepods[/burstable|/besteffort]/pod<uid>/<id>` (CRI-O: `crio-<id>`);
//! - systemd: `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_with_underscores>.slice/<prefix>-<id>.scope`
//!   with `<prefix>` one of `cri-containerd`, `crio`, `docker`.
//!
//! Quirks handled here: static pods have a 32-hex config-hash UID without dashes; CRI-O puts its
//! `conmon` monitor into `crio-conmon-<id>.scope`, which is no container; containerd 1.4 with the
//! systemd driver left the unconverted `kubepods-<qos>-pod<uid>.slice:cri-containerd:<id>` form as the
//! last path component (neuvector `TestK8sContainerd_v1_4_4`); inside a private cgroup namespace a
//! process sees only `0::/` and the path says nothing.

/// The Kubernetes QoS class of a pod, as encoded in its cgroup path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QosClass {
    /// Requests equal limits: the pod cgroup sits directly under `kubepods`.
    Guaranteed,
    /// Under `kubepods/burstable` or `kubepods-burstable.slice`.
    Burstable,
    /// Under `kubepods/besteffort` or `kubepods-besteffort.slice`.
    BestEffort,
}

impl QosClass {
    /// The name Kubernetes uses in `status.qosClass`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

impl std::fmt::Display for QosClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pod (and, when the path goes that deep, the container) a kubelet cgroup path names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodContainer {
    /// The kubelet's pod UID with dashes (systemd's underscores converted back). For a static pod this
    /// is the 32-hex config hash without dashes, which the mirror pod carries in its
    /// `kubernetes.io/config.mirror` annotation.
    pub pod_uid: String,
    /// The container ID (usually 64 hex) for a container cgroup; `None` for the pod cgroup itself and
    /// for cgroups under the pod that are no container (CRI-O's `crio-conmon-<id>.scope`).
    pub container_id: Option<String>,
    /// The runtime when the path tells it, spelled like the scheme of
    /// `status.containerStatuses[].containerID`: `containerd`, `cri-o` or `docker`. `None` for a bare
    /// cgroupfs ID (containerd and docker look alike there) and for the pod cgroup.
    pub runtime: Option<String>,
    /// The pod's QoS class.
    pub qos: QosClass,
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProcCgroupEntry {
    /// The hierarchy ID; `0` for the cgroup v2 unified hierarchy.
    pub hierarchy_id: u32,
    /// The controllers bound to the hierarchy (`memory`, `cpu,cpuacct`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    /// The cgroup path relative to the hierarchy's root (as seen from the reader's cgroup namespace).
    pub path: String,
}

impl ProcCgroupEntry {
    /// Whether this is the cgroup v2 unified hierarchy (`0::<path>`).
    #[must_use]
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }
}

/// Parses the text of `/proc/<pid>/cgroup` (v1, v2 or hybrid) into its entries.
///
/// The path is everything after the second colon, so paths that contain colons (the containerd 1.4
/// quirk) stay whole. Lines that do not have the `id:controllers:path` shape are skipped.
#[must_use]
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroupEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_end_matches('\r');
            let (id, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            let hierarchy_id = id.trim().parse().ok()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some(ProcCgroupEntry {
                hierarchy_id,
                controllers,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// Picks the entry that governs memory: the v1 `memory` controller's hierarchy, else the v2 unified one.
#[must_use]
pub fn memory_cgroup_entry(entries: &[ProcCgroupEntry]) -> Option<&ProcCgroupEntry> {
    entries
        .iter()
        .find(|e| e.controllers.iter().any(|c| c == "memory"))
        .or_else(|| entries.iter().find(|e| e.is_unified()))
}

/// Maps a kubelet cgroup path to its pod and container.
///
/// Accepts a path from `/proc/<pid>/cgroup` (`/kubepods/...`) as well as a mounted one
/// (`/sys/fs/cgroup/memory/kubepods/...`); the pod is found by its component anywhere in the path.
/// Returns `None` when the path names no pod (`/`, `/system.slice/...`, a pod-less `kubepods` level).
/// A CRI-O `crio-conmon-<id>.scope` yields its pod with `container_id: None`: conmon is the
/// runtime's monitor process, not a container.
#[must_use]
pub fn parse_cgroup_path(path: &str) -> Option<PodContainer> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        // systemd driver, including the containerd 1.4 `<slice>:<prefix>:<id>` form.
        if let Some((uid, qos, rest)) = parse_systemd_pod_slice(component) {
            let (container_id, runtime) = match rest {
                Some(quirk) => parse_quirk_suffix(quirk)?,
                None => components
                    .get(i + 1)
                    .map_or((None, None), |c| parse_container_component(c)),
            };
            return Some(PodContainer {
                pod_uid: uid,
                container_id,
                runtime,
                qos,
            });
        }
        // cgroupfs driver: `kubepods[/burstable|/besteffort]/pod<uid>`.
        if *component == "kubepods" {
            let (qos, pod_index) = match components.get(i + 1) {
                Some(&"burstable") => (QosClass::Burstable, i + 2),
                Some(&"besteffort") => (QosClass::BestEffort, i + 2),
                _ => (QosClass::Guaranteed, i + 1),
            };
            let uid = components
                .get(pod_index)
                .and_then(|c| c.strip_prefix("pod"))
                .and_then(normalise_uid)?;
            let (container_id, runtime) = components
                .get(pod_index + 1)
                .map_or((None, None), |c| parse_container_component(c));
            return Some(PodContainer {
                pod_uid: uid,
                container_id,
                runtime,
                qos,
            });
        }
    }
    None
}

/// Parses `kubepods[-<qos>]-pod<uid>.slice[:<rest>]` into UID, QoS and the part after the first colon.
fn parse_systemd_pod_slice(component: &str) -> Option<(String, QosClass, Option<&str>)> {
    let (slice, rest) = match component.split_once(':') {
        Some((slice, rest)) => (slice, Some(rest)),
        None => (component, None),
    };
    let name = slice.strip_suffix(".slice")?.strip_prefix("kubepods-")?;
    let (qos, uid) = if let Some(uid) = name.strip_prefix("burstable-pod") {
        (QosClass::Burstable, uid)
    } else if let Some(uid) = name.strip_prefix("besteffort-pod") {
        (QosClass::BestEffort, uid)
    } else {
        (QosClass::Guaranteed, name.strip_prefix("pod")?)
    };
    Some((normalise_uid(uid)?, qos, rest))
}

/// Parses the `cri-containerd:<id>` tail of the containerd 1.4 quirk.
fn parse_quirk_suffix(rest: &str) -> Option<(Option<String>, Option<String>)> {
    let (prefix, id) = rest.split_once(':')?;
    let runtime = runtime_of_prefix(prefix)?;
    is_container_id(id).then(|| (Some(id.to_owned()), Some(runtime.to_owned())))
}

/// Maps a cgroup name prefix to the runtime scheme of `containerID` (`containerd://...`).
fn runtime_of_prefix(prefix: &str) -> Option<&'static str> {
    match prefix {
        "cri-containerd" | "containerd" => Some("containerd"),
        "crio" => Some("cri-o"),
        "docker" => Some("docker"),
        _ => None,
    }
}

/// Parses the component below a pod cgroup: `<id>`, `crio-<id>`, `<prefix>-<id>.scope`.
///
/// Anything else (CRI-O's `crio-conmon-<id>`, unknown names) is no container.
fn parse_container_component(component: &str) -> (Option<String>, Option<String>) {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if name.starts_with("crio-conmon-") {
        return (None, None);
    }
    if let Some((prefix, id)) = name.rsplit_once('-')
        && let Some(runtime) = runtime_of_prefix(prefix)
        && is_container_id(id)
    {
        return (Some(id.to_owned()), Some(runtime.to_owned()));
    }
    if is_container_id(name) {
        return (Some(name.to_owned()), None);
    }
    (None, None)
}

/// Container IDs are lowercase hex (64 digits for every CRI runtime; accept 12 and up).
fn is_container_id(id: &str) -> bool {
    id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Normalises a pod UID: systemd's `_` back to `-`; must then be hex with dashes (a UUID or a
/// static pod's 32-hex hash).
fn normalise_uid(uid: &str) -> Option<String> {
    let uid = uid.replace('_', "-");
    let hex_digits = uid.bytes().filter(u8::is_ascii_hexdigit).count();
    let valid = hex_digits >= 8 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    valid.then_some(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// What a fixture line must parse to: pod UID, container ID, runtime, QoS (or no pod at all).
    type Expect = Option<(
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        QosClass,
    )>;

    const A_UID: &str = "a36d0c1d-0b26-4451-8d80-9c195e004afa";
    const A_ID: &str = "5dd96d5394ca930a854a390ea46f7515a8bc930123eb3251ba20f2708a38fc61";
    const B_UID: &str = "3d274242-8ee0-11e9-a8a6-1e68d864ef1a";
    const B_ID: &str = "3e74d3fd9db4c9dd921ae05c2502fb984d0cde1b36e581b13f79c639da4518a1";
    const C_UID: &str = "8ca306fa-3c03-47fa-97dd-19979c345572";
    const C_ID: &str = "d6d725b909f37c3e232aadfbafa950a58bfe7baa579ba8c47a12be88bb921607";
    const D_UID: &str = "487a0dc6dccaeefbcfedba7a7ce1ca18";
    const D_ID: &str = "7a1fd6fe8cdfbd44dc78c4cc85dad7031eaab4365801684cad0aabdeaf863f9e";
    const E_UID: &str = "2105e389-7471-476e-a50f-6074cef29bbd";
    const E_ID: &str = "d3d8ccf5cca91931c6285c1d7472c413dd5a7700fddc0aa9f89a9ac7008b003e";
    const H_UID: &str = "0b7632a2-a56e-4278-987a-22de18008dbe";

    /// Every data line of `testdata/proc_pid_cgroup_samples.txt`, in file order: the controller
    /// list (joined by `,`) and what its path must parse to.
    fn table() -> Vec<(u32, &'static str, Expect)> {
        use QosClass::{BestEffort, Burstable, Guaranteed};
        let a = Some((A_UID, Some(A_ID), None, BestEffort));
        let b = Some((B_UID, Some(B_ID), None, BestEffort));
        let c = Some((C_UID, Some(C_ID), Some("cri-o"), BestEffort));
        let e = Some((E_UID, Some(E_ID), Some("containerd"), BestEffort));
        vec![
            // [A] v1 cgroupfs containerd 1.2.13
            (11, "pids", a),
            (9, "memory", a),
            (1, "name=systemd", a),
            // [B] v1 cgroupfs docker
            (9, "memory", b),
            (1, "name=systemd", b),
            // [C] v1 systemd CRI-O 1.19
            (12, "devices", c),
            (6, "rdma", None),
            (3, "memory", c),
            (1, "name=systemd", c),
            // [D] v1 systemd CRI-O static pod
            (
                3,
                "memory",
                Some((D_UID, Some(D_ID), Some("cri-o"), Burstable)),
            ),
            (7, "rdma", None),
            // [E] containerd 1.4.4 quirk
            (11, "pids", e),
            (10, "freezer", e),
            (4, "memory", e),
            // [F] docker outside Kubernetes
            (8, "memory", None),
            // [H] v2 constructed
            (
                0,
                "",
                Some((H_UID, Some(HEX64), Some("containerd"), Burstable)),
            ),
            (0, "", Some((H_UID, Some(HEX64), Some("cri-o"), BestEffort))),
            (
                0,
                "",
                Some((H_UID, Some(HEX64), Some("docker"), Guaranteed)),
            ),
            (0, "", Some((H_UID, Some(HEX64), None, Burstable))),
            (0, "", Some((H_UID, Some(HEX64), Some("cri-o"), Burstable))),
            (0, "", None),
        ]
    }

    fn check(path: &str, expect: Expect) {
        let got = parse_cgroup_path(path);
        let want = expect.map(|(uid, id, runtime, qos)| PodContainer {
            pod_uid: uid.to_owned(),
            container_id: id.map(str::to_owned),
            runtime: runtime.map(str::to_owned),
            qos,
        });
        assert_eq!(got, want, "path {path:?}");
    }

    #[test]
    fn every_fixture_line_parses_as_expected() {
        let text = include_str!("../testdata/proc_pid_cgroup_samples.txt");
        let mut data_lines = Vec::new();
        let mut sysfs_paths = Vec::new();
        for line in text.lines() {
            if let Some(path) = line.strip_prefix("# /") {
                sysfs_paths.push(format!("/{path}"));
                continue;
            }
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            // [H] lines carry `<64hex>` placeholders and a trailing "(note)".
            let line = line.split("  ").next().unwrap_or(line).trim_end();
            data_lines.push(line.replace("<64hex>", HEX64));
        }
        let table = table();
        assert_eq!(
            data_lines.len(),
            table.len(),
            "table must cover every fixture line"
        );
        for (line, (id, controllers, expect)) in data_lines.iter().zip(table) {
            let entries = parse_proc_cgroup(line);
            assert_eq!(entries.len(), 1, "line {line:?}");
            let entry = &entries[0];
            assert_eq!(entry.hierarchy_id, id, "line {line:?}");
            assert_eq!(entry.controllers.join(","), controllers, "line {line:?}");
            assert!(line.ends_with(&entry.path), "line {line:?}");
            check(&entry.path, expect);
        }
        // [G]: the CRI-O conmon scope, given as a mounted v2 path: its pod, but no container.
        assert_eq!(sysfs_paths.len(), 1);
        check(
            &sysfs_paths[0],
            Some((H_UID, None, None, QosClass::Burstable)),
        );
    }

    #[test]
    fn whole_proc_files_pick_the_memory_entry() {
        let v1 = "12:devices:/kubepods.slice/x\n6:rdma:/\n3:memory:/kubepods/pod0b7632a2-a56e-4278-987a-22de18008dbe/abcdefabcdef\n0::/user.slice\n";
        let entries = parse_proc_cgroup(v1);
        assert_eq!(entries.len(), 4);
        let memory = memory_cgroup_entry(&entries).expect("memory entry");
        assert_eq!(memory.hierarchy_id, 3);
        assert_eq!(
            parse_cgroup_path(&memory.path).map(|p| (p.pod_uid, p.qos)),
            Some((H_UID.to_owned(), QosClass::Guaranteed))
        );

        let v2 = "0::/\n";
        let entries = parse_proc_cgroup(v2);
        let unified = memory_cgroup_entry(&entries).expect("unified entry");
        assert!(unified.is_unified());
        assert_eq!(unified.path, "/");
        assert_eq!(parse_cgroup_path(&unified.path), None);
    }

    #[test]
    fn malformed_proc_lines_are_skipped() {
        let entries = parse_proc_cgroup("garbage\nx:memory:/a\n\n4:memory:/b:c:d\n");
        assert_eq!(
            entries,
            vec![ProcCgroupEntry {
                hierarchy_id: 4,
                controllers: vec!["memory".to_owned()],
                path: "/b:c:d".to_owned(),
            }]
        );
    }

    #[test]
    fn pod_levels_and_mounted_paths() {
        use QosClass::{BestEffort, Burstable, Guaranteed};
        let uid = H_UID;
        let uid_ = "0b7632a2_a56e_4278_987a_22de18008dbe";
        let cases: Vec<(String, Expect)> = vec![
            (
                format!("/kubepods/burstable/pod{uid}"),
                Some((H_UID, None, None, Burstable)),
            ),
            (
                format!("/kubepods/pod{uid}"),
                Some((H_UID, None, None, Guaranteed)),
            ),
            (
                format!("/sys/fs/cgroup/memory/kubepods/besteffort/pod{uid}/{HEX64}"),
                Some((H_UID, Some(HEX64), None, BestEffort)),
            ),
            (
                format!("/sys/fs/cgroup/kubepods.slice/kubepods-pod{uid_}.slice"),
                Some((H_UID, None, None, Guaranteed)),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{HEX64}.scope/init.scope"
                ),
                Some((H_UID, Some(HEX64), Some("containerd"), Burstable)),
            ),
            (
                format!("/kubepods/burstable/pod{uid}/crio-conmon-{HEX64}"),
                Some((H_UID, None, None, Burstable)),
            ),
            ("/kubepods".to_owned(), None),
            ("/kubepods/burstable".to_owned(), None),
            ("/kubepods.slice/kubepods-burstable.slice".to_owned(), None),
            ("/kubepods/burstable/podnot-a-uid!".to_owned(), None),
            ("/system.slice/containerd.service".to_owned(), None),
            ("/".to_owned(), None),
            (String::new(), None),
        ];
        for (path, expect) in cases {
            check(&path, expect);
        }
    }

    #[test]
    fn qos_names_match_kubernetes() {
        assert_eq!(QosClass::Guaranteed.to_string(), "Guaranteed");
        assert_eq!(QosClass::Burstable.as_str(), "Burstable");
        assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
    }
}
