//! The probe server against raw TCP clients: answers, idle connections closed, connection cap.

use std::time::{Duration, Instant};

use pressure_kubelet::ProbeServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Waits until the server closes `s` (EOF or reset), at most `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Issue 16 (9): idle connections were never closed and their number had no cap.
#[tokio::test]
async fn issue_16_idle_connections_are_closed_and_capped() {
    let addr = ProbeServer::new(|| "m 1\n".to_owned(), || true)
        .header_read_timeout(Duration::from_millis(300))
        .max_connections(2)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(get(addr, "/metrics").await.contains("m 1"));
    // Two idle connections take both slots; a third is closed at once.
    let started = Instant::now();
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    // A partial request: headers that never end are cut at the timeout as well.
    b.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut c, Duration::from_millis(200)).await,
        "over the cap"
    );
    assert!(closed_within(&mut a, Duration::from_secs(10)).await, "idle");
    assert!(
        closed_within(&mut b, Duration::from_secs(10)).await,
        "slow headers"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // The slots are free again.
    assert!(get(addr, "/readyz").await.contains("ready"));
}

/// Issue 18: Prometheus (which asks for OpenMetrics) gets the page as written; curl and `promtool check
/// metrics` (no Accept) get the classic text format, whose counter families are named `x_total`.
#[tokio::test]
async fn issue_18_metrics_format_follows_the_accept_header() {
    let page = "# HELP c Things.\n# TYPE c counter\nc_total 2\n# EOF\n";
    let addr = ProbeServer::new(move || page.to_owned(), || true)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut openmetrics = String::new();
    s.read_to_string(&mut openmetrics).await.unwrap();
    assert!(
        openmetrics.contains("application/openmetrics-text; version=1.0.0"),
        "{openmetrics}"
    );
    assert!(openmetrics.ends_with(page), "{openmetrics}");
    let classic = get(addr, "/metrics").await;
    assert!(classic.contains("text/plain; version=0.0.4"), "{classic}");
    assert!(
        classic.ends_with("# HELP c_total Things.\n# TYPE c_total counter\nc_total 2\n"),
        "{classic}"
    );
}
