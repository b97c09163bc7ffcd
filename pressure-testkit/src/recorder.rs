//! Records a real memory timeline for the prediction corpus: one program in its own cgroup v1 memcg,
//! sampled every 100 ms in the replay format, until the kernel OOM-kills it or the scenario ends.
//!
//! The memcg gets its limit before any process enters it; the workload enters it from its first
//! instruction (`sh` writes its own PID into `cgroup.procs`, then `exec`s the program). Recording starts
//! [`PRE_ROLL`] before the workload, as in the corpus this project started from, and goes on
//! [`POST_ROLL`] past a kill. Whatever is left in the memcg is SIGKILLed and the memcg removed, also when
//! recording fails. The limit is refused unless it is well below the host's available memory: a memcg
//! OOM is the point, a global one must never happen.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cgroup::{V1_MEMORY_ROOT, remove_cgroup};

/// Sampling period.
pub const PERIOD: Duration = Duration::from_millis(100);
/// Recording before the workload starts.
pub const PRE_ROLL: Duration = Duration::from_secs(3);
/// Recording after the kill (or the workload's own exit).
pub const POST_ROLL: Duration = Duration::from_secs(3);
/// The largest limit a recording may have.
pub const MAX_LIMIT_BYTES: u64 = 1 << 30;

/// What to record.
#[derive(Debug, Clone)]
pub struct RecordSpec {
    /// Scenario name: the file names and the pod name.
    pub name: String,
    /// One sentence on the workload.
    pub description: String,
    /// Corpus shape (see [`crate::prediction`]).
    pub shape: String,
    /// `tune` or `holdout`.
    pub split: String,
    /// `memory.limit_in_bytes`.
    pub limit_bytes: u64,
    /// Longest run of the workload before the recording ends without a kill.
    pub duration: Duration,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Whether the scenario is meant to end in a kill (recorded in the meta file; the outcome is
    /// what happened).
    pub expect_oom: bool,
}

/// A recording that could not be made; names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A cgroup or output file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The limit is above [`MAX_LIMIT_BYTES`] or a quarter of the available memory.
    #[error(
        "limit {limit} bytes refused: at most {max} bytes here (a global OOM must never happen)"
    )]
    LimitTooLarge {
        /// Asked.
        limit: u64,
        /// Allowed.
        max: u64,
    },
    /// No command given.
    #[error("no command to record")]
    NoCommand,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes the memcg (killing what is left in it) however recording ends.
struct MemcgGuard(PathBuf);

impl Drop for MemcgGuard {
    fn drop(&mut self) {
        remove_cgroup(&self.0);
    }
}

fn read_u64(path: &Path) -> Result<u64, RecordError> {
    let text = fs::read_to_string(path).map_err(io_at(path))?;
    Ok(text.trim().parse().unwrap_or(0))
}

/// The value of `key` in a `key value` per line file (`memory.stat`, `memory.oom_control`).
fn keyed(path: &Path, key: &str) -> Result<u64, RecordError> {
    let text = fs::read_to_string(path).map_err(io_at(path))?;
    Ok(text
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0))
}

fn available_bytes() -> u64 {
    keyed(Path::new("/proc/meminfo"), "MemAvailable:")
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Records `spec` into `out_dir/<name>.jsonl` and `<name>.meta.json`; returns whether it was killed.
pub fn record(spec: &RecordSpec, out_dir: &Path) -> Result<bool, RecordError> {
    let max = MAX_LIMIT_BYTES.min(available_bytes() / 4);
    if spec.limit_bytes > max || spec.limit_bytes == 0 {
        return Err(RecordError::LimitTooLarge {
            limit: spec.limit_bytes,
            max,
        });
    }
    if spec.command.is_empty() {
        return Err(RecordError::NoCommand);
    }
    let parent = Path::new(V1_MEMORY_ROOT).join("pressure-rec");
    let dir = parent.join(format!("{}-{}", spec.name, std::process::id()));
    fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let _guard = MemcgGuard(dir.clone());
    let limit_file = dir.join("memory.limit_in_bytes");
    fs::write(&limit_file, spec.limit_bytes.to_string()).map_err(io_at(&limit_file))?;
    let limit = read_u64(&limit_file)?;
    let (usage_f, stat_f, oom_f) = (
        dir.join("memory.usage_in_bytes"),
        dir.join("memory.stat"),
        dir.join("memory.oom_control"),
    );
    let pod_uid = format!(
        "00000000-0000-4000-8000-{:012x}",
        spec.name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)))
            & 0xffff_ffff_ffff
    );
    let mut lines = String::new();
    let start = Instant::now();
    let record_start = SystemTime::now();
    let mut child: Option<Child> = None;
    let (mut workload_start, mut kill_t, mut ended_at) = (None, None, None);
    let mut end_reason = "duration";
    let mut samples = 0u64;
    let mut tick = 0u32;
    loop {
        let now = SystemTime::now();
        let t = unix(now);
        let usage = read_u64(&usage_f)?;
        let inactive = keyed(&stat_f, "total_inactive_file")?;
        let kills = keyed(&oom_f, "oom_kill")?;
        let _ = writeln!(
            lines,
            "{{\"t\": {t:.6}, \"namespace\": \"corpus\", \"pod\": \"{}\", \"container\": \"app\", \"pod_uid\": \"{pod_uid}\", \"usage_bytes\": {usage}, \"working_set_bytes\": {}, \"limit_bytes\": {limit}, \"oom_kill_count\": {kills}, \"annotations\": {{}}}}",
            spec.name,
            usage.saturating_sub(inactive)
        );
        samples += 1;
        if kills > 0 && kill_t.is_none() {
            kill_t = Some(t);
            end_reason = "oom_kill";
            ended_at.get_or_insert(Instant::now());
        }
        if let Some(c) = child.as_mut()
            && ended_at.is_none()
            && c.try_wait().map_err(io_at(&dir))?.is_some()
        {
            end_reason = "workload_exit";
            ended_at = Some(Instant::now());
        }
        let elapsed = start.elapsed();
        if child.is_none() && elapsed >= PRE_ROLL {
            let procs = dir.join("cgroup.procs");
            let c = Command::new("sh")
                .arg("-c")
                .arg("echo $$ > \"$0\" && exec \"$@\"")
                .arg(&procs)
                .args(&spec.command)
                .stdout(std::process::Stdio::null())
                .spawn()
                .map_err(io_at(&procs))?;
            workload_start = Some(unix(SystemTime::now()));
            child = Some(c);
        }
        let over = match ended_at {
            Some(e) => e.elapsed() >= POST_ROLL,
            None => elapsed >= PRE_ROLL + spec.duration,
        };
        if over {
            break;
        }
        // A fixed grid: a slow read does not shift the samples after it.
        tick += 1;
        let next = start + PERIOD * tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let record_end = unix(SystemTime::now());
    remove_cgroup(&dir);
    let status = child.map(|mut c| {
        c.wait().ok().and_then(|s| {
            std::os::unix::process::ExitStatusExt::signal(&s)
                .map(|s| -s)
                .or(s.code())
        })
    });
    fs::create_dir_all(out_dir).map_err(io_at(out_dir))?;
    let jsonl = out_dir.join(format!("{}.jsonl", spec.name));
    fs::write(&jsonl, &lines).map_err(io_at(&jsonl))?;
    let meta = serde_json::json!({
        "name": spec.name,
        "pod_uid": pod_uid,
        "description": spec.description,
        "shape": spec.shape,
        "split": spec.split,
        "expect_oom": spec.expect_oom,
        "limit_bytes": limit,
        "oom_killed": kill_t.is_some(),
        "kill_t": kill_t,
        "kill_t_note": "t of the first 100 ms sample whose oom_kill_count increased",
        "workload_start_t": workload_start,
        "record_start_t": unix(record_start),
        "record_end_t": record_end,
        "end_reason": end_reason,
        "workload_exit_status": status.flatten(),
        "command": spec.command,
        "samples": samples,
        "sample_period_s": PERIOD.as_secs_f64(),
        "recorder": "pressure-testkit record-timeline (src/recorder.rs)",
    });
    let meta_path = out_dir.join(format!("{}.meta.json", spec.name));
    fs::write(
        &meta_path,
        serde_json::to_string_pretty(&meta).expect("JSON value") + "\n",
    )
    .map_err(io_at(&meta_path))?;
    Ok(kill_t.is_some())
}
