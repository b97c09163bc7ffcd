//! Issue 16 (3): a Lua script that runs away — in an `xpcall` message handler, in a `__gc` finalizer, or
//! in a backtracking pattern (C code, where no hook fires) — never keeps the real `pressured` from
//! exiting: a replay ends once the timeout stopped the script, and SIGTERM ends the watch loop within
//! the actions' drain deadline even when the script's own timeout is far away.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use pressure_testkit::{unique_container_id, unique_pod_uid};
use serde_json::json;

use crate::k8s_cgroup_tree::v2_tree;
use crate::util::{spawn, wait_log};

const MIB: u64 = 1 << 20;
/// `pressured`'s drain deadline for the actions at shutdown (`DRAIN_DEADLINE` in `src/sink.rs`).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// The three runaways of the issue, as Lua statements.
const RUNAWAYS: [(&str, &str); 3] = [
    (
        "xpcall",
        r#"xpcall(function() error("x") end, function() while true do end end)"#,
    ),
    (
        "gc",
        r#"setmetatable({}, {__gc = function() while true do end end}); collectgarbage(); while true do end"#,
    ),
    (
        "pattern",
        r#"string.find(string.rep("a", 5000), string.rep("a-", 8) .. "b")"#,
    ),
];

/// A script that logs "runaway starting" on the first critical event, then runs `body`.
fn script(body: &str) -> String {
    format!(
        "started = false\nfunction on_event(e, ctx)\n  if e.severity == 'critical' and not started then\n    started = true\n    log.info('runaway starting')\n    {body}\n  end\nend"
    )
}

/// Issue 16's own case: `--replay` of one critical line with `timeout_ms` 2000. Each runaway is stopped
/// by the timeout and reported, and the replay ends well before the drain deadline.
#[test]
fn issue_16_replay_with_a_runaway_script_ends() {
    std::thread::scope(|scope| {
        for (kind, body) in RUNAWAYS {
            scope.spawn(move || {
                let dir = tempfile::tempdir().expect("tempdir");
                let config = dir.path().join("config.json");
                let cfg = json!({"plugins": {"lua": {"enabled": true, "inline_script": script(body),
                                                     "timeout_ms": 2000}}});
                std::fs::write(&config, cfg.to_string()).expect("config");
                let replay = dir.path().join("replay.jsonl");
                std::fs::write(
                    &replay,
                    r#"{"t":1,"namespace":"n","pod":"p","container":"c","usage_bytes":900,"limit_bytes":1000}"#,
                )
                .expect("replay");
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_pressured"));
                cmd.arg("-c")
                    .arg(&config)
                    .arg("--replay")
                    .arg(&replay)
                    .env("RUST_LOG", "info");
                let started = Instant::now();
                let running = spawn(&mut cmd);
                let log = collect_until_exit(&running.log, DRAIN_DEADLINE + Duration::from_secs(20))
                    .unwrap_or_else(|log| panic!("{kind}: pressured --replay did not end:\n{log}"));
                let took = started.elapsed();
                eprintln!("{kind}: replay ended after {took:?}");
                assert!(log.contains("runaway starting"), "{kind}: {log}");
                let stopped = if kind == "gc" {
                    "__gc metamethods are not allowed"
                } else {
                    "timeout: script stopped after plugins.lua.timeout_ms = 2000 ms"
                };
                assert!(log.contains(stopped), "{kind}: {log}");
                assert!(took < DRAIN_DEADLINE, "{kind}: {took:?}\n{log}");
            });
        }
    });
}

/// SIGTERM while a runaway runs with a timeout of 10 minutes: `pressured` logs the stop, interrupts the
/// script at the drain deadline, says so, and exits — within the deadline plus a margin.
#[test]
fn issue_16_sigterm_with_a_runaway_script_exits_within_the_drain_deadline() {
    std::thread::scope(|scope| {
        for (kind, body) in RUNAWAYS {
            scope.spawn(move || sigterm_with_runaway(kind, body));
        }
    });
}

fn sigterm_with_runaway(kind: &str, body: &str) {
    let (uid, cid) = (unique_pod_uid(), unique_container_id());
    let dir = tempfile::tempdir().expect("tempdir");
    let cg_root = dir.path().join("cgroup");
    std::fs::create_dir_all(&cg_root).expect("mkdir");
    // 90 % of 256 MiB: critical at the first poll.
    v2_tree(&cg_root, &uid, &cid, 230 * MIB, 256 * MIB);
    let config = write_config(dir.path(), &cg_root, body);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pressured"));
    cmd.arg("-c")
        .arg(&config)
        // The sidecar's own pod, as the downward API gives it; no API server.
        .env("POD_UID", &uid)
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .env_remove("NODE_NAME")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("RUST_LOG", "info");
    let running = spawn(&mut cmd);
    // The action has started: the script is about to run away.
    wait_log(&running.log, "runaway starting");
    let pid = running.process.0.id();
    let started = Instant::now();
    // SAFETY: signalling our own child, not yet reaped (it is reaped when `running` drops).
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let log = collect_until_exit(&running.log, DRAIN_DEADLINE + Duration::from_secs(20))
        .unwrap_or_else(|log| panic!("{kind}: pressured did not exit after SIGTERM:\n{log}"));
    let took = started.elapsed();
    eprintln!("{kind}: exited {took:?} after SIGTERM");
    assert!(log.contains("SIGTERM: stopping"), "{kind}: {log}");
    if kind == "gc" {
        // The finalizer was refused: nothing ran away, and the actions drained at once.
        assert!(
            log.contains("__gc metamethods are not allowed"),
            "{kind}: {log}"
        );
    } else {
        assert!(
            log.contains("action dispatcher shutdown deadline passed"),
            "{kind}: {log}"
        );
        assert!(
            log.contains("stopped: the actions' shutdown deadline passed while the script ran"),
            "{kind}: {log}"
        );
    }
    assert!(
        took < DRAIN_DEADLINE + Duration::from_secs(5),
        "{kind}: {took:?}\n{log}"
    );
}

fn write_config(dir: &Path, cgroup_root: &Path, body: &str) -> std::path::PathBuf {
    let cfg = json!({
        "source": {"mode": "cgroup", "poll_interval_ms": 100, "cgroup": {"path": cgroup_root}},
        "thresholds": {"warn_percent": 70, "critical_percent": 85, "cooldown_seconds": 600, "predict_seconds": 0},
        // Ten minutes: only the shutdown can stop the script in time.
        "plugins": {"lua": {"enabled": true, "inline_script": script(body), "timeout_ms": 600_000}},
    });
    let path = dir.join("config.json");
    std::fs::write(&path, cfg.to_string()).expect("config");
    path
}

/// Every log line until the process closes its stderr (it exited), or `Err` with the lines so far
/// after `timeout`.
fn collect_until_exit(
    log: &std::sync::mpsc::Receiver<String>,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => return Ok(lines.join("\n")),
            Err(RecvTimeoutError::Timeout) => return Err(lines.join("\n")),
        }
    }
}
