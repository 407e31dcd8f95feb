//! One client connection: admitted under `limits.max_connections`, then HTTP/2 (ALPN `h2`, or
//! prior-knowledge h2c when enabled) handed to Pingora's HTTP/2 server, or HTTP/1.1 served here
//! request after request — the head within `limits.header_timeout_seconds`, idle keep-alive
//! within `limits.keepalive_timeout_seconds`, pipelined requests one after another, and every
//! request through the same `Core::serve`. Limits are read from the policy snapshot at each
//! step, so a reload applies to the next connection or request.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;

use super::exchange::Core;
use super::gate::Gate;
use super::record::{ConnEvent, RequestObserver};
use super::respond;
use crate::error::{Error, ErrorCode};

/// The listener's application: what Pingora calls with each accepted connection.
pub struct Front<G: Gate, O> {
    core: Arc<Core<G, O>>,
    h2: Arc<H2<G, O>>,
    /// Scheme of this listener as clients see it (`https` on a TLS listener).
    scheme: &'static str,
    /// Accept prior-knowledge HTTP/2 on a plain listener.
    h2c: bool,
}

impl<G: Gate, O: RequestObserver<G::Note>> Front<G, O> {
    pub fn new(
        core: Arc<Core<G, O>>,
        scheme: &'static str,
        h2c: bool,
        h2_options: Option<pingora::protocols::http::v2::server::H2Options>,
    ) -> Self {
        Self {
            h2: Arc::new(H2 {
                core: core.clone(),
                scheme,
                options: h2_options,
            }),
            core,
            scheme,
            h2c,
        }
    }

    /// HTTP/1.1, request after request, until the client or a limit ends the connection.
    /// Between requests the connection holds only its socket and this small future: the
    /// request's own state (session, buffers, the exchange) lives in a box for its duration.
    async fn serve_h1(&self, mut stream: Stream, shutdown: &ShutdownWatch) {
        let mut prefix: Option<BytesMut> = None;
        let mut first = true;
        loop {
            if !first && prefix.is_none() {
                // Idle between requests: the next one's first byte, within the keep-alive time.
                let idle = {
                    let snap = self.core.gate.snapshot();
                    G::hop(&snap).keepalive_timeout()
                };
                let Some(idle) = idle else {
                    return;
                };
                let mut shutdown = shutdown.clone();
                let mut byte = [0u8; 1];
                tokio::select! {
                    r = tokio::time::timeout(idle, stream.try_peek(&mut byte)) => {
                        if !matches!(r, Ok(Ok(true))) {
                            return;
                        }
                    }
                    _ = shutdown.changed() => return,
                }
            }
            match Box::pin(self.one_request(stream, prefix.take(), shutdown)).await {
                Some((s, p)) => {
                    stream = s;
                    prefix = p;
                }
                None => return,
            }
            first = false;
        }
    }

    /// Read one request head (within the header timeout), serve it, and give the connection
    /// back when it can carry another request.
    async fn one_request(
        &self,
        stream: Stream,
        prefix: Option<BytesMut>,
        shutdown: &ShutdownWatch,
    ) -> Option<(Stream, Option<BytesMut>)> {
        let core = &self.core;
        let snap = core.gate.snapshot();
        let hop = G::hop(&snap);
        let mut session = ServerSession::new_http1(stream);
        if let Some(p) = prefix {
            session.set_pipelined_prefix(p);
        }
        session.set_pipelining_enabled(true);
        match hop.keepalive_timeout() {
            Some(t) if !core.draining.is_set() && !*shutdown.borrow() => {
                session.set_keepalive(Some(t.as_secs()))
            }
            _ => session.set_keepalive(None),
        }
        match tokio::time::timeout(hop.header_timeout(), session.read_request()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return None,
            Ok(Err(e)) => {
                if e.etype() == &pingora::ErrorType::InvalidHTTPHeader {
                    core.observer.on_connection(ConnEvent::BadRequest);
                    bad_request(&mut session, &e).await;
                }
                return None;
            }
            Err(_) => {
                // nginx's client_header_timeout: close without an answer.
                core.observer.on_connection(ConnEvent::HeaderTimeout);
                return None;
            }
        }
        if !core.serve(&mut session, snap, self.scheme).await {
            return None;
        }
        match session.finish().await {
            Ok(Some(next)) => Some(next.into_parts()),
            _ => None,
        }
    }
}

/// A request head Pingora could not parse: a JSON 400 and close.
async fn bad_request(session: &mut ServerSession, e: &pingora::Error) {
    let id = super::headers::new_request_id();
    let err = Error::new(ErrorCode::BadRequest, e.to_string());
    if let Ok(resp) = respond::error_response(&err, &id) {
        let _ = respond::send(session, resp, false).await;
    }
}

/// True when the client opens with the HTTP/2 connection preface (RFC 9113 §3.4). No HTTP/1.1
/// method is `PRI`, so three bytes tell.
async fn h2_preface(stream: &mut Stream) -> bool {
    let mut head = [0u8; 3];
    matches!(stream.try_peek(&mut head).await, Ok(true)) && &head == b"PRI"
}

#[async_trait]
impl<G: Gate, O: RequestObserver<G::Note>> ServerApp for Front<G, O> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let max = {
            let snap = self.core.gate.snapshot();
            G::hop(&snap).limits.max_connections
        };
        let Some(_open) = self.core.connections.try_enter(max) else {
            self.core.observer.on_connection(ConnEvent::OverLimit);
            return None;
        };
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
            || (self.h2c && h2_preface(&mut stream).await);
        if h2 {
            return ServerApp::process_new(&self.h2, stream, shutdown).await;
        }
        self.serve_h1(stream, shutdown).await;
        None
    }
}

/// HTTP/2 connections, served by Pingora's HTTP/2 server; each stream is one request through
/// `Core::serve`.
pub struct H2<G: Gate, O> {
    core: Arc<Core<G, O>>,
    scheme: &'static str,
    options: Option<pingora::protocols::http::v2::server::H2Options>,
}

#[async_trait]
impl<G: Gate, O: RequestObserver<G::Note>> HttpServerApp for H2<G, O> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let snap = self.core.gate.snapshot();
        if session.read_request().await.ok() != Some(true) {
            return None;
        }
        self.core.serve(&mut session, snap, self.scheme).await;
        let _ = session.finish().await;
        None
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.options.clone()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        // Only ever handed HTTP/2 connections (ALPN, or the preface already seen).
        Some(&H2C)
    }
}

static H2C: std::sync::LazyLock<HttpServerOptions> = std::sync::LazyLock::new(|| {
    let mut o = HttpServerOptions::default();
    o.h2c = true;
    o
});
