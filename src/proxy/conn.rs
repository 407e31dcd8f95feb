//! One client connection: admitted under `limits.max_connections` and served in a task of its
//! own (not Pingora's per-connection task, sized for Pingora's TLS handshake); on a TLS listener
//! the handshake next, within `limits.header_timeout_seconds`, with the certificate of the policy
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
use pingora::protocols::l4::stream::Stream as L4Stream;
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

    /// One admitted connection, from the TLS handshake (on a TLS listener) to its end.
    async fn serve(&self, mut stream: Stream, shutdown: &ShutdownWatch) {
        let core = &self.core;
        let (h2c, within, tls) = {
            let snap = core.gate.snapshot();
            let hop = G::hop(&snap);
            let tls = if self.tls { self.tls_config(hop) } else { None };
            (hop.http2.enabled, hop.header_timeout(), tls)
        };
        if self.tls {
            let Some(config) = tls else {
                return;
            };
            // Boxed, like the h2 server below: the connection's task is as large as its
            // largest state, and a plain HTTP/1.1 connection idling between requests should not
            // carry the space of a TLS handshake or an HTTP/2 connection.
            stream = match Box::pin(super::tls::accept(stream, &config, within)).await {
                Ok(s) => s,
                Err(super::tls::HandshakeError::Closed) => return,
                Err(e) => {
                    tracing::debug!(error = ?e, "TLS handshake");
                    core.observer.on_connection(ConnEvent::TlsHandshake);
                    return;
                }
            };
        }
        let mut prefix = None;
        let h2 = if self.tls {
            matches!(stream.selected_alpn_proto(), Some(ALPN::H2))
        } else if h2c {
            match tokio::time::timeout(within, h2_preface(&mut stream)).await {
                Ok(Some(Opening::H2)) => {
                    let Some(s) = put_back(stream, b"PRI") else {
                        return;
                    };
                    stream = s;
                    true
                }
                Ok(Some(Opening::H1(p))) => {
                    prefix = Some(p);
                    false
                }
                Ok(None) => return,
                Err(_) => {
                    core.observer.on_connection(ConnEvent::HeaderTimeout);
                    return;
                }
            }
        } else {
            false
        };
        if h2 {
            Box::pin(super::h2::serve(core, stream, shutdown, self.scheme)).await;
            return;
        }
        self.serve_h1(stream, prefix, shutdown).await;
    }

    /// HTTP/1.1, request after request, until the client or a limit ends the connection.
    /// Between requests the connection holds only its socket and this small future: the
    /// request's own state (session, buffers, the exchange) lives in a box for its duration.
    async fn serve_h1(
        &self,
        mut stream: Stream,
        mut prefix: Option<BytesMut>,
        shutdown: &ShutdownWatch,
    ) {
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
                    r = pingora::prelude::timeout(idle, first_byte(&mut stream)) => match r {
                        Ok(Some(p)) => prefix = Some(p),
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
        // Pingora's timer (as its own read timeouts), not tokio's: arming a tokio timer earlier
        // than the runtime's next wake-up writes the runtime's eventfd, a syscall per request.
        match pingora::prelude::timeout(hop.header_timeout(), session.read_request()).await {
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

/// How a plain connection opens: with the HTTP/2 connection preface (RFC 9113 §3.4; no HTTP/1.1
/// method is `PRI`, so three bytes tell), or with an HTTP/1.1 request, whose first bytes are
/// returned as its prefix. `None`: the client closed (or failed) before three bytes. Read rather
/// than peeked: Pingora's `try_peek` reads and puts the bytes back in a buffer the connection
/// then keeps for its life; only an HTTP/2 connection gets its bytes put back (`put_back`).
async fn h2_preface(stream: &mut Stream) -> Option<Opening> {
    let mut head = [0u8; 3];
    stream.read_exact(&mut head).await.ok()?;
    Some(if &head == b"PRI" {
        Opening::H2
    } else {
        Opening::H1(prefix(&head))
    })
}

enum Opening {
    /// The preface's first three bytes were read: put them back before the HTTP/2 server reads.
    H2,
    H1(BytesMut),
}

/// Puts `PRI` back in front of a plain connection's stream for the HTTP/2 server. `None` if the
/// stream is not Pingora's TCP stream (every plain listener's is).
fn put_back(stream: Stream, head: &[u8]) -> Option<Stream> {
    let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
    l4.rewind(head);
    Some(l4)
}

/// Waits for the next request's first byte on an idle connection and reads it: the next
/// request's prefix. `None`: the client closed. Reading one byte into the stack, rather than
/// Pingora's `try_peek`, keeps an idle connection's wait free of heap state.
async fn first_byte(stream: &mut Stream) -> Option<BytesMut> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte).await {
        Ok(1) => Some(prefix(&byte)),
        _ => None,
    }
}

/// The start of a request head as the session's parse buffer, with the capacity Pingora gives
/// its own (4 KiB), so the rest of the head is read in one call rather than 64 bytes at a time.
fn prefix(bytes: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(HEAD_BUFFER_BYTES);
    b.extend_from_slice(bytes);
    b
}

/// Pingora's `INIT_HEADER_BUF_SIZE`.
const HEAD_BUFFER_BYTES: usize = 4096;

#[async_trait]
impl<G: Gate, O: RequestObserver<G::Note>> ServerApp for Front<G, O> {
    /// Admits the connection and hands it to a task of our own, then returns at once. Pingora
    /// runs `process_new` inside its per-connection task, whose size is fixed when it is spawned
    /// and covers Pingora's own TLS handshake state (~8.6 KiB, heaptrack): kept for the whole
    /// life of an idle keep-alive connection, it was most of what one cost. Our task holds only
    /// what `serve` needs, and Pingora's finishes as soon as this returns.
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let max = {
            let snap = self.core.gate.snapshot();
            G::hop(&snap).limits.max_connections
        };
        // Counted before the hand-over: a stop that waits for open connections sees this one.
        let Some(open) = self.core.connections.try_enter(max) else {
            self.core.observer.on_connection(ConnEvent::OverLimit);
            return None;
        };
        let front = Arc::clone(self);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            front.serve(stream, &shutdown).await;
            drop(open);
        });
        None
    }
}
