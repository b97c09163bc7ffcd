//! Reads one memory cgroup's statistics with open files and `pread`, allocation-free per sample.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::CgroupError;
use crate::layout::CgroupVersion;

/// One reading of a memory cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryStats {
    /// `memory.current` (v2) or `memory.usage_in_bytes` (v1).
    pub usage_bytes: u64,
    /// `memory.max` (v2) or `memory.limit_in_bytes` (v1); `None` when unlimited (`max`, or v1 ≥ 2^63 − page).
    pub limit_bytes: Option<u64>,
    /// Usage minus inactive file cache, never below zero (what the kubelet evicts on and cAdvisor reports).
    pub working_set_bytes: u64,
    /// `inactive_file` (v2) or `total_inactive_file` (v1) from `memory.stat`.
    pub inactive_file_bytes: u64,
    /// OOM counters.
    pub oom: OomCounters,
    /// Memory pressure stall information (`memory.pressure`); `None` on v1 or without PSI.
    pub psi: Option<MemoryPsi>,
}

/// OOM counters of a memory cgroup.
///
/// v2 reads them from `memory.events` (hierarchical: a pod cgroup counts its containers' kills too);
/// v1 has only `oom_kill` and `under_oom` in `memory.oom_control`, counted in the victim's own cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomCounters {
    /// Processes the OOM killer killed in this cgroup.
    pub oom_kill: u64,
    /// Times the cgroup hit its limit and the OOM killer was invoked (v2).
    pub oom: Option<u64>,
    /// Times the whole cgroup was killed (`memory.oom.group`, v2).
    pub oom_group_kill: Option<u64>,
    /// Times usage was about to go over `memory.max` (v2).
    pub max: Option<u64>,
    /// Times usage went over `memory.high` and was throttled (v2).
    pub high: Option<u64>,
    /// Whether the cgroup is under OOM right now (v1 `under_oom`).
    pub under_oom: Option<bool>,
}

/// Pressure stall information of a memory cgroup (`memory.pressure`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryPsi {
    /// Some task stalled on memory.
    pub some: PsiLine,
    /// All non-idle tasks stalled on memory at once.
    pub full: PsiLine,
}

/// One line of a PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiLine {
    /// Percent of the last 10 s.
    pub avg10: f64,
    /// Percent of the last 60 s.
    pub avg60: f64,
    /// Percent of the last 300 s.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// A reusable read buffer shared by many [`CgroupReader`]s; grows to the largest file once. It also
/// holds the path of the file a reader opens for one read, so that needs no allocation either.
#[derive(Debug)]
pub struct ReadBuffer {
    data: Vec<u8>,
    path: PathBuf,
}

impl ReadBuffer {
    /// A buffer of 4 KiB (enough for `memory.stat` of v1 and v2 on 6.x kernels).
    #[must_use]
    pub fn new() -> Self {
        ReadBuffer {
            data: vec![0; 4096],
            path: PathBuf::new(),
        }
    }

    /// Reads the whole of `file` from offset 0; grows (and re-reads) only when the file is larger.
    ///
    /// A read that leaves room in the buffer is taken as the whole file: kernfs (`seq_file`) hands out
    /// everything it generated up to the requested size, so this costs one system call, not two.
    fn pread(&mut self, file: &File) -> std::io::Result<&[u8]> {
        let len = fill(&mut self.data, file)?;
        Ok(&self.data[..len])
    }

    /// Opens `path`, reads all of it and closes it again.
    pub(crate) fn read_path(&mut self, path: &Path) -> Result<&[u8], CgroupError> {
        let len = File::open(path)
            .and_then(|file| fill(&mut self.data, &file))
            .map_err(|e| CgroupError::from_io(path, e))?;
        Ok(&self.data[..len])
    }

    /// Opens `dir/name`, reads all of it and closes it again.
    fn read_named(&mut self, dir: &Path, name: &str) -> Result<&[u8], CgroupError> {
        let path = self.path.as_mut_os_string();
        path.clear();
        path.push(dir.as_os_str());
        path.push("/");
        path.push(name);
        let len = File::open(&self.path)
            .and_then(|file| fill(&mut self.data, &file))
            .map_err(|e| CgroupError::from_io(&self.path, e))?;
        Ok(&self.data[..len])
    }
}

/// Reads all of `file` from offset 0 into `data` (grown as needed); returns the length.
fn fill(data: &mut Vec<u8>, file: &File) -> std::io::Result<usize> {
    loop {
        let mut filled = 0;
        loop {
            match file.read_at(&mut data[filled..], filled as u64) {
                Ok(0) => return Ok(filled),
                Ok(n) => {
                    filled += n;
                    if filled == data.len() {
                        break;
                    }
                    return Ok(filled);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let len = data.len() * 2;
        data.resize(len, 0);
    }
}

impl Default for ReadBuffer {
    fn default() -> Self {
        ReadBuffer::new()
    }
}

/// A memory cgroup: its usage file stays open and each sample re-reads it with `pread` at offset 0;
/// the other files are opened for the read that needs them and closed again.
///
/// The kernel charges each open and read cgroup file (its `seq_file` buffer, a page) to the reader's
/// memory cgroup, so a watcher of a thousand containers that kept all of them open paid some 20 MB of
/// kernel memory and five descriptors per cgroup (issue 19). Usage is read every tick and is cheap to
/// `pread` (under 1 µs against some 9 µs to open, read and close); the limit, `memory.stat` and the
/// OOM counters are read far less often (see `Watcher`), where the open costs little. A reader made by
/// [`CgroupReader::on_demand`] keeps nothing open at all.
#[derive(Debug)]
pub struct CgroupReader {
    dir: PathBuf,
    version: CgroupVersion,
    /// The usage file, kept open; `None`: opened for each read.
    usage: Option<File>,
    /// `memory.pressure` exists and reads (v2 with PSI on).
    pressure: bool,
    stat_cache: StatCache,
    /// What the last read of the files a [`Refresh`] may skip said; `None` before the first read.
    slow: Option<SlowFiles>,
}

/// The values of the files that change rarely or announce their changes.
#[derive(Debug, Clone, Copy)]
struct SlowFiles {
    limit_bytes: Option<u64>,
    oom: OomCounters,
    psi: Option<MemoryPsi>,
}

/// Which of the slowly changing files a [`CgroupReader::read_with`] re-reads; the others keep the value
/// of the last read that did. Usage (and `memory.stat`, see [`CgroupReader::set_stat_skip_below`]) is
/// read every time.
///
/// A watcher that has an OOM notification armed on the cgroup (see [`OomNotifier`](crate::OomNotifier))
/// learns of OOM kills from it and need not re-read the OOM counters every sample; limits change only
/// when someone resizes the container. Skipping both cuts a v1 sample from three system calls to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refresh {
    /// `memory.max` / `memory.limit_in_bytes`.
    pub limit: bool,
    /// `memory.events` / `memory.oom_control`.
    pub events: bool,
    /// `memory.pressure` (v2).
    pub pressure: bool,
}

impl Refresh {
    /// Re-read every file.
    pub const ALL: Refresh = Refresh {
        limit: true,
        events: true,
        pressure: true,
    };
}

/// What the last `memory.stat` read said, for [`CgroupReader::set_stat_skip_below`].
#[derive(Debug, Clone, Copy, Default)]
struct StatCache {
    /// `skip_below` as a fraction of the limit; 0 = read `memory.stat` every time.
    skip_below: f64,
    valid: bool,
    inactive_file: u64,
    usage_at_read: u64,
    /// Samples since the last `memory.stat` read.
    age: u32,
}

/// A cached `inactive_file` is used for at most this many samples in a row.
const STAT_MAX_AGE: u32 = 30;
/// Unlimited cgroups re-read `memory.stat` when usage moved by this much.
const STAT_UNLIMITED_DRIFT: u64 = 4 << 20;

impl StatCache {
    /// Whether the cached `inactive_file` may stand in for a fresh `memory.stat` read.
    fn usable(&self, usage: u64, limit: Option<u64>) -> bool {
        if self.skip_below <= 0.0 || !self.valid || self.age >= STAT_MAX_AGE {
            return false;
        }
        let drift = usage.abs_diff(self.usage_at_read);
        match limit {
            Some(limit) => {
                (usage as f64) < self.skip_below * limit as f64 && drift < (limit / 64).max(1 << 20)
            }
            None => drift < STAT_UNLIMITED_DRIFT,
        }
    }
}

/// File names per version: usage, limit, stat, events, pressure.
fn file_names(version: CgroupVersion) -> [&'static str; 5] {
    match version {
        CgroupVersion::V1 => [
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.stat",
            "memory.oom_control",
            "",
        ],
        CgroupVersion::V2 => [
            "memory.current",
            "memory.max",
            "memory.stat",
            "memory.events",
            "memory.pressure",
        ],
    }
}

/// The indices of [`file_names`].
const USAGE: usize = 0;
const LIMIT: usize = 1;
const STAT: usize = 2;
const EVENTS: usize = 3;
const PRESSURE: usize = 4;

impl CgroupReader {
    /// A reader of the cgroup directory `dir` that keeps its usage file open (one descriptor).
    ///
    /// When the process is out of descriptors (`EMFILE`, `ENFILE`) it keeps nothing open, as
    /// [`CgroupReader::on_demand`] does; [`CgroupReader::holds_file`] tells.
    ///
    /// # Errors
    /// [`CgroupError::Vanished`] when the directory or the usage file is missing,
    /// [`CgroupError::PermissionDenied`] when it may not be read, [`CgroupError::Io`] otherwise. A
    /// missing `memory.pressure` (PSI off) is no error.
    pub fn open(dir: &Path, version: CgroupVersion) -> Result<Self, CgroupError> {
        Self::new(dir, version, true)
    }

    /// A reader of the cgroup directory `dir` that keeps no file open: each read opens the files it
    /// reads and closes them again (some 7 µs more per file on cgroupfs, no descriptor and no kernel
    /// memory between reads). For watchers of more cgroups than they want descriptors.
    ///
    /// # Errors
    /// As for [`CgroupReader::open`].
    pub fn on_demand(dir: &Path, version: CgroupVersion) -> Result<Self, CgroupError> {
        Self::new(dir, version, false)
    }

    fn new(dir: &Path, version: CgroupVersion, keep_usage: bool) -> Result<Self, CgroupError> {
        let names = file_names(version);
        let usage_path = dir.join(names[USAGE]);
        let usage = match File::open(&usage_path) {
            Ok(file) => keep_usage.then_some(file),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                if usage_path.exists() {
                    None
                } else {
                    return Err(CgroupError::Vanished { path: usage_path });
                }
            }
            Err(e) => return Err(CgroupError::from_io(&usage_path, e)),
        };
        let pressure = !names[PRESSURE].is_empty() && dir.join(names[PRESSURE]).exists();
        Ok(CgroupReader {
            dir: dir.to_owned(),
            version,
            usage,
            pressure,
            stat_cache: StatCache::default(),
            slow: None,
        })
    }

    /// Whether this reader keeps a file (its usage file) open.
    #[must_use]
    pub fn holds_file(&self) -> bool {
        self.usage.is_some()
    }

    /// The cgroup directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup version of this reader.
    #[must_use]
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Lets [`CgroupReader::read`] skip `memory.stat` (the one expensive file: the kernel formats some
    /// 70 counters) while usage stays below `fraction` of the limit and close to where it was at the
    /// last `memory.stat` read (within 1/64 of the limit, at least 1 MiB; 4 MiB when unlimited), for at
    /// most 30 samples in a row (3 s for a sidecar at 100 ms); the working set then uses the last
    /// `inactive_file`, and follows usage between the reads.
    ///
    /// The working set is at most usage, so below `fraction` it cannot cross a threshold at or above
    /// `fraction`: a watcher passes a fraction below its lowest threshold and loses no event, while idle
    /// containers cost about a third. `0` (the default) reads `memory.stat` every time.
    pub fn set_stat_skip_below(&mut self, fraction: f64) {
        self.stat_cache.skip_below = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
    }

    /// The path of `memory.events` (v2) or `memory.oom_control` (v1), for OOM notifications.
    pub(crate) fn events_path(&self) -> PathBuf {
        self.dir.join(file_names(self.version)[EVENTS])
    }

    /// The path of file `index` of [`file_names`], for an error.
    fn path_of(&self, index: usize) -> PathBuf {
        self.dir.join(file_names(self.version)[index])
    }

    /// Reads file `index` of [`file_names`] into `buf`: the open usage file, or any file by name.
    fn read_file<'a>(
        &self,
        buf: &'a mut ReadBuffer,
        index: usize,
    ) -> Result<&'a [u8], CgroupError> {
        match (&self.usage, index) {
            (Some(file), USAGE) => buf
                .pread(file)
                .map_err(|e| CgroupError::from_io(&self.path_of(USAGE), e)),
            _ => buf.read_named(&self.dir, file_names(self.version)[index]),
        }
    }

    /// Reads all statistics; allocation-free once `buf` has grown to the largest file.
    ///
    /// # Errors
    /// [`CgroupError::Vanished`] when the cgroup was removed (`ENODEV`), [`CgroupError::Parse`] when a
    /// file does not hold the kernel's format, other variants as for [`CgroupReader::open`].
    pub fn read(&mut self, buf: &mut ReadBuffer) -> Result<MemoryStats, CgroupError> {
        self.read_with(buf, Refresh::ALL)
    }

    /// Reads usage (and `memory.stat` as needed) and the files `refresh` names; the others keep the
    /// values of the last read that included them. The first read of a reader reads everything, and
    /// usage above the kept limit re-reads the limit (it can only have been raised).
    ///
    /// # Errors
    /// As for [`CgroupReader::read`].
    pub fn read_with(
        &mut self,
        buf: &mut ReadBuffer,
        refresh: Refresh,
    ) -> Result<MemoryStats, CgroupError> {
        let usage_bytes =
            parse_u64(trim(self.read_file(buf, USAGE)?)).ok_or_else(|| CgroupError::Parse {
                path: self.path_of(USAGE),
                what: "a byte count",
            })?;
        let cached = self.slow;
        let refresh = if cached.is_none() {
            Refresh::ALL
        } else {
            refresh
        };
        // Usage above the known limit means the limit was raised since: re-read it now.
        let limit_bytes = match cached {
            Some(c) if !refresh.limit && c.limit_bytes.is_none_or(|l| usage_bytes <= l) => {
                c.limit_bytes
            }
            _ => self.read_limit(buf)?,
        };
        let inactive_key: &[u8] = match self.version {
            CgroupVersion::V1 => b"total_inactive_file",
            CgroupVersion::V2 => b"inactive_file",
        };
        let inactive_file_bytes = if self.stat_cache.usable(usage_bytes, limit_bytes) {
            self.stat_cache.age += 1;
            self.stat_cache.inactive_file
        } else {
            let stat = self.read_file(buf, STAT)?;
            let inactive = keyed_u64(stat, inactive_key).ok_or_else(|| CgroupError::Parse {
                path: self.path_of(STAT),
                what: "inactive_file",
            })?;
            self.stat_cache.valid = true;
            self.stat_cache.inactive_file = inactive;
            self.stat_cache.usage_at_read = usage_bytes;
            self.stat_cache.age = 0;
            inactive
        };
        let oom = match cached {
            Some(c) if !refresh.events => c.oom,
            _ => self.read_events(buf)?,
        };
        let psi = match cached {
            Some(c) if !refresh.pressure => c.psi,
            _ => self.read_pressure(buf)?,
        };
        self.slow = Some(SlowFiles {
            limit_bytes,
            oom,
            psi,
        });
        Ok(MemoryStats {
            usage_bytes,
            limit_bytes,
            working_set_bytes: usage_bytes.saturating_sub(inactive_file_bytes),
            inactive_file_bytes,
            oom,
            psi,
        })
    }

    fn read_events(&mut self, buf: &mut ReadBuffer) -> Result<OomCounters, CgroupError> {
        let events = self.read_file(buf, EVENTS)?;
        Ok(match self.version {
            CgroupVersion::V1 => OomCounters {
                oom_kill: keyed_u64(events, b"oom_kill").unwrap_or(0),
                under_oom: keyed_u64(events, b"under_oom").map(|v| v != 0),
                ..OomCounters::default()
            },
            CgroupVersion::V2 => OomCounters {
                oom_kill: keyed_u64(events, b"oom_kill").ok_or_else(|| CgroupError::Parse {
                    path: self.path_of(EVENTS),
                    what: "oom_kill",
                })?,
                oom: keyed_u64(events, b"oom"),
                oom_group_kill: keyed_u64(events, b"oom_group_kill"),
                max: keyed_u64(events, b"max"),
                high: keyed_u64(events, b"high"),
                under_oom: None,
            },
        })
    }

    fn read_pressure(&mut self, buf: &mut ReadBuffer) -> Result<Option<MemoryPsi>, CgroupError> {
        if !self.pressure {
            return Ok(None);
        }
        match self.read_file(buf, PRESSURE) {
            Ok(text) => Ok(parse_psi(text)),
            // PSI disabled at boot (`psi=0`): reads fail with EOPNOTSUPP; stop trying.
            Err(CgroupError::Io { .. }) => {
                self.pressure = false;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn read_limit(&self, buf: &mut ReadBuffer) -> Result<Option<u64>, CgroupError> {
        let text = trim(self.read_file(buf, LIMIT)?);
        if self.version == CgroupVersion::V2 && text == b"max" {
            return Ok(None);
        }
        let value = parse_u64(text).ok_or_else(|| CgroupError::Parse {
            path: self.path_of(LIMIT),
            what: "a limit (bytes or max)",
        })?;
        Ok(v1_limit(value))
    }
}

/// v1 reports "unlimited" as `PAGE_COUNTER_MAX` pages: 2^63 − 1 rounded down to the page size.
fn v1_limit(value: u64) -> Option<u64> {
    (value < (1u64 << 63) - page_size()).then_some(value)
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
    })
}

fn trim(text: &[u8]) -> &[u8] {
    text.trim_ascii()
}

pub(crate) fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Finds `key value` in a flat-keyed file (`memory.stat`, `memory.events`, `memory.oom_control`).
pub(crate) fn keyed_u64(text: &[u8], key: &[u8]) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(b" ")?;
        parse_u64(trim(rest))
    })
}

/// Parses `memory.pressure`: a `some` line and (since 4.20 for memory) a `full` line.
fn parse_psi(text: &[u8]) -> Option<MemoryPsi> {
    let mut psi = MemoryPsi::default();
    let mut seen_some = false;
    for line in text.split(|&b| b == b'\n') {
        let (target, rest) = if let Some(rest) = line.strip_prefix(b"some ") {
            seen_some = true;
            (&mut psi.some, rest)
        } else if let Some(rest) = line.strip_prefix(b"full ") {
            (&mut psi.full, rest)
        } else {
            continue;
        };
        for field in rest.split(|&b| b == b' ') {
            let Some(eq) = field.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&field[..eq], &field[eq + 1..]);
            let float = || std::str::from_utf8(value).ok()?.parse::<f64>().ok();
            match name {
                b"avg10" => target.avg10 = float()?,
                b"avg60" => target.avg60 = float()?,
                b"avg300" => target.avg300 = float()?,
                b"total" => target.total_us = parse_u64(value)?,
                _ => {}
            }
        }
    }
    seen_some.then_some(psi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A PSI file with non-zero averages (constructed in the kernel's format; the captures have zeros).
    const V2_PRESSURE: &str = "some avg10=1.25 avg60=0.40 avg300=0.08 total=123456\nfull avg10=0.50 avg60=0.10 avg300=0.02 total=65432\n";

    /// Copies a captured cgroup directory (see `testdata/SOURCES.txt`) into a temp dir.
    fn captured(rel: &str) -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(rel);
        let dir = tempfile::tempdir().expect("tempdir");
        for entry in fs::read_dir(&src).expect("testdata") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
        dir
    }

    #[test]
    fn v2_real_capture_after_kill() {
        let dir = captured("v2_linux_6.1/after_kill");
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let stats = reader.read(&mut ReadBuffer::new()).expect("read");
        assert_eq!(stats.usage_bytes, 4096);
        assert_eq!(stats.limit_bytes, Some(48 << 20));
        assert_eq!(stats.inactive_file_bytes, 0);
        assert_eq!(stats.working_set_bytes, 4096);
        assert_eq!(
            stats.oom,
            OomCounters {
                oom_kill: 1,
                oom: Some(1),
                oom_group_kill: Some(0),
                max: Some(35),
                high: Some(0),
                under_oom: None,
            }
        );
        let psi = stats.psi.expect("psi");
        assert_eq!(psi.some.total_us, 36_530);
        assert_eq!(psi.full.total_us, 36_530);
        assert_eq!(psi.some.avg10, 0.0);
    }

    #[test]
    fn v2_real_capture_running_and_pod() {
        let dir = captured("v2_linux_6.1/running");
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let mut buf = ReadBuffer::new();
        let stats = reader.read(&mut buf).expect("read");
        assert_eq!(stats.usage_bytes, 4_788_224);
        assert_eq!(stats.working_set_bytes, 4_788_224);
        assert_eq!(stats.oom.oom_kill, 0);

        let pod = captured("v2_linux_6.1/pod_after_kill");
        let mut reader = CgroupReader::open(pod.path(), CgroupVersion::V2).expect("open");
        let stats = reader.read(&mut buf).expect("read");
        assert_eq!(stats.limit_bytes, None, "memory.max `max` is unlimited");
        assert_eq!(
            stats.oom.oom_kill, 1,
            "memory.events counts the container's kill"
        );
    }

    #[test]
    fn read_with_keeps_the_files_it_skips_and_rereads_the_ones_it_names() {
        let dir = captured("v2_linux_6.1/running");
        let mut buf = ReadBuffer::new();
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let usage_only = Refresh {
            limit: false,
            events: false,
            pressure: false,
        };
        // The first read reads everything whatever it is asked.
        let first = reader.read_with(&mut buf, usage_only).expect("read");
        assert_eq!(first, reader.read(&mut buf).expect("read"));
        fs::write(dir.path().join("memory.current"), "1234567\n").expect("write");
        fs::write(dir.path().join("memory.max"), "2000000\n").expect("write");
        let events = fs::read_to_string(dir.path().join("memory.events")).expect("read");
        let bumped = events.replace(
            &format!("oom_kill {}\n", first.oom.oom_kill),
            &format!("oom_kill {}\n", first.oom.oom_kill + 1),
        );
        assert_ne!(bumped, events);
        fs::write(dir.path().join("memory.events"), bumped).expect("write");
        // Usage is always fresh; limit and counters are the last read's.
        let quick = reader.read_with(&mut buf, usage_only).expect("read");
        assert_eq!(quick.usage_bytes, 1_234_567);
        assert_eq!(quick.limit_bytes, first.limit_bytes);
        assert_eq!(quick.oom, first.oom);
        // Named files are re-read.
        let events_only = Refresh {
            events: true,
            ..usage_only
        };
        let with_events = reader.read_with(&mut buf, events_only).expect("read");
        assert_eq!(with_events.oom.oom_kill, first.oom.oom_kill + 1);
        assert_eq!(with_events.limit_bytes, first.limit_bytes);
        let full = reader.read_with(&mut buf, Refresh::ALL).expect("read");
        assert_eq!(full.limit_bytes, Some(2_000_000));
        // A raised limit shows as usage above the kept one: that re-reads the limit at once.
        fs::write(dir.path().join("memory.max"), "8000000\n").expect("write");
        fs::write(dir.path().join("memory.current"), "1999999\n").expect("write");
        let below = reader.read_with(&mut buf, usage_only).expect("read");
        assert_eq!(
            below.limit_bytes,
            Some(2_000_000),
            "usage under the kept limit"
        );
        fs::write(dir.path().join("memory.current"), "2000001\n").expect("write");
        let above = reader.read_with(&mut buf, usage_only).expect("read");
        assert_eq!(above.limit_bytes, Some(8_000_000));
    }

    #[test]
    fn v2_psi_averages() {
        let psi = parse_psi(V2_PRESSURE.as_bytes()).expect("psi");
        assert_eq!(psi.some.avg10, 1.25);
        assert_eq!(psi.some.avg60, 0.40);
        assert_eq!(psi.some.avg300, 0.08);
        assert_eq!(psi.some.total_us, 123_456);
        assert_eq!(psi.full.avg10, 0.50);
        assert_eq!(psi.full.total_us, 65_432);
        assert_eq!(parse_psi(b"garbage\n"), None);
    }

    #[test]
    fn v2_unlimited_and_no_psi_and_rereads() {
        let dir = captured("v2_linux_6.1/running");
        fs::write(dir.path().join("memory.max"), "max\n").expect("write");
        fs::remove_file(dir.path().join("memory.pressure")).expect("rm");
        let stat = fs::read_to_string(dir.path().join("memory.stat")).expect("read");
        fs::write(
            dir.path().join("memory.stat"),
            stat.replace("inactive_file 0\n", "inactive_file 8000000\n"),
        )
        .expect("write");
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let mut buf = ReadBuffer::new();
        let stats = reader.read(&mut buf).expect("read");
        assert_eq!(stats.limit_bytes, None);
        assert_eq!(stats.psi, None);
        // Usage below inactive_file: the working set clamps at zero.
        assert_eq!(stats.working_set_bytes, 0);
        // The same open file sees new contents (pread at offset 0, no reopen).
        fs::write(dir.path().join("memory.current"), "9999999\n").expect("write");
        assert_eq!(reader.read(&mut buf).expect("read").usage_bytes, 9_999_999);
    }

    #[test]
    fn v1_real_capture() {
        let dir = captured("v1_linux_6.18");
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V1).expect("open");
        let mut buf = ReadBuffer::new();
        let stats = reader.read(&mut buf).expect("read");
        assert_eq!(stats.limit_bytes, Some(64 << 20));
        assert_eq!(stats.oom.oom_kill, 0);
        assert_eq!(stats.oom.under_oom, Some(false));
        assert_eq!(stats.psi, None);
        fs::copy(
            dir.path().join("root.memory.limit_in_bytes"),
            dir.path().join("memory.limit_in_bytes"),
        )
        .expect("copy");
        assert_eq!(reader.read(&mut buf).expect("read").limit_bytes, None);
    }

    #[test]
    fn v1_unlimited_threshold() {
        let page = page_size();
        assert_eq!(v1_limit(9_223_372_036_854_771_712), None);
        assert_eq!(v1_limit((1 << 63) - page), None);
        assert_eq!(v1_limit((1 << 63) - 2 * page), Some((1 << 63) - 2 * page));
        assert_eq!(v1_limit(128 << 20), Some(128 << 20));
    }

    #[test]
    fn v1_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path();
        fs::write(p.join("memory.usage_in_bytes"), "134217728\n").expect("write");
        fs::write(p.join("memory.limit_in_bytes"), "134217728\n").expect("write");
        fs::write(
            p.join("memory.stat"),
            "cache 0\nrss 134217728\ninactive_file 4096\ntotal_cache 0\ntotal_inactive_file 8192\n",
        )
        .expect("write");
        fs::write(
            p.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 1\noom_kill 3\n",
        )
        .expect("write");
        let mut reader = CgroupReader::open(p, CgroupVersion::V1).expect("open");
        let stats = reader.read(&mut ReadBuffer::new()).expect("read");
        assert_eq!(stats.limit_bytes, Some(128 << 20));
        assert_eq!(
            stats.inactive_file_bytes, 8192,
            "v1 uses the hierarchical total_"
        );
        assert_eq!(stats.working_set_bytes, (128 << 20) - 8192);
        assert_eq!(stats.oom.oom_kill, 3);
        assert_eq!(stats.oom.under_oom, Some(true));
        assert_eq!(stats.oom.oom, None);
        assert_eq!(stats.psi, None);
    }

    #[test]
    fn missing_cgroup_is_vanished_and_garbage_is_parse_error() {
        let err = CgroupReader::open(Path::new("/nonexistent/cgroup"), CgroupVersion::V2)
            .expect_err("missing");
        assert!(err.is_vanished(), "{err}");

        let dir = captured("v2_linux_6.1/empty");
        fs::write(dir.path().join("memory.current"), "12x\n").expect("write");
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let err = reader.read(&mut ReadBuffer::new()).expect_err("garbage");
        assert!(matches!(err, CgroupError::Parse { .. }), "{err}");
        assert_eq!(err.path(), dir.path().join("memory.current"));
    }

    #[test]
    fn buffer_grows_for_large_files() {
        let dir = captured("v2_linux_6.1/running");
        let stat = fs::read_to_string(dir.path().join("memory.stat")).expect("read");
        let big = stat
            .replace("inactive_file 0", "inactive_file 2453504")
            .repeat(10);
        fs::write(dir.path().join("memory.stat"), &big).expect("write");
        let mut reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let mut buf = ReadBuffer::new();
        assert_eq!(
            reader.read(&mut buf).expect("read").inactive_file_bytes,
            2_453_504
        );
        assert!(buf.data.len() >= big.len());
    }

    #[test]
    fn stat_is_skipped_only_while_far_below_the_threshold() {
        let dir = captured("v2_linux_6.1/running");
        let p = dir.path();
        fs::write(p.join("memory.max"), format!("{}\n", 100u64 << 20)).expect("write");
        let stat = fs::read_to_string(p.join("memory.stat")).expect("read");
        let set_inactive = |n: u64| {
            fs::write(
                p.join("memory.stat"),
                stat.replace("inactive_file 0\n", &format!("inactive_file {n}\n")),
            )
            .expect("write")
        };
        let mut reader = CgroupReader::open(p, CgroupVersion::V2).expect("open");
        let mut buf = ReadBuffer::new();
        set_inactive(1 << 20);
        assert_eq!(
            reader.read(&mut buf).expect("read").inactive_file_bytes,
            1 << 20
        );
        // Default: every read sees memory.stat.
        set_inactive(2 << 20);
        assert_eq!(
            reader.read(&mut buf).expect("read").inactive_file_bytes,
            2 << 20
        );

        reader.set_stat_skip_below(0.5);
        set_inactive(3 << 20);
        // Usage 4.6 MiB of 100 MiB, unchanged: the cached value stands (up to 10 times).
        for _ in 0..STAT_MAX_AGE {
            assert_eq!(
                reader.read(&mut buf).expect("read").inactive_file_bytes,
                2 << 20
            );
        }
        assert_eq!(
            reader.read(&mut buf).expect("read").inactive_file_bytes,
            3 << 20,
            "aged out"
        );
        // Usage moved by more than 1/64 of the limit: fresh read.
        set_inactive(4 << 20);
        fs::write(p.join("memory.current"), format!("{}\n", 10u64 << 20)).expect("write");
        let stats = reader.read(&mut buf).expect("read");
        assert_eq!(stats.inactive_file_bytes, 4 << 20);
        assert_eq!(stats.working_set_bytes, 6 << 20);
        // At or above half the limit: always fresh.
        fs::write(p.join("memory.current"), format!("{}\n", 60u64 << 20)).expect("write");
        reader.read(&mut buf).expect("read");
        set_inactive(5 << 20);
        assert_eq!(
            reader.read(&mut buf).expect("read").inactive_file_bytes,
            5 << 20
        );
    }

    #[test]
    fn keyed_values_need_exact_keys() {
        let text = b"total_inactive_file 5\ninactive_file 7\noom 2\noom_kill 9\n";
        assert_eq!(keyed_u64(text, b"inactive_file"), Some(7));
        assert_eq!(keyed_u64(text, b"oom"), Some(2));
        assert_eq!(keyed_u64(text, b"oom_kill"), Some(9));
        assert_eq!(keyed_u64(text, b"missing"), None);
        assert_eq!(parse_u64(b"18446744073709551616"), None);
    }
}
