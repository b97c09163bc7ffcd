//! Hostile input: truncation, corruption, gzip bombs, size caps, broken references.

use std::time::Instant;

use pressure_pprof::{Limits, PprofError, Profile, TopOptions, top};

use crate::encode::{Layout, bytes, gzip, int, key, varint};
use crate::synthetic::{inline_recursion, names_units};

const RAW: Layout = Layout {
    packed: true,
    strings_first: false,
    gzip: false,
};

fn decode(data: &[u8]) -> Result<Profile, PprofError> {
    Profile::decode(data, &Limits::default())
}

#[test]
fn every_truncation_of_a_raw_profile_is_an_error() {
    let data = inline_recursion().encode(RAW);
    assert!(decode(&data).is_ok());
    for len in 1..data.len() {
        // Some prefixes end exactly on a field boundary and are valid profiles (fields are
        // independent); the others must be typed errors, and nothing may panic.
        match decode(&data[..len]) {
            Ok(p) => {
                let _ = top(&p, &TopOptions::default());
            }
            Err(
                PprofError::Truncated { .. }
                | PprofError::Message { .. }
                | PprofError::Invalid(_)
                | PprofError::StringIndex { .. },
            ) => {}
            Err(other) => panic!("prefix {len}: unexpected error {other}"),
        }
    }
    // Cutting inside the string table (it comes last) is always detectable.
    let err = decode(&data[..data.len() - 1]).expect_err("cut inside the last string");
    assert!(
        matches!(
            err,
            PprofError::Truncated {
                field: "Profile.string_table",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn every_truncation_of_a_gzip_profile_is_an_error() {
    let data = gzip(&names_units().encode(RAW));
    for len in 2..data.len() {
        let err = decode(&data[..len]).expect_err("truncated gzip must not decode");
        assert!(
            matches!(err, PprofError::Truncated { .. } | PprofError::Gzip { .. }),
            "prefix {len}: {err}"
        );
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let data = inline_recursion().encode(RAW);
    for i in 0..data.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut d = data.clone();
            d[i] ^= flip;
            if let Ok(p) = decode(&d) {
                for cum in [false, true] {
                    let _ = top(&p, &TopOptions::new(None, 3, cum)).map(|r| r.to_text());
                }
            }
        }
    }
}

/// A valid protobuf that decompresses to `size` bytes: repeated `comment = 0` fields.
fn comment_bomb(size: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let chunk: Vec<u8> = [0x68u8, 0x00].repeat(32 * 1024);
    let mut written = 0;
    while written < size {
        enc.write_all(&chunk).expect("gzip to memory");
        written += chunk.len();
    }
    enc.finish().expect("gzip to memory")
}

#[test]
fn gzip_bomb_stops_at_the_decompressed_cap() {
    let bomb = comment_bomb(64 << 20);
    assert!(bomb.len() < 1 << 20, "bomb is small: {}", bomb.len());
    let limits = Limits::new(16 << 20, 4 << 20);
    let start = Instant::now();
    let err = Profile::decode(&bomb, &limits).expect_err("bomb must be refused");
    assert!(
        matches!(err, PprofError::DecompressedTooLarge { limit, .. } if limit == 4 << 20),
        "{err}"
    );
    eprintln!(
        "gzip bomb (64 MiB) refused at 4 MiB in {:?}",
        start.elapsed()
    );
}

#[test]
fn a_claimed_length_over_the_cap_is_refused_before_reading() {
    let mut raw = Vec::new();
    key(&mut raw, 6, 2);
    varint(&mut raw, 1 << 40);
    raw.extend_from_slice(&[0u8; 64]);
    // The field cap refuses it first; without one, the decompressed cap or the input's end does.
    let err = Profile::decode(&gzip(&raw), &Limits::default()).expect_err("refused");
    assert!(
        matches!(
            err,
            PprofError::FieldTooLarge {
                field: "Profile.string_table",
                size: 0x100_0000_0000,
                ..
            }
        ),
        "{err}"
    );
    let no_field_cap = Limits::new(1 << 20, 1 << 20).with_max_field_bytes(u64::MAX);
    let err = Profile::decode(&gzip(&raw), &no_field_cap).expect_err("refused");
    assert!(
        matches!(
            err,
            PprofError::DecompressedTooLarge {
                field: "Profile.string_table",
                ..
            }
        ),
        "{err}"
    );
    let no_field_cap = Limits::default().with_max_field_bytes(u64::MAX);
    let err = Profile::decode(&raw, &no_field_cap).expect_err("raw: truncated");
    assert!(
        matches!(
            err,
            PprofError::Truncated {
                field: "Profile.string_table",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn compressed_cap_applies_to_the_input() {
    let data = inline_recursion().encode(RAW);
    let err = Profile::decode(&data, &Limits::new(10, 1 << 20)).expect_err("too large");
    assert!(
        matches!(err, PprofError::CompressedTooLarge { limit: 10, .. }),
        "{err}"
    );
    let err = Profile::decode_reader(&data[..], &Limits::new(10, 1 << 20)).expect_err("too large");
    assert!(
        matches!(err, PprofError::CompressedTooLarge { limit: 10, .. }),
        "{err}"
    );
    let err = Profile::decode(&data, &Limits::new(1 << 20, 10)).expect_err("raw over cap");
    assert!(
        matches!(err, PprofError::DecompressedTooLarge { .. }),
        "{err}"
    );
}

/// A minimal valid profile body plus `extra`, with string table `["", "t", "u", "f"]`.
fn with(extra: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    let mut vt = Vec::new();
    int(&mut vt, 1, 1);
    int(&mut vt, 2, 2);
    bytes(&mut p, 1, &vt);
    p.extend_from_slice(extra);
    for s in ["", "t", "u", "f"] {
        bytes(&mut p, 6, s.as_bytes());
    }
    p
}

fn sample(locs: &[u64], values: &[i64]) -> Vec<u8> {
    let mut s = Vec::new();
    for &l in locs {
        int(&mut s, 1, l as i64);
    }
    for &v in values {
        key(&mut s, 2, 0);
        varint(&mut s, v as u64);
    }
    let mut out = Vec::new();
    bytes(&mut out, 2, &s);
    out
}

fn location(id: u64, function: u64) -> Vec<u8> {
    let mut line = Vec::new();
    int(&mut line, 1, function as i64);
    let mut l = Vec::new();
    int(&mut l, 1, id as i64);
    bytes(&mut l, 4, &line);
    let mut out = Vec::new();
    bytes(&mut out, 4, &l);
    out
}

fn function(id: u64, name: i64) -> Vec<u8> {
    let mut f = Vec::new();
    int(&mut f, 1, id as i64);
    int(&mut f, 2, name);
    let mut out = Vec::new();
    bytes(&mut out, 5, &f);
    out
}

#[test]
fn broken_references_are_named() {
    let ok = with(&[location(1, 1), function(1, 3), sample(&[1], &[5])].concat());
    let p = decode(&ok).expect("valid");
    assert_eq!(
        top(&p, &TopOptions::default()).expect("report").rows[0].name,
        "f"
    );

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with(&sample(&[7], &[1])), "location id 7"),
        (
            with(&[location(1, 9), sample(&[1], &[1])].concat()),
            "nil function",
        ),
        (
            with(&[location(1, 1), function(1, 3), sample(&[1], &[1, 2])].concat()),
            "2 values vs. 1 types",
        ),
        (
            with(&[function(1, 3), function(1, 3)].concat()),
            "multiple functions with same id: 1",
        ),
        (
            with(&[location(2, 1), location(2, 1), function(1, 3)].concat()),
            "multiple locations with same id: 2",
        ),
        (with(&function(0, 3)), "reserved ID=0"),
    ];
    for (data, want) in cases {
        let err = decode(&data).expect_err(want);
        assert!(
            matches!(err, PprofError::Invalid(_)) && err.to_string().contains(want),
            "{want}: {err}"
        );
    }
    let err = decode(&with(&function(1, 99))).expect_err("bad string index");
    assert!(
        matches!(
            err,
            PprofError::StringIndex {
                field: "Function.name",
                index: 99,
                len: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn wire_format_errors_are_named() {
    // sample_type with varint wire type.
    let err = decode(&[0x08, 0x01]).expect_err("wrong wire type");
    assert!(
        matches!(
            err,
            PprofError::Corrupt {
                field: "Profile.sample_type",
                ..
            }
        ),
        "{err}"
    );
    // An 11-byte varint.
    let err = decode(&[
        0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ])
    .expect_err("bad varint");
    assert!(
        matches!(
            err,
            PprofError::Corrupt {
                field: "Profile.time_nanos",
                ..
            }
        ),
        "{err}"
    );
    // A sample whose inner message is cut.
    let err = decode(&[0x12, 0x02, 0x0a, 0x05]).expect_err("bad nested message");
    assert!(
        matches!(
            err,
            PprofError::Message {
                field: "Profile.sample",
                ..
            }
        ),
        "{err}"
    );
    // First string not empty.
    let err = decode(&[0x32, 0x01, b'x']).expect_err("string_table[0]");
    assert!(err.to_string().contains("string_table[0]"), "{err}");
    // Two time_nanos: concatenated profiles.
    let err = decode(&[0x48, 0x01, 0x48, 0x02, 0x32, 0x00]).expect_err("concatenated");
    assert!(matches!(err, PprofError::Concatenated), "{err}");
    assert!(matches!(decode(&[]), Err(PprofError::Empty)));
    assert!(matches!(decode(&gzip(&[])), Err(PprofError::Empty)));
    // A deflate block of the reserved type 3 after a gzip header.
    let err = decode(&[
        0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0xff, 0x07, 0x00,
    ])
    .expect_err("bad gzip");
    assert!(
        matches!(err, PprofError::Gzip { .. } | PprofError::Truncated { .. }),
        "{err}"
    );
}

#[test]
fn unknown_sample_index_lists_the_types() {
    let p = decode(&inline_recursion().encode(RAW)).expect("valid");
    let err = top(&p, &TopOptions::new(Some("nope".into()), 0, false)).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "sample_index \"nope\" must be one of: [alloc_objects alloc_space] (or a number below 2)"
    );
    let err = top(&p, &TopOptions::new(Some("2".into()), 0, false)).expect_err("out of range");
    assert!(matches!(err, PprofError::SampleIndex { .. }), "{err}");
}

/// A sample whose packed location ids are `count` copies of `id`, then `last` if given.
fn packed_sample(count: usize, id: u8, last: Option<u64>) -> Vec<u8> {
    let mut ids = vec![id; count];
    if let Some(last) = last {
        varint(&mut ids, last);
    }
    let mut s = Vec::new();
    bytes(&mut s, 1, &ids);
    let mut out = Vec::new();
    bytes(&mut out, 2, &s);
    out
}

/// Issue 16: a small gzip profile of packed location ids used 6.1 GB; the byte caps did not bound
/// what decoding made of them. The element cap does, on every path through the decoder.
#[test]
fn decoded_elements_are_capped() {
    let limits = Limits::default().with_max_elements(1 << 20);
    let too_many = |err: &PprofError| {
        matches!(
            err,
            PprofError::TooManyElements {
                limit: 0x10_0000,
                field: "Profile.sample"
            }
        )
    };
    // 8 Mi one-byte ids in one sample: 8 KiB of gzip.
    let bomb = gzip(&with(&packed_sample(8 << 20, 1, None)));
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let err = Profile::decode(&bomb, &limits).expect_err("over the element cap");
    assert!(too_many(&err), "{err}");
    assert!(err.to_string().contains("1048576 elements"), "{err}");
    // The same ids ending in one that needs 64 bits take the general (prost) path: refused before
    // prost allocates.
    let wide = with(&packed_sample(8 << 20, 1, Some(1 << 40)));
    let err = Profile::decode(&wide, &limits).expect_err("over the element cap");
    assert!(too_many(&err), "{err}");
    // Many small samples add up.
    let mut many = Vec::new();
    for _ in 0..(1 << 19) + 1 {
        many.extend_from_slice(&sample(&[1], &[1]));
    }
    let err = Profile::decode(&with(&many), &limits).expect_err("over the element cap");
    assert!(too_many(&err), "{err}");
    // Under the cap the same shape decodes, and ids over 32 bits resolve.
    let mut ids = vec![1u8; 1000];
    varint(&mut ids, 1 << 40);
    let mut s = Vec::new();
    bytes(&mut s, 1, &ids);
    int(&mut s, 2, 5);
    let mut body = Vec::new();
    bytes(&mut body, 2, &s);
    for id in [1u64, 1 << 40] {
        body.extend_from_slice(&location(id, 1));
    }
    body.extend_from_slice(&function(1, 3));
    let p = Profile::decode(&with(&body), &limits).expect("under the cap");
    let r = top(&p, &TopOptions::default()).expect("report");
    assert_eq!((r.rows[0].name.as_str(), r.rows[0].flat), ("f", 5));
}

/// Issue 16: one 500 MB sample of packed ids (500 KB of gzip) was gathered whole before the
/// element cap could stop it. A field over `max_field_bytes` is refused from its length alone.
#[test]
fn a_field_over_the_field_cap_is_refused_before_reading() {
    let big = gzip(&with(&packed_sample(32 << 20, 1, None)));
    let err = Profile::decode(&big, &Limits::default()).expect_err("over the field cap");
    assert!(
        matches!(
            err,
            PprofError::FieldTooLarge {
                field: "Profile.sample",
                limit: 0x100_0000,
                ..
            }
        ),
        "{err}"
    );
    let limits = Limits::default()
        .with_max_field_bytes(64 << 20)
        .with_max_elements(1 << 20);
    let err = Profile::decode(&big, &limits).expect_err("over the element cap");
    assert!(matches!(err, PprofError::TooManyElements { .. }), "{err}");
}
