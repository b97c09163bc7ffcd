//! Cost of the tracer's kernel-log path: parsing whole OOM-kill reports (every record of the
//! kernel's dump, as `/dev/kmsg` delivers them).
//!
//! Context for `scripts/bench-oom-tracer.sh` (kill -> event p99 goal <= 50 ms): the parsing share
//! of that budget.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pressure_ebpf::{parse_kmsg_record, parse_oom_message};

const REPORTS: [(&str, &str); 3] = [
    (
        "memcg_v1_6.18",
        include_str!("../../pressure-ebpf/tests/fixtures/kmsg/memcg_v1_kernel_6.18.kmsg"),
    ),
    (
        "memcg_v2_6.1",
        include_str!("../../pressure-ebpf/tests/fixtures/kmsg/memcg_v2_kernel_6.1.kmsg"),
    ),
    (
        "global_6.1",
        include_str!("../../pressure-ebpf/tests/fixtures/kmsg/global_kernel_6.1.kmsg"),
    ),
];

fn parse_report(text: &str) -> usize {
    let mut found = 0;
    for line in text.lines().filter(|l| !l.starts_with(' ')) {
        if let Ok(rec) = parse_kmsg_record(line)
            && let Ok(Some(_)) = parse_oom_message(&rec.message)
        {
            found += 1;
        }
    }
    found
}

fn kmsg_reports(c: &mut Criterion) {
    let mut group = c.benchmark_group("oom_kmsg_report");
    for (name, text) in REPORTS {
        assert_eq!(parse_report(text), 2, "{name}: summary and Killed records");
        group.throughput(Throughput::Elements(text.lines().count() as u64));
        group.bench_function(name, |b| b.iter(|| parse_report(black_box(text))));
    }
    group.finish();
}

criterion_group!(benches, kmsg_reports);
criterion_main!(benches);
