//! Where events go: one JSON object per line on stdout, flushed per event so consumers see it at once.

use std::io::Write;

use pressure_core::Event;

/// Writes events as JSON lines to stdout.
#[derive(Debug, Default)]
pub(crate) struct EventSink {
    written: u64,
}

impl EventSink {
    /// Writes one event. A closed stdout (e.g. `| head`) is not an error worth dying for: it is logged once.
    pub(crate) fn emit(&mut self, event: &Event) {
        tracing::debug!(event_type = event.event_type.as_str(), pod_uid = ?event.pod_uid, "event");
        let mut out = std::io::stdout().lock();
        let line = event.to_json_line();
        if let Err(err) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            if self.written != u64::MAX {
                tracing::warn!("writing events to stdout failed: {err}");
                self.written = u64::MAX;
            }
            return;
        }
        self.written = self.written.saturating_add(1);
    }
}
