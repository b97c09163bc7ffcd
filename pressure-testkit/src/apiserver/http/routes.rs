//! Routing: discovery, the kubelet Summary API, and the get / create / update / patch / delete
//! handlers of every resource (list and watch are in `watch`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::watch::{list, watch};
use super::{json_response, parse_query, status, store_error};
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::select::strategic_merge;
use crate::apiserver::store::{StoreError, meta_str};
use crate::apiserver::{Shared, lock, summary};

pub(super) async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
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
        ["api", "v1", "nodes", node, "proxy", "stats", "summary"] => {
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
