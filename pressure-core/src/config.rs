//! The `pressured` configuration: a JSON document with the keys of the original `pressured`.
//!
//! This crate owns the sections of the sampling side (`source`, `thresholds`, `dry_run`,
//! `log_level`); `pressure-actions` owns `plugins`, `storage` and `actions`, and the binary puts the
//! whole file together. Every section is parsed the same way, in two steps as the style guide asks:
//! [`from_json_strict`] deserializes with unknown keys rejected (the error names the full key path and
//! the nearest valid key), then the section's `validate` checks values and names the key at fault.
//! Every default is in one place: the `Default` impls below.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A configuration error; the message names the key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The document is not JSON, or a key is unknown, or a value has the wrong type.
    #[error("config: {key}: {message}")]
    Parse {
        /// Full key path, dotted (e.g. `thresholds.warn_percent`); `.` for the document itself.
        key: String,
        /// What is wrong, with the nearest valid key for unknown keys.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("config: {key}: {message}")]
    Invalid {
        /// Full key path, dotted.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// An [`Invalid`](ConfigError::Invalid) value at `key` (full dotted path).
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The full key path at fault.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. } => key,
        }
    }
}

/// The sampling side of the configuration: `source`, `thresholds`, `dry_run`, `log_level`.
///
/// A document with only these keys; the `pressured` file adds the sections of `pressure-actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `source`: where samples come from.
    pub source: SourceConfig,
    /// `thresholds`: the state machine's parameters.
    pub thresholds: ThresholdsConfig,
    /// `dry_run` [false]: actions receive `ctx.dry_run = true`, built-in actions write nothing.
    pub dry_run: bool,
    /// `log_level` \[info\].
    pub log_level: LogLevel,
    /// `kubernetes`: what pressured writes to the Kubernetes API.
    pub kubernetes: KubernetesConfig,
    /// `metrics`: what `/metrics` exports.
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: SourceConfig::default(),
            thresholds: ThresholdsConfig::default(),
            dry_run: false,
            log_level: LogLevel::Info,
            kubernetes: KubernetesConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// `metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `metrics.container_gauges` \[`null`: on in cgroup and node modes, off in cluster mode\]:
    /// per-container gauges on `/metrics` (working set, limit, usage ratio, predicted seconds to OOM,
    /// severity, OOM kills), labelled namespace/pod/container. Off by default in cluster mode, where
    /// every container of the cluster would be a series.
    pub container_gauges: Option<bool>,
}

impl MetricsConfig {
    /// Whether the per-container gauges are on in `mode`.
    pub fn container_gauges_in(&self, mode: SourceMode) -> bool {
        self.container_gauges
            .unwrap_or(!matches!(mode, SourceMode::Kubelet))
    }
}

/// `kubernetes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// `kubernetes.events` \[true\]: post Kubernetes Events (critical, predicted_oom, oom_killed) on the
    /// pods in node and cluster mode; never in dry run.
    pub events: bool,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig { events: true }
    }
}

/// `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `source.mode` \[cgroup\].
    pub mode: SourceMode,
    /// `source.poll_interval_ms` \[1000\].
    pub poll_interval_ms: u64,
    /// `source.cgroup`.
    pub cgroup: CgroupSourceConfig,
    /// `source.kubelet`.
    pub kubelet: KubeletSourceConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            mode: SourceMode::Cgroup,
            poll_interval_ms: 1000,
            cgroup: CgroupSourceConfig::default(),
            kubelet: KubeletSourceConfig::default(),
        }
    }
}

impl SourceConfig {
    /// The poll interval that applies to the configured mode, in milliseconds.
    ///
    /// `source.cgroup.poll_interval_ms` (cgroup and node modes) or `source.kubelet.poll_interval_ms`
    /// (kubelet mode) override `source.poll_interval_ms`.
    pub fn effective_poll_interval_ms(&self) -> u64 {
        let specific = match self.mode {
            SourceMode::Cgroup | SourceMode::Node => self.cgroup.poll_interval_ms,
            SourceMode::Kubelet => self.kubelet.poll_interval_ms,
        };
        specific.unwrap_or(self.poll_interval_ms)
    }
}

/// `source.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SourceMode {
    /// Sidecar: the containers of the own pod, from cgroups.
    Cgroup,
    /// Node DaemonSet: every pod of the node, from the node's kubepods cgroups.
    Node,
    /// Cluster-wide through the kubelet Summary API (`cluster` is accepted as an alias).
    #[serde(alias = "cluster")]
    Kubelet,
}

/// `source.cgroup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupSourceConfig {
    /// `source.cgroup.path` [/sys/fs/cgroup]: the cgroup filesystem root.
    pub path: String,
    /// `source.cgroup.poll_interval_ms`: overrides `source.poll_interval_ms`.
    pub poll_interval_ms: Option<u64>,
    /// `source.cgroup.open_files`: the most containers whose usage file stays open between samples
    /// (the others open it for each sample; `0` keeps none open); unset: the watcher's default.
    pub open_files: Option<usize>,
}

impl Default for CgroupSourceConfig {
    fn default() -> Self {
        CgroupSourceConfig {
            path: "/sys/fs/cgroup".to_string(),
            poll_interval_ms: None,
            open_files: None,
        }
    }
}

/// `source.kubelet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubeletSourceConfig {
    /// `source.kubelet.poll_interval_ms`: overrides `source.poll_interval_ms`.
    pub poll_interval_ms: Option<u64>,
    /// `source.kubelet.namespace_filter`: comma-separated namespaces; empty = all.
    pub namespace_filter: Option<String>,
    /// `source.kubelet.label_selector`: Kubernetes label selector for pods.
    pub label_selector: Option<String>,
    /// `source.kubelet.leader_election`: one acting replica among several.
    pub leader_election: LeaderElectionConfig,
    /// `source.kubelet.log_cycles` \[false\]: log every poll cycle at info (else every 10th).
    pub log_cycles: bool,
}

/// `source.kubelet.leader_election`: a `coordination.k8s.io/v1` Lease held by the acting replica
/// (identity `POD_NAME`); the others keep their pod cache warm and poll nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderElectionConfig {
    /// `source.kubelet.leader_election.enabled` \[false\].
    pub enabled: bool,
    /// `source.kubelet.leader_election.lease_name` \[pressured\].
    pub lease_name: String,
    /// `source.kubelet.leader_election.lease_namespace`: unset = the pod's own namespace
    /// (`POD_NAMESPACE`), else `default`.
    pub lease_namespace: Option<String>,
    /// `source.kubelet.leader_election.lease_duration_seconds` \[15\]: how long a Lease not renewed
    /// stays with its holder; the holder renews every third of it.
    pub lease_duration_seconds: u64,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: false,
            lease_name: "pressured".to_string(),
            lease_namespace: None,
            lease_duration_seconds: 15,
        }
    }
}

impl KubeletSourceConfig {
    /// The namespaces of `namespace_filter`, trimmed, empty entries dropped.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespace_filter
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// `thresholds`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdsConfig {
    /// `thresholds.warn_percent` \[70\].
    pub warn_percent: f64,
    /// `thresholds.critical_percent` \[85\].
    pub critical_percent: f64,
    /// `thresholds.hysteresis_percent` \[5\]: to fall from a level, usage must drop below its threshold minus this.
    pub hysteresis_percent: f64,
    /// `thresholds.cooldown_seconds` \[60\]: repeat interval of an ongoing warn/critical.
    pub cooldown_seconds: f64,
    /// `thresholds.signal` \[working_set\]: what is compared to the limit.
    pub signal: Signal,
    /// `thresholds.predict_seconds` \[21600\]: the longest horizon `predicted_oom` announces (6 h; a
    /// rise must also have lasted half the ETA it implies, see the README); 0 disables.
    pub predict_seconds: f64,
    /// `thresholds.predict_window_seconds` \[30\]: the least-squares window of the prediction.
    pub predict_window_seconds: f64,
    /// `thresholds.predict_long_window_seconds` \[3600\]: the window of the second, long trend, for leaks
    /// too slow for the short window to see above the noise (hours ahead); fed one sample per 1/32 of
    /// it. 0 disables the long trend.
    pub predict_long_window_seconds: f64,
}

impl Default for ThresholdsConfig {
    fn default() -> Self {
        ThresholdsConfig {
            warn_percent: 70.0,
            critical_percent: 85.0,
            hysteresis_percent: 5.0,
            cooldown_seconds: 60.0,
            signal: Signal::WorkingSet,
            predict_seconds: 21_600.0,
            predict_window_seconds: 30.0,
            predict_long_window_seconds: 3_600.0,
        }
    }
}

/// `thresholds.signal`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Signal {
    /// Working set (usage minus inactive file cache): what the kubelet evicts on and the kernel can't reclaim.
    #[default]
    WorkingSet,
    /// Raw usage, page cache included.
    Usage,
}

/// `log_level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation \[default\].
    #[default]
    Info,
    /// Problems.
    Warn,
    /// Failures.
    Error,
}

impl LogLevel {
    /// The lowercase name (also a valid `tracing` filter directive).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            other => Err(format!(
                "unknown log level {other:?}: expected trace, debug, info, warn or error"
            )),
        }
    }
}

impl Config {
    /// Parses and validates a JSON document with only this struct's keys (see [`from_json_strict`]).
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let config: Config = from_json_strict(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as pretty JSON (what `--check-config` prints).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config always serializes")
    }

    /// Checks values of every section (see [`ThresholdsConfig::validate`], [`SourceConfig::validate`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.thresholds.validate()?;
        self.source.validate()
    }
}

impl ThresholdsConfig {
    /// Checks values: percents in 0–100, warn < critical, hysteresis < warn, durations non-negative,
    /// the prediction window positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::invalid(key, message));
        let t = self;
        for (key, v) in [
            ("thresholds.warn_percent", t.warn_percent),
            ("thresholds.critical_percent", t.critical_percent),
            ("thresholds.hysteresis_percent", t.hysteresis_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return invalid(key, format!("{v} is outside 0–100"));
            }
        }
        if t.warn_percent >= t.critical_percent {
            return invalid(
                "thresholds.warn_percent",
                format!(
                    "{} must be below thresholds.critical_percent ({})",
                    t.warn_percent, t.critical_percent
                ),
            );
        }
        if t.hysteresis_percent >= t.warn_percent {
            return invalid(
                "thresholds.hysteresis_percent",
                format!(
                    "{} must be below thresholds.warn_percent ({})",
                    t.hysteresis_percent, t.warn_percent
                ),
            );
        }
        for (key, v) in [
            ("thresholds.cooldown_seconds", t.cooldown_seconds),
            ("thresholds.predict_seconds", t.predict_seconds),
            (
                "thresholds.predict_long_window_seconds",
                t.predict_long_window_seconds,
            ),
        ] {
            if !v.is_finite() || v < 0.0 {
                return invalid(key, format!("{v} must be a non-negative number of seconds"));
            }
        }
        if !t.predict_window_seconds.is_finite() || t.predict_window_seconds <= 0.0 {
            return invalid(
                "thresholds.predict_window_seconds",
                format!(
                    "{} must be a positive number of seconds",
                    t.predict_window_seconds
                ),
            );
        }
        Ok(())
    }
}

impl SourceConfig {
    /// Checks values: poll intervals non-zero, the cgroup root not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = self;
        for (key, v) in [
            ("source.poll_interval_ms", Some(s.poll_interval_ms)),
            ("source.cgroup.poll_interval_ms", s.cgroup.poll_interval_ms),
            (
                "source.kubelet.poll_interval_ms",
                s.kubelet.poll_interval_ms,
            ),
            (
                "source.kubelet.leader_election.lease_duration_seconds",
                Some(s.kubelet.leader_election.lease_duration_seconds),
            ),
        ] {
            if v == Some(0) {
                return Err(ConfigError::invalid(key, "must not be zero"));
            }
        }
        let le = &s.kubelet.leader_election;
        for (key, v) in [
            (
                "source.kubelet.leader_election.lease_name",
                Some(&le.lease_name),
            ),
            (
                "source.kubelet.leader_election.lease_namespace",
                le.lease_namespace.as_ref(),
            ),
        ] {
            if v.is_some_and(|v| v.trim().is_empty()) {
                return Err(ConfigError::invalid(key, "must not be empty"));
            }
        }
        if s.cgroup.path.is_empty() {
            return Err(ConfigError::invalid(
                "source.cgroup.path",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// Deserializes a configuration document (or a section of one) with unknown keys rejected.
///
/// For any type with `#[serde(deny_unknown_fields)]`: an error names the full dotted key path, and an
/// unknown key the nearest valid one at its level (`did you mean `thresholds.warn_percent`?`), so that
/// every crate's sections report errors alike. Checks types only; values are the caller's `validate`.
pub fn from_json_strict<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(parse_error)?;
    de.end().map_err(|e| ConfigError::Parse {
        key: ".".into(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Turns a serde error into one naming the full key, with the nearest valid key for unknown ones.
fn parse_error(err: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let parent = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.to_string();
    // serde's message: "unknown field `x`, expected one of `a`, `b` at line L column C"
    // (or "expected `a`", or "there are no fields").
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest
            .split_once("expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        // serde_path_to_error's path already ends with the unknown key itself.
        let key = if parent == "." || parent.is_empty() {
            field.to_string()
        } else {
            parent.clone()
        };
        let parent = match key.rsplit_once('.') {
            Some((p, _)) => p.to_string(),
            None => ".".to_string(),
        };
        let nearest = expected
            .iter()
            .map(|k| (strsim::jaro_winkler(field, k), *k))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let message = match nearest {
            Some((score, k)) if score >= 0.7 => {
                let full = if parent == "." || parent.is_empty() {
                    k.to_string()
                } else {
                    format!("{parent}.{k}")
                };
                format!("unknown key; did you mean `{full}`?")
            }
            _ if !expected.is_empty() => {
                format!("unknown key; valid keys here: {}", expected.join(", "))
            }
            _ => "unknown key".to_string(),
        };
        return ConfigError::Parse { key, message };
    }
    ConfigError::Parse {
        key: parent,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_documented_defaults() {
        let c = Config::from_json("{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.source.mode, SourceMode::Cgroup);
        assert_eq!(c.source.poll_interval_ms, 1000);
        assert_eq!(c.source.cgroup.path, "/sys/fs/cgroup");
        assert_eq!(c.thresholds.warn_percent, 70.0);
        assert_eq!(c.thresholds.critical_percent, 85.0);
        assert_eq!(c.thresholds.hysteresis_percent, 5.0);
        assert_eq!(c.thresholds.cooldown_seconds, 60.0);
        assert_eq!(c.thresholds.predict_seconds, 21_600.0);
        assert_eq!(c.thresholds.predict_long_window_seconds, 3_600.0);
        assert!(!c.dry_run);
        assert_eq!(c.log_level, LogLevel::Info);
    }

    #[test]
    fn open_files_is_optional_and_takes_zero() {
        assert_eq!(Config::default().source.cgroup.open_files, None);
        let c = Config::from_json(r#"{"source":{"cgroup":{"open_files":0}}}"#).expect("valid");
        assert_eq!(c.source.cgroup.open_files, Some(0));
        let e =
            Config::from_json(r#"{"source":{"cgroup":{"open_files":-1}}}"#).expect_err("negative");
        assert!(e.to_string().contains("source.cgroup.open_files"), "{e}");
    }

    #[test]
    fn original_keys_are_accepted() {
        let c = Config::from_json(
            r#"{"source":{"mode":"kubelet","poll_interval_ms":500,
                "cgroup":{"path":"/host/cgroup","poll_interval_ms":250},
                "kubelet":{"poll_interval_ms":2000,"namespace_filter":"a, b,,c","label_selector":"app=x"}},
              "thresholds":{"warn_percent":60,"critical_percent":90,"hysteresis_percent":3,"cooldown_seconds":10},
              "dry_run":true,"log_level":"debug"}"#,
        )
        .unwrap();
        assert_eq!(c.source.mode, SourceMode::Kubelet);
        assert_eq!(c.source.effective_poll_interval_ms(), 2000);
        assert_eq!(c.source.kubelet.namespaces(), ["a", "b", "c"]);
        assert_eq!(c.thresholds.critical_percent, 90.0);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(c.dry_run);
        let cluster = Config::from_json(r#"{"source":{"mode":"cluster"}}"#).unwrap();
        assert_eq!(cluster.source.mode, SourceMode::Kubelet);
        let node = Config::from_json(r#"{"source":{"mode":"node"}}"#).unwrap();
        assert_eq!(node.source.effective_poll_interval_ms(), 1000);
    }

    #[test]
    fn unknown_key_names_full_path_and_nearest_key() {
        let e = Config::from_json(r#"{"thresholds":{"warn_precent":50}}"#).unwrap_err();
        assert_eq!(e.key(), "thresholds.warn_precent");
        assert!(
            e.to_string()
                .contains("did you mean `thresholds.warn_percent`"),
            "{e}"
        );
        let e = Config::from_json(r#"{"source":{"cgroup":{"pth":"/x"}}}"#).unwrap_err();
        assert_eq!(e.key(), "source.cgroup.pth");
        assert!(e.to_string().contains("`source.cgroup.path`"), "{e}");
        let e = Config::from_json(r#"{"dryrun":true}"#).unwrap_err();
        assert_eq!(e.key(), "dryrun");
        assert!(e.to_string().contains("`dry_run`"), "{e}");
        let e = Config::from_json(r#"{"zzzzzz":1}"#).unwrap_err();
        assert!(e.to_string().contains("valid keys here"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = Config::from_json(r#"{"thresholds":{"warn_percent":"high"}}"#).unwrap_err();
        assert_eq!(e.key(), "thresholds.warn_percent");
        let e = Config::from_json(r#"{"source":{"mode":"everywhere"}}"#).unwrap_err();
        assert_eq!(e.key(), "source.mode");
        let e = Config::from_json(r#"{"log_level":"loud"}"#).unwrap_err();
        assert_eq!(e.key(), "log_level");
        let e = Config::from_json("{").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                r#"{"thresholds":{"warn_percent":90,"critical_percent":80}}"#,
                "thresholds.warn_percent",
            ),
            (
                r#"{"thresholds":{"warn_percent":85,"critical_percent":85}}"#,
                "thresholds.warn_percent",
            ),
            (
                r#"{"thresholds":{"critical_percent":101}}"#,
                "thresholds.critical_percent",
            ),
            (
                r#"{"thresholds":{"warn_percent":-1}}"#,
                "thresholds.warn_percent",
            ),
            (
                r#"{"thresholds":{"hysteresis_percent":70}}"#,
                "thresholds.hysteresis_percent",
            ),
            (
                r#"{"source":{"poll_interval_ms":0}}"#,
                "source.poll_interval_ms",
            ),
            (
                r#"{"source":{"cgroup":{"poll_interval_ms":0}}}"#,
                "source.cgroup.poll_interval_ms",
            ),
            (
                r#"{"source":{"kubelet":{"poll_interval_ms":0}}}"#,
                "source.kubelet.poll_interval_ms",
            ),
            (
                r#"{"source":{"kubelet":{"leader_election":{"lease_duration_seconds":0}}}}"#,
                "source.kubelet.leader_election.lease_duration_seconds",
            ),
            (
                r#"{"source":{"kubelet":{"leader_election":{"lease_name":" "}}}}"#,
                "source.kubelet.leader_election.lease_name",
            ),
            (
                r#"{"thresholds":{"cooldown_seconds":-5}}"#,
                "thresholds.cooldown_seconds",
            ),
        ];
        for (doc, key) in cases {
            let e = Config::from_json(doc).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{doc}: {e}");
            assert_eq!(e.key(), key, "{doc}: {e}");
        }
    }

    #[test]
    fn kubernetes_keys_and_their_defaults() {
        let d = Config::default();
        assert!(d.kubernetes.events);
        let le = &d.source.kubelet.leader_election;
        assert!(!le.enabled && !d.source.kubelet.log_cycles);
        assert_eq!(
            (
                le.lease_name.as_str(),
                le.lease_namespace.as_deref(),
                le.lease_duration_seconds
            ),
            ("pressured", None, 15)
        );
        let c = Config::from_json(
            r#"{"kubernetes":{"events":false},"source":{"kubelet":{"log_cycles":true,
                "leader_election":{"enabled":true,"lease_name":"l","lease_namespace":"ns","lease_duration_seconds":2}}}}"#,
        )
        .unwrap();
        assert!(!c.kubernetes.events && c.source.kubelet.log_cycles);
        let le = &c.source.kubelet.leader_election;
        assert!(le.enabled);
        assert_eq!(
            (
                le.lease_name.as_str(),
                le.lease_namespace.as_deref(),
                le.lease_duration_seconds
            ),
            ("l", Some("ns"), 2)
        );
    }

    #[test]
    fn effective_config_round_trips() {
        let c = Config::from_json(r#"{"thresholds":{"warn_percent":65}}"#).unwrap();
        let again = Config::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(c, again);
    }
}
