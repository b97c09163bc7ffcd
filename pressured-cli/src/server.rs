//! `pressured`'s metrics and readiness, served by [`pressure_kubelet::ProbeServer`] at `/metrics`,
//! `/healthz` and `/readyz`.
//!
//! The process-wide [`Telemetry`] is fed by the event sink: counts of emitted events by type and
//! severity, and readiness (set once the mode's source is set up and the sink exists).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use pressure_cgroup::OomWakeups;
use pressure_core::Event;
use pressure_kubelet::ProbeServer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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
    Ok(probes.spawn(addr).await?)
}
