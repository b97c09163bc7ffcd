//! `pressured --replay FILE`: runs a recorded or hand-made sample timeline through the engine.

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use pressure_core::{Config, Engine, replay};

use crate::sink::{ActionsSetup, EventSink};

/// Replays `path` (`-` = stdin). Malformed lines are reported with their number and field and skipped;
/// the run goes on and fails at the end if any were skipped. The configured actions run for every event,
/// and the replay waits for them before returning.
pub(crate) async fn run(
    config: &Config,
    actions: &ActionsSetup,
    path: &Path,
) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening replay file {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut engine = Engine::new(&config.thresholds, config.dry_run);
    let mut sink = EventSink::new(actions)?;
    let mut events = Vec::new();
    let mut last_t: Option<f64> = None;
    let mut bad = 0usize;
    let mut samples = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {} line {}", path.display(), i + 1))?;
        let record = match replay::parse_line(i + 1, &line) {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(err) => {
                tracing::warn!("{}: {err}", path.display());
                bad += 1;
                continue;
            }
        };
        // A new clock value starts a new poll cycle.
        if last_t.is_some_and(|t| t != record.t) {
            engine.end_cycle();
        }
        last_t = Some(record.t);
        samples += 1;
        engine.observe_sample(&record.sample, record.t, &mut events);
        for event in events.drain(..) {
            sink.emit(&event);
        }
    }
    // The actions run for the replayed events too; wait for them before exiting.
    sink.shutdown().await;
    tracing::info!(samples, malformed = bad, "replay finished");
    if bad > 0 {
        anyhow::bail!("{bad} malformed line(s) in {} were skipped", path.display());
    }
    Ok(())
}
