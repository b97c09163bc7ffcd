//! Storage: the [`Storage`] trait, key validation, and the built-in backends
//! ([`LocalStorage`], [`ObjectStorage`] for S3 or any `object_store`).

mod beneath;
mod http;
mod local;
mod object;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;

pub use local::LocalStorage;
pub use object::ObjectStorage;

use crate::StorageError;

/// A place objects are stored under keys (`a/b/c.pb.gz`).
///
/// Keys are relative, `/`-separated, and validated by every backend with [`validate_key`]. Writers stream:
/// nothing requires the whole object in memory.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Backend kind (`local`, `s3`, `memory`, …), used in messages.
    fn backend(&self) -> &str;

    /// Where `key` is, for humans (a path or `s3://bucket/prefix/key`).
    fn location(&self, key: &str) -> String;

    /// Opens a streaming writer; the object appears (atomically) at [`ObjectWriter::finish`].
    fn open_write<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, StorageError>>;

    /// Opens a streaming reader.
    fn open_read<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectReader>, StorageError>>;

    /// Whether the object exists.
    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>>;

    /// Removes the object (not-found is an error).
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Renames an object (replacing `to`).
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Writes a whole object.
    fn write<'a>(&'a self, key: &'a str, data: Bytes) -> BoxFuture<'a, Result<u64, StorageError>> {
        Box::pin(async move {
            let mut w = self.open_write(key).await?;
            if let Err(e) = w.write(data).await {
                let _ = w.abort().await;
                return Err(e);
            }
            w.finish().await
        })
    }

    /// Reads a whole object.
    fn read<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.read_at_most(key, u64::MAX)
    }

    /// Reads a whole object of at most `max` bytes: a larger one fails with
    /// [`StorageError::TooLarge`] before anything is read when the backend knows the size, else as soon
    /// as the bytes read pass `max` (issue 16: a Lua cap of 64 MiB must not read a 1 GiB object first).
    fn read_at_most<'a>(
        &'a self,
        key: &'a str,
        max: u64,
    ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        Box::pin(async move {
            let mut r = self.open_read(key).await?;
            let too_large = |size| StorageError::TooLarge {
                backend: self.backend().to_string(),
                key: key.to_string(),
                size,
                max,
            };
            if let Some(size) = r.size()
                && size > max
            {
                return Err(too_large(size));
            }
            let mut out = BytesMut::new();
            while let Some(chunk) = r.next_chunk().await? {
                if (out.len() + chunk.len()) as u64 > max {
                    return Err(too_large((out.len() + chunk.len()) as u64));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(out.freeze())
        })
    }
}

/// A streaming object writer.
pub trait ObjectWriter: Send {
    /// Appends data.
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>>;
    /// Completes the object and makes it visible; returns its size.
    fn finish(self: Box<Self>) -> BoxFuture<'static, Result<u64, StorageError>>;
    /// Discards what was written; the object does not appear.
    fn abort(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;
}

/// A streaming object reader.
pub trait ObjectReader: Send {
    /// The object's size when the backend knows it before reading (`None` = unknown).
    fn size(&self) -> Option<u64> {
        None
    }
    /// The next chunk, `None` at the end.
    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, StorageError>>;
}

/// Checks a key: non-empty, relative, `/`-separated segments that are not empty, `.` or `..`, no NUL or
/// backslash, at most 1024 bytes. A valid key cannot escape the local root or the S3 prefix.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let bad = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("absolute");
    }
    if key.contains('\\') || key.chars().any(char::is_control) {
        return bad("contains a backslash or a control character");
    }
    for seg in key.split('/') {
        match seg {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("`.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_are_rejected() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "..",
        ] {
            assert!(validate_key(key).is_err(), "{key:?} accepted");
        }
        for key in [
            "a",
            "ns/pod/container/heap-2026-11-24T00:13:17Z.pb.gz",
            "a..b/c",
            ".hidden",
        ] {
            validate_key(key).unwrap();
        }
    }
}
