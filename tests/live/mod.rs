//! Helpers for driving a real `sigproxy run` process: the kubelet's ConfigMap update sequence,
//! a child process on ephemeral 127.0.0.1 ports with its admin `/status`, and a signer.
#![allow(dead_code)]

pub mod kubelet;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use sigproxy::signature::sign::{SignSpec, sign};
use sigproxy::signature::{Component, RequestView};

use crate::common::client::{Body, Conn, Response, request};
use crate::common::gateway::free_port;

/// A fixed test key (seed 7,7,…): its public half goes into the policies below.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn public_b64() -> String {
    sigproxy::keys::public_base64(&key().verifying_key())
}

/// The header lines of a signature over `@method @authority @path` with a fresh nonce.
pub fn sign_lines(method: &str, path: &str, key_id: &str) -> Vec<String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!(
        "n{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let fields: Vec<(String, Vec<u8>)> = vec![("host".into(), b"app.test".to_vec())];
    let view = RequestView {
        method,
        target: path,
        scheme: "http",
        authority: Some("app.test"),
        fields: &fields,
    };
    let components: Vec<Component> = ["@method", "@authority", "@path"]
        .iter()
        .map(|c| Component::parse_spec(c).unwrap())
        .collect();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let spec = SignSpec {
        label: "sig1",
        components: &components,
        key_id,
        created,
        expires: None,
        nonce: Some(&nonce),
        tag: None,
        include_alg: true,
    };
    let s = sign(&view, &spec, &key()).unwrap();
    vec![
        format!("Signature-Input: {}", s.signature_input),
        format!("Signature: {}", s.signature),
    ]
}

/// One request, signed with `key_id` when given.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key_id: Option<&str>,
    extra: &[&str],
) -> Response {
    let signed = key_id
        .map(|k| sign_lines(method, path, k))
        .unwrap_or_default();
    let mut headers: Vec<&str> = signed.iter().map(String::as_str).collect();
    headers.extend_from_slice(extra);
    request(addr, method, path, &headers, Body::None)
}

/// The top of a policy on fresh ports; the caller appends the rest.
pub fn ports() -> (SocketAddr, SocketAddr) {
    (
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
    )
}

pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl Proxy {
    /// Starts `sigproxy run --config policy` and waits (≤ 15 s) for `/readyz`.
    pub fn start(policy: &Path, addr: SocketAddr, admin: SocketAddr, log: &Path) -> Self {
        let out = std::fs::File::create(log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
        cmd.arg("run")
            .arg("--config")
            .arg(policy)
            .env_remove("SIGPROXY_CONFIG")
            .env("SIGPROXY_LOG", "info,pingora=warn")
            // Tests read the log right after a request: no 200 ms line buffering.
            .env("SIGPROXY_LOG_FLUSH_MS", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        for name in sigproxy::policy::OVERRIDE_NAMES {
            cmd.env_remove(name);
        }
        let child = cmd.spawn().unwrap();
        let mut p = Proxy {
            child,
            addr,
            admin,
            log: log.to_path_buf(),
        };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("sigproxy exited early ({st}): {}", p.log_text());
            }
            if std::net::TcpStream::connect(admin).is_ok()
                && request(admin, "GET", "/readyz", &[], Body::None).status == 200
            {
                return p;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "not ready: {}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> serde_json::Value {
        let r = request(self.admin, "GET", "/status", &[], Body::None);
        assert_eq!(r.status, 200);
        r.json()
    }

    pub fn metrics(&self) -> String {
        String::from_utf8(request(self.admin, "GET", "/metrics", &[], Body::None).body).unwrap()
    }

    /// Polls `/status` every 20 ms until `want` holds; panics after `max`. Returns how long it took.
    pub fn wait_status(
        &self,
        max: Duration,
        what: &str,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        loop {
            let s = self.status();
            if want(&s) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < max,
                "{what}: not seen within {max:?}; last /status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn conn(&self) -> Conn {
        Conn::open(self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
