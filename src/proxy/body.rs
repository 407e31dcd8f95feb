//! Reading a request body completely, in `request_filter`, for verification before any byte goes
//! upstream — and arranging that Pingora then forwards exactly that body. Deciding whether a
//! body is needed, and checking it, is not done here.
//!
//! Why this works (pingora-proxy 0.9.1, `proxy_h1.rs`): once the body has been read here, the
//! downstream body reader is `Complete`, so `proxy_handle_downstream` starts with
//! `DownstreamStateMachine::new(is_body_done() = true)` and never reads the client again; the
//! only remaining call into `request_body_filter` is the retry-buffer replay
//! (`if buffer.is_some() || is_body_empty() { send_body_to_pipe(buffer, is_done) }`), which runs
//! once per upstream attempt with `end_of_body = true`. The retry buffer is capped at 64 KiB
//! (`BODY_BUF_LIMIT`) and becomes unusable once more than that was written into it, so retry
//! buffering is switched on only when at most 64 KiB of the body remains to be read: it then holds
//! the (non-empty) tail, `get_retry_buffer()` is `Some`, the hook fires, and `request_body_filter`
//! swaps the tail for the whole verified body. `send_body_to1` writes it with `write_body` and
//! `finish_body`, framed by the Content-Length we set on the upstream request.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

/// The retry buffer's capacity in pingora-core (`v1/common.rs` `BODY_BUF_LIMIT`).
pub const RETRY_BUFFER_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub enum BodyError {
    /// Over `max_body_bytes` (announced or counted).
    TooLarge,
    /// The client broke the connection or sent a malformed body.
    Downstream(Box<pingora::Error>),
}

fn content_length(session: &Session) -> Option<usize> {
    let h = session.req_header();
    if is_chunked(session) {
        return None;
    }
    h.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

fn is_chunked(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        })
}

/// Content-Length above the limit: refuse before reading a byte of the body.
pub fn announced_too_large(session: &Session, max: usize) -> bool {
    content_length(session).is_some_and(|n| n > max)
}

/// A completely read body.
pub struct ReadBody {
    pub bytes: Bytes,
    /// Pingora will call `request_body_filter` to take it (the retry buffer holds the tail).
    /// False for a chunked body over 64 KiB (or a Content-Length body whose tail arrived with
    /// the header): the caller must forward it itself or refuse it.
    pub replayable: bool,
}

/// Read the whole request body (at most `max` bytes) and leave Pingora ready to replay it.
pub async fn read_all(session: &mut Session, max: usize) -> Result<ReadBody, BodyError> {
    let cl = content_length(session);
    if cl.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge);
    }
    let chunked = cl.is_none();
    let mut buf = BytesMut::with_capacity(cl.unwrap_or(16 * 1024).min(max));
    // Chunked: the end is unknown in advance, so buffer from the start (works up to 64 KiB).
    let mut tail_on = chunked;
    if tail_on {
        session.as_downstream_mut().enable_retry_buffering();
    }
    loop {
        if !tail_on {
            if let Some(n) = cl {
                if n.saturating_sub(buf.len()) <= RETRY_BUFFER_LIMIT {
                    session.as_downstream_mut().enable_retry_buffering();
                    tail_on = true;
                }
            }
        }
        match session.as_downstream_mut().read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > max {
                    return Err(BodyError::TooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(BodyError::Downstream(e)),
        }
    }
    let ds = session.as_downstream();
    let replayable = buf.is_empty() || ds.get_retry_buffer().is_some();
    Ok(ReadBody {
        bytes: buf.freeze(),
        replayable,
    })
}

/// Read and discard what is left of the request body, up to `max` bytes. `Ok(true)` when the
/// body is now fully consumed (the connection can be reused), `Ok(false)` when it is longer
/// than `max` (the caller should close instead).
pub async fn drain_bounded(session: &mut Session, max: usize) -> pingora::Result<bool> {
    if content_length(session).is_some_and(|n| n > max) {
        return Ok(false);
    }
    let mut seen = 0usize;
    while !session.as_downstream_mut().is_body_done() {
        match session.as_downstream_mut().read_request_body().await? {
            Some(b) => {
                seen += b.len();
                if seen > max {
                    return Ok(false);
                }
            }
            None => break,
        }
    }
    Ok(true)
}
