//! `/metrics`, `/healthz` and `/readyz` over HTTP (axum).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use pressure_ebpf::TracerStats;

use crate::metrics::Metrics;

struct AppState {
    metrics: Arc<Metrics>,
    stats: TracerStats,
}

async fn metrics_page(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    s.metrics.sync(&s.stats);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the probe is attached (or the kernel log is read) and while the reader runs.
async fn readyz(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    if s.stats.is_running() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds `addr` and serves in the background; returns the bound address.
pub(crate) async fn spawn(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stats: TracerStats,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let local = listener.local_addr().context("metrics endpoint address")?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(AppState { metrics, stats }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(local)
}
