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
use crate::common::net::free_port;

/// A fixed test key (seed 7,7,…): its public half goes into the policies below.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

pub fn public_b64() -> String {
    sigproxy::keys::public_base64(&key().verifying_key())
}

/// A policy on these ports with key `k1` (client `web`) and `rest` appended.
pub fn policy(addr: SocketAddr, admin: SocketAddr, up: SocketAddr, rest: &str) -> String {
    format!(
        "listen: \"{addr}\"\nadmin_listen: \"{admin}\"\nupstream: \"{up}\"\nthreads: 2\n\
         shutdown_grace_seconds: 1\nsignature: {{body_digest: optional}}\n\
         keys:\n  - {{key_id: k1, client_id: web, public_key: \"{}\"}}\n{rest}",
        public_b64()
    )
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

/// How to sign a request in `sign_with`: every knob a policy key can turn.
#[derive(Clone, Debug)]
pub struct Sig<'a> {
    pub key_id: &'a str,
    /// Seed of the Ed25519 key (`key()` is seed 7).
    pub seed: u8,
    pub label: &'a str,
    pub tag: Option<&'a str>,
    /// Seconds added to now for `created`.
    pub created_offset: i64,
    pub nonce: bool,
    /// Covered components; `content-digest` is added when there is a body.
    pub components: &'a [&'a str],
    /// The `@authority` and `@scheme` signed (the client sends `Host: app.test` over http).
    pub authority: &'a str,
    pub scheme: &'a str,
}

impl Default for Sig<'_> {
    fn default() -> Self {
        Sig {
            key_id: "k1",
            seed: 7,
            label: "sig1",
            tag: None,
            created_offset: 0,
            nonce: true,
            components: &["@method", "@authority", "@path"],
            authority: "app.test",
            scheme: "http",
        }
    }
}

/// The header lines a signer sends for `method path` with `body` (a `Content-Digest` over it
/// first, covered), and any `extra` fields the components name.
pub fn sign_with(
    method: &str,
    path: &str,
    sig: &Sig<'_>,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!(
        "w{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut lines = Vec::new();
    let mut fields: Vec<(String, Vec<u8>)> = vec![("host".into(), b"app.test".to_vec())];
    for (k, v) in extra {
        fields.push((k.to_ascii_lowercase(), v.as_bytes().to_vec()));
    }
    let mut names: Vec<&str> = sig.components.to_vec();
    if let Some(b) = body {
        let d = sigproxy::signature::digest::content_digest_header(
            sigproxy::signature::digest::DigestAlg::Sha256,
            b,
        );
        fields.push(("content-digest".into(), d.clone().into_bytes()));
        lines.push(format!("Content-Digest: {d}"));
        names.push("content-digest");
    }
    let view = RequestView {
        method,
        target: path,
        scheme: sig.scheme,
        authority: Some(sig.authority),
        fields: &fields,
    };
    let components: Vec<Component> = names
        .iter()
        .map(|c| Component::parse_spec(c).unwrap())
        .collect();
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + sig.created_offset;
    let spec = SignSpec {
        label: sig.label,
        components: &components,
        key_id: sig.key_id,
        created,
        expires: None,
        nonce: sig.nonce.then_some(nonce.as_str()),
        tag: sig.tag,
        include_alg: true,
    };
    let s = sign(&view, &spec, &SigningKey::from_bytes(&[sig.seed; 32])).unwrap();
    lines.push(format!("Signature-Input: {}", s.signature_input));
    lines.push(format!("Signature: {}", s.signature));
    lines
}

/// The public key (base64) of the signing key with `seed`.
pub fn public_b64_of(seed: u8) -> String {
    sigproxy::keys::public_base64(&SigningKey::from_bytes(&[seed; 32]).verifying_key())
}

/// Replace `path` as an editor or a config tool does: write a sibling temp file, rename it over.
pub fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
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
        Self::start_with_env(policy, addr, admin, log, &[])
    }

    /// `start`, with override variables (or others) in the proxy's environment.
    pub fn start_with_env(
        policy: &Path,
        addr: SocketAddr,
        admin: SocketAddr,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Self {
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
        cmd.envs(env.iter().copied());
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

    /// Waits (≤ `max`) until the policy whose bytes are `text` is in force, with no reload
    /// error; the panic shows the last `/status` (and so a refused reload's error).
    pub fn wait_policy(&self, text: &str, max: Duration) {
        let sha = sha256_hex(text);
        let t0 = Instant::now();
        loop {
            let s = self.status();
            if s["policy"]["sha256"] == sha.as_str() && s["last_reload_error"].is_null() {
                return;
            }
            assert!(
                t0.elapsed() < max,
                "policy {sha} not in force within {max:?}; last /status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of one metric series (`name{labels}` exactly as exposed), or 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
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
