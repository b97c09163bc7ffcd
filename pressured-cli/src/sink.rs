//! Where events go: one JSON object per line on stdout (flushed per event so consumers see it at once),
//! and to the action dispatcher (`pressure-actions`), which runs Lua, exec, webhook and heap-profile
//! actions off the sampling path. Follow-up events of the actions (`heap_profile`) are printed too.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use pressure_actions::{DispatchConfig, Dispatcher};
use pressure_core::Event;
use tokio::task::JoinHandle;

/// How long a shutdown waits for queued actions before abandoning them.
pub(crate) const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a shutdown waits for the last follow-up events after the drain.
const FOLLOWUP_GRACE: Duration = Duration::from_secs(1);

/// What the sink's actions are built from: the actions' sections of the file, and the whole file,
/// which Lua scripts see as `config`.
#[derive(Debug, Clone)]
pub(crate) struct ActionsSetup {
    /// `dry_run`, `plugins`, `storage`, `actions`.
    pub(crate) config: DispatchConfig,
    /// The effective configuration file as JSON.
    pub(crate) script_config: serde_json::Value,
}

/// Writes events as JSON lines to stdout and hands them to the actions.
#[derive(Debug)]
pub(crate) struct EventSink {
    dispatcher: Option<Dispatcher>,
    followups: Option<JoinHandle<()>>,
}

impl EventSink {
    /// A sink with the actions `setup` asks for. Must be called inside a tokio runtime.
    pub(crate) fn new(setup: &ActionsSetup) -> anyhow::Result<EventSink> {
        let mut dispatcher = Dispatcher::builder(&setup.config)
            .script_config(setup.script_config.clone())
            .build()
            .context("setting up the actions")?;
        let followups = dispatcher.take_followups().map(|mut rx| {
            tokio::spawn(async move {
                while let Some(event) = rx.recv().await {
                    print_event(&event);
                }
            })
        });
        crate::server::telemetry().set_ready(true);
        Ok(EventSink {
            dispatcher: Some(dispatcher),
            followups,
        })
    }

    /// Writes one event and queues it for the actions (never waits).
    pub(crate) fn emit(&mut self, event: &Event) {
        print_event(event);
        crate::server::telemetry().event(event);
        if let Some(d) = &self.dispatcher
            && !d.submit(event.clone())
        {
            crate::server::telemetry().action_dropped();
            tracing::warn!(
                event_type = event.event_type.as_str(),
                "action queue full: event dropped for the actions"
            );
        }
    }

    /// Writes one event and queues it for the actions, waiting for room in the queue: replay has no
    /// real-time deadline, so it applies back-pressure instead of dropping (issue 16).
    pub(crate) async fn emit_wait(&mut self, event: &Event) {
        print_event(event);
        crate::server::telemetry().event(event);
        if let Some(d) = &self.dispatcher
            && !d.submit_wait(event.clone()).await
        {
            crate::server::telemetry().action_dropped();
            tracing::warn!(
                event_type = event.event_type.as_str(),
                "dispatcher shut down: event dropped for the actions"
            );
        }
    }

    /// Drains the actions (at most [`DRAIN_DEADLINE`]) and prints their last follow-up events.
    pub(crate) async fn shutdown(mut self) {
        crate::server::telemetry().set_ready(false);
        if let Some(d) = self.dispatcher.take() {
            let report = d.shutdown(DRAIN_DEADLINE).await;
            if report.stats.dropped > 0 || !report.drained {
                tracing::warn!(stats = ?report.stats, abandoned = report.abandoned, "actions did not all run");
            }
        }
        if let Some(printer) = self.followups.take() {
            // The dispatcher is gone, so the channel closes and the printer ends — once every action
            // has ended: one abandoned at the deadline may still hold the channel (issue 16), so the
            // wait is bounded.
            if tokio::time::timeout(FOLLOWUP_GRACE, printer).await.is_err() {
                tracing::warn!(
                    "an abandoned action is still running: its follow-up events are lost"
                );
            }
        }
    }
}

/// Prints one event line. A closed stdout (e.g. `| head`) is logged, not fatal.
fn print_event(event: &Event) {
    tracing::debug!(event_type = event.event_type.as_str(), pod_uid = ?event.target.pod_uid, "event");
    let mut out = std::io::stdout().lock();
    if let Err(err) = writeln!(out, "{}", event.to_json_line()).and_then(|()| out.flush()) {
        tracing::warn!("writing events to stdout failed: {err}");
    }
}
