//! The error type of this crate.

use std::io;
use std::path::{Path, PathBuf};

/// Errors from reading, discovering or watching cgroups; each names the path at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// The cgroup was removed (its container exited): `ENOENT` on open, `ENODEV` on read.
    #[error("cgroup {path} vanished")]
    Vanished {
        /// The file or directory that is gone.
        path: PathBuf,
    },
    /// The file exists but may not be read (or written, for OOM notifications).
    #[error("permission denied on {path}")]
    PermissionDenied {
        /// The file at fault.
        path: PathBuf,
        /// The underlying error (`EACCES`, `EPERM` or `EROFS`).
        #[source]
        source: io::Error,
    },
    /// Any other I/O error.
    #[error("I/O error on {path}")]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file did not hold what the kernel writes there.
    #[error("cannot parse {what} in {path}")]
    Parse {
        /// The file at fault.
        path: PathBuf,
        /// What was expected.
        what: &'static str,
    },
    /// No memory cgroup hierarchy was found under the given root.
    #[error(
        "no memory cgroup hierarchy under {root} (looked for cgroup.controllers, memory/, memory.limit_in_bytes)"
    )]
    NoMemoryHierarchy {
        /// The root that was searched.
        root: PathBuf,
    },
}

impl CgroupError {
    /// Classifies an I/O error on `path`: gone, forbidden, or other.
    pub(crate) fn from_io(path: &Path, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOENT | libc::ENODEV) => CgroupError::Vanished {
                path: path.to_owned(),
            },
            Some(libc::EACCES | libc::EPERM | libc::EROFS) => CgroupError::PermissionDenied {
                path: path.to_owned(),
                source,
            },
            _ => CgroupError::Io {
                path: path.to_owned(),
                source,
            },
        }
    }

    /// Whether the cgroup is gone (drop it quietly).
    #[must_use]
    pub fn is_vanished(&self) -> bool {
        matches!(self, CgroupError::Vanished { .. })
    }

    /// Whether this is a permission problem (report it once).
    #[must_use]
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, CgroupError::PermissionDenied { .. })
    }

    /// The path at fault.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            CgroupError::Vanished { path }
            | CgroupError::PermissionDenied { path, .. }
            | CgroupError::Io { path, .. }
            | CgroupError::Parse { path, .. } => path,
            CgroupError::NoMemoryHierarchy { root } => root,
        }
    }
}
