//! The Lua API end to end against a real HTTP server on 127.0.0.1: every call, both `http.fetch` forms,
//! headers without a body, timeouts, redirects, storage calls and handles.

use serde_json::json;

use crate::util::{TestServer, assert_no_failures, config, event, run};

const API_SCRIPT: &str = r##"
local base = "{BASE}"
function on_event(event, ctx)
  -- every event field
  assert(event.event_type == "memory_pressure", event.event_type)
  assert(event.severity == "critical" and event.previous_severity == "warn")
  assert(event.namespace == "default" and event.pod_name == "app-0" and event.container_name == "app")
  assert(event.pod_uid == "0f1e2d3c-aaaa-bbbb-cccc-123456789abc")
  assert(event.container_id == "containerd://abc" and event.node_name == "node-a")
  assert(event.pod_ip == "127.0.0.1")
  assert(event.usage_bytes == 900 * 1024 * 1024 and event.working_set_bytes == 880 * 1024 * 1024)
  assert(event.limit_bytes == 1000 * 1024 * 1024)
  assert(event.usage_percent == 88.0 and event.oom_kill_count == 0)
  assert(event.eta_seconds == nil and event.psi_some_avg10 == 1.5)
  assert(event.annotations.team == "core")
  assert(event.dry_run == false and event.profile == nil)
  assert(type(event.timestamp) == "string" and event.timestamp:match("^%d%d%d%d%-%d%d%-%d%dT"))
  -- ctx and config
  assert(ctx.dry_run == false)
  assert(ctx.time_iso():match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$"), ctx.time_iso())
  assert(ctx.getenv("PATH") ~= nil)
  assert(ctx.getenv("PRESSURE_ACTIONS_SURELY_UNSET_VARIABLE") == nil)
  assert(config.storage.backend == "local" and config.plugins.lua.timeout_ms == 5000)
  -- log
  log.trace("trace"); log.debug("debug"); log.info("info", 1, true); log.warn("warn"); log.error("error")

  -- http.fetch(method, url, opts): the original form
  local r = http.fetch("GET", base .. "/hello")
  assert(r.status == 200 and r.body == "hello world", r.error)
  assert(r.headers["x-test"] == "yes")
  -- http.fetch(url, {method = ...}): the documented form, headers as a table
  r = http.fetch(base .. "/echo", {method = "POST", body = "payload", content_type = "text/plain",
    headers = {["X-Map"] = "m"}})
  assert(r.status == 200 and r.body == "payload", r.error)
  -- headers as a list of "Name: value", and no body: headers must still be sent
  r = http.fetch("GET", base .. "/nobody", {headers = {"X-List: l1", "X-Other: two"}})
  assert(r.status == 200, r.error)
  -- http.fetch(url) defaults to GET; redirects are followed
  r = http.fetch(base .. "/redirect")
  assert(r.status == 200 and r.body == "hello world", r.error)
  -- a timeout is an error, not a status
  r = http.fetch(base .. "/slow", {timeout_ms = 200})
  assert(r.error and r.status == nil, "expected a timeout")
  -- connection refused
  r = http.fetch("GET", "http://127.0.0.1:1/x")
  assert(r.error and r.status == nil)
  -- an HTTP error status is a status, not an error
  r = http.fetch(base .. "/missing")
  assert(r.status == 404 and r.error == nil)
  -- per-script auth
  assert(http.set_bearer_token("tok123") == true)
  assert(http.fetch(base .. "/auth-bearer").status == 200)
  assert(http.set_basic_auth("user", "pa:ss") == true)
  assert(http.fetch(base .. "/auth-basic").status == 200)
  -- an explicit Authorization header wins
  assert(http.fetch(base .. "/auth-explicit", {headers = {Authorization = "Token x"}}).status == 200)
  -- urlencode
  assert(http.urlencode("a b&c=d/é~") == "a%20b%26c%3Dd%2F%C3%A9~", http.urlencode("a b&c=d/é~"))
  assert(http.fetch(base .. "/q?x=" .. http.urlencode("a b&c")).status == 200)

  -- http.stream: every chunk to the callback
  local n = 0
  local s = http.stream(base .. "/big", function(chunk, info)
    n = n + #chunk
    assert(info.size == #chunk and info.total == n and info.status == 200)
    return true
  end)
  assert(s.ok and s.bytes == 1048576 and n == 1048576 and s.status == 200, s.error)
  -- returning false aborts
  s = http.stream(base .. "/big", function() return false end)
  assert(not s.ok and s.error == "aborted by callback" and s.bytes == 0)
  -- opts: method and body
  local got = ""
  s = http.stream(base .. "/echo", function(c) got = got .. c; return true end,
    {method = "POST", body = "streamed", headers = {"X-Stream: 1"}})
  assert(s.ok and got == "streamed", s.error)
  -- an error in the callback is reported
  s = http.stream(base .. "/big", function() error("cb failed") end)
  assert(not s.ok and s.error:find("cb failed"))

  -- http.download: straight into storage
  local d = http.download(base .. "/big", "downloads/big.bin")
  assert(d.ok and d.bytes == 1048576 and d.status == 200, d.error)
  d = http.download(base .. "/missing", "downloads/missing.bin")
  assert(not d.ok and d.error:find("404"), d.error)
  assert(not storage.exists("downloads/missing.bin"))

  -- storage: simple API
  local w = storage.write("a/b.txt", "content")
  assert(w.ok, w.error)
  assert(storage.exists("a/b.txt"))
  local rd = storage.read("a/b.txt")
  assert(rd.ok and rd.data == "content")
  assert(storage.rename("a/b.txt", "a/c.txt").ok)
  assert(not storage.exists("a/b.txt") and storage.exists("a/c.txt"))
  assert(storage.remove("a/c.txt").ok)
  local rm = storage.remove("a/c.txt")
  assert(not rm.ok and rm.error:find("not found"), rm.error)
  rd = storage.read("nope")
  assert(not rd.ok and rd.error)
  local bad = storage.write("../escape", "x")
  assert(not bad.ok and bad.error:find("invalid key"), bad.error)
  assert(not storage.write("/abs", "x").ok)
  assert(not storage.exists("../../etc/passwd"))

  -- storage: streaming handles
  local f = assert(storage.open("h/file.bin", "w"))
  assert(f:write("abc") == 3)
  assert(f:write(string.rep("x", 10000)) == 10000)
  local none, why = f:read(1)
  assert(none == nil and why == "file not open for reading")
  assert(not storage.exists("h/file.bin"), "visible before close")
  assert(f:close() == true)
  assert(f:close() == false)
  f = assert(storage.open("h/file.bin", "r"))
  assert(f:read(3) == "abc")
  local rest = ""
  while true do
    local c = f:read(4096)
    if not c then break end
    assert(#c <= 4096)
    rest = rest .. c
  end
  assert(rest == string.rep("x", 10000))
  assert(f:read() == nil)
  assert(f:close())
  local nf, err = storage.open("h/none", "r")
  assert(nf == nil and err:find("not found"), err)
  local wr, werr = storage.open("../x", "w")
  assert(wr == nil and werr:find("invalid key"))

  storage.write("done", "ok")
  return "ok"
end
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lua_call_against_a_real_server() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let script = API_SCRIPT.replace("{BASE}", &server.url(""));
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "inline_script": script}},
        "storage": {"enabled": true, "backend": "local", "path": dir.path()},
    }));
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("done")).unwrap(),
        "ok"
    );
    assert_eq!(
        std::fs::read(dir.path().join("downloads/big.bin")).unwrap(),
        crate::util::big_body()
    );
    assert_eq!(
        std::fs::read(dir.path().join("h/file.bin")).unwrap().len(),
        10003
    );

    let one = |path: &str| {
        let seen = server.seen_path(path);
        assert_eq!(seen.len(), 1, "{path}: {seen:?}");
        seen.into_iter().next().unwrap()
    };
    let echo = &server.seen_path("/echo")[0];
    assert_eq!(echo.method, "POST");
    assert_eq!(echo.headers["content-type"], "text/plain");
    assert_eq!(echo.headers["x-map"], "m");
    assert_eq!(echo.body, b"payload");
    let nobody = one("/nobody");
    assert_eq!(nobody.method, "GET");
    assert!(nobody.body.is_empty());
    assert_eq!(nobody.headers["x-list"], "l1");
    assert_eq!(nobody.headers["x-other"], "two");
    assert_eq!(one("/redirect").method, "GET");
    assert_eq!(server.seen_path("/hello").len(), 2, "direct + redirected");
    assert_eq!(
        one("/auth-bearer").headers["authorization"],
        "Bearer tok123"
    );
    // base64("user:pa:ss")
    assert_eq!(
        one("/auth-basic").headers["authorization"],
        "Basic dXNlcjpwYTpzcw=="
    );
    assert_eq!(one("/auth-explicit").headers["authorization"], "Token x");
    assert_eq!(one("/q").query.as_deref(), Some("x=a%20b%26c"));
    let streamed = server
        .seen_path("/echo")
        .into_iter()
        .find(|s| s.body == b"streamed")
        .expect("stream POST");
    assert_eq!(streamed.headers["x-stream"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_dir_runs_in_order_with_isolated_state_and_auth() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let base = server.url("");
    std::fs::write(
        scripts.path().join("b_second.lua"),
        format!(
            r#"
assert(shared == nil, "globals leak between scripts")
function on_event(event, ctx)
  local prev = storage.read("order")
  storage.write("order", (prev.data or "") .. "b")
  http.fetch("{base}/from-b")
end"#
        ),
    )
    .unwrap();
    std::fs::write(
        scripts.path().join("a_first.lua"),
        format!(
            r#"
shared = "a"
http.set_bearer_token("only-a")
-- top-level code may use the API too (the dispatcher is built from async code)
assert(http.fetch("{base}/at-load").status == 200)
function on_event(event, ctx)
  local prev = storage.read("order")
  storage.write("order", (prev.data or "") .. "a")
  http.fetch("{base}/from-a")
end"#
        ),
    )
    .unwrap();
    std::fs::write(scripts.path().join("notes.txt"), "not a script").unwrap();
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "scripts_dir": scripts.path()}},
        "storage": {"enabled": true, "path": dir.path()},
    }));
    let report = run(&cfg, vec![event(), event()]).await;
    assert_no_failures(&report);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("order")).unwrap(),
        "abab"
    );
    for s in server.seen_path("/from-a") {
        assert_eq!(s.headers["authorization"], "Bearer only-a");
    }
    for s in server.seen_path("/from-b") {
        assert!(
            !s.headers.contains_key("authorization"),
            "auth leaked: {s:?}"
        );
    }
    assert_eq!(server.seen_path("/from-b").len(), 2);
    assert_eq!(server.seen_path("/at-load").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_file_and_storage_not_configured() {
    let scripts = tempfile::tempdir().unwrap();
    let path = scripts.path().join("one.lua");
    std::fs::write(
        &path,
        r#"
function on_event(event, ctx)
  local w = storage.write("k", "v")
  assert(not w.ok and w.error == "storage not configured", w.error)
  assert(storage.exists("k") == false)
  local f, err = storage.open("k", "w")
  assert(f == nil and err == "storage not configured")
  local d = http.download("http://127.0.0.1:1/", "k")
  assert(not d.ok and d.error == "storage not configured")
  assert(ctx.dry_run == true and event.event_type == "oom_killed")
end"#,
    )
    .unwrap();
    let cfg = config(json!({
        "dry_run": true,
        "plugins": {"lua": {"enabled": true, "script": path}},
    }));
    let mut e = event();
    e.event_type = pressure_core::EventType::OomKilled;
    let report = run(&cfg, vec![e]).await;
    assert_no_failures(&report);
    assert_eq!(report.stats.processed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_written_for_the_original_keeps_working() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lua/original_alert.lua");
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "script": script}},
        "storage": {"enabled": true, "path": dir.path()},
        // The script does the capture itself here; the built-in one would fetch the same URL.
        "actions": {"heap_profile": {"enabled": false}},
    }));
    let mut e = event();
    std::sync::Arc::make_mut(&mut e.target_mut().annotations)
        .insert("pressured.io/pprof-enabled".into(), "true".into());
    std::sync::Arc::make_mut(&mut e.target_mut().annotations).insert(
        "pressured.io/pprof-port".into(),
        server.addr.port().to_string(),
    );
    std::sync::Arc::make_mut(&mut e.target_mut().annotations)
        .insert("pressured.io/pprof-path".into(), "/big".into());
    let report = run(&cfg, vec![e]).await;
    assert_no_failures(&report);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("app-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), crate::util::big_body());
}
