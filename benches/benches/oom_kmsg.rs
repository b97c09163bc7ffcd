//! Cost of the tracer's kernel-log path: parsing whole OOM-kill reports (every record of the
//! kernel's dump, as `/dev/kmsg` delivers them).
//!
//! Context for `scripts/bench-oom-tracer.sh` (kill -> event p99 goal <= 50 ms): the parsing share
//! of that budget.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pressure_ebpf::{OomRecord, ReportAssembler, parse_kmsg_record, parse_oom_message};

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

/// As the tracer does: every record into the report assembler, the OOM records parsed, the report
/// taken at the summary.
fn parse_report(text: &str) -> usize {
    let mut found = 0;
    let mut reports = ReportAssembler::new(4);
    for line in text.lines().filter(|l| !l.starts_with(' ')) {
        let Ok(rec) = parse_kmsg_record(line) else {
            continue;
        };
        reports.push(rec.usec, &rec.message);
        if let Ok(Some(oom)) = parse_oom_message(&rec.message) {
            if matches!(oom, OomRecord::Summary(_)) {
                found += reports.finish().map_or(0, |r| r.top_tasks.len());
            }
            found += 1;
        }
    }
    found
}

fn kmsg_reports(c: &mut Criterion) {
    let mut group = c.benchmark_group("oom_kmsg_report");
    for (name, text) in REPORTS {
        assert_eq!(
            parse_report(text),
            3,
            "{name}: summary, Killed, one dumped task"
        );
        group.throughput(Throughput::Elements(text.lines().count() as u64));
        group.bench_function(name, |b| b.iter(|| parse_report(black_box(text))));
    }
    group.finish();
}

criterion_group!(benches, kmsg_reports);
criterion_main!(benches);
