//! The resources the fake API server serves, their discovery documents, the conversion between
//! `core/v1` and `events.k8s.io/v1` Events, and the server-side `Table` rendering kubectl asks for.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// One served resource.
#[derive(Debug)]
pub(crate) struct Resource {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) short_names: &'static [&'static str],
    /// Objects of resources sharing a storage are the same objects (events in two API groups).
    pub(crate) storage: &'static str,
}

impl Resource {
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The apiVersion objects are stored in.
    pub(crate) fn storage_api_version(&self) -> &'static str {
        match self.storage {
            "events" => "v1",
            _ if self.group.is_empty() => "v1",
            "leases" => "coordination.k8s.io/v1",
            _ => "v1",
        }
    }

    pub(crate) fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io"
    }

    /// Converts a stored object to how this resource shows it.
    pub(crate) fn view_of(&self, stored: &Value) -> Value {
        if self.is_events_v1() {
            core_event_to_v1(stored)
        } else {
            stored.clone()
        }
    }

    /// Converts an object as this resource shows it to the stored form.
    pub(crate) fn stored_form(&self, view: Value) -> Value {
        if self.is_events_v1() {
            v1_event_to_core(view)
        } else {
            view
        }
    }
}

pub(crate) static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        storage: "pods",
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        storage: "nodes",
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        storage: "events",
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        storage: "namespaces",
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        storage: "events",
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        storage: "leases",
    },
];

pub(crate) fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource for a stored object's `apiVersion` and `kind` (world files, test upserts).
pub(crate) fn for_object(obj: &Value) -> Option<&'static Resource> {
    let kind = obj.get("kind")?.as_str()?;
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
        .or_else(|| RESOURCES.iter().find(|r| r.kind == kind))
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/{group}/{version}` discovery.
pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in rs {
        let mut entry = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": VERBS, "storageVersionHash": format!("fake-{}", r.plural),
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if r.plural == "pods" {
            entry["categories"] = json!(["all"]);
        }
        resources.push(entry);
        if matches!(r.plural, "pods" | "nodes") {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.plural == "nodes" {
            resources.push(json!({"name": "nodes/proxy", "singularName": "", "namespaced": false, "kind": "NodeProxyOptions", "verbs": ["create", "delete", "get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

pub(crate) fn group_list() -> Value {
    let mut groups: Vec<Value> = Vec::new();
    for g in ["events.k8s.io", "coordination.k8s.io"] {
        let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
        groups.push(json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv}));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `events.k8s.io/v1` view of a stored `core/v1` Event.
pub(crate) fn core_event_to_v1(core: &Value) -> Value {
    let mut v = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": core.get("metadata").cloned().unwrap_or(json!({}))});
    let copy = |v: &mut Value, from: &str, to: &str| {
        if let Some(x) = core.get(from).filter(|x| !x.is_null()) {
            v[to] = x.clone();
        }
    };
    copy(&mut v, "involvedObject", "regarding");
    copy(&mut v, "related", "related");
    copy(&mut v, "message", "note");
    copy(&mut v, "reason", "reason");
    copy(&mut v, "type", "type");
    copy(&mut v, "action", "action");
    copy(&mut v, "eventTime", "eventTime");
    copy(&mut v, "series", "series");
    copy(&mut v, "reportingComponent", "reportingController");
    copy(&mut v, "reportingInstance", "reportingInstance");
    copy(&mut v, "source", "deprecatedSource");
    copy(&mut v, "firstTimestamp", "deprecatedFirstTimestamp");
    copy(&mut v, "lastTimestamp", "deprecatedLastTimestamp");
    copy(&mut v, "count", "deprecatedCount");
    v
}

/// Stored `core/v1` form of an `events.k8s.io/v1` Event.
pub(crate) fn v1_event_to_core(ev: Value) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "Event", "metadata": ev.get("metadata").cloned().unwrap_or(json!({}))});
    let copy = |v: &mut Value, from: &str, to: &str| {
        if let Some(x) = ev.get(from).filter(|x| !x.is_null()) {
            v[to] = x.clone();
        }
    };
    copy(&mut v, "regarding", "involvedObject");
    copy(&mut v, "related", "related");
    copy(&mut v, "note", "message");
    copy(&mut v, "reason", "reason");
    copy(&mut v, "type", "type");
    copy(&mut v, "action", "action");
    copy(&mut v, "eventTime", "eventTime");
    copy(&mut v, "series", "series");
    copy(&mut v, "reportingController", "reportingComponent");
    copy(&mut v, "reportingInstance", "reportingInstance");
    copy(&mut v, "deprecatedSource", "source");
    copy(&mut v, "deprecatedFirstTimestamp", "firstTimestamp");
    copy(&mut v, "deprecatedLastTimestamp", "lastTimestamp");
    copy(&mut v, "deprecatedCount", "count");
    if v.get("source").is_none()
        && let Some(c) = ev.get("reportingController")
    {
        v["source"] = json!({"component": c, "host": ev.get("reportingInstance").cloned().unwrap_or(Value::Null)});
    }
    v
}

/// `kubectl`-style short age ("5s", "3m", "2h", "4d").
pub(crate) fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
        return "<unknown>".into();
    };
    let d = SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    match d {
        0..120 => format!("{d}s"),
        120..7200 => format!("{}m", d / 60),
        7200..172_800 => format!("{}h", d / 3600),
        _ => format!("{}d", d / 86_400),
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": name, "priority": priority})
}

/// Column definitions and row cells of the server-side table for one object.
pub(crate) fn table_columns(res: &Resource) -> Vec<Value> {
    match (res.group, res.plural) {
        ("", "pods") => vec![
            col("Name", "string", 0),
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
            col("Nominated Node", "string", 1),
            col("Readiness Gates", "string", 1),
        ],
        ("", "nodes") => vec![
            col("Name", "string", 0),
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
            col("Internal-IP", "string", 1),
            col("External-IP", "string", 1),
            col("OS-Image", "string", 1),
            col("Kernel-Version", "string", 1),
            col("Container-Runtime", "string", 1),
        ],
        (_, "events") => vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
            col("Subobject", "string", 1),
            col("Source", "string", 1),
            col("First Seen", "string", 1),
            col("Count", "integer", 1),
            col("Name", "string", 1),
        ],
        _ => vec![col("Name", "string", 0), col("Age", "string", 0)],
    }
}

pub(crate) fn table_cells(res: &Resource, stored: &Value) -> Vec<Value> {
    let name = s(stored, &["metadata", "name"]);
    let created = stored
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str);
    match (res.group, res.plural) {
        ("", "pods") => {
            let statuses = stored
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = stored
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(statuses.len(), Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum();
            let mut status = s(stored, &["status", "phase"]).to_owned();
            if status.is_empty() {
                status = "Pending".into();
            }
            for c in &statuses {
                let waiting = s(c, &["state", "waiting", "reason"]);
                let terminated = s(c, &["state", "terminated", "reason"]);
                if !waiting.is_empty() {
                    status = waiting.to_owned();
                } else if !terminated.is_empty() {
                    status = terminated.to_owned();
                }
            }
            if stored.pointer("/metadata/deletionTimestamp").is_some() {
                status = "Terminating".into();
            }
            let ip = s(stored, &["status", "podIP"]);
            let node = s(stored, &["spec", "nodeName"]);
            vec![
                json!(name),
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                json!(age(created)),
                json!(if ip.is_empty() { "<none>" } else { ip }),
                json!(if node.is_empty() { "<none>" } else { node }),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        ("", "nodes") => {
            let ready = stored
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| s(c, &["type"]) == "Ready"))
                .map(|c| s(c, &["status"]) == "True");
            let status = match ready {
                Some(true) => "Ready",
                Some(false) => "NotReady",
                None => "Unknown",
            };
            let mut roles: Vec<String> = stored
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            roles.sort();
            let addr = |ty: &str| -> String {
                stored
                    .pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|x| s(x, &["type"]) == ty))
                    .map_or("<none>".into(), |x| s(x, &["address"]).to_owned())
            };
            vec![
                json!(name),
                json!(status),
                json!(if roles.is_empty() {
                    "<none>".into()
                } else {
                    roles.join(",")
                }),
                json!(age(created)),
                json!(s(stored, &["status", "nodeInfo", "kubeletVersion"])),
                json!(addr("InternalIP")),
                json!(addr("ExternalIP")),
                json!(s(stored, &["status", "nodeInfo", "osImage"])),
                json!(s(stored, &["status", "nodeInfo", "kernelVersion"])),
                json!(s(
                    stored,
                    &["status", "nodeInfo", "containerRuntimeVersion"]
                )),
            ]
        }
        (_, "events") => {
            let last = [
                stored.pointer("/series/lastObservedTime"),
                stored.get("lastTimestamp"),
                stored.get("eventTime"),
                stored.pointer("/metadata/creationTimestamp"),
            ]
            .into_iter()
            .flatten()
            .find_map(Value::as_str);
            let first = stored
                .get("firstTimestamp")
                .and_then(Value::as_str)
                .or(last);
            let obj = format!(
                "{}/{}",
                s(stored, &["involvedObject", "kind"]).to_lowercase(),
                s(stored, &["involvedObject", "name"])
            );
            let count = stored
                .pointer("/series/count")
                .or_else(|| stored.get("count"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let source = [
                s(stored, &["source", "component"]),
                s(stored, &["reportingComponent"]),
            ]
            .into_iter()
            .find(|x| !x.is_empty())
            .unwrap_or("");
            vec![
                json!(age(last)),
                json!(s(stored, &["type"])),
                json!(s(stored, &["reason"])),
                json!(obj),
                json!(s(stored, &["message"])),
                json!(s(stored, &["involvedObject", "fieldPath"])),
                json!(source),
                json!(age(first)),
                json!(count),
                json!(name),
            ]
        }
        _ => vec![json!(name), json!(age(created))],
    }
}

/// A `meta.k8s.io/v1` Table of `objects` (stored form), with rows carrying what `includeObject` asks.
pub(crate) fn table(res: &Resource, objects: &[&Value], include: &str, list_meta: Value) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include {
                "None" => Value::Null,
                "Object" => res.view_of(o),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))}),
            };
            json!({"cells": table_cells(res, o), "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": table_columns(res), "rows": rows})
}
