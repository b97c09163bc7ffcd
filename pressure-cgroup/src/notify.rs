//! Wake-ups on OOM: an eventfd on `memory.oom_control` (v1) or inotify on `memory.events` (v2).
//!
//! Both end up in one epoll descriptor, so a caller waits on a single fd (tokio's `AsyncFd`, or
//! `poll`) and then calls [`OomNotifier::drain`] to learn which cgroups to sample right away.
//! v1: writing `"<eventfd> <oom_control fd>"` to `cgroup.event_control` makes the kernel signal the
//! eventfd when the memcg goes under OOM (just before the kill) and when the cgroup is removed
//! (Documentation/admin-guide/cgroup-v1/memory.rst, "OOM Control"). All v1 cgroups share one eventfd
//! (the kernel keeps no reference to the `oom_control` descriptor after the write, so that is closed
//! at once): watching N cgroups costs no descriptor per cgroup. When it fires, `drain` reads each
//! watched `memory.oom_control` and `memory.failcnt` and reports the cgroups under OOM, whose
//! `oom_kill` moved or whose limit was hit since the last look (the kernel clears `under_oom` before
//! it kills, and every OOM follows failed charges), with their descendants (an OOM notifies the
//! whole subtree) — some 15 µs per cgroup, once per OOM, against an eventfd and its kernel memory
//! per cgroup all the time. v2: the kernel calls
//! `cgroup_file_notify()` on `memory.events` whenever a counter changes, which inotify reports as
//! `IN_MODIFY` (Documentation/admin-guide/cgroup-v2.rst, "memory.events").

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::CgroupError;
use crate::layout::CgroupVersion;
use crate::reader::{CgroupReader, ReadBuffer, keyed_u64};

/// The epoll token of the inotify descriptor; caller keys must differ from it.
const INOTIFY_TOKEN: u64 = u64::MAX;
/// The epoll token of the v1 eventfd shared by all v1 registrations.
const EVENTFD_TOKEN: u64 = u64::MAX - 1;

/// A v1 cgroup registered on the shared eventfd.
#[derive(Debug)]
struct V1Watch {
    dir: PathBuf,
    /// `oom_kill` and `failcnt` at the last look, to tell which cgroup the shared eventfd was
    /// signalled for.
    oom_kill: u64,
    failcnt: u64,
}

/// Watches many cgroups for OOM and reports which ones to sample now.
#[derive(Debug)]
pub struct OomNotifier {
    epoll: OwnedFd,
    inotify: Option<OwnedFd>,
    /// v1: the eventfd every registration signals (created with the first).
    eventfd: Option<OwnedFd>,
    /// v1: key → the cgroup's `memory.oom_control`.
    v1: HashMap<u64, V1Watch>,
    /// Reads of `memory.oom_control` when the shared eventfd fires.
    buf: ReadBuffer,
    /// v2: key → inotify watch descriptor, and back.
    watches: HashMap<u64, i32>,
    keys_by_wd: HashMap<i32, u64>,
    inotify_buf: Vec<u8>,
}

fn os_error(call: &str) -> CgroupError {
    CgroupError::Io {
        path: call.into(),
        source: io::Error::last_os_error(),
    }
}

fn cvt(ret: libc::c_int, call: &str) -> Result<libc::c_int, CgroupError> {
    if ret < 0 {
        Err(os_error(call))
    } else {
        Ok(ret)
    }
}

impl OomNotifier {
    /// Creates the epoll descriptor.
    ///
    /// # Errors
    /// [`CgroupError::Io`] naming `epoll_create1` when the kernel refuses.
    pub fn new() -> Result<Self, CgroupError> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = cvt(
            unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
            "epoll_create1",
        )?;
        Ok(OomNotifier {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            inotify: None,
            eventfd: None,
            v1: HashMap::new(),
            buf: ReadBuffer::new(),
            watches: HashMap::new(),
            keys_by_wd: HashMap::new(),
            inotify_buf: vec![0; 4096],
        })
    }

    fn epoll_add(&self, fd: RawFd, token: u64) -> Result<(), CgroupError> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both fds are open; `event` outlives the call.
        cvt(
            unsafe {
                libc::epoll_ctl(
                    self.epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    fd,
                    &raw mut event,
                )
            },
            "epoll_ctl",
        )?;
        Ok(())
    }

    /// Starts watching the cgroup of `reader` under `key` (any value but `u64::MAX` and
    /// `u64::MAX - 1`).
    ///
    /// # Errors
    /// v1: [`CgroupError::PermissionDenied`] when `cgroup.event_control` may not be written (a
    /// read-only mount); the caller then relies on polling. [`CgroupError::Vanished`] when the cgroup
    /// is gone. [`CgroupError::Io`] for other failures.
    pub fn watch(&mut self, key: u64, reader: &CgroupReader) -> Result<(), CgroupError> {
        debug_assert!(
            key < EVENTFD_TOKEN,
            "keys u64::MAX and u64::MAX - 1 are reserved"
        );
        self.unwatch(key);
        let events_path = reader.events_path();
        match reader.version() {
            CgroupVersion::V1 => {
                let efd = self.shared_eventfd()?;
                let oom_control =
                    File::open(&events_path).map_err(|e| CgroupError::from_io(&events_path, e))?;
                let control = reader.dir().join("cgroup.event_control");
                let line = format!("{efd} {}", oom_control.as_raw_fd());
                OpenOptions::new()
                    .write(true)
                    .open(&control)
                    .and_then(|mut f| f.write_all(line.as_bytes()))
                    .map_err(|e| CgroupError::from_io(&control, e))?;
                drop(oom_control);
                let dir = reader.dir().to_owned();
                let (_, oom_kill, failcnt) = read_v1_oom(&mut self.buf, &dir)?;
                self.v1.insert(
                    key,
                    V1Watch {
                        dir,
                        oom_kill,
                        failcnt,
                    },
                );
            }
            CgroupVersion::V2 => {
                let inotify = self.inotify_fd()?;
                let path = CString::new(events_path.as_os_str().as_bytes()).map_err(|_| {
                    CgroupError::Parse {
                        path: events_path.clone(),
                        what: "a path without NUL",
                    }
                })?;
                // SAFETY: `path` is NUL-terminated and lives across the call.
                let wd = unsafe {
                    libc::inotify_add_watch(
                        inotify,
                        path.as_ptr(),
                        libc::IN_MODIFY | libc::IN_DELETE_SELF,
                    )
                };
                if wd < 0 {
                    return Err(CgroupError::from_io(
                        &events_path,
                        io::Error::last_os_error(),
                    ));
                }
                self.watches.insert(key, wd);
                self.keys_by_wd.insert(wd, key);
            }
        }
        Ok(())
    }

    fn shared_eventfd(&mut self) -> Result<RawFd, CgroupError> {
        if let Some(fd) = &self.eventfd {
            return Ok(fd.as_raw_fd());
        }
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = cvt(
            unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) },
            "eventfd",
        )?;
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        self.epoll_add(fd.as_raw_fd(), EVENTFD_TOKEN)?;
        let raw = fd.as_raw_fd();
        self.eventfd = Some(fd);
        Ok(raw)
    }

    fn inotify_fd(&mut self) -> Result<RawFd, CgroupError> {
        if let Some(fd) = &self.inotify {
            return Ok(fd.as_raw_fd());
        }
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = cvt(
            unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) },
            "inotify_init1",
        )?;
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        self.epoll_add(fd.as_raw_fd(), INOTIFY_TOKEN)?;
        let raw = fd.as_raw_fd();
        self.inotify = Some(fd);
        Ok(raw)
    }

    /// Stops watching `key`; unknown keys are ignored.
    ///
    /// v1: the kernel keeps the registration until the cgroup is removed (it can only drop the
    /// registrations of an eventfd all at once, when it is closed), so the shared eventfd may still
    /// fire for this cgroup; `drain` no longer reports it.
    pub fn unwatch(&mut self, key: u64) {
        self.v1.remove(&key);
        if let Some(wd) = self.watches.remove(&key) {
            self.keys_by_wd.remove(&wd);
            if let Some(fd) = &self.inotify {
                // SAFETY: plain syscall; EINVAL for an already removed watch is fine.
                unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
            }
        }
    }

    /// How many cgroups are watched.
    #[must_use]
    pub fn len(&self) -> usize {
        self.v1.len() + self.watches.len()
    }

    /// Whether no cgroup is watched.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the keys of cgroups that signalled since the last call to `ready` (without blocking).
    ///
    /// # Errors
    /// [`CgroupError::Io`] naming the failing call.
    pub fn drain(&mut self, ready: &mut Vec<u64>) -> Result<(), CgroupError> {
        const BATCH: usize = 64;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; BATCH];
        loop {
            // SAFETY: `events` has room for BATCH entries; timeout 0 never blocks.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as libc::c_int,
                    0,
                )
            };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(os_error("epoll_wait"));
            }
            let n = n as usize;
            for event in &events[..n] {
                let token = event.u64;
                if token == INOTIFY_TOKEN {
                    self.drain_inotify(ready)?;
                } else if token == EVENTFD_TOKEN
                    && let Some(efd) = &self.eventfd
                {
                    let mut counter = [0u8; 8];
                    // SAFETY: reads 8 bytes into `counter`; EAGAIN is harmless.
                    unsafe { libc::read(efd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
                    self.drain_v1(ready);
                }
            }
            if n < BATCH {
                return Ok(());
            }
        }
    }

    /// The shared eventfd fired: reports the v1 cgroups under OOM, whose `oom_kill` moved or whose
    /// `failcnt` moved, and their descendants. A cgroup that cannot be read (removed: that signals
    /// too) is left to the caller's rescan.
    fn drain_v1(&mut self, ready: &mut Vec<u64>) {
        let mut hit = Vec::new();
        for (&key, watch) in &mut self.v1 {
            if let Ok((under_oom, oom_kill, failcnt)) = read_v1_oom(&mut self.buf, &watch.dir)
                && (under_oom || oom_kill != watch.oom_kill || failcnt != watch.failcnt)
            {
                watch.oom_kill = oom_kill;
                watch.failcnt = failcnt;
                hit.push(key);
            }
        }
        if hit.is_empty() {
            return;
        }
        let dirs: Vec<&Path> = hit.iter().map(|k| self.v1[k].dir.as_path()).collect();
        for (&key, watch) in &self.v1 {
            if hit.contains(&key)
                || dirs
                    .iter()
                    .any(|d| watch.dir.starts_with(d) && watch.dir != *d)
            {
                ready.push(key);
            }
        }
    }

    fn drain_inotify(&mut self, ready: &mut Vec<u64>) -> Result<(), CgroupError> {
        let Some(fd) = &self.inotify else {
            return Ok(());
        };
        let header = size_of::<libc::inotify_event>();
        loop {
            // SAFETY: reads into our buffer of its length.
            let n = unsafe {
                libc::read(
                    fd.as_raw_fd(),
                    self.inotify_buf.as_mut_ptr().cast(),
                    self.inotify_buf.len(),
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.kind() {
                    io::ErrorKind::WouldBlock => Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(CgroupError::Io {
                        path: "inotify read".into(),
                        source: err,
                    }),
                };
            }
            let n = n as usize;
            let mut offset = 0;
            while offset + header <= n {
                // SAFETY: the kernel wrote a whole inotify_event at `offset`; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(self.inotify_buf[offset..].as_ptr().cast()) };
                offset += header + event.len as usize;
                if let Some(&key) = self.keys_by_wd.get(&event.wd) {
                    ready.push(key);
                    if event.mask & libc::IN_IGNORED != 0 {
                        // The file is gone (cgroup removed): the watch no longer exists.
                        self.keys_by_wd.remove(&event.wd);
                        self.watches.remove(&key);
                    }
                }
            }
        }
    }
}

/// `under_oom` and `oom_kill` of a v1 cgroup's `memory.oom_control`, and its `memory.failcnt`.
fn read_v1_oom(buf: &mut ReadBuffer, dir: &Path) -> Result<(bool, u64, u64), CgroupError> {
    let text = buf.read_path(&dir.join("memory.oom_control"))?;
    let under_oom = keyed_u64(text, b"under_oom").is_some_and(|v| v != 0);
    let oom_kill = keyed_u64(text, b"oom_kill").unwrap_or(0);
    let failcnt = buf.read_path(&dir.join("memory.failcnt"))?;
    let failcnt = crate::reader::parse_u64(failcnt.trim_ascii()).unwrap_or(0);
    Ok((under_oom, oom_kill, failcnt))
}

impl AsFd for OomNotifier {
    /// The epoll descriptor: readable when [`OomNotifier::drain`] has something to report.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

impl AsRawFd for OomNotifier {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn poll_readable(fd: RawFd, timeout_ms: i32) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&raw mut pfd, 1, timeout_ms) == 1 }
    }

    #[test]
    fn v2_inotify_reports_memory_events_changes() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/v2_linux_6.1/running");
        let dir = tempfile::tempdir().expect("tempdir");
        for entry in fs::read_dir(&src).expect("testdata") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
        let reader = CgroupReader::open(dir.path(), CgroupVersion::V2).expect("open");
        let mut notifier = OomNotifier::new().expect("notifier");
        notifier.watch(7, &reader).expect("watch");
        assert_eq!(notifier.len(), 1);
        let mut ready = Vec::new();
        notifier.drain(&mut ready).expect("drain");
        assert!(ready.is_empty());

        let after = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/v2_linux_6.1/after_kill/memory.events");
        fs::write(
            dir.path().join("memory.events"),
            fs::read(after).expect("read"),
        )
        .expect("write");
        assert!(
            poll_readable(notifier.as_raw_fd(), 2000),
            "epoll fd readable"
        );
        notifier.drain(&mut ready).expect("drain");
        assert!(ready.contains(&7), "{ready:?}");

        notifier.unwatch(7);
        assert!(notifier.is_empty());
        ready.clear();
        fs::write(dir.path().join("memory.events"), "oom_kill 2\n").expect("write");
        notifier.drain(&mut ready).expect("drain");
        assert!(ready.is_empty(), "{ready:?}");
    }
}
