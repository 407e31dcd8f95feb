//! One client connection: admitted under `limits.max_connections`; on a TLS listener the
//! handshake next, within `limits.header_timeout_seconds`, with the certificate of the policy
//! snapshot in force; then HTTP/2 (ALPN `h2`, or the h2c preface on a plain listener when
//! `http2.enabled`) handed to `h2.rs`, or HTTP/1.1 served here request after request — the head
//! within `limits.header_timeout_seconds`, idle keep-alive within
//! `limits.keepalive_timeout_seconds`, pipelined requests one after another, and every request
//! through the same `Core::serve`. Limits are read from the policy snapshot at each step, so a
//! reload applies to the next connection or request.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::ServerApp;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncReadExt;

use super::exchange::Core;
use super::gate::Gate;
use super::record::{ConnEvent, RequestObserver};
use super::respond;
use super::tls::ServerTls;
use crate::error::{Error, ErrorCode};

/// The listener's application: what Pingora calls with each accepted connection.
pub struct Front<G: Gate, O> {
    core: Arc<Core<G, O>>,
    /// Scheme of this listener as clients see it (`https` on a TLS listener).
    scheme: &'static str,
    /// A TLS listener (decided at start: turning TLS on or off needs a restart).
    tls: bool,
    /// The last TLS configuration served: kept when a reload drops `tls:` from the policy,
    /// which takes effect only at the next start.
    last_tls: ArcSwapOption<ServerTls>,
}

impl<G: Gate, O: RequestObserver<G::Note>> Front<G, O> {
    pub fn new(core: Arc<Core<G, O>>, tls: bool) -> Self {
        Self {
            core,
            scheme: if tls { "https" } else { "http" },
            tls,
            last_tls: ArcSwapOption::empty(),
        }
    }

    /// The TLS configuration for a new connection: the snapshot's, else the last one served.
    fn tls_config(&self, hop: &super::hop::Hop) -> Option<Arc<ServerTls>> {
        match &hop.tls {
            Some(t) => {
                let same = self
                    .last_tls
                    .load()
                    .as_ref()
                    .is_some_and(|l| Arc::ptr_eq(l, t));
                if !same {
                    self.last_tls.store(Some(t.clone()));
                }
                Some(t.clone())
            }
            None => self.last_tls.load_full(),
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
                tokio::select! {
                    r = tokio::time::timeout(idle, first_byte(&mut stream)) => match r {
                        Ok(Some(p)) => prefix = p,
                        _ => return,
                    },
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

/// Waits for the next request's first byte on an idle connection. `Some(None)`: it is there,
/// still unread (peeked); `Some(Some(b))`: it was read (a TLS stream cannot peek) and is the
/// next request's prefix; `None`: the client closed.
async fn first_byte(stream: &mut Stream) -> Option<Option<BytesMut>> {
    let mut byte = [0u8; 1];
    match stream.try_peek(&mut byte).await {
        Ok(true) => return Some(None),
        Ok(false) => {}
        Err(_) => return None,
    }
    match stream.read(&mut byte).await {
        Ok(1) => Some(Some(BytesMut::from(&byte[..]))),
        _ => None,
    }
}

#[async_trait]
impl<G: Gate, O: RequestObserver<G::Note>> ServerApp for Front<G, O> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let core = &self.core;
        let (max, h2c, within, tls) = {
            let snap = core.gate.snapshot();
            let hop = G::hop(&snap);
            let tls = if self.tls { self.tls_config(hop) } else { None };
            (
                hop.limits.max_connections,
                hop.http2.enabled,
                hop.header_timeout(),
                tls,
            )
        };
        // Admitted before the handshake: a connection that never finishes one holds a slot
        // for at most the header timeout.
        let Some(_open) = core.connections.try_enter(max) else {
            core.observer.on_connection(ConnEvent::OverLimit);
            return None;
        };
        if self.tls {
            let config = tls?;
            // Boxed, like the h2 server below: the connection's task is as large as its
            // largest state, and a plain HTTP/1.1 connection idling between requests should not
            // carry the space of a TLS handshake or an HTTP/2 connection.
            stream = match Box::pin(super::tls::accept(stream, &config, within)).await {
                Ok(s) => s,
                Err(super::tls::HandshakeError::Closed) => return None,
                Err(e) => {
                    tracing::debug!(error = ?e, "TLS handshake");
                    core.observer.on_connection(ConnEvent::TlsHandshake);
                    return None;
                }
            };
        }
        let h2 = if self.tls {
            matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
        } else if h2c {
            match tokio::time::timeout(within, h2_preface(&mut stream)).await {
                Ok(p) => p,
                Err(_) => {
                    core.observer.on_connection(ConnEvent::HeaderTimeout);
                    return None;
                }
            }
        } else {
            false
        };
        if h2 {
            Box::pin(super::h2::serve(core, stream, shutdown, self.scheme)).await;
            return None;
        }
        self.serve_h1(stream, shutdown).await;
        None
    }
}
