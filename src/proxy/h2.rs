//! One HTTP/2 client connection (ALPN `h2` on the TLS listener, prior-knowledge h2c on the plain
//! one): Pingora's h2 server does the framing, this is the accept loop around it, so the bounds
//! are ours. Per connection: `http2.max_concurrent_streams` and `http2.max_header_list_bytes`
//! advertised in SETTINGS; streams reset before they were served count against
//! `http2.max_pending_resets` (h2's rapid-reset guard: GOAWAY `ENHANCE_YOUR_CALM` past it); a
//! stream opened while more handlers than twice the stream limit still run (the client reset
//! streams whose work goes on) is refused with `REFUSED_STREAM`, and past
//! `http2.max_pending_resets` refusals the connection ends with GOAWAY `ENHANCE_YOUR_CALM`.
//! The preface must arrive within `limits.header_timeout_seconds`; a connection with no stream
//! open for `limits.keepalive_timeout_seconds` is closed; a stop (drain) sends GOAWAY and lets
//! open streams finish. Each stream is one request through `Core::serve`; nothing about
//! verification is here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v2::server::{self as h2s, H2Accept, H2Options, HttpSession};
use pingora::protocols::{Digest, Stream};
use pingora::server::ShutdownWatch;

use super::exchange::Core;
use super::gate::Gate;
use super::record::{ConnEvent, RequestObserver};

/// Malformed streams (bad `:path`, conflicting lengths, ambiguous authority) tolerated on one
/// connection; Pingora's own accept loop uses the same bound.
const MAX_MALFORMED_STREAMS: usize = 32;

/// How long a connection we end gets to flush its GOAWAY.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// Handlers in progress on one connection; decremented when a handler ends.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The h2 server settings of one connection, from the policy in force when it began.
pub(super) fn options(h: &crate::policy::Http2) -> H2Options {
    let mut o = H2Options::default();
    o.max_concurrent_streams(h.max_concurrent_streams)
        .max_header_list_size(h.max_header_list_bytes)
        .max_pending_accept_reset_streams(h.max_pending_resets);
    o
}

/// Serve one HTTP/2 connection until the client closes it, a bound ends it, or a stop drains it.
pub(super) async fn serve<G: Gate, O: RequestObserver<G::Note>>(
    core: &Arc<Core<G, O>>,
    stream: Stream,
    shutdown: &ShutdownWatch,
    scheme: &'static str,
) {
    let (h, header_timeout, idle) = {
        let snap = core.gate.snapshot();
        let hop = G::hop(&snap);
        (hop.http2, hop.header_timeout(), hop.keepalive_timeout())
    };
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let mut conn =
        match tokio::time::timeout(header_timeout, h2s::handshake(stream, Some(options(&h)))).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(_)) => return,
            Err(_) => {
                core.observer.on_connection(ConnEvent::HeaderTimeout);
                return;
            }
        };
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = (h.max_concurrent_streams as usize).saturating_mul(2);
    let (mut refused, mut malformed) = (0usize, 0usize);
    let mut stopping = false;
    let mut shutdown = shutdown.clone();
    loop {
        let accepted = if stopping {
            h2s_accept(&mut conn, &digest).await
        } else {
            let idle_wait = idle_timer(&running, idle);
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    conn.graceful_shutdown();
                    stopping = true;
                    continue;
                }
                () = core.draining.wait() => {
                    conn.graceful_shutdown();
                    stopping = true;
                    continue;
                }
                a = h2s_accept(&mut conn, &digest) => a,
                () = idle_wait => return,
            }
        };
        let mut session = match accepted {
            Ok(Some(H2Accept::Session(s))) => s,
            Ok(Some(H2Accept::Rejected)) => {
                malformed += 1;
                if malformed >= MAX_MALFORMED_STREAMS {
                    core.observer.on_connection(ConnEvent::H2Abuse);
                    return calm_down(conn, &digest).await;
                }
                continue;
            }
            Ok(None) => return,
            Err(e) => {
                if is_calm(&e) {
                    // h2 closed it: too many streams reset before we accepted them.
                    core.observer.on_connection(ConnEvent::H2Abuse);
                }
                return;
            }
        };
        if running.load(Ordering::Acquire) >= max_running {
            session.shutdown_with_reason(h2::Reason::REFUSED_STREAM);
            refused += 1;
            if refused > h.max_pending_resets {
                core.observer.on_connection(ConnEvent::H2Abuse);
                return calm_down(conn, &digest).await;
            }
            continue;
        }
        running.fetch_add(1, Ordering::AcqRel);
        let guard = Running(running.clone());
        let core = core.clone();
        tokio::spawn(async move {
            let _guard = guard;
            join_cookie_crumbs(&mut session);
            let mut session = ServerSession::new_http2(session);
            let snap = core.gate.snapshot();
            core.serve(&mut session, snap, scheme).await;
            let _ = session.finish().await;
        });
    }
}

async fn h2s_accept(
    conn: &mut h2::server::Connection<Stream, bytes::Bytes>,
    digest: &Arc<Digest>,
) -> pingora::Result<Option<H2Accept>> {
    HttpSession::from_h2_conn(conn, digest.clone()).await
}

/// Resolves when no stream has had a handler for `idle` (never, without keep-alive limit).
async fn idle_timer(running: &AtomicUsize, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        while running.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(idle).await;
        if running.load(Ordering::Acquire) == 0 {
            return;
        }
    }
}

/// GOAWAY `ENHANCE_YOUR_CALM`, flushed within a bound, then close.
async fn calm_down(mut conn: h2::server::Connection<Stream, bytes::Bytes>, digest: &Arc<Digest>) {
    conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
    let _ = tokio::time::timeout(GOAWAY_FLUSH, async {
        while let Ok(Some(_)) = h2s_accept(&mut conn, digest).await {}
    })
    .await;
}

fn is_calm(e: &pingora::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = e
        .cause
        .as_deref()
        .map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        if let Some(h) = c.downcast_ref::<h2::Error>() {
            return h.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
        }
        cause = c.source();
    }
    false
}

/// RFC 9113 §8.2.3: a client may split `cookie` into crumbs; they are one field again, joined
/// with "; ", before the request is verified (the signer saw one field) or goes to an HTTP/1.1
/// upstream.
fn join_cookie_crumbs(session: &mut HttpSession) {
    let h = session.req_header_mut();
    let mut crumbs = h.headers.get_all(http::header::COOKIE).iter();
    let (Some(first), Some(_)) = (crumbs.next(), crumbs.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for c in h.headers.get_all(http::header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(c.as_bytes());
    }
    if let Ok(v) = http::HeaderValue::from_bytes(&joined) {
        let _ = h.insert_header(http::header::COOKIE, v);
    }
}
