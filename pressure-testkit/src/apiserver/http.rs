//! HTTP side of the fake API server: the accept loop (plain or TLS), faults, authentication, routing
//! and the list / watch / get / create / update / patch / delete handlers.
#![expect(
    clippy::result_large_err,
    reason = "an error here is the finished HTTP response, built once per request"
)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::resources::{self, Resource};
use super::select::{FieldSelector, LabelSelector, strategic_merge};
use super::store::{Change, ChangeKind, StoreError, meta_str};
use super::{FakeApiError, Fault, Shared, lock, summary};

/// Makes a CA and a server certificate for localhost / 127.0.0.1; returns the TLS config and CA PEM.
pub(crate) fn make_tls() -> Result<(Arc<rustls::ServerConfig>, String), FakeApiError> {
    let e = |e: &dyn std::fmt::Display| FakeApiError::Tls(e.to_string());
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|x| e(&x))?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-apiserver-ca");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().map_err(|x| e(&x))?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|x| e(&x))?;
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|x| e(&x))?;
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fake-apiserver");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate().map_err(|x| e(&x))?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(|x| e(&x))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|x| e(&x))?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .map_err(|x| e(&x))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca.pem()))
}

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
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match acceptor {
                Some(acc) => {
                    let Ok(tls) = acc.accept(stream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = builder.serve_connection(TokioIo::new(tls), svc) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = builder.serve_connection(TokioIo::new(stream), svc) => {}
                        _ = shutdown.changed() => {}
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
    for r in rules.iter_mut() {
        if r.remaining == Some(0)
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
            Fault::Unauthorized => {
                return Ok(status(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Unauthorized",
                ));
            }
            Fault::TooManyRequests { retry_after_secs } => {
                let mut r = status(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                );
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

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = parse_query(req.uri().query());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "35", "gitVersion": "v1.35.0-fake", "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["healthz" | "readyz" | "livez"] => Response::new(Body::from("ok")),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        ),
        ["apis"] => json_response(StatusCode::OK, &resources::group_list()),
        ["api", "v1"] => json_response(
            StatusCode::OK,
            &resources::resource_list("", "v1").unwrap_or_default(),
        ),
        ["apis", g, v] => match resources::resource_list(g, v) {
            Some(l) => json_response(StatusCode::OK, &l),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            ),
        },
        ["api", "v1", "nodes", node, "proxy", "stats", "summary"]
        | ["fake-kubelet", node, "stats", "summary"] => {
            let snap = summary::snapshot(&lock(&shared.store), node);
            match snap {
                Some(s) => json_response(StatusCode::OK, &summary::render(&s, node)),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("nodes \"{node}\" not found"),
                ),
            }
        }
        ["api", "v1", rest @ ..] => {
            resource_request(
                shared,
                req,
                "",
                "v1",
                rest.iter().map(|s| s.to_string()).collect(),
                query,
            )
            .await
        }
        ["apis", g, v, rest @ ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            resource_request(
                shared,
                req,
                &g,
                &v,
                rest.iter().map(|s| s.to_string()).collect(),
                query,
            )
            .await
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

/// A resolved request path: resource, namespace, name, subresource.
type Target = (
    &'static Resource,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Resolves `[namespaces/{ns}/]{plural}[/{name}[/{sub}]]`.
fn resolve(group: &str, version: &str, rest: &[String]) -> Option<Target> {
    let s: Vec<&str> = rest.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty()
                || !tail.is_empty()
                || resources::find(group, version, plural).is_some() =>
        {
            let res = resources::find(group, version, plural)?;
            if !res.namespaced {
                return None;
            }
            match tail {
                [] => Some((res, Some(ns.to_string()), None, None)),
                [name] => Some((res, Some(ns.to_string()), Some(name.to_string()), None)),
                [name, sub] => Some((
                    res,
                    Some(ns.to_string()),
                    Some(name.to_string()),
                    Some(sub.to_string()),
                )),
                _ => None,
            }
        }
        [plural] => Some((resources::find(group, version, plural)?, None, None, None)),
        [plural, name] => Some((
            resources::find(group, version, plural)?,
            None,
            Some(name.to_string()),
            None,
        )),
        [plural, name, sub] => Some((
            resources::find(group, version, plural)?,
            None,
            Some(name.to_string()),
            Some(sub.to_string()),
        )),
        _ => None,
    }
}

fn wants_table(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

async fn resource_request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    group: &str,
    version: &str,
    rest: Vec<String>,
    query: HashMap<String, String>,
) -> Response<Body> {
    let Some((res, ns, name, sub)) = resolve(group, version, &rest) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if let Some(sub) = &sub
        && sub != "status"
    {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("subresource {sub} is not served"),
        );
    }
    let method = req.method().clone();
    let table = wants_table(&req);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "reading the request body failed",
            );
        }
    };
    let ns_key = if res.namespaced { ns.clone() } else { None };
    match (method, name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(shared, res, ns_key, &query, table)
        }
        (Method::GET, None) => list(&shared, res, ns_key, &query, table),
        (Method::GET, Some(name)) => {
            let key = (res.storage, ns_key.unwrap_or_default(), name.clone());
            match lock(&shared.store).objects.get(&key) {
                Some(o) if table => json_response(
                    StatusCode::OK,
                    &resources::table(
                        res,
                        &[o],
                        query
                            .get("includeObject")
                            .map_or("Metadata", String::as_str),
                        json!({"resourceVersion": meta_str(o, "resourceVersion")}),
                    ),
                ),
                Some(o) => json_response(StatusCode::OK, &res.view_of(o)),
                None => store_error(StoreError::NotFound, res, &name),
            }
        }
        (Method::POST, None) => {
            let obj: Value = match parse_body(&body, &content_type) {
                Ok(v) => v,
                Err(r) => return r,
            };
            if res.namespaced && ns.is_none() {
                return status(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "create needs a namespace",
                );
            }
            if let Some(body_ns) = meta_str(&obj, "namespace")
                && Some(body_ns) != ns.as_deref()
                && res.namespaced
            {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                );
            }
            let name = meta_str(&obj, "name").unwrap_or_default().to_owned();
            if query.contains_key("dryRun") {
                return json_response(StatusCode::CREATED, &obj);
            }
            let stored = res.stored_form(obj);
            let r = lock(&shared.store).create(res, ns.as_deref().unwrap_or(""), stored);
            match r {
                Ok(o) => json_response(StatusCode::CREATED, &res.view_of(&o)),
                Err(e) => store_error(e, res, &name),
            }
        }
        (Method::PUT, Some(name)) => {
            let obj: Value = match parse_body(&body, &content_type) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let key = (res.storage, ns_key.unwrap_or_default(), name.clone());
            let stored = res.stored_form(obj);
            let r = lock(&shared.store).update(key, stored);
            match r {
                Ok(o) => json_response(StatusCode::OK, &res.view_of(&o)),
                Err(e) => store_error(e, res, &name),
            }
        }
        (Method::PATCH, Some(name)) => {
            let key = (res.storage, ns_key.unwrap_or_default(), name.clone());
            let mut store = lock(&shared.store);
            let Some(current) = store.objects.get(&key).cloned() else {
                return store_error(StoreError::NotFound, res, &name);
            };
            let mut doc = res.view_of(&current);
            let patch_result = apply_patch(&mut doc, &body, &content_type);
            if let Err(r) = patch_result {
                return r;
            }
            let patched_rv = meta_str(&doc, "resourceVersion").map(str::to_owned);
            if patched_rv
                .as_deref()
                .is_some_and(|rv| Some(rv) != meta_str(&current, "resourceVersion"))
            {
                return store_error(StoreError::Conflict, res, &name);
            }
            let r = store.update(key, res.stored_form(doc));
            match r {
                Ok(o) => json_response(StatusCode::OK, &res.view_of(&o)),
                Err(e) => store_error(e, res, &name),
            }
        }
        (Method::DELETE, Some(name)) => {
            let key = (res.storage, ns_key.unwrap_or_default(), name.clone());
            let r = lock(&shared.store).delete(&key);
            match r {
                Ok(o) => json_response(StatusCode::OK, &res.view_of(&o)),
                Err(e) => store_error(e, res, &name),
            }
        }
        _ => status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

fn parse_body(body: &[u8], content_type: &str) -> Result<Value, Response<Body>> {
    let r = if content_type.contains("yaml") {
        serde_yaml::from_slice(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    r.map_err(|e| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the body of the request was in an unknown format: {e}"),
        )
    })
}

fn apply_patch(doc: &mut Value, body: &[u8], content_type: &str) -> Result<(), Response<Body>> {
    let bad = |m: String| status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &m);
    if content_type.starts_with("application/json-patch+json") {
        let ops: json_patch::Patch =
            serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON patch: {e}")))?;
        json_patch::patch(doc, &ops)
            .map_err(|e| bad(format!("the JSON patch could not be applied: {e}")))
    } else if content_type.starts_with("application/merge-patch+json") {
        let p: Value =
            serde_json::from_slice(body).map_err(|e| bad(format!("invalid merge patch: {e}")))?;
        json_patch::merge(doc, &p);
        Ok(())
    } else if content_type.starts_with("application/strategic-merge-patch+json") {
        let p: Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("invalid strategic merge patch: {e}")))?;
        strategic_merge(doc, &p);
        Ok(())
    } else if content_type.starts_with("application/apply-patch+yaml") {
        // Server-side apply without field ownership: the applied config is merged in.
        let p: Value =
            serde_yaml::from_slice(body).map_err(|e| bad(format!("invalid apply patch: {e}")))?;
        strategic_merge(doc, &p);
        Ok(())
    } else {
        Err(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type}"
            ),
        ))
    }
}

struct Filter {
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn from_query(ns: Option<String>, q: &HashMap<String, String>) -> Result<Self, Response<Body>> {
        let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| status(StatusCode::BAD_REQUEST, "BadRequest", &e))?;
        let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
            .map_err(|e| status(StatusCode::BAD_REQUEST, "BadRequest", &e))?;
        Ok(Self { ns, labels, fields })
    }

    /// `view` is the object as the requested resource shows it (field paths differ for events).
    fn matches(&self, res: &Resource, stored: &Value) -> bool {
        if let Some(ns) = &self.ns
            && meta_str(stored, "namespace") != Some(ns.as_str())
        {
            return false;
        }
        if !self.labels.matches(stored) {
            return false;
        }
        if res.is_events_v1() {
            self.fields.matches(&res.view_of(stored))
        } else {
            self.fields.matches(stored)
        }
    }
}

fn list(
    shared: &Shared,
    res: &'static Resource,
    ns: Option<String>,
    q: &HashMap<String, String>,
    table: bool,
) -> Response<Body> {
    let filter = match Filter::from_query(ns, q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let after = q.get("continue").filter(|c| !c.is_empty()).cloned();
    let store = lock(&shared.store);
    let rv = store.current_rv();
    let matching: Vec<(String, &Value)> = store
        .objects
        .iter()
        .filter(|(k, o)| k.0 == res.storage && filter.matches(res, o))
        .map(|(k, o)| (format!("{}/{}", k.1, k.2), &**o))
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k.as_str() > a.as_str()))
        .collect();
    let page: Vec<&(String, &Value)> = matching.iter().take(limit).collect();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if matching.len() > page.len()
        && let Some((last, _)) = page.last()
    {
        meta["continue"] = json!(last);
        meta["remainingItemCount"] = json!(matching.len() - page.len());
    }
    let objects: Vec<&Value> = page.iter().map(|(_, o)| *o).collect();
    if table {
        return json_response(
            StatusCode::OK,
            &resources::table(
                res,
                &objects,
                q.get("includeObject").map_or("Metadata", String::as_str),
                meta,
            ),
        );
    }
    let items: Vec<Value> = objects.iter().map(|o| res.view_of(o)).collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": meta, "items": items}),
    )
}

fn watch_line(kind: &str, object: &Value) -> bytes::Bytes {
    let mut v = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    v.push(b'\n');
    v.into()
}

fn watch(
    shared: Arc<Shared>,
    res: &'static Resource,
    ns: Option<String>,
    q: &HashMap<String, String>,
    table: bool,
) -> Response<Body> {
    let filter = match Filter::from_query(ns, q) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let include = q
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into());
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let send_initial = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let from: Option<u64> = q
        .get("resourceVersion")
        .filter(|r| !r.is_empty() && *r != "0")
        .and_then(|r| r.parse().ok());
    let render = move |kind: ChangeKind, o: &Value| -> bytes::Bytes {
        if table {
            watch_line(
                kind.as_str(),
                &resources::table(
                    res,
                    &[o],
                    &include,
                    json!({"resourceVersion": meta_str(o, "resourceVersion")}),
                ),
            )
        } else {
            watch_line(kind.as_str(), &res.view_of(o))
        }
    };
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, Infallible>>(256);
    let mut initial: Vec<bytes::Bytes> = Vec::new();
    let (mut sub, start_rv) = {
        let store = lock(&shared.store);
        let sub = store.tx.subscribe();
        let rv = store.current_rv();
        match from {
            Some(from) if !send_initial => match store.changes_since(res.storage, from) {
                Some(changes) => {
                    initial.extend(
                        changes
                            .iter()
                            .filter(|c| filter.matches(res, &c.object))
                            .map(|c| render(c.kind, &c.object)),
                    );
                }
                None => {
                    let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": format!("too old resource version: {from} ({})", store.floor), "reason": "Expired", "code": 410});
                    initial.push(watch_line("ERROR", &st));
                    drop(store);
                    let body = Body::from(initial.concat());
                    return stream_response(body);
                }
            },
            _ => {
                for (k, o) in &store.objects {
                    if k.0 == res.storage && filter.matches(res, o) {
                        initial.push(render(ChangeKind::Added, o));
                    }
                }
                if send_initial {
                    let bm = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                    initial.push(watch_line("BOOKMARK", &bm));
                }
            }
        }
        (sub, rv)
    };
    let interval = shared.bookmark_interval;
    let shared2 = shared.clone();
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            let line = tokio::select! {
                change = sub.recv() => match change {
                    Ok(c) => {
                        let c: Arc<Change> = c;
                        if c.storage != res.storage || c.rv <= from.unwrap_or(start_rv) || !filter.matches(res, &c.object) { continue; }
                        render(c.kind, &c.object)
                    }
                    // Too slow a reader: end the stream, the client re-watches from its last version.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let rv = lock(&shared2.store).current_rv();
                    watch_line("BOOKMARK", &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string()}}))
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
                _ = tx.closed() => return,
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    stream_response(Body::from_stream(ReceiverStream::new(rx)))
}

fn stream_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
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
