//! Callgrind driver of `scripts/engine-callgrind.sh`: the loop of `benches/engine` (10 000 containers,
//! the same series) for a fixed number of cycles, so that two builds of the engine execute the same
//! samples (criterion's `--profile-time` runs as many iterations as fit, and a trend's cost depends on
//! its age). Usage: driver SERIES WARMUP MEASURED; only `measure` is counted.
//! The feature `old` builds it against the engine before `Engine::new` took the thresholds (4d48bdc).
use pressure_core::{Engine, Reading, SlotId, Target};
use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};
const LIMIT: u64 = 1 << 30;
const N: usize = 10_000;
fn usage(series: &str, c: usize, k: u64) -> u64 {
    let bytes = |pct: f64| (pct / 100.0 * LIMIT as f64) as u64;
    match series {
        "steady" => bytes(40.0 + (c % 20) as f64),
        "oscillating" => bytes(if k.is_multiple_of(2) { 71.0 } else { 66.0 }),
        _ => bytes(10.0 + ((k + c as u64) % 900) as f64 * 0.1),
    }
}
#[inline(never)]
fn cycles(
    engine: &mut Engine,
    ids: &[SlotId],
    rows: &[Vec<u64>],
    from: u64,
    to: u64,
    out: &mut Vec<pressure_core::Event>,
) -> usize {
    let mut events = 0;
    for k in from..to {
        let now = k as f64;
        let ts = UNIX_EPOCH + Duration::from_secs(k);
        let row = &rows[(k % rows.len() as u64) as usize];
        for (&id, &u) in ids.iter().zip(row) {
            let reading = Reading {
                oom_kill_count: Some(0),
                ..Reading::new(ts, u, Some(LIMIT))
            };
            engine.observe(id, black_box(&reading), now, out);
        }
        events += black_box(out.len());
        out.clear();
        engine.end_cycle();
    }
    events
}
#[inline(never)]
fn measure(
    engine: &mut Engine,
    ids: &[SlotId],
    rows: &[Vec<u64>],
    from: u64,
    to: u64,
    out: &mut Vec<pressure_core::Event>,
) -> usize {
    cycles(engine, ids, rows, from, to, out)
}
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let series = a[1].as_str();
    let warm: u64 = a[2].parse().unwrap();
    let meas: u64 = a[3].parse().unwrap();
    #[cfg(feature = "old")]
    let mut engine = Engine::new(&pressure_core::Config::default());
    #[cfg(not(feature = "old"))]
    let mut engine = Engine::new(&pressure_core::ThresholdsConfig::default(), false);
    let ids: Vec<SlotId> = (0..N)
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
    let period = match series {
        "steady" => 1,
        "oscillating" => 2,
        _ => 900,
    };
    let rows: Vec<Vec<u64>> = (0..period)
        .map(|k| (0..N).map(|c| usage(series, c, k)).collect())
        .collect();
    let mut out = Vec::with_capacity(N);
    let w = cycles(&mut engine, &ids, &rows, 1, 1 + warm, &mut out);
    let m = measure(
        &mut engine,
        &ids,
        &rows,
        1 + warm,
        1 + warm + meas,
        &mut out,
    );
    println!(
        "{series}: warm-up events {w}, measured events {m} over {} samples",
        meas * N as u64
    );
}
