//! The kubelet Summary API (`/stats/summary`) of one node, computed from the world's pods and the
//! usage tests set. Shape follows `stats_summary_1_35.json` (kubelet v1.35).

use serde_json::{Value, json};

use std::sync::Arc;

use super::store::{ContainerUsage, Store, now_rfc3339};

/// Bytes of a memory quantity; just enough for world fixtures (`Ki`..`Ei`, `k`..`E`, plain).
pub(crate) fn quantity_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "m" => 1e-3,
        _ => return None,
    };
    Some((n * mult) as u64)
}

const DEFAULT_WORKING_SET: u64 = 16 << 20;

fn pod_is_running(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

fn mem(time: &str, u: &ContainerUsage, limit: Option<u64>) -> Value {
    let mut m = json!({
        "time": time, "usageBytes": u.usage_bytes, "workingSetBytes": u.working_set_bytes,
        "rssBytes": u.rss_bytes, "pageFaults": 0, "majorPageFaults": 0,
    });
    if let Some(l) = limit {
        m["availableBytes"] = json!(l.saturating_sub(u.working_set_bytes));
    }
    m
}

fn cpu(time: &str, nano: u64) -> Value {
    json!({"time": time, "usageNanoCores": nano, "usageCoreNanoSeconds": nano.saturating_mul(60)})
}

/// Namespace, name, the pod, and the usage set for each of its containers.
type SnapshotPod = (String, String, Arc<Value>, Vec<Option<ContainerUsage>>);

/// What the summary of one node is computed from, copied out of the store so the JSON is built
/// without holding the store lock (parallel summary requests then run in parallel).
pub(crate) struct NodeSnapshot {
    node: Arc<Value>,
    pods: Vec<SnapshotPod>,
}

impl NodeSnapshot {
    /// A snapshot from parts: the Node object and, per pod, its namespace, name, object and the usage
    /// of each of its containers (in `spec.containers` order). The kubelet stand-ins of
    /// [`crate::kube`] build theirs from the pods they were given.
    pub(crate) fn new(
        node: Value,
        pods: Vec<(String, String, Value, Vec<Option<ContainerUsage>>)>,
    ) -> Self {
        NodeSnapshot {
            node: Arc::new(node),
            pods: pods
                .into_iter()
                .map(|(ns, name, pod, usages)| (ns, name, Arc::new(pod), usages))
                .collect(),
        }
    }
}

/// `None` when the node does not exist.
pub(crate) fn snapshot(store: &Store, node: &str) -> Option<NodeSnapshot> {
    let node_obj = store
        .objects
        .get(&("nodes", String::new(), node.to_owned()))?
        .clone();
    let mut pods = Vec::new();
    for key in store.node_pods.get(node).into_iter().flatten() {
        let Some(pod) = store.objects.get(key) else {
            continue;
        };
        if !pod_is_running(pod) {
            continue;
        }
        let usages = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                store
                    .usage
                    .get(&(key.1.clone(), key.2.clone(), cname.to_owned()))
                    .copied()
            })
            .collect();
        pods.push((key.1.clone(), key.2.clone(), pod.clone(), usages));
    }
    Some(NodeSnapshot {
        node: node_obj,
        pods,
    })
}

/// The Summary API document of a snapshot.
pub(crate) fn render(snap: &NodeSnapshot, node: &str) -> Value {
    let now = now_rfc3339();
    let node_obj = &snap.node;
    let capacity = node_obj
        .pointer("/status/capacity/memory")
        .and_then(Value::as_str)
        .and_then(quantity_bytes)
        .unwrap_or(8 << 30);
    let mut pods = Vec::new();
    let (mut node_ws, mut node_usage, mut node_rss, mut node_cpu) = (0u64, 0u64, 0u64, 0u64);
    for (ns, name, pod, usages) in &snap.pods {
        let mut containers = Vec::new();
        let mut total = ContainerUsage {
            working_set_bytes: 0,
            usage_bytes: 0,
            rss_bytes: 0,
            cpu_nano_cores: 0,
        };
        let specs = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for (c, usage) in specs.zip(usages) {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let u = usage.unwrap_or_else(|| ContainerUsage::working_set(DEFAULT_WORKING_SET));
            let limit = c
                .pointer("/resources/limits/memory")
                .and_then(Value::as_str)
                .and_then(quantity_bytes);
            total.working_set_bytes += u.working_set_bytes;
            total.usage_bytes += u.usage_bytes;
            total.rss_bytes += u.rss_bytes;
            total.cpu_nano_cores += u.cpu_nano_cores;
            containers.push(json!({
                "name": cname, "startTime": pod.pointer("/status/startTime").cloned().unwrap_or(json!(now)),
                "cpu": cpu(&now, u.cpu_nano_cores), "memory": mem(&now, &u, limit),
                "swap": {"time": now, "swapAvailableBytes": 0, "swapUsageBytes": 0},
            }));
        }
        node_ws += total.working_set_bytes;
        node_usage += total.usage_bytes;
        node_rss += total.rss_bytes;
        node_cpu += total.cpu_nano_cores;
        pods.push(json!({
            "podRef": {"name": name, "namespace": ns, "uid": pod.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)},
            "startTime": pod.pointer("/status/startTime").cloned().unwrap_or(json!(now)),
            "containers": containers,
            "cpu": cpu(&now, total.cpu_nano_cores),
            "memory": mem(&now, &total, None),
            "swap": {"time": now, "swapUsageBytes": 0},
        }));
    }
    let node_usage_total = ContainerUsage {
        working_set_bytes: node_ws,
        usage_bytes: node_usage,
        rss_bytes: node_rss,
        cpu_nano_cores: node_cpu,
    };
    json!({
        "node": {
            "nodeName": node,
            "startTime": node_obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or(json!(now)),
            "cpu": cpu(&now, node_cpu),
            "memory": mem(&now, &node_usage_total, Some(capacity)),
            "systemContainers": [],
        },
        "pods": pods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_for_fixtures() {
        assert_eq!(quantity_bytes("170Mi"), Some(170 << 20));
        assert_eq!(quantity_bytes("16374188Ki"), Some(16_374_188 * 1024));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("123"), Some(123));
        assert_eq!(quantity_bytes("1Xi"), None);
    }
}
