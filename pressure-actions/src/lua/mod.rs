//! Lua 5.4 scripts with the original pressured API, one sandboxed state per script.
//!
//! Each script gets its own state (globals, HTTP auth), a memory cap (`plugins.lua.memory_limit_bytes`)
//! and a deadline (`plugins.lua.timeout_ms`) enforced by an instruction-count hook, so `while true do end`
//! is stopped and reported. Scripts run on a blocking thread; their HTTP and storage calls block that
//! thread on the runtime, never the async workers.

mod http;
mod pattern;
mod storage;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, LuaSerdeExt, MultiValue, StdLib, Table, Value, VmState,
};
use pressure_core::Event;

use crate::ActionsError;
use crate::action::{Action, ActionContext};
use crate::config::LuaConfig;
use crate::registry::Registry;
use crate::storage::Storage;

/// Instructions between two deadline checks: cheap, and a runaway loop is stopped within microseconds
/// of its deadline.
const HOOK_EVERY: u32 = 10_000;

/// Used when Lua is enabled but no script is configured (as the original does).
const DEFAULT_SCRIPT: &str = r#"
function on_event(event, ctx)
  log.info(string.format("memory event %s: %s/%s/%s at %s%%", event.event_type,
    tostring(event.namespace), tostring(event.pod_name), tostring(event.container_name),
    tostring(event.usage_percent)))
  return "ok"
end
"#;

/// Runs before every script: removes what the sandbox forbids, makes `load` text-only, and closes the two
/// ways around the timeout hook (`xpcall` handlers, `__gc` finalizers).
const SANDBOX: &str = r##"
dofile = nil
loadfile = nil
require = nil
for _, name in ipairs({"execute", "remove", "rename", "exit", "tmpname", "setlocale"}) do
  os[name] = nil
end
local rawload = load
load = function(...)
  local chunk, name, _, env = ...
  if select("#", ...) >= 4 then
    return rawload(chunk, name, "t", env)
  end
  return rawload(chunk, name, "t")
end
-- The timeout is an instruction hook, and Lua runs two kinds of user code with hooks off (issue 16):
-- a message handler called for an error the hook raised (luaD_hook leaves hooks disabled until the
-- protected call unwinds), and __gc finalizers (GCTM turns hooks off). So xpcall runs its handler as an
-- ordinary call after the protected call has unwound, and finalizers are refused.
local rawpcall, rawsetmetatable, rawget, type = pcall, setmetatable, rawget, type
local pack, unpack = table.pack, table.unpack
local function deadline_check() end
xpcall = function(f, handler, ...)
  local r = pack(rawpcall(f, ...))
  if r[1] then
    return unpack(r, 1, r.n)
  end
  local _, v = rawpcall(handler, r[2])
  -- A call, outside any protected call: the call hook stops a script whose deadline passed meanwhile.
  deadline_check()
  return false, v
end
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed: finalizers run where plugins.lua.timeout_ms cannot stop them", 2)
  end
  return rawsetmetatable(t, mt)
end
-- C loops whose length a script chooses and that call no Lua code, so no hook fires in them (issue
-- 16): string.rep of an empty string copies nothing n times (no memory bound either), table.move moves
-- any range, and table.insert/remove move up to #t elements, which a __len metamethod chooses. Long
-- runs go through in chunks of at most CHUNK elements, one C call each, in the order C uses, so the
-- call hook can stop them; short ones (and every argument error) are C's own.
local rawrep, rawmove, rawinsert, rawremove = string.rep, table.move, table.insert, table.remove
local tointeger, maxinteger, select = math.tointeger, math.maxinteger, select
local CHUNK = 1 << 16
string.rep = function(s, n, sep)
  if s == "" and (sep == nil or sep == "") and tointeger(n) then
    return ""
  end
  return rawrep(s, n, sep)
end
local function move(a1, f, e, t, a2)
  local fi, ei, ti = tointeger(f), tointeger(e), tointeger(t)
  if not (fi and ei and ti and ei >= fi and (fi > 0 or ei < maxinteger + fi)
          and ei - fi >= CHUNK and ti <= maxinteger - (ei - fi)) then
    return rawmove(a1, f, e, t, a2)
  end
  if ti > ei or ti <= fi or (a2 ~= nil and not (a1 == a2)) then
    for lo = fi, ei, CHUNK do
      local hi = ei - lo < CHUNK and ei or lo + CHUNK - 1
      rawmove(a1, lo, hi, ti + (lo - fi), a2)
    end
  else
    for hi = ei, fi, -CHUNK do
      local lo = hi - fi < CHUNK and fi or hi - CHUNK + 1
      rawmove(a1, lo, hi, ti + (lo - fi), a2)
    end
  end
  if a2 == nil then return a1 end
  return a2
end
table.move = move
table.insert = function(t, ...)
  if select("#", ...) == 2 and type(t) == "table" then
    local n, pos = #t, tointeger((...))
    if tointeger(n) and pos and pos >= 1 and pos <= n and n - pos >= CHUNK then
      move(t, pos, n, pos + 1)
      t[pos] = (select(2, ...))
      return
    end
  end
  return rawinsert(t, ...)
end
table.remove = function(t, ...)
  if type(t) == "table" then
    local size = #t
    local pos = size
    if select("#", ...) > 0 and (...) ~= nil then pos = tointeger((...)) end
    if tointeger(size) and pos and pos >= 1 and pos < size and size - pos >= CHUNK then
      local v = t[pos]
      move(t, pos + 1, size, pos)
      t[size] = nil
      return v
    end
  end
  return rawremove(t, ...)
end
print = function(...)
  local parts = {}
  for i = 1, select("#", ...) do
    parts[#parts + 1] = tostring((select(i, ...)))
  end
  log.info(table.concat(parts, "\t"))
end
"##;

/// The deadline of the running call and the dispatcher's cancel flag, read by the hook.
#[derive(Debug)]
pub(crate) struct Control {
    base: Instant,
    /// Milliseconds since `base`; `u64::MAX` = no call running.
    deadline_ms: AtomicU64,
    timeout: Duration,
    cancel: Arc<AtomicBool>,
}

impl Control {
    fn arm(&self) {
        let ms = (self.base.elapsed() + self.timeout).as_millis() as u64;
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.deadline_ms.store(u64::MAX, Ordering::Relaxed);
    }

    /// Time left for the running call (`None` = not running under a deadline).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        if deadline == u64::MAX {
            return None;
        }
        Some(Duration::from_millis(deadline).saturating_sub(self.base.elapsed()))
    }

    fn expired(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.remaining() == Some(Duration::ZERO)
    }

    /// The error of a stopped script (by the hook or inside a pattern function): its deadline passed, or
    /// the dispatcher's shutdown deadline did.
    fn stop_message(&self) -> String {
        if self.cancel.load(Ordering::Relaxed) {
            "stopped: the actions' shutdown deadline passed while the script ran".to_string()
        } else {
            format!(
                "timeout: script stopped after plugins.lua.timeout_ms = {} ms",
                self.timeout.as_millis()
            )
        }
    }
}

/// What every binding of one script shares.
#[derive(Debug)]
pub(crate) struct ScriptEnv {
    pub(crate) name: String,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) client: reqwest::Client,
    pub(crate) storages: Arc<Registry<dyn Storage>>,
    pub(crate) control: Arc<Control>,
    /// `plugins.lua.memory_limit_bytes`: also the largest `http.fetch` body read into memory.
    pub(crate) max_body: u64,
}

impl ScriptEnv {
    pub(crate) fn storage(&self) -> Option<Arc<dyn Storage>> {
        self.storages.resolve("storage")
    }
}

/// One loaded script.
#[derive(Debug)]
struct Script {
    name: String,
    lua: Lua,
    control: Arc<Control>,
}

impl Script {
    fn load(
        name: &str,
        source: &str,
        settings: &LuaConfig,
        config_value: &serde_json::Value,
        env_base: &EnvBase,
    ) -> Result<Script, ActionsError> {
        let lua_err = |e: mlua::Error| ActionsError::Lua {
            script: name.to_string(),
            message: e.to_string(),
        };
        let lua = Lua::new_with(
            StdLib::COROUTINE
                | StdLib::TABLE
                | StdLib::STRING
                | StdLib::UTF8
                | StdLib::MATH
                | StdLib::OS,
            LuaOptions::new(),
        )
        .map_err(lua_err)?;
        let control = Arc::new(Control {
            base: Instant::now(),
            deadline_ms: AtomicU64::new(u64::MAX),
            timeout: Duration::from_millis(settings.timeout_ms),
            cancel: Arc::clone(&env_base.cancel),
        });
        let env = Arc::new(ScriptEnv {
            name: name.to_string(),
            runtime: env_base.runtime.clone(),
            client: env_base.client.clone(),
            storages: Arc::clone(&env_base.storages),
            control: Arc::clone(&control),
            max_body: settings.memory_limit_bytes,
        });
        register_log(&lua, &env).map_err(lua_err)?;
        register_ctx(&lua).map_err(lua_err)?;
        let (expired, message) = (Arc::clone(&control), Arc::clone(&control));
        pattern::register(
            &lua,
            pattern::Limits {
                expired: Arc::new(move || expired.expired()),
                stop_message: Arc::new(move || message.stop_message()),
                max_output: usize::try_from(settings.memory_limit_bytes).unwrap_or(usize::MAX),
            },
        )
        .map_err(lua_err)?;
        http::register(&lua, &env).map_err(lua_err)?;
        storage::register(&lua, &env).map_err(lua_err)?;
        lua.globals()
            .set("config", to_lua(&lua, config_value).map_err(lua_err)?)
            .map_err(lua_err)?;
        lua.load(SANDBOX)
            .set_name("=sandbox")
            .exec()
            .map_err(lua_err)?;

        let hook_control = Arc::clone(&control);
        lua.set_global_hook(
            // Calls too: a runaway that catches the timeout with pcall in a loop is stopped when it
            // calls pcall again, outside the protected call.
            HookTriggers::new()
                .on_calls()
                .every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                if hook_control.expired() {
                    Err(mlua::Error::runtime(hook_control.stop_message()))
                } else {
                    Ok(VmState::Continue)
                }
            },
        )
        .map_err(lua_err)?;
        let limit = usize::try_from(settings.memory_limit_bytes).unwrap_or(usize::MAX);
        // Set after the bindings and the config table are in place: the cap is for the script.
        let used = lua.used_memory();
        lua.set_memory_limit(used.saturating_add(limit))
            .map_err(lua_err)?;

        control.arm();
        let loaded = lua.load(source).set_name(format!("@{name}")).exec();
        control.disarm();
        loaded.map_err(lua_err)?;
        let has_handler = matches!(
            lua.globals().get::<Value>("on_event"),
            Ok(Value::Function(_))
        );
        if !has_handler {
            return Err(ActionsError::Lua {
                script: name.to_string(),
                message: "the script does not define a function on_event(event, ctx)".into(),
            });
        }
        Ok(Script {
            name: name.to_string(),
            lua,
            control,
        })
    }

    fn on_event(&self, event: &serde_json::Value, dry_run: bool) -> Result<(), ActionsError> {
        let lua_err = |e: mlua::Error| ActionsError::Lua {
            script: self.name.clone(),
            message: e.to_string(),
        };
        let handler: Function = self.lua.globals().get("on_event").map_err(lua_err)?;
        let event = to_lua(&self.lua, event).map_err(lua_err)?;
        let ctx: Table = self.lua.globals().get("ctx").map_err(lua_err)?;
        ctx.set("dry_run", dry_run).map_err(lua_err)?;
        self.control.arm();
        let started = Instant::now();
        let result = handler.call::<Value>((event, ctx));
        self.control.disarm();
        // Return what the call allocated now rather than at an arbitrary later event.
        let _ = self.lua.gc_collect();
        match result {
            Ok(v) => {
                tracing::debug!(script = %self.name, elapsed_ms = started.elapsed().as_millis() as u64,
                    "on_event returned {}", describe(&v));
                Ok(())
            }
            Err(e) => Err(lua_err(e)),
        }
    }
}

/// What [`Script::load`] needs from the dispatcher.
struct EnvBase {
    runtime: tokio::runtime::Handle,
    client: reqwest::Client,
    storages: Arc<Registry<dyn Storage>>,
    cancel: Arc<AtomicBool>,
}

/// The `lua` action: every script's `on_event`, in order, on a blocking thread.
#[derive(Debug)]
pub(crate) struct LuaAction {
    scripts: Arc<Vec<Mutex<Script>>>,
}

impl LuaAction {
    /// Loads the scripts of `plugins.lua`; returns the action and the scripts that failed to load (as
    /// `(action name, error)`), which are skipped. Scripts see `config_value` as their global `config`.
    pub(crate) fn load(
        settings: &LuaConfig,
        config_value: &serde_json::Value,
        storages: Arc<Registry<dyn Storage>>,
        runtime: tokio::runtime::Handle,
        cancel: Arc<AtomicBool>,
    ) -> Result<(LuaAction, Vec<(String, ActionsError)>), ActionsError> {
        let lc = settings;
        let mut sources: Vec<(String, String)> = Vec::new();
        if let Some(path) = lc.script.as_deref().filter(|s| !s.is_empty()) {
            let path = Path::new(path);
            sources.push((file_name(path), read_script(path)?));
        }
        if let Some(dir) = lc.scripts_dir.as_deref().filter(|s| !s.is_empty()) {
            let dir = PathBuf::from(dir);
            let io = |source| ActionsError::ScriptIo {
                path: dir.clone(),
                source,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(io)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "lua") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                tracing::warn!(dir = %dir.display(), "plugins.lua.scripts_dir has no *.lua files");
            }
            for f in files {
                sources.push((file_name(&f), read_script(&f)?));
            }
        }
        if let Some(text) = lc.inline_script.as_deref().filter(|s| !s.is_empty()) {
            sources.push(("inline".to_string(), text.to_string()));
        }
        if sources.is_empty() {
            sources.push(("default".to_string(), DEFAULT_SCRIPT.to_string()));
        }
        crate::tls::install_ring();
        let client = reqwest::Client::builder()
            .user_agent(concat!("pressured/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ActionsError::Config {
                key: "plugins.lua".into(),
                message: format!("HTTP client: {e}"),
            })?;
        let base = EnvBase {
            runtime,
            client,
            storages,
            cancel,
        };
        let mut scripts = Vec::new();
        let mut failures = Vec::new();
        // Load on a plain thread: top-level code may call http.* or storage.*, which block on the
        // runtime, and that is not allowed on a thread that is already running async code.
        let loaded: Vec<_> = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    sources
                        .into_iter()
                        .map(|(name, source)| {
                            let r = Script::load(&name, &source, settings, config_value, &base);
                            (name, r)
                        })
                        .collect()
                })
                .join()
                .unwrap_or_default()
        });
        for (name, result) in loaded {
            match result {
                Ok(s) => {
                    tracing::info!(script = %name, "lua script loaded");
                    scripts.push(Mutex::new(s));
                }
                Err(e) => failures.push((format!("lua:{name}"), e)),
            }
        }
        Ok((
            LuaAction {
                scripts: Arc::new(scripts),
            },
            failures,
        ))
    }
}

impl Action for LuaAction {
    fn handle<'a>(
        &'a self,
        event: &'a Event,
        ctx: &'a ActionContext,
    ) -> BoxFuture<'a, Result<(), ActionsError>> {
        Box::pin(async move {
            let value = serde_json::to_value(event).map_err(|e| ActionsError::Lua {
                script: "*".into(),
                message: format!("event to JSON: {e}"),
            })?;
            let scripts = Arc::clone(&self.scripts);
            let ctx = ctx.clone();
            let dry_run = ctx.dry_run();
            tokio::task::spawn_blocking(move || {
                for script in scripts.iter() {
                    let script = script.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(e) = script.on_event(&value, dry_run) {
                        ctx.report_failure(&format!("lua:{}", script.name), &e);
                    }
                }
            })
            .await
            .map_err(|e| ActionsError::Lua {
                script: "*".into(),
                message: format!("script thread: {e}"),
            })
        })
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn read_script(path: &Path) -> Result<String, ActionsError> {
    std::fs::read_to_string(path).map_err(|source| ActionsError::ScriptIo {
        path: path.to_path_buf(),
        source,
    })
}

/// JSON to Lua with `null` as `nil` (so `if event.pod_ip then` works) and plain arrays.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value_with(
        value,
        mlua::serde::SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false)
            .set_array_metatable(false),
    )
}

fn describe(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::String(s) => s.to_string_lossy(),
        other => format!("{other:?}"),
    }
}

/// Joins arguments like `print` does.
fn message(lua: &Lua, args: MultiValue) -> mlua::Result<String> {
    let tostring: Function = lua.globals().get("tostring")?;
    let mut parts = Vec::with_capacity(args.len());
    for v in args {
        match v {
            Value::String(s) => parts.push(s.to_string_lossy()),
            other => parts.push(tostring.call::<String>(other)?),
        }
    }
    Ok(parts.join(" "))
}

/// `log.trace/debug/info/warn/error(msg)`.
fn register_log(lua: &Lua, env: &Arc<ScriptEnv>) -> mlua::Result<()> {
    let log = lua.create_table()?;
    macro_rules! level {
        ($name:literal, $mac:ident) => {{
            let script = env.name.clone();
            log.set(
                $name,
                lua.create_function(move |lua, args: MultiValue| {
                    let msg = message(lua, args)?;
                    tracing::$mac!(target: "pressure_actions::lua", script = %script, "{msg}");
                    Ok(())
                })?,
            )?;
        }};
    }
    level!("trace", trace);
    level!("debug", debug);
    level!("info", info);
    level!("warn", warn);
    level!("error", error);
    lua.globals().set("log", log)
}

/// The global `ctx`: `time_iso()`, `getenv(name)`, and `dry_run` (set per call).
fn register_ctx(lua: &Lua) -> mlua::Result<()> {
    let ctx = lua.create_table()?;
    ctx.set(
        "time_iso",
        lua.create_function(|_, ()| {
            Ok(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string())
        })?,
    )?;
    ctx.set(
        "getenv",
        lua.create_function(|_, name: String| Ok(std::env::var(name).ok()))?,
    )?;
    ctx.set("dry_run", false)?;
    lua.globals().set("ctx", ctx)
}
