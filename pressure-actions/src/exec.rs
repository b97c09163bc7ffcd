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
/// Output kept in memory per stream: the first and the last this many bytes; what lies between is
/// read and counted but not kept, so a program printing 1 GiB costs 128 KiB (issue 16).
const OUTPUT_KEEP_BYTES: usize = 64 * 1024;

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

/// A stream's output with a memory bound: its first and last [`OUTPUT_KEEP_BYTES`] and its length.
#[derive(Debug, Default)]
pub(crate) struct HeadTail {
    head: Vec<u8>,
    /// The last bytes; between [`OUTPUT_KEEP_BYTES`] and twice that before it is trimmed.
    tail: Vec<u8>,
    total: u64,
}

impl HeadTail {
    pub(crate) fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = OUTPUT_KEEP_BYTES - self.head.len();
        if room > 0 {
            let n = room.min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= OUTPUT_KEEP_BYTES {
            self.tail.clear();
            self.tail
                .extend_from_slice(&data[data.len() - OUTPUT_KEEP_BYTES..]);
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() >= 2 * OUTPUT_KEEP_BYTES {
                self.tail.drain(..self.tail.len() - OUTPUT_KEEP_BYTES);
            }
        }
    }

    /// The kept output: all of it when it fit, else head, a marker with the bytes left out, and tail.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let tail_start = self.tail.len().saturating_sub(OUTPUT_KEEP_BYTES);
        let tail = &self.tail[tail_start..];
        let kept = (self.head.len() + tail.len()) as u64;
        let mut out = self.head.clone();
        if kept < self.total {
            out.extend_from_slice(
                format!("\n[… {} bytes left out …]\n", self.total - kept).as_bytes(),
            );
        }
        out.extend_from_slice(tail);
        out
    }

    /// Bytes the stream produced.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

/// Reads a stream to its end into a [`HeadTail`].
async fn read_capped(stream: &mut (impl tokio::io::AsyncRead + Unpin), into: &mut HeadTail) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        into.push(&buf[..n]);
    }
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
                let mut out = HeadTail::default();
                let mut err = HeadTail::default();
                let read_out = async {
                    if let Some(s) = stdout.as_mut() {
                        read_capped(s, &mut out).await;
                    }
                };
                let read_err = async {
                    if let Some(s) = stderr.as_mut() {
                        read_capped(s, &mut err).await;
                    }
                };
                let ((), (), (), status) = tokio::join!(feed, read_out, read_err, child.wait());
                (status, out, err)
            };
            match tokio::time::timeout(timeout, run).await {
                Ok((status, out, err)) => {
                    let status = status.map_err(|e| fail(format!("wait: {e}")))?;
                    let (out_bytes, err_bytes) = (out.total(), err.total());
                    let (out, err) = (tail(&out.bytes()), tail(&err.bytes()));
                    if status.success() {
                        tracing::info!(program, %status, stdout_bytes = out_bytes, stderr_bytes = err_bytes,
                            stdout = %out, stderr = %err, "exec action finished");
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16 (5): an exec action printing 1 GiB was buffered whole; the first and last 64 KiB are
    /// kept, whatever the chunk sizes.
    #[test]
    fn issue_16_output_keeps_head_and_tail_only() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        for chunk in [1, 7, 4096, 65536, 200_000] {
            let mut ht = HeadTail::default();
            for c in data.chunks(chunk) {
                ht.push(c);
                assert!(ht.head.len() + ht.tail.len() <= 3 * OUTPUT_KEEP_BYTES);
            }
            assert_eq!(ht.total(), data.len() as u64);
            let kept = ht.bytes();
            assert_eq!(
                &kept[..OUTPUT_KEEP_BYTES],
                &data[..OUTPUT_KEEP_BYTES],
                "{chunk}"
            );
            assert!(
                kept.ends_with(&data[data.len() - OUTPUT_KEEP_BYTES..]),
                "{chunk}"
            );
            let left_out = data.len() - 2 * OUTPUT_KEEP_BYTES;
            let marker = format!("[… {left_out} bytes left out …]");
            assert!(String::from_utf8_lossy(&kept).contains(&marker), "{chunk}");
        }
        let mut small = HeadTail::default();
        small.push(b"hello ");
        small.push(b"world");
        assert_eq!(small.bytes(), b"hello world");
    }
}
