//! Configuration sections of the actions: `plugins` (Lua), `storage` and `actions` (exec, webhook,
//! heap-profile capture). Owned by `pressure-actions`; the model lives here so `Config` can validate all
//! keys in one pass without I/O.

use serde::{Deserialize, Serialize};

/// `plugins`: scripting plugins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// `plugins.lua`: Lua scripts run on every event.
    pub lua: LuaConfig,
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `storage.enabled` [false].
    pub enabled: bool,
    /// `storage.backend`: `local` \[default\] or `s3`.
    pub backend: StorageBackend,
    /// `storage.path`: root directory of the local backend (or env `PRESSURED_STORAGE_PATH`).
    pub path: Option<String>,
    /// `storage.s3`: the S3 backend.
    pub s3: S3Config,
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
    /// `actions.queue_capacity` [None = built-in default]: bounded queue between sampling and actions.
    pub queue_capacity: Option<usize>,
    /// `actions.exec`: programs run per event.
    pub exec: Vec<ExecAction>,
    /// `actions.webhook`: URLs the event JSON is POSTed to.
    pub webhook: Vec<WebhookAction>,
    /// `actions.heap_profile`: built-in heap-profile capture of annotated Go pods.
    pub heap_profile: HeapProfileConfig,
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
