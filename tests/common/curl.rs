//! Real clients for the protocol tests: Debian's `curl` (HTTP/2 by ALPN or prior knowledge,
//! HTTP/1.1 over TLS) sending a request that was signed as raw HTTP/1.1 bytes, and
//! `openssl s_client` for handshakes. Bounded in time (`--max-time`, `timeout`).

use std::path::Path;
use std::process::{Command, Stdio};

/// What curl got back.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    /// `1.1` or `2`.
    pub version: String,
    pub body: Vec<u8>,
    /// curl's exit code (0: a response was read).
    pub exit: i32,
    pub stderr: String,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// The parts of a raw HTTP/1.1 request: method, target, header lines, body.
pub fn parse_raw(raw: &[u8]) -> (String, String, Vec<(String, String)>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("raw request without a head end");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let body = raw[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_owned();
    let target = first.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    (method, target, headers, body)
}

/// Send a request signed as raw HTTP/1.1 bytes to `base` (`https://127.0.0.1:PORT`) with curl
/// and `args` (`--http2`, `--http2-prior-knowledge`, `--cacert F` ...). Host becomes the
/// `:authority` over HTTP/2; framing headers are curl's own.
pub fn send_raw(raw: &[u8], base: &str, args: &[&str]) -> Got {
    let (method, target, headers, body) = parse_raw(raw);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-X", &method, "-o"])
        .arg(&out)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args);
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("connection") {
            continue;
        }
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if !body.is_empty() {
        let f = tmp.path().join("req-body");
        std::fs::write(&f, &body).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    cmd.arg(format!("{base}{target}"));
    run(cmd, &out)
}

/// A plain request with curl.
pub fn get(url: &str, args: &[&str]) -> Got {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args)
        .arg(url);
    run(cmd, &out)
}

fn run(mut cmd: Command, out: &Path) -> Got {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .expect("curl (Debian package curl) must be installed");
    let w = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut it = w.split_whitespace();
    let status = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = it.next().unwrap_or("").to_owned();
    Got {
        status,
        version,
        body: std::fs::read(out).unwrap_or_default(),
        exit: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `openssl s_client` to `addr` with `args`; returns (handshake completed, its output).
pub fn s_client(addr: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // A completed handshake prints the negotiated cipher; a refused one "Cipher is (NONE)".
    let ok = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (ok, text)
}
