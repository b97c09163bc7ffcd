//! `/metrics` (Prometheus text), `/healthz` and `/readyz` over HTTP: the probe and scrape endpoint of
//! both binaries, which differ only in what they count and when they are ready.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::error::KubeletError;

/// The OpenMetrics content type `prometheus_client`'s text encoder writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Encode = dyn Fn() -> String + Send + Sync;
type Ready = dyn Fn() -> bool + Send + Sync;

/// The `/metrics`, `/healthz`, `/readyz` endpoint: `/metrics` answers what `encode` returns (e.g.
/// `prometheus_client::encoding::text::encode` of a registry), `/readyz` is 200 while `ready` says so
/// and 503 otherwise, `/healthz` is always 200.
#[derive(Clone)]
pub struct ProbeServer {
    encode: Arc<Encode>,
    ready: Arc<Ready>,
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
        }
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
                get(move || {
                    let page = encode();
                    async move { ([(header::CONTENT_TYPE, OPENMETRICS)], page) }
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
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
        tracing::info!(address = %local, "serving /metrics, /healthz, /readyz");
        Ok(local)
    }
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
