//! A deliberately small HTTP/1.1 GET client for the key directory: one request per connection
//! (`Connection: close`), `If-None-Match`, Content-Length / chunked / read-to-close bodies, a size
//! cap and one overall timeout; `https://` over rustls with the system's root certificates. It does
//! not follow redirects, pool connections, decompress, or speak HTTP/2.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where to send the GET: an `http://` or `https://` URL taken apart once, at start-up.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// `Host:` header value (host, plus the port when it is not the scheme's default).
    authority: String,
    path_and_query: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("key_directory.url {url:?}: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "key_directory.url {url:?}: expected http:// or https://"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("key_directory.url {url:?}: no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "key_directory.url {url:?}: credentials in the URL are not supported"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("key_directory.url {url:?}: no host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

/// GET `target`, all of it (connect, TLS, request, response) within `timeout`; a body over
/// `max_body` bytes is an error.
pub(crate) async fn get(
    target: &Target,
    if_none_match: Option<&str>,
    timeout: Duration,
    max_body: usize,
) -> Result<Response, String> {
    tokio::time::timeout(timeout, get_inner(target, if_none_match, max_body))
        .await
        .map_err(|_| format!("no complete answer within {} ms", timeout.as_millis()))?
}

async fn get_inner(
    target: &Target,
    if_none_match: Option<&str>,
    max_body: usize,
) -> Result<Response, String> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect {}:{}: {e}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    if target.tls {
        let tls = tls_connect(target, tcp).await?;
        exchange(tls, target, if_none_match, max_body).await
    } else {
        exchange(tcp, target, if_none_match, max_body).await
    }
}

async fn tls_connect(
    target: &Target,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| format!("TLS server name {:?}: {e}", target.host))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {}: {e}", target.host))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    target: &Target,
    if_none_match: Option<&str>,
    max_body: usize,
) -> Result<Response, String> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/jwk-set+json, application/json\r\nUser-Agent: sigproxy/{}\r\nConnection: close\r\n",
        target.path_and_query,
        target.authority,
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(tag) = if_none_match.filter(|t| !t.contains(['\r', '\n'])) {
        req.push_str(&format!("If-None-Match: {tag}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send request: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("send request: {e}"))?;

    const MAX_HEAD: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read response: {e}"))?;
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_HEAD + max_body + 64 * 1024 {
                return Err(format!("response larger than {max_body} bytes"));
            }
        }
        let eof = n == 0;
        if let Some(resp) = try_parse(&buf, eof, max_body)? {
            return Ok(resp);
        }
        if eof {
            return Err("connection closed before a complete response".into());
        }
    }
}

/// A complete response from `buf`, `None` when more bytes are needed.
pub(crate) fn try_parse(
    buf: &[u8],
    eof: bool,
    max_body: usize,
) -> Result<Option<Response>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > 64 * 1024 => {
            return Err("response head larger than 64 KiB".into());
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed HTTP response: {e}")),
    };
    let status = parsed.code.unwrap_or(0);
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let etag = header("etag").map(str::to_owned);
    let rest = &buf[head_len..];
    let body = if status == 304 || status == 204 || (100..200).contains(&status) {
        Some(Vec::new())
    } else if header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        decode_chunked(rest, max_body)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if len > max_body {
            return Err(format!("response body of {len} bytes exceeds {max_body}"));
        }
        (rest.len() >= len).then(|| rest[..len].to_vec())
    } else if eof {
        Some(rest.to_vec())
    } else {
        None
    };
    match body {
        Some(body) if body.len() > max_body => {
            Err(format!("response body exceeds {max_body} bytes"))
        }
        Some(body) => Ok(Some(Response { status, etag, body })),
        None => Ok(None),
    }
}

/// A chunked body: `Some(body)` once the last chunk and the trailer's end are in `data`. Called
/// after every read, so the chunks are first only walked (no copy, one step per chunk) and the
/// body is assembled once, when complete: a 30 MiB JWKS read 16 KiB at a time is not copied
/// two thousand times.
fn decode_chunked(data: &[u8], max_body: usize) -> Result<Option<Vec<u8>>, String> {
    let Some(len) = walk_chunks(data, max_body, &mut |_| {})? else {
        return Ok(None);
    };
    let mut body = Vec::with_capacity(len);
    walk_chunks(data, max_body, &mut |chunk| body.extend_from_slice(chunk))?;
    Ok(Some(body))
}

/// Hands each chunk's data to `each`; `Some(total length)` once the body is complete.
fn walk_chunks(
    mut data: &[u8],
    max_body: usize,
    each: &mut dyn FnMut(&[u8]),
) -> Result<Option<usize>, String> {
    let mut len = 0usize;
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size line")?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailer fields (ignored) end with an empty line.
            return Ok(
                if data.starts_with(b"\r\n") || data.windows(4).any(|w| w == b"\r\n\r\n") {
                    Some(len)
                } else {
                    None
                },
            );
        }
        // Checked: a size near usize::MAX must be an error, not a wrapped sum (regression test
        // `chunk_sizes_near_usize_max_are_errors`).
        if len.checked_add(size).is_none_or(|n| n > max_body) {
            return Err(format!("response body exceeds {max_body} bytes"));
        }
        let Some(with_crlf) = size.checked_add(2) else {
            return Err(format!("response body exceeds {max_body} bytes"));
        };
        if data.len() < with_crlf {
            return Ok(None);
        }
        if &data[size..with_crlf] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        each(&data[..size]);
        len += size;
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8080/api/auth/keys.jwks?x=1").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "127.0.0.1", 8080));
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path_and_query, "/api/auth/keys.jwks?x=1");
        let t = Target::parse("https://keys.example").unwrap();
        assert_eq!((t.tls, t.port, t.path_and_query.as_str()), (true, 443, "/"));
        let t = Target::parse("http://[::1]:9/k").unwrap();
        assert_eq!(t.host, "::1");
        assert!(Target::parse("ftp://x/y").unwrap_err().contains("http://"));
        assert!(
            Target::parse("http://u:p@x/y")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(Target::parse("/just/a/path").is_err());
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let r = try_parse(
            b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\nhello",
            false,
            100,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.status, r.etag.as_deref(), &r.body[..]),
            (200, Some("\"v1\""), &b"hello"[..])
        );
        assert!(
            try_parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
                false,
                100
            )
            .unwrap()
            .is_none()
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
        assert_eq!(
            try_parse(chunked, false, 100).unwrap().unwrap().body,
            b"hello"
        );
        assert!(
            try_parse(&chunked[..chunked.len() - 2], false, 100)
                .unwrap()
                .is_none()
        );
        let close = b"HTTP/1.1 200 OK\r\n\r\nto the end";
        assert!(try_parse(close, false, 100).unwrap().is_none());
        assert_eq!(
            try_parse(close, true, 100).unwrap().unwrap().body,
            b"to the end"
        );
        let r = try_parse(
            b"HTTP/1.1 304 Not Modified\r\nETag: W/\"a\"\r\n\r\n",
            false,
            100,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.status, r.body.len()), (304, 0));
    }

    #[test]
    fn limits_and_garbage() {
        assert!(
            try_parse(
                b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
                false,
                100
            )
            .unwrap_err()
            .contains("exceeds")
        );
        assert!(
            try_parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
                false,
                100
            )
            .unwrap_err()
            .contains("exceeds")
        );
        assert!(
            try_parse(b"HTTP/1.1 200 OK\r\n\r\n0123456789", true, 5)
                .unwrap_err()
                .contains("exceeds")
        );
        assert!(
            try_parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                false,
                100
            )
            .is_err()
        );
        assert!(try_parse(b"SSH-2.0-OpenSSH\r\n\r\n", true, 100).is_err());
        assert!(try_parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", true, 100).is_err());
    }

    /// Found by the `key_directory` fuzz target: a chunk size near `usize::MAX` after a first
    /// chunk overflowed `body.len() + size` (a panic with overflow checks; wrapped, a slice index
    /// out of range, in release): a hostile or broken key directory could kill the refresher.
    #[test]
    fn chunk_sizes_near_usize_max_are_errors() {
        for size in ["ffffffffffffffff", "fffffffffffffffe", "fffffffffffffff0"] {
            let resp = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n{size}\r\nbc\r\n0\r\n\r\n"
            );
            for max in [0, 100, 1 << 20] {
                assert!(
                    try_parse(resp.as_bytes(), false, max).is_err(),
                    "{size} with cap {max}"
                );
            }
            // Without a cap, such a chunk is merely incomplete (never a panic).
            assert!(!matches!(
                try_parse(resp.as_bytes(), false, usize::MAX),
                Ok(Some(_))
            ));
        }
        // One more than fits in a usize: a parse error, not a wrap.
        assert!(
            try_parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
                false,
                usize::MAX
            )
            .is_err()
        );
    }
}
