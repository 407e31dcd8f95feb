//! The per-request record handed to an observer once, when the request is finished, so metrics
//! and the audit line are produced in one place. This module formats nothing itself.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, Method};

use super::gate::AuthMethod;
use crate::error::ErrorCode;

/// Everything known about a finished request. Borrowed: an observer copies what it keeps.
pub struct RequestRecord<'a, N> {
    pub request_id: &'a str,
    pub method: &'a Method,
    pub target: &'a [u8],
    pub headers: &'a HeaderMap,
    pub peer: Option<SocketAddr>,
    pub client_ip: Option<IpAddr>,
    /// Status sent downstream; 0 when no response could be written (client gone).
    pub status: u16,
    /// Stable code when the proxy itself answered with an error.
    pub code: Option<ErrorCode>,
    /// Set when the gate passed the request.
    pub auth_method: Option<AuthMethod>,
    /// Detail of a rejection or upstream failure (never sent to the client).
    pub detail: Option<&'a str>,
    pub latency: Duration,
    /// Upstream request header written → upstream response header received.
    pub upstream_latency: Option<Duration>,
    /// Bytes of request body read whole for verification (0 when streamed).
    pub buffered_body_bytes: usize,
    /// What the gate attached to its verdict; `None` when the request never reached the gate.
    pub note: Option<&'a N>,
}

/// A client connection ended before any request reached the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// Closed at accept: `limits.max_connections` were open.
    OverLimit,
    /// The request head did not arrive whole within `limits.header_timeout_seconds`.
    HeaderTimeout,
    /// The request head could not be parsed (answered 400).
    BadRequest,
    /// The TLS handshake failed or did not finish within `limits.header_timeout_seconds`.
    TlsHandshake,
    /// An HTTP/2 connection closed with GOAWAY `ENHANCE_YOUR_CALM`: too many streams reset
    /// before they were served, refused, or malformed (the "rapid reset" class).
    H2Abuse,
}

impl ConnEvent {
    pub const ALL: [ConnEvent; 5] = [
        Self::OverLimit,
        Self::HeaderTimeout,
        Self::BadRequest,
        Self::TlsHandshake,
        Self::H2Abuse,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OverLimit => "max_connections",
            Self::HeaderTimeout => "header_timeout",
            Self::BadRequest => "bad_request",
            Self::TlsHandshake => "tls_handshake",
            Self::H2Abuse => "h2_abuse",
        }
    }
}

/// Receives one record per request, and the connections refused before a request.
pub trait RequestObserver<N>: Send + Sync + 'static {
    fn on_request(&self, record: &RequestRecord<'_, N>);

    fn on_connection(&self, _event: ConnEvent) {}
}

/// Discards records.
pub struct NoopObserver;

impl<N> RequestObserver<N> for NoopObserver {
    fn on_request(&self, _record: &RequestRecord<'_, N>) {}
}
