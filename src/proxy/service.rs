//! The `ProxyHttp` implementation: thin phase hooks that pull data out of the Pingora session,
//! call the `Gate`, and apply its verdict. Verification logic and metrics formatting live
//! elsewhere (the gate and the observer).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::body::{self, BodyError};
use super::forward;
use super::gate::{Gate, HeadVerdict, Note, Pass, Reject, RequestView, Verdict};
use super::headers::{self, HeaderEdit, StripSet};
use super::record::{RequestObserver, RequestRecord};
use super::respond;
use super::settings::ProxySettings;
use crate::error::{Error, ErrorCode};

/// Counts requests between header read and logging, for graceful drain.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
}

pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-request state carried across phases.
pub struct ReqCtx {
    start: Instant,
    request_id: String,
    peer: Option<SocketAddr>,
    client_ip: Option<IpAddr>,
    pass: Option<Pass>,
    note: Option<Note>,
    code: Option<ErrorCode>,
    detail: Option<String>,
    /// The verified body, handed to Pingora in `request_body_filter`.
    body: Option<Bytes>,
    upstream_sent: Option<Instant>,
    upstream_latency: Option<Duration>,
    hand_forwarded: bool,
    _inflight: InFlightGuard,
}

impl ReqCtx {
    pub fn request_id(&self) -> &str {
        &self.request_id
    }
    pub(crate) fn set_failure(&mut self, code: ErrorCode, detail: String) {
        self.code = Some(code);
        self.detail = Some(detail);
    }
    pub(crate) fn set_upstream_latency(&mut self, d: Option<Duration>) {
        self.upstream_latency = d;
    }
}

/// Upstream failure → stable code; `Err(status)` for failures that are not the upstream's.
pub(crate) fn classify(e: &pingora::Error) -> Result<ErrorCode, u16> {
    use pingora::ErrorSource;
    match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(c)) => Err(*c),
        (ErrorSource::Upstream, ErrorType::ConnectTimedout)
        | (ErrorSource::Upstream, ErrorType::ReadTimedout)
        | (ErrorSource::Upstream, ErrorType::WriteTimedout) => Ok(ErrorCode::UpstreamTimeout),
        (ErrorSource::Upstream, _) => Ok(ErrorCode::UpstreamUnavailable),
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => Err(0),
        (ErrorSource::Downstream, _) => Err(400),
        _ => Err(500),
    }
}

pub struct SigProxy {
    connector: pingora::connectors::http::Connector,
    gate: Arc<dyn Gate>,
    observer: Arc<dyn RequestObserver>,
    peer: HttpPeer,
    strip: StripSet,
    auth_method_header: HeaderName,
    settings: ProxySettings,
    inflight: InFlight,
}

impl SigProxy {
    pub fn new(
        settings: ProxySettings,
        gate: Arc<dyn Gate>,
        observer: Arc<dyn RequestObserver>,
        inflight: InFlight,
    ) -> Result<Self, String> {
        let addr = settings.upstream.resolve()?;
        let mut peer = HttpPeer::new(addr, settings.upstream.tls, settings.upstream.host.clone());
        peer.options.connection_timeout = Some(settings.connect_timeout);
        peer.options.total_connection_timeout = Some(settings.connect_timeout * 2);
        peer.options.read_timeout = Some(settings.read_timeout);
        peer.options.write_timeout = Some(settings.write_timeout);
        peer.options.idle_timeout = Some(settings.idle_timeout);
        let id = &settings.identity;
        let strip = StripSet::new(
            [
                id.client_id.as_str(),
                id.key_id.as_str(),
                id.auth_method.as_str(),
            ]
            .into_iter()
            .chain(id.strip_inbound.iter().map(String::as_str)),
        );
        let auth_method_header = HeaderName::from_bytes(id.auth_method.as_bytes())
            .map_err(|e| format!("identity.auth_method_header: {e}"))?;
        Ok(Self {
            connector: pingora::connectors::http::Connector::new(None),
            gate,
            observer,
            peer,
            strip,
            auth_method_header,
            settings,
            inflight,
        })
    }

    fn view<'a>(&self, session: &'a Session, ctx: &'a ReqCtx, scheme: &'a str) -> RequestView<'a> {
        let req = session.req_header();
        let authority = req
            .headers
            .get(http::header::HOST)
            .map(|v| v.as_bytes())
            .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()));
        RequestView {
            method: &req.method,
            target: req.raw_path(),
            authority,
            scheme,
            headers: &req.headers,
            peer: ctx.peer,
            client_ip: ctx.client_ip,
            request_id: &ctx.request_id,
            has_body: has_body(req),
        }
    }

    fn scheme(&self, session: &Session, ctx: &ReqCtx) -> String {
        headers::scheme(
            &session.req_header().headers,
            ctx.peer.map(|p| p.ip()),
            &self.settings.trusted_proxies,
            self.settings.listener_scheme,
        )
        .to_string()
    }

    async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut ReqCtx,
        r: Reject,
        keep_alive: bool,
    ) -> pingora::Result<bool> {
        ctx.code = Some(r.error.code);
        ctx.detail = Some(r.error.detail.to_string());
        let resp = respond::reject_response(&r, &ctx.request_id)?;
        ctx.note = r.note;
        // Pingora closes a connection answered before its request body was read; drain a
        // bounded body first so the client keeps its connection after a 401.
        let keep_alive = keep_alive
            && body::drain_bounded(session, self.settings.max_body_bytes)
                .await
                .is_ok_and(|drained| drained);
        respond::send(session, resp, keep_alive).await?;
        Ok(true)
    }

    /// Identity, forwarding and framing edits for the upstream request (both paths).
    fn prepare_upstream(&self, up: &mut RequestHeader, ctx: &mut ReqCtx) -> pingora::Result<()> {
        self.strip.strip(up);
        headers::set_forwarded(
            up,
            ctx.peer.map(|p| p.ip()),
            &self.settings.trusted_proxies,
            self.settings.listener_scheme,
        );
        if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
            up.insert(HeaderName::from_static(respond::REQUEST_ID), v);
        }
        if let Some(pass) = &ctx.pass {
            for (k, v) in &pass.identity {
                up.insert(k.clone(), v.clone());
            }
            up.insert(
                self.auth_method_header.clone(),
                HeaderValue::from_static(pass.auth_method.as_str()),
            );
        }
        if let Some(b) = &ctx.body {
            // Buffered bodies go upstream with an exact length, whatever the client's framing.
            up.remove_header(&http::header::TRANSFER_ENCODING);
            up.remove_header(&http::header::EXPECT);
            up.insert_header(http::header::CONTENT_LENGTH, b.len().to_string())?;
        }
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    /// Verified body Pingora cannot replay (chunked, > 64 KiB): forward it ourselves.
    async fn forward_buffered(
        &self,
        session: &mut Session,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<bool> {
        let mut up = session.req_header().clone();
        forward::strip_hop_by_hop(&mut up);
        self.prepare_upstream(&mut up, ctx)?;
        let body = ctx.body.clone().unwrap_or_default();
        ctx.hand_forwarded = true;
        forward::forward(&self.connector, &self.peer, session, ctx, up, body).await
    }

    /// Apply a verdict; `Ok(true)` means a response was sent and the request ends here.
    async fn apply(
        &self,
        session: &mut Session,
        ctx: &mut ReqCtx,
        v: Verdict,
    ) -> pingora::Result<bool> {
        match v {
            Verdict::Pass(p) => {
                ctx.pass = Some(p);
                Ok(false)
            }
            Verdict::Reject(r) => self.reject(session, ctx, r, true).await,
        }
    }
}

fn expects_continue(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s.trim() != "0")
}

#[async_trait]
impl ProxyHttp for SigProxy {
    type CTX = ReqCtx;

    fn new_ctx(&self) -> ReqCtx {
        ReqCtx {
            start: Instant::now(),
            request_id: String::new(),
            peer: None,
            client_ip: None,
            pass: None,
            note: None,
            code: None,
            detail: None,
            body: None,
            upstream_sent: None,
            upstream_latency: None,
            hand_forwarded: false,
            _inflight: self.inflight.enter(),
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<bool> {
        ctx.request_id = headers::request_id(&session.req_header().headers);
        ctx.peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        ctx.client_ip = headers::client_ip(
            &session.req_header().headers,
            ctx.peer.map(|p| p.ip()),
            &self.settings.trusted_proxies,
        );
        let scheme = self.scheme(session, ctx);

        let head = self
            .gate
            .check_head(&self.view(session, ctx, &scheme))
            .await;
        let verdict = match head {
            HeadVerdict::Decided(v) => v,
            HeadVerdict::NeedBody => {
                let max = self.settings.max_body_bytes;
                let too_large = Reject::new(Error::new(
                    ErrorCode::BodyTooLarge,
                    format!("request body exceeds max_body_bytes ({max})"),
                ));
                if body::announced_too_large(session, max) {
                    // Not draining megabytes we will refuse anyway: answer and close.
                    return self.reject(session, ctx, too_large, false).await;
                }
                let (bytes, replayable) = if session.as_downstream_mut().is_body_empty() {
                    (Bytes::new(), true)
                } else {
                    // A client waiting on `Expect: 100-continue` sends nothing until told to;
                    // the upstream never sees the Expect (removed in prepare_upstream).
                    if expects_continue(session.req_header()) {
                        session
                            .as_downstream_mut()
                            .write_continue_response()
                            .await?;
                    }
                    // Bound each read so a trickling client cannot hold the task forever.
                    session
                        .as_downstream_mut()
                        .set_read_timeout(Some(self.settings.read_timeout));
                    match body::read_all(session, max).await {
                        Ok(b) => (b.bytes, b.replayable),
                        Err(BodyError::TooLarge) => {
                            return self.reject(session, ctx, too_large, false).await;
                        }
                        Err(BodyError::Downstream(e)) => return Err(e),
                    }
                };
                let v = self
                    .gate
                    .check_body(&self.view(session, ctx, &scheme), &bytes)
                    .await;
                if let Verdict::Pass(p) = v {
                    if bytes.is_empty() {
                        return self.apply(session, ctx, Verdict::Pass(p)).await;
                    }
                    ctx.pass = Some(p);
                    ctx.body = Some(bytes);
                    if !replayable {
                        return self.forward_buffered(session, ctx).await;
                    }
                    return Ok(false);
                }
                v
            }
        };
        self.apply(session, ctx, verdict).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut ReqCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<()> {
        if let Some(verified) = &ctx.body {
            // The only call after a buffered read is the retry-buffer replay (see body.rs).
            if !end_of_stream {
                return Err(pingora::Error::explain(
                    ErrorType::InternalError,
                    "buffered body: unexpected partial body callback",
                ));
            }
            *body = Some(verified.clone());
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<()> {
        let _ = session;
        self.prepare_upstream(up, ctx)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<()> {
        if ctx.upstream_latency.is_none() {
            ctx.upstream_latency = ctx.upstream_sent.map(|t| t.elapsed());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<()> {
        resp.insert_header(respond::REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut ReqCtx,
    ) -> FailToProxy {
        let code = classify(e);
        ctx.detail = Some(e.to_string());
        if ctx.request_id.is_empty() {
            ctx.request_id = headers::new_request_id();
        }
        let status = match code {
            Ok(c) => c.status(),
            Err(s) => s,
        };
        if status > 0 && session.response_written().is_none() {
            let resp = match code {
                Ok(c) => {
                    ctx.code = Some(c);
                    respond::error_response(&Error::new(c, e.to_string()), &ctx.request_id)
                }
                Err(s) => respond::build(
                    s,
                    "PROXY_ERROR",
                    "Request could not be proxied",
                    &ctx.request_id,
                ),
            };
            if let Ok(resp) = resp {
                let _ = respond::send(session, resp, false).await;
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&pingora::Error>, ctx: &mut ReqCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let detail = match (&ctx.detail, e) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(e)) => Some(e.to_string()),
            _ => None,
        };
        let req = session.req_header();
        let rec = RequestRecord {
            request_id: &ctx.request_id,
            method: &req.method,
            target: req.raw_path(),
            headers: &req.headers,
            peer: ctx.peer,
            client_ip: ctx.client_ip,
            status,
            code: ctx.code,
            auth_method: ctx.pass.as_ref().map(|p| p.auth_method),
            detail: detail.as_deref(),
            latency: ctx.start.elapsed(),
            upstream_latency: ctx.upstream_latency,
            buffered_body_bytes: ctx.body.as_ref().map_or(0, |b| b.len()),
            hand_forwarded: ctx.hand_forwarded,
            note: ctx
                .note
                .as_ref()
                .or_else(|| ctx.pass.as_ref().and_then(|p| p.note.as_ref())),
        };
        self.observer.on_request(&rec);
    }
}
