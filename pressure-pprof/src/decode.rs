//! The streaming decoder: walks the top-level `Profile` fields as they come out of the source,
//! keeps compact copies of what reports need, then resolves ids and names into a [`Profile`].

use prost::Message;

use crate::PprofError;
use crate::format::base_name;
use crate::fxhash::FxHashMap;
use crate::names::display_name;
use crate::profile::{Limits, NodeInfo, Profile, SampleType};
use crate::proto;
use crate::pruning::{PRUNE, PRUNE_BENEATH, Pruner};
use crate::source::{Source, varint_from};

/// A location as read, before ids are resolved.
struct RawLocation {
    id: u64,
    mapping_id: u64,
    lines: (u32, u32),
}

struct RawFunction {
    id: u64,
    name: i64,
    system_name: i64,
    filename: i64,
    start_line: i64,
}

struct RawMapping {
    id: u64,
    filename: i64,
    build_id: i64,
}

/// The location ids of all samples, as read: 4 bytes each while every id fits (Go numbers its
/// locations from 1), 8 bytes once one does not.
enum SampleIds {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl SampleIds {
    fn len(&self) -> usize {
        match self {
            SampleIds::Narrow(v) => v.len(),
            SampleIds::Wide(v) => v.len(),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            SampleIds::Narrow(v) => v.truncate(len),
            SampleIds::Wide(v) => v.truncate(len),
        }
    }

    fn push(&mut self, id: u64) {
        match self {
            SampleIds::Narrow(v) => match u32::try_from(id) {
                Ok(id) => v.push(id),
                Err(_) => {
                    let mut wide: Vec<u64> = v.iter().map(|&x| u64::from(x)).collect();
                    wide.push(id);
                    *self = SampleIds::Wide(wide);
                }
            },
            SampleIds::Wide(v) => v.push(id),
        }
    }
}

/// Maps the ids of locations, functions or mappings to their indices: a table when the ids are
/// dense (as producers number them), a hash map otherwise.
enum IdIndex {
    Dense(Vec<u32>),
    Sparse(FxHashMap<u64, u32>),
}

impl IdIndex {
    const NONE: u32 = u32::MAX;

    /// Indexes `ids` (in order); `Err(id)` names the first duplicate.
    fn new(ids: impl ExactSizeIterator<Item = u64> + Clone) -> Result<IdIndex, u64> {
        let n = ids.len();
        let max = ids.clone().max().unwrap_or(0);
        let mut index = if max <= 2 * n as u64 + 1024 {
            IdIndex::Dense(vec![Self::NONE; max as usize + 1])
        } else {
            IdIndex::Sparse(FxHashMap::with_capacity_and_hasher(n, Default::default()))
        };
        for (i, id) in ids.enumerate() {
            let fresh = match &mut index {
                IdIndex::Dense(t) => {
                    let slot = &mut t[id as usize];
                    let fresh = *slot == Self::NONE;
                    *slot = i as u32;
                    fresh
                }
                IdIndex::Sparse(m) => m.insert(id, i as u32).is_none(),
            };
            if !fresh {
                return Err(id);
            }
        }
        Ok(index)
    }

    #[inline]
    fn get(&self, id: u64) -> Option<u32> {
        match self {
            IdIndex::Dense(t) => t
                .get(usize::try_from(id).ok()?)
                .copied()
                .filter(|&i| i != Self::NONE),
            IdIndex::Sparse(m) => m.get(&id).copied(),
        }
    }
}

/// A varint at the front of `b`, if it is complete and well-formed (at most 10 bytes, the last
/// of a 10-byte one at most 1, as prost requires).
#[inline]
fn fast_varint(b: &[u8]) -> Option<(u64, usize)> {
    // Ids and small values take one or two bytes.
    match b {
        [x, ..] if *x < 0x80 => return Some((u64::from(*x), 1)),
        [x, y, ..] if *y < 0x80 => return Some((u64::from(x & 0x7f) | u64::from(*y) << 7, 2)),
        _ => {}
    }
    let mut v = 0u64;
    for (i, &x) in b.iter().take(10).enumerate() {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x < 0x80 {
            if i == 9 && x > 1 {
                return None;
            }
            return Some((v, i + 1));
        }
    }
    None
}

/// Records the label `[key, str, num_unit]` of sample `index`: the range of string indices used
/// (checked once the table is known) and the string labels.
fn record_label(
    range: &mut Option<(i64, i64)>,
    str_labels: &mut Vec<(u32, i64, i64)>,
    index: u32,
    label: [i64; 3],
) {
    let (lo, hi) = range.get_or_insert((0, 0));
    for s in label {
        *lo = (*lo).min(s);
        *hi = (*hi).max(s);
    }
    if label[1] != 0 {
        str_labels.push((index, label[0], label[1]));
    }
}

/// Accumulates the fields of a profile as they stream by.
pub(crate) struct Builder {
    /// Elements decoded so far, and the cap ([`Limits::max_elements`]).
    elements: u64,
    max_elements: u64,
    max_field_bytes: u64,
    sample_types: Vec<(i64, i64)>,
    sample_offsets: Vec<u32>,
    sample_locs: SampleIds,
    value_offsets: Vec<u32>,
    values: Vec<i64>,
    /// `(sample, key, str)` of string labels.
    str_labels: Vec<(u32, i64, i64)>,
    /// Smallest and largest string index used by any label field, checked once the table is known.
    label_strings: Option<(i64, i64)>,
    mappings: Vec<RawMapping>,
    locations: Vec<RawLocation>,
    line_functions: Vec<u64>,
    functions: Vec<RawFunction>,
    strings: Vec<u8>,
    string_offsets: Vec<usize>,
    drop_frames: i64,
    keep_frames: i64,
    time_nanos: i64,
    duration_nanos: i64,
    period_type: Option<(i64, i64)>,
    period: i64,
    comments: Vec<i64>,
    default_sample_type: i64,
}

const WIRE_VARINT: u64 = 0;
const WIRE_I64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_I32: u64 = 5;

fn field_name(field: u64) -> &'static str {
    match field {
        1 => "Profile.sample_type",
        2 => "Profile.sample",
        3 => "Profile.mapping",
        4 => "Profile.location",
        5 => "Profile.function",
        6 => "Profile.string_table",
        7 => "Profile.drop_frames",
        8 => "Profile.keep_frames",
        9 => "Profile.time_nanos",
        10 => "Profile.duration_nanos",
        11 => "Profile.period_type",
        12 => "Profile.period",
        13 => "Profile.comment",
        14 => "Profile.default_sample_type",
        _ => "Profile (unknown field)",
    }
}

fn too_many(what: &str) -> PprofError {
    PprofError::Invalid(format!("more than {} {what}", u32::MAX))
}

pub(crate) fn to_u32(n: usize, what: &str) -> Result<u32, PprofError> {
    u32::try_from(n).map_err(|_| too_many(what))
}

impl Builder {
    pub(crate) fn new(limits: &Limits) -> Builder {
        Builder {
            elements: 0,
            max_elements: limits.max_elements,
            max_field_bytes: limits.max_field_bytes,
            sample_types: Vec::new(),
            sample_offsets: Vec::new(),
            sample_locs: SampleIds::Narrow(Vec::new()),
            value_offsets: Vec::new(),
            values: Vec::new(),
            str_labels: Vec::new(),
            label_strings: None,
            mappings: Vec::new(),
            locations: Vec::new(),
            line_functions: Vec::new(),
            functions: Vec::new(),
            strings: Vec::new(),
            string_offsets: Vec::new(),
            drop_frames: 0,
            keep_frames: 0,
            time_nanos: 0,
            duration_nanos: 0,
            period_type: None,
            period: 0,
            comments: Vec::new(),
            default_sample_type: 0,
        }
    }

    /// Counts `n` more decoded elements of `field` against the cap.
    #[inline]
    fn count(&mut self, n: u64, field: &'static str) -> Result<(), PprofError> {
        self.elements = self.elements.saturating_add(n);
        if self.elements > self.max_elements {
            return Err(PprofError::TooManyElements {
                limit: self.max_elements,
                field,
            });
        }
        Ok(())
    }

    /// Decodes a `Sample` straight into the builder, without a prost message (the hot path: a heap
    /// profile is mostly samples). `Ok(false)` on anything unusual (unknown fields, ids over
    /// 32 bits, malformed wire data): the caller rolls back and lets prost decode it, which also
    /// names any error.
    fn fast_sample(&mut self, mut b: &[u8], index: u32) -> Result<bool, PprofError> {
        const FIELD: &str = "Profile.sample";
        let SampleIds::Narrow(ids) = &mut self.sample_locs else {
            return Ok(false);
        };
        let mut room = self.max_elements.saturating_sub(self.elements);
        let full = |max_elements| PprofError::TooManyElements {
            limit: max_elements,
            field: FIELD,
        };
        while !b.is_empty() {
            let Some((key, n)) = fast_varint(b) else {
                return Ok(false);
            };
            b = &b[n..];
            // Single (unpacked) ids and values, then packed ones, then labels.
            if key == 0x08 || key == 0x10 {
                let Some((v, n)) = fast_varint(b) else {
                    return Ok(false);
                };
                b = &b[n..];
                if room == 0 {
                    return Err(full(self.max_elements));
                }
                room -= 1;
                if key == 0x08 {
                    let Ok(v) = u32::try_from(v) else {
                        return Ok(false);
                    };
                    ids.push(v);
                } else {
                    self.values.push(v as i64);
                }
                continue;
            }
            let Some((len, n)) = fast_varint(b) else {
                return Ok(false);
            };
            let Some(end) = usize::try_from(len)
                .ok()
                .and_then(|len| n.checked_add(len))
                .filter(|&end| end <= b.len())
            else {
                return Ok(false);
            };
            let mut p = &b[n..end];
            b = &b[end..];
            match key {
                0x0a => {
                    while !p.is_empty() {
                        let (v, n) = match fast_varint(p) {
                            Some((v, n)) if v <= u64::from(u32::MAX) => (v as u32, n),
                            _ => return Ok(false),
                        };
                        p = &p[n..];
                        if room == 0 {
                            return Err(full(self.max_elements));
                        }
                        room -= 1;
                        ids.push(v);
                    }
                }
                0x12 => {
                    while !p.is_empty() {
                        let Some((v, n)) = fast_varint(p) else {
                            return Ok(false);
                        };
                        p = &p[n..];
                        if room == 0 {
                            return Err(full(self.max_elements));
                        }
                        room -= 1;
                        self.values.push(v as i64);
                    }
                }
                0x1a => {
                    let mut l = [0i64; 4];
                    while !p.is_empty() {
                        let Some((k, n)) = fast_varint(p) else {
                            return Ok(false);
                        };
                        let Some((v, m)) = fast_varint(&p[n..]) else {
                            return Ok(false);
                        };
                        p = &p[n + m..];
                        match k {
                            0x08 | 0x10 | 0x18 | 0x20 => l[(k >> 3) as usize - 1] = v as i64,
                            _ => return Ok(false),
                        }
                    }
                    if room == 0 {
                        return Err(full(self.max_elements));
                    }
                    room -= 1;
                    record_label(
                        &mut self.label_strings,
                        &mut self.str_labels,
                        index,
                        [l[0], l[1], l[3]],
                    );
                }
                _ => return Ok(false),
            }
        }
        self.elements = self.max_elements - room;
        Ok(true)
    }

    pub(crate) fn read(mut self, src: &mut impl Source) -> Result<Self, PprofError> {
        let mut sample = proto::Sample::default();
        let mut location = proto::Location::default();
        self.sample_offsets.push(0);
        self.value_offsets.push(0);
        let mut any = false;
        loop {
            let offset = src.offset();
            let Some(key) = src.varint("Profile field tag")? else {
                break;
            };
            any = true;
            let (field, wire) = (key >> 3, key & 7);
            let name = field_name(field);
            let corrupt = |reason: String| PprofError::Corrupt {
                field: name,
                offset,
                reason,
            };
            if field == 0 {
                return Err(corrupt("field number 0".to_owned()));
            }
            let expects_len = matches!(field, 1..=6 | 11);
            let expects_varint = matches!(field, 7..=10 | 12 | 14);
            if (expects_len && wire != WIRE_LEN)
                || (expects_varint && wire != WIRE_VARINT)
                || (field == 13 && wire != WIRE_VARINT && wire != WIRE_LEN)
            {
                return Err(corrupt(format!("unexpected wire type {wire}")));
            }
            match wire {
                WIRE_VARINT => {
                    let v = src.varint(name)?.ok_or(PprofError::Truncated {
                        field: name,
                        offset,
                    })?;
                    let v = v as i64;
                    match field {
                        7 => self.drop_frames = v,
                        8 => self.keep_frames = v,
                        9 => {
                            if self.time_nanos != 0 {
                                return Err(PprofError::Concatenated);
                            }
                            self.time_nanos = v;
                        }
                        10 => self.duration_nanos = v,
                        12 => self.period = v,
                        13 => {
                            self.count(1, name)?;
                            self.comments.push(v);
                        }
                        14 => self.default_sample_type = v,
                        _ => {}
                    }
                }
                WIRE_LEN => {
                    let len = src.varint(name)?.ok_or(PprofError::Truncated {
                        field: name,
                        offset,
                    })?;
                    if !(expects_len || field == 13) {
                        src.skip(len, name)?;
                        continue;
                    }
                    if len > self.max_field_bytes {
                        return Err(PprofError::FieldTooLarge {
                            field: name,
                            offset,
                            size: len,
                            limit: self.max_field_bytes,
                        });
                    }
                    let bytes = src.bytes(len, name)?;
                    let msg_err = |source: prost::DecodeError| PprofError::Message {
                        field: name,
                        offset,
                        source,
                    };
                    match field {
                        1 => {
                            let vt = proto::ValueType::decode(bytes).map_err(msg_err)?;
                            self.sample_types.push((vt.r#type, vt.unit));
                        }
                        2 => {
                            let index = to_u32(self.sample_offsets.len() - 1, "samples")?;
                            let mark = (
                                self.sample_locs.len(),
                                self.values.len(),
                                self.str_labels.len(),
                                self.label_strings,
                                self.elements,
                            );
                            if !self.fast_sample(bytes, index)? {
                                self.sample_locs.truncate(mark.0);
                                self.values.truncate(mark.1);
                                self.str_labels.truncate(mark.2);
                                self.label_strings = mark.3;
                                self.elements = mark.4;
                                // prost makes at most one element per varint, that is per byte
                                // below 0x80: check that bound before it allocates.
                                let bound = bytes.iter().filter(|&&b| b < 0x80).count();
                                if self.elements.saturating_add(bound as u64) > self.max_elements {
                                    self.count(bound as u64, name)?;
                                }
                                sample.clear();
                                sample.merge(bytes).map_err(msg_err)?;
                                self.count(
                                    (sample.location_id.len()
                                        + sample.value.len()
                                        + sample.label.len())
                                        as u64,
                                    name,
                                )?;
                                for &id in &sample.location_id {
                                    self.sample_locs.push(id);
                                }
                                self.values.extend_from_slice(&sample.value);
                                for l in &sample.label {
                                    record_label(
                                        &mut self.label_strings,
                                        &mut self.str_labels,
                                        index,
                                        [l.key, l.str, l.num_unit],
                                    );
                                }
                            }
                            self.sample_offsets
                                .push(to_u32(self.sample_locs.len(), "sample locations")?);
                            self.value_offsets
                                .push(to_u32(self.values.len(), "sample values")?);
                        }
                        3 => {
                            let m = proto::Mapping::decode(bytes).map_err(msg_err)?;
                            self.count(1, name)?;
                            self.mappings.push(RawMapping {
                                id: m.id,
                                filename: m.filename,
                                build_id: m.build_id,
                            });
                        }
                        4 => {
                            location.clear();
                            // Each line takes at least 2 bytes: bound prost's allocation first.
                            if self.elements.saturating_add(bytes.len() as u64 / 2)
                                > self.max_elements
                            {
                                self.count(bytes.len() as u64 / 2, name)?;
                            }
                            location.merge(bytes).map_err(msg_err)?;
                            self.count(1 + location.line.len() as u64, name)?;
                            let start = to_u32(self.line_functions.len(), "lines")?;
                            self.line_functions
                                .extend(location.line.iter().map(|l| l.function_id));
                            let end = to_u32(self.line_functions.len(), "lines")?;
                            self.locations.push(RawLocation {
                                id: location.id,
                                mapping_id: location.mapping_id,
                                lines: (start, end),
                            });
                        }
                        5 => {
                            let f = proto::Function::decode(bytes).map_err(msg_err)?;
                            self.count(1, name)?;
                            self.functions.push(RawFunction {
                                id: f.id,
                                name: f.name,
                                system_name: f.system_name,
                                filename: f.filename,
                                start_line: f.start_line,
                            });
                        }
                        6 => {
                            self.count(1, name)?;
                            if self.string_offsets.is_empty() {
                                if !bytes.is_empty() {
                                    return Err(PprofError::Invalid(
                                        "string_table[0] must be ''".to_owned(),
                                    ));
                                }
                                self.string_offsets.push(0);
                            }
                            self.strings.extend_from_slice(bytes);
                            self.string_offsets.push(self.strings.len());
                        }
                        11 => {
                            let vt = proto::ValueType::decode(bytes).map_err(msg_err)?;
                            self.period_type = Some((vt.r#type, vt.unit));
                        }
                        13 => {
                            let mut rest = bytes;
                            while !rest.is_empty() {
                                match varint_from(rest) {
                                    Ok(Some((v, n))) => {
                                        self.count(1, name)?;
                                        self.comments.push(v as i64);
                                        rest = &rest[n..];
                                    }
                                    Ok(None) => {
                                        return Err(corrupt("truncated packed varint".to_owned()));
                                    }
                                    Err(reason) => return Err(corrupt(reason.to_owned())),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                WIRE_I64 => src.skip(8, name)?,
                WIRE_I32 => src.skip(4, name)?,
                _ => return Err(corrupt(format!("unsupported wire type {wire}"))),
            }
        }
        if !any {
            return Err(PprofError::Empty);
        }
        Ok(self)
    }

    fn string(&self, index: i64, field: &'static str) -> Result<&str, PprofError> {
        let len = self.string_offsets.len().saturating_sub(1);
        if index < 0 || index as u64 >= len as u64 {
            return Err(PprofError::StringIndex { field, index, len });
        }
        let i = index as usize;
        let bytes = &self.strings[self.string_offsets[i]..self.string_offsets[i + 1]];
        // Go keeps arbitrary bytes; invalid UTF-8 is shown with replacement characters.
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => "\u{fffd}",
        })
    }

    fn owned_string(&self, index: i64, field: &'static str) -> Result<String, PprofError> {
        let len = self.string_offsets.len().saturating_sub(1);
        if index < 0 || index as u64 >= len as u64 {
            return Err(PprofError::StringIndex { field, index, len });
        }
        let i = index as usize;
        let bytes = &self.strings[self.string_offsets[i]..self.string_offsets[i + 1]];
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    pub(crate) fn finish(mut self) -> Result<Profile, PprofError> {
        let len = self.string_offsets.len().saturating_sub(1) as i64;
        if let Some((lo, hi)) = self.label_strings
            && (lo < 0 || hi >= len)
        {
            let index = if lo < 0 { lo } else { hi };
            return Err(PprofError::StringIndex {
                field: "Sample.label",
                index,
                len: len as usize,
            });
        }
        // Mappings.
        for m in &self.mappings {
            if m.id == 0 {
                return Err(PprofError::Invalid(
                    "found mapping with reserved ID=0".to_owned(),
                ));
            }
        }
        let mapping_index = IdIndex::new(self.mappings.iter().map(|m| m.id))
            .map_err(|id| PprofError::Invalid(format!("multiple mappings with same id: {id}")))?;
        let mut mapping_files = Vec::with_capacity(self.mappings.len());
        let mut main_build_id = String::new();
        for (i, m) in self.mappings.iter().enumerate() {
            let file = self.owned_string(m.filename, "Mapping.filename")?;
            let build_id = self.owned_string(m.build_id, "Mapping.build_id")?;
            if i == 0 {
                main_build_id = build_id;
            }
            mapping_files.push(file);
        }
        // Functions, with the names pprof shows.
        let mut function_names: Vec<(String, i64)> = Vec::with_capacity(self.functions.len());
        for f in &self.functions {
            let name = self.string(f.name, "Function.name")?;
            let system_name = self.string(f.system_name, "Function.system_name")?;
            self.string(f.filename, "Function.filename")?;
            if f.id == 0 {
                return Err(PprofError::Invalid(
                    "found function with reserved ID=0".to_owned(),
                ));
            }
            function_names.push((display_name(name, system_name), f.start_line));
        }
        let function_index = IdIndex::new(self.functions.iter().map(|f| f.id))
            .map_err(|id| PprofError::Invalid(format!("multiple functions with same id: {id}")))?;
        // Nodes per location. A named function is one node whatever its binary, so its node is
        // looked up once per function, not once per frame.
        let mut node_index: FxHashMap<(String, String, i64), u32> = FxHashMap::default();
        let mut nodes: Vec<NodeInfo> = Vec::new();
        let mut intern = |name: &str, objfile: &str, start_line: i64| -> Result<u32, PprofError> {
            let key = if name.is_empty() {
                (String::new(), objfile.to_owned(), start_line)
            } else {
                (name.to_owned(), String::new(), 0)
            };
            if let Some(&n) = node_index.get(&key) {
                return Ok(n);
            }
            let n = to_u32(nodes.len(), "nodes")?;
            let printable: Box<str> = if !key.0.is_empty() {
                key.0.as_str().into()
            } else if !key.1.is_empty() {
                format!("[{}]", base_name(&key.1)).into()
            } else {
                "<unknown>".into()
            };
            nodes.push(NodeInfo {
                name: key.0.as_str().into(),
                objfile: key.1.as_str().into(),
                start_line: key.2,
                printable,
            });
            node_index.insert(key, n);
            Ok(n)
        };
        let mut function_nodes = vec![IdIndex::NONE; self.functions.len()];
        let drop_frames = self.owned_string(self.drop_frames, "Profile.drop_frames")?;
        let keep_frames = self.owned_string(self.keep_frames, "Profile.keep_frames")?;
        let pruner = Pruner::new(&drop_frames, &keep_frames);
        // Per location: 0 = kept, PRUNE_BENEATH = frames below a dropped one go, PRUNE = all go.
        let mut loc_prune = vec![
            0u8;
            if pruner.is_some() {
                self.locations.len()
            } else {
                0
            }
        ];
        for l in &self.locations {
            if l.id == 0 {
                return Err(PprofError::Invalid(
                    "found location with reserved id=0".to_owned(),
                ));
            }
        }
        to_u32(self.locations.len(), "locations")?;
        let location_index = IdIndex::new(self.locations.iter().map(|l| l.id))
            .map_err(|id| PprofError::Invalid(format!("multiple locations with same id: {id}")))?;
        let mut loc_ranges = Vec::with_capacity(self.locations.len());
        let mut loc_nodes = Vec::with_capacity(self.line_functions.len());
        let mut funcs = Vec::new();
        for (idx, l) in self.locations.iter().enumerate() {
            let objfile = mapping_index
                .get(l.mapping_id)
                .map_or("", |m| mapping_files[m as usize].as_str());
            let start = to_u32(loc_nodes.len(), "frames")?;
            let (a, b) = l.lines;
            let lines = &self.line_functions[a as usize..b as usize];
            funcs.clear();
            for &fid in lines {
                let Some(f) = function_index.get(fid).filter(|_| fid != 0) else {
                    return Err(PprofError::Invalid(format!(
                        "location id: {} has a line with nil function (function id {fid})",
                        l.id
                    )));
                };
                funcs.push(f as usize);
            }
            let mut first = 0;
            if let Some(pruner) = &pruner {
                // pprof's Profile.Prune: the outermost frame that matches drop_frames (and not
                // keep_frames) goes, with every frame inlined below it.
                if let Some(i) = (0..funcs.len())
                    .rev()
                    .find(|&i| pruner.drops(&function_names[funcs[i]].0))
                {
                    if i == funcs.len() - 1 {
                        loc_prune[idx] = PRUNE;
                    } else {
                        loc_prune[idx] = PRUNE_BENEATH;
                        first = i + 1;
                    }
                }
            }
            if a == b {
                loc_nodes.push(intern("", objfile, 0)?);
            }
            // A fully pruned location keeps its frames: pprof only removes it from samples.
            if loc_prune.get(idx) == Some(&PRUNE) {
                first = 0;
            }
            for &f in &funcs[first..] {
                let (name, start_line) = &function_names[f];
                let node = if name.is_empty() {
                    intern(name, objfile, *start_line)?
                } else if function_nodes[f] != IdIndex::NONE {
                    function_nodes[f]
                } else {
                    let n = intern(name, objfile, *start_line)?;
                    function_nodes[f] = n;
                    n
                };
                loc_nodes.push(node);
            }
            loc_ranges.push((start, to_u32(loc_nodes.len(), "frames")?));
        }
        drop(function_nodes);
        // Sample types and samples.
        let mut sample_types = Vec::with_capacity(self.sample_types.len());
        for &(t, u) in &self.sample_types {
            sample_types.push(SampleType {
                r#type: self.owned_string(t, "ValueType.type")?,
                unit: self.owned_string(u, "ValueType.unit")?,
            });
        }
        let n_samples = self.sample_offsets.len() - 1;
        if sample_types.is_empty() && n_samples > 0 {
            return Err(PprofError::Invalid(
                "missing sample type information".to_owned(),
            ));
        }
        for (s, w) in self.value_offsets.windows(2).enumerate() {
            let n = (w[1] - w[0]) as usize;
            if n != sample_types.len() {
                return Err(PprofError::Invalid(format!(
                    "mismatch: sample {s} has {n} values vs. {} types",
                    sample_types.len()
                )));
            }
        }
        // Location ids to indices, in place when they were stored narrow.
        let undefined = |id: u64| {
            PprofError::Invalid(format!(
                "sample has nil location (location id {id} is not defined)"
            ))
        };
        let ids = std::mem::replace(&mut self.sample_locs, SampleIds::Narrow(Vec::new()));
        let mut sample_locs = match ids {
            SampleIds::Narrow(mut ids) => {
                for id in &mut ids {
                    *id = location_index
                        .get(u64::from(*id))
                        .ok_or_else(|| undefined(u64::from(*id)))?;
                }
                ids
            }
            SampleIds::Wide(ids) => ids
                .iter()
                .map(|&id| location_index.get(id).ok_or_else(|| undefined(id)))
                .collect::<Result<Vec<u32>, PprofError>>()?,
        };
        drop(location_index);
        let mut sample_offsets = std::mem::take(&mut self.sample_offsets);
        if !loc_prune.is_empty() {
            // pprof's Profile.Prune, per sample: scanning from the root, after the first unpruned
            // frame, cut the stack at the first pruned location. Kept ids move down in place.
            let mut write = 0usize;
            for s in 0..n_samples {
                let (a, b) = (sample_offsets[s] as usize, sample_offsets[s + 1] as usize);
                let stack = &sample_locs[a..b];
                let mut found_user = false;
                let mut cut = 0;
                for i in (0..stack.len()).rev() {
                    match loc_prune[stack[i] as usize] {
                        0 => found_user = true,
                        _ if !found_user => {}
                        PRUNE => {
                            cut = i + 1;
                            break;
                        }
                        _ => {
                            cut = i;
                            break;
                        }
                    }
                }
                sample_locs.copy_within(a + cut..b, write);
                sample_offsets[s] = write as u32;
                write += b - a - cut;
            }
            sample_offsets[n_samples] = write as u32;
            sample_locs.truncate(write);
        }
        let mut diff_base = Vec::new();
        for &(s, k, v) in &self.str_labels {
            if self.string(k, "Label.key")? == "pprof::base"
                && self.string(v, "Label.str")? == "true"
            {
                if diff_base.is_empty() {
                    diff_base = vec![false; n_samples];
                }
                diff_base[s as usize] = true;
            }
        }
        let period_type = match self.period_type {
            Some((t, u)) => SampleType {
                r#type: self.owned_string(t, "Profile.period_type.type")?,
                unit: self.owned_string(u, "Profile.period_type.unit")?,
            },
            None => SampleType::default(),
        };
        let mut comments = Vec::with_capacity(self.comments.len());
        for &c in &self.comments {
            comments.push(self.owned_string(c, "Profile.comment")?);
        }
        let default_sample_type =
            self.owned_string(self.default_sample_type, "Profile.default_sample_type")?;
        Ok(Profile {
            sample_types,
            default_sample_type,
            time_nanos: self.time_nanos,
            duration_nanos: self.duration_nanos,
            period_type,
            period: self.period,
            comments,
            main_file: mapping_files.first().cloned().unwrap_or_default(),
            main_build_id,
            nodes,
            loc_ranges,
            loc_nodes,
            sample_offsets,
            sample_locs,
            values: self.values,
            diff_base,
        })
    }
}
