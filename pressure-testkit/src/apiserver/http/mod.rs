//! HTTP side of the fake API server: the accept loop (plain or TLS), faults, authentication, and the
//! responses every handler shares. Routing and the get / create / update / patch / delete handlers
//! are in `routes`, list and watch in `watch`, the certificates in `tls`.
#![expect(
    clippy::result_large_err,
    reason = "an error here is the finished HTTP response, built once per request"
)]

mod routes;
mod tls;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use self::routes::route;
pub(crate) use self::tls::make_tls;
use super::resources::Resource;
use super::store::StoreError;
use super::{Fault, Shared, lock};

/// Returned by the service to make hyper close the connection (the `DropConnection` fault).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        if shared.in_outage() {
            // Closed before a byte is read: the client's request fails as against a dead server.
            shared
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let mut shutdown = shutdown.clone();
        // `close_connections` / `outage`: this connection ends, whatever it is serving.
        let mut cut = shared.cut.subscribe();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            // HTTP/1.1 only, as the product's clients speak (no h2 in the binaries, issue 19).
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acc) => {
                    let Ok(tls) = acc.accept(stream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = builder.serve_connection(TokioIo::new(tls), svc) => {}
                        _ = shutdown.changed() => {}
                        _ = cut.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = builder.serve_connection(TokioIo::new(stream), svc) => {}
                        _ = shutdown.changed() => {}
                        _ = cut.changed() => {}
                    }
                }
            }
        });
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code.as_u16()});
    json_response(code, &body)
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn store_error(e: StoreError, res: &Resource, name: &str) -> Response<Body> {
    match e {
        StoreError::NotFound => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{} \"{name}\" not found", res.plural),
        ),
        StoreError::AlreadyExists => status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", res.plural),
        ),
        StoreError::Conflict => status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                res.plural
            ),
        ),
        StoreError::Invalid(m) => status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &m),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first matching fault rule's fault, consuming one of its uses.
fn take_fault(shared: &Shared, path: &str) -> Vec<Fault> {
    let mut rules = lock(&shared.faults);
    let mut out = Vec::new();
    let now = std::time::Instant::now();
    for r in rules.iter_mut() {
        if r.remaining == Some(0)
            || r.until.is_some_and(|t| now >= t)
            || r.path_contains
                .as_deref()
                .is_some_and(|p| !path.contains(p))
        {
            continue;
        }
        if let Some(n) = r.remaining.as_mut() {
            *n -= 1;
        }
        let latency = matches!(r.fault, Fault::Latency(_));
        out.push(r.fault.clone());
        // Latency combines with one following fault; any other fault ends the search.
        if !latency {
            break;
        }
    }
    out
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let path_q = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    {
        let mut log = lock(&shared.requests);
        if log.len() < 1_000_000 {
            log.push(format!("{} {path_q}", req.method()));
        }
    }
    for fault in take_fault(&shared, &path_q) {
        match fault {
            Fault::Latency(d) => tokio::time::sleep(d).await,
            Fault::DropConnection => return Err(Dropped),
            Fault::InternalError => {
                return Ok(status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "Internal error occurred: injected fault",
                ));
            }
            Fault::Expired => {
                let q = parse_query(req.uri().query());
                let message = "too old resource version: injected fault";
                if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
                    return Ok(watch::expired(message));
                }
                return Ok(status(StatusCode::GONE, "Expired", message));
            }
            Fault::Unauthorized => {
                return Ok(status(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Unauthorized",
                ));
            }
            Fault::TooManyRequests { retry_after_secs } => {
                // As kube-apiserver answers: the wait in the header and in the Status details.
                let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": "Too many requests, please try again later.",
                    "reason": "TooManyRequests", "details": {"retryAfterSeconds": retry_after_secs},
                    "code": 429});
                let mut r = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                return Ok(r);
            }
        }
    }
    if let Some(tokens) = lock(&shared.tokens).as_ref() {
        let got = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        if !got.is_some_and(|t| tokens.valid.iter().any(|v| v == t)) {
            return Ok(status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
            ));
        }
    }
    Ok(route(shared, req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = parse_query(Some(
            "fieldSelector=spec.nodeName%3Dn1&labelSelector=app+in+%28a%2Cb%29&watch=true&x=%",
        ));
        assert_eq!(q["fieldSelector"], "spec.nodeName=n1");
        assert_eq!(q["labelSelector"], "app in (a,b)");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "%");
    }
}
