//! Synthetic profiles for the corners real Go profiles rarely hit: partial inlining, recursion,
//! unnamed frames, C++-looking names, odd units, diff bases, negative values, empty profiles.
//! Each is checked against `go tool pprof -top` (live, or its recorded output).

use crate::encode::{Layout, Synth, SynthLocation};
use crate::golden::check_bytes;

fn many_small(base_fid: u64, base_loc: u64, n: u64) -> (Vec<SynthLocation>, Vec<u64>) {
    let locs = (0..n)
        .map(|i| (base_loc + i, 1, 0x1000 + i, vec![(base_fid + i, 1)]))
        .collect();
    (locs, (0..n).map(|i| base_loc + i).collect())
}

const SMALL_NAMES: [&str; 12] = [
    "main.s00", "main.s01", "main.s02", "main.s03", "main.s04", "main.s05", "main.s06", "main.s07",
    "main.s08", "main.s09", "main.s10", "main.s11",
];

pub(crate) fn inline_recursion() -> Synth {
    let mut s = Synth {
        sample_types: vec![("alloc_objects", "count"), ("alloc_space", "bytes")],
        default_sample_type: "alloc_space",
        functions: vec![
            (1, "main.main", "main.main", "main.go", 10),
            (2, "main.a", "main.a", "main.go", 20),
            (3, "main.b", "main.b", "main.go", 30),
            (4, "main.rec", "main.rec", "main.go", 40),
            (5, "main.leaf", "main.leaf", "main.go", 50),
            (6, "runtime.mallocgc", "runtime.mallocgc", "malloc.go", 60),
            (7, "main.tie", "main.tie", "main.go", 70),
            (8, "main.ping", "main.ping", "main.go", 80),
            (9, "main.pong", "main.pong", "main.go", 90),
        ],
        locations: vec![
            (1, 1, 0x10, vec![(1, 11)]),
            (2, 1, 0x20, vec![(3, 31), (2, 21)]),
            (3, 1, 0x30, vec![(3, 32)]),
            (4, 1, 0x40, vec![(4, 41)]),
            (5, 1, 0x50, vec![(5, 51)]),
            (6, 1, 0x60, vec![(6, 61)]),
            (7, 1, 0x70, vec![(7, 71)]),
            // ping with pong inlined into it, and pong calling ping: recursion through inlining.
            (8, 1, 0x80, vec![(9, 91), (8, 81)]),
            (9, 1, 0x90, vec![(5, 52), (5, 53)]),
        ],
        samples: vec![
            (vec![6, 2, 1], vec![1, 1000], vec![]),
            (vec![6, 3, 1], vec![2, 3000], vec![]),
            (vec![5, 4, 4, 4, 1], vec![5, 50000], vec![]),
            (vec![4, 1], vec![1, 10], vec![]),
            (vec![7, 1], vec![3, 3000], vec![]),
            (vec![5, 1], vec![3, 3000], vec![]),
            (vec![6, 8, 8, 8, 1], vec![4, 7000], vec![]),
            (vec![9, 2, 1], vec![1, 2500], vec![]),
            (vec![6, 2, 1], vec![0, 0], vec![]),
        ],
        mappings: vec![(1, "/usr/local/bin/app", "abc123")],
        time_nanos: 1_764_000_000_000_000_000,
        period_type: Some(("space", "bytes")),
        period: 524288,
        ..Synth::default()
    };
    let (locs, ids) = many_small(100, 100, SMALL_NAMES.len() as u64);
    for (i, name) in SMALL_NAMES.iter().enumerate() {
        s.functions
            .push((100 + i as u64, name, name, "small.go", 1));
        s.samples
            .push((vec![ids[i], 1], vec![1, 7 + i as i64], vec![]));
    }
    s.locations.extend(locs);
    s
}

pub(crate) fn names_units() -> Synth {
    Synth {
        sample_types: vec![
            ("cpu", "nanoseconds"),
            ("widgets", "widgets"),
            ("samples", "count"),
        ],
        functions: vec![
            (
                1,
                "ns::Foo<int>::bar(int)",
                "ns::Foo<int>::bar(int)",
                "foo.cc",
                1,
            ),
            (2, "", "", "", 10),
            (3, "", "", "", 20),
            (4, "pretty", "_ZN3fooE", "", 0),
            (
                5,
                "java.lang.Thread.run",
                "java.lang.Thread.run",
                "Thread.java",
                0,
            ),
            (
                6,
                "std::vector<int>::push_back",
                "std::vector<int>::push_back",
                "",
                0,
            ),
            (7, "", "sys_only", "", 0),
            (8, "main.(*T[...]).M", "main.(*T[...]).M", "t.go", 0),
            (9, "x::y(a(b))c", "x::y(a(b))c", "", 0),
        ],
        locations: vec![
            (1, 1, 0x10, vec![(1, 1)]),
            (2, 2, 0x20, vec![(2, 1)]),
            (3, 2, 0x30, vec![(3, 1)]),
            (4, 1, 0x40, vec![(4, 1)]),
            (5, 1, 0x50, vec![(5, 1)]),
            (6, 1, 0x60, vec![(6, 1)]),
            (7, 1, 0x70, vec![(7, 1)]),
            (8, 1, 0x80, vec![(8, 1)]),
            (9, 1, 0x90, vec![]),
            (10, 0, 0xa0, vec![]),
            (11, 1, 0xb0, vec![(9, 1)]),
        ],
        samples: vec![
            (vec![1, 5], vec![10_000_000, 3, 1], vec![]),
            (vec![2, 5], vec![20_000_000, 3, 2], vec![]),
            (vec![3, 5], vec![20_000_000, 3, 2], vec![]),
            (vec![4, 6, 5], vec![1_500_000_000, 0, 150], vec![]),
            (vec![7, 8, 5], vec![3_000_000, 12, 3], vec![]),
            (vec![9, 5], vec![40_000_000, 1, 4], vec![]),
            (vec![10, 9, 5], vec![7_000_000, 2, 7], vec![]),
            (vec![11, 5], vec![70_000, 1, 1], vec![]),
        ],
        mappings: vec![
            (1, "/opt/app/bin/server", "feedface"),
            (2, "/usr/lib/libfoo.so", ""),
        ],
        comments: vec!["collected by a test", "#hidden comment"],
        time_nanos: 1_700_000_000_123_456_789,
        duration_nanos: 30_000_000_000,
        period_type: Some(("cpu", "nanoseconds")),
        period: 10_000_000,
        ..Synth::default()
    }
}

pub(crate) fn diff_base() -> Synth {
    Synth {
        sample_types: vec![("inuse_space", "bytes")],
        functions: vec![
            (1, "main.main", "main.main", "", 0),
            (2, "main.grow", "main.grow", "", 0),
            (3, "main.shrink", "main.shrink", "", 0),
        ],
        locations: vec![
            (1, 0, 0, vec![(1, 1)]),
            (2, 0, 0, vec![(2, 1)]),
            (3, 0, 0, vec![(3, 1)]),
        ],
        samples: vec![
            (vec![2, 1], vec![4 << 20], vec![("pprof::base", "true")]),
            (vec![3, 1], vec![-(1 << 20)], vec![("pprof::base", "true")]),
            (vec![2, 1], vec![5 << 20], vec![("other", "x")]),
            (vec![3, 1], vec![-(3 << 20)], vec![]),
        ],
        ..Synth::default()
    }
}

pub(crate) fn pruned() -> Synth {
    Synth {
        sample_types: vec![("alloc_space", "bytes")],
        drop_frames: r"runtime\..*|operator new|x::drop",
        keep_frames: r"runtime\.keep.*",
        functions: vec![
            (1, "main.main", "main.main", "", 0),
            (2, "main.work", "main.work", "", 0),
            (3, "runtime.mallocgc", "runtime.mallocgc", "", 0),
            (4, "runtime.keepme", "runtime.keepme", "", 0),
            (
                5,
                "operator new(unsigned long)",
                "operator new(unsigned long)",
                "",
                0,
            ),
            (6, "x::drop(int)", "x::drop(int)", "", 0),
            (
                7,
                "(anonymous namespace)::f()",
                "(anonymous namespace)::f()",
                "",
                0,
            ),
            (8, "runtime.goexit", "runtime.goexit", "", 0),
            (9, "main.leaf", "main.leaf", "", 0),
        ],
        locations: vec![
            (1, 0, 0, vec![(1, 1)]),
            (2, 0, 0, vec![(2, 1)]),
            (3, 0, 0, vec![(3, 1)]),
            (4, 0, 0, vec![(4, 1)]),
            (5, 0, 0, vec![(5, 1)]),
            // main.leaf inlined into x::drop inlined into main.work.
            (6, 0, 0, vec![(9, 1), (6, 1), (2, 2)]),
            (7, 0, 0, vec![(7, 1)]),
            (8, 0, 0, vec![(8, 1)]),
        ],
        samples: vec![
            (vec![3, 2, 1, 8], vec![100], vec![]),
            (vec![4, 3, 2, 1, 8], vec![200], vec![]),
            (vec![5, 2, 1, 8], vec![400], vec![]),
            (vec![6, 1, 8], vec![800], vec![]),
            (vec![3, 7, 1], vec![1600], vec![]),
            (vec![2, 3, 8], vec![3200], vec![]),
            (vec![3], vec![6400], vec![]),
        ],
        ..Synth::default()
    }
}

pub(crate) fn empty() -> Synth {
    Synth {
        sample_types: vec![("goroutine", "count")],
        ..Synth::default()
    }
}

const RAW: Layout = Layout {
    packed: true,
    strings_first: false,
    gzip: false,
};
const UNPACKED_FIRST: Layout = Layout {
    packed: false,
    strings_first: true,
    gzip: false,
};
const GZIP: Layout = Layout {
    packed: true,
    strings_first: false,
    gzip: true,
};

#[test]
fn synthetic_inline_recursion_matches_go() {
    let data = inline_recursion().encode(GZIP);
    for args in [
        &[][..],
        &["-sample_index=alloc_objects"],
        &["-cum"],
        &["-nodecount=3"],
        &["-nodecount=4", "-cum"],
        &["-sample_index=0", "-nodecount=6"],
    ] {
        check_bytes("synthetic_inline_recursion", &data, args);
    }
}

#[test]
fn synthetic_names_units_match_go() {
    let data = names_units().encode(UNPACKED_FIRST);
    for args in [
        &[][..],
        &["-sample_index=cpu"],
        &["-sample_index=widgets", "-cum"],
        &["-nodecount=2"],
    ] {
        check_bytes("synthetic_names_units", &data, args);
    }
}

#[test]
fn synthetic_diff_base_matches_go() {
    let data = diff_base().encode(RAW);
    for args in [&[][..], &["-cum"]] {
        check_bytes("synthetic_diff_base", &data, args);
    }
}

#[test]
fn synthetic_drop_frames_match_go() {
    let data = pruned().encode(RAW);
    for args in [&[][..], &["-cum"]] {
        check_bytes("synthetic_drop_frames", &data, args);
    }
}

#[test]
fn synthetic_empty_matches_go() {
    check_bytes("synthetic_empty", &empty().encode(RAW), &[]);
}
