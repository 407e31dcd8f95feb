//! The logging phase: one place turns a finished request into metrics and, for every decision, one
//! JSON audit line on stdout (reference §7.1), encoded by `line` and buffered by `crate::logsink`.
//! Never a key, never a raw credential, never a query string (it may carry tokens).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

mod line;
use line::{JsonLine, key};

use crate::authn::AuditNote;
use crate::decision::Event;
use crate::error::ErrorCode;
use crate::logsink::{self, LogSink};
use crate::metrics::{AttemptStatus, Metrics, StoreErrorResult, UNKNOWN_CLIENT};
use crate::proxy::{ConnEvent, RequestObserver, RequestRecord};

pub struct Observer {
    metrics: Arc<Metrics>,
    sink: LogSink,
}

impl Observer {
    /// Audit lines to the process's stdout sink.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self::with_sink(metrics, logsink::global().clone())
    }

    /// Audit lines to `sink` (benches and tests).
    pub fn with_sink(metrics: Arc<Metrics>, sink: LogSink) -> Self {
        Self { metrics, sink }
    }
}

impl RequestObserver<AuditNote> for Observer {
    fn on_connection(&self, event: ConnEvent) {
        self.metrics
            .connections_refused
            .with_label_values(&[event.as_str()])
            .inc();
    }

    fn on_request(&self, r: &RequestRecord<'_, AuditNote>) {
        let m = &self.metrics;
        m.request(r.code);
        if let Some(d) = r.upstream_latency {
            m.observe_upstream(d);
        }
        let Some(note) = r.note else {
            return;
        };
        let client = note.client_id.as_deref().unwrap_or(UNKNOWN_CLIENT);
        let status = match note.event {
            Event::SignatureAuthSuccess => AttemptStatus::Success,
            Event::SignatureAuthFailure if note.dry_run_rejection => AttemptStatus::DryRunFailure,
            Event::SignatureAuthFailure => AttemptStatus::Failure,
            Event::LegacyPass | Event::Exempt => AttemptStatus::Skipped,
        };
        m.auth_attempt(note.method, status, client);
        m.observe_auth(note.auth_latency);
        if note.event == Event::SignatureAuthFailure {
            m.invalid_signature(note.code);
            if note.code == Some(ErrorCode::NonceReplayed) {
                m.replay_attempt(client);
            }
        }
        if note.store_error_allowed {
            m.replay_store_error(StoreErrorResult::Allowed);
        } else if note.code == Some(ErrorCode::ReplayStoreUnavailable) {
            m.replay_store_error(StoreErrorResult::Rejected);
        }
        if note.event != Event::Exempt {
            let route = if note.route.is_empty() {
                "default"
            } else {
                &note.route
            };
            m.migration_sample(
                route,
                note.event == Event::SignatureAuthSuccess,
                Instant::now(),
            );
        }
        if let Some(h) = &note.canary_halt {
            m.canary_halts.inc();
            m.canary_percent.set(0);
            tracing::warn!(
                rejected = h.rejected,
                total = h.total,
                window_seconds = h.window_seconds,
                percent_before = h.percent_before,
                "canary auto-halt: too many canary callers rejected; effective canary is 0 until the policy changes"
            );
        }
        audit(&self.sink, r, note);
    }
}

fn audit(sink: &LogSink, r: &RequestRecord<'_, AuditNote>, note: &AuditNote) {
    // Honour SIGPROXY_LOG as before (e.g. `audit=off`); the check is a cached callsite lookup.
    if !tracing::enabled!(target: "audit", tracing::Level::INFO) {
        return;
    }
    let path = r
        .target
        .iter()
        .position(|&b| b == b'?')
        .map_or(r.target, |q| &r.target[..q]);
    let path = String::from_utf8_lossy(path);
    let mut l = JsonLine::new_in(take_line_buffer(), SystemTime::now(), "INFO");
    l.str(key!("event_type"), note.event.as_str());
    l.str(key!("request_id"), r.request_id);
    l.opt_str(key!("client_id"), note.client_id.as_deref());
    l.opt_str(key!("key_id"), note.key_id.as_deref());
    if let Some(ip) = r.client_ip.or(r.peer.map(|p| p.ip())) {
        l.ip(key!("source_ip"), ip);
    }
    if let Some(ua) = r.headers.get(http::header::USER_AGENT) {
        l.str(key!("user_agent"), &String::from_utf8_lossy(ua.as_bytes()));
    }
    l.str(key!("method"), r.method.as_str());
    l.str(key!("path"), &path);
    l.str(key!("mode"), note.mode.as_str());
    l.bool(key!("dry_run"), note.dry_run);
    l.str(key!("route"), &note.route);
    l.opt_str(key!("canary"), note.canary.map(|c| c.as_str()));
    l.str(key!("code"), note.code.map_or("OK", ErrorCode::as_str));
    l.uint(key!("status"), u64::from(r.status));
    l.opt_str(key!("detail"), note.detail.as_deref());
    l.millis(key!("latency_ms"), r.latency);
    let line = l.finish("audit");
    sink.write_line(line.as_bytes());
    give_back_line_buffer(line);
}

thread_local! {
    /// This thread's audit line buffer, reused from one request to the next.
    static LINE: Cell<String> = const { Cell::new(String::new()) };
}

/// A buffer kept after an unusually long line (a long user agent) is dropped, not kept.
const KEEP_LINE_BUFFER: usize = 4096;

fn take_line_buffer() -> String {
    LINE.try_with(Cell::take).unwrap_or_default()
}

fn give_back_line_buffer(buf: String) {
    if buf.capacity() <= KEEP_LINE_BUFFER {
        let _ = LINE.try_with(|c| c.set(buf));
    }
}
