//! The typed API: rows, layouts, and values worked out by hand from the synthetic profile.

use pressure_pprof::{Inline, Limits, Profile, TopOptions, top};

use crate::encode::Layout;
use crate::synthetic::inline_recursion;

fn layouts() -> Vec<Layout> {
    let mut out = Vec::new();
    for packed in [false, true] {
        for strings_first in [false, true] {
            for gzip in [false, true] {
                out.push(Layout {
                    packed,
                    strings_first,
                    gzip,
                });
            }
        }
    }
    out
}

#[test]
fn every_wire_layout_gives_the_same_report() {
    let synth = inline_recursion();
    let reports: Vec<_> = layouts()
        .into_iter()
        .map(|l| {
            let p = Profile::decode(&synth.encode(l), &Limits::default()).expect("decodes");
            top(&p, &TopOptions::default()).expect("report")
        })
        .collect();
    for r in &reports[1..] {
        assert_eq!(r, &reports[0]);
    }
}

#[test]
fn rows_follow_pprof_semantics() {
    let p = Profile::decode(
        &inline_recursion().encode(Layout {
            packed: true,
            strings_first: false,
            gzip: true,
        }),
        &Limits::default(),
    )
    .expect("decodes");
    assert_eq!(p.sample_types().len(), 2);
    assert_eq!(p.default_sample_type(), Some("alloc_space"));
    assert_eq!(p.main_binary(), "/usr/local/bin/app");
    let r = top(&p, &TopOptions::default()).expect("report");
    assert_eq!(r.sample_type.r#type, "alloc_space");
    // Sum of |values| of the alloc_space column.
    let small: i64 = (0..12).map(|i| 7 + i).sum();
    let total = 1000 + 3000 + 50000 + 10 + 3000 + 3000 + 7000 + 2500 + small;
    assert_eq!(r.total, total);
    let row = |name: &str| {
        r.rows
            .iter()
            .find(|row| row.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    // main.rec appears three times on one stack: counted once.
    assert_eq!(row("main.rec").cum, 50000 + 10);
    assert_eq!(row("main.rec").flat, 10);
    assert_eq!(row("main.leaf").flat, 50000 + 3000 + 2500);
    // main.b is inlined into main.a at one site and called from main.main at another.
    assert_eq!(row("main.b").inline, Inline::Partial);
    // pong only ever runs inlined into ping.
    assert_eq!(row("main.pong").inline, Inline::Inline);
    assert_eq!(row("main.main").inline, Inline::No);
    assert_eq!(row("main.main").cum, total);
    // Sorted by flat, then name.
    let flats: Vec<i64> = r.rows.iter().map(|row| row.flat.abs()).collect();
    assert!(flats.windows(2).all(|w| w[0] >= w[1]), "{flats:?}");
    // The 0.5 % cutoff hides the small functions (each well under 0.5 % of the total).
    assert!(r.rows.iter().all(|row| !row.name.starts_with("main.s")));
    assert_eq!(r.dropped_nodes, 12);
    let last = r.rows.last().expect("rows");
    assert!((last.sum_pct - 100.0 * r.flat_sum as f64 / total as f64).abs() < 1e-9);
    // --nodecount keeps the first N after sorting and says so.
    let r3 = top(&p, &TopOptions::new(None, 3, true)).expect("report");
    assert_eq!(r3.rows.len(), 3);
    assert_eq!(r3.rows[0].name, "main.main");
    assert!(r3.to_text().contains("Showing top 3 nodes out of"));
}

#[test]
fn diff_base_needs_the_same_sample_types() {
    let read = |name: &str| {
        let path = crate::golden::testdata()
            .join("profiles")
            .join(format!("{name}.pb.gz"));
        Profile::decode(&std::fs::read(path).expect("fixture"), &Limits::default())
            .expect("decodes")
    };
    let (heap, cpu) = (read("leak-2"), read("cpu"));
    let err = heap.diff_base(&cpu).expect_err("heap minus cpu");
    assert!(
        matches!(err, pressure_pprof::PprofError::Incompatible(_)),
        "{err}"
    );
    assert!(err.to_string().contains("space/bytes"), "{err}");
    // A profile minus itself: every function nets to zero, and the total is the base's.
    let zero = top(
        &heap.diff_base(&heap).expect("same types"),
        &TopOptions::default(),
    )
    .expect("report");
    let plain = top(&heap, &TopOptions::default()).expect("report");
    assert_eq!(zero.total, plain.total);
    assert!(
        zero.rows.iter().all(|r| r.flat == 0 && r.cum == 0),
        "{:?}",
        zero.rows
    );
}
