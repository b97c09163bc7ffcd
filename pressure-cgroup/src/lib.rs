//! Reads container memory from cgroup v1 and v2 (usage, working set, limit, OOM kills, PSI), maps
//! cgroup paths to Kubernetes pods and containers, and runs the loop that watches them.
//!
//! - [`parse_cgroup_path`] maps a kubelet cgroup path to a [`PodContainer`] (pod UID, container ID,
//!   runtime, [`QosClass`]); [`parse_proc_cgroup`] splits `/proc/<pid>/cgroup` into
//!   [`ProcCgroupEntry`]s. These are the one parser shared with `oom-tracer`.
//! - [`CgroupLayout::detect`] finds the memory hierarchy under an injectable root (`/sys/fs/cgroup` in
//!   production, a temp dir in tests): v2 unified, v1, or hybrid.
//! - [`CgroupReader`] keeps one cgroup's memory files open and re-reads them with `pread` at offset 0
//!   into a shared [`ReadBuffer`]: no allocation per sample. It yields [`MemoryStats`] (usage, limit,
//!   working set, [`OomCounters`], [`MemoryPsi`]).
//! - [`discover_kubepods`], [`scan_pod`] and [`find_pod`] walk kubelet's hierarchy into
//!   [`KubeCgroup`]s ([`CgroupRole::Pod`] or [`CgroupRole::Container`]).
//! - [`OomNotifier`] turns v1 `memory.oom_control` eventfds and v2 `memory.events` inotify watches into
//!   one pollable descriptor, so a watcher samples a cgroup the moment it goes OOM.
//!
//! - [`Watcher`] is the sampling loop of `pressured`'s sidecar and node modes for any embedder: the
//!   cgroups of a [`Scope`] (a node's kubepods, one pod, one cgroup) through a
//!   [`pressure_core::Engine`] on a fixed tick grid, woken early by OOM notifications, events to an
//!   [`Observer`], names from an [`Enrich`] seam, ended by a [`StopToken`] (no signal handler).
//!   `cargo run -p pressure-cgroup --example watch_node` prints the events of the machine's kubepods.
//!
//! - [`footprint::release_startup_pages`] gives back the resident code pages that start-up touched and
//!   [`footprint::drop_executable_cache`] the binary's unmapped page cache, so a watcher's own memory
//!   cgroup is charged for what its loop runs.
//!
//! Errors are [`CgroupError`]s naming the path at fault; [`CgroupError::is_vanished`] marks a cgroup
//! that went away (its container exited), which callers drop quietly.
#![deny(missing_docs)]

mod discover;
mod error;
pub mod footprint;
mod kubepath;
mod layout;
mod limits;
mod notify;
mod reader;
mod watch;

pub use discover::{CgroupRole, KubeCgroup, discover_kubepods, find_pod, scan_pod};
pub use error::CgroupError;
pub use kubepath::{
    PodContainer, ProcCgroupEntry, QosClass, memory_cgroup_entry, parse_cgroup_path,
    parse_proc_cgroup,
};
pub use layout::{CgroupLayout, CgroupVersion, LayoutKind};
pub use limits::raise_nofile_limit;
pub use notify::OomNotifier;
pub use reader::{CgroupReader, MemoryPsi, MemoryStats, OomCounters, PsiLine, ReadBuffer, Refresh};
pub use watch::{
    Enrich, Observer, OomWakeups, PodEnv, Scope, StopToken, WatchError, WatchOptions, Watcher,
};
