//! Actions dispatched on memory-pressure events: Lua scripts, exec, webhooks, heap-profile capture, and
//! local or S3 storage.
//!
//! - [`Dispatcher`] takes [`pressure_core::Event`]s off the sampling path: [`Dispatcher::submit`] never
//!   waits (a bounded queue; full means dropped and counted), one worker runs every action per event,
//!   and [`Dispatcher::shutdown`] drains the queue with a deadline. Follow-up events (`heap_profile`)
//!   arrive on [`Dispatcher::take_followups`].
//! - [`DispatchConfig`] is the `dry_run`, `plugins`, `storage` and `actions` part of the `pressured`
//!   configuration, parsed and validated like `pressure_core::Config` (errors name the key).
//! - Built-in actions, from the config: Lua 5.4 scripts with the original pressured API (`plugins.lua`,
//!   sandboxed, time- and memory-capped), `exec` and `webhook` (`actions.exec`, `actions.webhook`) and the
//!   heap-profile capture of annotated Go pods (`actions.heap_profile`).
//! - [`Storage`] backends: [`LocalStorage`] (atomic writes) and [`ObjectStorage`] (S3 through
//!   `object_store`, streaming multipart uploads, retries), keys checked by [`validate_key`].
//! - Extension: [`Action`] and [`Storage`] are traits registered by name and priority in a [`Registry`]
//!   (`storage` resolves to the highest priority, `storage:<name>` to a named one), so an embedder adds
//!   its own through [`DispatcherBuilder`].
//!
//! ```no_run
//! use std::time::Duration;
//! use pressure_actions::{DispatchConfig, Dispatcher};
//!
//! # async fn run(events: Vec<pressure_core::Event>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = DispatchConfig::from_json(r#"{
//!     "plugins": {"lua": {"enabled": true,
//!         "inline_script": "function on_event(e, ctx) log.info(e.event_type) end"}},
//!     "storage": {"enabled": true, "backend": "local", "path": "/var/lib/pressured"}
//! }"#)?;
//! let mut dispatcher = Dispatcher::from_config(&config)?;
//! let mut followups = dispatcher.take_followups().expect("taken once");
//! let printer = tokio::spawn(async move {
//!     while let Some(event) = followups.recv().await {
//!         println!("{}", event.to_json_line());
//!     }
//! });
//! for event in events {
//!     dispatcher.submit(event); // never waits
//! }
//! let report = dispatcher.shutdown(Duration::from_secs(10)).await;
//! eprintln!("processed {}, dropped {}", report.stats.processed, report.stats.dropped);
//! printer.await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod action;
mod config;
mod counters;
mod dispatch;
mod error;
mod exec;
mod heap;
mod lua;
mod registry;
mod storage;
mod tls;
mod webhook;

pub use action::{Action, ActionContext};
pub use config::{
    ActionsConfig, DispatchConfig, ExecAction, HeapProfileConfig, LuaConfig, MAX_QUEUE_CAPACITY,
    PluginsConfig, S3Config, StorageBackend, StorageConfig, WebhookAction,
};
pub use counters::{DispatchStats, Failure};
pub use dispatch::{DEFAULT_QUEUE_CAPACITY, Dispatcher, DispatcherBuilder, ShutdownReport};
pub use error::{ActionsError, StorageError};
pub use heap::{ANNOTATION_PPROF_ENABLED, ANNOTATION_PPROF_PATH, ANNOTATION_PPROF_PORT};
pub use registry::Registry;
pub use storage::{LocalStorage, ObjectReader, ObjectStorage, ObjectWriter, Storage, validate_key};

#[cfg(test)]
pub(crate) fn test_event() -> pressure_core::Event {
    pressure_core::Event {
        timestamp: std::time::SystemTime::UNIX_EPOCH,
        event_type: pressure_core::EventType::MemoryPressure,
        severity: pressure_core::Severity::Critical,
        previous_severity: pressure_core::Severity::Warn,
        target: std::sync::Arc::new(pressure_core::Target {
            namespace: Some("default".into()),
            pod_name: Some("app-0".into()),
            pod_uid: Some("uid-1".into()),
            container_name: Some("app".into()),
            container_id: None,
            node_name: Some("node-a".into()),
            pod_ip: None,
            annotations: Default::default(),
            ..pressure_core::Target::default()
        }),
        usage_bytes: Some(900),
        working_set_bytes: Some(880),
        limit_bytes: Some(1000),
        usage_percent: Some(88.0),
        oom_kill_count: Some(0),
        eta_seconds: None,
        psi_some_avg10: None,
        dry_run: false,
        profile: None,
    }
}
