//! Prometheus metrics (`prometheus-client`), with the original oom-tracer's names and labels.

use std::sync::Mutex;

use pressure_ebpf::{KillOutcome, OomKill, TracerStats};
use pressure_kubelet::{DropReason, MarkQueue, MarkQueueStats};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Buckets of the victim's RSS: 1 MiB to 256 GiB by powers of 4 (10 buckets, one series per kind).
fn victim_rss_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1_048_576.0, 4.0, 10))
}

/// Every metric of the tracer.
pub(crate) struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    marked: Family<Labels, Counter>,
    kills: Family<Labels, Counter>,
    victim_rss: Family<Labels, Histogram, fn() -> Histogram>,
    ringbuf_drops: Counter,
    kmsg_parse_errors: Counter,
    kmsg_lost: Counter,
    marks_without_kill: Counter,
    source: Family<Labels, Gauge>,
    pending: Gauge,
    retries: Counter,
    dropped: Family<Labels, Counter>,
    /// Serialises the copy of the tracer's counters into ours; holds the queue's counters as last
    /// copied (late marks go into `marked` by difference).
    sync: Mutex<MarkQueueStats>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let events = Family::<Labels, Counter>::default();
        let marked = Family::<Labels, Counter>::default();
        let kills = Family::<Labels, Counter>::default();
        let victim_rss: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(victim_rss_histogram);
        let (ringbuf_drops, kmsg_parse_errors, kmsg_lost, marks_without_kill) = (
            Counter::default(),
            Counter::default(),
            Counter::default(),
            Counter::default(),
        );
        let build_info = Family::<Labels, Gauge>::default();
        let source = Family::<Labels, Gauge>::default();
        let pending = Gauge::default();
        let retries = Counter::default();
        let dropped = Family::<Labels, Counter>::default();
        registry.register(
            "oom_tracer_pending_marks",
            "OOM kills whose mark (annotation, Event) is not made yet and is being retried",
            pending.clone(),
        );
        registry.register(
            "oom_tracer_mark_retries",
            "Attempts at pending marks (each retry after a failure)",
            retries.clone(),
        );
        registry.register(
            "oom_tracer_pending_marks_dropped",
            "Pending marks given up, by reason: expired (older than --pending-marks-max-age), capacity (the oldest, queue full), pod_gone, rejected",
            dropped.clone(),
        );
        for r in [
            DropReason::Expired,
            DropReason::Capacity,
            DropReason::PodGone,
            DropReason::Rejected,
        ] {
            let _ = dropped.get_or_create(&labels(&[("reason", r.as_str())]));
        }
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
            "oom_tracer_victim_rss_bytes",
            "The victim's RSS (anon + file + shmem) at the kill, by kind",
            victim_rss.clone(),
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
            victim_rss,
            ringbuf_drops,
            kmsg_parse_errors,
            kmsg_lost,
            marks_without_kill,
            source,
            pending,
            retries,
            dropped,
            sync: Mutex::new(MarkQueueStats::default()),
        }
    }

    /// Counts one kill and what the policy and sink did with it.
    pub(crate) fn record(&self, kill: &OomKill, outcome: &KillOutcome) {
        self.kills
            .get_or_create(&labels(&[("kind", kill.kind.as_str())]))
            .inc();
        if let Some(kb) = kill.rss_anon_kb {
            let kb = kb + kill.rss_file_kb.unwrap_or(0) + kill.rss_shmem_kb.unwrap_or(0);
            self.victim_rss
                .get_or_create(&labels(&[("kind", kill.kind.as_str())]))
                .observe((kb * 1024) as f64);
        }
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

    /// Copies the tracer's own counters (cumulative) and the mark queue's into the exported ones.
    pub(crate) fn sync(&self, stats: &TracerStats, queue: Option<&MarkQueue>) {
        let Ok(mut last) = self.sync.lock() else {
            return;
        };
        if let Some(q) = queue {
            let now = q.stats();
            self.sync_queue(&last, &now);
            *last = now;
        }
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

    fn sync_queue(&self, last: &MarkQueueStats, now: &MarkQueueStats) {
        self.pending
            .set(i64::try_from(now.pending).unwrap_or(i64::MAX));
        self.retries
            .inc_by(now.retries.saturating_sub(last.retries));
        for r in [
            DropReason::Expired,
            DropReason::Capacity,
            DropReason::PodGone,
            DropReason::Rejected,
        ] {
            self.dropped
                .get_or_create(&labels(&[("reason", r.as_str())]))
                .inc_by(now.dropped(r).saturating_sub(last.dropped(r)));
        }
        // A pending mark made later counts as marked (or skipped) like one made at once.
        for (n, stage, reason) in [
            (
                now.marked_late.saturating_sub(last.marked_late),
                "marked",
                "annotation_applied",
            ),
            (
                now.already_marked_late
                    .saturating_sub(last.already_marked_late),
                "skipped",
                "annotation_exists",
            ),
        ] {
            if n > 0 {
                self.marked
                    .get_or_create(&labels(&[("stage", stage), ("reason", reason)]))
                    .inc_by(n);
            }
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
        let mut kill = OomKill::new(1, "x", KillKind::Memcg);
        kill.rss_anon_kb = Some(3 * 1024);
        kill.rss_file_kb = Some(1024);
        let outcome = handle_kill(&kill, AnnotateKills::Global, None).await;
        m.record(&kill, &outcome);
        let marked = KillOutcome {
            events: vec![],
            marked: Some(("marked", "annotation_applied")),
        };
        m.record(&OomKill::new(2, "y", KillKind::Global), &marked);
        m.sync(&TracerStats::default(), None);
        let mut late = MarkQueueStats::default();
        late.pending = 2;
        late.retries = 5;
        late.marked_late = 1;
        late.dropped_expired = 1;
        m.sync_queue(&MarkQueueStats::default(), &late);
        let text = m.encode();
        for line in [
            "oom_tracer_events_total{stage=\"observed\",reason=\"ebpf_capture\"} 1",
            "oom_tracer_events_total{stage=\"skipped\",reason=\"non_or_ignored_global_oom\"} 1",
            "oom_tracer_kills_total{kind=\"memcg\"} 1",
            "oom_tracer_ringbuf_drops_total 0",
            "oom_tracer_kmsg_parse_errors_total 0",
            "oom_tracer_build_info{version=\"0.1.0\",app=\"oom-tracer\"} 1",
            "oom_tracer_marked_victims_total{stage=\"marked\",reason=\"annotation_applied\"} 2",
            "oom_tracer_kills_total{kind=\"global\"} 1",
            "oom_tracer_pending_marks 2",
            "oom_tracer_victim_rss_bytes_sum{kind=\"memcg\"} 4194304.0",
            "oom_tracer_victim_rss_bytes_bucket{le=\"4194304.0\",kind=\"memcg\"} 1",
            "oom_tracer_victim_rss_bytes_bucket{le=\"1048576.0\",kind=\"memcg\"} 0",
            "oom_tracer_mark_retries_total 5",
            "oom_tracer_pending_marks_dropped_total{reason=\"expired\"} 1",
            "oom_tracer_pending_marks_dropped_total{reason=\"capacity\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
