//! The `exec` action: runs a program per event with the event JSON on stdin (no shell).

use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use pressure_core::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ActionsError;
use crate::action::{Action, ActionContext};

/// `actions.exec[].timeout_ms` default.
const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Output kept for the log, per stream.
const OUTPUT_LOG_BYTES: usize = 4096;

/// Whether an event matches an `events` filter (empty = all).
pub(crate) fn matches(filter: &[String], event: &Event) -> bool {
    filter.is_empty() || filter.iter().any(|f| f == event.event_type.as_str())
}

/// One `actions.exec[]` entry.
#[derive(Debug)]
pub(crate) struct ExecAction {
    config: crate::config::ExecAction,
}

impl ExecAction {
    pub(crate) fn new(config: crate::config::ExecAction) -> Self {
        ExecAction { config }
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_LOG_BYTES);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

impl Action for ExecAction {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>> {
        Box::pin(async move {
            if !matches(&self.config.events, event) {
                return Ok(());
            }
            let program = self.config.command[0].clone();
            if ctx.dry_run() {
                tracing::info!(program, "dry run: exec action not run");
                return Ok(());
            }
            let fail = |message: String| ActionsError::Exec {
                program: program.clone(),
                message,
            };
            let timeout =
                Duration::from_millis(self.config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
            let mut child = tokio::process::Command::new(&program)
                .args(&self.config.command[1..])
                .env("PRESSURED_EVENT_TYPE", event.event_type.as_str())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Its own process group, so a timeout kills what it started too.
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| fail(format!("cannot start: {e}")))?;
            let pid = child.id();
            let json = event.to_json_line() + "\n";
            let mut stdin = child.stdin.take();
            let mut stdout = child.stdout.take();
            let mut stderr = child.stderr.take();
            let run = async {
                let feed = async {
                    if let Some(mut s) = stdin.take() {
                        // A program that does not read its stdin is fine: ignore EPIPE.
                        let _ = s.write_all(json.as_bytes()).await;
                    }
                };
                let mut out = Vec::new();
                let mut err = Vec::new();
                let read_out = async {
                    if let Some(s) = stdout.as_mut() {
                        let _ = s.read_to_end(&mut out).await;
                    }
                };
                let read_err = async {
                    if let Some(s) = stderr.as_mut() {
                        let _ = s.read_to_end(&mut err).await;
                    }
                };
                let ((), (), (), status) = tokio::join!(feed, read_out, read_err, child.wait());
                (status, out, err)
            };
            match tokio::time::timeout(timeout, run).await {
                Ok((status, out, err)) => {
                    let status = status.map_err(|e| fail(format!("wait: {e}")))?;
                    let (out, err) = (tail(&out), tail(&err));
                    if status.success() {
                        tracing::info!(program, %status, stdout = %out, stderr = %err, "exec action finished");
                        Ok(())
                    } else {
                        Err(fail(format!("exited with {status}; stderr: {err}")))
                    }
                }
                Err(_) => {
                    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                        // SAFETY: kill(2) with a negative pid signals the child's own process group
                        // (created above with process_group(0)); no memory is involved.
                        unsafe {
                            libc::kill(-pid, libc::SIGKILL);
                        }
                    }
                    let _ = child.kill().await;
                    Err(fail(format!(
                        "timed out after {} ms and was killed",
                        timeout.as_millis()
                    )))
                }
            }
        })
    }
}
