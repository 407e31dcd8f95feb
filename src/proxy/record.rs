//! The per-request record handed to an observer once, in Pingora's `logging` phase, so metrics
//! and the audit line are produced in one place. This module formats nothing itself.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, Method};

use super::gate::{AuthMethod, Note};
use crate::error::ErrorCode;

/// Everything known about a finished request. Borrowed: an observer copies what it keeps.
pub struct RequestRecord<'a> {
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
    /// Bytes of request body buffered for verification (0 when streamed).
    pub buffered_body_bytes: usize,
    /// The buffered body was sent by `forward.rs` rather than Pingora's proxy loop.
    pub hand_forwarded: bool,
    /// Whatever the gate attached to its verdict.
    pub note: Option<&'a Note>,
}

/// Receives one record per request.
pub trait RequestObserver: Send + Sync + 'static {
    fn on_request(&self, record: &RequestRecord<'_>);
}

/// Discards records.
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn on_request(&self, _record: &RequestRecord<'_>) {}
}
