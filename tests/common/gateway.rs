//! The gateway in-process on an ephemeral port, with the test gate: rejects on `x-test-reject`,
//! asks for the body when `x-test-signed` is present and rejects a body containing "tamper".

use std::net::{SocketAddr, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use http::{HeaderMap, HeaderValue};
use sigproxy::admin::AdminState;
use sigproxy::error::{Error, ErrorCode};
use sigproxy::policy::PolicyFile;
use sigproxy::proxy::{
    AuthMethod, Gate, GatewayHandle, HeadVerdict, Hop, Identity, Pass, ProxySettings, Reject,
    RequestObserver, RequestRecord, RequestView, Upstream, Verdict,
};
use sigproxy::signature::{self, Component, KeyResolver, Requirement, ResolvedKey, VerifyOptions};

/// The harness's one port helper (`common::net`), also reachable here where gateway tests look.
pub use super::net::free_port;

/// The gate's settings are fixed per gateway (a test that wants other ones starts another).
pub struct TestGate {
    hop: Arc<Hop>,
}

/// `test-client` / `test-key`: the identity of a real verification, made once (the proxy sets
/// identity headers only from a `Verified`, which only the verifier makes).
fn identity() -> Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let verifying = key.verifying_key();
        struct One(ed25519_dalek::VerifyingKey);
        impl KeyResolver for One {
            fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
                (key_id == "test-key").then_some(ResolvedKey {
                    key: &self.0,
                    client_id: "test-client",
                    revoked: false,
                })
            }
        }
        let components = vec![Component::parse_spec("@method").unwrap()];
        let mut fields = HeaderMap::new();
        fn view(fields: &HeaderMap) -> signature::RequestView<'_> {
            signature::RequestView {
                method: "GET",
                target: "/",
                scheme: "http",
                authority: Some("test"),
                fields,
            }
        }
        let spec = signature::sign::SignSpec {
            label: "sig1",
            components: &components,
            key_id: "test-key",
            created: 1_700_000_000,
            expires: None,
            nonce: None,
            tag: None,
            include_alg: true,
        };
        let signed = signature::sign::sign(&view(&fields), &spec, &key).unwrap();
        fields.insert("signature-input", signed.signature_input.parse().unwrap());
        fields.insert("signature", signed.signature.parse().unwrap());
        let opts = VerifyOptions {
            nonce: Requirement::Off,
            body_digest: Requirement::Off,
            required_components: components.clone(),
            ..VerifyOptions::default()
        };
        let v = signature::verify(&view(&fields), false, &opts, &One(verifying), 1_700_000_001)
            .unwrap();
        Identity::from_verified(&v).unwrap()
    })
    .clone()
}

fn reject(code: ErrorCode) -> Verdict<()> {
    let mut r = Reject::new(Error::new(code, "test gate"), ());
    r.accept_signature = Some(HeaderValue::from_static(
        "sig1=(\"@method\" \"@authority\" \"@path\");alg=\"ed25519\"",
    ));
    Verdict::Reject(r)
}

#[async_trait]
impl Gate for TestGate {
    type Snapshot = Arc<Hop>;
    type Pending = ();
    type Note = ();

    fn snapshot(&self) -> Arc<Hop> {
        self.hop.clone()
    }

    fn hop(s: &Arc<Hop>) -> &Hop {
        s
    }

    async fn check_head(&self, _: &Arc<Hop>, req: &RequestView<'_>) -> HeadVerdict<(), ()> {
        if req.headers.contains_key("x-test-reject") {
            return HeadVerdict::Decided(reject(ErrorCode::SignatureInvalid));
        }
        if req.headers.contains_key("x-test-signed") {
            return HeadVerdict::NeedBody(());
        }
        HeadVerdict::Decided(Verdict::Pass(Pass::anonymous(AuthMethod::Legacy, ())))
    }

    async fn check_body(
        &self,
        _: &Arc<Hop>,
        _: &RequestView<'_>,
        body: &[u8],
        _: (),
    ) -> Verdict<()> {
        if body.windows(6).any(|w| w == b"tamper") {
            return reject(ErrorCode::DigestMismatch);
        }
        Verdict::Pass(Pass {
            identity: Some(identity()),
            auth_method: AuthMethod::Signature,
            strip: Vec::new(),
            note: (),
        })
    }

    fn body_refused(&self, _: (), _: &Error) {}
}

/// What the logging phase saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub request_id: String,
    pub status: u16,
    pub code: Option<ErrorCode>,
    pub upstream_latency: Option<Duration>,
    pub buffered: usize,
}

#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Seen>>);

impl RequestObserver<()> for Recorder {
    fn on_request(&self, r: &RequestRecord<'_, ()>) {
        self.0.lock().unwrap().push(Seen {
            request_id: r.request_id.to_string(),
            status: r.status,
            code: r.code,
            upstream_latency: r.upstream_latency,
            buffered: r.buffered_body_bytes,
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

/// The in-process gateway's start settings and the policy-derived settings its gate serves.
#[derive(Clone)]
pub struct Settings {
    pub proxy: ProxySettings,
    pub policy: PolicyFile,
}

impl Deref for Settings {
    type Target = ProxySettings;
    fn deref(&self) -> &ProxySettings {
        &self.proxy
    }
}

impl DerefMut for Settings {
    fn deref_mut(&mut self) -> &mut ProxySettings {
        &mut self.proxy
    }
}

pub fn settings(upstream: SocketAddr) -> Settings {
    let mut proxy = ProxySettings::new(format!("127.0.0.1:{}", free_port()));
    proxy.threads = 2;
    proxy.shutdown_grace_seconds = 0;
    let mut policy = PolicyFile {
        upstream: upstream.to_string().parse::<Upstream>().unwrap(),
        drain_delay_seconds: 0,
        shutdown_grace_seconds: 0,
        ..PolicyFile::default()
    };
    policy.identity.strip_inbound = vec![http::HeaderName::from_static("x-internal-role")];
    Settings { proxy, policy }
}

pub fn start(settings: Settings) -> Running {
    start_with_admin(settings, None)
}

pub fn start_with_admin(settings: Settings, admin: Option<AdminState>) -> Running {
    let addr: SocketAddr = settings.listen.parse().unwrap();
    let log = Arc::new(Recorder::default());
    let hop = Arc::new(Hop::from_policy(&settings.policy).expect("hop"));
    let gate = Arc::new(TestGate { hop });
    let (gw, handle) =
        sigproxy::proxy::build(settings.proxy, gate, log.clone(), admin).expect("build gateway");
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
