//! The sample timeline format of `pressured --replay`: one JSON object per line.
//!
//! ```text
//! {"t": 0.0, "namespace": "shop", "pod": "cart-0", "container": "app", "pod_uid": "…",
//!  "usage_bytes": 700000000, "working_set_bytes": 650000000, "limit_bytes": 1073741824,
//!  "oom_kill_count": 0, "annotations": {"pressured.io/warn-percent": "60"}}
//! ```
//!
//! `t` (seconds, float) is the engine clock and the event timestamp (seconds since the Unix epoch; small
//! values are fine). Only `t` and `usage_bytes` are required. A missing `working_set_bytes` equals the usage;
//! a missing or `null` `limit_bytes` means unlimited. Optional extras: `container_id`, `node`, `pod_ip`,
//! `psi_some_avg10`. Blank lines and lines starting with `#` are skipped.
//!
//! Hostile input is a bad line, never a panic (issue 16): a line is at most [`MAX_LINE_BYTES`], any bytes
//! ([`parse_line_bytes`] reports non-UTF-8), and `t` at most [`MAX_T_SECONDS`] (the last second of year
//! 9999, the latest an RFC 3339 timestamp can show).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;

use crate::engine::{Engine, SlotId};
use crate::event::Event;
use crate::sample::{Psi, Reading, Sample, Target};

/// Runs parsed records through an [`Engine`] as `pressured --replay` does: a new clock value ends the
/// poll cycle of the previous one (so containers missing from three clock values are forgotten), then
/// the record's sample is observed at its `t`.
#[derive(Debug)]
pub struct Replayer {
    engine: Engine,
    last_t: Option<f64>,
}

impl Replayer {
    /// A replay through `engine`.
    pub fn new(engine: Engine) -> Replayer {
        Replayer {
            engine,
            last_t: None,
        }
    }

    /// Feeds one record; its events (all of its own container) are appended to `out`. Returns the
    /// container's slot, e.g. for [`Engine::thresholds`].
    pub fn feed(&mut self, record: &ReplayRecord, out: &mut Vec<Event>) -> SlotId {
        if self.last_t.is_some_and(|t| t != record.t) {
            self.engine.end_cycle();
        }
        self.last_t = Some(record.t);
        let id = self.engine.track(&record.sample.target);
        self.engine
            .observe(id, &record.sample.reading, record.t, out);
        id
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// A malformed replay line; names the line number and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("replay line {line}: {field}: {message}")]
pub struct ReplayError {
    /// 1-based line number.
    pub line: usize,
    /// Field at fault (`.` for the line itself).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The longest replay line accepted, in bytes; a reader skips the rest of a longer line and reports it.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The largest `t` accepted: 9999-12-31T23:59:59Z. Later clocks cannot be formatted as event timestamps
/// (and values past `u64` seconds would panic in `Duration::from_secs_f64`).
pub const MAX_T_SECONDS: f64 = 253_402_300_799.0;

/// One parsed line: the clock value and the sample.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRecord {
    /// Clock value, seconds.
    pub t: f64,
    /// The sample.
    pub sample: Sample,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    t: f64,
    namespace: Option<String>,
    pod: Option<String>,
    container: Option<String>,
    pod_uid: Option<String>,
    container_id: Option<String>,
    node: Option<String>,
    pod_ip: Option<String>,
    usage_bytes: u64,
    working_set_bytes: Option<u64>,
    #[serde(default)]
    limit_bytes: Option<u64>,
    oom_kill_count: Option<u64>,
    psi_some_avg10: Option<f64>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Parses line number `line` (1-based) from raw bytes: [`parse_line`] after a UTF-8 and a length check,
/// so a reader never has to stop at a line it cannot decode.
pub fn parse_line_bytes(line: usize, bytes: &[u8]) -> Result<Option<ReplayRecord>, ReplayError> {
    if bytes.len() > MAX_LINE_BYTES {
        return Err(ReplayError {
            line,
            field: ".".into(),
            message: format!("longer than {MAX_LINE_BYTES} bytes"),
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ReplayError {
        line,
        field: ".".into(),
        message: format!("not UTF-8: {e}"),
    })?;
    parse_line(line, text)
}

/// Parses line number `line` (1-based). `Ok(None)` for blank and comment lines.
pub fn parse_line(line: usize, text: &str) -> Result<Option<ReplayRecord>, ReplayError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(trimmed);
    let parsed: Line = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // A missing or unknown field is reported by serde on the object itself; name the field.
        let field = ["missing field `", "unknown field `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
            .unwrap_or(path);
        ReplayError {
            line,
            field,
            message: msg,
        }
    })?;
    if !parsed.t.is_finite() || parsed.t < 0.0 || parsed.t > MAX_T_SECONDS {
        return Err(ReplayError {
            line,
            field: "t".into(),
            message: format!(
                "{} is not a number of seconds from 0 to {MAX_T_SECONDS} (year 9999)",
                parsed.t
            ),
        });
    }
    let working_set = parsed.working_set_bytes.unwrap_or(parsed.usage_bytes);
    if working_set > parsed.usage_bytes {
        return Err(ReplayError {
            line,
            field: "working_set_bytes".into(),
            message: format!("{working_set} exceeds usage_bytes {}", parsed.usage_bytes),
        });
    }
    let reading = Reading {
        timestamp: UNIX_EPOCH + Duration::from_secs_f64(parsed.t),
        usage_bytes: parsed.usage_bytes,
        working_set_bytes: working_set,
        limit_bytes: parsed.limit_bytes,
        oom_kill_count: parsed.oom_kill_count,
        psi: parsed.psi_some_avg10.map(|v| Psi {
            some_avg10: v,
            ..Psi::default()
        }),
    };
    let target = Target {
        namespace: parsed.namespace.map(Into::into),
        pod_name: parsed.pod.map(Into::into),
        pod_uid: parsed.pod_uid.map(Into::into),
        container_name: parsed.container.map(Into::into),
        container_id: parsed.container_id.map(Into::into),
        node_name: parsed.node.map(Into::into),
        pod_ip: parsed.pod_ip.map(Into::into),
        annotations: parsed.annotations.into(),
        cgroup_path: None,
    };
    Ok(Some(ReplayRecord {
        t: parsed.t,
        sample: Sample { target, reading },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_line_defaults() {
        let r = parse_line(1, r#"{"t": 1.5, "usage_bytes": 10}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.t, 1.5);
        assert_eq!(r.sample.reading.working_set_bytes, 10);
        assert_eq!(r.sample.reading.limit_bytes, None);
        assert_eq!(r.sample.reading.oom_kill_count, None);
    }

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        assert_eq!(parse_line(1, "   "), Ok(None));
        assert_eq!(parse_line(2, "# a comment"), Ok(None));
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = parse_line(7, r#"{"t": 1, "usage_bytes": "lots"}"#).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (7, "usage_bytes"));
        let e = parse_line(3, r#"{"t": 1}"#).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "usage_bytes"));
        let e = parse_line(4, r#"{"t": 1, "usage_bytes": 1, "limt_bytes": 5}"#).unwrap_err();
        assert_eq!(e.field, "limt_bytes");
        let e = parse_line(5, r#"{"t": 1, "usage_bytes": 1, "working_set_bytes": 2}"#).unwrap_err();
        assert_eq!(e.field, "working_set_bytes");
        let e =
            parse_line(6, r#"{"t": 1, "usage_bytes": 1, "annotations": {"a": 1}}"#).unwrap_err();
        assert_eq!(e.field, "annotations.a");
        let e = parse_line(8, "not json").unwrap_err();
        assert_eq!(e.line, 8);
    }

    #[test]
    fn issue_16_huge_t_is_a_bad_line_not_a_panic() {
        for t in ["1e30", "1e12", "253402300800", "1.8446744073709552e19"] {
            let e = parse_line(1, &format!(r#"{{"t": {t}, "usage_bytes": 1}}"#)).unwrap_err();
            assert_eq!(e.field, "t", "{t}: {e}");
        }
        let r = parse_line(1, r#"{"t": 253402300799, "usage_bytes": 1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(r.t, MAX_T_SECONDS);
    }

    #[test]
    fn issue_16_non_utf8_and_overlong_lines_are_bad_lines() {
        let e =
            parse_line_bytes(2, b"{\"t\": 1, \"usage_bytes\": 1, \"pod\": \"\xff\"}").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "."));
        assert!(e.message.contains("UTF-8"), "{e}");
        let long = vec![b' '; MAX_LINE_BYTES + 1];
        let e = parse_line_bytes(3, &long).unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
        assert!(parse_line_bytes(4, br#"{"t": 1, "usage_bytes": 1}"#).is_ok());
    }

    #[test]
    fn issue_16_pods_without_namespace_are_keyed_by_pod() {
        let key = |pod: &str| {
            let line = format!(r#"{{"t":1,"pod":"{pod}","container":"c","usage_bytes":1}}"#);
            parse_line(1, &line).unwrap().unwrap().sample.target.key()
        };
        assert_ne!(key("a"), key("b"));
        assert_eq!(key("a"), key("a"));
    }
}
