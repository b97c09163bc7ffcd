//! Prometheus metrics (`prometheus-client`), with the original oom-tracer's names and labels.

use std::sync::Mutex;

use pressure_ebpf::{KillOutcome, OomKill, TracerStats};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every metric of the tracer.
pub(crate) struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    marked: Family<Labels, Counter>,
    kills: Family<Labels, Counter>,
    ringbuf_drops: Counter,
    kmsg_parse_errors: Counter,
    kmsg_lost: Counter,
    marks_without_kill: Counter,
    source: Family<Labels, Gauge>,
    /// Serialises the copy of the tracer's counters into ours.
    sync: Mutex<()>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let events = Family::<Labels, Counter>::default();
        let marked = Family::<Labels, Counter>::default();
        let kills = Family::<Labels, Counter>::default();
        let (ringbuf_drops, kmsg_parse_errors, kmsg_lost, marks_without_kill) = (
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        let source = Family::<Labels, Gauge>::default();
        registry.register(
            "oom_tracer_events",
            "Total number of OOM kill events captured, bucketed by stage and reason",
            events.clone(),
        );
        registry.register(
            "oom_tracer_marked_victims",
            "Total number of marked pods to be evicted, bucketed by stage and reason",
            marked.clone(),
        );
        registry.register(
            "oom_tracer_kills",
            "OOM kills seen, by kind (global, memcg, cpuset_mempolicy, unknown)",
            kills.clone(),
        );
        registry.register(
            "oom_tracer_ringbuf_drops",
            "OOM events the BPF program could not queue (ring buffer full)",
            ringbuf_drops.clone(),
        );
        registry.register(
            "oom_tracer_kmsg_parse_errors",
            "OOM-killer kernel log records that could not be parsed",
            kmsg_parse_errors.clone(),
        );
        registry.register(
            "oom_tracer_kmsg_lost_records",
            "Kernel log records overwritten before they were read",
            kmsg_lost.clone(),
        );
        registry.register(
            "oom_tracer_marks_without_kill",
            "Victim marks of tasks that were already exiting (no OOM SIGKILL), not counted as kills",
            marks_without_kill.clone(),
        );
        registry.register(
            "oom_tracer_build_info",
            "Build information; always 1",
            build_info.clone(),
        );
        registry.register(
            "oom_tracer_source_info",
            "The kill sources in use; always 1",
            source.clone(),
        );
        build_info
            .get_or_create(&labels(&[
                ("version", env!("CARGO_PKG_VERSION")),
                ("app", "oom-tracer"),
            ]))
            .set(1);
        Self {
            registry,
            events,
            marked,
            kills,
            ringbuf_drops,
            kmsg_parse_errors,
            kmsg_lost,
            marks_without_kill,
            source,
            sync: Mutex::new(()),
        }
    }

    /// Counts one kill and what the policy and sink did with it.
    pub(crate) fn record(&self, kill: &OomKill, outcome: &KillOutcome) {
        self.kills
            .get_or_create(&labels(&[("kind", kill.kind.as_str())]))
            .inc();
        for (stage, reason) in &outcome.events {
            self.events
                .get_or_create(&labels(&[("stage", stage), ("reason", reason)]))
                .inc();
        }
        if let Some((stage, reason)) = outcome.marked {
            self.marked
                .get_or_create(&labels(&[("stage", stage), ("reason", reason)]))
                .inc();
        }
    }

    /// Copies the tracer's own counters (cumulative) into the exported ones.
    pub(crate) fn sync(&self, stats: &TracerStats) {
        let Ok(_guard) = self.sync.lock() else { return };
        for (counter, value) in [
            (&self.ringbuf_drops, stats.ringbuf_drops()),
            (&self.kmsg_parse_errors, stats.kmsg_parse_errors()),
            (&self.kmsg_lost, stats.kmsg_lost()),
            (&self.marks_without_kill, stats.marks_without_kill()),
        ] {
            let have = counter.get();
            if value > have {
                counter.inc_by(value - have);
            }
        }
        if let Some(s) = stats.sources() {
            let bpf = s.bpf.map_or("none", |m| m.as_str());
            let kmsg = if s.kmsg { "true" } else { "false" };
            self.source
                .get_or_create(&labels(&[("bpf", bpf), ("kmsg", kmsg)]))
                .set(1);
        }
    }

    /// OpenMetrics text.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pressure_ebpf::{AnnotateKills, KillKind, handle_kill};

    #[tokio::test]
    async fn exports_the_original_series_and_ours() {
        let m = Metrics::new();
        let kill = OomKill::new(1, "x", KillKind::Memcg);
        let outcome = handle_kill(&kill, AnnotateKills::Global, None).await;
        m.record(&kill, &outcome);
        let marked = KillOutcome {
            events: vec![],
            marked: Some(("marked", "annotation_applied")),
        };
        m.record(&OomKill::new(2, "y", KillKind::Global), &marked);
        m.sync(&TracerStats::default());
        let text = m.encode();
        for line in [
            "oom_tracer_events_total{stage=\"observed\",reason=\"ebpf_capture\"} 1",
            "oom_tracer_events_total{stage=\"skipped\",reason=\"non_or_ignored_global_oom\"} 1",
            "oom_tracer_kills_total{kind=\"memcg\"} 1",
            "oom_tracer_ringbuf_drops_total 0",
            "oom_tracer_kmsg_parse_errors_total 0",
            "oom_tracer_build_info{version=\"0.1.0\",app=\"oom-tracer\"} 1",
            "oom_tracer_marked_victims_total{stage=\"marked\",reason=\"annotation_applied\"} 1",
            "oom_tracer_kills_total{kind=\"global\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
