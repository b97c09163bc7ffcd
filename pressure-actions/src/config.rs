//! Configuration sections of the actions: `plugins` (Lua), `storage` and `actions` (exec, webhook,
//! heap-profile capture), and [`DispatchConfig`], the document made of them.
//!
//! Parsed like every section of the `pressured` file ([`pressure_core::from_json_strict`]: unknown keys
//! rejected with the full path and the nearest valid key), then checked by the sections' `validate`,
//! which names the key at fault. Every default is in the section's `Default` impl.

use pressure_core::{ConfigError, from_json_strict};
use serde::{Deserialize, Serialize};

/// The largest `actions.queue_capacity`: a million queued events is already far more than any action can
/// catch up on, and tokio's channel panics above `usize::MAX >> 3` (issue 16).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// The event types an `events` filter may name.
const EVENT_TYPES: [&str; 5] = [
    "memory_pressure",
    "recovered",
    "oom_killed",
    "predicted_oom",
    "heap_profile",
];

/// What a [`Dispatcher`](crate::Dispatcher) is built from: the `dry_run`, `plugins`, `storage` and
/// `actions` keys of a `pressured` configuration file (its other keys are `pressure_core::Config`'s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// `dry_run` [false]: actions receive `ctx.dry_run = true`, built-in actions write nothing.
    pub dry_run: bool,
    /// `plugins`: Lua scripting.
    pub plugins: PluginsConfig,
    /// `storage`: local or S3.
    pub storage: StorageConfig,
    /// `actions`: exec, webhook, heap-profile capture.
    pub actions: ActionsConfig,
}

impl DispatchConfig {
    /// Parses and validates a JSON document with only this struct's keys.
    pub fn from_json(text: &str) -> Result<DispatchConfig, ConfigError> {
        let config: DispatchConfig = from_json_strict(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values of every section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.plugins.validate()?;
        self.storage.validate()?;
        self.actions.validate()
    }
}

/// `plugins`: scripting plugins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// `plugins.lua`: Lua scripts run on every event.
    pub lua: LuaConfig,
}

impl PluginsConfig {
    /// Checks values: the Lua time and memory caps non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("plugins.lua.timeout_ms", self.lua.timeout_ms),
            (
                "plugins.lua.memory_limit_bytes",
                self.lua.memory_limit_bytes,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must not be zero"));
            }
        }
        Ok(())
    }
}

/// `plugins.lua`: Lua 5.4 scripts with the original pressured API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LuaConfig {
    /// `plugins.lua.enabled` [false].
    pub enabled: bool,
    /// `plugins.lua.script`: one script file.
    pub script: Option<String>,
    /// `plugins.lua.scripts_dir`: every `*.lua` in the directory, in sorted name order, each isolated.
    pub scripts_dir: Option<String>,
    /// `plugins.lua.inline_script`: the script text itself.
    pub inline_script: Option<String>,
    /// `plugins.lua.timeout_ms` \[5000\]: a run of `on_event` longer than this is stopped.
    pub timeout_ms: u64,
    /// `plugins.lua.memory_limit_bytes` [64 MiB]: memory cap per Lua state.
    pub memory_limit_bytes: u64,
}

impl Default for LuaConfig {
    fn default() -> Self {
        LuaConfig {
            enabled: false,
            script: None,
            scripts_dir: None,
            inline_script: None,
            timeout_ms: 5000,
            memory_limit_bytes: 64 << 20,
        }
    }
}

/// `storage`: where scripts and the heap-dump action store objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `storage.enabled` [false].
    pub enabled: bool,
    /// `storage.backend`: `local` \[default\] or `s3`.
    pub backend: StorageBackend,
    /// `storage.path` [/var/lib/pressured]: root directory of the local backend.
    pub path: String,
    /// `storage.s3`: the S3 backend.
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            enabled: false,
            backend: StorageBackend::Local,
            path: "/var/lib/pressured".to_string(),
            s3: S3Config::default(),
        }
    }
}

impl StorageConfig {
    /// Checks values: an enabled backend has what it needs (`storage.path`, `storage.s3.bucket`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        match self.backend {
            StorageBackend::S3 if self.s3.bucket.as_deref().unwrap_or("").is_empty() => {
                Err(ConfigError::invalid(
                    "storage.s3.bucket",
                    "is required when storage.backend is s3",
                ))
            }
            StorageBackend::Local if self.path.is_empty() => Err(ConfigError::invalid(
                "storage.path",
                "must not be empty when storage.backend is local",
            )),
            _ => Ok(()),
        }
    }
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StorageBackend {
    /// Local directory.
    #[default]
    Local,
    /// S3 or an S3-compatible server.
    S3,
}

/// `storage.s3`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `storage.s3.bucket`.
    pub bucket: Option<String>,
    /// `storage.s3.region`.
    pub region: Option<String>,
    /// `storage.s3.prefix`: prepended to every key.
    pub prefix: Option<String>,
    /// `storage.s3.endpoint`: custom endpoint for S3-compatible servers.
    pub endpoint: Option<String>,
    /// `storage.s3.path_style` [false]: path-style addressing.
    pub path_style: bool,
}

/// `actions`: built-in and language-agnostic actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionsConfig {
    /// `actions.queue_capacity` [None = built-in default]: bounded queue between sampling and actions,
    /// 1 to [`MAX_QUEUE_CAPACITY`].
    pub queue_capacity: Option<usize>,
    /// `actions.exec`: programs run per event.
    pub exec: Vec<ExecAction>,
    /// `actions.webhook`: URLs the event JSON is POSTed to.
    pub webhook: Vec<WebhookAction>,
    /// `actions.heap_profile`: built-in heap-profile capture of annotated Go pods.
    pub heap_profile: HeapProfileConfig,
}

impl ActionsConfig {
    /// Checks values: exec commands name a program, webhook URLs are http(s), `events` filters name
    /// known event types, the queue and the heap-profile limits are non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, e) in self.exec.iter().enumerate() {
            if e.command.is_empty() || e.command[0].is_empty() {
                return Err(ConfigError::invalid(
                    format!("actions.exec[{i}].command"),
                    "must name a program",
                ));
            }
        }
        for (i, w) in self.webhook.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::invalid(
                    format!("actions.webhook[{i}].url"),
                    format!("{:?} is not an http(s) URL", w.url),
                ));
            }
        }
        let filters = (self.exec.iter().map(|e| &e.events))
            .enumerate()
            .map(|(i, f)| (format!("actions.exec[{i}].events"), f))
            .chain(
                (self.webhook.iter().map(|w| &w.events))
                    .enumerate()
                    .map(|(i, f)| (format!("actions.webhook[{i}].events"), f)),
            );
        for (key, filter) in filters {
            if let Some(bad) = filter.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
                return Err(ConfigError::invalid(
                    key,
                    format!("unknown event type {bad:?}; expected one of {EVENT_TYPES:?}"),
                ));
            }
        }
        if let Some(n) = self.queue_capacity
            && n > MAX_QUEUE_CAPACITY
        {
            return Err(ConfigError::invalid(
                "actions.queue_capacity",
                format!("{n} is more than the maximum {MAX_QUEUE_CAPACITY}"),
            ));
        }
        let h = &self.heap_profile;
        for (key, v) in [
            ("actions.heap_profile.timeout_ms", h.timeout_ms),
            ("actions.heap_profile.max_bytes", h.max_bytes),
            (
                "actions.queue_capacity",
                self.queue_capacity.unwrap_or(1) as u64,
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must not be zero"));
            }
        }
        Ok(())
    }
}

/// `actions.heap_profile`: on `critical` or `predicted_oom` for a pod annotated
/// `pressured.io/pprof-enabled: "true"`, fetch its heap profile into storage and report the top consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeapProfileConfig {
    /// `actions.heap_profile.enabled` [true]: capture when the pod opts in by annotation (and storage is enabled).
    pub enabled: bool,
    /// `actions.heap_profile.cooldown_seconds` \[300\]: at most one capture per pod and trigger (`predicted_oom`, `critical`) within this.
    pub cooldown_seconds: u64,
    /// `actions.heap_profile.timeout_ms` \[30000\]: the whole download.
    pub timeout_ms: u64,
    /// `actions.heap_profile.max_bytes` \[33554432\]: larger profiles are aborted and removed (a stored
    /// profile is read back whole for the analysis).
    pub max_bytes: u64,
    /// `actions.heap_profile.top` \[10\]: consumers reported in the follow-up event.
    pub top: usize,
    /// `actions.heap_profile.sample_type` \[inuse_space\]: the sample type ranked (falls back to the profile's default).
    pub sample_type: String,
}

impl Default for HeapProfileConfig {
    fn default() -> Self {
        HeapProfileConfig {
            enabled: true,
            cooldown_seconds: 300,
            timeout_ms: 30_000,
            max_bytes: 32 << 20,
            top: 10,
            sample_type: "inuse_space".to_string(),
        }
    }
}

/// One `actions.exec[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecAction {
    /// Program and arguments (no shell).
    pub command: Vec<String>,
    /// Event types it runs for; empty = all.
    pub events: Vec<String>,
    /// Timeout in milliseconds \[10000\].
    pub timeout_ms: Option<u64>,
}

/// One `actions.webhook[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookAction {
    /// URL to POST the event JSON to.
    pub url: String,
    /// Extra headers.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Event types it runs for; empty = all.
    pub events: Vec<String>,
    /// Timeout in milliseconds \[5000\].
    pub timeout_ms: Option<u64>,
    /// Retries after the first attempt \[3\].
    pub retries: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_documented_defaults() {
        let c = DispatchConfig::from_json("{}").unwrap();
        assert_eq!(c, DispatchConfig::default());
        assert!(!c.dry_run);
        assert_eq!(c.plugins.lua.timeout_ms, 5000);
        assert_eq!(c.plugins.lua.memory_limit_bytes, 64 << 20);
        assert!(!c.storage.enabled);
        assert_eq!(c.storage.backend, StorageBackend::Local);
        assert_eq!(c.storage.path, "/var/lib/pressured");
        assert_eq!(c.actions.queue_capacity, None);
        assert!(c.actions.heap_profile.enabled);
        assert_eq!(c.actions.heap_profile.max_bytes, 32 << 20);
    }

    #[test]
    fn unknown_key_names_full_path_and_nearest_key() {
        let e = DispatchConfig::from_json(r#"{"storage":{"pth":"/x"}}"#).unwrap_err();
        assert_eq!(e.key(), "storage.pth");
        assert!(e.to_string().contains("`storage.path`"), "{e}");
        let e = DispatchConfig::from_json(r#"{"plugins":{"lua":{"timeout":1}}}"#).unwrap_err();
        assert_eq!(e.key(), "plugins.lua.timeout");
        assert!(e.to_string().contains("`plugins.lua.timeout_ms`"), "{e}");
        let e = DispatchConfig::from_json(r#"{"actions":{"exec":[{"cmd":["x"]}]}}"#).unwrap_err();
        assert_eq!(e.key(), "actions.exec[0].cmd");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                r#"{"storage":{"enabled":true,"backend":"s3"}}"#,
                "storage.s3.bucket",
            ),
            (r#"{"storage":{"enabled":true,"path":""}}"#, "storage.path"),
            (
                r#"{"actions":{"exec":[{"command":[]}]}}"#,
                "actions.exec[0].command",
            ),
            (
                r#"{"actions":{"webhook":[{"url":"ftp://x"}]}}"#,
                "actions.webhook[0].url",
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
            // Issue 16: 2^61 passed validation and made tokio's channel panic at start.
            (
                r#"{"actions":{"queue_capacity":2305843009213693952}}"#,
                "actions.queue_capacity",
            ),
            (
                r#"{"actions":{"queue_capacity":1048577}}"#,
                "actions.queue_capacity",
            ),
            (
                r#"{"plugins":{"lua":{"timeout_ms":0}}}"#,
                "plugins.lua.timeout_ms",
            ),
            (
                r#"{"plugins":{"lua":{"memory_limit_bytes":0}}}"#,
                "plugins.lua.memory_limit_bytes",
            ),
        ];
        for (doc, key) in cases {
            let e = DispatchConfig::from_json(doc).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{doc}: {e}");
            assert_eq!(e.key(), key, "{doc}: {e}");
        }
    }
}
