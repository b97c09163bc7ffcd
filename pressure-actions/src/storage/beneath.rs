//! Opening paths under a directory without ever leaving it: no `..` (keys have none) and no symbolic
//! link is followed below the root, so a link planted in the storage root (`link -> /elsewhere`) cannot
//! make a write, read, rename or remove act outside it (issue 16).
//!
//! Linux ≥ 5.6 resolves a whole path in one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`; older
//! kernels (and seccomp profiles that refuse `openat2` with `ENOSYS`) get the same guarantee from a walk
//! that opens one component at a time with `O_NOFOLLOW`, each relative to the previous directory's fd.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Cleared once `openat2` answered `ENOSYS`; the walk is used from then on.
static OPENAT2: AtomicBool = AtomicBool::new(true);

fn cstr(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Opens `rel` (a validated key or key prefix: `/`-separated names, no `.`/`..`) under `dir`.
pub(crate) fn open(dir: &OwnedFd, rel: &str, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_CLOEXEC;
    if OPENAT2.load(Ordering::Relaxed) {
        let path = cstr(rel)?;
        // SAFETY: open_how is plain integers (and non-exhaustive: built from zero, then set).
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        if flags & libc::O_CREAT != 0 {
            how.mode = u64::from(mode);
        }
        how.resolve =
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
        // SAFETY: a valid dirfd, a NUL-terminated path and an `open_how` of the size passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                size_of::<libc::open_how>(),
            )
        };
        if rc >= 0 {
            // SAFETY: the kernel returned a new fd we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(rc as libc::c_int) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        OPENAT2.store(false, Ordering::Relaxed);
    }
    walk(dir, rel, flags, mode)
}

/// The fallback: one `openat(O_NOFOLLOW)` per component.
fn walk(dir: &OwnedFd, rel: &str, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let mut parts = rel.split('/').peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(name) = parts.next() {
        let at = current.as_ref().unwrap_or(dir).as_raw_fd();
        let last = parts.peek().is_none();
        let f = if last {
            flags | libc::O_NOFOLLOW
        } else {
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC
        };
        let name = cstr(name)?;
        // SAFETY: a valid dirfd and a NUL-terminated name.
        let fd = match check(unsafe { libc::openat(at, name.as_ptr(), f, mode as libc::c_uint) }) {
            Ok(fd) => fd,
            // `O_DIRECTORY | O_NOFOLLOW` on a link is ENOTDIR; report it as the link it is (ELOOP),
            // as openat2 does.
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) && is_link(at, &name) => {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            Err(e) => return Err(e),
        };
        // SAFETY: a new fd we own.
        current = Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    current.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Whether `name` in `at` is a symbolic link.
fn is_link(at: libc::c_int, name: &CString) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid dirfd, a NUL-terminated name and room for a stat.
    let rc = unsafe {
        libc::fstatat(
            at,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    // SAFETY: fstatat succeeded and filled it.
    rc == 0 && unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Opens the directory `rel` under `dir` (`""` = a duplicate of `dir`), creating missing components
/// when `create` is set; every component is opened beneath the previous one.
pub(crate) fn dir(dir: &OwnedFd, rel: &str, create: bool) -> io::Result<OwnedFd> {
    let mut current = dir.try_clone()?;
    if rel.is_empty() {
        return Ok(current);
    }
    for name in rel.split('/') {
        if create {
            let c = cstr(name)?;
            // SAFETY: a valid dirfd and a NUL-terminated name. mkdirat does not follow a final
            // symlink; an existing one is EEXIST and then refused by the open below.
            let rc = unsafe { libc::mkdirat(current.as_raw_fd(), c.as_ptr(), 0o755) };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EEXIST) {
                    return Err(err);
                }
            }
        }
        current = open(&current, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    }
    Ok(current)
}

/// `unlinkat(dir, name, 0)`: removes the entry itself (a link is removed, never its target).
pub(crate) fn unlink(dir: &OwnedFd, name: &str) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: a valid dirfd and a NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
}

/// `renameat(from_dir, from, to_dir, to)`: both names are single components of opened directories.
pub(crate) fn rename(from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> io::Result<()> {
    let (a, b) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid dirfds and NUL-terminated names.
    check(unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            a.as_ptr(),
            to_dir.as_raw_fd(),
            b.as_ptr(),
        )
    })
    .map(drop)
}

/// Whether `name` in `dir` is a regular file (not following a symlink); `None` when it does not exist.
pub(crate) fn is_file(dir: &OwnedFd, name: &str) -> io::Result<Option<bool>> {
    let c = cstr(name)?;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid dirfd, a NUL-terminated name and room for a stat.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::NotFound {
            return Ok(None);
        }
        return Err(err);
    }
    // SAFETY: fstatat succeeded and filled it.
    let st = unsafe { st.assume_init() };
    Ok(Some(st.st_mode & libc::S_IFMT == libc::S_IFREG))
}

/// Whether an error means "a symlink was in the way" (`RESOLVE_NO_SYMLINKS`/`O_NOFOLLOW` give `ELOOP`,
/// `O_DIRECTORY|O_NOFOLLOW` on a link `ENOTDIR`, `RESOLVE_BENEATH` `EXDEV`).
pub(crate) fn is_symlink_refusal(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ELOOP | libc::EXDEV))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(path: &std::path::Path) -> OwnedFd {
        let c = cstr(path.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        assert!(fd >= 0);
        // SAFETY: a new fd we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Both resolutions refuse a link at any position and open plain paths.
    #[test]
    fn openat2_and_the_walk_refuse_symlinks_alike() {
        let inside = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), inside.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), inside.path().join("file"))
            .unwrap();
        std::fs::create_dir(inside.path().join("d")).unwrap();
        std::fs::write(inside.path().join("d/ok"), "y").unwrap();
        let r = root(inside.path());
        for resolve in [open, walk] {
            for rel in ["link/secret", "file"] {
                let e = resolve(&r, rel, libc::O_RDONLY, 0).unwrap_err();
                assert!(is_symlink_refusal(&e), "{rel}: {e}");
            }
            resolve(&r, "d/ok", libc::O_RDONLY, 0).unwrap();
        }
        let e = dir(&r, "link/x", true).unwrap_err();
        assert!(
            is_symlink_refusal(&e) || e.raw_os_error() == Some(libc::ENOTDIR),
            "{e}"
        );
        assert!(!outside.path().join("x").exists());
    }
}
