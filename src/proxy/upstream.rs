//! The upstream half of an exchange: take a pooled (or new) HTTP/1.1 connection to the backend,
//! send the prepared head and the body — bytes already read and verified, or the client's body
//! streamed as it arrives — relay the response, and give the connection back to the pool. A
//! pooled connection that turns out dead before any response byte is replaced once by a new one
//! for requests safe to send twice. Failures before a response are answered as 502/504 JSON.

use std::time::Instant;

use bytes::Bytes;
use pingora::ErrorType;
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v1::client::HttpSession as Upstream;
use pingora::upstreams::peer::Peer;

use super::exchange::Outcome;
use super::headers::{self, HeaderEdit};
use super::hop::Hop;
use super::pool::Pool;
use super::respond;
use crate::error::{Error, ErrorCode};

/// The request body as it is sent upstream.
pub enum Sent {
    /// Already read whole (verified, or empty): replayable on a second connection.
    Whole(Bytes),
    /// Streamed from the client while it arrives.
    Stream,
}

enum Failure {
    /// The upstream failed (connect, write, read, framing).
    Upstream(Box<pingora::Error>),
    /// The client failed while its body was streamed.
    Client(Box<pingora::Error>),
}

/// How upstream connections are made (Pingora's connector: TCP options, TLS, connect timeout)
/// and kept between requests (our pool).
pub struct Upstreams {
    transport: TransportConnector,
    pool: std::sync::Arc<Pool>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            transport: TransportConnector::new(None),
            pool: Pool::new(),
        }
    }
}

/// More informational responses than this before the final one: the upstream is misbehaving.
const MAX_INFORMATIONAL: usize = 16;

/// Send `up` (+ body) to the upstream and relay its answer. Returns whether the client
/// connection may carry another request.
pub async fn forward<N>(
    upstreams: &Upstreams,
    session: &mut ServerSession,
    hop: &Hop,
    up: RequestHeader,
    sent: Sent,
    request_id: &str,
    out: &mut Outcome<N>,
) -> bool {
    let retry_safe = matches!(sent, Sent::Whole(_)) && idempotent(&up.method);
    let mut up = Some(Box::new(up));
    let mut fresh = false;
    let (client, resp, started) = loop {
        let (mut client, reused) = match connect(upstreams, hop, fresh).await {
            Ok(c) => c,
            Err(e) => return failed(session, Failure::Upstream(e), &sent, request_id, out).await,
        };
        let Some(head) = up.take() else {
            return failed(
                session,
                internal("request head lost"),
                &sent,
                request_id,
                out,
            )
            .await;
        };
        // A second attempt needs the head again; keep a copy only when one may happen.
        let again = (reused && retry_safe).then(|| head.clone());
        let started = Instant::now();
        match exchange_head(&mut client, session, head, &sent, hop).await {
            Ok(resp) => break (client, resp, started),
            Err(Failure::Upstream(e)) if again.is_some() && stale(&e) => {
                up = again;
                fresh = true;
            }
            Err(f) => return failed(session, f, &sent, request_id, out).await,
        }
    };
    out.upstream_latency = Some(started.elapsed());
    relay(upstreams, hop, session, client, resp, request_id, out).await
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
fn idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    )
}

/// The error of a pooled connection the upstream had already closed.
fn stale(e: &pingora::Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
    )
}

fn internal(why: &'static str) -> Failure {
    Failure::Upstream(pingora::Error::explain(ErrorType::InternalError, why))
}

fn up_err(mut e: Box<pingora::Error>) -> Failure {
    e.as_up();
    Failure::Upstream(e)
}

async fn connect(
    upstreams: &Upstreams,
    hop: &Hop,
    fresh: bool,
) -> Result<(Upstream, bool), Box<pingora::Error>> {
    let pooled = if fresh {
        None
    } else {
        upstreams.pool.take(hop.peer.reuse_hash())
    };
    let reused = pooled.is_some();
    let stream = match pooled {
        Some(s) => s,
        // Boxed: Pingora's connect future (TCP, TLS handshake) is ~8 KiB, and awaited inline
        // it would size every request's future — moved into its box per request — though a
        // pooled connection needs none of it.
        None => Box::pin(upstreams.transport.new_stream(&hop.peer))
            .await
            .map_err(|mut e| {
                e.as_up();
                e
            })?,
    };
    let mut client = Upstream::new_with_options(stream, &hop.peer);
    client.read_timeout = hop.peer.options.read_timeout;
    client.write_timeout = hop.peer.options.write_timeout;
    Ok((client, reused))
}

/// Write the head and body, and read up to the final response head.
async fn exchange_head(
    client: &mut Upstream,
    session: &mut ServerSession,
    head: Box<RequestHeader>,
    sent: &Sent,
    hop: &Hop,
) -> Result<Box<ResponseHeader>, Failure> {
    client.write_request_header(head).await.map_err(up_err)?;
    match sent {
        Sent::Whole(b) => {
            if !b.is_empty()
                && let Err(e) = client.write_body(b).await
            {
                return answered_anyway(client, e).await;
            }
            if let Err(e) = client.finish_body().await {
                return answered_anyway(client, e).await;
            }
            final_head(client).await
        }
        Sent::Stream => stream_body(client, session, hop.body_timeout()).await,
    }
}

/// Pump the client's body upstream until it ends, or until the upstream answers first (then the
/// rest of the body is abandoned and both connections close after the response).
async fn stream_body(
    client: &mut Upstream,
    session: &mut ServerSession,
    gap: std::time::Duration,
) -> Result<Box<ResponseHeader>, Failure> {
    let expects = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects {
        session
            .write_continue_response()
            .await
            .map_err(Failure::Client)?;
    }
    loop {
        tokio::select! {
            biased;
            resp = final_head(client) => return resp,
            chunk = super::body::next_chunk(session, gap) => match chunk {
                // An empty write would end a chunked body early ("0\r\n\r\n").
                Ok(Some(c)) if c.is_empty() => {}
                Ok(Some(c)) => {
                    if let Err(e) = client.write_body(&c).await {
                        return answered_anyway(client, e).await;
                    }
                }
                Ok(None) => {
                    if let Err(e) = client.finish_body().await {
                        return answered_anyway(client, e).await;
                    }
                    return final_head(client).await;
                }
                Err(e) => return Err(Failure::Client(e)),
            },
        }
    }
}

/// Writing the body failed: an upstream that answers before reading the whole body (a 413, a
/// redirect, `return 200`) and then closes makes our next write fail, with its answer already
/// waiting to be read. Relay that answer when it is there (the client connection then closes,
/// its body unread); otherwise the write error stands — and a dead pooled connection, which has
/// no answer, is still retried as before.
async fn answered_anyway(
    client: &mut Upstream,
    write: Box<pingora::Error>,
) -> Result<Box<ResponseHeader>, Failure> {
    match final_head(client).await {
        Ok(resp) => Ok(resp),
        Err(_) => Err(up_err(write)),
    }
}

/// The final (non-1xx) response head; informational ones are not relayed.
async fn final_head(client: &mut Upstream) -> Result<Box<ResponseHeader>, Failure> {
    for _ in 0..MAX_INFORMATIONAL {
        let h = client.read_resp_header_parts().await.map_err(up_err)?;
        if h.status == http::StatusCode::SWITCHING_PROTOCOLS {
            // We never forward `Upgrade`, so an upstream switching protocols is broken.
            return Err(internal("upstream switched protocols unasked"));
        }
        if !h.status.is_informational() {
            return Ok(h);
        }
    }
    Err(internal("too many informational responses from upstream"))
}

/// Relay the response head and body to the client, then pool the upstream connection if both
/// sides finished cleanly.
async fn relay<N>(
    upstreams: &Upstreams,
    hop: &Hop,
    session: &mut ServerSession,
    mut client: Upstream,
    mut resp: Box<ResponseHeader>,
    request_id: &str,
    out: &mut Outcome<N>,
) -> bool {
    strip_response_hop_by_hop(&mut resp, session.is_http2());
    headers::set(resp.as_mut(), &headers::X_REQUEST_ID, request_id);
    if session.write_response_header(resp).await.is_err() {
        out.detail = Some("client went away before the response head".into());
        return false;
    }
    while !client.is_body_done() {
        match client.read_body_bytes().await {
            Ok(Some(chunk)) => {
                if let Err(e) = session.write_response_body(chunk, false).await {
                    out.detail = Some(format!("client went away during the response: {e}"));
                    return false;
                }
            }
            Ok(None) => break,
            Err(e) => {
                // The head is out: closing is the only honest signal left.
                out.fail(
                    ErrorCode::UpstreamUnavailable,
                    format!("response body: {e}"),
                );
                return false;
            }
        }
    }
    if session.finish_body().await.is_err() {
        return false;
    }
    let request_done = session.is_body_done();
    if request_done {
        client.respect_keepalive();
        if let Some(stream) = client.reuse().await {
            upstreams
                .pool
                .put(hop.peer.reuse_hash(), stream, hop.peer.idle_timeout());
        }
    }
    request_done
}

/// Answer a failure before the response head (502/504 JSON, or nothing when the client is
/// gone). Returns whether the client connection may be reused.
async fn failed<N>(
    session: &mut ServerSession,
    f: Failure,
    sent: &Sent,
    request_id: &str,
    out: &mut Outcome<N>,
) -> bool {
    let err = match f {
        Failure::Upstream(e) => Error::new(classify(&e), e.to_string()),
        Failure::Client(e) => {
            let code = match e.etype() {
                ErrorType::ReadTimedout => ErrorCode::RequestTimeout,
                ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    out.detail = Some(format!("client went away while sending its body: {e}"));
                    return false;
                }
                _ => ErrorCode::BadRequest,
            };
            Error::new(code, format!("request body: {e}"))
        }
    };
    out.fail(err.code, err.detail.to_string());
    if session.response_written().is_some() {
        return false;
    }
    // The client's body was read whole (or there was none): the connection is still in step.
    let keep = matches!(sent, Sent::Whole(_)) && session.is_body_done();
    match respond::error_response(&err, request_id) {
        Ok(resp) => respond::send(session, resp, keep).await.is_ok() && keep,
        Err(_) => false,
    }
}

/// An upstream failure → its stable code.
pub(crate) fn classify(e: &pingora::Error) -> ErrorCode {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ErrorCode::UpstreamTimeout
        }
        ErrorType::InternalError => ErrorCode::ProxyError,
        _ => ErrorCode::UpstreamUnavailable,
    }
}

/// Hop-by-hop fields of a response (RFC 9110 §7.6.1).
static RESPONSE_HOP_BY_HOP: [http::HeaderName; 6] = [
    http::header::CONNECTION,
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
    http::header::TE,
    http::header::TRAILER,
    http::header::UPGRADE,
];

/// Hop-by-hop fields of a response (RFC 9110 §7.6.1), and over HTTP/2 the HTTP/1.1 framing.
/// One pass over the names rather than a lookup per field to drop; no allocation unless the
/// `Connection` header names a field beyond the hop-by-hop ones.
fn strip_response_hop_by_hop(resp: &mut ResponseHeader, to_h2: bool) {
    let mut fixed = headers::NameSet::default();
    let mut te = false;
    for k in resp.headers.keys() {
        if !fixed.note(&RESPONSE_HOP_BY_HOP, k) && to_h2 && k == http::header::TRANSFER_ENCODING {
            te = true;
        }
    }
    let mut doomed: Vec<http::HeaderName> = Vec::new();
    // `Connection` is RESPONSE_HOP_BY_HOP[0].
    if fixed.has(0) {
        static FRAMING: [http::HeaderName; 2] = [
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ];
        headers::nominated(&resp.headers, &RESPONSE_HOP_BY_HOP, &FRAMING, &mut doomed);
    }
    for n in fixed.names(&RESPONSE_HOP_BY_HOP).chain(doomed.iter()) {
        HeaderEdit::remove(resp, n);
    }
    if te {
        HeaderEdit::remove(resp, &http::header::TRANSFER_ENCODING);
    }
}
