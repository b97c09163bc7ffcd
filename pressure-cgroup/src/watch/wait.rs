//! Where the sampling thread sleeps: one `epoll_wait` with a timeout until the next tick, woken early by
//! an OOM notification or a stop request.
//!
//! The sampling loop runs on a plain thread rather than in the async runtime: a tick is then one
//! `epoll_wait` that times out, the reads, and nothing else — no runtime to enter, no timer wheel to
//! turn, no futures to build and drop — which is what a sidecar polling every 100 ms pays 300 times in
//! 30 s. Ticks keep a fixed grid on the monotonic clock (see `Watcher::run`). No timerfd: the
//! timeout of the one `epoll_wait` is the time left to the next grid point.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

const STOP: u64 = 0;
const NOTIFY: u64 = 1;

/// An epoll set of the stop eventfd and, when there is one, the OOM notifier.
#[derive(Debug)]
pub(super) struct Waiter {
    epoll: OwnedFd,
    stop: Arc<OwnedFd>,
    notify: Option<RawFd>,
}

/// Stops a [`Watcher`](super::Watcher): cloneable, usable from any thread and from async code
/// (`stop` is one non-blocking `write` to an eventfd). A stop is for good; it also holds when given
/// before [`Watcher::run`](super::Watcher::run) starts.
#[derive(Debug, Clone)]
pub struct StopToken(Arc<OwnedFd>);

/// What ended a [`Waiter::wait`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Woken {
    /// A stop was requested.
    pub(super) stop: bool,
    /// The OOM notifier has something to drain.
    pub(super) notify: bool,
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Waiter {
    pub(super) fn new() -> io::Result<Waiter> {
        // SAFETY: plain system calls; results are checked and the new descriptors owned at once.
        let epoll =
            unsafe { OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?) };
        // SAFETY: as above.
        let stop = unsafe {
            OwnedFd::from_raw_fd(check(libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK,
            ))?)
        };
        let waiter = Waiter {
            epoll,
            stop: Arc::new(stop),
            notify: None,
        };
        waiter.add(waiter.stop.as_raw_fd(), STOP)?;
        Ok(waiter)
    }

    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `event` is a valid epoll_event.
        check(unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
        })?;
        Ok(())
    }

    /// Also wakes when `fd` (the OOM notifier's epoll descriptor, level-triggered) is readable.
    pub(super) fn watch_notifier(&mut self, fd: RawFd) -> io::Result<()> {
        // A second `Watcher::run` registers the same descriptor again: already done.
        if self.notify == Some(fd) {
            return Ok(());
        }
        self.add(fd, NOTIFY)?;
        self.notify = Some(fd);
        Ok(())
    }

    /// Stops waking for the notifier (it failed and was dropped).
    pub(super) fn forget_notifier(&mut self) {
        if let Some(fd) = self.notify.take() {
            // SAFETY: removing a registration; a descriptor already closed only makes this fail.
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                );
            }
        }
    }

    pub(super) fn stop_token(&self) -> StopToken {
        StopToken(self.stop.clone())
    }

    /// Sleeps until `timeout` has passed (rounded up to the millisecond) or something is ready.
    pub(super) fn wait(&self, timeout: Duration) -> io::Result<Woken> {
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 2];
        // SAFETY: `events` has room for the 2 events asked for.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 2, ms) };
        let mut woken = Woken::default();
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(woken)
            } else {
                Err(e)
            };
        }
        for event in &events[..n as usize] {
            match event.u64 {
                STOP => woken.stop = true,
                _ => woken.notify = true,
            }
        }
        Ok(woken)
    }
}

impl StopToken {
    /// Asks the watcher to stop: it returns from `run` at its next wake-up, which this causes at once.
    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a u64 to an eventfd, as eventfd(2) specifies. The counter is
        // never read, so the descriptor stays readable and every later wait sees the stop.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&raw const one).cast::<libc::c_void>(),
                size_of::<u64>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn times_out_then_stops_for_good() {
        let waiter = Waiter::new().expect("waiter");
        let start = Instant::now();
        assert_eq!(
            waiter.wait(Duration::from_millis(20)).expect("wait"),
            Woken::default()
        );
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "woke early: {:?}",
            start.elapsed()
        );
        let token = waiter.stop_token();
        std::thread::spawn(move || token.stop())
            .join()
            .expect("stop");
        for _ in 0..2 {
            assert!(waiter.wait(Duration::from_secs(10)).expect("wait").stop);
        }
    }

    #[test]
    fn wakes_for_a_readable_notifier() {
        let mut waiter = Waiter::new().expect("waiter");
        // An eventfd stands in for the notifier's epoll descriptor.
        // SAFETY: plain system call, checked, owned at once.
        let fd = unsafe {
            OwnedFd::from_raw_fd(check(libc::eventfd(1, libc::EFD_CLOEXEC)).expect("eventfd"))
        };
        waiter.watch_notifier(fd.as_raw_fd()).expect("watch");
        let woken = waiter.wait(Duration::from_secs(10)).expect("wait");
        assert!(woken.notify && !woken.stop, "{woken:?}");
        waiter.forget_notifier();
        assert_eq!(
            waiter.wait(Duration::from_millis(1)).expect("wait"),
            Woken::default()
        );
    }
}
