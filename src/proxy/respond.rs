//! The one place an error becomes an HTTP response: JSON body
//! `{"error":{"code","message","request_id"}}`, `Content-Type`, `X-Request-Id`, and
//! `Accept-Signature` (401) / `Retry-After` (429) when supplied. Deciding *which* error is not
//! done here.

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

use super::gate::Reject;
use crate::error::{Error, ErrorCode};

pub const REQUEST_ID: &str = "x-request-id";

/// The JSON error body. The message is the code's fixed public text, never the detail.
pub fn error_body(code: &str, message: &str, request_id: &str) -> Bytes {
    let v = serde_json::json!({
        "error": { "code": code, "message": message, "request_id": request_id }
    });
    Bytes::from(v.to_string())
}

/// Headers and body for a rejection, ready to write.
pub fn reject_response<N>(
    reject: &Reject<N>,
    request_id: &str,
) -> pingora::Result<(Box<ResponseHeader>, Bytes)> {
    let code = reject.error.code;
    let mut resp = build(code.status(), code.as_str(), code.message(), request_id)?;
    if code.status() == 401
        && let Some(v) = &reject.accept_signature
    {
        resp.0.insert_header("accept-signature", v.clone())?;
    }
    if code == ErrorCode::RateLimited {
        resp.0
            .insert_header("retry-after", reject.retry_after.unwrap_or(60).to_string())?;
    }
    Ok(resp)
}

/// Headers and body for any status/code pair.
pub fn build(
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
) -> pingora::Result<(Box<ResponseHeader>, Bytes)> {
    let body = error_body(code, message, request_id);
    let mut h = ResponseHeader::build(status, Some(4))?;
    h.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    h.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert_header(REQUEST_ID, v)?;
    }
    Ok((Box::new(h), body))
}

/// Write a prepared response. `keep_alive = false` closes the connection afterwards (used when
/// an unread body is too large to drain, or the request state is unknown).
pub async fn send(
    session: &mut ServerSession,
    (header, body): (Box<ResponseHeader>, Bytes),
    keep_alive: bool,
) -> pingora::Result<()> {
    if !keep_alive {
        session.set_keepalive(None);
    }
    session.write_response_header(header).await?;
    session.write_response_body(body, true).await?;
    Ok(())
}

/// Convenience for an `Error` with no extra headers.
pub fn error_response(
    err: &Error,
    request_id: &str,
) -> pingora::Result<(Box<ResponseHeader>, Bytes)> {
    build(
        err.code.status(),
        err.code.as_str(),
        err.code.message(),
        request_id,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn body_is_spec_json() {
        let b = error_body("NONCE_REPLAYED", "Nonce already used", "abc");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["code"], "NONCE_REPLAYED");
        assert_eq!(v["error"]["message"], "Nonce already used");
        assert_eq!(v["error"]["request_id"], "abc");
    }

    #[test]
    fn rate_limited_carries_retry_after_and_401_accept_signature() {
        let mut r = Reject::new(Error::new(ErrorCode::RateLimited, "x"), ());
        r.retry_after = Some(7);
        let (h, _) = reject_response(&r, "id").unwrap();
        assert_eq!(h.status.as_u16(), 429);
        assert_eq!(h.headers.get("retry-after").unwrap(), "7");

        let mut r = Reject::new(Error::new(ErrorCode::SignatureMissing, "x"), ());
        r.accept_signature = Some(HeaderValue::from_static("sig1=(\"@method\")"));
        let (h, b) = reject_response(&r, "id").unwrap();
        assert_eq!(h.status.as_u16(), 401);
        assert!(h.headers.get("accept-signature").is_some());
        assert_eq!(h.headers.get("content-type").unwrap(), "application/json");
        assert_eq!(
            h.headers.get("content-length").unwrap().to_str().unwrap(),
            b.len().to_string()
        );
        assert_eq!(h.headers.get("x-request-id").unwrap(), "id");
    }
}
