//! `pressured`'s metrics and readiness, served by [`pressure_kubelet::ProbeServer`] at `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! The process-wide [`Telemetry`] is fed by the event sink: counts of emitted events by type and
//! severity, and readiness (set once the mode's source is set up and the sink exists). With
//! `metrics.container_gauges` the sampling loop also refreshes [`ContainerGauges`] from the engine
//! after its cycles.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pressure_cgroup::OomWakeups;
use pressure_core::{Config, ContainerView, Engine, Event};
use pressure_kubelet::ProbeServer;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event_type: String,
    severity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Process-wide metrics and readiness.
pub(crate) struct Telemetry {
    registry: Mutex<Registry>,
    events: Family<EventLabels, Counter>,
    actions_dropped: Counter,
    ready: AtomicBool,
    /// The watcher's OOM wake-up state, read at each scrape (cgroup and node modes only).
    oom_wakeups: OnceLock<(OomWakeups, Gauge)>,
    /// Whether `/metrics` is served (set by [`spawn`]).
    serving: AtomicBool,
    /// `metrics.container_gauges`, once registered.
    container_gauges: OnceLock<Arc<ContainerGauges>>,
}

/// The process-wide telemetry.
pub(crate) fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let mut registry = Registry::default();
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "pressured_events",
            "Events emitted, by event type and severity",
            events.clone(),
        );
        let actions_dropped = Counter::default();
        registry.register(
            "pressured_actions_dropped_events",
            "Events not handed to the actions because their queue was full",
            actions_dropped.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("pressured_build_info", "Build information", build);
        Telemetry {
            registry: Mutex::new(registry),
            events,
            actions_dropped,
            ready: AtomicBool::new(false),
            oom_wakeups: OnceLock::new(),
            serving: AtomicBool::new(false),
            container_gauges: OnceLock::new(),
        }
    })
}

impl Telemetry {
    /// Counts an emitted event.
    pub(crate) fn event(&self, event: &Event) {
        self.events
            .get_or_create(&EventLabels {
                event_type: event.event_type.as_str().to_string(),
                severity: event.severity.as_str().to_string(),
            })
            .inc();
    }

    /// Counts an event the action queue refused.
    pub(crate) fn action_dropped(&self) {
        self.actions_dropped.inc();
    }

    /// Marks the process ready (or not).
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Exports `pressured_oom_wakeups` from the watcher's state (once; later calls are ignored).
    pub(crate) fn watch_oom_wakeups(&self, state: OomWakeups) {
        let gauge = Gauge::default();
        if self.oom_wakeups.set((state, gauge.clone())).is_ok() {
            self.registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .register(
                    "pressured_oom_wakeups",
                    "1 while an OOM kill wakes the sampling loop at once; 0 when it is seen at the \
                     next poll (v1 refuses the wake-up without uid 0 or on a read-only cgroupfs)",
                    gauge,
                );
        }
    }

    /// The per-container gauges for the sampling loop to [`refresh`](ContainerGauges::refresh), when
    /// `/metrics` is served and `metrics.container_gauges` (resolved for the mode) is on; registered
    /// once, later calls return the same set.
    pub(crate) fn container_gauges(&self, config: &Config) -> Option<Arc<ContainerGauges>> {
        if !self.serving.load(Ordering::Relaxed)
            || !config.metrics.container_gauges_in(config.source.mode)
        {
            return None;
        }
        let gauges = self
            .container_gauges
            .get_or_init(|| {
                let gauges = Arc::new(ContainerGauges::default());
                self.registry
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .register_collector(Box::new(gauges.clone()));
                gauges
            })
            .clone();
        Some(gauges)
    }

    fn encode(&self) -> String {
        if let Some((state, gauge)) = self.oom_wakeups.get() {
            gauge.set(i64::from(state.active()));
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Binds `addr` and serves the probes in the background; returns the bound address.
pub(crate) async fn spawn(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let probes = ProbeServer::new(
        || telemetry().encode(),
        || telemetry().ready.load(Ordering::Relaxed),
    );
    let bound = probes.spawn(addr).await?;
    telemetry().serving.store(true, Ordering::Relaxed);
    Ok(bound)
}

/// How often the sampling loop copies the engine's containers into the gauges at most: a scrape sees
/// values at most this old, and a 100 ms sidecar loop does not copy ten times a second.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);

/// Per-container gauges (`metrics.container_gauges`): a copy of [`Engine::containers`] taken after a
/// poll cycle, encoded at each scrape. A container the engine forgot (gone for three cycles) is not in
/// the next copy, so its series end with it: the cardinality is the engine's.
#[derive(Debug, Default)]
pub(crate) struct ContainerGauges {
    rows: Mutex<(Option<Instant>, Vec<Row>)>,
}

/// One container's values.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    namespace: String,
    pod: String,
    container: String,
    working_set_bytes: Option<u64>,
    limit_bytes: Option<u64>,
    usage_ratio: Option<f64>,
    eta_seconds: Option<f64>,
    severity: i64,
    oom_kills: Option<u64>,
}

impl Row {
    /// Labels: `namespace`, `pod` (name, else UID), `container` (name, else ID; empty for the pod-level
    /// cgroup). Unknown parts are empty strings.
    fn from_view(v: &ContainerView<'_>) -> Row {
        let t = v.target;
        let text = |a: Option<&Arc<str>>| a.map(|s| s.to_string()).unwrap_or_default();
        Row {
            namespace: text(t.namespace.as_ref()),
            pod: text(t.pod_name.as_ref().or(t.pod_uid.as_ref())),
            container: text(t.container_name.as_ref().or(t.container_id.as_ref())),
            working_set_bytes: v.working_set_bytes,
            limit_bytes: v.limit_bytes,
            usage_ratio: v.usage_ratio,
            eta_seconds: v.eta_seconds,
            severity: i64::from(v.severity.level()),
            oom_kills: v.oom_kills,
        }
    }

    fn labels(&self) -> [(&str, &str); 3] {
        [
            ("namespace", &self.namespace),
            ("pod", &self.pod),
            ("container", &self.container),
        ]
    }
}

impl ContainerGauges {
    /// Copies the engine's containers, unless the last copy is younger than [`GAUGE_REFRESH`].
    pub(crate) fn refresh(&self, engine: &Engine) {
        let now = Instant::now();
        let mut guard = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if guard
            .0
            .is_some_and(|at| now.duration_since(at) < GAUGE_REFRESH)
        {
            return;
        }
        guard.0 = Some(now);
        guard.1.clear();
        guard
            .1
            .extend(engine.containers().map(|v| Row::from_view(&v)));
    }
}

/// A gauge (or counter) family of the rows: one series per row where `value` has one.
fn encode_family<T: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    rows: &[Row],
    (name, help, kind): (&str, &str, MetricType),
    value: impl Fn(&Row) -> Option<T>,
) -> Result<(), std::fmt::Error> {
    if rows.iter().all(|r| value(r).is_none()) {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for row in rows {
        if let Some(v) = value(row) {
            let labels = row.labels();
            v.encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for ContainerGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let guard = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        let rows = &guard.1;
        let gauge = MetricType::Gauge;
        let e = &mut encoder;
        encode_family(
            e,
            rows,
            (
                "pressured_container_working_set_bytes",
                "Working set (usage minus inactive file) of the container's last reading",
                gauge,
            ),
            |r| r.working_set_bytes.map(ConstGauge::new),
        )?;
        encode_family(
            e,
            rows,
            (
                "pressured_container_memory_limit_bytes",
                "Memory limit of the container's last reading (absent when unlimited)",
                gauge,
            ),
            |r| r.limit_bytes.map(ConstGauge::new),
        )?;
        encode_family(
            e,
            rows,
            (
                "pressured_container_memory_usage_ratio",
                "The thresholds.signal (working set or usage) divided by the limit (absent when unlimited)",
                gauge,
            ),
            |r| r.usage_ratio.map(ConstGauge::new),
        )?;
        encode_family(
            e,
            rows,
            (
                "pressured_container_predicted_oom_seconds",
                "Predicted seconds until the container reaches its limit, from the fitted trend; \
                 present only while a rise is significant and evidenced (as for predicted_oom)",
                gauge,
            ),
            |r| r.eta_seconds.map(ConstGauge::new),
        )?;
        encode_family(
            e,
            rows,
            (
                "pressured_container_severity",
                "Severity of the container: 0 ok, 1 warn, 2 critical",
                gauge,
            ),
            |r| Some(ConstGauge::new(r.severity)),
        )?;
        encode_family(
            e,
            rows,
            (
                "pressured_container_oom_kills",
                "OOM kills of the container's cgroup as the kernel (or pod status) counts them",
                MetricType::Counter,
            ),
            |r| r.oom_kills.map(ConstCounter::new),
        )
    }
}
