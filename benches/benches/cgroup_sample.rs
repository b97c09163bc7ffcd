//! Per-container sample cost on a real tree of 1 000 v1 memory cgroups (goal: ≤ 20 µs per sample).
//!
//! Builds `/sys/fs/cgroup/memory/pressure-bench-<uuid>/kubepods/burstable/pod<uid>/<id>` (100 pods × 10
//! containers, 256 MiB limit each), opens a `CgroupReader` per container and measures:
//! - `sample/one_container`: one `read` (usage, limit, memory.stat, memory.oom_control via pread);
//! - `sample/1000_containers`: one poll cycle over all of them (throughput in samples);
//! - `discover/1000_containers`: the kubepods walk a node-mode rescan does.
//!
//! The tree is removed afterwards, also on panic. Needs root and the v1 memory hierarchy; otherwise it
//! prints why and does nothing. Run: `cargo bench -p benches --bench cgroup_sample`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use pressure_cgroup::{
    CgroupReader, CgroupVersion, ReadBuffer, discover_kubepods, raise_nofile_limit,
};
use pressure_testkit::{CgroupDirs, unique_container_id, unique_pod_uid, v1_memcg_available};

const PODS: usize = 100;
const CONTAINERS_PER_POD: usize = 10;

fn main() {
    let root = match v1_memcg_available() {
        Ok(root) => root,
        Err(reason) => {
            eprintln!("cgroup_sample: skipped: {reason}");
            return;
        }
    };
    raise_nofile_limit().expect("raising RLIMIT_NOFILE");
    let parent = root.join(format!("pressure-bench-{}", unique_pod_uid()));
    let mut dirs = CgroupDirs::new();
    let mut containers: Vec<PathBuf> = Vec::with_capacity(PODS * CONTAINERS_PER_POD);
    for _ in 0..PODS {
        let pod = parent
            .join("kubepods/burstable")
            .join(format!("pod{}", unique_pod_uid()));
        for _ in 0..CONTAINERS_PER_POD {
            let dir = pod.join(unique_container_id());
            dirs.create_all(&dir).expect("mkdir");
            std::fs::write(
                dir.join("memory.limit_in_bytes"),
                (256u64 << 20).to_string(),
            )
            .expect("limit");
            containers.push(dir);
        }
    }
    let mut readers: Vec<CgroupReader> = containers
        .iter()
        .map(|d| CgroupReader::open(d, CgroupVersion::V1).expect("open"))
        .collect();
    let mut buf = ReadBuffer::new();
    for r in &mut readers {
        r.read(&mut buf).expect("warm-up read");
    }

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut group = c.benchmark_group("sample");
        let mut next = 0;
        let count = readers.len();
        group.throughput(Throughput::Elements(1));
        group.bench_function("one_container", |b| {
            b.iter(|| {
                let r = &mut readers[next % count];
                next += 1;
                black_box(r.read(&mut buf).expect("read"))
            })
        });
        group.throughput(Throughput::Elements(readers.len() as u64));
        group.bench_function("1000_containers", |b| {
            b.iter(|| {
                for r in &mut readers {
                    black_box(r.read(&mut buf).expect("read"));
                }
            })
        });
        group.finish();
    }
    {
        let mut group = c.benchmark_group("discover");
        group.throughput(Throughput::Elements(readers.len() as u64));
        group.bench_function("1000_containers", |b| {
            b.iter(|| {
                let found = discover_kubepods(&parent).expect("walk");
                assert_eq!(found.len(), PODS * (CONTAINERS_PER_POD + 1));
                black_box(found)
            })
        });
        group.finish();
    }
    c.final_summary();
    // Wall time above includes preemption on a busy machine; thread CPU time does not.
    let cycles = 20;
    let before = thread_cpu();
    for _ in 0..cycles {
        for r in &mut readers {
            black_box(r.read(&mut buf).expect("read"));
        }
    }
    let per_sample = (thread_cpu() - before) / (cycles * readers.len()) as u32;
    eprintln!(
        "cgroup_sample: CPU time per container sample, every file read: {:.2} µs \
         (goal ≤ 20 µs), {} samples",
        per_sample.as_secs_f64() * 1e6,
        cycles * readers.len()
    );
    // The watcher's steady state on idle containers: memory.stat only every 10th sample (see
    // `CgroupReader::set_stat_skip_below`; pressured passes warn - hysteresis - 5 % = 60 %).
    for r in &mut readers {
        r.set_stat_skip_below(0.6);
    }
    let before = thread_cpu();
    for _ in 0..cycles {
        for r in &mut readers {
            black_box(r.read(&mut buf).expect("read"));
        }
    }
    let per_sample = (thread_cpu() - before) / (cycles * readers.len()) as u32;
    eprintln!(
        "cgroup_sample: CPU time per idle container sample as pressured takes it \
         (memory.stat every 10th): {:.2} µs",
        per_sample.as_secs_f64() * 1e6
    );
    drop(readers);
    dirs.remove_all();
    eprintln!(
        "cgroup_sample: removed {} ({} container cgroups)",
        parent.display(),
        containers.len()
    );
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
