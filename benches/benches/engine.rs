//! Threshold engine throughput: sample evaluations per second at 10, 1 000 and 10 000 containers, for
//! steady, oscillating (inside the hysteresis band, around warn) and ramping series.
//!
//! One iteration = one poll cycle: every container gets one reading. Throughput is reported in
//! elements (= sample evaluations) per second of the thread's CPU time. Goal: >= 50 M/s on one core at
//! 10 000 containers.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use benches::ThreadCpuTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pressure_core::{Engine, Reading, SlotId, Target, ThresholdsConfig};

const LIMIT: u64 = 1 << 30;

#[derive(Clone, Copy)]
enum Series {
    Steady,
    Oscillating,
    Ramping,
}

impl Series {
    fn name(self) -> &'static str {
        match self {
            Series::Steady => "steady",
            Series::Oscillating => "oscillating",
            Series::Ramping => "ramping",
        }
    }

    /// Usage of container `c` in cycle `k`.
    fn usage(self, c: usize, k: u64) -> u64 {
        let bytes = |pct: f64| (pct / 100.0 * LIMIT as f64) as u64;
        match self {
            Series::Steady => bytes(40.0 + (c % 20) as f64),
            // Around warn (70 %), inside its 5 % hysteresis band after the first rise.
            Series::Oscillating => bytes(if k.is_multiple_of(2) { 71.0 } else { 66.0 }),
            // 10 % → 100 % over 900 cycles, then over again: crosses warn and critical, predicts.
            Series::Ramping => bytes(10.0 + ((k + c as u64) % 900) as f64 * 0.1),
        }
    }
}

/// The usages of `n` containers in bytes, precomputed outside the measured loop so that the benchmark
/// measures the engine and not the series generator: a cycle reads one slice front to back.
struct Table {
    series: Series,
    n: usize,
    /// Steady: one row. Oscillating: the rows of even and odd cycles. Ramping: `usage(j, 0)` for
    /// `j < n + 900`, whose window at `k % 900` is cycle `k`'s row (the ramp's period is 900 cycles).
    usages: Vec<u64>,
}

impl Table {
    fn new(series: Series, n: usize) -> Table {
        let usages = match series {
            Series::Steady => (0..n).map(|c| series.usage(c, 0)).collect(),
            Series::Oscillating => (0..2)
                .flat_map(|k| (0..n).map(move |c| series.usage(c, k)))
                .collect(),
            Series::Ramping => (0..n + 900).map(|j| series.usage(j, 0)).collect(),
        };
        Table { series, n, usages }
    }

    /// The usages of cycle `k`, container by container.
    fn row(&self, k: u64) -> &[u64] {
        let start = match self.series {
            Series::Steady => 0,
            Series::Oscillating => (k % 2) as usize * self.n,
            Series::Ramping => (k % 900) as usize,
        };
        &self.usages[start..start + self.n]
    }
}

fn setup(n: usize) -> (Engine, Vec<SlotId>) {
    let mut engine = Engine::new(&ThresholdsConfig::default(), false);
    let ids = (0..n)
        .map(|i| {
            engine.track(&Target {
                namespace: Some("bench".into()),
                pod_name: Some(format!("pod-{i}").into()),
                pod_uid: Some(format!("00000000-0000-0000-0000-{i:012}").into()),
                container_name: Some("app".into()),
                ..Target::default()
            })
        })
        .collect();
    (engine, ids)
}

fn engine(c: &mut Criterion<ThreadCpuTime>) {
    for series in [Series::Steady, Series::Oscillating, Series::Ramping] {
        let mut group = c.benchmark_group(format!("engine/{}", series.name()));
        for n in [10usize, 1_000, 10_000] {
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                let (mut engine, ids) = setup(n);
                let table = Table::new(series, n);
                let mut out = Vec::with_capacity(n);
                let mut k = 0u64;
                b.iter(|| {
                    k += 1;
                    let now = k as f64;
                    let ts = UNIX_EPOCH + Duration::from_secs(k);
                    for (&id, &usage) in ids.iter().zip(table.row(k)) {
                        let reading = Reading {
                            oom_kill_count: Some(0),
                            ..Reading::new(ts, usage, Some(LIMIT))
                        };
                        engine.observe(id, black_box(&reading), now, &mut out);
                    }
                    black_box(out.len());
                    out.clear();
                    engine.end_cycle();
                });
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = engine
}
criterion_main!(benches);
