//! The proxy listener's protocol settings: `tls:` (certificate and key files, optional client
//! certificates), `http2:` (HTTP/2 from clients and its bounds) and `listener:` (per-connection
//! socket buffers). Configuration only; the proxy binds and the certificate watcher reloads.

use super::error::Diag;
use super::reader::{MapReader, boolean, integer, opt_string, string};
use super::yaml::Node;

/// TLS on the proxy listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsListener {
    /// PEM certificate chain (leaf first).
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    pub client_ca_file: Option<String>,
}

/// HTTP/2 from clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http2 {
    /// h2 by ALPN on a TLS listener, and prior-knowledge h2c on a plain one.
    pub enabled: bool,
    /// Streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Largest header list (decoded, RFC 9113 SETTINGS_MAX_HEADER_LIST_SIZE).
    pub max_header_list_bytes: u32,
    /// Streams a client may reset before their handler ran (the "rapid reset" bound); past it
    /// the connection is closed.
    pub max_pending_resets: usize,
}

impl Default for Http2 {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent_streams: 100,
            max_header_list_bytes: 64 * 1024,
            max_pending_resets: 20,
        }
    }
}

/// Per-connection socket buffers of the proxy listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffers {
    /// Bytes read from a client socket ahead of parsing; 0 reads straight into the request
    /// parser's own buffer (an idle keep-alive connection then holds no read buffer).
    pub read_buffer_bytes: usize,
    /// Bytes collected before a write to a client socket.
    pub write_buffer_bytes: usize,
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            read_buffer_bytes: 0,
            write_buffer_bytes: 1460,
        }
    }
}

pub(crate) fn parse_tls(d: &mut Diag, n: &Node, path: &str) -> Option<TlsListener> {
    let m = MapReader::new(d, n, path, &super::schema::children("tls"))?;
    let mut need = |key: &str| match m.get(key) {
        Some((n, p)) => string(d, n, &p).map(str::to_owned),
        None => {
            d.err(m.pos, path, format!("missing `{key}`"));
            None
        }
    };
    let cert_file = need("cert_file");
    let key_file = need("key_file");
    let client_ca_file = m
        .get("client_ca_file")
        .and_then(|(n, p)| opt_string(d, n, &p));
    Some(TlsListener {
        cert_file: cert_file?,
        key_file: key_file?,
        client_ca_file,
    })
}

pub(crate) fn parse_http2(d: &mut Diag, n: &Node, path: &str) -> Http2 {
    let mut h = Http2::default();
    let Some(m) = MapReader::new(d, n, path, &super::schema::children("http2")) else {
        return h;
    };
    if let Some((n, p)) = m.get("enabled") {
        h.enabled = boolean(d, n, &p).unwrap_or(h.enabled);
    }
    if let Some((n, p)) = m.get("max_concurrent_streams") {
        h.max_concurrent_streams =
            integer(d, n, &p, 1, 10_000).map_or(h.max_concurrent_streams, |v| v as u32);
    }
    if let Some((n, p)) = m.get("max_header_list_bytes") {
        h.max_header_list_bytes =
            integer(d, n, &p, 1024, 16 << 20).map_or(h.max_header_list_bytes, |v| v as u32);
    }
    if let Some((n, p)) = m.get("max_pending_resets") {
        h.max_pending_resets =
            integer(d, n, &p, 1, 10_000).map_or(h.max_pending_resets, |v| v as usize);
    }
    h
}

pub(crate) fn parse_buffers(d: &mut Diag, n: &Node, path: &str) -> Buffers {
    let mut b = Buffers::default();
    let Some(m) = MapReader::new(d, n, path, &super::schema::children("listener")) else {
        return b;
    };
    if let Some((n, p)) = m.get("read_buffer_bytes") {
        b.read_buffer_bytes =
            integer(d, n, &p, 0, 1 << 20).map_or(b.read_buffer_bytes, |v| v as usize);
    }
    if let Some((n, p)) = m.get("write_buffer_bytes") {
        b.write_buffer_bytes =
            integer(d, n, &p, 0, 1 << 20).map_or(b.write_buffer_bytes, |v| v as usize);
    }
    b
}
