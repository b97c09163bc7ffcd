//! Built-in heap-profile capture: fetch a Go pod's `/debug/pprof/heap` straight into storage, analyse
//! it with `pressure-pprof`, and emit the top consumers as a `heap_profile` follow-up event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use pressure_core::{Event, EventType, ProfileSummary, Severity, TopConsumer};

use crate::config::HeapProfileConfig;
use pressure_pprof::{Limits, Profile, TopOptions};

use crate::ActionsError;
use crate::action::{Action, ActionContext};
use crate::storage::validate_key;

/// Opt-in annotation: `"true"` enables the capture for the pod.
pub const ANNOTATION_PPROF_ENABLED: &str = "pressured.io/pprof-enabled";
/// Port of the pprof endpoint (default 6060).
pub const ANNOTATION_PPROF_PORT: &str = "pressured.io/pprof-port";
/// Path of the heap profile (default `/debug/pprof/heap`).
pub const ANNOTATION_PPROF_PATH: &str = "pressured.io/pprof-path";

const DEFAULT_PORT: u16 = 6060;
const DEFAULT_PATH: &str = "/debug/pprof/heap";

/// The `heap_profile` action.
#[derive(Debug)]
pub(crate) struct HeapProfileAction {
    config: HeapProfileConfig,
    /// Built on the first capture: building a client loads the system's CA certificates, a cost every
    /// `pressured` would otherwise pay at start-up although few pods opt in.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    last: Mutex<HashMap<String, Instant>>,
}

impl HeapProfileAction {
    pub(crate) fn new(config: HeapProfileConfig) -> Self {
        HeapProfileAction {
            config,
            client: std::sync::OnceLock::new(),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client, or why it could not be built (e.g. no CA certificates on the system).
    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("pressured/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Claims the pod's cooldown slot; `false` if it captured within `cooldown_seconds`.
    fn claim(&self, pod: &str) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let cooldown = Duration::from_secs(self.config.cooldown_seconds);
        let now = Instant::now();
        last.retain(|_, t| now.duration_since(*t) < cooldown);
        if last.contains_key(pod) {
            return false;
        }
        last.insert(pod.to_string(), now);
        true
    }
}

/// Whether the event asks for a capture: `critical` pressure or a predicted OOM, of an opted-in pod.
fn wanted(event: &Event) -> bool {
    let trigger = event.event_type == EventType::PredictedOom
        || (event.event_type == EventType::MemoryPressure && event.severity == Severity::Critical);
    trigger
        && event
            .annotations
            .get(ANNOTATION_PPROF_ENABLED)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// One key segment from a name (namespace, pod, container): never `/`, `.` or `..`.
fn segment(name: Option<&str>) -> String {
    let s: String = name
        .unwrap_or("unknown")
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "unknown".to_string(),
        _ => s,
    }
}

/// The pprof URL of the pod, from its IP and annotations.
fn profile_url(event: &Event) -> Result<String, String> {
    let ip = event
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .ok_or("the event has no pod IP")?;
    let port = match event.annotations.get(ANNOTATION_PPROF_PORT) {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("{ANNOTATION_PPROF_PORT}: {p:?} is not a port"))?,
        None => DEFAULT_PORT,
    };
    let path = event
        .annotations
        .get(ANNOTATION_PPROF_PATH)
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_PATH);
    let slash = if path.starts_with('/') { "" } else { "/" };
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Ok(format!("http://{host}:{port}{slash}{path}"))
}

impl Action for HeapProfileAction {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>> {
        Box::pin(async move {
            if !wanted(event) {
                return Ok(());
            }
            let (ns, pod, container) = (
                segment(event.namespace.as_deref()),
                segment(event.pod_name.as_deref()),
                segment(event.container_name.as_deref()),
            );
            let who = format!("{ns}/{pod}/{container}");
            let fail = |message: String| ActionsError::HeapProfile {
                pod: who.clone(),
                message,
            };
            let url = profile_url(event).map_err(fail)?;
            if !self.claim(&format!("{ns}/{pod}")) {
                tracing::debug!(pod = %who, "heap profile skipped: cooldown");
                return Ok(());
            }
            if ctx.dry_run() {
                tracing::info!(pod = %who, url, "dry run: heap profile not captured");
                return Ok(());
            }
            let storage = ctx
                .storage()
                .ok_or_else(|| fail("no storage configured (storage.enabled)".into()))?;
            let stamp = humantime::format_rfc3339_seconds(SystemTime::now());
            let key = format!("{ns}/{pod}/{container}/heap-{stamp}.pb.gz");
            validate_key(&key).map_err(|e| fail(e.to_string()))?;

            // Download: chunks go straight to storage; the body is never held whole.
            let timeout = Duration::from_millis(self.config.timeout_ms);
            let started = Instant::now();
            let mut resp = self
                .client()
                .map_err(|e| fail(e.to_string()))?
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| fail(format!("GET {url}: {e}")))?;
            if !resp.status().is_success() {
                return Err(fail(format!("GET {url}: HTTP {}", resp.status().as_u16())));
            }
            let mut writer = storage.open_write(&key).await?;
            let mut size: u64 = 0;
            loop {
                let chunk = match resp.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(fail(format!("GET {url}: {e}")));
                    }
                };
                size += chunk.len() as u64;
                if size > self.config.max_bytes {
                    let _ = writer.abort().await;
                    return Err(fail(format!(
                        "profile larger than actions.heap_profile.max_bytes = {}",
                        self.config.max_bytes
                    )));
                }
                if let Err(e) = writer.write(chunk).await {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            }
            let size = writer.finish().await?;
            let location = storage.location(&key);
            tracing::info!(pod = %who, location, size, elapsed_ms = started.elapsed().as_millis() as u64,
                "heap profile stored");

            // Analyse what was stored (read back: the same bytes a user will download).
            let data = storage.read(&key).await?;
            let config = self.config.clone();
            let report = tokio::task::spawn_blocking(move || {
                let limits =
                    Limits::new(config.max_bytes, Limits::default().max_decompressed_bytes);
                let profile = Profile::decode(&data, &limits)?;
                let index = profile
                    .sample_index(Some(&config.sample_type))
                    .ok()
                    .map(|_| config.sample_type.clone());
                pressure_pprof::top(&profile, &TopOptions::new(index, config.top, false))
            })
            .await
            .map_err(|e| fail(format!("analysis thread: {e}")))?
            .map_err(|e| fail(format!("analysing {location}: {e}")))?;
            let top: Vec<TopConsumer> = report
                .rows
                .iter()
                .map(|r| TopConsumer {
                    function: r.name.clone(),
                    flat_bytes: r.flat,
                    cum_bytes: r.cum,
                })
                .collect();
            for (i, t) in top.iter().enumerate() {
                tracing::info!(pod = %who, rank = i + 1, function = %t.function, flat = %report.format_value(t.flat_bytes),
                    cum = %report.format_value(t.cum_bytes), "heap top consumer");
            }
            let mut followup = event.clone();
            followup.timestamp = SystemTime::now();
            followup.event_type = EventType::HeapProfile;
            followup.profile = Some(ProfileSummary {
                location,
                size_bytes: size,
                sample_type: report.sample_type.r#type.clone(),
                top,
            });
            ctx.emit(followup);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_from_annotations_and_segments_are_safe() {
        let mut e = crate::test_event();
        e.pod_ip = Some("10.1.2.3".into());
        assert_eq!(
            profile_url(&e).unwrap(),
            "http://10.1.2.3:6060/debug/pprof/heap"
        );
        std::sync::Arc::make_mut(&mut e.annotations)
            .insert(ANNOTATION_PPROF_PORT.into(), "8080".into());
        std::sync::Arc::make_mut(&mut e.annotations)
            .insert(ANNOTATION_PPROF_PATH.into(), "debug/heap".into());
        e.pod_ip = Some("fd00::1".into());
        assert_eq!(profile_url(&e).unwrap(), "http://[fd00::1]:8080/debug/heap");
        std::sync::Arc::make_mut(&mut e.annotations)
            .insert(ANNOTATION_PPROF_PORT.into(), "x".into());
        assert!(profile_url(&e).is_err());
        assert_eq!(segment(Some("..")), "unknown");
        assert_eq!(segment(Some("a/b")), "a_b");
        assert_eq!(segment(None), "unknown");
    }

    #[test]
    fn only_critical_or_predicted_of_opted_in_pods() {
        let mut e = crate::test_event();
        e.event_type = EventType::MemoryPressure;
        e.severity = Severity::Critical;
        assert!(!wanted(&e));
        std::sync::Arc::make_mut(&mut e.annotations)
            .insert(ANNOTATION_PPROF_ENABLED.into(), "true".into());
        assert!(wanted(&e));
        e.severity = Severity::Warn;
        assert!(!wanted(&e));
        e.event_type = EventType::PredictedOom;
        assert!(wanted(&e));
        e.event_type = EventType::HeapProfile;
        assert!(!wanted(&e));
    }
}
