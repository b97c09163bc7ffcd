//! Memory hogs: child processes that join a memory cgroup and grow until the kernel kills them.
//!
//! The hog is a forked child of the test process that uses only raw system calls after the fork
//! (no allocator, no locks: the test process is multi-threaded), so no helper binary or interpreter
//! is needed. It writes `0` to the cgroup's `cgroup.procs` (moving itself, v1 and v2 alike), reports
//! back through a pipe, then maps and touches `step_bytes` every `interval`. Always give it a cgroup
//! with a limit: a hog outside a memcg would grow into a global OOM.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How a hog grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HogSpec {
    /// Bytes added (mapped and touched) per step.
    pub step_bytes: usize,
    /// Time between steps.
    pub interval: Duration,
    /// Stop growing (and sleep) at this size; `None` grows until killed.
    pub max_bytes: Option<usize>,
}

impl HogSpec {
    /// The hog: 4 MiB every 100 ms, without end.
    #[must_use]
    pub fn four_mib_per_100ms() -> Self {
        HogSpec {
            step_bytes: 4 << 20,
            interval: Duration::from_millis(100),
            max_bytes: None,
        }
    }
}

/// How a hog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HogExit {
    /// Killed by this signal (`SIGKILL` = 9 is the OOM killer).
    Signaled(i32),
    /// Exited with this code (1: joining the cgroup failed, 2: mmap failed).
    Exited(i32),
}

/// A running hog; killed and reaped on drop.
#[derive(Debug)]
pub struct Hog {
    pid: libc::pid_t,
    exit: Option<HogExit>,
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

impl Hog {
    /// Forks a hog that moves itself into the cgroup whose `cgroup.procs` is `procs`, then grows.
    ///
    /// Returns once the child is in the cgroup.
    ///
    /// # Errors
    /// `fork`/`pipe` failures, or the child's failure to join the cgroup (with the errno it got).
    pub fn spawn_in(procs: &Path, spec: HogSpec) -> io::Result<Hog> {
        let path = CString::new(procs.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(last_error());
        }
        let (read_end, write_end) = (fds[0], fds[1]);
        let step = spec.step_bytes.max(4096);
        let interval = libc::timespec {
            tv_sec: spec.interval.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(spec.interval.subsec_nanos() as i32),
        };
        let max = spec.max_bytes.unwrap_or(usize::MAX);
        // SAFETY: the child only makes raw system calls (async-signal-safe) and never returns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let err = last_error();
            // SAFETY: closing our own pipe ends.
            unsafe {
                libc::close(read_end);
                libc::close(write_end);
            }
            return Err(err);
        }
        if pid == 0 {
            // SAFETY: child after fork; see `child`.
            unsafe { child(&path, write_end, step, interval, max) }
        }
        // SAFETY: parent: close the child's end, wait for its 4-byte status.
        let status = unsafe {
            libc::close(write_end);
            let mut errno = [0u8; 4];
            let n = libc::read(read_end, errno.as_mut_ptr().cast(), 4);
            libc::close(read_end);
            if n == 4 {
                i32::from_ne_bytes(errno)
            } else {
                -1
            }
        };
        let mut hog = Hog { pid, exit: None };
        if status != 0 {
            let err = if status > 0 {
                io::Error::from_raw_os_error(status)
            } else {
                io::Error::other("hog died before joining the cgroup")
            };
            hog.kill();
            return Err(io::Error::new(
                err.kind(),
                format!("hog joining {}: {err}", procs.display()),
            ));
        }
        Ok(hog)
    }

    /// The hog's process ID.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Reaps the hog if it ended.
    ///
    /// # Errors
    /// `waitpid` failures.
    pub fn try_wait(&mut self) -> io::Result<Option<HogExit>> {
        if self.exit.is_some() {
            return Ok(self.exit);
        }
        let mut status = 0;
        // SAFETY: our own child; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(self.pid, &raw mut status, libc::WNOHANG) };
        if r < 0 {
            return Err(last_error());
        }
        if r == self.pid {
            self.exit = Some(if libc::WIFSIGNALED(status) {
                HogExit::Signaled(libc::WTERMSIG(status))
            } else {
                HogExit::Exited(libc::WEXITSTATUS(status))
            });
        }
        Ok(self.exit)
    }

    /// Waits up to `timeout` for the hog to end.
    ///
    /// # Errors
    /// `waitpid` failures.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<HogExit>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.try_wait()? {
                return Ok(Some(exit));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to `timeout` for the hog to end without reaping it: a zombie, its `/proc/<pid>`
    /// stays readable (for a tracer that looks the victim up) until [`Hog::try_wait`] or drop
    /// reaps it. True when it ended.
    ///
    /// # Errors
    /// `waitid` failures.
    pub fn wait_exit_unreaped(&mut self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit.is_some() {
                return Ok(true);
            }
            // SAFETY: siginfo_t is plain data; zeroed is its "no child changed state" value.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: our own child; WNOHANG never blocks and WNOWAIT leaves it unreaped.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &raw mut info,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                )
            };
            if r < 0 {
                return Err(last_error());
            }
            // SAFETY: filled in by waitid (0 when nothing changed).
            if unsafe { info.si_pid() } == self.pid {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills (SIGKILL) and reaps the hog; nothing if it already ended.
    pub fn kill(&mut self) {
        if self.exit.is_none() {
            // SAFETY: our own child, not yet reaped (so the pid cannot be reused).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The hog itself. Raw system calls only.
///
/// # Safety
/// Call only in a freshly forked child; never returns.
unsafe fn child(
    procs: &CString,
    report: libc::c_int,
    step: usize,
    interval: libc::timespec,
    max: usize,
) -> ! {
    // SAFETY: raw system calls on valid pointers; the process ends with _exit.
    unsafe {
        // Die with the test process, so a crashed test leaves no hog behind.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        let joined = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
        let errno: i32 = if joined { 0 } else { *libc::__errno_location() };
        libc::write(report, errno.to_ne_bytes().as_ptr().cast(), 4);
        libc::close(report);
        if !joined {
            libc::_exit(1);
        }
        let mut total = 0usize;
        loop {
            if total < max {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    step,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if p == libc::MAP_FAILED {
                    libc::_exit(2);
                }
                let bytes = p.cast::<u8>();
                let mut offset = 0;
                while offset < step {
                    std::ptr::write_volatile(bytes.add(offset), 1);
                    offset += 4096;
                }
                total += step;
            }
            libc::nanosleep(&raw const interval, std::ptr::null_mut());
        }
    }
}
