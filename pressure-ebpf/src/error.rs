//! Errors of the tracer.

use std::path::PathBuf;

/// A kernel log record that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KmsgError {
    /// A field was missing or not a number.
    #[error("kmsg record: bad or missing {field} in {record:?}")]
    Malformed {
        /// The field at fault.
        field: &'static str,
        /// The record text.
        record: String,
    },
}

/// Errors of loading, attaching and reading the OOM-kill sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TracerError {
    /// The BPF object could not be loaded (no CAP_BPF, no BTF, verifier refusal…).
    #[error("loading the BPF object: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    /// The kernel's BTF could not be read.
    #[error("reading kernel BTF: {0}")]
    Btf(#[source] Box<aya::BtfError>),
    /// A program could not be loaded or attached.
    #[error("attaching {program}: {source}")]
    Attach {
        /// The program (section) at fault.
        program: &'static str,
        /// The cause.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map was missing or of the wrong kind.
    #[error("BPF map {map}: {source}")]
    Map {
        /// The map at fault.
        map: &'static str,
        /// The cause.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// A file descriptor could not be registered with the async reactor.
    #[error("polling {what}: {source}")]
    Poll {
        /// The map or file at fault.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel log could not be opened or read.
    #[error("kernel log {path}: {source}")]
    Kmsg {
        /// The log device or file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Neither BPF nor the kernel log could be used.
    #[error("no OOM-kill source: BPF: {bpf}; kernel log: {kmsg}")]
    NoSource {
        /// Why BPF failed.
        bpf: String,
        /// Why the kernel log failed.
        kmsg: String,
    },
}
