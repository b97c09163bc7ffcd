//! The `pressured` command line: flags, config checking, replay.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn pressured() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pressured"))
}

fn example() -> String {
    format!(
        "{}/../examples/replay-timeline.jsonl",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = pressured()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from a thread: a large input and a large output would otherwise fill both pipes and
    // block the test and the child on each other.
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_string();
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn config_file(json: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(json.as_bytes()).unwrap();
    f
}

#[test]
fn version_flags() {
    for flag in ["-v", "--version"] {
        let out = pressured().arg(flag).output().unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "pressured 0.1.0"
        );
    }
}

#[test]
fn help_lists_the_original_flags() {
    let out = pressured().arg("-h").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--log-level",
        "--dry-run",
        "--check-config",
        "--replay",
        "--log-format",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn check_config_prints_effective_config() {
    let f = config_file(r#"{"thresholds":{"warn_percent":60}}"#);
    let out = pressured()
        .args(["--check-config", "-d", "-l", "debug", "-c"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["thresholds"]["warn_percent"], 60.0);
    assert_eq!(cfg["thresholds"]["critical_percent"], 85.0);
    assert_eq!(cfg["dry_run"], true);
    assert_eq!(cfg["log_level"], "debug");
    assert_eq!(cfg["source"]["mode"], "cgroup");
}

#[test]
fn check_config_rejects_bad_keys_and_values_naming_them() {
    for (doc, needle) in [
        (
            r#"{"thresholds":{"critcal_percent":90}}"#,
            "thresholds.critical_percent",
        ),
        (
            r#"{"thresholds":{"warn_percent":90,"critical_percent":80}}"#,
            "thresholds.warn_percent",
        ),
        (
            r#"{"source":{"poll_interval_ms":0}}"#,
            "source.poll_interval_ms",
        ),
    ] {
        let f = config_file(doc);
        let out = pressured()
            .arg("--check-config")
            .arg("-c")
            .arg(f.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{doc}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{doc}: {err}");
        assert!(
            err.contains(&f.path().display().to_string()),
            "{doc}: {err}"
        );
    }
    let out = pressured()
        .args(["--check-config", "-c", "/nonexistent/pressured.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pressured.json"));
}

#[test]
fn replay_example_produces_every_event_type() {
    let out = pressured().args(["--replay", &example()]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let ev = events(&out);
    let cart: Vec<(String, String)> = ev
        .iter()
        .filter(|e| e["pod_name"] == "cart-0")
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // cart-0 grows 2.2 %/s from t = 10: predicted_oom once the rise has lasted half its ETA (issue 17),
    // again when the ETA has halved.
    let expected: Vec<(String, String)> = [
        ("memory_pressure", "warn"),
        ("predicted_oom", "warn"),
        ("memory_pressure", "critical"),
        ("predicted_oom", "critical"),
        ("oom_killed", "critical"),
        ("recovered", "ok"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(cart, expected);
    // The annotation override makes search-0 warn at 55 % (global warn is 70 %).
    assert!(ev.iter().any(|e| e["pod_name"] == "search-0"
        && e["event_type"] == "memory_pressure"
        && e["severity"] == "warn"));
    // The unlimited container never warns.
    assert!(!ev.iter().any(|e| e["pod_name"] == "etl-0"));
    let oom = ev.iter().find(|e| e["event_type"] == "oom_killed").unwrap();
    assert_eq!(oom["oom_kill_count"], 1);
    assert_eq!(oom["pod_ip"], "10.244.1.17");
    let predicted = ev
        .iter()
        .find(|e| e["event_type"] == "predicted_oom")
        .unwrap();
    assert!(predicted["eta_seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn malformed_lines_are_named_and_the_run_goes_on() {
    let input = concat!(
        "{\"t\": 0, \"pod_uid\": \"a\", \"usage_bytes\": 90, \"limit_bytes\": 100}\n",
        "{\"t\": 1, \"pod_uid\": \"a\", \"usage_bytes\": \"ninety\", \"limit_bytes\": 100}\n",
        "not json at all\n",
        "{\"t\": 2, \"pod_uid\": \"a\", \"usage_bytes\": 10, \"limit_bytes\": 100}\n",
    );
    let out = run_with_stdin(&["--replay", "-"], input);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: usage_bytes"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "malformed lines fail the run at the end"
    );
    let kinds: Vec<_> = events(&out)
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["memory_pressure", "recovered"]);
}

#[test]
fn dry_run_is_reported_in_events() {
    let input = "{\"t\": 0, \"pod_uid\": \"a\", \"usage_bytes\": 90, \"limit_bytes\": 100}\n";
    let out = run_with_stdin(&["--replay", "-", "--dry-run"], input);
    assert_eq!(events(&out)[0]["dry_run"], true);
    let out = run_with_stdin(&["--replay", "-"], input);
    assert_eq!(events(&out)[0]["dry_run"], false);
}

#[test]
fn log_level_takes_effect_and_json_logs() {
    let input = "{\"t\": 0, \"pod_uid\": \"a\", \"usage_bytes\": 90, \"limit_bytes\": 100}\n";
    let quiet = run_with_stdin(&["--replay", "-", "-l", "warn"], input);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("replay finished"));
    let info = run_with_stdin(&["--replay", "-"], input);
    assert!(String::from_utf8_lossy(&info.stderr).contains("replay finished"));
    assert!(!String::from_utf8_lossy(&info.stderr).contains("DEBUG"));
    let debug = run_with_stdin(&["--replay", "-", "--log-level", "debug"], input);
    assert!(String::from_utf8_lossy(&debug.stderr).contains("DEBUG"));
    // From the config file too.
    let f = config_file(r#"{"log_level":"error"}"#);
    let cfg = run_with_stdin(&["--replay", "-", "-c", f.path().to_str().unwrap()], input);
    assert!(!String::from_utf8_lossy(&cfg.stderr).contains("replay finished"));
    let json = run_with_stdin(&["--replay", "-", "--log-format", "json"], input);
    let line = String::from_utf8_lossy(&json.stderr)
        .lines()
        .find(|l| l.contains("replay finished"))
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO");
}

#[test]
fn replay_runs_the_configured_actions_and_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("events.jsonl");
    let config = serde_json::json!({
        "plugins": {"lua": {"enabled": true, "inline_script":
            "function on_event(e, ctx) log.info('lua saw ' .. e.event_type .. ' of ' .. e.pod_name) end"}},
        "actions": {"exec": [{"command": ["sh", "-c", format!("cat >> {}; echo >> {}", out_file.display(), out_file.display())],
                              "events": ["oom_killed", "recovered"]}]}
    });
    let f = config_file(&config.to_string());
    let out = pressured()
        .args(["--replay", &example(), "-c", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lua saw oom_killed of cart-0"), "{err}");
    assert!(err.contains("lua saw predicted_oom of cart-0"), "{err}");
    let written = std::fs::read_to_string(&out_file).unwrap();
    let kinds: Vec<String> = written
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["event_type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(kinds, ["oom_killed", "recovered"]);
}

/// Sends an HTTP/1.0 GET and returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn metrics_health_and_readiness_endpoints() {
    use std::io::BufRead;
    // Sidecar mode outside Kubernetes watches the own cgroup; it needs a readable cgroup filesystem.
    if !std::path::Path::new("/proc/self/cgroup").exists() {
        pressure_testkit::skip_or_fail(
            "metrics_health_and_readiness_endpoints",
            "no /proc/self/cgroup",
        );
        return;
    }
    let mut child = pressured()
        .args([
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env_remove("POD_UID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let mut child = Kill(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            let v: Value = serde_json::from_str(&l).ok()?;
            v["fields"]["address"].as_str().map(str::to_string)
        })
        .expect("the bound address is logged");
    let (status, body) = http_get(&addr, "/healthz");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = http_get(&addr, "/readyz");
        if status.contains("200") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (status, body) = http_get(&addr, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("pressured_build_info{version=\"0.1.0\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("pressured_actions_dropped_events_total 0"),
        "{body}"
    );
    // SIGTERM stops it cleanly.
    let pid = child.0.id() as i32;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_metrics_address_is_rejected() {
    let out = pressured()
        .args(["--metrics-bind-address", "localhost", "--replay", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--metrics-bind-address"));
}

/// `pprof top NEW --diff-base OLD` prints what `go tool pprof -top -diff_base=OLD NEW` prints for
/// two heap profiles of one leaking Go process (recorded from Go in pressure-pprof's test data:
/// the `Type:` line and the table).
#[test]
fn pprof_top_diff_base_prints_the_leak_like_go() {
    let testdata = format!("{}/../pressure-pprof/testdata", env!("CARGO_MANIFEST_DIR"));
    let out = pressured()
        .args(["pprof", "top"])
        .arg(format!("{testdata}/profiles/leak-2.pb.gz"))
        .arg("--diff-base")
        .arg(format!("{testdata}/profiles/leak-1.pb.gz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let type_line = text.lines().find(|l| l.starts_with("Type: ")).unwrap();
    let table = &text[text.find("Showing nodes").expect("table")..];
    let expected =
        std::fs::read_to_string(format!("{testdata}/expected/leak__diff_base.txt")).unwrap();
    assert_eq!(format!("{type_line}\n{table}"), expected);
    assert!(table.contains("main.newState (inline)"), "{table}");

    // A base of another kind is refused, naming both files.
    let out = pressured()
        .args(["pprof", "top"])
        .arg(format!("{testdata}/profiles/leak-2.pb.gz"))
        .arg("--diff-base")
        .arg(format!("{testdata}/profiles/cpu.pb.gz"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cpu.pb.gz as the diff base of") && err.contains("incompatible"),
        "{err}"
    );
}

/// Issue 16 (6, 7): huge clocks and non-UTF-8 lines are bad lines, not a panic or the end of the replay.
#[test]
fn issue_16_replay_never_panics_and_goes_on_after_any_bad_line() {
    let mut input = Vec::new();
    input
        .extend_from_slice(b"{\"t\":1,\"pod_uid\":\"a\",\"usage_bytes\":90,\"limit_bytes\":100}\n");
    input.extend_from_slice(b"{\"t\":1e30,\"pod_uid\":\"a\",\"usage_bytes\":90}\n");
    input.extend_from_slice(b"{\"t\":1e12,\"pod_uid\":\"a\",\"usage_bytes\":90}\n");
    input.extend_from_slice(b"{\"t\":2,\"pod_uid\":\"\xff\xfe\",\"usage_bytes\":90}\n");
    input
        .extend_from_slice(b"{\"t\":3,\"pod_uid\":\"a\",\"usage_bytes\":10,\"limit_bytes\":100}\n");
    let mut child = pressured()
        .args(["--replay", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("line 2: t:"), "{err}");
    assert!(err.contains("line 3: t:"), "{err}");
    assert!(err.contains("line 4: .: not UTF-8"), "{err}");
    assert!(err.contains("3 malformed line(s)"), "{err}");
    assert_eq!(out.status.code(), Some(1));
    let kinds: Vec<_> = events(&out)
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["memory_pressure", "recovered"], "line 5 still ran");
}

/// Issue 16 (7): pods without a namespace shared one state, so one pod's low reading "recovered" another.
#[test]
fn issue_16_pods_without_namespace_do_not_share_a_state() {
    let input = concat!(
        "{\"t\":1,\"pod\":\"a\",\"container\":\"c\",\"usage_bytes\":90,\"limit_bytes\":100}\n",
        "{\"t\":1,\"pod\":\"b\",\"container\":\"c\",\"usage_bytes\":10,\"limit_bytes\":100}\n",
    );
    let out = run_with_stdin(&["--replay", "-"], input);
    assert!(out.status.success(), "{out:?}");
    let ev = events(&out);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["pod_name"], "a");
    assert_eq!(ev[0]["severity"], "critical");
}

/// Issue 16 (7): 3,000 critical containers with an exec action dropped 1,971 events for the actions;
/// replay has no real-time deadline, so it waits for room in the queue instead. Scaled down (a queue of
/// 16, 20 times as many events) to keep the test short; N = 3000 with the default queue passes too.
#[test]
fn issue_16_replay_applies_back_pressure_and_drops_no_action() {
    const N: usize = 320;
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("seen");
    let config = serde_json::json!({
        "actions": {"queue_capacity": 16,
                    "exec": [{"command": ["sh", "-c", format!("cat > /dev/null; echo >> {}", out_file.display())]}]}
    });
    let f = config_file(&config.to_string());
    let input: String = (0..N)
        .map(|i| {
            format!(
                "{{\"t\":1,\"namespace\":\"n\",\"pod\":\"p{i}\",\"container\":\"c\",\"usage_bytes\":900,\"limit_bytes\":1000}}\n"
            )
        })
        .collect();
    let out = run_with_stdin(&["--replay", "-", "-c", f.path().to_str().unwrap()], &input);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(events(&out).len(), N);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dropped: 0") && !err.contains("event dropped"),
        "{err}"
    );
    let ran = std::fs::read_to_string(&out_file).unwrap().lines().count();
    assert_eq!(ran, N, "every event reached the exec action");
}

/// Issue 16 (5): `-c /dev/zero` grew until the host ran out of memory and `-c FIFO` blocked forever.
#[test]
fn issue_16_config_must_be_a_regular_file_of_at_most_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; (1 << 20) + 1]).unwrap();
    for (path, why) in [
        ("/dev/zero", "not a regular file"),
        (fifo.to_str().unwrap(), "not a regular file"),
        (big.to_str().unwrap(), "maximum 1048576"),
    ] {
        // A hang would hang the test too; the output is read only after the process exited.
        let out = pressured()
            .args(["--check-config", "-c", path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{path}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{path}: {err}");
    }
}

/// Issue 16 (6): a queue capacity of 2^61 passed `--check-config` and panicked at start.
#[test]
fn issue_16_huge_queue_capacity_is_rejected_naming_the_key() {
    let f = config_file(r#"{"actions":{"queue_capacity":2305843009213693952}}"#);
    let out = pressured()
        .args(["--check-config", "-c", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("actions.queue_capacity"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Issue 18: `pressured plot` draws the bundled timeline; the picture has the most-at-risk container's
/// samples and markers (the content is checked in depth by `pressure-plot`'s tests).
#[test]
fn issue_18_plot_draws_the_bundled_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("episode.svg");
    let out = pressured()
        .args([
            "plot",
            &example(),
            "-o",
            svg.to_str().unwrap(),
            "--top",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("shop/cart-0/app"), "{text}");
    assert!(
        !text.contains("shop/search-0/es"),
        "--top 1 draws one panel"
    );
    for want in ["predicted_oom ETA", "critical", "oom_killed"] {
        assert!(text.contains(want), "{want}");
    }
    // The working-set line has a vertex per sample of cart-0 (37 lines in the timeline).
    let line = text
        .split("<polyline ")
        .filter(|t| t.contains("stroke=\"#1F77B4\""))
        .map(|t| {
            t.split("points=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .map(|p| p.split_whitespace().count())
        .max()
        .unwrap();
    assert_eq!(line, 37);
    // PNG by extension (default feature), an unknown extension fails naming the path.
    let png = dir.path().join("episode.png");
    let out = pressured()
        .args(["plot", &example(), "-o", png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&png)
            .unwrap()
            .starts_with(b"\x89PNG\r\n\x1a\n")
    );
    let out = pressured()
        .args(["plot", &example(), "-o", "episode.jpg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("episode.jpg"));
}

/// Issue 18: `metrics.container_gauges` is a documented, validated key (null = the mode decides).
#[test]
fn issue_18_container_gauges_key_is_checked() {
    let f = config_file(r#"{"metrics": {"container_gauges": false}}"#);
    let out = pressured()
        .args(["--check-config", "-c", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let effective: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(effective["metrics"]["container_gauges"], false);
    let out = pressured().arg("--check-config").output().unwrap();
    let effective: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(effective["metrics"]["container_gauges"], Value::Null);
    for (bad, key) in [
        (
            r#"{"metrics": {"container_gauge": true}}"#,
            "metrics.container_gauge",
        ),
        (
            r#"{"metrics": {"container_gauges": "yes"}}"#,
            "metrics.container_gauges",
        ),
    ] {
        let f = config_file(bad);
        let out = pressured()
            .args(["--check-config", "-c", f.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{bad}: {err}");
    }
}
