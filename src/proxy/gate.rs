//! The seam between the request path and the verification decision: a borrowed view of the
//! request, the typed `Gate` trait that judges it, the `Identity` the backend is told (made only
//! from a verified signature), and `PassthroughGate` for tests. No Pingora types leak through
//! here, so the decision core stays testable without a server.

use std::net::SocketAddr;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::hop::Hop;
use crate::error::Error;
use crate::signature::Verified;

/// What a gate sees of a request: everything as received from the client, before the proxy
/// strips or adds any header (so signed components can be rebuilt byte for byte).
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The request target exactly as it appeared on the request line (origin-form or
    /// absolute-form), percent-encoding untouched; `:path` over HTTP/2.
    pub target: &'a [u8],
    /// Host header (HTTP/1.1), absolute-form authority or `:authority` (HTTP/2), as sent;
    /// `None` when absent.
    pub authority: Option<&'a [u8]>,
    /// `https` when a trusted proxy said so through `X-Forwarded-Proto`, else this listener's.
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
    /// The TCP peer (not `X-Forwarded-For`).
    pub peer: Option<SocketAddr>,
    /// The client address after applying `trusted_proxies` to `X-Forwarded-For`.
    pub client_ip: Option<std::net::IpAddr>,
    pub request_id: &'a str,
    /// What the request's framing announces: `Some(n)` for a Content-Length of `n`, `None` for
    /// a chunked (or HTTP/2 DATA-framed) body of unknown length, `Some(0)` for no body.
    pub announced_body: Option<u64>,
}

pub use crate::decision::AuthMethod;

/// The values of the client-id and key-id identity headers. Its only constructor takes a
/// [`Verified`], which only the signature verifier can make: no code path can set identity
/// headers without a signature that verified.
#[derive(Clone, Debug)]
pub struct Identity {
    client_id: HeaderValue,
    key_id: HeaderValue,
}

impl Identity {
    /// `None` when an id from configuration is not a valid header value: left out rather than
    /// sent mangled.
    pub fn from_verified(v: &Verified) -> Option<Self> {
        Some(Self {
            client_id: HeaderValue::from_str(v.client_id()).ok()?,
            key_id: HeaderValue::from_str(v.key_id()).ok()?,
        })
    }

    pub fn client_id(&self) -> &HeaderValue {
        &self.client_id
    }

    pub fn key_id(&self) -> &HeaderValue {
        &self.key_id
    }
}

/// Let the request through.
pub struct Pass<N> {
    /// Set on the upstream request (under the snapshot's header names) after every inbound copy
    /// of the identity headers has been stripped.
    pub identity: Option<Identity>,
    pub auth_method: AuthMethod,
    /// Further inbound headers to drop from this request (in any spelling), e.g. method or URL
    /// override headers the signature does not cover.
    pub strip: Vec<HeaderName>,
    pub note: N,
}

impl<N> Pass<N> {
    /// A pass without identity (legacy or unauthenticated traffic).
    pub fn anonymous(auth_method: AuthMethod, note: N) -> Self {
        Self {
            identity: None,
            auth_method,
            strip: Vec::new(),
            note,
        }
    }
}

/// Refuse the request; nothing of it reaches the upstream.
pub struct Reject<N> {
    pub error: Error,
    /// Sent as `Accept-Signature` on a 401.
    pub accept_signature: Option<HeaderValue>,
    /// Sent as `Retry-After` (seconds) on a 429.
    pub retry_after: Option<u64>,
    pub note: N,
}

impl<N> Reject<N> {
    pub fn new(error: Error, note: N) -> Self {
        Self {
            error,
            accept_signature: None,
            retry_after: None,
            note,
        }
    }
}

pub enum Verdict<N> {
    Pass(Pass<N>),
    Reject(Reject<N>),
}

/// Answer to the head-only check.
pub enum HeadVerdict<N, P> {
    Decided(Verdict<N>),
    /// Read the whole body (bounded by `max_body_bytes`) and call [`Gate::check_body`] with it
    /// and this state before anything is sent upstream. Returned only for requests whose body
    /// must be checked; every other body streams through unbuffered.
    NeedBody(P),
}

/// The verification decision, called before the upstream is connected to or sent a byte.
#[async_trait]
pub trait Gate: Send + Sync + 'static {
    /// Everything one request reads from the configuration, taken once at its start (so a
    /// reload never splits a request between two policies).
    type Snapshot: Send + Sync + 'static;
    /// What the head check hands to the body check.
    type Pending: Send + 'static;
    /// What the verdict tells the observer (audit fields, outcome labels).
    type Note: Send + Sync + 'static;

    fn snapshot(&self) -> Self::Snapshot;

    /// The proxy settings of a snapshot.
    fn hop(snapshot: &Self::Snapshot) -> &Hop;

    /// Decide from the request head alone, or ask for the body.
    async fn check_head(
        &self,
        snapshot: &Self::Snapshot,
        req: &RequestView<'_>,
    ) -> HeadVerdict<Self::Note, Self::Pending>;

    /// Decide with the complete body in hand (only after `NeedBody`). An empty slice means the
    /// request carried no body bytes, whatever its head announced.
    async fn check_body(
        &self,
        snapshot: &Self::Snapshot,
        req: &RequestView<'_>,
        body: &[u8],
        pending: Self::Pending,
    ) -> Verdict<Self::Note>;

    /// The note for a request refused while its body was read whole (413, 408, 400): the head
    /// check's state with the proxy's error, so it is audited like any other refusal.
    fn body_refused(&self, pending: Self::Pending, error: &Error) -> Self::Note;
}

/// Passes everything as `legacy` without identity: the proxy with verification switched off.
pub struct PassthroughGate {
    hop: std::sync::Arc<Hop>,
}

impl PassthroughGate {
    pub fn new(hop: Hop) -> Self {
        Self {
            hop: std::sync::Arc::new(hop),
        }
    }
}

#[async_trait]
impl Gate for PassthroughGate {
    type Snapshot = std::sync::Arc<Hop>;
    type Pending = ();
    type Note = ();

    fn snapshot(&self) -> Self::Snapshot {
        self.hop.clone()
    }

    fn hop(snapshot: &Self::Snapshot) -> &Hop {
        snapshot
    }

    async fn check_head(&self, _: &Self::Snapshot, _: &RequestView<'_>) -> HeadVerdict<(), ()> {
        HeadVerdict::Decided(Verdict::Pass(Pass::anonymous(AuthMethod::Legacy, ())))
    }

    async fn check_body(
        &self,
        _: &Self::Snapshot,
        _: &RequestView<'_>,
        _: &[u8],
        _: (),
    ) -> Verdict<()> {
        Verdict::Pass(Pass::anonymous(AuthMethod::Legacy, ()))
    }

    fn body_refused(&self, _: (), _: &Error) {}
}
