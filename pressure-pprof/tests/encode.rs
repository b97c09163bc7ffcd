//! A small hand-written `profile.proto` encoder for synthetic test profiles.
//!
//! It can emit repeated numbers packed or unpacked and put the string table first or last, to
//! check that the decoder accepts every layout producers use.

/// A sample: location ids leaf first, values, string labels.
pub(crate) type SynthSample = (Vec<u64>, Vec<i64>, Vec<(&'static str, &'static str)>);
/// A location: id, mapping id, address, lines as `(function id, line)`.
pub(crate) type SynthLocation = (u64, u64, u64, Vec<(u64, i64)>);

/// A synthetic profile, with strings given inline (the encoder builds the string table).
#[derive(Clone, Default)]
pub(crate) struct Synth {
    pub(crate) sample_types: Vec<(&'static str, &'static str)>,
    pub(crate) default_sample_type: &'static str,
    /// `(location ids leaf first, values, string labels)`.
    pub(crate) samples: Vec<SynthSample>,
    /// `(id, mapping id, address, lines as (function id, line))`.
    pub(crate) locations: Vec<SynthLocation>,
    /// `(id, name, system name, file name, start line)`.
    pub(crate) functions: Vec<(u64, &'static str, &'static str, &'static str, i64)>,
    /// `(id, file, build id)`.
    pub(crate) mappings: Vec<(u64, &'static str, &'static str)>,
    pub(crate) comments: Vec<&'static str>,
    pub(crate) time_nanos: i64,
    pub(crate) duration_nanos: i64,
    pub(crate) period_type: Option<(&'static str, &'static str)>,
    pub(crate) period: i64,
    pub(crate) drop_frames: &'static str,
    pub(crate) keep_frames: &'static str,
}

/// Wire layout choices.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) packed: bool,
    pub(crate) strings_first: bool,
    pub(crate) gzip: bool,
}

pub(crate) fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    varint(buf, field << 3 | wire);
}

pub(crate) fn int(buf: &mut Vec<u8>, field: u64, v: i64) {
    if v != 0 {
        key(buf, field, 0);
        varint(buf, v as u64);
    }
}

pub(crate) fn bytes(buf: &mut Vec<u8>, field: u64, data: &[u8]) {
    key(buf, field, 2);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn repeated(buf: &mut Vec<u8>, field: u64, values: &[u64], packed: bool) {
    if values.is_empty() {
        return;
    }
    if packed {
        let mut inner = Vec::new();
        for &v in values {
            varint(&mut inner, v);
        }
        bytes(buf, field, &inner);
    } else {
        for &v in values {
            key(buf, field, 0);
            varint(buf, v);
        }
    }
}

struct Strings(Vec<String>);

impl Strings {
    fn id(&mut self, s: &str) -> i64 {
        if let Some(i) = self.0.iter().position(|x| x == s) {
            return i as i64;
        }
        self.0.push(s.to_owned());
        (self.0.len() - 1) as i64
    }
}

impl Synth {
    pub(crate) fn encode(&self, layout: Layout) -> Vec<u8> {
        let mut st = Strings(vec![String::new()]);
        let mut body = Vec::new();
        for (t, u) in &self.sample_types {
            let mut m = Vec::new();
            int(&mut m, 1, st.id(t));
            int(&mut m, 2, st.id(u));
            bytes(&mut body, 1, &m);
        }
        // Interleave like Go: a location, then its function, then samples.
        for f in &self.functions {
            let mut m = Vec::new();
            int(&mut m, 1, f.0 as i64);
            int(&mut m, 2, st.id(f.1));
            int(&mut m, 3, st.id(f.2));
            int(&mut m, 4, st.id(f.3));
            int(&mut m, 5, f.4);
            bytes(&mut body, 5, &m);
        }
        for l in &self.locations {
            let mut m = Vec::new();
            int(&mut m, 1, l.0 as i64);
            int(&mut m, 2, l.1 as i64);
            int(&mut m, 3, l.2 as i64);
            for &(fid, line) in &l.3 {
                let mut lm = Vec::new();
                int(&mut lm, 1, fid as i64);
                int(&mut lm, 2, line);
                bytes(&mut m, 4, &lm);
            }
            bytes(&mut body, 4, &m);
        }
        for s in &self.samples {
            let mut m = Vec::new();
            repeated(&mut m, 1, &s.0, layout.packed);
            let vals: Vec<u64> = s.1.iter().map(|&v| v as u64).collect();
            repeated(&mut m, 2, &vals, layout.packed);
            for (k, v) in &s.2 {
                let mut lm = Vec::new();
                int(&mut lm, 1, st.id(k));
                int(&mut lm, 2, st.id(v));
                bytes(&mut m, 3, &lm);
            }
            bytes(&mut body, 2, &m);
        }
        for mp in &self.mappings {
            let mut m = Vec::new();
            int(&mut m, 1, mp.0 as i64);
            int(&mut m, 2, 0x400000);
            int(&mut m, 3, 0x800000);
            int(&mut m, 5, st.id(mp.1));
            int(&mut m, 6, st.id(mp.2));
            int(&mut m, 7, 1);
            bytes(&mut body, 3, &m);
        }
        int(&mut body, 9, self.time_nanos);
        int(&mut body, 10, self.duration_nanos);
        if let Some((t, u)) = self.period_type {
            let mut m = Vec::new();
            int(&mut m, 1, st.id(t));
            int(&mut m, 2, st.id(u));
            bytes(&mut body, 11, &m);
        }
        int(&mut body, 12, self.period);
        let comments: Vec<u64> = self.comments.iter().map(|c| st.id(c) as u64).collect();
        repeated(&mut body, 13, &comments, layout.packed);
        int(&mut body, 14, st.id(self.default_sample_type));
        int(&mut body, 7, st.id(self.drop_frames));
        int(&mut body, 8, st.id(self.keep_frames));

        let mut strings = Vec::new();
        for s in &st.0 {
            bytes(&mut strings, 6, s.as_bytes());
        }
        let raw = if layout.strings_first {
            [strings, body].concat()
        } else {
            [body, strings].concat()
        };
        if layout.gzip { gzip(&raw) } else { raw }
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip to memory");
    enc.finish().expect("gzip to memory")
}
