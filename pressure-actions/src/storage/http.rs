//! object_store's HTTP transport: this crate's own reqwest client, HTTP/1.1 only.
//!
//! object_store's `reqwest` feature turns on reqwest's HTTP/2, which put `h2` (0.4 MB) into `pressured`
//! although nothing here speaks HTTP/2 (issue 19; object_store itself defaults to HTTP/1.1, see
//! apache/arrow-rs#5194). Without that feature object_store has no transport and takes one through
//! [`HttpConnector`]: [`ReqwestConnector`] builds a reqwest client from the [`ClientOptions`] object_store
//! passes (its defaults: 30 s per request, 5 s to connect, 1 s for the instance-metadata endpoint, plus
//! whatever `AWS_*` client keys the environment sets), and [`ReqwestService`] sends object_store's
//! requests through it. Retries stay object_store's: they depend on the [`HttpErrorKind`] given here.

use std::error::Error as _;
use std::time::Duration;

use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    ClientConfigKey, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest,
    HttpResponse, HttpResponseBody, HttpService,
};

/// Why object_store's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    /// A [`ClientOptions`] value this transport cannot honour.
    #[error("S3 HTTP client option {key} = {value:?}: {message}")]
    BadOption {
        key: &'static str,
        value: String,
        message: &'static str,
    },
    /// reqwest refused the configuration (e.g. no usable TLS roots).
    #[error("S3 HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// Builds object_store's HTTP clients over reqwest, HTTP/1.1 only.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReqwestConnector;

impl HttpConnector for ReqwestConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = client(options).map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })?;
        Ok(HttpClient::new(ReqwestService(client)))
    }
}

/// The reqwest client for `options`. Not applied: `randomize_addresses` (object_store's resolver that
/// shuffles a host's addresses is private; the system resolver's order is used) and root certificates
/// added with `ClientOptions::with_root_certificate`, which exists only with object_store's `reqwest`.
fn client(options: &ClientOptions) -> Result<reqwest::Client, TransportError> {
    let get = |key: ClientConfigKey| options.get_config_value(&key);
    let flag = |key: ClientConfigKey, name: &'static str| -> Result<bool, TransportError> {
        match get(key) {
            None => Ok(false),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(TransportError::BadOption {
                    key: name,
                    value: v,
                    message: "not a boolean",
                }),
            },
        }
    };
    let duration =
        |key: ClientConfigKey, name: &'static str| -> Result<Option<Duration>, TransportError> {
            get(key)
                .map(|v| {
                    humantime::parse_duration(v.trim()).map_err(|_| TransportError::BadOption {
                        key: name,
                        value: v,
                        message: "not a duration (e.g. 30s)",
                    })
                })
                .transpose()
        };

    if flag(ClientConfigKey::Http2Only, "http2_only")? {
        return Err(TransportError::BadOption {
            key: "http2_only",
            value: "true".into(),
            message: "HTTP/2 is not built in",
        });
    }
    crate::tls::install_ring();
    let user_agent = get(ClientConfigKey::UserAgent)
        .unwrap_or_else(|| concat!("pressured/", env!("CARGO_PKG_VERSION")).to_string());
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .http1_only()
        .https_only(!flag(ClientConfigKey::AllowHttp, "allow_http")?)
        // Object sizes come from Content-Length; reqwest here has no decompression, say so anyway.
        .no_gzip()
        .no_brotli()
        .no_zstd()
        .no_deflate();
    if let Some(headers) = options.get_default_headers() {
        builder = builder.default_headers(headers.clone());
    }
    if let Some(url) = get(ClientConfigKey::ProxyUrl) {
        let mut proxy = reqwest::Proxy::all(&url).map_err(|_| TransportError::BadOption {
            key: "proxy_url",
            value: url.clone(),
            message: "not a proxy URL",
        })?;
        if let Some(pem) = get(ClientConfigKey::ProxyCaCertificate) {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|_| {
                TransportError::BadOption {
                    key: "proxy_ca_certificate",
                    value: pem.chars().take(64).collect(),
                    message: "not a PEM certificate",
                }
            })?;
            builder = builder.tls_certs_merge([cert]);
        }
        if let Some(excludes) = get(ClientConfigKey::ProxyExcludes) {
            proxy = proxy.no_proxy(reqwest::NoProxy::from_string(&excludes));
        }
        builder = builder.proxy(proxy);
    }
    if flag(
        ClientConfigKey::NoSystemCertificates,
        "disable_system_certificates",
    )? {
        builder = builder.tls_certs_only(std::iter::empty());
    }
    if flag(
        ClientConfigKey::AllowInvalidCertificates,
        "allow_invalid_certificates",
    )? {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(d) = duration(ClientConfigKey::Timeout, "timeout")? {
        builder = builder.timeout(d);
    }
    if let Some(d) = duration(ClientConfigKey::ConnectTimeout, "connect_timeout")? {
        builder = builder.connect_timeout(d);
    }
    if let Some(d) = duration(ClientConfigKey::ReadTimeout, "read_timeout")? {
        builder = builder.read_timeout(d);
    }
    if let Some(d) = duration(ClientConfigKey::PoolIdleTimeout, "pool_idle_timeout")? {
        builder = builder.pool_idle_timeout(d);
    }
    if let Some(v) = get(ClientConfigKey::PoolMaxIdlePerHost) {
        let max = v.trim().parse().map_err(|_| TransportError::BadOption {
            key: "pool_max_idle_per_host",
            value: v.clone(),
            message: "not a count",
        })?;
        builder = builder.pool_max_idle_per_host(max);
    }
    builder.build().map_err(TransportError::Build)
}

/// Sends object_store's requests with a reqwest client.
#[derive(Debug, Clone)]
pub(crate) struct ReqwestService(pub(crate) reqwest::Client);

#[async_trait::async_trait]
impl HttpService for ReqwestService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let mut request = reqwest::Request::new(parts.method, url);
        *request.headers_mut() = parts.headers;
        // One buffer goes as is (with its length); a multipart part's chunks stream.
        *request.body_mut() = Some(match body.as_bytes() {
            Some(bytes) => reqwest::Body::from(bytes.clone()),
            None => reqwest::Body::wrap(body),
        });
        let response = self.0.execute(request).await.map_err(http_error)?;
        let (parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
        Ok(HttpResponse::from_parts(
            parts,
            HttpResponseBody::new(body.map_err(http_error)),
        ))
    }
}

/// What kind of failure a reqwest error is, as object_store's own reqwest transport classifies it:
/// connect errors, timeouts, connections closed or reset mid-request are retried; decode errors and
/// anything unknown are not.
fn http_error(e: reqwest::Error) -> HttpError {
    let mut kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else {
        HttpErrorKind::Unknown
    };
    let mut source = e.source();
    while kind == HttpErrorKind::Unknown {
        let Some(err) = source else { break };
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_closed() || h.is_incomplete_message() || h.is_body_write_aborted() {
                kind = HttpErrorKind::Request;
            } else if h.is_timeout() {
                kind = HttpErrorKind::Timeout;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::TimedOut => kind = HttpErrorKind::Timeout,
                K::ConnectionAborted | K::ConnectionReset | K::BrokenPipe | K::UnexpectedEof => {
                    kind = HttpErrorKind::Interrupted
                }
                _ => {}
            }
        }
        source = err.source();
    }
    // The URL is left out: object_store adds it to its retry error when it is not sensitive.
    HttpError::new(kind, e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn send(client: reqwest::Client, url: &str) -> Result<HttpResponse, HttpError> {
        let req = http::Request::builder()
            .uri(url)
            .body(object_store::client::HttpRequestBody::empty())
            .unwrap();
        ReqwestService(client).call(req).await
    }

    /// Reads one request head from `s` (enough for these tests' GETs).
    async fn read_head(s: &mut tokio::net::TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn options_are_applied_and_bad_values_name_the_key() {
        let ok = ClientOptions::new()
            .with_config(ClientConfigKey::Timeout, "2s")
            .with_config(ClientConfigKey::PoolMaxIdlePerHost, "4");
        assert!(ReqwestConnector.connect(&ok).is_ok());
        let bad = ClientOptions::new().with_config(ClientConfigKey::ConnectTimeout, "soon");
        let msg = client(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("connect_timeout") && msg.contains("soon"),
            "{msg}"
        );
        let h2 = ClientOptions::new().with_config(ClientConfigKey::Http2Only, "true");
        assert!(client(&h2).unwrap_err().to_string().contains("HTTP/2"));
    }

    #[tokio::test]
    async fn https_only_unless_allow_http() {
        let c = client(&ClientOptions::new()).unwrap();
        let e = send(c, "http://127.0.0.1:9/x").await.unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::Unknown, "{e}");
        // reqwest refuses the scheme before connecting (`https_only`).
        let refused = e
            .source()
            .and_then(|s| s.downcast_ref::<reqwest::Error>())
            .is_some_and(|r| r.is_builder() && format!("{r:?}").contains("BadScheme"));
        assert!(refused, "{e:?}");
    }

    #[tokio::test]
    async fn response_status_headers_and_body_pass_through() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            s.write_all(
                b"HTTP/1.1 404 Not Found\r\nx-amz-request-id: r1\r\ncontent-length: 5\r\n\r\nnope!",
            )
            .await
            .unwrap();
        });
        let c = client(&ClientOptions::new().with_allow_http(true)).unwrap();
        let res = send(c, &format!("http://{addr}/bucket/key")).await.unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(res.version(), http::Version::HTTP_11);
        assert_eq!(res.headers()["x-amz-request-id"], "r1");
        assert_eq!(&res.into_body().bytes().await.unwrap()[..], b"nope!");
        server.await.unwrap();
    }

    /// A connection the server closes before answering (an idle keep-alive connection S3 dropped) is
    /// an error object_store retries, as is a refused connection.
    #[tokio::test]
    async fn closed_and_refused_connections_are_retryable_kinds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            drop(s);
            listener
        });
        let c = client(&ClientOptions::new().with_allow_http(true)).unwrap();
        let e = send(c.clone(), &format!("http://{addr}/k"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                HttpErrorKind::Request | HttpErrorKind::Interrupted
            ),
            "{:?}: {e:?}",
            e.kind()
        );
        // Closed now: nothing listens on the port.
        drop(server.await.unwrap());
        let e = send(c, &format!("http://{addr}/k")).await.unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::Connect, "{e:?}");
    }

    /// `timeout` (30 s by default) bounds a request whose server never answers.
    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            let _ = done_rx.await;
        });
        let options = ClientOptions::new()
            .with_allow_http(true)
            .with_timeout(Duration::from_millis(200));
        let e = send(client(&options).unwrap(), &format!("http://{addr}/k"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), HttpErrorKind::Timeout, "{e:?}");
        let _ = done_tx.send(());
        server.await.unwrap();
    }
}
