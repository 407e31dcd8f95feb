//! The `ProxyHttp` implementation: thin phase hooks. Admission (gate, body) is in admit.rs, the
//! per-request state in ctx.rs; verification logic and metrics formatting live elsewhere (the
//! gate and the observer).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderName;
use pingora::ErrorType;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use super::ctx::{InFlight, ReqCtx, classify};
use super::gate::Gate;
use super::headers::{self, StripSet};
use super::record::{RequestObserver, RequestRecord};
use super::respond;
use super::settings::ProxySettings;
use crate::error::Error;

/// The gateway's Pingora app: one per proxy service, shared by all worker threads.
pub struct SigProxy {
    pub(super) connector: pingora::connectors::http::Connector,
    pub(super) gate: Arc<dyn Gate>,
    pub(super) observer: Arc<dyn RequestObserver>,
    pub(super) peer: HttpPeer,
    pub(super) strip: StripSet,
    pub(super) auth_method_header: HeaderName,
    pub(super) settings: ProxySettings,
    pub(super) inflight: InFlight,
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
}

#[async_trait]
impl ProxyHttp for SigProxy {
    type CTX = ReqCtx;

    fn new_ctx(&self) -> ReqCtx {
        ReqCtx::new(self.inflight.enter())
    }

    /// No downstream modules. Pingora's default adds a (disabled) response-compression module,
    /// which still builds a context and runs its filters on every request; a sidecar passes the
    /// backend's bytes through as they are.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut ReqCtx,
    ) -> pingora::Result<bool> {
        self.admit(session, ctx).await
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
