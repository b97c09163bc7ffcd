//! `http.*`: fetch (both call forms), download (into storage), stream, urlencode, per-script auth.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mlua::{Function, Lua, Table, Value};

use super::ScriptEnv;

/// Request timeout when the script gives none (capped by the script's own deadline).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default)]
enum Auth {
    #[default]
    None,
    Bearer(String),
    Basic(String, String),
}

/// Options common to fetch and stream.
#[derive(Debug, Default)]
struct Opts {
    method: Option<String>,
    body: Option<Bytes>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
}

fn parse_opts(opts: Option<Table>) -> mlua::Result<Opts> {
    let Some(t) = opts else {
        return Ok(Opts::default());
    };
    let mut o = Opts {
        method: t.get("method")?,
        body: t
            .get::<Option<mlua::LuaString>>("body")?
            .map(|s| Bytes::copy_from_slice(&s.as_bytes())),
        content_type: t.get("content_type")?,
        ..Opts::default()
    };
    if let Some(ms) = t.get::<Option<f64>>("timeout_ms")? {
        o.timeout = Some(Duration::from_millis(ms.max(1.0) as u64));
    }
    match t.get::<Value>("headers")? {
        Value::Table(h) => {
            for pair in h.pairs::<Value, mlua::LuaString>() {
                let (k, v) = pair?;
                let v = v.to_string_lossy();
                match k {
                    // The original's form: a list of "Name: value".
                    Value::Integer(_) | Value::Number(_) => {
                        if let Some((name, value)) = v.split_once(':') {
                            o.headers
                                .push((name.trim().to_string(), value.trim().to_string()));
                        }
                    }
                    Value::String(name) => o.headers.push((name.to_string_lossy(), v)),
                    _ => {}
                }
            }
        }
        Value::Nil => {}
        _ => return Err(mlua::Error::runtime("opts.headers must be a table")),
    }
    Ok(o)
}

struct Http {
    env: Arc<ScriptEnv>,
    auth: Mutex<Auth>,
}

enum Prepared {
    Request(Box<reqwest::RequestBuilder>),
    Error(String),
}

impl Http {
    /// Builds a request; the timeout is the script's (or 30 s), never past the script's deadline.
    fn prepare(&self, method: &str, url: &str, opts: Opts) -> Prepared {
        let method = match reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => return Prepared::Error(format!("invalid method {method:?}")),
        };
        let mut timeout = opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if let Some(left) = self.env.control.remaining() {
            if left.is_zero() {
                return Prepared::Error("script timeout reached".into());
            }
            timeout = timeout.min(left);
        }
        let mut req = self.env.client.request(method, url).timeout(timeout);
        let mut has_auth = false;
        for (name, value) in &opts.headers {
            has_auth |= name.eq_ignore_ascii_case("authorization");
            req = req.header(name.as_str(), value.as_str());
        }
        if let Some(ct) = &opts.content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct.as_str());
        }
        if !has_auth {
            let auth = self.auth.lock().unwrap_or_else(|p| p.into_inner()).clone();
            req = match auth {
                Auth::None => req,
                Auth::Bearer(t) => req.bearer_auth(t),
                Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            };
        }
        if let Some(body) = opts.body {
            req = req.body(body);
        }
        Prepared::Request(Box::new(req))
    }
}

fn error_table(lua: &Lua, message: impl AsRef<str>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("error", message.as_ref())?;
    Ok(t)
}

fn headers_table(lua: &Lua, headers: &reqwest::header::HeaderMap) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        t.set(name.as_str(), values.join(", "))?;
    }
    Ok(t)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Percent-encodes everything but RFC 3986 unreserved characters (as curl_easy_escape does).
pub(crate) fn urlencode(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(super) fn register(lua: &Lua, env: &Arc<ScriptEnv>) -> mlua::Result<()> {
    let http = Arc::new(Http {
        env: Arc::clone(env),
        auth: Mutex::new(Auth::None),
    });
    let t = lua.create_table()?;

    // http.fetch(method, url, opts) or http.fetch(url, {method = ...}) -> {status, body, headers} | {error}
    let h = Arc::clone(&http);
    t.set(
        "fetch",
        lua.create_function(move |lua, (a, b, c): (String, Value, Option<Table>)| {
            let (method, url, opts) = match b {
                Value::String(url) => (a, url.to_string_lossy(), parse_opts(c)?),
                Value::Table(opts) => {
                    let o = parse_opts(Some(opts))?;
                    (o.method.clone().unwrap_or_else(|| "GET".into()), a, o)
                }
                Value::Nil => ("GET".to_string(), a, Opts::default()),
                _ => {
                    return Err(mlua::Error::runtime(
                        "http.fetch(method, url, opts) or http.fetch(url, opts)",
                    ));
                }
            };
            let req = match h.prepare(&method, &url, opts) {
                Prepared::Request(r) => *r,
                Prepared::Error(e) => return error_table(lua, e),
            };
            let max_body = h.env.max_body;
            let result = h.env.runtime.block_on(async move {
                let mut resp = req.send().await.map_err(|e| error_chain(&e))?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                // Bounded: a body the script's memory cap cannot hold is an error, not a host OOM.
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
                    if (body.len() + chunk.len()) as u64 > max_body {
                        return Err(format!(
                            "response body larger than plugins.lua.memory_limit_bytes ({max_body}); \
                             use http.stream or http.download"
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok((status, headers, body))
            });
            match result {
                Ok((status, headers, body)) => {
                    let out = lua.create_table()?;
                    out.set("status", status)?;
                    out.set("body", lua.create_string(&body)?)?;
                    out.set("headers", headers_table(lua, &headers)?)?;
                    Ok(out)
                }
                Err(e) => error_table(lua, e),
            }
        })?,
    )?;

    // http.download(url, key, opts) -> {ok, bytes, status} | {ok=false, error}: streams into storage.
    let h = Arc::clone(&http);
    t.set(
        "download",
        lua.create_function(
            move |lua, (url, key, opts): (String, String, Option<Table>)| {
                let opts = parse_opts(opts)?;
                let method = opts.method.clone().unwrap_or_else(|| "GET".into());
                let out = lua.create_table()?;
                let fail = |msg: String| -> mlua::Result<Table> {
                    out.set("ok", false)?;
                    out.set("error", msg)?;
                    Ok(out.clone())
                };
                let Some(storage) = h.env.storage() else {
                    return fail("storage not configured".into());
                };
                let req = match h.prepare(&method, &url, opts) {
                    Prepared::Request(r) => *r,
                    Prepared::Error(e) => return fail(e),
                };
                let result = h.env.runtime.block_on(async move {
                    let mut resp = req.send().await.map_err(|e| error_chain(&e))?;
                    let status = resp.status();
                    if !status.is_success() {
                        return Err(format!("HTTP {}", status.as_u16()));
                    }
                    let mut w = storage.open_write(&key).await.map_err(|e| e.to_string())?;
                    loop {
                        match resp.chunk().await {
                            Ok(Some(chunk)) => {
                                if let Err(e) = w.write(chunk).await {
                                    let _ = w.abort().await;
                                    return Err(e.to_string());
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = w.abort().await;
                                return Err(error_chain(&e));
                            }
                        }
                    }
                    let n = w.finish().await.map_err(|e| e.to_string())?;
                    Ok((status.as_u16(), n))
                });
                match result {
                    Ok((status, n)) => {
                        out.set("ok", true)?;
                        out.set("bytes", n)?;
                        out.set("status", status)?;
                        Ok(out)
                    }
                    Err(e) => fail(e),
                }
            },
        )?,
    )?;

    // http.stream(url, fn(chunk, info) -> bool, opts) -> {ok, bytes, status, error}
    let h = Arc::clone(&http);
    t.set(
        "stream",
        lua.create_function(
            move |lua, (url, callback, opts): (String, Function, Option<Table>)| {
                let opts = parse_opts(opts)?;
                let method = opts.method.clone().unwrap_or_else(|| "GET".into());
                let out = lua.create_table()?;
                let req = match h.prepare(&method, &url, opts) {
                    Prepared::Request(r) => *r,
                    Prepared::Error(e) => {
                        out.set("ok", false)?;
                        out.set("bytes", 0)?;
                        out.set("error", e)?;
                        return Ok(out);
                    }
                };
                let rt = &h.env.runtime;
                let mut total: u64 = 0;
                let mut error: Option<String> = None;
                match rt.block_on(req.send()) {
                    Err(e) => error = Some(error_chain(&e)),
                    Ok(mut resp) => {
                        let status = resp.status().as_u16();
                        out.set("status", status)?;
                        loop {
                            match rt.block_on(resp.chunk()) {
                                Ok(Some(chunk)) => {
                                    let info = lua.create_table()?;
                                    info.set("size", chunk.len())?;
                                    info.set("total", total + chunk.len() as u64)?;
                                    info.set("status", status)?;
                                    let go_on = match callback
                                        .call::<Value>((lua.create_string(&chunk)?, info))
                                    {
                                        Ok(v) => !matches!(v, Value::Nil | Value::Boolean(false)),
                                        Err(e) => {
                                            error = Some(e.to_string());
                                            break;
                                        }
                                    };
                                    if !go_on {
                                        error = Some("aborted by callback".into());
                                        break;
                                    }
                                    total += chunk.len() as u64;
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    error = Some(error_chain(&e));
                                    break;
                                }
                            }
                        }
                    }
                }
                out.set("ok", error.is_none())?;
                out.set("bytes", total)?;
                if let Some(e) = error {
                    out.set("error", e)?;
                }
                Ok(out)
            },
        )?,
    )?;

    t.set(
        "urlencode",
        lua.create_function(|_, s: mlua::LuaString| Ok(urlencode(&s.as_bytes())))?,
    )?;

    let h = Arc::clone(&http);
    t.set(
        "set_bearer_token",
        lua.create_function(move |_, token: String| {
            *h.auth.lock().unwrap_or_else(|p| p.into_inner()) = Auth::Bearer(token);
            Ok(true)
        })?,
    )?;
    let h = Arc::clone(&http);
    t.set(
        "set_basic_auth",
        lua.create_function(move |_, (user, pass): (String, String)| {
            *h.auth.lock().unwrap_or_else(|p| p.into_inner()) = Auth::Basic(user, pass);
            Ok(true)
        })?,
    )?;

    lua.globals().set("http", t)
}

#[cfg(test)]
mod tests {
    use super::urlencode;

    #[test]
    fn urlencode_keeps_only_unreserved() {
        assert_eq!(urlencode(b"a b&c=d/e~f.g-h_i"), "a%20b%26c%3Dd%2Fe~f.g-h_i");
        assert_eq!(urlencode("ü".as_bytes()), "%C3%BC");
    }
}
