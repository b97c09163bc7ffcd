//! `exec` against real programs and `webhook` against a real HTTP server, including hanging ones.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{TestServer, assert_no_failures, config, event, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_gets_the_event_json_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("event.json");
    // `tee` writes its stdin to the file: a real program, started without a shell.
    let cfg = config(json!({"actions": {"exec": [
        {"command": ["tee", out]},
        {"command": ["tee", dir.path().join("oom-only.json")], "events": ["oom_killed"]},
    ]}}));
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["event_type"], "memory_pressure");
    assert_eq!(v["pod_name"], "app-0");
    assert_eq!(v["annotations"]["team"], "core");
    assert!(
        !dir.path().join("oom-only.json").exists(),
        "events filter ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_failures_are_reported_with_status_and_stderr() {
    let cfg = config(json!({"actions": {"exec": [
        {"command": ["sh", "-c", "echo broken >&2; exit 3"]},
        {"command": ["/nonexistent/program"]},
    ]}}));
    let report = run(&cfg, vec![event()]).await;
    assert!(report.drained);
    assert_eq!(report.failures.len(), 2, "{:#?}", report.failures);
    let status = report
        .failures
        .iter()
        .find(|f| f.action == "exec[0]")
        .unwrap();
    assert!(
        status.message.contains("exit status: 3") && status.message.contains("broken"),
        "{status:?}"
    );
    let missing = report
        .failures
        .iter()
        .find(|f| f.action == "exec[1]")
        .unwrap();
    assert!(missing.message.contains("cannot start"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_program_is_killed_at_its_timeout_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let cfg = config(json!({"actions": {"exec": [
        {"command": ["sh", "-c", "sleep 60 & echo $! > \"$0\"; wait", pidfile], "timeout_ms": 300},
    ]}}));
    let started = Instant::now();
    let report = run(&cfg, vec![event()]).await;
    let elapsed = started.elapsed();
    assert!(report.drained);
    assert_eq!(report.failures.len(), 1);
    assert!(
        report.failures[0]
            .message
            .contains("timed out after 300 ms"),
        "{:?}",
        report.failures
    );
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    // The grandchild (`sleep 60`) died with the process group.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let proc_dir = format!("/proc/{}", pid.trim());
    for _ in 0..50 {
        let zombie_or_gone = std::fs::read_to_string(format!("{proc_dir}/stat"))
            .map(|s| s.split_whitespace().nth(2) == Some("Z"))
            .unwrap_or(true);
        if zombie_or_gone {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sleep {} still running", pid.trim());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_the_event_with_headers() {
    let server = TestServer::start().await;
    let cfg = config(json!({"actions": {"webhook": [
        {"url": server.url("/hook"), "headers": {"X-Token": "secret"}},
        {"url": server.url("/predicted-only"), "events": ["predicted_oom"]},
    ]}}));
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    let seen = server.seen_path("/hook");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(seen[0].headers["x-token"], "secret");
    let v: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(v["event_type"], "memory_pressure");
    assert_eq!(v["severity"], "critical");
    assert!(server.seen_path("/predicted-only").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_server_errors_with_backoff_but_not_client_errors() {
    let server = TestServer::start().await;
    let cfg = config(json!({"actions": {"webhook": [
        {"url": server.url("/flaky"), "retries": 3},
        {"url": server.url("/bad-request"), "retries": 3},
    ]}}));
    let report = run(&cfg, vec![event()]).await;
    assert_eq!(server.seen_path("/flaky").len(), 3, "two 503s then 200");
    assert_eq!(
        server.seen_path("/bad-request").len(),
        1,
        "400 is not retried"
    );
    assert_eq!(report.failures.len(), 1, "{:#?}", report.failures);
    assert_eq!(report.failures[0].action, "webhook[1]");
    assert!(report.failures[0].message.contains("HTTP 400"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_times_out_and_is_retried() {
    let server = TestServer::start().await;
    let cfg = config(json!({"actions": {"webhook": [
        {"url": server.url("/hang"), "timeout_ms": 200, "retries": 1},
    ]}}));
    let report = run(&cfg, vec![event()]).await;
    assert!(report.drained);
    assert_eq!(server.seen_path("/hang").len(), 2);
    assert_eq!(report.failures.len(), 1);
    assert!(
        report.failures[0]
            .message
            .contains("timed out after 200 ms"),
        "{:?}",
        report.failures
    );
}

/// Issue 16 (8): a 307 to another host carried the event and the custom headers there, and a 302 turned
/// the POST into a body-less GET that was logged as "sent". Both are failures now (not retried); a 307 on
/// the same host still delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_webhook_redirects_keep_headers_home_and_never_change_the_method() {
    let server = TestServer::start().await;
    let other = TestServer::start().await;
    let elsewhere = format!("http://localhost:{}/stolen", other.addr.port());
    let cfg = config(json!({"actions": {"webhook": [
        {"url": server.url(&format!("/r307?{elsewhere}")), "headers": {"X-Api-Key": "k"}, "retries": 2},
        {"url": server.url("/redirect"), "retries": 2},
        {"url": server.url("/r307?/hook"), "headers": {"X-Api-Key": "k"}},
    ]}}));
    let report = run(&cfg, vec![event()]).await;
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    assert!(
        server.seen_path("/hello").is_empty(),
        "the 302 was not followed"
    );
    assert_eq!(
        server.seen_path("/r307").len(),
        2,
        "no retry of a refused redirect"
    );
    assert_eq!(
        server.seen_path("/redirect").len(),
        1,
        "no retry of a refused redirect"
    );
    let mut failed: Vec<_> = report
        .failures
        .iter()
        .map(|f| (f.action.as_str(), f.message.as_str()))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_eq!(failed[0].0, "webhook[0]");
    assert!(failed[0].1.contains("another host"), "{failed:?}");
    assert_eq!(failed[1].0, "webhook[1]");
    assert!(failed[1].1.contains("302"), "{failed:?}");
    let hook = server.seen_path("/hook");
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].method, "POST");
    assert_eq!(hook[0].headers["x-api-key"], "k");
    assert!(!hook[0].body.is_empty());
}
