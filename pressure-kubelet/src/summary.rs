//! The kubelet Summary API (`/stats/summary`), read through the API server's node proxy or from the
//! node-local kubelet, and turned into engine [`Sample`]s.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::BodyExt as _;
use kube::Client;
use pressure_core::{Psi, Reading, Sample, Target};
use serde::Deserialize;

use crate::KubeletError;
use crate::pods::{PodInfo, memory_limit, target_for};

/// `/stats/summary`: node and pod statistics (kubelet `stats/v1alpha1`). Lenient: unknown fields are
/// ignored and missing ones default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Its pods.
    pub pods: Vec<PodStats>,
}

/// Node-level statistics.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStats {
    /// Node name.
    pub node_name: String,
    /// Node memory.
    pub memory: Option<SummaryMemory>,
}

/// Statistics of one pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStats {
    /// Which pod.
    pub pod_ref: PodReference,
    /// Its containers.
    pub containers: Vec<ContainerStats>,
    /// Pod-level memory (the pod cgroup).
    pub memory: Option<SummaryMemory>,
}

/// Pod identity in a summary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodReference {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// UID (static pods show the config hash here).
    pub uid: String,
}

/// Statistics of one container.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStats {
    /// Container name.
    pub name: String,
    /// Memory.
    pub memory: Option<SummaryMemory>,
}

/// Memory statistics of a container, pod or node in a kubelet Summary (named apart from
/// `pressure_cgroup::MemoryStats`, the cgroup files' view).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SummaryMemory {
    /// Limit minus working set, when a limit is set.
    pub available_bytes: Option<u64>,
    /// Total usage including cache.
    pub usage_bytes: Option<u64>,
    /// Working set.
    pub working_set_bytes: Option<u64>,
    /// RSS.
    pub rss_bytes: Option<u64>,
    /// Pressure stall information (kubelet 1.34+ with cgroup v2).
    pub psi: Option<PsiStats>,
}

/// `psi` of a summary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PsiStats {
    /// `full` stalls.
    pub full: Option<PsiData>,
    /// `some` stalls.
    pub some: Option<PsiData>,
}

/// One PSI line.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct PsiData {
    /// Total stall time in microseconds.
    pub total: u64,
    /// 10 s average, percent.
    pub avg10: f64,
    /// 60 s average, percent.
    pub avg60: f64,
}

impl Summary {
    /// Parses a summary document.
    pub fn parse(node: &str, text: &str) -> Result<Self, KubeletError> {
        serde_json::from_str(text).map_err(|source| KubeletError::Summary {
            node: node.to_owned(),
            source,
        })
    }

    /// One sample per container with memory statistics. `pod_of(uid)` supplies the pod from a cache
    /// (names, IP, annotations, container IDs, limits); without it the summary's own names are used and
    /// the limit is `availableBytes + workingSetBytes` when the kubelet reports it.
    pub fn samples(
        &self,
        timestamp: SystemTime,
        pod_of: impl Fn(&str) -> Option<Arc<PodInfo>>,
    ) -> Vec<Sample> {
        let mut out = Vec::new();
        for p in &self.pods {
            let pod = pod_of(&p.pod_ref.uid);
            for c in &p.containers {
                let Some(m) = &c.memory else { continue };
                let Some(ws) = m.working_set_bytes.or(m.usage_bytes) else {
                    continue;
                };
                let target = match &pod {
                    Some(pod) => target_for(pod, Some(&c.name)),
                    None => Target {
                        namespace: Some(p.pod_ref.namespace.as_str().into()),
                        pod_name: Some(p.pod_ref.name.as_str().into()),
                        pod_uid: Some(Arc::<str>::from(p.pod_ref.uid.as_str()))
                            .filter(|u| !u.is_empty()),
                        container_name: Some(c.name.as_str().into()),
                        node_name: Some(Arc::<str>::from(self.node.node_name.as_str()))
                            .filter(|n| !n.is_empty()),
                        ..Target::default()
                    },
                };
                let limit = pod
                    .as_ref()
                    .and_then(|pod| memory_limit(pod, &c.name))
                    .or_else(|| m.available_bytes.map(|a| a + ws));
                let psi = m.psi.as_ref().map(|psi| {
                    let some = psi.some.unwrap_or_default();
                    let full = psi.full.unwrap_or_default();
                    Psi {
                        some_avg10: some.avg10,
                        some_avg60: some.avg60,
                        full_avg10: full.avg10,
                        full_avg60: full.avg60,
                        some_total_us: some.total,
                        full_total_us: full.total,
                    }
                });
                let mut target = target;
                if target.node_name.is_none() && !self.node.node_name.is_empty() {
                    target.node_name = Some(self.node.node_name.as_str().into());
                }
                out.push(Sample {
                    target,
                    reading: Reading {
                        timestamp,
                        usage_bytes: m.usage_bytes.unwrap_or(ws),
                        working_set_bytes: ws,
                        limit_bytes: limit,
                        oom_kill_count: None,
                        psi,
                    },
                });
            }
        }
        out
    }
}

/// Where summaries come from.
#[derive(Clone)]
#[non_exhaustive]
pub enum SummarySource {
    /// `GET /api/v1/nodes/{node}/proxy/stats/summary` through the API server (needs `nodes/proxy` get).
    ApiProxy(Client),
    /// `GET {base}/stats/summary` on a kubelet client (`https://$NODE_IP:10250`; needs `nodes/stats` get).
    Kubelet(Client),
}

impl std::fmt::Debug for SummarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ApiProxy(_) => "SummarySource::ApiProxy",
            Self::Kubelet(_) => "SummarySource::Kubelet",
        })
    }
}

/// The largest stats summary read, in bytes. A node at the kubelet's default of 110 pods answers a few
/// MiB; 64 MiB leaves room for dense nodes and still bounds what a broken or hostile endpoint costs.
pub const MAX_SUMMARY_BYTES: usize = 64 << 20;

impl SummarySource {
    /// Fetches and parses the summary of `node`.
    ///
    /// Sent with `Client::send` rather than `request_text` so the answer's headers are seen: a 429
    /// becomes [`KubeletError::TooManyRequests`] with its `Retry-After`, which kube-rs' error type drops.
    /// Give it a client from [`crate::ClientSource::connect_without_retries`], or kube-rs retries the
    /// 429 itself inside this call.
    pub async fn fetch(&self, node: &str) -> Result<Summary, KubeletError> {
        let (client, path) = match self {
            Self::ApiProxy(c) => (c, format!("/api/v1/nodes/{node}/proxy/stats/summary")),
            Self::Kubelet(c) => (c, "/stats/summary".to_owned()),
        };
        let what = || format!("fetching the stats summary of node {node}");
        let req = http::Request::get(&path)
            .body(kube::client::Body::from(Vec::new()))
            .map_err(|e| KubeletError::Url {
                url: path.clone(),
                reason: e.to_string(),
            })?;
        let res = client
            .send(req)
            .await
            .map_err(|e| KubeletError::api(what(), e))?;
        let status = res.status();
        if status == http::StatusCode::TOO_MANY_REQUESTS {
            return Err(KubeletError::TooManyRequests {
                what: what(),
                retry_after: res
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after_seconds),
            });
        }
        // Streamed through a cap: a body past it fails as soon as the cap is passed, without being
        // read whole (issue 16: a 512 MiB summary took 1.14 GB).
        let body = match http_body_util::Limited::new(res.into_body(), MAX_SUMMARY_BYTES)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(KubeletError::SummaryTooLarge {
                    node: node.to_owned(),
                    max: MAX_SUMMARY_BYTES,
                });
            }
            Err(e) => {
                let e = match e.downcast::<kube::Error>() {
                    Ok(k) => *k,
                    Err(other) => kube::Error::Service(other),
                };
                return Err(KubeletError::api(what(), e));
            }
        };
        if status.is_client_error() || status.is_server_error() {
            let text = String::from_utf8_lossy(&body);
            let st = serde_json::from_slice::<kube::core::Status>(&body).unwrap_or_else(|_| {
                kube::core::Status::failure(text.trim(), "Failed to parse error data")
                    .with_code(status.as_u16())
            });
            return Err(KubeletError::api(what(), kube::Error::Api(Box::new(st))));
        }
        serde_json::from_slice(&body).map_err(|source| KubeletError::Summary {
            node: node.to_owned(),
            source,
        })
    }
}

/// `Retry-After` in seconds (`120`); the HTTP-date form is not used by the API server and is ignored.
fn retry_after_seconds(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_only() {
        assert_eq!(retry_after_seconds(" 7"), Some(Duration::from_secs(7)));
        assert_eq!(retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn real_summary_fixture_becomes_samples() {
        // Captured from a kubernetes v1.35 minikube node (nri-kubernetes datagen, see its README).
        let text = include_str!("../testdata/stats_summary_1_35.json");
        let s = Summary::parse("datagen-1-35", text).unwrap();
        let samples = s.samples(SystemTime::UNIX_EPOCH, |_| None);
        let containers: usize = s
            .pods
            .iter()
            .map(|p| {
                p.containers
                    .iter()
                    .filter(|c| {
                        c.memory
                            .as_ref()
                            .and_then(|m| m.working_set_bytes)
                            .is_some()
                    })
                    .count()
            })
            .sum();
        assert_eq!(samples.len(), containers);
        assert!(!samples.is_empty());
        let kcm = samples
            .iter()
            .find(|x| x.target.container_name.as_deref() == Some("kube-controller-manager"))
            .unwrap();
        assert_eq!(kcm.target.namespace.as_deref(), Some("kube-system"));
        assert_eq!(kcm.target.node_name.as_deref(), Some("datagen-1-35"));
        assert_eq!(kcm.reading.working_set_bytes, 66_174_976);
        assert!(kcm.reading.psi.is_some(), "1.35 reports PSI");
        // A container with a limit reports availableBytes; the limit is recovered from it.
        let limited = samples
            .iter()
            .find(|x| x.reading.limit_bytes.is_some())
            .expect("some container has a limit");
        assert!(limited.reading.limit_bytes.unwrap() >= limited.reading.working_set_bytes);
    }
}
