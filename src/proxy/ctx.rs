//! Per-request state carried across Pingora phases, the in-flight counter used for graceful
//! drain, and the mapping of Pingora errors to stable codes. No phase logic here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::ErrorType;

use super::gate::{Note, Pass};
use crate::error::ErrorCode;

/// Counts requests between header read and logging, for graceful drain.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
    pub(super) fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }
}

pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Per-request state carried across phases.
pub struct ReqCtx {
    pub(super) start: Instant,
    pub(super) request_id: String,
    pub(super) peer: Option<SocketAddr>,
    pub(super) client_ip: Option<IpAddr>,
    pub(super) pass: Option<Pass>,
    pub(super) note: Option<Note>,
    pub(super) code: Option<ErrorCode>,
    pub(super) detail: Option<String>,
    /// The verified body, handed to Pingora in `request_body_filter`.
    pub(super) body: Option<Bytes>,
    pub(super) upstream_sent: Option<Instant>,
    pub(super) upstream_latency: Option<Duration>,
    pub(super) hand_forwarded: bool,
    _inflight: InFlightGuard,
}

impl ReqCtx {
    pub(super) fn new(inflight: InFlightGuard) -> Self {
        Self {
            start: Instant::now(),
            request_id: String::new(),
            peer: None,
            client_ip: None,
            pass: None,
            note: None,
            code: None,
            detail: None,
            body: None,
            upstream_sent: None,
            upstream_latency: None,
            hand_forwarded: false,
            _inflight: inflight,
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }
    pub(crate) fn set_failure(&mut self, code: ErrorCode, detail: String) {
        self.code = Some(code);
        self.detail = Some(detail);
    }
    pub(crate) fn set_upstream_latency(&mut self, d: Option<Duration>) {
        self.upstream_latency = d;
    }
}

/// Upstream failure → stable code; `Err(status)` for failures that are not the upstream's.
pub(crate) fn classify(e: &pingora::Error) -> Result<ErrorCode, u16> {
    use pingora::ErrorSource;
    match (e.esource(), e.etype()) {
        (_, ErrorType::HTTPStatus(c)) => Err(*c),
        (ErrorSource::Upstream, ErrorType::ConnectTimedout)
        | (ErrorSource::Upstream, ErrorType::ReadTimedout)
        | (ErrorSource::Upstream, ErrorType::WriteTimedout) => Ok(ErrorCode::UpstreamTimeout),
        (ErrorSource::Upstream, _) => Ok(ErrorCode::UpstreamUnavailable),
        (
            ErrorSource::Downstream,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed,
        ) => Err(0),
        (ErrorSource::Downstream, _) => Err(400),
        _ => Err(500),
    }
}
