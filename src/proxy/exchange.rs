//! One request, start to finish, in our order: with the head read, take the policy snapshot,
//! ask the gate; read the body whole first when the gate needs it; answer a rejection here (not
//! one byte upstream); otherwise connect, send the head and the body (verified bytes, or the
//! client's stream), relay the response; then hand one record to the observer. The same path
//! serves HTTP/1.1 and HTTP/2 clients. Connection handling (keep-alive, timeouts for the head,
//! limits on connections) is in `conn.rs`; the upstream exchange in `upstream.rs`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Version};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;

use super::body::{self, BodyError};
use super::ctx::{Connections, Draining, InFlight};
use super::gate::{Gate, HeadVerdict, Pass, Reject, RequestView, Verdict};
use super::headers::{self, HeaderEdit};
use super::hop::Hop;
use super::record::{RequestObserver, RequestRecord};
use super::respond;
use super::upstream::{self, Sent};
use crate::error::{Error, ErrorCode};

/// Everything the request path shares across connections: one per listener set.
pub struct Core<G: Gate, O> {
    pub(super) gate: Arc<G>,
    pub(super) observer: Arc<O>,
    pub(super) upstreams: upstream::Upstreams,
    pub(super) inflight: InFlight,
    pub(super) connections: Connections,
    pub(super) draining: Draining,
}

/// What the observer is told besides the request itself; filled in as the request goes.
pub(super) struct Outcome<N> {
    pub code: Option<ErrorCode>,
    pub detail: Option<String>,
    pub note: Option<N>,
    pub auth_method: Option<super::gate::AuthMethod>,
    pub upstream_latency: Option<Duration>,
    pub buffered: usize,
}

impl<N> Default for Outcome<N> {
    fn default() -> Self {
        Self {
            code: None,
            detail: None,
            note: None,
            auth_method: None,
            upstream_latency: None,
            buffered: 0,
        }
    }
}

impl<N> Outcome<N> {
    pub(super) fn fail(&mut self, code: ErrorCode, detail: impl Into<String>) {
        self.code = Some(code);
        self.detail = Some(detail.into());
    }
}

/// Per-request facts read off the head once.
pub(super) struct Ids {
    pub request_id: String,
    pub peer: Option<SocketAddr>,
    pub client_ip: Option<IpAddr>,
    /// The scheme the client used, as far as we may believe it.
    pub scheme: &'static str,
    /// What the head's framing announces (`body::announced_length`), read once.
    pub announced: Option<u64>,
}

impl<G: Gate, O: RequestObserver<G::Note>> Core<G, O> {
    /// Serve one request whose head has been read. Returns whether the client connection is
    /// in a state to carry another request.
    pub(super) async fn serve(
        &self,
        session: &mut ServerSession,
        snap: G::Snapshot,
        listener_scheme: &'static str,
    ) -> bool {
        let start = Instant::now();
        let _inflight = self.inflight.enter();
        let hop = G::hop(&snap);
        if self.draining.is_set() {
            session.set_keepalive(None);
        }
        session.set_read_timeout(Some(hop.body_timeout()));
        session.set_write_timeout(Some(hop.send_timeout()));
        let ids = ids(session, hop, listener_scheme);
        let mut out = Outcome::default();
        let reuse = self.exchange(session, &snap, &ids, &mut out).await;
        let req = session.req_header();
        self.observer.on_request(&RequestRecord {
            request_id: &ids.request_id,
            method: &req.method,
            target: req.raw_path(),
            headers: &req.headers,
            peer: ids.peer,
            client_ip: ids.client_ip,
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            code: out.code,
            auth_method: out.auth_method,
            detail: out.detail.as_deref(),
            latency: start.elapsed(),
            upstream_latency: out.upstream_latency,
            buffered_body_bytes: out.buffered,
            note: out.note.as_ref(),
        });
        reuse
    }

    async fn exchange(
        &self,
        session: &mut ServerSession,
        snap: &G::Snapshot,
        ids: &Ids,
        out: &mut Outcome<G::Note>,
    ) -> bool {
        let hop = G::hop(snap);
        let head = self.gate.check_head(snap, &view(session, ids)).await;
        let (verdict, buffered) = match head {
            HeadVerdict::Decided(v) => (v, None),
            HeadVerdict::NeedBody(pending) => match read_body(session, hop).await {
                Ok(bytes) => {
                    out.buffered = bytes.len();
                    let v = self
                        .gate
                        .check_body(snap, &view(session, ids), &bytes, pending)
                        .await;
                    (v, Some(bytes))
                }
                Err(e) => {
                    let err = body_error(e, hop);
                    if let Some(err) = &err {
                        out.note = Some(self.gate.body_refused(pending, err));
                    }
                    return body_failed(session, err, ids, out).await;
                }
            },
        };
        match verdict {
            Verdict::Reject(r) => {
                self.reject(session, r, hop, ids, buffered.is_some(), out)
                    .await
            }
            Verdict::Pass(p) => {
                let up = upstream_request(session, hop, &p, ids, buffered.as_ref());
                out.auth_method = Some(p.auth_method);
                out.note = Some(p.note);
                let send = match buffered {
                    Some(b) => Sent::Whole(b),
                    None if session.is_body_empty() => Sent::Whole(Bytes::new()),
                    None => Sent::Stream,
                };
                upstream::forward(
                    &self.upstreams,
                    session,
                    hop,
                    up,
                    send,
                    &ids.request_id,
                    out,
                )
                .await
            }
        }
    }

    async fn reject(
        &self,
        session: &mut ServerSession,
        r: Reject<G::Note>,
        hop: &Hop,
        ids: &Ids,
        body_read: bool,
        out: &mut Outcome<G::Note>,
    ) -> bool {
        out.fail(r.error.code, r.error.detail.to_string());
        let resp = respond::reject_response(&r, &ids.request_id);
        out.note = Some(r.note);
        // A client waiting on `100-continue` has sent no body and will not: close rather than
        // wait. Otherwise read the rest of a bounded body so the client keeps its connection.
        let keep = !self.draining.is_set()
            && (body_read
                || (!expects_continue(session)
                    && body::drain_bounded(session, hop.max_body_bytes, hop.body_timeout()).await));
        match resp {
            Ok(resp) => respond::send(session, resp, keep).await.is_ok() && keep,
            Err(_) => false,
        }
    }
}

/// The client-facing facts of a request.
fn ids(session: &ServerSession, hop: &Hop, listener_scheme: &'static str) -> Ids {
    let req = session.req_header();
    let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
    let peer_ip = peer.map(|p| p.ip());
    let scheme = headers::scheme(&req.headers, peer_ip, &hop.trusted_proxies, listener_scheme);
    Ids {
        request_id: headers::request_id(&req.headers),
        peer,
        client_ip: headers::client_ip(&req.headers, peer_ip, &hop.trusted_proxies),
        scheme: if scheme.eq_ignore_ascii_case("https") {
            "https"
        } else {
            "http"
        },
        announced: body::announced_length(session),
    }
}

fn view<'a>(session: &'a ServerSession, ids: &'a Ids) -> RequestView<'a> {
    let req = session.req_header();
    // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host; over HTTP/2 the
    // `:authority` pseudo-header is the URI's authority.
    let target = req.raw_path();
    // Only an absolute-form target can carry an authority; origin-form (`/…`) is not parsed.
    let absolute = (target.first() != Some(&b'/'))
        .then(|| std::str::from_utf8(target).ok())
        .flatten()
        .and_then(crate::signature::target::Target::parse)
        .and_then(|t| match t {
            crate::signature::target::Target::Absolute { authority, .. } => {
                Some(authority.as_bytes())
            }
            _ => None,
        });
    let authority = absolute
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
        .or_else(|| req.headers.get(http::header::HOST).map(|v| v.as_bytes()));
    RequestView {
        method: &req.method,
        target,
        authority,
        scheme: ids.scheme,
        headers: &req.headers,
        peer: ids.peer,
        client_ip: ids.client_ip,
        request_id: &ids.request_id,
        announced_body: ids.announced,
    }
}

fn expects_continue(session: &ServerSession) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The whole body, for the gate: refused unread when its announced length is over the limit.
async fn read_body(session: &mut ServerSession, hop: &Hop) -> Result<Bytes, BodyError> {
    let max = hop.max_body_bytes;
    if body::announced_length(session).is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    if expects_continue(session) && !session.is_body_done() {
        // The upstream never sees the Expect: we ask for the body ourselves.
        session
            .write_continue_response()
            .await
            .map_err(BodyError::Gone)?;
    }
    body::read_all(session, max, hop.body_timeout()).await
}

/// Why a body could not be read whole; `None` when the client went away (nothing to answer).
fn body_error(e: BodyError, hop: &Hop) -> Option<Error> {
    match e {
        BodyError::TooLarge => Some(Error::new(
            ErrorCode::BodyTooLarge,
            format!(
                "request body exceeds max_body_bytes ({})",
                hop.max_body_bytes
            ),
        )),
        BodyError::Timeout => Some(Error::new(
            ErrorCode::RequestTimeout,
            format!(
                "no request body bytes for {} s (limits.body_timeout_seconds)",
                hop.limits.body_timeout_seconds
            ),
        )),
        BodyError::Malformed(e) => Some(Error::new(
            ErrorCode::BadRequest,
            format!("request body: {e}"),
        )),
        BodyError::Gone(_) => None,
    }
}

/// The body could not be read whole: answer (unless the client is gone) and close.
async fn body_failed<N>(
    session: &mut ServerSession,
    err: Option<Error>,
    ids: &Ids,
    out: &mut Outcome<N>,
) -> bool {
    let Some(err) = err else {
        out.detail = Some("client went away while sending its body".into());
        return false;
    };
    out.fail(err.code, err.detail.to_string());
    if let Ok(resp) = respond::error_response(&err, &ids.request_id) {
        let _ = respond::send(session, resp, false).await;
    }
    false
}

/// The upstream request: the client's head, hop-by-hop fields and forged identity removed,
/// forwarding fields rewritten, framing made explicit, the verified identity set.
fn upstream_request<N>(
    session: &ServerSession,
    hop: &Hop,
    pass: &Pass<N>,
    ids: &Ids,
    buffered: Option<&Bytes>,
) -> RequestHeader {
    let mut up = session.req_header().clone();
    let from_h2 = up.version == Version::HTTP_2;
    up.set_version(Version::HTTP_11);
    if from_h2 && !up.headers.contains_key(http::header::HOST) {
        // RFC 9113 §8.3.1: an HTTP/1.1 hop needs Host from `:authority`.
        if let Some(v) = up
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            up.insert(http::header::HOST, v);
        }
    }
    origin_form(&mut up);
    // One pass over the names: what to drop (hop-by-hop, `Expect`, the strip set, the gate's
    // overrides) and the framing the client used. Cheaper than a hash lookup per name to drop.
    let scan = scan_head(&up.headers, hop, &pass.strip);
    let announced = ids.announced;
    for n in scan.hop_by_hop.names(&HOP_BY_HOP).chain(&scan.doomed) {
        up.remove(n);
    }
    let mut framing_set = false;
    match buffered {
        // Read whole and verified: sent with its exact length, whatever the client's framing.
        Some(b) => {
            up.remove(&http::header::CONTENT_LENGTH);
            if !b.is_empty() || scan.chunked || scan.had_length || announced != Some(0) {
                up.insert(http::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                framing_set = true;
            }
        }
        // Streamed: the length the client announced, or chunks of unknown total.
        None => match announced {
            Some(0) => {}
            Some(n) => {
                up.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
                framing_set = true;
            }
            None => {
                up.insert(
                    http::header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
                framing_set = true;
            }
        },
    }
    if framing_set {
        // As before the single pass: a strip set or override list that names a framing field
        // removes it even when we set it.
        for n in [
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ] {
            if hop.strip.contains(n.as_str()) || pass.strip.contains(&n) {
                up.remove(&n);
            }
        }
    }
    headers::set_forwarded(
        &mut up,
        ids.peer.map(|p| p.ip()),
        &hop.trusted_proxies,
        ids.scheme,
    );
    headers::set(&mut up, &headers::X_REQUEST_ID, &ids.request_id);
    if let Some(id) = &pass.identity {
        up.insert(hop.client_id_header.clone(), id.client_id().clone());
        up.insert(hop.key_id_header.clone(), id.key_id().clone());
    }
    up.insert(
        hop.auth_method_header.clone(),
        HeaderValue::from_static(pass.auth_method.as_str()),
    );
    up
}

/// Hop-by-hop fields never forwarded (RFC 9110 §7.6.1), plus the body framing we set ourselves.
/// A `static`, as the other header-name tables: a `const` of a type with drop glue
/// (`HeaderName`) is built and dropped again at every use, here once per header of the request.
static HOP_BY_HOP: [http::HeaderName; 9] = [
    http::header::CONNECTION,
    http::HeaderName::from_static("keep-alive"),
    http::HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

/// What one pass over a request head's names found.
struct Scan {
    /// Names to remove before the proxy sets its own: hop-by-hop fields, those the client's
    /// `Connection` nominated, `Expect`, the policy's strip set in any spelling, and the gate's
    /// `strip` list (exactly as spelled).
    doomed: Vec<http::HeaderName>,
    /// The `HOP_BY_HOP` fields present (removed too).
    hop_by_hop: headers::NameSet,
    /// The client sent `Transfer-Encoding`.
    chunked: bool,
    /// The client sent `Content-Length`.
    had_length: bool,
}

fn scan_head(map: &http::HeaderMap, hop: &Hop, gate_strip: &[http::HeaderName]) -> Scan {
    let mut scan = Scan {
        doomed: Vec::new(),
        hop_by_hop: headers::NameSet::default(),
        chunked: false,
        had_length: false,
    };
    for k in map.keys() {
        if k == http::header::TRANSFER_ENCODING {
            scan.chunked = true;
        } else if k == http::header::CONTENT_LENGTH {
            scan.had_length = true;
        }
        if scan.hop_by_hop.note(&HOP_BY_HOP, k) {
            continue;
        }
        if k == http::header::EXPECT || hop.strip.contains(k.as_str()) || gate_strip.contains(k) {
            scan.doomed.push(k.clone());
        }
    }
    // `Connection` is HOP_BY_HOP[0].
    if scan.hop_by_hop.has(0) {
        headers::nominated(map, &HOP_BY_HOP, &NEVER_NOMINATED, &mut scan.doomed);
    }
    scan
}

/// An absolute-form target (`GET http://host/x`) goes upstream in origin-form with its
/// authority as Host (RFC 9112 §3.2.1–2: an origin server is sent origin-form, and the target's
/// authority wins over a Host field). The path and query bytes are not touched.
fn origin_form(up: &mut RequestHeader) {
    // Origin-form (`/…`, every ordinary request) has nothing to rewrite: no copy of it.
    if up.raw_path().first() == Some(&b'/') {
        return;
    }
    let target = up.raw_path().to_vec();
    let Some(crate::signature::target::Target::Absolute {
        authority,
        path,
        query,
        ..
    }) = std::str::from_utf8(&target)
        .ok()
        .and_then(crate::signature::target::Target::parse)
    else {
        return;
    };
    let mut origin = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    if let Some(q) = query {
        origin.push('?');
        origin.push_str(q);
    }
    // Userinfo (deprecated, RFC 9110 §4.2.4) never goes into Host.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Ok(host) = HeaderValue::from_str(authority)
        && up.set_raw_path(origin.as_bytes()).is_ok()
    {
        up.insert(http::header::HOST, host);
    }
}

/// Fields a `Connection` token may not remove: the message's target and framing are end-to-end.
static NEVER_NOMINATED: [http::HeaderName; 3] = [
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_TYPE,
];
