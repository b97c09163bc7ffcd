//! Hand-derived prost messages for `profile.proto`.
//!
//! Field numbers and types follow
//! <https://github.com/google/pprof/blob/main/proto/profile.proto>. The top-level `Profile` message is
//! not decoded in one piece: `decode.rs` walks its fields itself so that it can stream from the gzip
//! reader and keep only compact copies of the samples. Strings are kept as raw bytes (the string
//! table is read by hand) because Go writes whatever bytes a symbol has, valid UTF-8 or not.
//!
//! prost accepts packed and unpacked encodings of repeated scalars and fields in any order.

/// `ValueType`: a sample or period type, as string-table indices.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ValueType {
    /// Index of the type name, e.g. `inuse_space`.
    #[prost(int64, tag = "1")]
    pub(crate) r#type: i64,
    /// Index of the unit name, e.g. `bytes`.
    #[prost(int64, tag = "2")]
    pub(crate) unit: i64,
}

/// `Sample`: one stack and its values.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sample {
    /// Location ids, leaf first.
    #[prost(uint64, repeated, tag = "1")]
    pub(crate) location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    pub(crate) value: Vec<i64>,
    /// Labels; only string labels matter for reports (`pprof::base`).
    #[prost(message, repeated, tag = "3")]
    pub(crate) label: Vec<Label>,
}

/// `Label`: a string or numeric label of a sample.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Label {
    /// Index of the key.
    #[prost(int64, tag = "1")]
    pub(crate) key: i64,
    /// Index of the string value (0 for numeric labels).
    #[prost(int64, tag = "2")]
    pub(crate) str: i64,
    /// Numeric value.
    #[prost(int64, tag = "3")]
    pub(crate) num: i64,
    /// Index of the unit of `num`.
    #[prost(int64, tag = "4")]
    pub(crate) num_unit: i64,
}

/// `Mapping`: a mapped binary.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Mapping {
    /// Unique nonzero id.
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    /// Start address.
    #[prost(uint64, tag = "2")]
    pub(crate) memory_start: u64,
    /// Limit address.
    #[prost(uint64, tag = "3")]
    pub(crate) memory_limit: u64,
    /// Offset in the file.
    #[prost(uint64, tag = "4")]
    pub(crate) file_offset: u64,
    /// Index of the file name.
    #[prost(int64, tag = "5")]
    pub(crate) filename: i64,
    /// Index of the build id.
    #[prost(int64, tag = "6")]
    pub(crate) build_id: i64,
    /// Symbol information present.
    #[prost(bool, tag = "7")]
    pub(crate) has_functions: bool,
    /// File names present.
    #[prost(bool, tag = "8")]
    pub(crate) has_filenames: bool,
    /// Line numbers present.
    #[prost(bool, tag = "9")]
    pub(crate) has_line_numbers: bool,
    /// Inlined frames present.
    #[prost(bool, tag = "10")]
    pub(crate) has_inline_frames: bool,
}

/// `Location`: an address and the (possibly inlined) frames at it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Location {
    /// Unique nonzero id.
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    /// Id of the mapping, 0 if none.
    #[prost(uint64, tag = "2")]
    pub(crate) mapping_id: u64,
    /// Instruction address.
    #[prost(uint64, tag = "3")]
    pub(crate) address: u64,
    /// Frames, innermost (inlined callee) first, caller last.
    #[prost(message, repeated, tag = "4")]
    pub(crate) line: Vec<Line>,
    /// Folded frames.
    #[prost(bool, tag = "5")]
    pub(crate) is_folded: bool,
}

/// `Line`: one frame of a location.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Line {
    /// Id of the function.
    #[prost(uint64, tag = "1")]
    pub(crate) function_id: u64,
    /// Source line.
    #[prost(int64, tag = "2")]
    pub(crate) line: i64,
}

/// `Function`: a symbol.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Function {
    /// Unique nonzero id.
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    /// Index of the human-readable name.
    #[prost(int64, tag = "2")]
    pub(crate) name: i64,
    /// Index of the system (possibly mangled) name.
    #[prost(int64, tag = "3")]
    pub(crate) system_name: i64,
    /// Index of the source file name.
    #[prost(int64, tag = "4")]
    pub(crate) filename: i64,
    /// First line of the function.
    #[prost(int64, tag = "5")]
    pub(crate) start_line: i64,
}
