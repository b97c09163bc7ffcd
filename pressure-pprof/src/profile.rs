//! The decoded profile: a compact, validated copy of what `go tool pprof -top` needs.

use crate::PprofError;
use crate::decode::Builder;
use crate::source::{GzipSource, SliceSource, THREAD_ABOVE};

/// Limits applied while decoding untrusted profiles.
///
/// The byte caps bound the input; `max_elements` bounds what decoding makes of it (every byte of a
/// packed id list can be one id), so memory stays below about `max_decompressed_bytes` plus 8 bytes
/// per element in the worst case, and far lower for real profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted input, compressed or not, in bytes. Default: 64 MiB.
    pub max_compressed_bytes: u64,
    /// Largest accepted decompressed profile, in bytes. Default: 512 MiB. Decompression stops as
    /// soon as it would produce more, so a gzip bomb fails fast with bounded memory.
    pub max_decompressed_bytes: u64,
    /// Largest number of decoded elements (sample location ids, values and labels, locations,
    /// lines, functions, mappings, strings). Default: 2^26 (64 Mi), 256 MiB of ids at most: a Go
    /// heap profile of 542 k samples has 10.4 Mi (19 per sample).
    pub max_elements: u64,
    /// Largest single field (a sample, location, function, string…), in bytes. Default: 16 MiB;
    /// real ones take bytes to kilobytes. A gzip stream's field is gathered whole before decoding,
    /// so this bounds that buffer.
    pub max_field_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_compressed_bytes: 64 << 20,
            max_decompressed_bytes: 512 << 20,
            max_elements: 1 << 26,
            max_field_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// Limits with the given compressed and decompressed caps, in bytes, and the default element
    /// cap.
    pub fn new(max_compressed_bytes: u64, max_decompressed_bytes: u64) -> Self {
        Limits {
            max_compressed_bytes,
            max_decompressed_bytes,
            ..Limits::default()
        }
    }

    /// These limits with fields of at most `max_field_bytes` bytes.
    pub fn with_max_field_bytes(mut self, max_field_bytes: u64) -> Self {
        self.max_field_bytes = max_field_bytes;
        self
    }

    /// These limits with at most `max_elements` decoded elements.
    pub fn with_max_elements(mut self, max_elements: u64) -> Self {
        self.max_elements = max_elements;
        self
    }
}

/// A sample or period type: what a value measures and its unit, e.g. `inuse_space` in `bytes`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleType {
    /// The type, e.g. `alloc_objects`.
    pub r#type: String,
    /// The unit, e.g. `count`, `bytes`, `nanoseconds`.
    pub unit: String,
}

/// A report node: one function, as pprof names it.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    /// `NodeInfo.Name`: the function name after pprof's name clean-up; empty for unnamed frames.
    pub(crate) name: Box<str>,
    /// `NodeInfo.Objfile`: the mapping file, only for unnamed frames.
    pub(crate) objfile: Box<str>,
    /// `NodeInfo.StartLine`, only for unnamed functions.
    pub(crate) start_line: i64,
    /// `PrintableName()`.
    pub(crate) printable: Box<str>,
}

impl NodeInfo {
    /// `fmt.Sprint(NodeInfo)`, pprof's last-resort tie breaker when sorting.
    pub(crate) fn sprint(&self) -> String {
        format!(
            "{{{}  0  {} 0 {}}}",
            self.name, self.start_line, self.objfile
        )
    }
}

/// A decoded pprof profile (`profile.proto`), reduced to what reports need.
///
/// Build one with [`Profile::decode`], then pass it to [`top`](crate::top).
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) sample_types: Vec<SampleType>,
    pub(crate) default_sample_type: String,
    pub(crate) time_nanos: i64,
    pub(crate) duration_nanos: i64,
    pub(crate) period_type: SampleType,
    pub(crate) period: i64,
    pub(crate) comments: Vec<String>,
    pub(crate) main_file: String,
    pub(crate) main_build_id: String,
    /// Report nodes (one per distinct function).
    pub(crate) nodes: Vec<NodeInfo>,
    /// Per location: the range of `loc_nodes` holding its frames, innermost first.
    pub(crate) loc_ranges: Vec<(u32, u32)>,
    pub(crate) loc_nodes: Vec<u32>,
    /// Per sample: the range of `sample_locs` holding its locations, leaf first.
    pub(crate) sample_offsets: Vec<u32>,
    pub(crate) sample_locs: Vec<u32>,
    /// `sample_types.len()` values per sample.
    pub(crate) values: Vec<i64>,
    /// Samples labelled `pprof::base=true` (diff base), empty when none are.
    pub(crate) diff_base: Vec<bool>,
}

impl Profile {
    /// Decodes a gzip-compressed or raw `profile.proto`, enforcing `limits`.
    ///
    /// Fields may come in any order and repeated numbers packed or not. Truncated or corrupt input
    /// gives a [`PprofError`] naming the field at fault; it never panics.
    pub fn decode(data: &[u8], limits: &Limits) -> Result<Profile, PprofError> {
        if data.len() as u64 > limits.max_compressed_bytes {
            return Err(PprofError::CompressedTooLarge {
                size: data.len() as u64,
                limit: limits.max_compressed_bytes,
            });
        }
        if data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b {
            let limit = limits.max_decompressed_bytes;
            let builder = if data.len() >= THREAD_ABOVE {
                std::thread::scope(|scope| {
                    let mut src = GzipSource::threaded(scope, data, limit);
                    Builder::new(limits).read(&mut src)
                    // Dropping the source stops the inflater if parsing ended early.
                })?
            } else {
                Builder::new(limits).read(&mut GzipSource::new(data, limit))?
            };
            builder.finish()
        } else {
            if data.len() as u64 > limits.max_decompressed_bytes {
                return Err(PprofError::DecompressedTooLarge {
                    limit: limits.max_decompressed_bytes,
                    field: "Profile",
                });
            }
            let mut src = SliceSource::new(data);
            Builder::new(limits).read(&mut src)?.finish()
        }
    }

    /// Reads at most `limits.max_compressed_bytes` from `reader` and decodes them.
    pub fn decode_reader(
        reader: impl std::io::Read,
        limits: &Limits,
    ) -> Result<Profile, PprofError> {
        use std::io::Read;
        let mut data = Vec::new();
        reader
            .take(limits.max_compressed_bytes.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(PprofError::Io)?;
        Profile::decode(&data, limits)
    }

    /// The sample types, in profile order.
    pub fn sample_types(&self) -> &[SampleType] {
        &self.sample_types
    }

    /// The profile's `default_sample_type`, if set.
    pub fn default_sample_type(&self) -> Option<&str> {
        (!self.default_sample_type.is_empty()).then_some(self.default_sample_type.as_str())
    }

    /// Number of samples.
    pub fn sample_count(&self) -> usize {
        self.sample_offsets.len().saturating_sub(1)
    }

    /// Collection time, nanoseconds since the Unix epoch (0 if unknown).
    pub fn time_nanos(&self) -> i64 {
        self.time_nanos
    }

    /// Duration of the profile, nanoseconds (0 if unknown).
    pub fn duration_nanos(&self) -> i64 {
        self.duration_nanos
    }

    /// The period type and period (e.g. `space`/`bytes` and the sampling rate).
    pub fn period(&self) -> (&SampleType, i64) {
        (&self.period_type, self.period)
    }

    /// File name of the main binary (first mapping), empty if unknown.
    pub fn main_binary(&self) -> &str {
        &self.main_file
    }

    /// Index of the sample type pprof uses for `sample_index` (`None` = the default).
    ///
    /// Accepts a type name (also `inuse_`-prefixed legacy names) or a number, like
    /// `go tool pprof -sample_index`.
    pub fn sample_index(&self, requested: Option<&str>) -> Result<usize, PprofError> {
        if self.sample_types.is_empty() {
            return Err(PprofError::NoSampleTypes);
        }
        let err = |requested: &str| PprofError::SampleIndex {
            requested: requested.to_owned(),
            available: self.sample_types.iter().map(|t| t.r#type.clone()).collect(),
        };
        let Some(requested) = requested.filter(|r| !r.is_empty()) else {
            if let Some(i) = self
                .sample_types
                .iter()
                .position(|t| t.r#type == self.default_sample_type)
            {
                return Ok(i);
            }
            return Ok(self.sample_types.len() - 1);
        };
        if let Ok(i) = requested.parse::<i64>() {
            if i < 0 || i as u64 >= self.sample_types.len() as u64 {
                return Err(err(requested));
            }
            return Ok(i as usize);
        }
        let no_inuse = requested.strip_prefix("inuse_").unwrap_or(requested);
        self.sample_types
            .iter()
            .position(|t| t.r#type == requested || t.r#type == no_inuse)
            .ok_or_else(|| err(requested))
    }
}
