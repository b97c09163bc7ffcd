//! The streaming decoder: walks the top-level `Profile` fields as they come out of the source,
//! keeps compact copies of what reports need, then resolves ids and names into a [`Profile`].

use std::collections::HashMap;

use prost::Message;

use crate::PprofError;
use crate::format::base_name;
use crate::names::display_name;
use crate::profile::{NodeInfo, Profile, SampleType};
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

/// Accumulates the fields of a profile as they stream by.
#[derive(Default)]
pub(crate) struct Builder {
    sample_types: Vec<(i64, i64)>,
    sample_offsets: Vec<u32>,
    sample_locs: Vec<u64>,
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
                        13 => self.comments.push(v),
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
                            sample.clear();
                            sample.merge(bytes).map_err(msg_err)?;
                            let index = to_u32(self.sample_offsets.len() - 1, "samples")?;
                            self.sample_locs.extend_from_slice(&sample.location_id);
                            self.sample_offsets
                                .push(to_u32(self.sample_locs.len(), "sample locations")?);
                            self.values.extend_from_slice(&sample.value);
                            self.value_offsets
                                .push(to_u32(self.values.len(), "sample values")?);
                            for l in &sample.label {
                                let (lo, hi) = self.label_strings.get_or_insert((0, 0));
                                for s in [l.key, l.str, l.num_unit] {
                                    *lo = (*lo).min(s);
                                    *hi = (*hi).max(s);
                                }
                                if l.str != 0 {
                                    self.str_labels.push((index, l.key, l.str));
                                }
                            }
                        }
                        3 => {
                            let m = proto::Mapping::decode(bytes).map_err(msg_err)?;
                            self.mappings.push(RawMapping {
                                id: m.id,
                                filename: m.filename,
                                build_id: m.build_id,
                            });
                        }
                        4 => {
                            location.clear();
                            location.merge(bytes).map_err(msg_err)?;
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
                            self.functions.push(RawFunction {
                                id: f.id,
                                name: f.name,
                                system_name: f.system_name,
                                filename: f.filename,
                                start_line: f.start_line,
                            });
                        }
                        6 => {
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

    pub(crate) fn finish(self) -> Result<Profile, PprofError> {
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
        let mut mapping_index: HashMap<u64, usize> = HashMap::with_capacity(self.mappings.len());
        let mut mapping_files = Vec::with_capacity(self.mappings.len());
        let mut main_build_id = String::new();
        for (i, m) in self.mappings.iter().enumerate() {
            let file = self.owned_string(m.filename, "Mapping.filename")?;
            let build_id = self.owned_string(m.build_id, "Mapping.build_id")?;
            if m.id == 0 {
                return Err(PprofError::Invalid(
                    "found mapping with reserved ID=0".to_owned(),
                ));
            }
            if mapping_index.insert(m.id, i).is_some() {
                return Err(PprofError::Invalid(format!(
                    "multiple mappings with same id: {}",
                    m.id
                )));
            }
            if i == 0 {
                main_build_id = build_id;
            }
            mapping_files.push(file);
        }
        // Functions, with the names pprof shows.
        let mut function_index: HashMap<u64, usize> = HashMap::with_capacity(self.functions.len());
        let mut function_names: Vec<(String, i64)> = Vec::with_capacity(self.functions.len());
        for (i, f) in self.functions.iter().enumerate() {
            let name = self.string(f.name, "Function.name")?;
            let system_name = self.string(f.system_name, "Function.system_name")?;
            self.string(f.filename, "Function.filename")?;
            if f.id == 0 {
                return Err(PprofError::Invalid(
                    "found function with reserved ID=0".to_owned(),
                ));
            }
            if function_index.insert(f.id, i).is_some() {
                return Err(PprofError::Invalid(format!(
                    "multiple functions with same id: {}",
                    f.id
                )));
            }
            function_names.push((display_name(name, system_name), f.start_line));
        }
        // Nodes per location.
        let mut node_index: HashMap<(String, String, i64), u32> = HashMap::new();
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
        let mut location_index: HashMap<u64, u32> = HashMap::with_capacity(self.locations.len());
        let mut loc_ranges = Vec::with_capacity(self.locations.len());
        let mut loc_nodes = Vec::with_capacity(self.line_functions.len());
        for (idx, l) in self.locations.iter().enumerate() {
            if l.id == 0 {
                return Err(PprofError::Invalid(
                    "found location with reserved id=0".to_owned(),
                ));
            }
            if location_index
                .insert(l.id, to_u32(idx, "locations")?)
                .is_some()
            {
                return Err(PprofError::Invalid(format!(
                    "multiple locations with same id: {}",
                    l.id
                )));
            }
            let objfile = mapping_index
                .get(&l.mapping_id)
                .map_or("", |&m| mapping_files[m].as_str());
            let start = to_u32(loc_nodes.len(), "frames")?;
            let (a, b) = l.lines;
            let lines = &self.line_functions[a as usize..b as usize];
            let mut funcs = Vec::with_capacity(lines.len());
            for &fid in lines {
                let Some(&f) = function_index.get(&fid).filter(|_| fid != 0) else {
                    return Err(PprofError::Invalid(format!(
                        "location id: {} has a line with nil function (function id {fid})",
                        l.id
                    )));
                };
                funcs.push(f);
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
                loc_nodes.push(intern(name, objfile, *start_line)?);
            }
            loc_ranges.push((start, to_u32(loc_nodes.len(), "frames")?));
        }
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
        let mut sample_locs = Vec::with_capacity(self.sample_locs.len());
        let mut sample_offsets = Vec::with_capacity(self.sample_offsets.len());
        sample_offsets.push(0);
        for w in self.sample_offsets.windows(2) {
            let start = sample_locs.len();
            for &id in &self.sample_locs[w[0] as usize..w[1] as usize] {
                match location_index.get(&id) {
                    Some(&i) => sample_locs.push(i),
                    None => {
                        return Err(PprofError::Invalid(format!(
                            "sample has nil location (location id {id} is not defined)"
                        )));
                    }
                }
            }
            if !loc_prune.is_empty() {
                // pprof's Profile.Prune, per sample: scanning from the root, after the first
                // unpruned frame, cut the stack at the first pruned location.
                let stack = &sample_locs[start..];
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
                if cut > 0 {
                    sample_locs.drain(start..start + cut);
                }
            }
            sample_offsets.push(to_u32(sample_locs.len(), "sample locations")?);
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
