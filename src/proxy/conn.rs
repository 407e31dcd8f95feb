//! One client connection: admitted under `limits.max_connections` and served in a task of its
//! own (not Pingora's per-connection task, sized for Pingora's TLS handshake); on a TLS listener
//! the handshake next, within `limits.header_timeout_seconds`, with the certificate of the policy
//! snapshot in force; then HTTP/2 (ALPN `h2`, or the h2c preface on a plain listener when
//! `http2.enabled`) handed to `h2.rs`, or HTTP/1.1 served here request after request — the head
//! within `limits.header_timeout_seconds`, idle keep-alive within
//! `limits.keepalive_timeout_seconds`, pipelined requests one after another, and every request
//! through the same `Core::serve`. Limits are read from the policy snapshot at each step, so a
//! reload applies to the next connection or request.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::ServerApp;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, ReadBuf};

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
                Ok(Some(Opening::H2(head))) => {
                    let Some(s) = put_back(stream, &head) else {
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
                // Idle between requests: the next one's first bytes, within the keep-alive time.
                let idle = {
                    let snap = self.core.gate.snapshot();
                    G::hop(&snap).keepalive_timeout()
                };
                let Some(idle) = idle else {
                    return;
                };
                let mut shutdown = shutdown.clone();
                tokio::select! {
                    r = pingora::prelude::timeout(idle, next_head(&mut stream)) => match r {
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
/// returned as its prefix. `None`: the client closed (or failed) before the bytes that tell.
/// Read rather than peeked: Pingora's `try_peek` reads and puts the bytes back in a buffer the
/// connection then keeps for its life; only an HTTP/2 connection gets its bytes put back
/// (`put_back`). Usually one read: what the client sent first, up to `FIRST_READ_BYTES`; more
/// reads only while the bytes so far are a strict prefix of `PRI` (at most two more).
async fn h2_preface(stream: &mut Stream) -> Option<Opening> {
    let mut head = None;
    loop {
        if !read_more(stream, &mut head).await {
            return None;
        }
        let got = head.as_deref().unwrap_or_default();
        if got.len() >= PRI.len() || !PRI.starts_with(got) {
            break;
        }
    }
    let head = head?;
    Some(if head.starts_with(PRI) {
        Opening::H2(head)
    } else {
        Opening::H1(head)
    })
}

/// The first three bytes of the HTTP/2 connection preface.
const PRI: &[u8] = b"PRI";

enum Opening {
    /// The bytes read, from the preface's first three on: put back before the HTTP/2 server
    /// reads.
    H2(BytesMut),
    H1(BytesMut),
}

/// Puts the bytes read back in front of a plain connection's stream for the HTTP/2 server (one
/// copy, kept by the stream until the server has read it). `None` if the stream is not Pingora's
/// TCP stream (every plain listener's is).
fn put_back(stream: Stream, head: &[u8]) -> Option<Stream> {
    let mut l4 = stream.into_any().downcast::<L4Stream>().ok()?;
    l4.rewind(head);
    Some(l4)
}

/// Waits for the next request on an idle connection and reads what the client sent: the next
/// request's prefix, usually its whole head, in one read call. `None`: the client closed.
async fn next_head(stream: &mut Stream) -> Option<BytesMut> {
    let mut head = None;
    if read_more(stream, &mut head).await {
        head
    } else {
        None
    }
}

/// Waits until the stream has bytes and reads what is there, up to `FIRST_READ_BYTES`, in one
/// read call, appending it to `head` (created with the first bytes). `false`: the client closed
/// or the read failed.
///
/// The bytes land in a buffer on the stack of the poll that finds them, and are copied out only
/// then: a connection waiting here holds no buffer at all (issue 19: memory per idle
/// connection), neither on the heap nor in its task's future — the buffer is a local of the
/// `poll_fn` closure, not of an `async fn`, so it is not kept across the wait. A pending poll
/// reads nothing into it (`AsyncRead`'s contract), so a fresh buffer each poll loses nothing.
/// Before this the wait read one byte and Pingora read the rest of the head: two `recvfrom` per
/// keep-alive request where the floor makes one.
async fn read_more(stream: &mut Stream, head: &mut Option<BytesMut>) -> bool {
    std::future::poll_fn(|cx| {
        let mut space = [MaybeUninit::<u8>::uninit(); FIRST_READ_BYTES];
        let mut buf = ReadBuf::uninit(&mut space);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                let got = buf.filled();
                match head {
                    Some(h) => h.extend_from_slice(got),
                    None => *head = Some(prefix(got)),
                }
                Poll::Ready(true)
            }
            Poll::Ready(_) => Poll::Ready(false),
        }
    })
    .await
}

/// The start of a request head as the session's parse buffer, with the capacity Pingora gives
/// its own (4 KiB), so the rest of the head, if any, is read in one call rather than 64 bytes at
/// a time; twice that when the first read filled its buffer (a head of 4 KiB or more).
fn prefix(bytes: &[u8]) -> BytesMut {
    let room = if bytes.len() < HEAD_BUFFER_BYTES {
        HEAD_BUFFER_BYTES
    } else {
        2 * HEAD_BUFFER_BYTES
    };
    let mut b = BytesMut::with_capacity(room.max(bytes.len()));
    b.extend_from_slice(bytes);
    b
}

/// Pingora's `INIT_HEADER_BUF_SIZE`.
const HEAD_BUFFER_BYTES: usize = 4096;

/// The most one read takes when a request starts: as much as Pingora's own first read of a head
/// (its 4 KiB buffer). It costs stack during the poll only, not memory per idle connection.
const FIRST_READ_BYTES: usize = HEAD_BUFFER_BYTES;

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
