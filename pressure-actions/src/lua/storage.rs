//! `storage.*`: write/read/exists/remove/rename and streaming `storage.open(key, "r"|"w")` handles.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use mlua::{Lua, MultiValue, Table, UserData, UserDataMethods, Value};

use super::ScriptEnv;
use crate::storage::{ObjectReader, ObjectWriter, Storage};

/// Largest `handle:read(n)` (as the original: 1 MiB); the default is 8 KiB.
const MAX_READ: usize = 1 << 20;
const DEFAULT_READ: usize = 8192;

fn result_table(lua: &Lua, result: Result<(), String>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    match result {
        Ok(()) => t.set("ok", true)?,
        Err(e) => {
            t.set("ok", false)?;
            t.set("error", e)?;
        }
    }
    Ok(t)
}

fn nil_and(lua: &Lua, message: impl Into<String>) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(lua.create_string(message.into())?),
    ]))
}

enum HandleState {
    Read {
        reader: Box<dyn ObjectReader>,
        buffer: BytesMut,
        eof: bool,
    },
    Write(Box<dyn ObjectWriter>),
    Closed,
}

/// A `storage.open` handle.
struct Handle {
    env: Arc<ScriptEnv>,
    /// In a mutex only because mlua's `send` feature wants userdata to be `Sync`; Lua is single-threaded.
    state: Mutex<HandleState>,
}

impl UserData for Handle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // handle:read(n) -> data, or nil at the end; nil, error on failure.
        methods.add_method_mut("read", |lua, this, n: Option<i64>| {
            let want = match n {
                Some(n) if n > 0 => (n as usize).min(MAX_READ),
                _ => DEFAULT_READ,
            };
            let rt = this.env.runtime.clone();
            let HandleState::Read {
                reader,
                buffer,
                eof,
            } = this.state.get_mut().unwrap_or_else(|p| p.into_inner())
            else {
                return nil_and(lua, "file not open for reading");
            };
            while buffer.len() < want && !*eof {
                match rt.block_on(reader.next_chunk()) {
                    Ok(Some(chunk)) => buffer.extend_from_slice(&chunk),
                    Ok(None) => *eof = true,
                    Err(e) => return nil_and(lua, e.to_string()),
                }
            }
            if buffer.is_empty() {
                return Ok(MultiValue::from_vec(vec![Value::Nil]));
            }
            let take = want.min(buffer.len());
            let data = buffer.split_to(take);
            Ok(MultiValue::from_vec(vec![Value::String(
                lua.create_string(&data)?,
            )]))
        });
        // handle:write(data) -> bytes written; nil, error on failure.
        methods.add_method_mut("write", |lua, this, data: mlua::LuaString| {
            let rt = this.env.runtime.clone();
            let HandleState::Write(writer) =
                this.state.get_mut().unwrap_or_else(|p| p.into_inner())
            else {
                return nil_and(lua, "file not open for writing");
            };
            let bytes = Bytes::copy_from_slice(&data.as_bytes());
            let n = bytes.len();
            match rt.block_on(writer.write(bytes)) {
                Ok(()) => Ok(MultiValue::from_vec(vec![Value::Integer(n as i64)])),
                Err(e) => nil_and(lua, e.to_string()),
            }
        });
        // handle:close() -> true, or false, error. Closing a writer makes the object appear.
        methods.add_method_mut("close", |lua, this, ()| {
            let rt = this.env.runtime.clone();
            let result = match std::mem::replace(
                this.state.get_mut().unwrap_or_else(|p| p.into_inner()),
                HandleState::Closed,
            ) {
                HandleState::Closed => Err("file closed".to_string()),
                HandleState::Read { .. } => Ok(()),
                HandleState::Write(w) => rt
                    .block_on(w.finish())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => Ok(MultiValue::from_vec(vec![Value::Boolean(true)])),
                Err(e) => Ok(MultiValue::from_vec(vec![
                    Value::Boolean(false),
                    Value::String(lua.create_string(e)?),
                ])),
            }
        });
    }
}

pub(super) fn register(lua: &Lua, env: &Arc<ScriptEnv>) -> mlua::Result<()> {
    let t = lua.create_table()?;
    let storage = |env: &ScriptEnv| -> Result<Arc<dyn Storage>, String> {
        env.storage()
            .ok_or_else(|| "storage not configured".to_string())
    };

    let e = Arc::clone(env);
    t.set(
        "write",
        lua.create_function(move |lua, (key, data): (String, mlua::LuaString)| {
            let r = storage(&e).and_then(|s| {
                let data = Bytes::copy_from_slice(&data.as_bytes());
                e.runtime
                    .block_on(s.write(&key, data))
                    .map(|_| ())
                    .map_err(|err| err.to_string())
            });
            result_table(lua, r)
        })?,
    )?;

    let e = Arc::clone(env);
    t.set(
        "read",
        lua.create_function(move |lua, key: String| {
            let r = storage(&e).and_then(|s| {
                e.runtime
                    .block_on(s.read_at_most(&key, e.max_body))
                    .map_err(|err| err.to_string())
            });
            let t = lua.create_table()?;
            match r {
                Ok(data) => {
                    t.set("ok", true)?;
                    t.set("data", lua.create_string(&data)?)?;
                }
                Err(err) => {
                    t.set("ok", false)?;
                    t.set("error", err)?;
                }
            }
            Ok(t)
        })?,
    )?;

    let e = Arc::clone(env);
    t.set(
        "exists",
        lua.create_function(move |_, key: String| {
            Ok(storage(&e)
                .ok()
                .and_then(|s| e.runtime.block_on(s.exists(&key)).ok())
                .unwrap_or(false))
        })?,
    )?;

    let e = Arc::clone(env);
    t.set(
        "remove",
        lua.create_function(move |lua, key: String| {
            let r = storage(&e).and_then(|s| {
                e.runtime
                    .block_on(s.remove(&key))
                    .map_err(|err| err.to_string())
            });
            result_table(lua, r)
        })?,
    )?;

    let e = Arc::clone(env);
    t.set(
        "rename",
        lua.create_function(move |lua, (from, to): (String, String)| {
            let r = storage(&e).and_then(|s| {
                e.runtime
                    .block_on(s.rename(&from, &to))
                    .map_err(|err| err.to_string())
            });
            result_table(lua, r)
        })?,
    )?;

    // storage.open(key, "r"|"w") -> handle, or nil, error
    let e = Arc::clone(env);
    t.set(
        "open",
        lua.create_function(move |lua, (key, mode): (String, Option<String>)| {
            let s = match storage(&e) {
                Ok(s) => s,
                Err(err) => return nil_and(lua, err),
            };
            let write = mode.as_deref().is_some_and(|m| m.starts_with(['w', 'W']));
            let state = if write {
                match e.runtime.block_on(s.open_write(&key)) {
                    Ok(w) => HandleState::Write(w),
                    Err(err) => return nil_and(lua, err.to_string()),
                }
            } else {
                match e.runtime.block_on(s.open_read(&key)) {
                    Ok(r) => HandleState::Read {
                        reader: r,
                        buffer: BytesMut::new(),
                        eof: false,
                    },
                    Err(err) => return nil_and(lua, err.to_string()),
                }
            };
            let ud = lua.create_userdata(Handle {
                env: Arc::clone(&e),
                state: Mutex::new(state),
            })?;
            Ok(MultiValue::from_vec(vec![Value::UserData(ud)]))
        })?,
    )?;

    lua.globals().set("storage", t)
}
