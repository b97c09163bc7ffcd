//! The error type of this crate.

use std::path::PathBuf;

/// Errors of Kubernetes and kubelet access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeletError {
    /// A resource quantity does not parse or does not fit.
    #[error("quantity {input:?}: {reason}")]
    Quantity {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file (service account token, CA, namespace, kubeconfig) could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The in-cluster environment is incomplete.
    #[error("in-cluster configuration: {0}")]
    InCluster(String),
    /// A URL is not valid.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A kubeconfig could not be loaded.
    #[cfg(feature = "kubeconfig")]
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file, or `<default>` for `$KUBECONFIG` / `~/.kube/config`.
        path: String,
        /// The cause.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A kubeconfig was asked for, but this build has no kubeconfig reader (the `kubeconfig` feature).
    #[error(
        "kubeconfig {path}: this build reads no kubeconfig (built without the `kubeconfig` feature); \
         run in a pod with its service account, or build with `--features kubeconfig`"
    )]
    KubeconfigUnsupported {
        /// The file, or `<default>` for `$KUBECONFIG` / `~/.kube/config`.
        path: String,
    },
    /// A TLS setting cannot be used: a CA bundle without certificates, the system's trust store.
    #[error("TLS{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Tls {
        /// The CA bundle at fault, if a file is.
        path: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// A request to the API server or a kubelet failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done, e.g. `patching pod ns/name`.
        what: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// A Summary API answer is not the expected JSON.
    #[error("decoding the stats summary of node {node}: {source}")]
    Summary {
        /// The node.
        node: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A Summary API answer is larger than [`crate::MAX_SUMMARY_BYTES`]; reading stopped at the cap.
    #[error("the stats summary of node {node} is larger than {max} bytes")]
    SummaryTooLarge {
        /// The node.
        node: String,
        /// The cap.
        max: usize,
    },
    /// The server answered `429 Too Many Requests`; `Retry-After` says how long to wait, when sent.
    #[error("{what}: 429 Too Many Requests (Retry-After: {})", .retry_after.map_or_else(|| "none".to_owned(), |d| format!("{} s", d.as_secs())))]
    TooManyRequests {
        /// What was being done.
        what: String,
        /// The `Retry-After` delay, when the answer had one in seconds.
        retry_after: Option<std::time::Duration>,
    },
    /// A request got no complete answer in time (e.g. [`crate::SUMMARY_TIMEOUT`]); it was abandoned.
    #[error("{what}: no answer within {} s", .after.as_secs())]
    TimedOut {
        /// What was being done.
        what: String,
        /// How long it was given.
        after: std::time::Duration,
    },
    /// A pod watch ended (the cache's watch tasks stopped).
    #[error("the pod watch stopped")]
    WatchStopped,
    /// A bind address is not `host:port` or `:port`.
    #[error("bind address {text:?} is not host:port or :port")]
    BindAddress {
        /// The text as given.
        text: String,
    },
    /// The probe endpoint could not listen.
    #[error("binding the metrics endpoint {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A setting is out of its bounds.
    #[error("{key}: {reason}")]
    Invalid {
        /// The setting.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The state file of pending marks cannot be read or written.
    #[error("state file {path}: {reason}")]
    StateFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Retries were used up.
    #[error("{what}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// What was being done.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        last: String,
    },
}

impl KubeletError {
    pub(crate) fn api(what: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            what: what.into(),
            source,
        }
    }

    /// The HTTP status code when the API server answered with an error status.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Api {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            Self::TooManyRequests { .. } => Some(429),
            _ => None,
        }
    }

    /// How long the server asked to wait (`Retry-After` of a 429), when it said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::TooManyRequests { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Whether a failed request is worth retrying: conflicts, throttling, server errors, transport errors.
pub(crate) fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500..=599),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}
