//! The gateway in-process on an ephemeral port, with the test gate: rejects on `x-test-reject`,
//! asks for the body when `x-test-signed` is present and rejects a body containing "tamper".

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use sigproxy::admin::AdminState;
use sigproxy::error::{Error, ErrorCode};
use sigproxy::proxy::{
    AuthMethod, Gate, GatewayHandle, HeadVerdict, Pass, ProxySettings, Reject, RequestObserver,
    RequestRecord, RequestView, Upstream, Verdict,
};

pub struct TestGate;

fn identity() -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (
            HeaderName::from_static("x-datafold-client-id"),
            HeaderValue::from_static("test-client"),
        ),
        (
            HeaderName::from_static("x-datafold-key-id"),
            HeaderValue::from_static("test-key"),
        ),
    ]
}

fn reject(code: ErrorCode) -> Verdict {
    let mut r = Reject::new(Error::new(code, "test gate"));
    r.accept_signature = Some(HeaderValue::from_static(
        "sig1=(\"@method\" \"@authority\" \"@path\");alg=\"ed25519\"",
    ));
    Verdict::Reject(r)
}

#[async_trait]
impl Gate for TestGate {
    async fn check_head(&self, req: &RequestView<'_>) -> HeadVerdict {
        if req.headers.contains_key("x-test-reject") {
            return HeadVerdict::Decided(reject(ErrorCode::SignatureInvalid));
        }
        if req.headers.contains_key("x-test-signed") {
            return HeadVerdict::NeedBody(None);
        }
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
        body: &[u8],
        _state: Option<sigproxy::proxy::gate::Note>,
    ) -> Verdict {
        if body.windows(6).any(|w| w == b"tamper") {
            return reject(ErrorCode::DigestMismatch);
        }
        Verdict::Pass(Pass {
            identity: identity(),
            auth_method: AuthMethod::Signature,
            note: None,
            strip: Vec::new(),
        })
    }
}

/// What the logging phase saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub request_id: String,
    pub status: u16,
    pub code: Option<ErrorCode>,
    pub upstream_latency: Option<Duration>,
    pub buffered: usize,
    pub hand_forwarded: bool,
}

#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Seen>>);

impl RequestObserver for Recorder {
    fn on_request(&self, r: &RequestRecord<'_>) {
        self.0.lock().unwrap().push(Seen {
            request_id: r.request_id.to_string(),
            status: r.status,
            code: r.code,
            upstream_latency: r.upstream_latency,
            buffered: r.buffered_body_bytes,
            hand_forwarded: r.hand_forwarded,
        });
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub handle: GatewayHandle,
    pub log: Arc<Recorder>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.stop_now();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Running {
    /// Wait for the server thread to end by itself; how long it took, or `None` past `max`.
    pub fn wait_exit(&mut self, max: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        let t = self.thread.take()?;
        while !t.is_finished() {
            if t0.elapsed() > max {
                self.thread = Some(t);
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = t.join();
        Some(t0.elapsed())
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn settings(upstream: SocketAddr) -> ProxySettings {
    let mut s = ProxySettings::new(
        format!("127.0.0.1:{}", free_port()),
        upstream.to_string().parse::<Upstream>().unwrap(),
    );
    s.threads = 2;
    s.shutdown_grace_seconds = 0;
    s.strip_test_defaults();
    s
}

trait TestDefaults {
    fn strip_test_defaults(&mut self);
}

impl TestDefaults for ProxySettings {
    fn strip_test_defaults(&mut self) {
        self.identity.strip_inbound = vec!["X-Internal-Role".into()];
    }
}

pub fn start(settings: ProxySettings) -> Running {
    start_with_admin(settings, None)
}

pub fn start_with_admin(settings: ProxySettings, admin: Option<AdminState>) -> Running {
    let addr: SocketAddr = settings.listen.parse().unwrap();
    let log = Arc::new(Recorder::default());
    let (gw, handle) = sigproxy::proxy::build(settings, Arc::new(TestGate), log.clone(), admin)
        .expect("build gateway");
    let thread = std::thread::spawn(move || gw.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Running {
        addr,
        handle,
        log,
        thread: Some(thread),
    }
}
