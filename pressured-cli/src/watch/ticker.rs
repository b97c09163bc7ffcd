//! A drift-free periodic tick from a kernel `timerfd`, awaited through tokio.
//!
//! `tokio::time::interval` costs this loop two extra wake-ups per tick: its timer wheel reaches a
//! 100 ms deadline through a coarser level first (one early `epoll_wait` return), and re-arming the
//! interval from inside the runtime writes the runtime's eventfd (a second one). A `CLOCK_MONOTONIC`
//! timerfd armed once with the period makes the kernel do the scheduling: the runtime sleeps in
//! `epoll_wait` with no timeout and wakes exactly once per tick, on the period grid, without drift.
//! A late read reports how many ticks passed; the loop then samples once (missed ticks are skipped,
//! never bunched up).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A periodic timer; the first tick is immediate.
#[derive(Debug)]
pub(super) struct Ticker {
    fd: AsyncFd<TimerFd>,
}

#[derive(Debug)]
struct TimerFd(OwnedFd);

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Ticker {
    /// A ticker with period `every` (at least 1 µs). Must be called inside a tokio runtime.
    pub(super) fn new(every: Duration) -> io::Result<Ticker> {
        // SAFETY: plain system call; the result is checked before use.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor owned by nobody else.
        let fd = TimerFd(unsafe { OwnedFd::from_raw_fd(raw) });
        let every = every.max(Duration::from_micros(1));
        let spec = libc::itimerspec {
            it_interval: timespec(every),
            // The smallest non-zero value: the first tick is due at once (zero would disarm).
            it_value: libc::timespec {
                tv_sec: 0,
                tv_nsec: 1,
            },
        };
        // SAFETY: `fd` is a timerfd; `spec` is a valid itimerspec and the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the ticker owns the timerfd for its whole life and never swaps or closes it early.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(Ticker { fd })
    }

    /// Waits for the next tick; returns how many periods passed since the last one (1 unless late).
    pub(super) async fn tick(&mut self) -> io::Result<u64> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            let mut expirations = 0u64;
            // SAFETY: reads 8 bytes into a u64 from a timerfd, as timerfd_create(2) specifies.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    (&raw mut expirations).cast::<libc::c_void>(),
                    size_of::<u64>(),
                )
            };
            // A successful read drains the timer, so readiness is cleared now rather than by one more
            // read that fails with EAGAIN next time: one system call per tick, not two.
            guard.clear_ready();
            if n >= 0 {
                return Ok(expirations);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
    }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "current_thread")]
    async fn ticks_on_the_period_grid() {
        let mut ticker = Ticker::new(Duration::from_millis(20)).expect("timerfd");
        let start = Instant::now();
        assert_eq!(ticker.tick().await.expect("first tick"), 1);
        let mut ticks = 0;
        while ticks < 5 {
            ticks += ticker.tick().await.expect("tick");
        }
        // Five periods of 20 ms after the immediate first tick: not before 100 ms (no early ticks).
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_late_reader_is_told_how_many_ticks_passed() {
        let mut ticker = Ticker::new(Duration::from_millis(10)).expect("timerfd");
        ticker.tick().await.expect("first tick");
        std::thread::sleep(Duration::from_millis(55));
        let passed = ticker.tick().await.expect("tick");
        assert!(passed >= 5, "{passed}");
    }
}
