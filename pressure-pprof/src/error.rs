//! The error type of this crate.

/// What went wrong while decoding a profile or building a report.
///
/// Every variant names the field or input at fault; decoding never panics on hostile input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PprofError {
    /// The input (compressed, as given) is larger than [`Limits::max_compressed_bytes`](crate::Limits).
    #[error("profile input is {size} bytes, over the limit of {limit} bytes")]
    CompressedTooLarge {
        /// Bytes seen (at least).
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The decompressed profile is larger than [`Limits::max_decompressed_bytes`](crate::Limits)
    /// (for example a gzip bomb); decompression stopped at the limit.
    #[error("decompressed profile exceeds the limit of {limit} bytes (while reading {field})")]
    DecompressedTooLarge {
        /// The configured limit.
        limit: u64,
        /// What was being read when the limit was hit.
        field: &'static str,
    },
    /// The profile holds more elements than [`Limits::max_elements`](crate::Limits) allows
    /// (ids, values, labels, locations, lines, functions, mappings, strings); decoding stopped
    /// there.
    #[error("profile has more than {limit} elements (limit reached while reading {field})")]
    TooManyElements {
        /// The configured limit.
        limit: u64,
        /// What was being read when the limit was hit.
        field: &'static str,
    },
    /// One field is larger than [`Limits::max_field_bytes`](crate::Limits); it was not read.
    #[error(
        "{field} at byte {offset} is {size} bytes long, over the limit of {limit} bytes per field"
    )]
    FieldTooLarge {
        /// The field.
        field: &'static str,
        /// Offset (in decompressed bytes) of the field.
        offset: u64,
        /// Its claimed length.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The input is empty (after decompression).
    #[error("empty profile")]
    Empty,
    /// Reading the input failed.
    #[error("reading profile: {0}")]
    Io(#[source] std::io::Error),
    /// The gzip stream is corrupt.
    #[error("corrupt gzip stream after {offset} decompressed bytes: {source}")]
    Gzip {
        /// Decompressed bytes produced before the error.
        offset: u64,
        /// The decompressor's error.
        #[source]
        source: std::io::Error,
    },
    /// The input ended in the middle of a field.
    #[error("truncated profile: {field} at byte {offset} is cut short")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Offset (in decompressed bytes) of the field.
        offset: u64,
    },
    /// The protobuf wire format is broken (bad varint, wrong wire type, bad length).
    #[error("corrupt profile: {field} at byte {offset}: {reason}")]
    Corrupt {
        /// The field being read.
        field: &'static str,
        /// Offset (in decompressed bytes) of the field.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A nested message failed to decode.
    #[error("corrupt profile: {field} at byte {offset}: {source}")]
    Message {
        /// The message being decoded, e.g. `Profile.sample`.
        field: &'static str,
        /// Offset (in decompressed bytes) of the message.
        offset: u64,
        /// prost's error.
        #[source]
        source: prost::DecodeError,
    },
    /// A string-table index is out of range.
    #[error(
        "malformed profile: {field} refers to string {index}, but the string table has {len} entries"
    )]
    StringIndex {
        /// The field holding the index.
        field: &'static str,
        /// The index.
        index: i64,
        /// Size of the string table.
        len: usize,
    },
    /// The profile decodes but is inconsistent (duplicate ids, dangling references, value counts).
    #[error("malformed profile: {0}")]
    Invalid(String),
    /// A diff base does not fit the profile: other sample or period types.
    #[error("incompatible profiles for -diff_base: {0}")]
    Incompatible(String),
    /// Two profiles were concatenated (a second `time_nanos`), which pprof rejects too.
    #[error("concatenated profiles detected")]
    Concatenated,
    /// The requested sample index does not exist.
    #[error("sample_index {requested:?} must be one of: [{}] (or a number below {})", available.join(" "), available.len())]
    SampleIndex {
        /// What was asked for.
        requested: String,
        /// The sample types of the profile.
        available: Vec<String>,
    },
    /// The profile has no sample types, so there is nothing to report.
    #[error("profile has no samples")]
    NoSampleTypes,
}
