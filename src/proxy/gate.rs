//! The seam between the Pingora machinery and the verification decision: a borrowed view of the
//! request, the `Gate` trait that judges it, and `PassthroughGate` for tests. No Pingora types
//! leak through here, so the decision core stays testable without a server.

use std::any::Any;
use std::net::SocketAddr;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::error::Error;

/// What a gate sees of a request: everything as received from the client, before the proxy
/// strips or adds any header (so signed components can be rebuilt byte for byte).
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The request target exactly as it appeared on the request line (origin-form or
    /// absolute-form), percent-encoding untouched.
    pub target: &'a [u8],
    /// Host header (HTTP/1.1) or URI authority, as sent; `None` when absent.
    pub authority: Option<&'a [u8]>,
    /// `https` when a trusted proxy said so through `X-Forwarded-Proto`, else this listener's.
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
    /// The TCP peer (not `X-Forwarded-For`).
    pub peer: Option<SocketAddr>,
    /// The client address after applying `trusted_proxies` to `X-Forwarded-For`.
    pub client_ip: Option<std::net::IpAddr>,
    pub request_id: &'a str,
    /// True when the request announces a body (Content-Length > 0 or chunked).
    pub has_body: bool,
}

pub use crate::decision::AuthMethod;

/// Opaque data a gate wants back in the logging phase (audit fields, outcome labels).
pub type Note = Box<dyn Any + Send + Sync>;

/// Let the request through. `identity` is set on the upstream request after every inbound copy
/// of the configured identity headers has been stripped.
pub struct Pass {
    pub identity: Vec<(HeaderName, HeaderValue)>,
    pub auth_method: AuthMethod,
    pub note: Option<Note>,
    /// Further inbound headers to remove from this request before it goes upstream, exactly as
    /// named in the request's header map (e.g. an `X-HTTP-Method-Override` the signature did not
    /// cover, in whatever spelling it arrived).
    pub strip: Vec<HeaderName>,
}

/// Refuse the request; nothing of it reaches the upstream.
pub struct Reject {
    pub error: Error,
    /// Sent as `Accept-Signature` on a 401.
    pub accept_signature: Option<HeaderValue>,
    /// Sent as `Retry-After` (seconds) on a 429.
    pub retry_after: Option<u64>,
    pub note: Option<Note>,
}

impl Reject {
    pub fn new(error: Error) -> Self {
        Self {
            error,
            accept_signature: None,
            retry_after: None,
            note: None,
        }
    }
}

pub enum Verdict {
    Pass(Pass),
    Reject(Reject),
}

/// Answer to the head-only check.
pub enum HeadVerdict {
    Decided(Verdict),
    /// Read the whole body (bounded by `max_body_bytes`) and call [`Gate::check_body`] before
    /// anything is sent upstream. Return this only for requests that must have their body
    /// checked; every other body streams through unbuffered. The note is handed back to
    /// `check_body` (what the head check already established, e.g. the verified signature).
    NeedBody(Option<Note>),
}

/// The verification decision, called from Pingora's `request_filter` phase — before the
/// upstream is chosen, connected to, or sent a byte.
#[async_trait]
pub trait Gate: Send + Sync + 'static {
    /// Decide from the request head alone, or ask for the body.
    async fn check_head(&self, req: &RequestView<'_>) -> HeadVerdict;

    /// Decide with the complete body in hand (only called after `NeedBody`, with its note).
    /// An empty slice means the request announced no body.
    async fn check_body(&self, req: &RequestView<'_>, body: &[u8], state: Option<Note>) -> Verdict;
}

/// Passes everything as `legacy` without identity: the proxy with verification switched off.
pub struct PassthroughGate;

#[async_trait]
impl Gate for PassthroughGate {
    async fn check_head(&self, _req: &RequestView<'_>) -> HeadVerdict {
        HeadVerdict::Decided(Verdict::Pass(Pass {
            identity: Vec::new(),
            auth_method: AuthMethod::Legacy,
            note: None,
            strip: Vec::new(),
        }))
    }

    async fn check_body(
        &self,
        _req: &RequestView<'_>,
        _body: &[u8],
        _state: Option<Note>,
    ) -> Verdict {
        Verdict::Pass(Pass {
            identity: Vec::new(),
            auth_method: AuthMethod::Legacy,
            note: None,
            strip: Vec::new(),
        })
    }
}
