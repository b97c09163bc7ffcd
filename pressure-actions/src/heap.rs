//! Built-in heap-profile capture: fetch a Go pod's `/debug/pprof/heap` straight into storage, analyse
//! it with `pressure-pprof`, and emit the top consumers as a `heap_profile` follow-up event.
//!
//! A capture is taken at `predicted_oom` and again at `critical`, each trigger with its own cooldown:
//! the first shows the heap early, the second when most of the limit is used, and the difference
//! between the two (pprof's `-diff_base`) names what grew — the leak. One cooldown per pod would
//! skip the second capture, and the early one alone holds little of the leak (issue 17).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use pressure_core::{Event, EventType, ProfileGrowth, ProfileSummary, Severity, TopConsumer};

use crate::config::HeapProfileConfig;
use pressure_pprof::{Limits, Profile, Report, TopOptions};

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
/// Containers whose latest capture is remembered as the next diff base; past it the oldest is
/// forgotten, so a node with pod churn keeps a bounded map.
const MAX_REMEMBERED_CAPTURES: usize = 1024;

/// What asked for a capture; each trigger has its own cooldown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Trigger {
    /// A `predicted_oom` event.
    PredictedOom,
    /// A `memory_pressure` event at `critical`.
    Critical,
}

impl Trigger {
    /// The name in storage keys and logs.
    fn as_str(self) -> &'static str {
        match self {
            Trigger::PredictedOom => "predicted_oom",
            Trigger::Critical => "critical",
        }
    }
}

/// A stored capture, the diff base of the container's next one.
#[derive(Debug, Clone)]
struct Capture {
    key: String,
    location: String,
    at: SystemTime,
}

/// The `heap_profile` action.
#[derive(Debug)]
pub(crate) struct HeapProfileAction {
    config: HeapProfileConfig,
    /// Built on the first capture: building a client loads the system's CA certificates, a cost every
    /// `pressured` would otherwise pay at start-up although few pods opt in.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    /// Last capture per pod and trigger.
    last: Mutex<HashMap<(String, Trigger), Instant>>,
    /// Latest capture per container (`ns/pod/container`).
    captures: Mutex<HashMap<String, Capture>>,
}

impl HeapProfileAction {
    pub(crate) fn new(config: HeapProfileConfig) -> Self {
        HeapProfileAction {
            config,
            client: std::sync::OnceLock::new(),
            last: Mutex::new(HashMap::new()),
            captures: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client, or why it could not be built (e.g. no CA certificates on the system).
    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| {
                crate::tls::install_ring();
                reqwest::Client::builder()
                    .user_agent(concat!("pressured/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| format!("building the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Claims the cooldown slot of the pod for `trigger`; `false` if that trigger captured the pod
    /// within `cooldown_seconds`.
    fn claim(&self, pod: &str, trigger: Trigger) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let cooldown = Duration::from_secs(self.config.cooldown_seconds);
        let now = Instant::now();
        last.retain(|_, t| now.duration_since(*t) < cooldown);
        let slot = (pod.to_string(), trigger);
        if last.contains_key(&slot) {
            return false;
        }
        last.insert(slot, now);
        true
    }

    /// The latest capture of `container`, if one is remembered.
    fn previous(&self, container: &str) -> Option<Capture> {
        let captures = self.captures.lock().unwrap_or_else(|p| p.into_inner());
        captures.get(container).cloned()
    }

    /// Remembers `capture` as the diff base of the container's next capture.
    fn remember(&self, container: String, capture: Capture) {
        let mut captures = self.captures.lock().unwrap_or_else(|p| p.into_inner());
        captures.insert(container, capture);
        if captures.len() > MAX_REMEMBERED_CAPTURES
            && let Some(oldest) = captures
                .iter()
                .min_by_key(|(_, c)| c.at)
                .map(|(k, _)| k.clone())
        {
            captures.remove(&oldest);
        }
    }
}

/// What the event asks for: a capture at `critical` pressure or at a predicted OOM, of an opted-in
/// pod; `None` otherwise.
fn trigger(event: &Event) -> Option<Trigger> {
    let trigger = match event.event_type {
        EventType::PredictedOom => Trigger::PredictedOom,
        EventType::MemoryPressure if event.severity == Severity::Critical => Trigger::Critical,
        _ => return None,
    };
    event
        .target
        .annotations
        .get(ANNOTATION_PPROF_ENABLED)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        .then_some(trigger)
}

/// The rows of a report as consumers.
fn consumers(report: &Report) -> Vec<TopConsumer> {
    report
        .rows
        .iter()
        .map(|r| TopConsumer {
            function: r.name.clone(),
            flat_bytes: r.flat,
            cum_bytes: r.cum,
        })
        .collect()
}

/// Ranks the functions of `data` (and their growth since `base`, if given) as configured.
fn analyse(
    config: &HeapProfileConfig,
    data: &[u8],
    base: Option<&[u8]>,
) -> Result<(Report, Option<Result<Report, pressure_pprof::PprofError>>), pressure_pprof::PprofError>
{
    let limits = Limits::new(config.max_bytes, Limits::default().max_decompressed_bytes);
    let profile = Profile::decode(data, &limits)?;
    let index = profile
        .sample_index(Some(&config.sample_type))
        .ok()
        .map(|_| config.sample_type.clone());
    let options = TopOptions::new(index, config.top, false);
    let report = pressure_pprof::top(&profile, &options)?;
    // The growth is a bonus: a base that no longer decodes (or fits) does not cost the report.
    let growth = base.map(|base| {
        let base = Profile::decode(base, &limits)?;
        let diff = profile.diff_base(&base)?;
        drop(profile);
        pressure_pprof::top(&diff, &options)
    });
    Ok((report, growth))
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
        .target
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .ok_or("the event has no pod IP")?;
    let port = match event.target.annotations.get(ANNOTATION_PPROF_PORT) {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .map_err(|_| format!("{ANNOTATION_PPROF_PORT}: {p:?} is not a port"))?,
        None => DEFAULT_PORT,
    };
    let path = event
        .target
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
            let Some(trigger) = trigger(event) else {
                return Ok(());
            };
            let (ns, pod, container) = (
                segment(event.target.namespace.as_deref()),
                segment(event.target.pod_name.as_deref()),
                segment(event.target.container_name.as_deref()),
            );
            let who = format!("{ns}/{pod}/{container}");
            let fail = |message: String| ActionsError::HeapProfile {
                pod: who.clone(),
                message,
            };
            let url = profile_url(event).map_err(fail)?;
            if !self.claim(&format!("{ns}/{pod}"), trigger) {
                tracing::debug!(pod = %who, trigger = trigger.as_str(), "heap profile skipped: cooldown");
                return Ok(());
            }
            if ctx.dry_run() {
                tracing::info!(pod = %who, url, "dry run: heap profile not captured");
                return Ok(());
            }
            let storage = ctx
                .storage()
                .ok_or_else(|| fail("no storage configured (storage.enabled)".into()))?;
            let captured_at = SystemTime::now();
            // The trigger in the name keeps two captures of one second apart.
            let stamp = humantime::format_rfc3339_seconds(captured_at);
            let key = format!(
                "{ns}/{pod}/{container}/heap-{stamp}-{}.pb.gz",
                trigger.as_str()
            );
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

            // Analyse what was stored (read back: the same bytes a user will download), with the
            // container's previous capture as the diff base.
            let data = storage.read(&key).await?;
            let container_key = format!("{ns}/{pod}/{container}");
            let previous = self.previous(&container_key);
            let base = match &previous {
                Some(prev) => match storage.read(&prev.key).await {
                    Ok(base) => Some(base),
                    Err(e) => {
                        tracing::warn!(pod = %who, base = %prev.location, error = %e,
                            "heap profile: previous capture unreadable, no growth reported");
                        None
                    }
                },
                None => None,
            };
            let config = self.config.clone();
            let (report, growth) =
                tokio::task::spawn_blocking(move || analyse(&config, &data, base.as_deref()))
                    .await
                    .map_err(|e| fail(format!("analysis thread: {e}")))?
                    .map_err(|e| fail(format!("analysing {location}: {e}")))?;
            self.remember(
                container_key,
                Capture {
                    key: key.clone(),
                    location: location.clone(),
                    at: captured_at,
                },
            );
            let top = consumers(&report);
            for (i, t) in top.iter().enumerate() {
                tracing::info!(pod = %who, rank = i + 1, function = %t.function, flat = %report.format_value(t.flat_bytes),
                    cum = %report.format_value(t.cum_bytes), "heap top consumer");
            }
            let growth = match (previous, growth) {
                (Some(prev), Some(Ok(diff))) => {
                    let growth = ProfileGrowth {
                        base_location: prev.location,
                        interval_seconds: captured_at
                            .duration_since(prev.at)
                            .unwrap_or_default()
                            .as_secs_f64(),
                        top: consumers(&diff),
                    };
                    for (i, t) in growth.top.iter().enumerate() {
                        tracing::info!(pod = %who, rank = i + 1, function = %t.function,
                            flat = %diff.format_value(t.flat_bytes), cum = %diff.format_value(t.cum_bytes),
                            since = %growth.base_location, "heap growth");
                    }
                    Some(growth)
                }
                (Some(prev), Some(Err(e))) => {
                    tracing::warn!(pod = %who, base = %prev.location, error = %e,
                        "heap profile: no growth against the previous capture");
                    None
                }
                _ => None,
            };
            let mut followup = event.clone();
            followup.timestamp = SystemTime::now();
            followup.event_type = EventType::HeapProfile;
            followup.profile = Some(ProfileSummary {
                location,
                size_bytes: size,
                sample_type: report.sample_type.r#type.clone(),
                top,
                growth,
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
        e.target_mut().pod_ip = Some("10.1.2.3".into());
        assert_eq!(
            profile_url(&e).unwrap(),
            "http://10.1.2.3:6060/debug/pprof/heap"
        );
        std::sync::Arc::make_mut(&mut e.target_mut().annotations)
            .insert(ANNOTATION_PPROF_PORT.into(), "8080".into());
        std::sync::Arc::make_mut(&mut e.target_mut().annotations)
            .insert(ANNOTATION_PPROF_PATH.into(), "debug/heap".into());
        e.target_mut().pod_ip = Some("fd00::1".into());
        assert_eq!(profile_url(&e).unwrap(), "http://[fd00::1]:8080/debug/heap");
        std::sync::Arc::make_mut(&mut e.target_mut().annotations)
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
        assert_eq!(trigger(&e), None);
        std::sync::Arc::make_mut(&mut e.target_mut().annotations)
            .insert(ANNOTATION_PPROF_ENABLED.into(), "true".into());
        assert_eq!(trigger(&e), Some(Trigger::Critical));
        e.severity = Severity::Warn;
        assert_eq!(trigger(&e), None);
        e.event_type = EventType::PredictedOom;
        assert_eq!(trigger(&e), Some(Trigger::PredictedOom));
        e.event_type = EventType::HeapProfile;
        assert_eq!(trigger(&e), None);
    }

    #[test]
    fn cooldown_is_per_pod_and_trigger() {
        let action = HeapProfileAction::new(HeapProfileConfig::default());
        assert!(action.claim("ns/a", Trigger::PredictedOom));
        assert!(!action.claim("ns/a", Trigger::PredictedOom));
        // The capture at critical is not held back by the earlier one at the prediction.
        assert!(action.claim("ns/a", Trigger::Critical));
        assert!(!action.claim("ns/a", Trigger::Critical));
        assert!(action.claim("ns/b", Trigger::Critical));
        let zero = HeapProfileAction::new(HeapProfileConfig {
            cooldown_seconds: 0,
            ..HeapProfileConfig::default()
        });
        assert!(zero.claim("ns/a", Trigger::Critical));
        assert!(zero.claim("ns/a", Trigger::Critical));
    }

    #[test]
    fn remembered_captures_are_bounded() {
        let action = HeapProfileAction::new(HeapProfileConfig::default());
        let start = SystemTime::UNIX_EPOCH;
        for i in 0..=MAX_REMEMBERED_CAPTURES {
            action.remember(
                format!("ns/p{i}/c"),
                Capture {
                    key: format!("k{i}"),
                    location: format!("l{i}"),
                    at: start + Duration::from_secs(i as u64),
                },
            );
        }
        assert_eq!(
            action.captures.lock().unwrap().len(),
            MAX_REMEMBERED_CAPTURES
        );
        // The oldest went; the newest is the next diff base of its container.
        assert!(action.previous("ns/p0/c").is_none());
        let last = format!("ns/p{MAX_REMEMBERED_CAPTURES}/c");
        assert_eq!(
            action.previous(&last).unwrap().key,
            format!("k{MAX_REMEMBERED_CAPTURES}")
        );
    }
}
