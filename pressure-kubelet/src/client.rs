//! Building a kube-rs [`Client`] from the in-cluster service account, a kubeconfig, `kubectl proxy` or a
//! plain URL, with the bearer token re-read from its file whenever the file changes.
//!
//! The service account, URL and proxy sources get this crate's own client stack ([`direct`]); a
//! kubeconfig gets kube-rs's, for its authentication plugins, and only with the `kubeconfig` feature.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::SystemTime;

use http::{HeaderValue, Request, header};
use kube::Client;
use kube::config::Config;

use crate::KubeletError;
use crate::tls::Verify;

/// Where the service account's files are mounted in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How to reach the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientSource {
    /// The pod's service account: `token`, `ca.crt` and `namespace` in `service_account_dir`, the API
    /// server from `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` unless `api_server` is given.
    InCluster {
        /// Usually [`SERVICE_ACCOUNT_DIR`].
        service_account_dir: PathBuf,
        /// Overrides the environment.
        api_server: Option<String>,
    },
    /// A kubeconfig file (`None`: `$KUBECONFIG` or `~/.kube/config`) and optional context. Needs the
    /// `kubeconfig` feature; without it, connecting fails with
    /// [`KubeletError::KubeconfigUnsupported`].
    Kubeconfig {
        /// The file.
        path: Option<PathBuf>,
        /// The context; `None` uses `current-context`.
        context: Option<String>,
    },
    /// `kubectl proxy` (or any unauthenticated endpoint), e.g. `http://127.0.0.1:8001`.
    Proxy {
        /// Base URL.
        url: String,
    },
    /// A URL with an optional bearer token file (re-read on change) and CA file.
    Url {
        /// Base URL.
        url: String,
        /// Bearer token file.
        token_file: Option<PathBuf>,
        /// PEM CA bundle for HTTPS.
        ca_file: Option<PathBuf>,
        /// Skip certificate verification (the kubelet's self-signed serving certificate).
        insecure: bool,
    },
}

impl ClientSource {
    /// In-cluster when `KUBERNETES_SERVICE_HOST` is set and the token exists, else the default kubeconfig
    /// (which needs the `kubeconfig` feature).
    pub fn infer() -> Self {
        let dir = PathBuf::from(SERVICE_ACCOUNT_DIR);
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() && dir.join("token").is_file() {
            Self::InCluster {
                service_account_dir: dir,
                api_server: None,
            }
        } else {
            Self::Kubeconfig {
                path: None,
                context: None,
            }
        }
    }

    /// A client for this source.
    pub async fn connect(&self) -> Result<Client, KubeletError> {
        self.stack().await?.build()
    }

    /// A client for this source that does not retry 429, 503 and 504 answers itself (kube-rs' client
    /// does, sleeping for `Retry-After` up to 15 times inside the request): for callers that back off on
    /// their own, e.g. per node for the Summary API, and must not hold a request slot meanwhile.
    pub async fn connect_without_retries(&self) -> Result<Client, KubeletError> {
        let mut stack = self.stack().await?;
        stack.config_mut().default_retry = false;
        stack.build()
    }

    /// The same credentials against another base URL (a node's kubelet, `https://$NODE_IP:10250`),
    /// without certificate verification unless `ca_file` is given.
    pub async fn connect_to(
        &self,
        url: &str,
        ca_file: Option<&Path>,
    ) -> Result<Client, KubeletError> {
        let mut stack = self.stack().await?;
        let config = stack.config_mut();
        config.cluster_url = parse_uri(url)?;
        config.tls_server_name = None;
        match ca_file {
            Some(ca) => {
                config.root_cert_file = Some(ca.to_owned());
                config.accept_invalid_certs = false;
            }
            None => {
                config.root_cert_file = None;
                config.root_cert = None;
                config.accept_invalid_certs = true;
            }
        }
        stack.build()
    }

    async fn stack(&self) -> Result<Stack, KubeletError> {
        match self {
            Self::InCluster {
                service_account_dir,
                api_server,
            } => {
                let url = match api_server {
                    Some(u) => u.clone(),
                    None => {
                        let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
                            KubeletError::InCluster("KUBERNETES_SERVICE_HOST is not set".into())
                        })?;
                        let port = std::env::var("KUBERNETES_SERVICE_PORT")
                            .unwrap_or_else(|_| "443".into());
                        let host = if host.contains(':') {
                            format!("[{host}]")
                        } else {
                            host
                        };
                        format!("https://{host}:{port}")
                    }
                };
                let mut config = Config::new(parse_uri(&url)?);
                let ns_path = service_account_dir.join("namespace");
                if let Ok(ns) = std::fs::read_to_string(&ns_path) {
                    config.default_namespace = ns.trim().to_owned();
                }
                let ca = service_account_dir.join("ca.crt");
                if ca.is_file() {
                    config.root_cert_file = Some(ca);
                }
                let token = service_account_dir.join("token");
                std::fs::metadata(&token).map_err(|source| KubeletError::Read {
                    path: token.clone(),
                    source,
                })?;
                Ok(Stack::Direct(config, Some(token)))
            }
            Self::Kubeconfig { path, context } => {
                let shown = path
                    .as_ref()
                    .map_or_else(|| "<default>".to_owned(), |p| p.display().to_string());
                #[cfg(feature = "kubeconfig")]
                {
                    use kube::config::{KubeConfigOptions, Kubeconfig};
                    let options = KubeConfigOptions {
                        context: context.clone(),
                        cluster: None,
                        user: None,
                    };
                    let kc = match path {
                        Some(p) => Kubeconfig::read_from(p),
                        None => Kubeconfig::read(),
                    }
                    .map_err(|source| KubeletError::Kubeconfig {
                        path: shown.clone(),
                        source,
                    })?;
                    let config =
                        Config::from_custom_kubeconfig(kc, &options)
                            .await
                            .map_err(|source| KubeletError::Kubeconfig {
                                path: shown,
                                source,
                            })?;
                    Ok(Stack::Kubeconfig(config))
                }
                #[cfg(not(feature = "kubeconfig"))]
                {
                    let _ = context;
                    Err(KubeletError::KubeconfigUnsupported { path: shown })
                }
            }
            Self::Proxy { url } => Ok(Stack::Direct(Config::new(parse_uri(url)?), None)),
            Self::Url {
                url,
                token_file,
                ca_file,
                insecure,
            } => {
                let mut config = Config::new(parse_uri(url)?);
                config.root_cert_file = ca_file.clone();
                config.accept_invalid_certs = *insecure;
                Ok(Stack::Direct(config, token_file.clone()))
            }
        }
    }
}

fn parse_uri(url: &str) -> Result<http::Uri, KubeletError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| KubeletError::Url {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    if uri.scheme().is_none() || uri.authority().is_none() {
        return Err(KubeletError::Url {
            url: url.to_owned(),
            reason: "needs a scheme and a host".into(),
        });
    }
    Ok(uri)
}

/// How a client is put together.
enum Stack {
    /// The service account, a URL or a proxy: this crate's own stack (below), settings in a kube-rs
    /// [`Config`] and the bearer token from a file.
    Direct(Config, Option<PathBuf>),
    /// A kubeconfig: kube-rs's whole client stack, for its authentication (exec plugins, auth
    /// providers, client certificates).
    #[cfg(feature = "kubeconfig")]
    Kubeconfig(Config),
}

impl Stack {
    fn config_mut(&mut self) -> &mut Config {
        match self {
            Self::Direct(config, _) => config,
            #[cfg(feature = "kubeconfig")]
            Self::Kubeconfig(config) => config,
        }
    }

    fn build(self) -> Result<Client, KubeletError> {
        match self {
            Self::Direct(config, token_file) => direct(config, token_file),
            #[cfg(feature = "kubeconfig")]
            Self::Kubeconfig(config) => {
                // kube-rs builds its TLS from the installed provider.
                if rustls::crypto::CryptoProvider::get_default().is_none() {
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
                let builder = kube::client::ClientBuilder::try_from(config)
                    .map_err(|e| KubeletError::api("building the HTTP client", e))?;
                Ok(builder.build())
            }
        }
    }
}

/// The client of the service account, URL and proxy sources: hyper's HTTP/1.1 client over rustls
/// (ring; [`crate::tls`]), kube-rs's connect and write timeouts, base URL and retry policy of 429,
/// 503 and 504 answers, and the bearer token of a [`TokenFile`]. It leaves out what only kubeconfigs
/// need (kube-rs's exec plugins and auth providers, which bring a YAML parser, JSONPath and regex:
/// the `kubeconfig` feature), so a binary without that feature is about 4 MB smaller.
fn direct(config: Config, token_file: Option<PathBuf>) -> Result<Client, KubeletError> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::middleware::BaseUriLayer;
    use kube::client::retry::RetryPolicy;
    use tower::ServiceBuilder;
    use tower::retry::RetryLayer;

    let verify = if config.accept_invalid_certs {
        Verify::Nothing
    } else {
        match &config.root_cert_file {
            Some(path) => Verify::CaFile(path.clone()),
            None => Verify::System,
        }
    };
    let tls = crate::tls::client_config(&verify)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(BaseUriLayer::new(config.cluster_url))
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(token_file.map(|path| TokenFileLayer(Arc::new(TokenFile::new(path)))))
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(Client::new(service, config.default_namespace))
}

/// A bearer token file, re-read whenever its modification time, size or inode changes.
///
/// Projected service account tokens are rotated by the kubelet (an atomic symlink swap, usually
/// hourly); kube-rs re-reads its token file once a minute, which can send an expired token for up to
/// that long. A `stat` per request is cheaper than a failed request.
#[derive(Debug)]
pub(crate) struct TokenFile {
    path: PathBuf,
    cache: Mutex<Option<(FileStamp, HeaderValue)>>,
}

/// What tells a rewritten file: modification time, size and inode (a rename over it changes the inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    mtime: Option<SystemTime>,
    len: u64,
    ino: u64,
}

impl FileStamp {
    /// The stamp of `path`, `None` when it cannot be `stat`ed.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            mtime: meta.modified().ok(),
            len: meta.len(),
            ino: meta.ino(),
        })
    }
}

impl TokenFile {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            cache: Mutex::new(None),
        }
    }

    /// `Bearer <token>`, or `None` when the file cannot be read (the request then fails with 401).
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let stamp = FileStamp::of(&self.path)?;
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, h)) = cache.as_ref()
            && *s == stamp
        {
            return Some(h.clone());
        }
        let token = std::fs::read_to_string(&self.path).ok()?;
        let mut h = HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok()?;
        h.set_sensitive(true);
        *cache = Some((stamp, h.clone()));
        Some(h)
    }
}

/// Tower layer adding the token of a [`TokenFile`] to every request.
#[derive(Debug, Clone)]
pub(crate) struct TokenFileLayer(Arc<TokenFile>);

impl<S> tower::Layer<S> for TokenFileLayer {
    type Service = TokenFileService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenFileService {
            inner,
            token: self.0.clone(),
        }
    }
}

/// The service of [`TokenFileLayer`].
#[derive(Debug, Clone)]
pub(crate) struct TokenFileService<S> {
    inner: S,
    token: Arc<TokenFile>,
}

impl<S, B> tower::Service<Request<B>> for TokenFileService<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(h) = self.token.header() {
            req.headers_mut().insert(header::AUTHORIZATION, h);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").unwrap();
        let t = TokenFile::new(path.clone());
        assert_eq!(t.header().unwrap(), "Bearer one");
        // Kubelet-style rotation: a new file renamed over the old one.
        let tmp = dir.path().join("token.new");
        std::fs::write(&tmp, "second").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(t.header().unwrap(), "Bearer second");
        std::fs::remove_file(&path).unwrap();
        assert!(t.header().is_none());
    }

    #[test]
    fn rejects_urls_without_host() {
        assert!(parse_uri("127.0.0.1:8001").is_err());
        assert!(parse_uri("http://127.0.0.1:8001").is_ok());
    }
}
