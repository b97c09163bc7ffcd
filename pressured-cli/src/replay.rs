//! `pressured --replay FILE`: runs a recorded or hand-made sample timeline through the engine.

use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::Context;
use pressure_core::replay::{self, MAX_LINE_BYTES, Replayer};
use pressure_core::{Config, Engine};

use crate::sink::{ActionsSetup, EventSink};

/// Replays `path` (`-` = stdin). Malformed lines (bad JSON, bad values, non-UTF-8, longer than
/// [`MAX_LINE_BYTES`]) are reported with their number and field and skipped; the run goes on and fails at
/// the end if any were skipped. The configured actions run for every event — a full action queue makes
/// the replay wait rather than drop — and the replay waits for them before returning.
pub(crate) async fn run(
    config: &Config,
    actions: &ActionsSetup,
    path: &Path,
) -> anyhow::Result<()> {
    let mut records = Records::open(path)?;
    let mut replayer = Replayer::new(Engine::new(&config.thresholds, config.dry_run));
    let mut sink = EventSink::new(actions)?;
    let mut events = Vec::new();
    let mut samples = 0usize;
    while let Some(record) = records.next_record()? {
        samples += 1;
        replayer.feed(&record, &mut events);
        for event in events.drain(..) {
            sink.emit_wait(&event).await;
        }
    }
    // The actions run for the replayed events too; wait for them before exiting.
    sink.shutdown().await;
    let bad = records.malformed;
    tracing::info!(samples, malformed = bad, "replay finished");
    records.finish()
}

/// The records of a replay file (`-` = stdin), read line by line with a bound on each line; malformed
/// lines are logged (a warning with the line number and field), counted and skipped.
pub(crate) struct Records {
    reader: Box<dyn BufRead>,
    path: std::path::PathBuf,
    buf: Vec<u8>,
    number: usize,
    /// Malformed lines skipped so far.
    pub(crate) malformed: usize,
}

impl Records {
    /// Opens `path` (`-` = stdin).
    pub(crate) fn open(path: &Path) -> anyhow::Result<Records> {
        let reader: Box<dyn BufRead> = if path == Path::new("-") {
            Box::new(std::io::stdin().lock())
        } else {
            let file = std::fs::File::open(path)
                .with_context(|| format!("opening replay file {}", path.display()))?;
            Box::new(std::io::BufReader::new(file))
        };
        Ok(Records {
            reader,
            path: path.to_owned(),
            buf: Vec::new(),
            number: 0,
            malformed: 0,
        })
    }

    /// The next well-formed record; `None` at the end.
    pub(crate) fn next_record(&mut self) -> anyhow::Result<Option<replay::ReplayRecord>> {
        loop {
            self.number += 1;
            let number = self.number;
            let more = read_line(&mut self.reader, &mut self.buf)
                .with_context(|| format!("reading {} line {number}", self.path.display()))?;
            let Some(line) = more else { return Ok(None) };
            match replay::parse_line_bytes(number, line) {
                Ok(Some(record)) => return Ok(Some(record)),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!("{}: {err}", self.path.display());
                    self.malformed += 1;
                }
            }
        }
    }

    /// An error if any line was malformed (the run goes on and fails at the end).
    pub(crate) fn finish(&self) -> anyhow::Result<()> {
        if self.malformed > 0 {
            anyhow::bail!(
                "{} malformed line(s) in {} were skipped",
                self.malformed,
                self.path.display()
            );
        }
        Ok(())
    }
}

/// Reads one line (without its `\n`) into `buf`, keeping at most [`MAX_LINE_BYTES`] + 1 bytes of it so a
/// line without end cannot take the memory (the parser reports the overlong line; the rest of it is read
/// and thrown away). `None` at the end of the input.
fn read_line<'a>(
    reader: &mut dyn BufRead,
    buf: &'a mut Vec<u8>,
) -> std::io::Result<Option<&'a [u8]>> {
    buf.clear();
    let cap = MAX_LINE_BYTES as u64 + 1;
    let n = (&mut *reader).take(cap).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if n as u64 == cap {
        // Overlong: skip to the end of the line without keeping it.
        skip_line(reader)?;
    }
    Ok(Some(buf))
}

/// Consumes input up to and including the next `\n` (or the end), buffer by buffer.
fn skip_line(reader: &mut dyn BufRead) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut reader: &[u8] = input;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(line) = read_line(&mut reader, &mut buf).unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn issue_16_lines_are_bounded_and_any_bytes_go_through() {
        assert_eq!(
            lines(b"a\n\xff\xfe\nb"),
            [b"a".to_vec(), b"\xff\xfe".to_vec(), b"b".to_vec()]
        );
        let mut input = vec![b'x'; 3 * MAX_LINE_BYTES];
        input.extend_from_slice(b"\nnext\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].len(),
            MAX_LINE_BYTES + 1,
            "kept only the cap plus one byte"
        );
        assert_eq!(got[1], b"next");
        // Exactly the cap still fits.
        let mut input = vec![b'y'; MAX_LINE_BYTES];
        input.push(b'\n');
        assert_eq!(lines(&input)[0].len(), MAX_LINE_BYTES);
    }
}
