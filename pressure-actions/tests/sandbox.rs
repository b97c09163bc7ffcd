//! The sandbox and the failure isolation: a runaway, a crashing and a memory-hungry script are stopped
//! and reported, and the other scripts and the dispatcher keep running.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::{assert_no_failures, config, event, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_functions_are_absent() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
function on_event(event, ctx)
  assert(io == nil, "io")
  assert(debug == nil, "debug")
  assert(package == nil and require == nil, "package/require")
  assert(loadfile == nil and dofile == nil, "loadfile/dofile")
  assert(os.execute == nil and os.remove == nil and os.exit == nil and os.rename == nil, "os")
  assert(os.tmpname == nil, "tmpname")
  assert(type(os.time()) == "number" and type(os.clock()) == "number" and os.date("!%Y") ~= nil)
  -- text chunks load, binary chunks (bytecode) do not
  assert(load("return 41 + 1")() == 42)
  local env = {x = 5}
  assert(load("return x", "chunk", "t", env)() == 5)
  local f, err = load(string.dump(function() return 1 end))
  assert(f == nil and err:find("binary"), tostring(err))
  -- print goes to the log, not stdout
  print("from print", 1)
  storage.write("sandbox-ok", "yes")
end"#;
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "inline_script": script}},
        "storage": {"enabled": true, "path": dir.path()},
    }));
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    assert!(dir.path().join("sandbox-ok").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_crashing_and_hungry_scripts_are_stopped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(scripts.path().join(name), text).unwrap();
    write(
        "1_runaway.lua",
        "function on_event(e, ctx) while true do end end",
    );
    write(
        "2_crash.lua",
        "function on_event(e, ctx) local t = nil; return t.field end",
    );
    write(
        "3_hungry.lua",
        r#"function on_event(e, ctx)
  local t = {}
  for i = 1, 100000 do t[i] = string.rep("x" .. i, 1 << 20) end
end"#,
    );
    // Caught with pcall, the runaway still ends: the hook fires again outside the pcall.
    write(
        "4_sneaky.lua",
        "function on_event(e, ctx) while true do pcall(function() while true do end end) end end",
    );
    write(
        "5_syntax.lua",
        "function on_event(e, ctx) this is not lua end",
    );
    write("6_load_loop.lua", "while true do end");
    write(
        "7_ok.lua",
        r#"count = 0
function on_event(e, ctx)
  count = count + 1
  assert(storage.write("ok/" .. count, e.event_type).ok)
end"#,
    );
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "scripts_dir": scripts.path(),
                            "timeout_ms": 1000, "memory_limit_bytes": 16 << 20}},
        "storage": {"enabled": true, "path": dir.path()},
    }));
    let started = Instant::now();
    let report = run(&cfg, vec![event(), event()]).await;
    eprintln!(
        "two events with three stopped scripts took {:?}",
        started.elapsed()
    );
    assert!(report.drained, "{report:?}");
    assert_eq!(report.stats.processed, 2);
    // The good script ran for both events.
    assert!(dir.path().join("ok/1").exists() && dir.path().join("ok/2").exists());
    let of = |name: &str| -> Vec<String> {
        report
            .failures
            .iter()
            .filter(|f| f.action == format!("lua:{name}"))
            .map(|f| f.message.clone())
            .collect()
    };
    let runaway = of("1_runaway.lua");
    assert_eq!(runaway.len(), 2, "{:#?}", report.failures);
    assert!(runaway[0].contains("timeout"), "{runaway:?}");
    let crash = of("2_crash.lua");
    assert_eq!(crash.len(), 2);
    assert!(
        crash[0].contains("attempt to index a nil value"),
        "{crash:?}"
    );
    let hungry = of("3_hungry.lua");
    assert_eq!(hungry.len(), 2);
    assert!(hungry[0].contains("memory"), "{hungry:?}");
    let sneaky = of("4_sneaky.lua");
    assert_eq!(sneaky.len(), 2);
    assert!(sneaky[0].contains("timeout"), "{sneaky:?}");
    // Load failures are reported once and the script is skipped.
    assert_eq!(of("5_syntax.lua").len(), 1);
    let load_loop = of("6_load_loop.lua");
    assert_eq!(load_loop.len(), 1);
    assert!(load_loop[0].contains("timeout"), "{load_loop:?}");
    assert!(of("7_ok.lua").is_empty());
    assert_eq!(report.stats.failures, 10);
}

/// Issue 16 (3): runaways in places Lua runs with hooks off — an `xpcall` message handler of an error
/// and a `__gc` finalizer — are stopped too, and a script that caught one still works afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_xpcall_handler_and_finalizer_runaways_are_stopped() {
    let scripts = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(scripts.path().join(name), text).unwrap();
    write(
        "1_xpcall.lua",
        r#"function on_event(e, ctx)
  xpcall(function() error("x") end, function() while true do end end)
end"#,
    );
    write(
        "2_xpcall_timeout.lua",
        r#"function on_event(e, ctx)
  xpcall(function() while true do end end, function() while true do end end)
end"#,
    );
    write(
        "3_gc.lua",
        r#"function on_event(e, ctx)
  setmetatable({}, {__gc = function() while true do end end})
  collectgarbage()
end"#,
    );
    write(
        "4_gc_at_load.lua",
        r#"setmetatable({}, {__gc = function() while true do end end})
function on_event(e, ctx) end"#,
    );
    // xpcall still behaves like xpcall: handler result on error, all results on success.
    write(
        "5_ok.lua",
        r#"function on_event(e, ctx)
  local ok, v = xpcall(function() error("boom", 0) end, function(m) return "handled " .. m end)
  assert(ok == false and v == "handled boom", tostring(v))
  local ok2, a, b = xpcall(function(x, y) return x + y, "two" end, print, 1, 2)
  assert(ok2 and a == 3 and b == "two")
  local t = setmetatable({}, {__index = function() return 7 end})
  assert(t.anything == 7)
end"#,
    );
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "scripts_dir": scripts.path(), "timeout_ms": 500}},
    }));
    let started = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(60), run(&cfg, vec![event()]))
        .await
        .expect("every runaway stopped");
    assert!(report.drained, "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let of = |name: &str| -> Vec<String> {
        report
            .failures
            .iter()
            .filter(|f| f.action == format!("lua:{name}"))
            .map(|f| f.message.clone())
            .collect()
    };
    let x = of("1_xpcall.lua");
    assert_eq!(x.len(), 1, "{:#?}", report.failures);
    assert!(x[0].contains("timeout"), "{x:?}");
    let x = of("2_xpcall_timeout.lua");
    assert_eq!(x.len(), 1, "{:#?}", report.failures);
    assert!(x[0].contains("timeout"), "{x:?}");
    for name in ["3_gc.lua", "4_gc_at_load.lua"] {
        let x = of(name);
        assert_eq!(x.len(), 1, "{name}: {:#?}", report.failures);
        assert!(x[0].contains("__gc metamethods are not allowed"), "{x:?}");
    }
    assert!(of("5_ok.lua").is_empty(), "{:#?}", report.failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_without_on_event_is_reported_and_the_default_script_runs() {
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "inline_script": "x = 1"}},
    }));
    let report = run(&cfg, vec![event()]).await;
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].message.contains("on_event"));
    // Lua enabled without any script: the built-in default script logs each event.
    let cfg = config(json!({"plugins": {"lua": {"enabled": true}}}));
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
    assert_eq!(report.stats.processed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_bodies_beyond_the_memory_cap_are_refused() {
    let server = crate::util::TestServer::start().await;
    // /big is 1 MiB; the cap is 512 KiB.
    let script = r#"
function on_event(e, ctx)
  local r = http.fetch("{BASE}/big")
  assert(r.status == nil and r.error:find("memory_limit_bytes"), tostring(r.error))
  local s = http.stream("{BASE}/big", function() return true end)
  assert(s.ok and s.bytes == 1048576, s.error)
end"#
        .replace("{BASE}", &server.url(""));
    let cfg = config(
        json!({"plugins": {"lua": {"enabled": true, "inline_script": script,
        "memory_limit_bytes": 512 << 10}}}),
    );
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
}

/// Issue 16 (3): runaways inside C functions, where no hook fires — a backtracking pattern in each
/// pattern function, `table.move` over a huge range, and `table.insert`/`table.remove` with a lying
/// `__len` — stop at the timeout, and the scripts work again for the next event. `string.rep` of an
/// empty string (a C loop copying nothing 2^62 times) now returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_runaways_inside_c_functions_are_stopped() {
    let scripts = tempfile::tempdir().unwrap();
    let runaways = [
        (
            "find",
            r#"string.find(string.rep("a", 5000), string.rep("a-", 8) .. "b")"#,
        ),
        (
            "method",
            r#"(string.rep("a", 5000)):match(string.rep("a-", 8) .. "b")"#,
        ),
        (
            "gmatch",
            r#"for _ in string.gmatch(string.rep("a", 5000), string.rep("a-", 8) .. "b") do end"#,
        ),
        (
            "gsub",
            r#"string.gsub(string.rep("a", 5000), string.rep("a-", 8) .. "b", "")"#,
        ),
        // Caught with pcall, in a loop: stopped again at the next call.
        (
            "pcall_find",
            r#"while true do pcall(string.find, string.rep("a", 5000), string.rep("a-", 8) .. "b") end"#,
        ),
        ("rep", r#"assert(string.rep("", 1 << 62) == "")"#),
        ("move", "table.move({}, 1, math.maxinteger - 10, 2)"),
        (
            "insert",
            "table.insert(setmetatable({}, {__len = function() return math.maxinteger - 1 end}), 1, 'x')",
        ),
        (
            "remove",
            "table.remove(setmetatable({}, {__len = function() return math.maxinteger - 1 end}), 1)",
        ),
    ];
    for (name, body) in runaways {
        std::fs::write(
            scripts.path().join(format!("{name}.lua")),
            format!(
                "n = 0\nfunction on_event(e, ctx)\n  n = n + 1\n  if n == 1 then {body} end\nend"
            ),
        )
        .unwrap();
    }
    let cfg = config(json!({
        "plugins": {"lua": {"enabled": true, "scripts_dir": scripts.path(), "timeout_ms": 300}},
    }));
    let started = Instant::now();
    let report = tokio::time::timeout(Duration::from_secs(60), run(&cfg, vec![event(), event()]))
        .await
        .expect("every runaway stopped");
    eprintln!(
        "{} runaways stopped in {:?}",
        runaways.len(),
        started.elapsed()
    );
    assert!(report.drained, "{report:?}");
    assert_eq!(report.stats.processed, 2);
    for (name, _) in runaways {
        if name == "rep" {
            continue;
        }
        let failures: Vec<_> = report
            .failures
            .iter()
            .filter(|f| f.action == format!("lua:{name}.lua"))
            .map(|f| f.message.clone())
            .collect();
        // Stopped once (first event); the second event ran normally.
        assert_eq!(failures.len(), 1, "{name}: {:#?}", report.failures);
        assert!(failures[0].contains("timeout"), "{name}: {failures:?}");
    }
    assert_eq!(report.stats.failures, runaways.len() as u64 - 1);
}

/// The chunked `string.rep`, `table.move`, `table.insert` and `table.remove` give what C gives, for
/// short and long ranges, overlapping moves both ways, and the argument errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_table_functions_behave_like_lua() {
    let script = r#"
local function seq(n) local t = {} for i = 1, n do t[i] = i end return t end
local function check(t, n, f) for i = 1, n do assert(t[i] == f(i), i .. ": " .. tostring(t[i])) end end
function on_event(e, ctx)
  assert(string.rep("", 5) == "" and string.rep("", 0) == "" and string.rep("ab", 3, ",") == "ab,ab,ab")
  assert(string.rep("", 3, "-") == "--" and string.rep(7, 2) == "77")
  assert(not pcall(string.rep, "", 1.5) and not pcall(string.rep, "", "x"))
  for _, n in ipairs({10, 70000}) do  -- 70000: more than one chunk of 65536
    -- overlapping, upwards (C moves from the top down)
    local t = table.move(seq(n), 1, n, 3)
    check(t, n + 2, function(i) return i <= 2 and i or i - 2 end)
    -- overlapping, downwards
    t = table.move(seq(n), 3, n, 1)
    check(t, n - 2, function(i) return i + 2 end)
    assert(t[n] == n)
    -- into another table; the result is the destination
    local d = {}
    assert(table.move(seq(n), 1, n, 5, d) == d)
    assert(d[4] == nil and d[5] == 1 and d[n + 4] == n)
    -- insert in the middle, remove from the front
    t = seq(n)
    table.insert(t, 2, "x")
    assert(#t == n + 1 and t[1] == 1 and t[2] == "x" and t[3] == 2 and t[n + 1] == n)
    assert(table.remove(t, 2) == "x" and #t == n and t[2] == 2 and t[n] == n)
    assert(table.remove(t, 1) == 1 and #t == n - 1 and t[1] == 2 and t[n - 1] == n)
    assert(table.remove(t) == n and #t == n - 2)
  end
  local ok, err = pcall(table.move, {}, 1, math.maxinteger, 2)
  assert(not ok and err:find("destination wrap around"), err)
  ok, err = pcall(table.insert, {1, 2}, 5, "x")
  assert(not ok and err:find("position out of bounds"), err)
  ok, err = pcall(table.insert, {1}, 1, 2, 3)
  assert(not ok and err:find("wrong number of arguments"), err)
end"#;
    let cfg = config(
        json!({"plugins": {"lua": {"enabled": true, "inline_script": script, "timeout_ms": 60000}}}),
    );
    let report = run(&cfg, vec![event()]).await;
    assert_no_failures(&report);
}
