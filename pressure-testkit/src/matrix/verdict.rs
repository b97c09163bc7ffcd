//! Judging a scenario from what the guest reported: every expectation of issue 8 is checked here, on
//! the host, so a missing marker, a missing field or an extra event is a failure with its reason.

use serde_json::Value;

use super::guest::{OomCase, PodIds};
use super::report::ScenarioLog;

/// The outcome of one scenario on one kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Every expectation held.
    pub pass: bool,
    /// The key figures, one short line (shown in the table).
    pub figures: String,
    /// Why it failed (empty on a pass).
    pub reasons: Vec<String>,
}

impl Verdict {
    /// A failure with one reason and no figures (e.g. the binary is missing, the guest did not boot).
    pub fn fail(reason: impl Into<String>) -> Verdict {
        Verdict {
            pass: false,
            figures: String::new(),
            reasons: vec![reason.into()],
        }
    }

    fn from_reasons(figures: String, reasons: Vec<String>) -> Verdict {
        Verdict {
            pass: reasons.is_empty(),
            figures,
            reasons,
        }
    }
}

/// The last stderr lines of the program, for a failure message.
fn stderr_tail(log: &ScenarioLog) -> String {
    let tail: Vec<&str> = log
        .err
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    if tail.is_empty() {
        "stderr empty".into()
    } else {
        format!("stderr tail: {}", tail.join(" | "))
    }
}

/// Checks common to all scenarios; `None` when the scenario has a log worth judging.
fn started<'a>(log: Option<&'a ScenarioLog>, name: &str) -> Result<&'a ScenarioLog, Verdict> {
    match log {
        None => Err(Verdict::fail(format!(
            "{name}: the guest never started this scenario (did it boot? see the console log)"
        ))),
        Some(l) if !l.ended() => Err(Verdict::fail(format!(
            "{name}: no end marker (guest crashed or timed out mid-scenario); {}",
            stderr_tail(l)
        ))),
        Some(l) => Ok(l),
    }
}

/// The program's stdout parsed as JSON objects; a line that is not one is a reason.
fn json_lines(log: &ScenarioLog, reasons: &mut Vec<String>) -> Vec<Value> {
    let mut events = Vec::new();
    for (i, line) in log.out.iter().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => events.push(v),
            _ => reasons.push(format!(
                "stdout line {} is not a JSON object: {:.120}",
                i + 1,
                line
            )),
        }
    }
    events
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp (`2026-11-24T00:13:17.123456Z`).
pub fn rfc3339_seconds(ts: &str) -> Option<f64> {
    let ts = ts.strip_suffix('Z').or_else(|| ts.strip_suffix("+00:00"))?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (hh, mm) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// Scenario 1: `pressured` node mode saw warn, critical and predicted_oom before the kill, then
/// oom_killed, all for the right pod and container, with PSI.
pub fn judge_pressured(log: Option<&ScenarioLog>, ids: &PodIds, limit: u64) -> Verdict {
    let log = match started(log, "pressured") {
        Ok(l) => l,
        Err(v) => return v,
    };
    let mut reasons = Vec::new();
    if log.get("alive") != Some("yes") {
        reasons.push(format!(
            "pressured exited before the end (rc={:?}); {}",
            log.rc,
            stderr_tail(log)
        ));
    }
    if log.get("hog_rc") != Some("137") {
        reasons.push(format!(
            "the container's hog was not SIGKILLed (exit {:?}): no OOM to watch",
            log.get("hog_rc")
        ));
    }
    if log.get("kills") != Some("1") {
        reasons.push(format!(
            "the kernel logged {:?} oom-kill records, expected 1",
            log.get("kills")
        ));
    }
    let events = json_lines(log, &mut reasons);
    let ours: Vec<&Value> = events
        .iter()
        .filter(|e| str_field(e, "container_id") == Some(ids.container_id.as_str()))
        .collect();
    for e in &ours {
        if str_field(e, "pod_uid") != Some(ids.uid.as_str()) {
            reasons.push(format!(
                "event {} has pod_uid {:?}, expected {}",
                str_field(e, "event_type").unwrap_or("?"),
                e.get("pod_uid"),
                ids.uid
            ));
        }
    }
    let find = |ty: &str, sev: Option<&str>| {
        ours.iter().position(|e| {
            str_field(e, "event_type") == Some(ty)
                && sev.is_none_or(|s| str_field(e, "severity") == Some(s))
        })
    };
    let wanted = [
        (
            "memory_pressure warn",
            find("memory_pressure", Some("warn")),
        ),
        (
            "memory_pressure critical",
            find("memory_pressure", Some("critical")),
        ),
        ("predicted_oom", find("predicted_oom", None)),
        ("oom_killed", find("oom_killed", None)),
    ];
    for (name, at) in &wanted {
        if at.is_none() {
            reasons.push(format!(
                "no {name} event for container {:.12} ({} events in all, {} for it); {}",
                ids.container_id,
                events.len(),
                ours.len(),
                stderr_tail(log)
            ));
        }
    }
    let killed = wanted[3].1;
    for (name, at) in &wanted[..3] {
        if let (Some(at), Some(k)) = (at, killed) {
            if *at > k {
                reasons.push(format!("{name} came after oom_killed"));
            }
            if ours[*at]
                .get("oom_kill_count")
                .and_then(Value::as_u64)
                .is_some_and(|n| n > 0)
            {
                reasons.push(format!(
                    "{name} was sampled after the kill (oom_kill_count > 0)"
                ));
            }
        }
    }
    for (name, at) in &wanted {
        if let Some(at) = at {
            let e = ours[*at];
            if e.get("psi_some_avg10").is_none_or(Value::is_null) {
                reasons.push(format!("{name}: psi_some_avg10 is null"));
            }
            if e.get("limit_bytes").and_then(Value::as_u64) != Some(limit) {
                reasons.push(format!(
                    "{name}: limit_bytes {:?}, expected {limit}",
                    e.get("limit_bytes")
                ));
            }
        }
    }
    let ts = |at: Option<usize>| {
        at.and_then(|i| str_field(ours[i], "timestamp"))
            .and_then(rfc3339_seconds)
    };
    let pct = |at: Option<usize>| {
        at.and_then(|i| ours[i].get("usage_percent").and_then(Value::as_f64))
            .map_or("?".into(), |p| format!("{p:.0}%"))
    };
    let mut figures = format!("warn@{} crit@{}", pct(wanted[0].1), pct(wanted[1].1));
    if let Some(eta) = wanted[2]
        .1
        .and_then(|i| ours[i].get("eta_seconds").and_then(Value::as_f64))
    {
        figures.push_str(&format!(" eta={eta:.1}s"));
    }
    if let (Some(c), Some(k)) = (ts(wanted[1].1), ts(killed)) {
        figures.push_str(&format!(" crit→kill={:.0}ms", (k - c) * 1000.0));
    }
    let psi = ours
        .iter()
        .filter_map(|e| e.get("psi_some_avg10").and_then(Value::as_f64))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    if let Some(psi) = psi {
        figures.push_str(&format!(" psi10max={psi:.2}"));
    }
    figures.push_str(&format!(" events={}", ours.len()));
    Verdict::from_reasons(figures, reasons)
}

/// Scenario 4: the sidecar as the chart runs it. Everything of [`judge_pressured`] (for the app
/// container), and: it ran as `chart` says (uid, capabilities, `no_new_privs`), as PID 1 of its own
/// PID namespace, in a cgroup namespace of its own (where `/proc/self/cgroup` reads `/`); it found its pod without `POD_UID` (by the
/// `cgroup.procs` listing its PID); OOM wake-ups were on (v2: inotify on `memory.events` needs no
/// privilege) and none was refused.
pub fn judge_sidecar(
    log: Option<&ScenarioLog>,
    ids: &PodIds,
    limit: u64,
    chart: &crate::ChartSecurity,
) -> Verdict {
    let mut verdict = judge_pressured(log, ids, limit);
    let Some(log) = log.filter(|l| l.ended()) else {
        return verdict;
    };
    let mut reasons = Vec::new();
    let want = [
        ("uid", chart.uid.to_string()),
        ("capeff", format!("{:016x}", chart.effective_mask())),
        (
            "nonewprivs",
            if chart.no_new_privs { "1" } else { "0" }.to_owned(),
        ),
        ("nspid", "1".to_owned()),
        ("cgroupns", "own".to_owned()),
    ];
    for (key, value) in &want {
        if log.get(key) != Some(value.as_str()) {
            reasons.push(format!(
                "sandbox: {key} is {:?}, expected {value}",
                log.get(key)
            ));
        }
    }
    let err = log.err.join("\n");
    for (needle, what) in [
        (
            "own pod from the cgroup.procs listing this process",
            "found its pod by cgroup.procs",
        ),
        ("oom_wakeups=true", "OOM wake-ups on"),
        (ids.uid.as_str(), "named its pod"),
    ] {
        if !err.contains(needle) {
            reasons.push(format!(
                "stderr shows no {what} ({needle:?}); {}",
                stderr_tail(log)
            ));
        }
    }
    if err.contains("OOM wake-ups refused") {
        reasons.push("OOM wake-ups were refused (v2 inotify should work unprivileged)".into());
    }
    verdict.pass &= reasons.is_empty();
    verdict.reasons.extend(reasons);
    verdict
}

fn normalise_cgroup(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// `CONSTRAINT_MEMCG`, `memcg`, `Memcg` → `memcg`.
fn normalise_constraint(c: &str) -> String {
    c.trim_start_matches("CONSTRAINT_").to_ascii_lowercase()
}

/// Scenarios 2 and 3: `oom-tracer --no-kubernetes` reported each of the three OOMs exactly once, with
/// the right kind, constraint, limit-hit cgroup, task cgroup, pod UID, container ID and source.
pub fn judge_tracer(
    log: Option<&ScenarioLog>,
    name: &str,
    pods: &[PodIds; 3],
    source: &str,
) -> Verdict {
    let log = match started(log, name) {
        Ok(l) => l,
        Err(v) => return v,
    };
    let mut reasons = Vec::new();
    if log.get("ready") != Some("yes") {
        return Verdict::fail(format!(
            "oom-tracer never answered GET /readyz on 127.0.0.1:9464 (alive={:?}, rc={:?}); {}",
            log.get("alive"),
            log.rc,
            stderr_tail(log)
        ));
    }
    if log.get("alive") != Some("yes") {
        reasons.push(format!(
            "oom-tracer died during the run (rc={:?}); {}",
            log.rc,
            stderr_tail(log)
        ));
    }
    let events = json_lines(log, &mut reasons);
    let mut matched = [0usize; 3];
    let mut kinds = Vec::new();
    for e in &events {
        let cid = str_field(e, "container_id");
        let uid = str_field(e, "pod_uid");
        let Some(i) = pods
            .iter()
            .position(|p| Some(p.container_id.as_str()) == cid || Some(p.uid.as_str()) == uid)
        else {
            reasons.push(format!("unexpected event (no pod of this run): {e}"));
            continue;
        };
        matched[i] += 1;
        let case = OomCase::ALL[i];
        let p = &pods[i];
        let scope = p.container_scope(case.qos());
        let (kind, constraint, limit_hit) = match case {
            OomCase::Container => ("memcg", "memcg", Some(scope.clone())),
            OomCase::Pod => ("memcg", "memcg", Some(p.pod_slice(case.qos()))),
            OomCase::Global => ("global", "none", None),
        };
        let c = case.name();
        let mut check = |field: &str, ok: bool, expected: &str| {
            if !ok {
                reasons.push(format!(
                    "{c} OOM: {field} is {}, expected {expected}",
                    e.get(field).map_or("missing".into(), Value::to_string)
                ));
            }
        };
        check("kind", str_field(e, "kind") == Some(kind), kind);
        check(
            "constraint",
            str_field(e, "constraint")
                .map(normalise_constraint)
                .as_deref()
                == Some(constraint),
            constraint,
        );
        match &limit_hit {
            Some(cg) => check(
                "oom_memcg",
                str_field(e, "oom_memcg").map(normalise_cgroup).as_deref() == Some(cg.as_str()),
                cg,
            ),
            None => check(
                "oom_memcg",
                str_field(e, "oom_memcg").is_none_or(|m| m.trim_matches('/').is_empty()),
                "null or /",
            ),
        }
        check(
            "task_memcg",
            str_field(e, "task_memcg").map(normalise_cgroup).as_deref() == Some(scope.as_str()),
            &scope,
        );
        check("pod_uid", uid == Some(p.uid.as_str()), &p.uid);
        check(
            "container_id",
            cid == Some(p.container_id.as_str()),
            &p.container_id,
        );
        check("source", str_field(e, "source") == Some(source), source);
        kinds.push(str_field(e, "kind").unwrap_or("?").to_string());
    }
    for (i, case) in OomCase::ALL.iter().enumerate() {
        let c = case.name();
        if log.case_get(c, "hog_rc") != Some("137") {
            reasons.push(format!(
                "{c} OOM: the hog was not SIGKILLed (exit {:?}): the guest did not cause it",
                log.case_get(c, "hog_rc")
            ));
        }
        let kills = log.case_get(c, "kills");
        if kills != Some("1") {
            reasons.push(format!(
                "{c} OOM: the kernel logged {kills:?} oom-kill records, expected 1"
            ));
        }
        if matched[i] != 1 {
            reasons.push(format!(
                "{c} OOM: {} events, expected exactly 1; {}",
                matched[i],
                stderr_tail(log)
            ));
        }
    }
    let ready = log
        .get("ready_after_s")
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(String::new(), |s| format!(" ready={s:.1}s"));
    // How the probe attached, when the tracer logs it (`bpf="tp_btf"`): informational only.
    let attach = log
        .err
        .iter()
        .find_map(|l| l.split_once("bpf=\"").and_then(|(_, r)| r.split_once('"')))
        .map_or(String::new(), |(m, _)| format!(" attach={m}"));
    let figures = format!(
        "{}/3 kills [{}] src={source}{attach}{ready}",
        matched.iter().filter(|&&n| n == 1).count(),
        kinds.join(",")
    );
    Verdict::from_reasons(figures, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::report::GuestReport;

    fn ids(n: u8) -> PodIds {
        PodIds::from_bytes(&[n; 48])
    }

    fn pressured_event(ty: &str, sev: &str, ts: &str, kills: u64, p: &PodIds) -> String {
        serde_json::json!({
            "timestamp": ts, "event_type": ty, "severity": sev, "previous_severity": "ok",
            "pod_uid": p.uid, "container_id": p.container_id, "usage_bytes": 1, "working_set_bytes": 1,
            "limit_bytes": 67108864u64, "usage_percent": 86.0, "oom_kill_count": kills,
            "eta_seconds": if ty == "predicted_oom" { Some(2.5) } else { None },
            "psi_some_avg10": 0.5
        })
        .to_string()
    }

    fn pressured_console(events: &[String]) -> String {
        let mut c = String::from(
            "@@KM begin pressured\n@@KM info pressured hog_rc=137\n@@KM info pressured kills=1\n\
             @@KM info pressured alive=yes\n",
        );
        for e in events {
            c.push_str(&format!("@@KM out pressured {e}\n"));
        }
        c.push_str("@@KM end pressured rc=0\n");
        c
    }

    /// A sidecar run: the pressured console renamed, the sandbox facts, and the log lines `err`.
    fn sidecar_console(events: &[String], facts: &str, err: &[&str]) -> String {
        let mut c = pressured_console(events)
            .replace("pressured ", "pressured-sidecar ")
            .replace("begin pressured\n", "begin pressured-sidecar\n");
        let end = c.rfind("@@KM end").expect("end marker");
        let mut extra = format!("@@KM info pressured-sidecar {facts}\n");
        for line in err {
            extra.push_str(&format!("@@KM err pressured-sidecar {line}\n"));
        }
        c.insert_str(end, &extra);
        c
    }

    #[test]
    fn sidecar_passes_sandboxed_found_by_cgroup_procs_with_wake_ups_and_fails_otherwise() {
        let p = ids(2);
        let ev = [
            pressured_event("memory_pressure", "warn", "2026-11-24T00:00:01.000Z", 0, &p),
            pressured_event("predicted_oom", "warn", "2026-11-24T00:00:01.200Z", 0, &p),
            pressured_event(
                "memory_pressure",
                "critical",
                "2026-11-24T00:00:01.500Z",
                0,
                &p,
            ),
            pressured_event("oom_killed", "critical", "2026-11-24T00:00:02.000Z", 1, &p),
        ];
        let chart = crate::ChartSecurity::pressured();
        let facts = "uid=65532 capeff=0000000000000000 nonewprivs=1 nspid=1 cgroupns=own";
        let found = format!(
            "INFO sidecar: own pod from the cgroup.procs listing this process pod_uid={}",
            p.uid
        );
        let start = format!(
            "INFO watching 3 cgroups (sidecar, pod {}) oom_wakeups=true",
            p.uid
        );
        let r = GuestReport::parse(&sidecar_console(&ev, facts, &[&found, &start]));
        let v = judge_sidecar(r.scenarios.get("pressured-sidecar"), &p, 64 << 20, &chart);
        assert!(v.pass, "{:?}", v.reasons);

        // Root, found by POD_UID, wake-ups refused: each is a reason.
        let root = "uid=0 capeff=0000000000000000 nonewprivs=1 nspid=1 cgroupns=own";
        let by_uid = format!("INFO sidecar: own pod from POD_UID pod_uid={}", p.uid);
        let refused = "WARN OOM wake-ups refused (permission denied)";
        let bad_start = start.replace("oom_wakeups=true", "oom_wakeups=false");
        let r = GuestReport::parse(&sidecar_console(&ev, root, &[&by_uid, refused, &bad_start]));
        let v = judge_sidecar(r.scenarios.get("pressured-sidecar"), &p, 64 << 20, &chart);
        assert!(!v.pass);
        let all = v.reasons.join("\n");
        assert!(
            all.contains("sandbox: uid is Some(\"0\"), expected 65532"),
            "{all}"
        );
        assert!(all.contains("found its pod by cgroup.procs"), "{all}");
        assert!(all.contains("OOM wake-ups were refused"), "{all}");
        assert!(all.contains("OOM wake-ups on"), "{all}");
    }

    #[test]
    fn pressured_passes_with_all_four_events_in_order() {
        let p = ids(1);
        let ev = [
            pressured_event("memory_pressure", "warn", "2026-11-24T00:00:01.000Z", 0, &p),
            pressured_event("predicted_oom", "warn", "2026-11-24T00:00:01.200Z", 0, &p),
            pressured_event(
                "memory_pressure",
                "critical",
                "2026-11-24T00:00:01.500Z",
                0,
                &p,
            ),
            pressured_event("oom_killed", "critical", "2026-11-24T00:00:02.000Z", 1, &p),
        ];
        let r = GuestReport::parse(&pressured_console(&ev));
        let v = judge_pressured(r.scenarios.get("pressured"), &p, 64 << 20);
        assert!(v.pass, "{:?}", v.reasons);
        assert!(v.figures.contains("crit→kill=500ms"), "{}", v.figures);
        assert!(v.figures.contains("eta=2.5s"), "{}", v.figures);
    }

    #[test]
    fn pressured_fails_without_critical_or_with_a_late_warning() {
        let p = ids(1);
        let ev = [
            pressured_event("oom_killed", "ok", "2026-11-24T00:00:02.000Z", 1, &p),
            pressured_event("memory_pressure", "warn", "2026-11-24T00:00:03.000Z", 1, &p),
            pressured_event("predicted_oom", "warn", "2026-11-24T00:00:01.200Z", 0, &p),
        ];
        let r = GuestReport::parse(&pressured_console(&ev));
        let v = judge_pressured(r.scenarios.get("pressured"), &p, 64 << 20);
        assert!(!v.pass);
        let all = v.reasons.join("\n");
        assert!(all.contains("no memory_pressure critical event"), "{all}");
        assert!(
            all.contains("memory_pressure warn came after oom_killed"),
            "{all}"
        );
        assert!(all.contains("sampled after the kill"), "{all}");
    }

    #[test]
    fn missing_scenario_or_stub_binary_fails_with_a_reason() {
        let p = ids(1);
        assert!(!judge_pressured(None, &p, 1).pass);
        // A stub binary: exits at once, prints nothing.
        let r = GuestReport::parse(
            "@@KM begin pressured\n@@KM info pressured hog_rc=137\n@@KM info pressured kills=1\n\
             @@KM info pressured alive=no\n@@KM end pressured rc=0\n",
        );
        let v = judge_pressured(r.scenarios.get("pressured"), &p, 1);
        assert!(!v.pass);
        assert!(
            v.reasons[0].contains("exited before the end"),
            "{:?}",
            v.reasons
        );
    }

    fn tracer_console(events: &[Value], kills: [u32; 3]) -> String {
        let mut c = String::from(
            "@@KM begin tracer-bpf\n@@KM info tracer-bpf ready=yes ready_after_s=1.5\n",
        );
        for (case, k) in OomCase::ALL.iter().zip(kills) {
            c.push_str(&format!(
                "@@KM info tracer-bpf case={} hog_rc=137 hog_last=t=1 kib=2\n\
                 @@KM info tracer-bpf case={} kills={k}\n",
                case.name(),
                case.name()
            ));
        }
        c.push_str("@@KM info tracer-bpf alive=yes\n");
        for e in events {
            c.push_str(&format!("@@KM out tracer-bpf {e}\n"));
        }
        c.push_str(
            "@@KM err tracer-bpf 2026-11-24T00:49:34Z INFO oom_tracer: tracing OOM kills bpf=\"tp_btf\" kmsg=true\n",
        );
        c.push_str("@@KM end tracer-bpf rc=0\n");
        c
    }

    fn tracer_event(case: OomCase, p: &PodIds) -> Value {
        let scope = p.container_scope(case.qos());
        let (kind, constraint, oom) = match case {
            OomCase::Container => ("memcg", "CONSTRAINT_MEMCG", Value::from(scope.clone())),
            OomCase::Pod => ("memcg", "CONSTRAINT_MEMCG", p.pod_slice(case.qos()).into()),
            OomCase::Global => ("global", "CONSTRAINT_NONE", Value::Null),
        };
        serde_json::json!({"kind": kind, "constraint": constraint, "oom_memcg": oom,
            "task_memcg": scope, "pod_uid": p.uid, "container_id": p.container_id, "source": "bpf"})
    }

    #[test]
    fn tracer_passes_with_one_right_event_per_case() {
        let pods = [ids(2), ids(3), ids(4)];
        let ev: Vec<Value> = OomCase::ALL
            .iter()
            .zip(&pods)
            .map(|(c, p)| tracer_event(*c, p))
            .collect();
        let r = GuestReport::parse(&tracer_console(&ev, [1, 1, 1]));
        let v = judge_tracer(r.scenarios.get("tracer-bpf"), "tracer-bpf", &pods, "bpf");
        assert!(v.pass, "{:?}", v.reasons);
        assert_eq!(
            v.figures,
            "3/3 kills [memcg,memcg,global] src=bpf attach=tp_btf ready=1.5s"
        );
    }

    #[test]
    fn tracer_fails_on_wrong_limit_hit_duplicate_or_wrong_source() {
        let pods = [ids(2), ids(3), ids(4)];
        let mut pod_case = tracer_event(OomCase::Pod, &pods[1]);
        // The pod-limit OOM attributed to the container: the classic mistake.
        pod_case["oom_memcg"] = pods[1].container_scope("burstable").into();
        let dup = tracer_event(OomCase::Container, &pods[0]);
        let mut global = tracer_event(OomCase::Global, &pods[2]);
        global["source"] = "kmsg".into();
        let r = GuestReport::parse(&tracer_console(
            &[dup.clone(), dup, pod_case, global],
            [1, 1, 1],
        ));
        let v = judge_tracer(r.scenarios.get("tracer-bpf"), "tracer-bpf", &pods, "bpf");
        assert!(!v.pass);
        let all = v.reasons.join("\n");
        assert!(all.contains("pod OOM: oom_memcg is"), "{all}");
        assert!(
            all.contains("container OOM: 2 events, expected exactly 1"),
            "{all}"
        );
        assert!(all.contains("global OOM: source is \"kmsg\""), "{all}");
    }

    #[test]
    fn tracer_not_ready_fails_at_once() {
        let r = GuestReport::parse(
            "@@KM begin tracer-kmsg\n@@KM info tracer-kmsg ready=no\n@@KM end tracer-kmsg rc=2\n",
        );
        let v = judge_tracer(
            r.scenarios.get("tracer-kmsg"),
            "tracer-kmsg",
            &[ids(1), ids(2), ids(3)],
            "kmsg",
        );
        assert!(!v.pass);
        assert!(v.reasons[0].contains("/readyz"));
    }

    #[test]
    fn rfc3339_parses_utc_with_fraction() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(
            rfc3339_seconds("2026-11-24T00:13:17.5Z"),
            Some(1_795_479_197.5)
        );
        assert_eq!(rfc3339_seconds("yesterday"), None);
    }
}
