//! The local-directory backend: atomic writes through a temp file, fsync and rename.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ObjectReader, ObjectWriter, Storage, validate_key};
use crate::StorageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Objects as files under a root directory (`storage.path`).
///
/// A write goes to a hidden temp file next to the target, is fsynced, renamed over the target, and the
/// directory is fsynced: readers see the old object or the whole new one, also after a crash.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// A backend rooted at `root`, which is created if missing.
    pub fn new(root: impl Into<PathBuf>) -> Result<LocalStorage, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StorageError::Io {
            op: "create root",
            path: root.clone(),
            source,
        })?;
        Ok(LocalStorage { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn not_found_or_io(
        &self,
        key: &str,
        op: &'static str,
        path: PathBuf,
        e: std::io::Error,
    ) -> StorageError {
        if e.kind() == ErrorKind::NotFound {
            StorageError::NotFound {
                backend: "local".into(),
                key: key.to_string(),
            }
        } else {
            StorageError::Io {
                op,
                path,
                source: e,
            }
        }
    }
}

async fn create_parent(path: &Path) -> Result<(), StorageError> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| StorageError::Io {
                op: "create directory",
                path: dir.to_path_buf(),
                source,
            })?;
    }
    Ok(())
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
            let target = self.path(key)?;
            create_parent(&target).await?;
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let temp = target.with_file_name(format!(
                ".{name}.tmp.{}.{}",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let file = tokio::fs::File::create(&temp)
                .await
                .map_err(|source| StorageError::Io {
                    op: "create temp file",
                    path: temp.clone(),
                    source,
                })?;
            Ok(Box::new(LocalWriter {
                file: Some(file),
                temp,
                target,
                written: 0,
            }) as Box<dyn ObjectWriter>)
        })
    }

    fn open_read<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectReader>, StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| self.not_found_or_io(key, "open", path.clone(), e))?;
            Ok(Box::new(LocalReader { file, path }) as Box<dyn ObjectReader>)
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match tokio::fs::metadata(&path).await {
                Ok(m) => Ok(m.is_file()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(source) => Err(StorageError::Io {
                    op: "stat",
                    path,
                    source,
                }),
            }
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            tokio::fs::remove_file(&path)
                .await
                .map_err(|e| self.not_found_or_io(key, "remove", path.clone(), e))
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let src = self.path(from)?;
            let dst = self.path(to)?;
            if !tokio::fs::try_exists(&src).await.unwrap_or(false) {
                return Err(StorageError::NotFound {
                    backend: "local".into(),
                    key: from.to_string(),
                });
            }
            create_parent(&dst).await?;
            tokio::fs::rename(&src, &dst)
                .await
                .map_err(|source| StorageError::Io {
                    op: "rename",
                    path: src,
                    source,
                })
        })
    }
}

struct LocalWriter {
    file: Option<tokio::fs::File>,
    temp: PathBuf,
    target: PathBuf,
    written: u64,
}

impl ObjectWriter for LocalWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            let file = self.file.as_mut().ok_or_else(|| StorageError::Handle {
                key: self.target.display().to_string(),
                message: "write after close".into(),
            })?;
            file.write_all(&data)
                .await
                .map_err(|source| StorageError::Io {
                    op: "write",
                    path: self.temp.clone(),
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
            let io = |op, path: &Path| {
                let path = path.to_path_buf();
                move |source| StorageError::Io { op, path, source }
            };
            let result = async {
                file.flush().await.map_err(io("flush", &self.temp))?;
                file.sync_all().await.map_err(io("fsync", &self.temp))?;
                drop(file);
                tokio::fs::rename(&self.temp, &self.target)
                    .await
                    .map_err(io("rename", &self.temp))?;
                if let Some(dir) = self.target.parent() {
                    let dir = dir.to_path_buf();
                    // fsync the directory so the rename itself is durable.
                    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                        .await
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .and_then(|r| r)
                        .map_err(io("fsync directory", &self.target))?;
                }
                Ok(self.written)
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&self.temp).await;
            }
            result
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            drop(self.file.take());
            match tokio::fs::remove_file(&self.temp).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StorageError::Io {
                    op: "remove temp file",
                    path: self.temp.clone(),
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
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

struct LocalReader {
    file: tokio::fs::File,
    path: PathBuf,
}

impl ObjectReader for LocalReader {
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
