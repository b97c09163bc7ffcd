//! Reads container memory from cgroup v1 and v2 (usage, working set, limit, OOM kills, PSI) and maps
//! cgroup paths to Kubernetes pods and containers.
//!
//! - [`parse_cgroup_path`] maps a kubelet cgroup path to a [`PodContainer`] (pod UID, container ID,
//!   runtime, [`QosClass`]); [`parse_proc_cgroup`] splits `/proc/<pid>/cgroup` into
//!   [`ProcCgroupEntry`]s. These are the one parser shared with `oom-tracer`.
#![deny(missing_docs)]

mod kubepath;

pub use kubepath::{
    PodContainer, ProcCgroupEntry, QosClass, memory_cgroup_entry, parse_cgroup_path,
    parse_proc_cgroup,
};
