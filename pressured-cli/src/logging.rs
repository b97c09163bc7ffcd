//! Logs to stderr through `tracing`: human text by default, JSON with `--log-format json`.

use pressure_core::LogLevel;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber at `level` (the effective `log_level`).
pub(crate) fn init(level: LogLevel, format: LogFormat) -> anyhow::Result<()> {
    // A plain level (no `EnvFilter`: its directive parser brings a regex engine into the binary).
    let max: tracing::Level = level
        .as_str()
        .parse()
        .map_err(|e| anyhow::anyhow!("log level {}: {e}", level.as_str()))?;
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}
