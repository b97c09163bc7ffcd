//! Runs the sources (BPF ring buffer, kernel log), pairs their records and streams [`OomKill`]s.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::correlate::{Correlator, CorrelatorConfig};
use crate::error::TracerError;
use crate::event::{ClockPair, HostPaths, Matched, OomKill, build_kill};
use crate::kmsg::{OomRecord, parse_kmsg_record, parse_oom_message};
use crate::probe::{AttachMode, BPF_OBJECT, BpfProbe};
use crate::raw::RawOomEvent;
use crate::report::ReportAssembler;

/// Which kernel sources an [`OomTracer`] reads (named apart from `pressure_core::SourceMode`, the
/// `source.mode` of the `pressured` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TraceSource {
    /// BPF plus the kernel log; the kernel log alone when BPF cannot load.
    #[default]
    Auto,
    /// BPF plus the kernel log; fail when BPF cannot load.
    Bpf,
    /// The kernel log alone (what `Auto` falls back to).
    KmsgOnly,
}

/// How to start an [`OomTracer`].
#[derive(Debug, Clone)]
pub struct TracerOptions {
    /// Sources to use.
    pub mode: TraceSource,
    /// The kernel log device (`/dev/kmsg`); a regular file is read once from its start (replays
    /// of captured logs).
    pub kmsg_path: PathBuf,
    /// Read the kernel log from its start, reporting kills that happened before the tracer.
    pub replay_kmsg: bool,
    /// Try `tp_btf` before the plain tracepoint.
    pub allow_tp_btf: bool,
    /// Host paths used to enrich kernel-log-only events.
    pub host: HostPaths,
    /// How long a BPF event waits for the kernel-log records of the same victim (its OOM report,
    /// read for the explanation, and `Killed process`); after it the kill is emitted without
    /// them, explained from BPF's RSS alone.
    pub bpf_wait: Duration,
    /// How long a kernel-log `Killed process` record waits for its BPF event.
    pub kmsg_wait: Duration,
    /// The BPF object to load (the committed one unless a test swaps it).
    pub object: &'static [u8],
}

impl Default for TracerOptions {
    /// Auto mode, `/dev/kmsg` from its end, `tp_btf` allowed, 500 ms / 2 s waits.
    fn default() -> Self {
        Self {
            mode: TraceSource::Auto,
            kmsg_path: PathBuf::from("/dev/kmsg"),
            replay_kmsg: false,
            allow_tp_btf: true,
            host: HostPaths::default(),
            bpf_wait: Duration::from_millis(500),
            kmsg_wait: Duration::from_secs(2),
            object: BPF_OBJECT,
        }
    }
}

/// The sources in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveSources {
    /// How BPF is attached, `None` in kernel-log-only mode.
    pub bpf: Option<AttachMode>,
    /// The kernel log is read.
    pub kmsg: bool,
}

#[derive(Debug, Default)]
struct StatsInner {
    ringbuf_drops: AtomicU64,
    kmsg_parse_errors: AtomicU64,
    kmsg_lost: AtomicU64,
    marks_without_kill: AtomicU64,
    running: AtomicBool,
    sources: OnceLock<ActiveSources>,
}

/// Live counters of a running tracer; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TracerStats(Arc<StatsInner>);

impl TracerStats {
    /// Ring-buffer reservation failures (events the kernel could not queue).
    pub fn ringbuf_drops(&self) -> u64 {
        self.0.ringbuf_drops.load(Ordering::Relaxed)
    }
    /// OOM-killer kernel-log records that could not be parsed.
    pub fn kmsg_parse_errors(&self) -> u64 {
        self.0.kmsg_parse_errors.load(Ordering::Relaxed)
    }
    /// Kernel-log records overwritten before they were read.
    pub fn kmsg_lost(&self) -> u64 {
        self.0.kmsg_lost.load(Ordering::Relaxed)
    }
    /// Victim marks without an OOM SIGKILL (tasks already exiting), not reported as kills.
    pub fn marks_without_kill(&self) -> u64 {
        self.0.marks_without_kill.load(Ordering::Relaxed)
    }
    /// The sources are attached and being read.
    pub fn is_running(&self) -> bool {
        self.0.running.load(Ordering::Relaxed)
    }
    /// The sources in use, once started.
    pub fn sources(&self) -> Option<ActiveSources> {
        self.0.sources.get().copied()
    }
}

/// An async stream of OOM kills, from the tracer or a fake.
#[derive(Debug)]
pub struct KillStream {
    rx: mpsc::Receiver<OomKill>,
}

impl Stream for KillStream {
    type Item = OomKill;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OomKill>> {
        self.rx.poll_recv(cx)
    }
}

/// Sends kills into a [`KillStream`]: the fake source for tests.
#[derive(Debug, Clone)]
pub struct FakeKillSource {
    tx: mpsc::Sender<OomKill>,
}

impl FakeKillSource {
    /// A fake source and the stream it feeds.
    pub fn new() -> (Self, KillStream) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { tx }, KillStream { rx })
    }

    /// Queues one kill; false when the stream was dropped.
    pub async fn send(&self, kill: OomKill) -> bool {
        self.tx.send(kill).await.is_ok()
    }
}

/// The OOM-kill tracer: BPF at `oom/mark_victim` plus the kernel log, or the kernel log alone.
#[derive(Debug)]
pub struct OomTracer;

impl OomTracer {
    /// Loads and attaches the sources and spawns the reader on the current tokio runtime.
    ///
    /// The returned stream ends when the sources fail; dropping it stops the tracer.
    pub fn start(opts: TracerOptions) -> Result<(KillStream, TracerStats), TracerError> {
        let stats = TracerStats::default();
        let probe = match opts.mode {
            TraceSource::KmsgOnly => None,
            TraceSource::Bpf => Some(BpfProbe::load(opts.object, opts.allow_tp_btf)?),
            TraceSource::Auto => match BpfProbe::load(opts.object, opts.allow_tp_btf) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "BPF unavailable, using the kernel log alone");
                    None
                }
            },
        };
        let kmsg = match KmsgInput::open(&opts.kmsg_path, opts.replay_kmsg) {
            Ok(k) => Some(k),
            Err(e) if probe.is_some() => {
                tracing::warn!(error = %e, "kernel log unavailable: no kind or limit-hit cgroup");
                None
            }
            Err(e) => return Err(e),
        };
        let sources = ActiveSources {
            bpf: probe.as_ref().map(|p| p.mode),
            kmsg: kmsg.is_some(),
        };
        let _ = stats.0.sources.set(sources);
        let cfg = CorrelatorConfig {
            bpf: probe.is_some(),
            kmsg: kmsg.is_some(),
            killed_flag: probe.as_ref().is_some_and(|p| p.killed_flag),
            bpf_wait: opts.bpf_wait,
            kmsg_wait: opts.kmsg_wait,
        };
        let (tx, rx) = mpsc::channel(1024);
        stats.0.running.store(true, Ordering::Relaxed);
        let task_stats = stats.clone();
        tokio::spawn(async move {
            if let Err(e) = run(probe, kmsg, cfg, opts.host, tx, task_stats.clone()).await {
                tracing::error!(error = %e, "OOM tracer stopped");
            }
            task_stats.0.running.store(false, Ordering::Relaxed);
        });
        Ok((KillStream { rx }, stats))
    }
}

/// The kernel log: a device read record by record, or a captured file read once.
enum KmsgInput {
    Device(AsyncFd<File>),
    Captured(Vec<String>),
}

impl KmsgInput {
    fn open(path: &std::path::Path, replay: bool) -> Result<Self, TracerError> {
        let err = |source| TracerError::Kmsg {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(err)?;
        if meta.file_type().is_file() {
            let text = std::fs::read_to_string(path).map_err(err)?;
            return Ok(Self::Captured(text.lines().map(str::to_owned).collect()));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(err)?;
        if !replay && meta.file_type().is_char_device() {
            // SEEK_END on /dev/kmsg moves to the record after the newest: no replay of old kills.
            // SAFETY: lseek on a descriptor we own.
            let r =
                unsafe { libc::lseek(std::os::fd::AsRawFd::as_raw_fd(&file), 0, libc::SEEK_END) };
            if r < 0 {
                return Err(err(io::Error::last_os_error()));
            }
        }
        // SAFETY: the File owns the descriptor and the AsyncFd owns the File until both drop.
        let fd = unsafe { AsyncFd::register_with_interest(file, Interest::READABLE) }
            .map_err(|e| err(e.into()))?;
        Ok(Self::Device(fd))
    }

    /// Waits for records and appends them (one `/dev/kmsg` read is one record).
    async fn read(&mut self, out: &mut Vec<String>, stats: &TracerStats) -> io::Result<bool> {
        let fd = match self {
            Self::Captured(lines) => {
                out.append(lines);
                return Ok(false);
            }
            Self::Device(fd) => fd,
        };
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let mut guard = fd.readable().await?;
            loop {
                match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => return Ok(!out.is_empty()),
                    Ok(Ok(n)) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    // The ring overwrote records we had not read yet.
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EPIPE) => {
                        stats.0.kmsg_lost.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                        stats.0.kmsg_parse_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => break,
                }
                if out.len() >= 256 {
                    return Ok(true);
                }
            }
            if !out.is_empty() {
                return Ok(true);
            }
        }
    }
}

async fn run(
    mut probe: Option<BpfProbe>,
    mut kmsg: Option<KmsgInput>,
    cfg: CorrelatorConfig,
    host: HostPaths,
    tx: mpsc::Sender<OomKill>,
    stats: TracerStats,
) -> io::Result<()> {
    let mut corr = Correlator::new(cfg);
    // SAFETY: sysconf has no preconditions.
    let page_kb = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) } / 1024).unwrap_or(4);
    let mut reports = ReportAssembler::new(page_kb);
    let mut raw: Vec<RawOomEvent> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    let mut matched: Vec<Matched> = Vec::new();
    loop {
        let deadline = corr.next_deadline();
        tokio::select! {
            () = tx.closed() => return Ok(()),
            r = async {
                match probe.as_mut() {
                    Some(p) => p.read(&mut raw).await,
                    None => std::future::pending().await,
                }
            } => r?,
            r = async {
                match kmsg.as_mut() {
                    Some(k) => k.read(&mut lines, &stats).await,
                    None => std::future::pending().await,
                }
            } => {
                if !r? && matches!(kmsg, Some(KmsgInput::Captured(ref l)) if l.is_empty()) && lines.is_empty() {
                    // A captured log is consumed; keep BPF (if any) running.
                    kmsg = None;
                }
            }
            () = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        let now = Instant::now();
        for ev in raw.drain(..) {
            corr.on_bpf(ev, now, &mut matched);
        }
        for text in lines.drain(..) {
            for record in text
                .split('\n')
                .filter(|l| !l.is_empty() && !l.starts_with(' '))
            {
                let Ok(rec) = parse_kmsg_record(record) else {
                    continue;
                };
                reports.push(rec.usec, &rec.message);
                match parse_oom_message(&rec.message) {
                    Ok(Some(oom)) => {
                        // The summary ends the report printed before it (the dump).
                        let report = matches!(oom, OomRecord::Summary(_))
                            .then(|| reports.finish())
                            .flatten();
                        corr.on_kmsg(oom, report, rec.usec, now, &mut matched);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "unparsable OOM-killer record");
                        stats.0.kmsg_parse_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        corr.expire(now, &mut matched);
        stats
            .0
            .marks_without_kill
            .store(corr.marks_without_kill, Ordering::Relaxed);
        if let Some(p) = &probe {
            stats.0.ringbuf_drops.store(p.drops(), Ordering::Relaxed);
        }
        if matched.is_empty() {
            continue;
        }
        let clock = ClockPair::now();
        for m in matched.drain(..) {
            if let Some(kill) = build_kill(m, &host, clock, page_kb)
                && tx.send(kill).await.is_err()
            {
                return Ok(());
            }
        }
    }
}
