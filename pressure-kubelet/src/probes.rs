//! `/metrics` (Prometheus text), `/healthz` and `/readyz` over HTTP: the probe and scrape endpoint of
//! both binaries, which differ only in what they count and when they are ready.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::error::KubeletError;

/// The OpenMetrics content type `prometheus_client`'s text encoder writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for scrapers that do not ask for OpenMetrics.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a connection may take to send a request's headers, and stay idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once. Scrapers and probes need a handful.
pub const MAX_CONNECTIONS: usize = 64;

type Encode = dyn Fn() -> String + Send + Sync;
type Ready = dyn Fn() -> bool + Send + Sync;

/// The `/metrics`, `/healthz`, `/readyz` endpoint: `/metrics` answers what `encode` returns (e.g.
/// `prometheus_client::encoding::text::encode` of a registry), `/readyz` is 200 while `ready` says so
/// and 503 otherwise, `/healthz` is always 200.
///
/// Bounded against idle and slow clients (issue 16): a connection that sends no complete request headers
/// within [`HEADER_READ_TIMEOUT`] (also between keep-alive requests) is closed, and at most
/// [`MAX_CONNECTIONS`] are served at once.
#[derive(Clone)]
pub struct ProbeServer {
    encode: Arc<Encode>,
    ready: Arc<Ready>,
    header_read_timeout: Duration,
    max_connections: usize,
}

impl std::fmt::Debug for ProbeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeServer").finish_non_exhaustive()
    }
}

impl ProbeServer {
    /// An endpoint whose metrics page is `encode()` and whose readiness is `ready()`, both called per
    /// request.
    pub fn new(
        encode: impl Fn() -> String + Send + Sync + 'static,
        ready: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            encode: Arc::new(encode),
            ready: Arc::new(ready),
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }

    /// Replaces [`HEADER_READ_TIMEOUT`].
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Replaces [`MAX_CONNECTIONS`] (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Binds `addr` and serves on a background task; returns the bound address (port 0 picks one).
    /// Must be called inside a tokio runtime.
    pub async fn spawn(self, addr: SocketAddr) -> Result<SocketAddr, KubeletError> {
        let bind = |source| KubeletError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
        let local = listener.local_addr().map_err(bind)?;
        let (encode, ready) = (self.encode, self.ready);
        let app = Router::new()
            .route(
                "/metrics",
                get(move |headers: HeaderMap| {
                    let page = encode();
                    // Prometheus asks for OpenMetrics; curl, promtool and older scrapers get the
                    // classic text format, as client_golang negotiates it.
                    let openmetrics = headers.get_all(header::ACCEPT).iter().any(|v| {
                        v.to_str()
                            .is_ok_and(|v| v.contains("application/openmetrics-text"))
                    });
                    async move {
                        if openmetrics {
                            ([(header::CONTENT_TYPE, OPENMETRICS)], page)
                        } else {
                            (
                                [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
                                openmetrics_to_text(&page),
                            )
                        }
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(move || {
                    let ok = ready();
                    async move { readyz(ok) }
                }),
            );
        let (timeout, slots) = (
            self.header_read_timeout,
            Arc::new(tokio::sync::Semaphore::new(self.max_connections)),
        );
        // hyper's own loop rather than `axum::serve`, which has neither a header timeout nor a cap.
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and the like: wait a little instead of spinning.
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::debug!("metrics endpoint: connection cap reached, closing a new one");
                    drop(stream);
                    continue;
                };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        tower::ServiceExt::oneshot(app.clone(), req)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(timeout)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "metrics endpoint: connection closed");
                    }
                    drop(permit);
                });
            }
        });
        tracing::info!(address = %local, "serving /metrics, /healthz, /readyz");
        Ok(local)
    }
}

/// OpenMetrics text as `prometheus_client` writes it, in the classic Prometheus text format (0.0.4):
/// a counter family is named by its samples (`x_total`, where OpenMetrics names it `x`), `info` families
/// are gauges, and `# UNIT` and `# EOF` go. The samples are the same lines.
fn openmetrics_to_text(page: &str) -> String {
    /// The classic family name and type of an OpenMetrics family.
    fn classic<'a>(name: &'a str, kind: &'a str) -> (String, &'a str) {
        match kind {
            "counter" if !name.ends_with("_total") => (format!("{name}_total"), kind),
            "info" => (format!("{name}_info"), "gauge"),
            _ => (name.to_string(), kind),
        }
    }
    let mut out = String::with_capacity(page.len());
    let mut lines = page.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            let help = &rest[name.len()..];
            let kind = lines
                .peek()
                .and_then(|next| next.strip_prefix("# TYPE "))
                .and_then(|t| t.strip_prefix(name)?.strip_prefix(' '));
            if let Some(kind) = kind {
                let (name, kind) = classic(name, kind);
                out.push_str(&format!("# HELP {name}{help}\n# TYPE {name} {kind}\n"));
                lines.next();
                continue;
            }
        }
        if let Some((name, kind)) = line
            .strip_prefix("# TYPE ")
            .and_then(|t| t.rsplit_once(' '))
        {
            let (name, kind) = classic(name, kind);
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn readyz(ready: bool) -> impl IntoResponse {
    if ready {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Parses a bind address: `:8080` (all IPv4 addresses), `0.0.0.0:8080` or `[::1]:8080`; empty (or
/// `""`, as a chart may render it) is `None`: no endpoint.
pub fn parse_bind_address(text: &str) -> Result<Option<SocketAddr>, KubeletError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "\"\"" {
        return Ok(None);
    }
    let full = if trimmed.starts_with(':') {
        format!("0.0.0.0{trimmed}")
    } else {
        trimmed.to_owned()
    };
    full.parse()
        .map(Some)
        .map_err(|_| KubeletError::BindAddress {
            text: trimmed.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_18_openmetrics_becomes_classic_text_for_promtool() {
        let page = "# HELP a_events Events.\n# TYPE a_events counter\na_events_total{k=\"v\"} 3\n\
                    # HELP a_bytes Bytes.\n# TYPE a_bytes gauge\n# UNIT a_bytes bytes\na_bytes 7\n\
                    # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                    # HELP b_total Done.\n# TYPE b_total counter\nb_total 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(page),
            "# HELP a_events_total Events.\n# TYPE a_events_total counter\na_events_total{k=\"v\"} 3\n\
             # HELP a_bytes Bytes.\n# TYPE a_bytes gauge\na_bytes 7\n\
             # HELP a_build_info Build.\n# TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
             # HELP b_total Done.\n# TYPE b_total counter\nb_total 1\n"
        );
    }

    use super::*;

    #[test]
    fn bind_addresses() {
        assert_eq!(parse_bind_address("").unwrap(), None);
        assert_eq!(parse_bind_address(" \"\" ").unwrap(), None);
        assert_eq!(
            parse_bind_address(":8080").unwrap(),
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(
            parse_bind_address("[::1]:9").unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        let e = parse_bind_address("localhost").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bind address \"localhost\" is not host:port or :port"
        );
    }
}
