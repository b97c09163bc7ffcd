//! The `pressured` configuration file: `pressure-core`'s sections (`source`, `thresholds`, `dry_run`,
//! `log_level`, `kubernetes`) and `pressure-actions`' (`plugins`, `storage`, `actions`) in one JSON document.
//!
//! One struct with all eight keys, because serde cannot reject unknown keys across a flattened struct;
//! each section keeps its own defaults (`Default`) and checks (`validate`) in its crate.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use pressure_actions::{ActionsConfig, DispatchConfig, PluginsConfig, StorageConfig};
use pressure_core::{
    ConfigError, KubernetesConfig, LogLevel, MetricsConfig, SourceConfig, ThresholdsConfig,
    from_json_strict,
};
use serde::{Deserialize, Serialize};

use crate::sink::ActionsSetup;

/// The largest configuration file read, in bytes.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads the configuration file at `path`: a regular file (or a symlink to one) of at most
/// [`MAX_CONFIG_BYTES`], as UTF-8.
///
/// Opened non-blocking so a FIFO fails at once instead of waiting for a writer, and read through a
/// [`Read::take`] so a file that grows while read (or lies about its size, as `/proc` files do) still
/// cannot take more than the cap (issue 16: `-c /dev/zero` ran the host out of memory, `-c FIFO` hung).
pub(crate) fn read_file(path: &Path) -> anyhow::Result<String> {
    let shown = path.display();
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("reading config {shown}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading config {shown}"))?;
    if !meta.is_file() {
        anyhow::bail!("config {shown} is not a regular file");
    }
    if meta.len() > MAX_CONFIG_BYTES {
        anyhow::bail!(
            "config {shown} is {} bytes, more than the maximum {MAX_CONFIG_BYTES}",
            meta.len()
        );
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading config {shown}"))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        anyhow::bail!("config {shown} is more than the maximum {MAX_CONFIG_BYTES} bytes");
    }
    String::from_utf8(bytes).with_context(|| format!("config {shown} is not UTF-8"))
}

/// The whole configuration file. The fields mirror the sections; see `pressure_core::Config` and
/// `pressure_actions::DispatchConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileConfig {
    pub(crate) source: SourceConfig,
    pub(crate) thresholds: ThresholdsConfig,
    pub(crate) dry_run: bool,
    pub(crate) log_level: LogLevel,
    pub(crate) plugins: PluginsConfig,
    pub(crate) storage: StorageConfig,
    pub(crate) actions: ActionsConfig,
    pub(crate) kubernetes: KubernetesConfig,
    pub(crate) metrics: MetricsConfig,
}

impl FileConfig {
    /// Parses and validates a configuration file; errors name the full key (and the nearest valid key
    /// for an unknown one).
    pub(crate) fn from_json(text: &str) -> Result<FileConfig, ConfigError> {
        let config: FileConfig = from_json_strict(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section's values.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.thresholds.validate()?;
        self.source.validate()?;
        self.plugins.validate()?;
        self.storage.validate()?;
        self.actions.validate()
    }

    /// The effective configuration as pretty JSON (what `--check-config` prints).
    pub(crate) fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("config always serializes")
    }

    /// The sampling side (for the engine and the sources) and the actions' side (for the sink).
    pub(crate) fn split(self) -> (pressure_core::Config, ActionsSetup) {
        // Lua scripts see the whole file as `config`, as in the original pressured.
        let document = serde_json::to_value(&self).expect("config always serializes");
        let core = pressure_core::Config {
            source: self.source,
            thresholds: self.thresholds,
            dry_run: self.dry_run,
            log_level: self.log_level,
            kubernetes: self.kubernetes,
            metrics: self.metrics,
        };
        let actions = ActionsSetup {
            config: DispatchConfig {
                dry_run: self.dry_run,
                plugins: self.plugins,
                storage: self.storage,
                actions: self.actions,
            },
            script_config: document,
        };
        (core, actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_16_config_must_be_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        // A character device and a FIFO fail at once (a FIFO without a writer would block an open).
        let e = read_file(Path::new("/dev/zero")).unwrap_err();
        assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_file(&fifo).unwrap_err();
        assert!(format!("{e:#}").contains("not a regular file"), "{e:#}");
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let e = read_file(&big).unwrap_err();
        assert!(format!("{e:#}").contains("maximum"), "{e:#}");
        let ok = dir.path().join("ok.json");
        std::fs::write(&ok, "{}").unwrap();
        assert_eq!(read_file(&ok).unwrap(), "{}");
    }

    #[test]
    fn empty_document_gives_every_sections_defaults() {
        let c = FileConfig::from_json("{}").unwrap();
        assert_eq!(c, FileConfig::default());
        let (core, actions) = c.split();
        assert_eq!(core, pressure_core::Config::default());
        assert_eq!(actions.config, DispatchConfig::default());
    }

    #[test]
    fn unknown_keys_of_any_section_name_full_path_and_nearest_key() {
        for (doc, key, nearest) in [
            (
                r#"{"thresholds":{"warn_precent":50}}"#,
                "thresholds.warn_precent",
                "`thresholds.warn_percent`",
            ),
            (r#"{"dryrun":true}"#, "dryrun", "`dry_run`"),
            (r#"{"storag":{}}"#, "storag", "`storage`"),
            (
                r#"{"storage":{"pth":"/x"}}"#,
                "storage.pth",
                "`storage.path`",
            ),
            (
                r#"{"plugins":{"lua":{"enabeld":true}}}"#,
                "plugins.lua.enabeld",
                "`plugins.lua.enabled`",
            ),
        ] {
            let e = FileConfig::from_json(doc).unwrap_err();
            assert_eq!(e.key(), key, "{doc}: {e}");
            assert!(e.to_string().contains(nearest), "{doc}: {e}");
        }
    }

    #[test]
    fn invalid_values_of_any_section_name_the_key() {
        for (doc, key) in [
            (
                r#"{"thresholds":{"warn_percent":90,"critical_percent":80}}"#,
                "thresholds.warn_percent",
            ),
            (
                r#"{"source":{"poll_interval_ms":0}}"#,
                "source.poll_interval_ms",
            ),
            (
                r#"{"plugins":{"lua":{"timeout_ms":0}}}"#,
                "plugins.lua.timeout_ms",
            ),
            (
                r#"{"storage":{"enabled":true,"backend":"s3"}}"#,
                "storage.s3.bucket",
            ),
            (
                r#"{"actions":{"queue_capacity":0}}"#,
                "actions.queue_capacity",
            ),
        ] {
            let e = FileConfig::from_json(doc).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { .. }), "{doc}: {e}");
            assert_eq!(e.key(), key, "{doc}: {e}");
        }
    }

    #[test]
    fn effective_config_keeps_the_file_shape_and_round_trips() {
        let c = FileConfig::from_json(r#"{"thresholds":{"warn_percent":65}}"#).unwrap();
        let text = c.to_json_pretty();
        // The top-level keys in the order of the original file format.
        let at: Vec<usize> = [
            "source",
            "thresholds",
            "dry_run",
            "log_level",
            "plugins",
            "storage",
            "actions",
        ]
        .iter()
        .map(|k| {
            text.find(&format!("\n  \"{k}\":"))
                .unwrap_or_else(|| panic!("{k}: {text}"))
        })
        .collect();
        assert!(at.is_sorted(), "{text}");
        assert_eq!(FileConfig::from_json(&text).unwrap(), c);
    }

    #[test]
    fn split_hands_dry_run_to_both_sides_and_the_whole_file_to_scripts() {
        let c =
            FileConfig::from_json(r#"{"dry_run":true,"thresholds":{"warn_percent":65}}"#).unwrap();
        let (core, actions) = c.split();
        assert!(core.dry_run && actions.config.dry_run);
        assert_eq!(actions.script_config["thresholds"]["warn_percent"], 65.0);
        assert_eq!(
            actions.script_config["storage"]["path"],
            "/var/lib/pressured"
        );
    }
}
