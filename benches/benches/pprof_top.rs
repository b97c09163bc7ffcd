//! `pressure-pprof`: decode + `top` throughput on heap profiles of 10 000, 100 000 and 300 000
//! samples (synthetic, Go-shaped: deep stacks over thousands of functions, gzip-compressed), and on
//! the real Go heap profile committed in `pressure-pprof/testdata`.
//!
//! The end-to-end comparison with `go tool pprof -top` (wall time and peak RSS, goal >= 20x faster
//! and <= 1/5 of the memory) is `scripts/bench-pprof.sh`.

use std::hint::black_box;
use std::io::Write;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pressure_pprof::{Limits, Profile, TopOptions, top};

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn field(buf: &mut Vec<u8>, number: u64, data: &[u8]) {
    varint(buf, number << 3 | 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn int(buf: &mut Vec<u8>, number: u64, v: u64) {
    varint(buf, number << 3);
    varint(buf, v);
}

/// A gzip heap profile with `samples` distinct stacks of depth 12 over 3 000 functions.
fn synthetic_heap(samples: u64) -> Vec<u8> {
    const FUNCS: u64 = 3000;
    let mut p = Vec::new();
    let mut strings: Vec<String> = vec![String::new()];
    for t in [
        "alloc_objects",
        "count",
        "alloc_space",
        "bytes",
        "inuse_objects",
        "inuse_space",
    ] {
        strings.push(t.to_owned());
    }
    for (t, u) in [(1, 2), (3, 4), (5, 2), (6, 4)] {
        let mut vt = Vec::new();
        int(&mut vt, 1, t);
        int(&mut vt, 2, u);
        field(&mut p, 1, &vt);
    }
    for f in 1..=FUNCS {
        strings.push(format!("main.f{f}"));
        let mut m = Vec::new();
        int(&mut m, 1, f);
        int(&mut m, 2, strings.len() as u64 - 1);
        field(&mut p, 5, &m);
        let mut line = Vec::new();
        int(&mut line, 1, f);
        let mut loc = Vec::new();
        int(&mut loc, 1, f);
        field(&mut loc, 4, &line);
        field(&mut p, 4, &loc);
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..samples {
        let mut locs = Vec::new();
        for _ in 0..12 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            varint(&mut locs, 1 + x % FUNCS);
        }
        let mut vals = Vec::new();
        for v in [1, 64 + x % 4096, x % 2, (x % 2) * (64 + x % 4096)] {
            varint(&mut vals, v);
        }
        let mut s = Vec::new();
        field(&mut s, 1, &locs);
        field(&mut s, 2, &vals);
        field(&mut p, 2, &s);
    }
    for s in &strings {
        field(&mut p, 6, s.as_bytes());
    }
    int(&mut p, 14, 6);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&p).expect("gzip to memory");
    enc.finish().expect("gzip to memory")
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("pprof_top");
    group.sample_size(10);
    for samples in [10_000u64, 100_000, 300_000] {
        let data = synthetic_heap(samples);
        group.throughput(Throughput::Elements(samples));
        group.bench_with_input(BenchmarkId::new("decode", samples), &data, |b, data| {
            b.iter(|| Profile::decode(black_box(data), &limits).expect("decodes"));
        });
        let profile = Profile::decode(&data, &limits).expect("decodes");
        group.bench_with_input(BenchmarkId::new("top", samples), &profile, |b, profile| {
            b.iter(|| top(black_box(profile), &TopOptions::default()).expect("report"));
        });
    }
    let real = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pressure-pprof/testdata/profiles/heap.pb.gz");
    if let Ok(data) = std::fs::read(&real) {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function("decode_top_go_heap", |b| {
            b.iter(|| {
                let p = Profile::decode(black_box(&data), &limits).expect("decodes");
                top(&p, &TopOptions::default()).expect("report").to_text()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
