//! Prints the memory of the cgroup this process runs in, the way `pressured` samples a container.
//!
//! ```text
//! cargo run -p pressure-cgroup --example own_memory [-- /sys/fs/cgroup [/proc/self/cgroup]]
//! ```
//!
//! Works as any user on cgroup v1, v2 or hybrid hosts: it only reads world-readable files. The
//! cgroup root and the `/proc/<pid>/cgroup` file are arguments so the same code runs against a
//! fixture tree.

use std::error::Error;
use std::path::PathBuf;

use pressure_cgroup::{
    CgroupLayout, CgroupReader, ReadBuffer, memory_cgroup_entry, parse_cgroup_path,
    parse_proc_cgroup,
};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let root = args
        .next()
        .map_or_else(|| PathBuf::from("/sys/fs/cgroup"), PathBuf::from);
    let proc_cgroup = args
        .next()
        .map_or_else(|| PathBuf::from("/proc/self/cgroup"), PathBuf::from);

    // Which hierarchy holds the memory controller decides where our cgroup lives.
    let layout = CgroupLayout::detect(&root)?;
    let text = std::fs::read_to_string(&proc_cgroup)?;
    let entries = parse_proc_cgroup(&text);
    let entry = memory_cgroup_entry(&entries)
        .ok_or_else(|| format!("{}: no memory cgroup entry", proc_cgroup.display()))?;
    let dir = layout.memory_dir(&entry.path);
    println!("layout:  {:?} ({:?})", layout.kind(), layout.version());
    println!("cgroup:  {} -> {}", entry.path, dir.display());
    if let Some(pod) = parse_cgroup_path(&entry.path) {
        println!(
            "pod:     {} ({}), container {:?}",
            pod.pod_uid, pod.qos, pod.container_id
        );
    }

    // One buffer serves any number of readers; each read is a few `pread`s, no allocation.
    let mut buf = ReadBuffer::new();
    let mut reader = CgroupReader::open(&dir, layout.version())?;
    let stats = reader.read(&mut buf)?;
    println!("usage:   {} bytes", stats.usage_bytes);
    match stats.limit_bytes {
        Some(limit) => println!("limit:   {limit} bytes"),
        None => println!("limit:   unlimited"),
    }
    println!(
        "working: {} bytes (inactive file {} bytes)",
        stats.working_set_bytes, stats.inactive_file_bytes
    );
    println!("oom:     {} kills", stats.oom.oom_kill);
    if let Some(psi) = stats.psi {
        println!(
            "psi:     some avg10={:.2} full avg10={:.2}",
            psi.some.avg10, psi.full.avg10
        );
    }
    Ok(())
}
