//! Test support for pressure: a fake Kubernetes API server, cgroup fixtures, memory hogs and the
//! qemu kernel-matrix harness. Not published.
//!
//! The fake API server ([`FakeApiServer`], started from a [`World`] of Nodes and Pods) serves what
//! the real `kubectl` and kube-rs clients need: discovery, list and watch with selectors, paging,
//! bookmarks and `410 Expired`, server-side tables, patches with resourceVersion conflicts, Events in
//! both API groups, Leases, the kubelet Summary API computed from [`ContainerUsage`] that tests
//! change while it runs, and injected [`Fault`]s. The `fake-apiserver` binary runs it standalone.
//!
//! System tests guard what they need of the machine with [`require`] and a [`Capability`]: skipped
//! with the reason outside CI, failed under CI ([`under_ci`]).
//!
//! [`prediction`] is the prediction benchmark (replays recorded timelines, measures `predicted_oom`
//! against the real kills; binary `bench-prediction`), [`recorder`] records such timelines from real
//! programs in real cgroup v1 memcgs (binary `record-timeline`).
//!
//! A real control plane ([`ControlPlane`]: etcd and kube-apiserver built by
//! `scripts/kube-apiserver.sh`, RBAC on, ServiceAccount kubeconfigs, [`KubeletStandIn`]s behind the
//! node proxy) runs the end-to-end tests; the `control-plane` binary starts one for a human.
#![deny(missing_docs)]

mod apiserver;
mod capability;
mod cgroup;
mod hog;
mod kube;
mod matrix;
pub mod prediction;
pub mod recorder;
mod sandbox;

pub use apiserver::{
    ContainerUsage, FakeApiError, FakeApiServer, Fault, FaultRule, Options, World, synthetic_node,
    synthetic_pod,
};
pub use capability::{
    Capability, ci_is_strict, find_program, require, require_all, skip_or_fail, under_ci,
};
pub use cgroup::{
    CgroupDirs, KubeletV1Pod, OomKillClock, V1_MEMORY_ROOT, remove_cgroup, require_v1_memcg,
    unique_container_id, unique_pod_uid, v1_memcg_available, v1_oom_kill_count,
};
pub use hog::{Hog, HogExit, HogSpec};
pub use kube::{
    ControlPlane, KubeError, KubeletStandIn, granted_rules, require_control_plane, used_requests,
    wait_for,
};
pub use matrix::{
    GuestPlan, GuestPrograms, GuestReport, HOG_SOURCE, INIT_SCRIPT, Initramfs, Kernel, MARKER,
    MatrixError, MatrixRow, OomCase, PodIds, QemuRun, QemuSpec, Scenario, ScenarioLog, Verdict,
    add_program, build_hog, build_initramfs, cloud_packages, fetch_kernel, judge_pressured,
    judge_sidecar, judge_tracer, parse_ldd, render_table, rfc3339_seconds, run_qemu,
};
pub use sandbox::ChartSecurity;
