//! The pure core of `pressure`: configuration, the threshold state machine, and its events.
//!
//! - [`Config`] is the sampling side of the `pressured` JSON configuration (`source`, `thresholds`,
//!   `dry_run`, `log_level`; keys of the original `pressured`), parsed with unknown keys rejected and
//!   values validated, every error naming the key at fault. [`from_json_strict`] parses any section
//!   the same way (`pressure-actions` uses it for `plugins`, `storage` and `actions`).
//! - [`Sample`] is what a source saw: a [`Target`] (who) and a [`Reading`] (what).
//! - [`Engine`] keeps one state per container and turns readings plus a clock value into [`Event`]s:
//!   warn/critical with hysteresis and cooldown, `recovered`, `oom_killed` and `predicted_oom`, with
//!   per-pod `pressured.io/*` annotation overrides ([`Thresholds::with_annotations`]).
//! - [`replay`] parses the JSON-lines sample format of `pressured --replay`.
//!
//! No I/O, no threads, no async: every function here is a computation over its arguments.
#![deny(missing_docs)]

mod config;
mod engine;
mod event;
pub mod replay;
mod sample;
mod trend;

pub use config::{
    CgroupSourceConfig, Config, ConfigError, KubeletSourceConfig, KubernetesConfig,
    LeaderElectionConfig, LogLevel, MetricsConfig, Signal, SourceConfig, SourceMode,
    ThresholdsConfig, from_json_strict,
};
pub use engine::{
    ANNOTATION_COOLDOWN_SECONDS, ANNOTATION_CRITICAL_PERCENT, ANNOTATION_HYSTERESIS_PERCENT,
    ANNOTATION_WARN_PERCENT, ContainerView, Engine, SlotId, Thresholds,
};
pub use event::{Event, EventType, ProfileGrowth, ProfileSummary, Severity, TopConsumer};
pub use sample::{Psi, Reading, Sample, Target};
