//! Error types: [`ActionsError`] (building the dispatcher, running an action) and [`StorageError`].

use std::path::PathBuf;

/// An error of a storage backend; the message names the backend, the operation and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key is empty, absolute, contains `..` or would escape the root or prefix.
    #[error("storage: invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The object does not exist.
    #[error("storage {backend}: {key:?} not found")]
    NotFound {
        /// Backend name (`local`, `s3`, …).
        backend: String,
        /// The key.
        key: String,
    },
    /// The object is larger than the reader's limit (e.g. `storage.read` under the Lua memory cap).
    #[error("storage {backend}: {key:?} is {size} bytes or more, more than the limit of {max}")]
    TooLarge {
        /// Backend name.
        backend: String,
        /// The key.
        key: String,
        /// Its size (or the bytes read when the limit was passed).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A local file operation failed.
    #[error("storage local: {op} {path}: {source}")]
    Io {
        /// What was being done (`write`, `rename`, …).
        op: &'static str,
        /// The file at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An object-store (S3, …) operation failed after its retries.
    #[error("storage {backend}: {op} {key:?}: {source}")]
    ObjectStore {
        /// Backend name.
        backend: String,
        /// What was being done (`put`, `get`, `multipart upload`, …).
        op: &'static str,
        /// The key.
        key: String,
        /// The underlying error (status code and server message for S3), boxed: it is large.
        #[source]
        source: Box<object_store::Error>,
    },
    /// The backend could not be configured.
    #[error("storage: {key}: {message}")]
    Config {
        /// The config key at fault (e.g. `storage.s3.endpoint`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A write handle was used after it was closed or failed.
    #[error("storage: {key:?}: {message}")]
    Handle {
        /// The key of the handle.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// An error building the dispatcher or running one action.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionsError {
    /// A config value is unusable; `key` is the config key at fault.
    #[error("actions: {key}: {message}")]
    Config {
        /// Full config key (e.g. `plugins.lua.scripts_dir`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A Lua script failed to load or its `on_event` failed (error, timeout, memory cap).
    #[error("lua {script}: {message}")]
    Lua {
        /// Script name (file name, or `inline`).
        script: String,
        /// The Lua error, with its traceback.
        message: String,
    },
    /// A script file or directory could not be read.
    #[error("lua: reading {path}: {source}")]
    ScriptIo {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A storage operation failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An `exec` action failed to start, timed out or exited unsuccessfully.
    #[error("exec {program}: {message}")]
    Exec {
        /// The program.
        program: String,
        /// What happened (exit status, timeout, spawn error).
        message: String,
    },
    /// A webhook failed after its retries.
    #[error("webhook {url}: {message}")]
    Webhook {
        /// The URL.
        url: String,
        /// The last error or status.
        message: String,
    },
    /// The heap-profile capture failed.
    #[error("heap profile {pod}: {message}")]
    HeapProfile {
        /// `namespace/pod/container`.
        pod: String,
        /// What happened.
        message: String,
    },
    /// The dispatcher needs a tokio runtime (call it from async code or inside `Runtime::enter`).
    #[error("actions: no tokio runtime: {0}")]
    NoRuntime(String),
}
