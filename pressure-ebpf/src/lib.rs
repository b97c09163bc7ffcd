//! Catches kernel OOM kills with a CO-RE eBPF program (aya) or the kernel log, and classifies
//! them (global, memcg, cpuset/mempolicy) with the victim's pod and container.
//!
//! - [`OomTracer::start`] loads `bpf/oom_tracer.bpf.c` (committed compiled as
//!   `bpf/oom_tracer.bpf.o`, see [`BPF_OBJECT`]), attaches it at `tp_btf/mark_victim` (or the plain
//!   `oom/mark_victim` tracepoint), reads `/dev/kmsg` from its end, pairs the two by victim pid and
//!   yields typed [`OomKill`]s on a [`KillStream`]. When BPF cannot load it uses the kernel log
//!   alone ([`TraceSource`]). [`TracerStats`] counts ring-buffer drops and unparsable records.
//! - [`FakeKillSource`] feeds a [`KillStream`] in tests.
//! - [`handle_kill`] applies the original oom-tracer's victim policy ([`AnnotateKills`]) and hands
//!   victims to a [`KillSink`], the seam for pod annotation and Kubernetes Events.
//! - [`parse_kmsg_record`] / [`parse_oom_message`] parse the kernel's `oom-kill:` and
//!   `Killed process` records; [`RawOomEvent`] mirrors the C event struct.
//! - [`ReportAssembler`] reads the kernel's OOM report (usage, limit, task dump) into an
//!   [`OomReport`]; every [`OomKill`] carries an [`Explanation`] built from it.
#![deny(missing_docs)]

mod correlate;
mod error;
mod event;
mod kmsg;
mod probe;
mod raw;
mod report;
mod sink;
mod tracer;

pub use error::{KmsgError, TracerError};
pub use event::{EventSource, HostPaths, KillKind, OomKill};
pub use kmsg::{
    KilledProcess, KmsgRecord, OomRecord, OomSummary, parse_kmsg_record, parse_oom_message,
};
pub use probe::{AttachMode, BPF_OBJECT};
pub use raw::{CG_DEPTH, CG_NAME_LEN, COMM_LEN, RawCgPath, RawOomEvent};
pub use report::{
    Explanation, MAX_LINES_PER_REPORT, MAX_TOP_TASKS, OomReport, REPORT_TIMEOUT, ReportAssembler,
    TaskRss,
};
pub use sink::{
    AnnotateKills, BoxFuture, KillOutcome, KillSink, MarkOutcome, RecordingSink, StageReason,
    handle_kill,
};
pub use tracer::{
    ActiveSources, FakeKillSource, KillStream, OomTracer, TraceSource, TracerOptions, TracerStats,
};

/// The raw-record flag bits (`OOM_F_*` in `bpf/oom_tracer.h`).
pub mod flags {
    pub use crate::raw::{F_KILLED, F_RSS, F_RSS_KB, F_TASK, F_TP_BTF};
}
