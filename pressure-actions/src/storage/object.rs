//! The `object_store` backend: S3 (and S3-compatible servers), or any other [`ObjectStore`] such as the
//! in-memory one tests use.

use std::sync::Arc;
use std::time::Duration;

use crate::config::S3Config;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};

use super::{ObjectReader, ObjectWriter, Storage, validate_key};
use crate::StorageError;

/// Objects up to this size are sent with one PUT; larger ones stream as a multipart upload of parts this
/// big (S3 needs parts of at least 5 MiB).
pub(crate) const PART_SIZE: usize = 8 << 20;
/// Parts uploaded concurrently; with [`PART_SIZE`] this bounds a writer's memory to about 24 MiB.
const PART_CONCURRENCY: usize = 2;

/// Objects in an [`ObjectStore`] under an optional key prefix.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    backend: String,
    prefix: String,
    location_base: String,
}

impl ObjectStorage {
    /// Wraps any object store. `prefix` is prepended verbatim to every key (`oom-dumps/` gives
    /// `oom-dumps/<key>`); `location_base` is for messages (e.g. `s3://bucket`).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        backend: impl Into<String>,
        prefix: impl Into<String>,
        location_base: impl Into<String>,
    ) -> Result<ObjectStorage, StorageError> {
        let prefix = prefix.into();
        if !prefix.is_empty() {
            // The prefix plus any valid key must stay a valid key: check it with a probe key.
            validate_key(&format!("{prefix}x")).map_err(|e| StorageError::Config {
                key: "storage.s3.prefix".into(),
                message: e.to_string(),
            })?;
        }
        Ok(ObjectStorage {
            store,
            backend: backend.into(),
            prefix,
            location_base: location_base.into(),
        })
    }

    /// An S3 backend from `storage.s3`, credentials from the environment as `object_store` reads them
    /// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, IRSA web identity, EKS pod identity, IMDSv2), with
    /// retries (exponential backoff from 100 ms to 15 s, 5 retries), over this crate's HTTP/1.1 reqwest
    /// client.
    pub fn s3(config: &S3Config) -> Result<ObjectStorage, StorageError> {
        ObjectStorage::s3_from_builder(config, AmazonS3Builder::from_env())
    }

    /// Like [`ObjectStorage::s3`] but starting from `builder` (e.g. with explicit credentials) instead
    /// of the environment; `storage.s3` values, the retry policy and the HTTP transport are applied on
    /// top.
    pub fn s3_from_builder(
        config: &S3Config,
        builder: AmazonS3Builder,
    ) -> Result<ObjectStorage, StorageError> {
        let bucket = config
            .bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| StorageError::Config {
                key: "storage.s3.bucket".into(),
                message: "is required".into(),
            })?;
        let mut builder = builder
            .with_bucket_name(&bucket)
            .with_http_connector(super::http::ReqwestConnector)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: Duration::from_secs(120),
            });
        if let Some(region) = config.region.as_deref().filter(|r| !r.is_empty()) {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        builder = builder.with_virtual_hosted_style_request(!config.path_style);
        let store = builder.build().map_err(|e| StorageError::Config {
            key: "storage.s3".into(),
            message: e.to_string(),
        })?;
        let prefix = config.prefix.clone().unwrap_or_default();
        ObjectStorage::new(Arc::new(store), "s3", prefix, format!("s3://{bucket}"))
    }

    fn path(&self, key: &str) -> Result<Path, StorageError> {
        validate_key(key)?;
        Path::parse(format!("{}{key}", self.prefix)).map_err(|_| StorageError::InvalidKey {
            key: key.to_string(),
            reason: "not a valid object path",
        })
    }

    fn err(&self, op: &'static str, key: &str, source: object_store::Error) -> StorageError {
        match source {
            object_store::Error::NotFound { .. } => StorageError::NotFound {
                backend: self.backend.clone(),
                key: key.to_string(),
            },
            source => StorageError::ObjectStore {
                backend: self.backend.clone(),
                op,
                key: key.to_string(),
                source: Box::new(source),
            },
        }
    }
}

impl Storage for ObjectStorage {
    fn backend(&self) -> &str {
        &self.backend
    }

    fn location(&self, key: &str) -> String {
        format!("{}/{}{key}", self.location_base, self.prefix)
    }

    fn open_write<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            Ok(Box::new(ObjectStoreWriter {
                storage: self.clone(),
                key: key.to_string(),
                path,
                pending: Vec::new(),
                pending_len: 0,
                multipart: None,
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
            let result = self
                .store
                .get(&path)
                .await
                .map_err(|e| self.err("get", key, e))?;
            let size = result.meta.size;
            Ok(Box::new(ObjectStoreReader {
                storage: self.clone(),
                key: key.to_string(),
                size,
                stream: result.into_stream(),
            }) as Box<dyn ObjectReader>)
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            match self.store.head(&path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.err("head", key, e)),
            }
        })
    }

    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            // S3 DELETE succeeds for missing keys; HEAD first so a missing key is reported.
            self.store
                .head(&path)
                .await
                .map_err(|e| self.err("head", key, e))?;
            self.store
                .delete(&path)
                .await
                .map_err(|e| self.err("delete", key, e))
        })
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let src = self.path(from)?;
            let dst = self.path(to)?;
            self.store
                .rename(&src, &dst)
                .await
                .map_err(|e| self.err("rename", from, e))
        })
    }
}

struct ObjectStoreWriter {
    storage: ObjectStorage,
    key: String,
    path: Path,
    pending: Vec<Bytes>,
    pending_len: usize,
    multipart: Option<WriteMultipart>,
    written: u64,
}

impl ObjectWriter for ObjectStoreWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            self.written += data.len() as u64;
            if let Some(mp) = self.multipart.as_mut() {
                mp.wait_for_capacity(PART_CONCURRENCY)
                    .await
                    .map_err(|e| self.storage.err("multipart upload", &self.key, e))?;
                mp.put(data);
                return Ok(());
            }
            self.pending_len += data.len();
            self.pending.push(data);
            if self.pending_len > PART_SIZE {
                // Too big for one PUT: switch to a streaming multipart upload.
                let upload = self
                    .storage
                    .store
                    .put_multipart(&self.path)
                    .await
                    .map_err(|e| self.storage.err("start multipart upload", &self.key, e))?;
                let mut mp = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                for chunk in self.pending.drain(..) {
                    mp.put(chunk);
                }
                self.pending_len = 0;
                self.multipart = Some(mp);
            }
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> BoxFuture<'static, Result<u64, StorageError>> {
        Box::pin(async move {
            if let Some(mp) = self.multipart.take() {
                mp.finish()
                    .await
                    .map_err(|e| self.storage.err("multipart upload", &self.key, e))?;
            } else {
                let payload: PutPayload = self.pending.drain(..).collect();
                self.storage
                    .store
                    .put(&self.path, payload)
                    .await
                    .map_err(|e| self.storage.err("put", &self.key, e))?;
            }
            Ok(self.written)
        })
    }

    fn abort(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            if let Some(mp) = self.multipart.take() {
                mp.abort()
                    .await
                    .map_err(|e| self.storage.err("abort multipart upload", &self.key, e))?;
            }
            Ok(())
        })
    }
}

struct ObjectStoreReader {
    storage: ObjectStorage,
    key: String,
    /// From the GET response's metadata (`Content-Length`).
    size: u64,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
}

impl ObjectReader for ObjectStoreReader {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn next_chunk(&mut self) -> BoxFuture<'_, Result<Option<Bytes>, StorageError>> {
        Box::pin(async move {
            match self.stream.next().await {
                None => Ok(None),
                Some(Ok(b)) => Ok(Some(b)),
                Some(Err(e)) => Err(self.storage.err("get", &self.key, e)),
            }
        })
    }
}
