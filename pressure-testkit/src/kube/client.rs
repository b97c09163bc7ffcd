//! A minimal blocking HTTPS client for the control plane: one request per connection, HTTP/1.1,
//! authenticated with a client certificate or a bearer token, the body capped. Enough to poll
//! `/readyz`, create objects and request tokens without spawning `kubectl` for each.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The largest response body read (a list of 10,000 pods is about 30 MiB in JSON).
const MAX_BODY: u64 = 256 << 20;

/// How a request authenticates.
#[derive(Clone)]
pub(crate) enum Auth {
    /// A client certificate (and its key, PKCS#8 DER).
    Cert(CertificateDer<'static>, Vec<u8>),
    /// A bearer token.
    Token(String),
}

/// An HTTPS client for one server.
#[derive(Clone)]
pub(crate) struct Client {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    token: Option<String>,
}

impl Client {
    pub(crate) fn new(
        addr: SocketAddr,
        ca: &CertificateDer<'static>,
        auth: Auth,
    ) -> Result<Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let (config, token) = match auth {
            Auth::Cert(cert, key) => (
                builder
                    .with_client_auth_cert(vec![cert], PrivateKeyDer::Pkcs8(key.into()))
                    .map_err(|e| e.to_string())?,
                None,
            ),
            Auth::Token(t) => (builder.with_no_client_auth(), Some(t)),
        };
        Ok(Client {
            addr,
            config: Arc::new(config),
            token,
        })
    }

    /// Sends one request; returns the status code and the body.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        tcp.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let conn =
            rustls::ClientConnection::new(self.config.clone(), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{auth}Connection: close\r\nUser-Agent: pressure-testkit\r\n\r\n",
            self.addr,
            body.len()
        );
        tls.write_all(head.as_bytes())
            .and_then(|()| tls.write_all(body))
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let mut raw = Vec::new();
        // The server closes after the response (Connection: close); a TLS close without
        // close_notify still leaves a complete response in `raw`.
        if let Err(e) = tls.take(MAX_BODY).read_to_end(&mut raw)
            && raw.is_empty()
        {
            return Err(format!("{method} {path}: {e}"));
        }
        parse_response(&raw).map_err(|e| format!("{method} {path}: {e}"))
    }
}

/// Status and body of a complete HTTP/1.1 response (Content-Length, chunked or read-to-close).
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response head")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size {
            return Err("truncated chunk".to_owned());
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn responses_with_length_and_chunks() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(parse_response(plain).unwrap(), (200, b"ok".to_vec()));
        let chunked =
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (403, b"abcde".to_vec()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
