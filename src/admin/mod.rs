//! The admin listener: `/healthz`, `/readyz` (the listener flag plus the start-up checks of
//! `readiness`), `/metrics` (Prometheus text of a registry we are given) and `/status` (JSON from a
//! callback we are given), served by a separate Pingora service on its own port. It computes no
//! metrics (the collectors of `collect` read other modules' state); the `/status` document is
//! built by `status`.

pub mod collect;
pub mod protocols;
pub mod readiness;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};

/// Produces the `/status` document.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the admin endpoints read. Cheap to clone; the flag and registry are shared.
#[derive(Clone)]
pub struct AdminState {
    pub ready: Arc<AtomicBool>,
    pub registry: prometheus::Registry,
    pub status: StatusFn,
    /// Start-up checks `/readyz` also waits for (none: the listener flag alone).
    pub readiness: Option<Arc<readiness::Readiness>>,
}

pub struct AdminApp {
    state: AdminState,
}

impl AdminApp {
    pub fn new(state: AdminState) -> Self {
        Self { state }
    }

    /// Route one request; separate from I/O so it can be unit-tested.
    pub fn route(&self, method: &Method, path: &str) -> Response<Vec<u8>> {
        let path = path.split('?').next().unwrap_or(path);
        if method != Method::GET && method != Method::HEAD {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                err("METHOD_NOT_ALLOWED", "Use GET"),
            );
        }
        match path {
            "/healthz" => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
            "/readyz" => {
                let listening = self.state.ready.load(Ordering::Acquire);
                match &self.state.readiness {
                    Some(r) => {
                        let report = r.report(listening);
                        let status = if report.ready {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        json(status, report.body)
                    }
                    None if listening => json(StatusCode::OK, serde_json::json!({"ready": true})),
                    None => json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        serde_json::json!({"ready": false}),
                    ),
                }
            }
            "/metrics" => {
                let mut buf = Vec::new();
                let enc = TextEncoder::new();
                match enc.encode(&self.state.registry.gather(), &mut buf) {
                    Ok(()) => respond(StatusCode::OK, enc.format_type(), buf),
                    Err(e) => json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        err("METRICS_ERROR", &e.to_string()),
                    ),
                }
            }
            "/status" => json(StatusCode::OK, (self.state.status)()),
            _ => json(
                StatusCode::NOT_FOUND,
                err("NOT_FOUND", "No such admin endpoint"),
            ),
        }
    }
}

fn err(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", v.to_string().into_bytes())
}

fn respond(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = String::from_utf8_lossy(req.raw_path()).into_owned();
        let method = req.method.clone();
        let _ = session.drain_request_body().await;
        self.route(&method, &path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn app() -> (AdminApp, Arc<AtomicBool>) {
        let ready = Arc::new(AtomicBool::new(false));
        let registry = prometheus::Registry::new();
        let c = prometheus::IntCounter::new("datafold_test_total", "t").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc();
        let state = AdminState {
            ready: ready.clone(),
            registry,
            status: Arc::new(|| serde_json::json!({"mode": "hybrid"})),
            readiness: None,
        };
        (AdminApp::new(state), ready)
    }

    #[test]
    fn endpoints() {
        let (a, ready) = app();
        assert_eq!(a.route(&Method::GET, "/healthz").status(), 200);
        assert_eq!(a.route(&Method::GET, "/readyz").status(), 503);
        ready.store(true, Ordering::Release);
        assert_eq!(a.route(&Method::GET, "/readyz").status(), 200);
        let m = a.route(&Method::GET, "/metrics");
        assert!(String::from_utf8_lossy(m.body()).contains("datafold_test_total 1"));
        let s = a.route(&Method::GET, "/status?x=1");
        assert_eq!(s.body(), br#"{"mode":"hybrid"}"#);
        let n = a.route(&Method::GET, "/nope");
        assert_eq!(n.status(), 404);
        assert!(String::from_utf8_lossy(n.body()).contains("NOT_FOUND"));
    }
}
