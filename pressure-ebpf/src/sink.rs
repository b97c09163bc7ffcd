//! What happens to a kill: the victim policy of the original oom-tracer and the seam the
//! Kubernetes side (pod annotation, Events) plugs into.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::event::{EventSource, KillKind, OomKill};

/// A boxed future, so [`KillSink`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which kills' victims get marked (`--annotate-kills`, or the original's `--ignore_global_oom`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AnnotateKills {
    /// Only victims of global OOMs (the original's default, `--ignore_global_oom=false`).
    #[default]
    Global,
    /// Victims of every OOM (`--ignore_global_oom=true`).
    All,
}

/// What a [`KillSink`] did with a victim.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MarkOutcome {
    /// The pod was found and marked (annotation applied).
    Marked,
    /// The pod already carried the mark.
    AlreadyMarked,
    /// The pod was found; nothing to mark (observe only).
    Identified,
    /// No pod on this node matches the victim.
    NoPodMatch,
    /// Marking failed.
    Failed(String),
}

/// Receives the victims the policy selects: pod annotation and Kubernetes Events plug in here.
pub trait KillSink: Send + Sync {
    /// Finds the victim's pod and marks it.
    fn mark_victim<'a>(&'a self, kill: &'a OomKill) -> BoxFuture<'a, MarkOutcome>;
}

/// A sink that records victims and answers a fixed outcome: the fake for tests.
#[derive(Debug)]
pub struct RecordingSink {
    outcome: MarkOutcome,
    seen: Mutex<Vec<OomKill>>,
}

impl RecordingSink {
    /// A sink answering `outcome` to every victim.
    pub fn new(outcome: MarkOutcome) -> Self {
        Self {
            outcome,
            seen: Mutex::new(Vec::new()),
        }
    }

    /// The victims received so far.
    pub fn seen(&self) -> Vec<OomKill> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl KillSink for RecordingSink {
    fn mark_victim<'a>(&'a self, kill: &'a OomKill) -> BoxFuture<'a, MarkOutcome> {
        if let Ok(mut v) = self.seen.lock() {
            v.push(kill.clone());
        }
        let outcome = self.outcome.clone();
        Box::pin(async move { outcome })
    }
}

/// One counter increment: `(stage, reason)` labels, with the original oom-tracer's values.
pub type StageReason = (&'static str, &'static str);

/// The counters one kill moved, for `oom_tracer_events_total` and `oom_tracer_marked_victims_total`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillOutcome {
    /// `oom_tracer_events_total{stage,reason}` increments, in order.
    pub events: Vec<StageReason>,
    /// `oom_tracer_marked_victims_total{stage,reason}` increment, if any.
    pub marked: Option<StageReason>,
}

/// Runs the original's policy on one kill: observe, skip non-global kills unless all are
/// annotated, skip victims outside pods, then hand the victim to `sink` (none: observe only).
pub async fn handle_kill(
    kill: &OomKill,
    annotate: AnnotateKills,
    sink: Option<&dyn KillSink>,
) -> KillOutcome {
    let mut out = KillOutcome::default();
    out.events.push((
        "observed",
        match kill.source {
            EventSource::Kmsg => "kmsg_capture",
            _ => "ebpf_capture",
        },
    ));
    if annotate == AnnotateKills::Global && kill.kind != KillKind::Global {
        out.events.push(("skipped", "non_or_ignored_global_oom"));
        return out;
    }
    if kill.pod_uid.is_none() && kill.container_id.is_none() {
        out.events.push(("skipped", "no_pod_match"));
        return out;
    }
    let Some(sink) = sink else {
        out.events.push(("identified", "pod_identified"));
        return out;
    };
    match sink.mark_victim(kill).await {
        MarkOutcome::NoPodMatch => out.events.push(("skipped", "no_pod_match")),
        MarkOutcome::Identified => out.events.push(("identified", "pod_identified")),
        MarkOutcome::Marked => {
            out.events.push(("identified", "pod_identified"));
            out.marked = Some(("marked", "annotation_applied"));
        }
        MarkOutcome::AlreadyMarked => {
            out.events.push(("identified", "pod_identified"));
            out.marked = Some(("skipped", "annotation_exists"));
        }
        MarkOutcome::Failed(e) => {
            tracing::warn!(error = %e, pid = kill.pid, "failed to mark OOM victim");
            out.events.push(("identified", "pod_identified"));
            out.events.push(("error", "annotation_failed"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "/kubepods/burstable/pod0d1e9c4b-5b2a-4b6e-9d3f-1f2e3d4c5b6a/4f1c9d2e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

    fn kill(kind: KillKind, path: Option<&str>) -> OomKill {
        let k = OomKill::new(1, "x", kind);
        match path {
            Some(p) => k.with_task_memcg(p),
            None => k,
        }
    }

    #[tokio::test]
    async fn global_only_policy_skips_memcg_kills() {
        let sink = RecordingSink::new(MarkOutcome::Marked);
        let out = handle_kill(
            &kill(KillKind::Memcg, Some(POD)),
            AnnotateKills::Global,
            Some(&sink),
        )
        .await;
        assert_eq!(
            out.events,
            vec![
                ("observed", "ebpf_capture"),
                ("skipped", "non_or_ignored_global_oom")
            ]
        );
        assert!(sink.seen().is_empty());
    }

    #[tokio::test]
    async fn marks_pods_and_reports_the_original_labels() {
        let sink = RecordingSink::new(MarkOutcome::Marked);
        let k = kill(KillKind::Memcg, Some(POD));
        assert_eq!(
            k.pod_uid.as_deref(),
            Some("0d1e9c4b-5b2a-4b6e-9d3f-1f2e3d4c5b6a")
        );
        let out = handle_kill(&k, AnnotateKills::All, Some(&sink)).await;
        assert_eq!(
            out.events,
            vec![
                ("observed", "ebpf_capture"),
                ("identified", "pod_identified")
            ]
        );
        assert_eq!(out.marked, Some(("marked", "annotation_applied")));
        assert_eq!(sink.seen().len(), 1);

        let again = RecordingSink::new(MarkOutcome::AlreadyMarked);
        let out = handle_kill(&k, AnnotateKills::All, Some(&again)).await;
        assert_eq!(out.marked, Some(("skipped", "annotation_exists")));
        let failing = RecordingSink::new(MarkOutcome::Failed("403".into()));
        let out = handle_kill(&k, AnnotateKills::All, Some(&failing)).await;
        assert_eq!(out.events.last(), Some(&("error", "annotation_failed")));
    }

    #[tokio::test]
    async fn victims_outside_pods_are_no_pod_match() {
        let out = handle_kill(
            &kill(KillKind::Global, Some("/user.slice")),
            AnnotateKills::Global,
            None,
        )
        .await;
        assert_eq!(out.events.last(), Some(&("skipped", "no_pod_match")));
        let out = handle_kill(
            &kill(KillKind::Global, Some(POD)),
            AnnotateKills::Global,
            None,
        )
        .await;
        assert_eq!(out.events.last(), Some(&("identified", "pod_identified")));
    }
}
