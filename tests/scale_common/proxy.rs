//! The built `sigproxy run` as a child process on ephemeral 127.0.0.1 ports (its policy written to
//! a temp dir, its stdout/stderr to files there), waited for on `/readyz`, killed on drop; and
//! requests signed with the library's own signer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use sigproxy::signature::sign::{SignSpec, sign};
use sigproxy::signature::{Component, RequestView};

use super::client::{self, Body, Response};
use super::net::free_port;

/// The authority every test request is signed for (`signature.public_authority`), so one signed
/// request is valid at every sigproxy instance whatever its port.
pub const AUTHORITY: &str = "api.test";

pub struct Sigproxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sigproxy {
    /// `policy_tail` is YAML appended after listen/admin/upstream/threads/public_authority.
    /// Returns once `/readyz` answers 200.
    pub fn start(upstream: SocketAddr, policy_tail: &str) -> Self {
        Self::launch(upstream, policy_tail, true)
    }

    /// Like `start`, but returns once the admin port answers `/healthz`, ready or not (for the
    /// readiness tests).
    pub fn spawn(upstream: SocketAddr, policy_tail: &str) -> Self {
        Self::launch(upstream, policy_tail, false)
    }

    fn launch(upstream: SocketAddr, policy_tail: &str, wait_ready: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let policy = format!(
            "listen: \"127.0.0.1:{port}\"\nadmin_listen: \"127.0.0.1:{admin_port}\"\nupstream: \"{upstream}\"\nthreads: 2\nshutdown_grace_seconds: 1\n{policy_tail}"
        );
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, policy).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sigproxy"))
            .args(["run", "--config"])
            .arg(&path)
            .env("SIGPROXY_LOG", "info,pingora=warn")
            // Tests read the log right after a request: no 200 ms line buffering.
            .env("SIGPROXY_LOG_FLUSH_MS", "0")
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap();
        let mut p = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("sigproxy exited with {status}: {}", p.logs());
            }
            if wait_ready && std::net::TcpStream::connect(p.addr).is_ok() && p.ready() {
                return p;
            }
            if !wait_ready && p.answers("/healthz") {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "sigproxy not ready in 30 s: {}",
                p.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        // The tail only: enough to see why, without flooding the test output.
        let read = |n: &str| {
            let s = std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
            let cut = s.len().saturating_sub(4000);
            s.get(cut..).unwrap_or_default().to_owned()
        };
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("stdout.log")
    }

    /// `/readyz` answered 200; false (not a panic) while the listener is not up yet.
    fn ready(&self) -> bool {
        self.answers("/readyz")
    }

    /// `path` on the admin port answered 200; false while it is not up yet.
    fn answers(&self, path: &str) -> bool {
        if std::net::TcpStream::connect(self.admin).is_err() {
            return false;
        }
        let mut conn = client::Conn::open(self.admin);
        conn.send("GET", path, &[], Body::None);
        conn.read().is_some_and(|r| r.status == 200)
    }

    pub fn admin_get(&self, path: &str) -> Response {
        client::request(self.admin, "GET", path, &[], Body::None)
    }

    pub fn status(&self) -> serde_json::Value {
        self.admin_get("/status").json()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A signed GET (one fresh connection).
    pub fn get(&self, path: &str, signed: &[String]) -> Response {
        let mut headers: Vec<&str> = Vec::new();
        headers.extend(signed.iter().map(String::as_str));
        client::request(self.addr, "GET", path, &headers, Body::None)
    }
}

impl Drop for Sigproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `Signature-Input` and `Signature` header lines for `GET path` at `AUTHORITY`.
pub fn sign_get(path: &str, key: &SigningKey, key_id: &str, nonce: &str) -> Vec<String> {
    let fields: Vec<(String, Vec<u8>)> = vec![("Host".into(), AUTHORITY.as_bytes().to_vec())];
    let view = RequestView {
        method: "GET",
        target: path,
        scheme: "http",
        authority: Some(AUTHORITY),
        fields: &fields,
    };
    let components: Vec<Component> = ["\"@method\"", "\"@authority\"", "\"@path\""]
        .iter()
        .map(|c| Component::parse_spec(c).unwrap())
        .collect();
    let spec = SignSpec {
        label: "sig1",
        components: &components,
        key_id,
        created: now(),
        expires: None,
        nonce: Some(nonce),
        tag: None,
        include_alg: true,
    };
    let s = sign(&view, &spec, key).unwrap();
    vec![
        format!("Signature-Input: {}", s.signature_input),
        format!("Signature: {}", s.signature),
    ]
}

/// The error code (reference §4.5) of a rejection, or "" for a non-JSON answer.
pub fn code(r: &Response) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_owned()
}
