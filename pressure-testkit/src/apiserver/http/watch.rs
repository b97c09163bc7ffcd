//! List and watch: selectors, paging, server-side tables, bookmarks and `410 Expired`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{json_response, status};
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::select::{FieldSelector, LabelSelector};
use crate::apiserver::store::{Change, ChangeKind, meta_str};
use crate::apiserver::{Shared, lock};

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

pub(super) fn list(
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

pub(super) fn watch(
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
                    let message = format!("too old resource version: {from} ({})", store.floor);
                    drop(store);
                    return expired(&message);
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

/// A watch answered with one in-stream `ERROR` event, `410 Expired`, and ended: what a real API
/// server sends for a resourceVersion older than its change log.
pub(super) fn expired(message: &str) -> Response<Body> {
    let st = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Expired", "code": 410});
    stream_response(Body::from(watch_line("ERROR", &st)))
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
