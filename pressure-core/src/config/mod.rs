//! The `pressured` configuration: a JSON document with the keys of the original `pressured`.
//!
//! Two steps, as the style guide asks: [`Config::from_json`] deserializes with unknown keys rejected (the
//! error names the full key path and the nearest valid key), then [`Config::validate`] checks values and
//! names the key at fault. Every default is in one place: the `Default` impls below.

mod actions;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use actions::{
    ActionsConfig, ExecAction, HeapProfileConfig, LuaConfig, PluginsConfig, S3Config,
    StorageBackend, StorageConfig, WebhookAction,
};

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
    /// The full key path at fault.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::Parse { key, .. } | ConfigError::Invalid { key, .. } => key,
        }
    }
}

/// The whole configuration.
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
    /// `plugins`: Lua scripting.
    pub plugins: PluginsConfig,
    /// `storage`: local or S3.
    pub storage: StorageConfig,
    /// `actions`: exec, webhook.
    pub actions: ActionsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: SourceConfig::default(),
            thresholds: ThresholdsConfig::default(),
            dry_run: false,
            log_level: LogLevel::Info,
            plugins: PluginsConfig::default(),
            storage: StorageConfig::default(),
            actions: ActionsConfig::default(),
        }
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
}

impl Default for CgroupSourceConfig {
    fn default() -> Self {
        CgroupSourceConfig {
            path: "/sys/fs/cgroup".to_string(),
            poll_interval_ms: None,
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
    /// Parses and validates a JSON document.
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(&mut de).map_err(parse_error)?;
        de.end().map_err(|e| ConfigError::Parse {
            key: ".".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as pretty JSON (what `--check-config` prints).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config always serializes")
    }

    /// Checks values: percents in 0–100, warn < critical, hysteresis < warn, intervals non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                message,
            })
        };
        let t = &self.thresholds;
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
        let s = &self.source;
        for (key, v) in [
            ("source.poll_interval_ms", Some(s.poll_interval_ms)),
            ("source.cgroup.poll_interval_ms", s.cgroup.poll_interval_ms),
            (
                "source.kubelet.poll_interval_ms",
                s.kubelet.poll_interval_ms,
            ),
            ("plugins.lua.timeout_ms", Some(self.plugins.lua.timeout_ms)),
        ] {
            if v == Some(0) {
                return invalid(key, "must not be zero".to_string());
            }
        }
        if s.cgroup.path.is_empty() {
            return invalid("source.cgroup.path", "must not be empty".to_string());
        }
        if self.storage.enabled
            && self.storage.backend == StorageBackend::S3
            && self.storage.s3.bucket.as_deref().unwrap_or("").is_empty()
        {
            return invalid(
                "storage.s3.bucket",
                "is required when storage.backend is s3".to_string(),
            );
        }
        for (i, e) in self.actions.exec.iter().enumerate() {
            if e.command.is_empty() || e.command[0].is_empty() {
                return invalid(
                    &format!("actions.exec[{i}].command"),
                    "must name a program".to_string(),
                );
            }
        }
        for (i, w) in self.actions.webhook.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return invalid(
                    &format!("actions.webhook[{i}].url"),
                    format!("{:?} is not an http(s) URL", w.url),
                );
            }
        }
        const EVENT_TYPES: [&str; 5] = [
            "memory_pressure",
            "recovered",
            "oom_killed",
            "predicted_oom",
            "heap_profile",
        ];
        let filters = (self.actions.exec.iter().map(|e| &e.events))
            .enumerate()
            .map(|(i, f)| (format!("actions.exec[{i}].events"), f))
            .chain(
                (self.actions.webhook.iter().map(|w| &w.events))
                    .enumerate()
                    .map(|(i, f)| (format!("actions.webhook[{i}].events"), f)),
            );
        for (key, filter) in filters {
            if let Some(bad) = filter.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                return invalid(
                    &key,
                    format!("unknown event type {bad:?}; expected one of {EVENT_TYPES:?}"),
                );
            }
        }
        let h = &self.actions.heap_profile;
        for (key, v) in [
            ("actions.heap_profile.timeout_ms", h.timeout_ms),
            ("actions.heap_profile.max_bytes", h.max_bytes),
            (
                "plugins.lua.memory_limit_bytes",
                self.plugins.lua.memory_limit_bytes,
            ),
            (
                "actions.queue_capacity",
                self.actions.queue_capacity.unwrap_or(1) as u64,
            ),
        ] {
            if v == 0 {
                return invalid(key, "must not be zero".to_string());
            }
        }
        Ok(())
    }
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
        assert!(!c.dry_run);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.plugins.lua.timeout_ms, 5000);
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
                r#"{"thresholds":{"cooldown_seconds":-5}}"#,
                "thresholds.cooldown_seconds",
            ),
            (
                r#"{"storage":{"enabled":true,"backend":"s3"}}"#,
                "storage.s3.bucket",
            ),
            (
                r#"{"actions":{"exec":[{"command":[]}]}}"#,
                "actions.exec[0].command",
            ),
            (
                r#"{"actions":{"webhook":[{"url":"http://x","events":["critical"]}]}}"#,
                "actions.webhook[0].events",
            ),
            (
                r#"{"actions":{"heap_profile":{"max_bytes":0}}}"#,
                "actions.heap_profile.max_bytes",
            ),
            (
                r#"{"actions":{"queue_capacity":0}}"#,
                "actions.queue_capacity",
            ),
        ];
        for (doc, key) in cases {
            let e = Config::from_json(doc).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{doc}: {e}");
            assert_eq!(e.key(), key, "{doc}: {e}");
        }
    }

    #[test]
    fn effective_config_round_trips() {
        let c = Config::from_json(r#"{"thresholds":{"warn_percent":65}}"#).unwrap();
        let again = Config::from_json(&c.to_json_pretty()).unwrap();
        assert_eq!(c, again);
    }
}
