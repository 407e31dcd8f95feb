//! A deliberately small HTTP/1.1 GET client for the key directory: one request per connection
//! (`Connection: close`), `If-None-Match`, Content-Length / chunked / read-to-close bodies, a size
//! cap and one overall timeout; `https://` over rustls with the system's root certificates. It does
//! not follow redirects, pool connections, decompress, or speak HTTP/2.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::scratch::Scratch;

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
    /// Unmapped when dropped (`scratch.rs`).
    pub body: Scratch,
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

    read_response(&mut stream, max_body).await
}

/// Longest response head read.
const MAX_HEAD: usize = 64 * 1024;
/// Bytes asked of the stream per read while the head or a body of unknown length comes in.
const READ_STEP: usize = 16 * 1024;

/// How the response's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// 1xx, 204, 304: no body.
    Empty,
    Length(usize),
    Chunked,
    /// Read to the end of the connection.
    Close,
}

#[derive(Debug)]
struct Head {
    status: u16,
    etag: Option<String>,
    framing: Framing,
    /// Bytes of the head, blank line included.
    len: usize,
}

/// Reads one response from `stream`, into buffers mapped from the OS (`scratch.rs`) and not the
/// heap: a body of announced length into one buffer of that size, other bodies grown as they come.
pub(crate) async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_body: usize,
) -> Result<Response, String> {
    let mut buf = Scratch::new();
    let head = loop {
        if let Some(head) = parse_head(&buf, max_body)? {
            break head;
        }
        if read_more(stream, &mut buf).await? == 0 {
            return Err(CLOSED_EARLY.into());
        }
    };
    let rest = buf.get(head.len..).unwrap_or_default();
    let body = match head.framing {
        Framing::Empty => Scratch::new(),
        Framing::Length(len) => {
            let mut body = Scratch::with_capacity(len)?;
            body.extend_from_slice(rest.get(..len).unwrap_or(rest))?;
            drop(buf);
            while body.len() < len {
                // Into the spare room only: the buffer never grows past `len`.
                let n = read_into(stream, &mut body).await?;
                if n == 0 {
                    return Err(CLOSED_EARLY.into());
                }
            }
            body
        }
        Framing::Chunked => {
            let mut raw = Scratch::new();
            raw.extend_from_slice(rest)?;
            drop(buf);
            loop {
                if let Some(body) = decode_chunked(&raw, max_body)? {
                    break body;
                }
                if raw.len() > max_body.saturating_add(MAX_HEAD) {
                    return Err(format!("response body exceeds {max_body} bytes"));
                }
                if read_more(stream, &mut raw).await? == 0 {
                    return Err(CLOSED_EARLY.into());
                }
            }
        }
        Framing::Close => {
            let mut body = Scratch::new();
            body.extend_from_slice(rest)?;
            drop(buf);
            loop {
                if body.len() > max_body {
                    return Err(format!("response body exceeds {max_body} bytes"));
                }
                if read_more(stream, &mut body).await? == 0 {
                    break body;
                }
            }
        }
    };
    Ok(Response {
        status: head.status,
        etag: head.etag,
        body,
    })
}

/// One read into the buffer's spare room; 0 at the end of the stream.
async fn read_into<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Scratch,
) -> Result<usize, String> {
    let n = stream
        .read(buf.spare_mut())
        .await
        .map_err(|e| format!("read response: {e}"))?;
    buf.advance(n);
    Ok(n)
}

const CLOSED_EARLY: &str = "connection closed before a complete response";

/// `read_response` over bytes in memory, handed out at most `step` bytes per read and then the
/// end of the stream: the reader the tests and the fuzz target drive, without a socket.
pub(crate) fn read_from_bytes(
    data: &[u8],
    step: usize,
    max_body: usize,
) -> Result<Response, String> {
    let mut reader = Trickle {
        data,
        step: step.max(1),
    };
    let fut = std::pin::pin!(read_response(&mut reader, max_body));
    // `Trickle` is always ready, so the first poll runs to the end.
    match fut.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err("reader did not finish".into()),
    }
}

struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.step.min(self.data.len()).min(buf.remaining());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Appends what one read gives, with room for at least `READ_STEP` bytes made first; 0 at the
/// end of the stream.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Scratch,
) -> Result<usize, String> {
    buf.reserve(READ_STEP)?;
    read_into(stream, buf).await
}

/// The response head at the start of `buf`, `None` while it is incomplete.
fn parse_head(buf: &[u8], max_body: usize) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
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
    let framing = if status == 304 || status == 204 || (100..200).contains(&status) {
        Framing::Empty
    } else if header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        Framing::Chunked
    } else if let Some(n) = header("content-length") {
        let n: usize = n.parse().map_err(|_| format!("bad Content-Length {n:?}"))?;
        if n > max_body {
            return Err(format!("response body of {n} bytes exceeds {max_body}"));
        }
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some(Head {
        status,
        etag,
        framing,
        len,
    }))
}

/// A chunked body: `Some(body)` once the last chunk and the trailer's end are in `data`. Called
/// after every read, so the chunks are first only walked (no copy, one step per chunk) and the
/// body is assembled once, when complete: a 30 MiB JWKS read 16 KiB at a time is not copied
/// two thousand times.
fn decode_chunked(data: &[u8], max_body: usize) -> Result<Option<Scratch>, String> {
    let Some(len) = walk_chunks(data, max_body, &mut |_| {})? else {
        return Ok(None);
    };
    let mut body = Scratch::with_capacity(len)?;
    let mut copied = Ok(());
    walk_chunks(data, max_body, &mut |chunk| {
        if copied.is_ok() {
            copied = body.extend_from_slice(chunk);
        }
    })?;
    copied.map(|()| Some(body))
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

    /// Every response read whole and split at every read size that matters.
    fn read(data: &[u8], max: usize) -> Result<Response, String> {
        let seen = |r: &Result<Response, String>| {
            r.as_ref()
                .map(|r| (r.status, r.etag.clone(), r.body.to_vec()))
                .map_err(Clone::clone)
        };
        let whole = read_from_bytes(data, usize::MAX, max);
        for step in [1, 2, 7, 64] {
            let split = read_from_bytes(data, step, max);
            assert_eq!(seen(&split), seen(&whole), "{step} bytes per read");
        }
        whole
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        let r = read(
            b"HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\nhello",
            100,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.etag.as_deref(), &r.body[..]),
            (200, Some("\"v1\""), &b"hello"[..])
        );
        // Bytes past the announced length are not the body.
        let r = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, world",
            100,
        )
        .unwrap();
        assert_eq!(&r.body[..], b"hello");
        assert_eq!(r.body.capacity(), 5, "one buffer of the announced length");
        assert!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 100)
                .unwrap_err()
                .contains("closed before")
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n";
        assert_eq!(&read(chunked, 100).unwrap().body[..], b"hello");
        assert!(
            read(&chunked[..chunked.len() - 2], 100)
                .unwrap_err()
                .contains("closed before")
        );
        let close = b"HTTP/1.1 200 OK\r\n\r\nto the end";
        assert_eq!(&read(close, 100).unwrap().body[..], b"to the end");
        let r = read(b"HTTP/1.1 304 Not Modified\r\nETag: W/\"a\"\r\n\r\n", 100).unwrap();
        assert_eq!((r.status, r.body.len()), (304, 0));
        assert!(
            read(b"HTTP/1.1 200 OK\r\nContent-Le", 100)
                .unwrap_err()
                .contains("closed before")
        );
    }

    #[test]
    fn limits_and_garbage() {
        assert!(
            read(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", 100)
                .unwrap_err()
                .contains("exceeds")
        );
        assert!(
            read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n",
                100
            )
            .unwrap_err()
            .contains("exceeds")
        );
        assert!(
            read(b"HTTP/1.1 200 OK\r\n\r\n0123456789", 5)
                .unwrap_err()
                .contains("exceeds")
        );
        assert!(
            read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                100
            )
            .is_err()
        );
        assert!(read(b"SSH-2.0-OpenSSH\r\n\r\n", 100).is_err());
        assert!(read(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 100).is_err());
        let huge_head = [&b"HTTP/1.1 200 OK\r\nX: "[..], &[b'a'; 70 * 1024]].concat();
        assert!(
            read_from_bytes(&huge_head, usize::MAX, 100)
                .unwrap_err()
                .contains("64 KiB")
        );
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
                assert!(read(resp.as_bytes(), max).is_err(), "{size} with cap {max}");
            }
            // Without a cap: an error too (too large, or incomplete), never a panic.
            assert!(read(resp.as_bytes(), usize::MAX).is_err());
        }
        // One more than fits in a usize: a parse error, not a wrap.
        assert!(
            decode_chunked(b"10000000000000000\r\n", usize::MAX)
                .unwrap_err()
                .contains("bad chunk size")
        );
    }
}
