//! Reading a request body from the client: completely and bounded (for verification, before
//! anything goes upstream), or discarding what is left of it (after a rejection, so the
//! connection can be kept). Framing — Content-Length, chunked, HTTP/2 DATA — is Pingora's
//! session's; deciding whether a body is needed, and checking it, is not done here.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::ErrorType;
use pingora::protocols::http::ServerSession;

#[derive(Debug)]
pub enum BodyError {
    /// Over `max_body_bytes` (announced or counted).
    TooLarge,
    /// No body bytes for longer than the body timeout.
    Timeout,
    /// Malformed framing (a bad chunk size, a body cut short by the client's close, ...).
    Malformed(Box<pingora::Error>),
    /// The connection broke.
    Gone(Box<pingora::Error>),
}

impl BodyError {
    fn from_read(e: Box<pingora::Error>) -> Self {
        match e.etype() {
            ErrorType::ReadTimedout => Self::Timeout,
            ErrorType::ReadError | ErrorType::ConnectionClosed => Self::Gone(e),
            _ => Self::Malformed(e),
        }
    }
}

/// The Content-Length a request announces, `None` when chunked or unknown.
pub fn announced_length(session: &ServerSession) -> Option<u64> {
    let h = session.req_header();
    if h.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    match h.headers.get(http::header::CONTENT_LENGTH) {
        // Validated by Pingora when the head was read (equal duplicates collapse).
        Some(v) => std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.trim().parse().ok()),
        // HTTP/2 without a length: no body when HEADERS ended the stream, else unknown.
        None if session.is_http2() => session
            .as_http2()
            .is_some_and(|s| s.is_body_empty())
            .then_some(0),
        None => Some(0),
    }
}

/// The next chunk of the request body, waiting at most `gap` for it. An HTTP/1.1 session times
/// out by itself (its read timeout is set per request); Pingora's HTTP/2 session has no read
/// timeout, so the wait is bounded here.
pub async fn next_chunk(
    session: &mut ServerSession,
    gap: Duration,
) -> pingora::Result<Option<Bytes>> {
    if !session.is_http2() {
        return session.read_request_body().await;
    }
    match tokio::time::timeout(gap, session.read_request_body()).await {
        Ok(r) => r,
        Err(_) => Err(pingora::Error::explain(
            ErrorType::ReadTimedout,
            "no request body bytes within limits.body_timeout_seconds",
        )),
    }
}

/// Read the whole request body, at most `max` bytes, at most `gap` between two chunks.
pub async fn read_all(
    session: &mut ServerSession,
    max: usize,
    gap: Duration,
) -> Result<Bytes, BodyError> {
    let announced = announced_length(session);
    if announced.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let hint = announced.map_or(16 * 1024, |n| n as usize).min(max);
    let mut buf = BytesMut::new();
    loop {
        match next_chunk(session, gap).await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                if buf.is_empty() && session.is_body_done() {
                    // The whole body in one read: Pingora's buffer as it is, no copy.
                    return Ok(chunk);
                }
                if buf.is_empty() {
                    buf.reserve(hint.max(chunk.len()));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(BodyError::from_read(e)),
        }
    }
    Ok(buf.freeze())
}

/// Read and discard what is left of the request body, up to `max` bytes. `true` when the body
/// is now fully consumed (the connection can be reused), `false` when it is longer than `max`
/// or broken (the caller closes instead).
pub async fn drain_bounded(session: &mut ServerSession, max: usize, gap: Duration) -> bool {
    if announced_length(session).is_some_and(|n| n > max as u64) {
        return false;
    }
    let mut seen = 0usize;
    while !session.is_body_done() {
        match next_chunk(session, gap).await {
            Ok(Some(b)) => {
                seen += b.len();
                if seen > max {
                    return false;
                }
            }
            Ok(None) => break,
            Err(_) => return false,
        }
    }
    true
}
