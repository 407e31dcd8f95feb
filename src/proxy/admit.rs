//! Admission in `request_filter`: build the request view, ask the gate, read and check the body
//! when asked, and answer rejections — all before Pingora picks or contacts the upstream. Also
//! the upstream header edits shared by both forwarding paths.

use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::body::{self, BodyError};
use super::ctx::ReqCtx;
use super::forward;
use super::gate::{HeadVerdict, Reject, RequestView, Verdict};
use super::headers::{self, HeaderEdit};
use super::respond;
use super::service::SigProxy;
use crate::error::{Error, ErrorCode};

impl SigProxy {
    /// The whole of `request_filter`: `Ok(true)` when a response was sent here.
    pub(super) async fn admit(
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
            HeadVerdict::NeedBody(state) => {
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
                    .check_body(&self.view(session, ctx, &scheme), &bytes, state)
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

    pub(super) fn view<'a>(
        &self,
        session: &'a Session,
        ctx: &'a ReqCtx,
        scheme: &'a str,
    ) -> RequestView<'a> {
        let req = session.req_header();
        // RFC 9112 §3.2.2: an absolute-form target's authority wins over Host.
        let authority = req
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or_else(|| req.headers.get(http::header::HOST).map(|v| v.as_bytes()));
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
    pub(super) fn prepare_upstream(
        &self,
        up: &mut RequestHeader,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<()> {
        self.strip.strip(up);
        headers::set_forwarded(
            up,
            ctx.peer.map(|p| p.ip()),
            &self.settings.trusted_proxies,
            self.settings.listener_scheme,
        );
        headers::set(up, &headers::X_REQUEST_ID, &ctx.request_id);
        if let Some(pass) = &ctx.pass {
            for k in &pass.strip {
                up.remove(k);
            }
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
