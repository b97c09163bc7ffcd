//! Embeds a [`Dispatcher`]: an inline Lua script and a custom Rust [`Action`] handle one event.
//!
//! ```text
//! cargo run -p pressure-actions --example embed
//! ```
//!
//! The Lua script writes a line to the configured local storage (a temporary directory here); the
//! Rust action prints the event. [`Dispatcher::shutdown`] waits for both before the file is read back.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use pressure_actions::{Action, ActionContext, ActionsError, DispatchConfig, Dispatcher};
use pressure_core::{Event, EventType, Severity, Target};

/// Prints every event it sees and counts them; any embedder's own reaction goes here.
#[derive(Debug, Default)]
struct Printer {
    seen: AtomicU64,
}

impl Action for Printer {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>> {
        Box::pin(async move {
            self.seen.fetch_add(1, Ordering::Relaxed);
            println!(
                "rust action (dry run: {}): {}",
                ctx.dry_run(),
                event.to_json_line()
            );
            Ok(())
        })
    }
}

const SCRIPT: &str = r#"
function on_event(event, ctx)
  local line = string.format("%s/%s is %s at %.0f%%", event.namespace, event.pod_name,
    event.severity, event.usage_percent)
  assert(storage.write("lua/last.txt", line).ok)
end
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let config = DispatchConfig::from_json(
        &serde_json::json!({
            "plugins": {"lua": {"enabled": true, "inline_script": SCRIPT}},
            "storage": {"enabled": true, "backend": "local", "path": dir.path()},
        })
        .to_string(),
    )?;
    let printer = Arc::new(Printer::default());
    let dispatcher = Dispatcher::builder(&config)
        .action("printer", 10, printer.clone())
        .build()?;

    // `submit` never waits: a full queue drops the event and counts it.
    let accepted = dispatcher.submit(Event {
        timestamp: SystemTime::now(),
        event_type: EventType::MemoryPressure,
        severity: Severity::Critical,
        previous_severity: Severity::Warn,
        target: Arc::new(Target {
            namespace: Some("default".into()),
            pod_name: Some("web-0".into()),
            pod_uid: None,
            container_name: Some("web".into()),
            container_id: None,
            node_name: Some("node-a".into()),
            pod_ip: None,
            annotations: Default::default(),
            ..Target::default()
        }),
        usage_bytes: Some(950 << 20),
        working_set_bytes: Some(920 << 20),
        limit_bytes: Some(1 << 30),
        usage_percent: Some(92.5),
        oom_kill_count: Some(0),
        eta_seconds: Some(42.0),
        psi_some_avg10: None,
        dry_run: false,
        profile: None,
    });
    assert!(accepted, "an empty queue accepts the event");

    let report = dispatcher.shutdown(Duration::from_secs(10)).await;
    for failure in &report.failures {
        eprintln!("failure: {failure:?}");
    }
    println!(
        "processed {}, dropped {}, drained {}; the rust action saw {}",
        report.stats.processed,
        report.stats.dropped,
        report.drained,
        printer.seen.load(Ordering::Relaxed)
    );
    let written = std::fs::read_to_string(dir.path().join("lua/last.txt"))?;
    println!("lua wrote: {written}");
    Ok(())
}
