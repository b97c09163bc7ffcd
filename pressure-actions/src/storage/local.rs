//! The local-directory backend: atomic writes through a temp file, fsync and rename, all resolved
//! beneath the root's directory fd (see `beneath`: no symlink below the root is followed).

use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::beneath;
use super::{ObjectReader, ObjectWriter, Storage, validate_key};
use crate::StorageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Objects as files under a root directory (`storage.path`).
///
/// A write goes to a hidden temp file next to the target, is fsynced, renamed over the target, and the
/// directory is fsynced: readers see the old object or the whole new one, also after a crash. Temp
/// files left by a killed process are removed when the backend is created. Paths are resolved beneath
/// the root without following symbolic links, so the storage cannot be left through a link planted in
/// it; such a key fails with [`StorageError::InvalidKey`].
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    fd: Arc<OwnedFd>,
}

impl LocalStorage {
    /// A backend rooted at `root`, which is created if missing. Removes stale temp files of writes
    /// that a killed process never finished.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalStorage, StorageError> {
        let root = root.into();
        let io = |op| {
            let path = root.clone();
            move |source| StorageError::Io { op, path, source }
        };
        std::fs::create_dir_all(&root).map_err(io("create root"))?;
        let dir = std::fs::File::open(&root).map_err(io("open root"))?;
        let storage = LocalStorage {
            fd: Arc::new(OwnedFd::from(dir)),
            root,
        };
        let removed = remove_stale_temps(&storage.root);
        if removed > 0 {
            tracing::info!(root = %storage.root.display(), removed, "removed temp files of unfinished writes");
        }
        Ok(storage)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs a blocking file operation on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&OwnedFd) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let fd = Arc::clone(&self.fd);
        tokio::task::spawn_blocking(move || f(&fd))
            .await
            .map_err(|e| StorageError::Io {
                op: "blocking task",
                path: self.root.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

/// `(directory, name)` of a validated key.
fn split(key: &str) -> (&str, &str) {
    key.rsplit_once('/').unwrap_or(("", key))
}

/// The error of a failed operation on `key`: not found, a symlink in the way, or I/O.
fn error(root: &Path, key: &str, op: &'static str, e: std::io::Error) -> StorageError {
    if e.kind() == ErrorKind::NotFound {
        StorageError::NotFound {
            backend: "local".into(),
            key: key.to_string(),
        }
    } else if beneath::is_symlink_refusal(&e) {
        StorageError::InvalidKey {
            key: key.to_string(),
            reason: "resolves through a symbolic link (links below the storage root are not followed)",
        }
    } else {
        StorageError::Io {
            op,
            path: root.join(key),
            source: e,
        }
    }
}

/// Temp-file names: `.{name}.tmp.{pid}.{n}`.
fn temp_name(name: &str) -> String {
    format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The writer pid of a temp-file name, if it is one.
fn temp_pid(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp.")?;
    let (pid, n) = tail.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Removes temp files whose writer is gone: written by this pid (a previous process with the same pid,
/// as PID 1 in a container always is; this one has written nothing yet) or by a pid that no longer
/// exists. Walks without following links; returns how many were removed.
fn remove_stale_temps(root: &Path) -> usize {
    let own = std::process::id();
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(temp_pid) else {
                continue;
            };
            // SAFETY: signal 0 only checks whether the process exists.
            let gone = pid == own
                || (unsafe { libc::kill(pid as libc::pid_t, 0) } < 0
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH));
            if kind.is_file() && gone && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

impl Storage for LocalStorage {
    fn backend(&self) -> &str {
        "local"
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    fn open_write<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            let (root, k) = (self.root.clone(), key.to_string());
            let (dir, file, temp) = self
                .blocking(move |fd| {
                    let (parent, name) = split(&k);
                    let dir = beneath::dir(fd, parent, true)
                        .map_err(|e| error(&root, &k, "create directory", e))?;
                    let temp = temp_name(name);
                    let file = beneath::open(
                        &dir,
                        &temp,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                        0o644,
                    )
                    .map_err(|e| error(&root, &k, "create temp file", e))?;
                    Ok((dir, file, temp))
                })
                .await?;
            Ok(Box::new(LocalWriter {
                file: Some(tokio::fs::File::from_std(std::fs::File::from(file))),
                dir: Arc::new(dir),
                temp,
                name: split(key).1.to_string(),
                target: self.root.join(key),
                written: 0,
            }) as Box<dyn ObjectWriter>)
        })
    }

    fn open_read<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectReader>, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            let (root, k) = (self.root.clone(), key.to_string());
            let (file, size) = self
                .blocking(move |fd| {
                    let file = beneath::open(fd, &k, libc::O_RDONLY, 0)
                        .map(std::fs::File::from)
                        .map_err(|e| error(&root, &k, "open", e))?;
                    let meta = file.metadata().map_err(|e| error(&root, &k, "stat", e))?;
                    if !meta.is_file() {
                        return Err(error(
                            &root,
                            &k,
                            "open",
                            std::io::Error::other("not a regular file"),
                        ));
                    }
                    Ok((file, meta.len()))
                })
                .await?;
            Ok(Box::new(LocalReader {
                file: tokio::fs::File::from_std(file),
                path: self.root.join(key),
                size,
            }) as Box<dyn ObjectReader>)
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            let (root, k) = (self.root.clone(), key.to_string());
            self.blocking(move |fd| {
                let (parent, name) = split(&k);
                let dir = match beneath::dir(fd, parent, false) {
                    Ok(dir) => dir,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                    Err(e) => return Err(error(&root, &k, "stat", e)),
                };
                beneath::is_file(&dir, name)
                    .map(|f| f == Some(true))
                    .map_err(|e| error(&root, &k, "stat", e))
            })
            .await
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            validate_key(key)?;
            let (root, k) = (self.root.clone(), key.to_string());
            self.blocking(move |fd| {
                let (parent, name) = split(&k);
                let dir =
                    beneath::dir(fd, parent, false).map_err(|e| error(&root, &k, "remove", e))?;
                beneath::unlink(&dir, name).map_err(|e| error(&root, &k, "remove", e))
            })
            .await
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            validate_key(from)?;
            validate_key(to)?;
            let (root, f, t) = (self.root.clone(), from.to_string(), to.to_string());
            self.blocking(move |fd| {
                let (src_parent, src_name) = split(&f);
                let src = beneath::dir(fd, src_parent, false)
                    .map_err(|e| error(&root, &f, "rename", e))?;
                if beneath::is_file(&src, src_name).map_err(|e| error(&root, &f, "rename", e))?
                    != Some(true)
                {
                    return Err(StorageError::NotFound {
                        backend: "local".into(),
                        key: f.clone(),
                    });
                }
                let (dst_parent, dst_name) = split(&t);
                let dst = beneath::dir(fd, dst_parent, true)
                    .map_err(|e| error(&root, &t, "create directory", e))?;
                beneath::rename(&src, src_name, &dst, dst_name)
                    .map_err(|e| error(&root, &f, "rename", e))
            })
            .await
        })
    }
}

struct LocalWriter {
    file: Option<tokio::fs::File>,
    /// The target's directory, opened beneath the root; the temp file and the target are names in it.
    dir: Arc<OwnedFd>,
    temp: String,
    name: String,
    /// For messages.
    target: PathBuf,
    written: u64,
}

impl LocalWriter {
    fn temp_path(&self) -> PathBuf {
        self.target.with_file_name(&self.temp)
    }
}

impl ObjectWriter for LocalWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let temp = self.temp_path();
            let file = self.file.as_mut().ok_or_else(|| StorageError::Handle {
                key: self.target.display().to_string(),
                message: "write after close".into(),
            })?;
            file.write_all(&data)
                .await
                .map_err(|source| StorageError::Io {
                    op: "write",
                    path: temp,
                    source,
                })?;
            self.written += data.len() as u64;
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<u64, StorageError>> {
        Box::pin(async move {
            let Some(mut file) = self.file.take() else {
                return Err(StorageError::Handle {
                    key: self.target.display().to_string(),
                    message: "closed twice".into(),
                });
            };
            let io = |op, path: PathBuf| move |source| StorageError::Io { op, path, source };
            let temp_path = self.temp_path();
            let result = async {
                file.flush().await.map_err(io("flush", temp_path.clone()))?;
                file.sync_all()
                    .await
                    .map_err(io("fsync", temp_path.clone()))?;
                drop(file);
                let (dir, temp, name) =
                    (Arc::clone(&self.dir), self.temp.clone(), self.name.clone());
                // Rename, then fsync the directory so the rename itself is durable.
                tokio::task::spawn_blocking(move || {
                    beneath::rename(&dir, &temp, &dir, &name)?;
                    std::fs::File::from(dir.try_clone()?).sync_all()
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r)
                .map_err(io("rename", temp_path.clone()))?;
                Ok(self.written)
            }
            .await;
            if result.is_err() {
                let _ = beneath::unlink(&self.dir, &self.temp);
            }
            result
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            drop(self.file.take());
            match beneath::unlink(&self.dir, &self.temp) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StorageError::Io {
                    op: "remove temp file",
                    path: self.temp_path(),
                    source,
                }),
            }
        })
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // A writer dropped without finish or abort leaves no temp file behind.
        if self.file.take().is_some() {
            let _ = beneath::unlink(&self.dir, &self.temp);
        }
    }
}

struct LocalReader {
    file: tokio::fs::File,
    path: PathBuf,
    size: u64,
}

impl ObjectReader for LocalReader {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, StorageError>> {
        Box::pin(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let n = self
                .file
                .read(&mut buf)
                .await
                .map_err(|source| StorageError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some(Bytes::from(buf)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised() {
        let name = temp_name("heap.pb.gz");
        assert_eq!(temp_pid(&name), Some(std::process::id()));
        assert_eq!(temp_pid("heap.pb.gz"), None);
        assert_eq!(temp_pid(".x.tmp.12.x"), None);
    }
}
