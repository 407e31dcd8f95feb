//! Interop with two independent RFC 9421 implementations, generated at test time: PyPI
//! `http-message-signatures` (pyauth) and npm `http-message-signatures` (dhensby) sign valid and
//! tampered requests that the built `sigproxy verify` must accept or reject with the expected
//! reference §4 code; and requests made by `sigproxy sign --emit-request` must verify with both
//! libraries.
//!
//! Needs `tests/interop/setup.sh` run first (the test command does it). Missing tools fail the
//! test with that instruction; nothing is skipped silently.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(90);
const KEY_ID: &str = "interop-key";

/// Scenarios each signer must produce; a signer that silently drops one fails the test.
const REQUIRED: &[(&str, &str)] = &[
    ("get-query", "valid"),
    ("post-sha256", "valid"),
    ("post-sha512-target-uri", "valid"),
    ("post-sha256--body-tampered", "DIGEST_MISMATCH"),
    ("post-sha512--body-tampered", "DIGEST_MISMATCH"),
    ("post-sha256--header-tampered", "SIGNATURE_INVALID"),
    ("get-query--method-tampered", "SIGNATURE_INVALID"),
    ("get-query--authority-tampered", "SIGNATURE_INVALID"),
    ("post-sha256--sig-bitflip", "SIGNATURE_INVALID"),
    ("get-query--expired", "TIMESTAMP_TOO_OLD"),
    ("get-query--created-future", "TIMESTAMP_OUT_OF_WINDOW"),
    ("post-sha256--unknown-keyid", "KEY_NOT_FOUND"),
    ("get-query--alg-mismatch", "KEY_ID_MISMATCH"),
    ("get-query--sig-truncated", "SIGNATURE_MALFORMED"),
    ("get-query--malformed-input", "SIGNATURE_MALFORMED"),
    ("post-sha256--duplicate-label", "SIGNATURE_MALFORMED"),
];

struct Output {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs a command to completion, killing it after `TIMEOUT`.
fn run(cmd: &mut Command) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    // Drain both pipes on their own threads so a chatty child cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        out_pipe.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        err_pipe.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {TIMEOUT:?}: {desc}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status: status.code().unwrap_or(-1),
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn python() -> PathBuf {
    let py = interop_dir().join(".venv/bin/python");
    let lib = interop_dir().join("node_modules/http-message-signatures/package.json");
    assert!(
        py.exists() && lib.exists(),
        "interop tools missing ({} / {}): run tests/interop/setup.sh before cargo test",
        py.display(),
        lib.display()
    );
    py
}

fn node() -> Command {
    python(); // same precondition check
    let mut c = Command::new("node");
    c.current_dir(interop_dir());
    c
}

fn sigproxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sigproxy"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh Ed25519 pair from `sigproxy keygen`: (private key file, public key file).
fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let out = run(sigproxy()
        .args([
            "keygen",
            "--key-id",
            KEY_ID,
            "--client-id",
            "interop",
            "--out",
        ])
        .arg(dir));
    assert_eq!(out.status, 0, "keygen failed: {}{}", out.stdout, out.stderr);
    let (key, public) = (
        dir.join(format!("{KEY_ID}.key")),
        dir.join(format!("{KEY_ID}.pub")),
    );
    assert!(key.exists() && public.exists(), "keygen wrote no key pair");
    (key, public)
}

/// Runs one library's signer into `out` and returns its manifest.
fn generate(signer: &str, key: &Path, out: &Path, now: u64) -> Value {
    let mut cmd = if signer.ends_with(".py") {
        Command::new(python())
    } else {
        node()
    };
    cmd.arg(interop_dir().join(signer))
        .arg("--key")
        .arg(key)
        .args(["--key-id", KEY_ID, "--now", &now.to_string(), "--out"])
        .arg(out);
    let res = run(&mut cmd);
    assert_eq!(
        res.status, 0,
        "{signer} failed: {}{}",
        res.stdout, res.stderr
    );
    serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap()
}

fn verify_with_sigproxy(public: &Path, request: &Path, now: u64) -> (i32, Value, String) {
    let out = run(sigproxy()
        .arg("verify")
        .arg("--public-key")
        .arg(public)
        .args(["--key-id", KEY_ID, "--now", &now.to_string(), "--request"])
        .arg(request)
        // A raw HTTP/1.1 request does not say whether it came over TLS; every request here was
        // signed for an http:// URL (what the libraries' verifiers are told too).
        .args(["--scheme", "http"]));
    let json = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON object ({e}) for {}: stdout {:?} stderr {:?}",
            request.display(),
            out.stdout,
            out.stderr
        )
    });
    (out.status, json, out.stderr)
}

/// Checks every scenario of one signer; returns one description per disagreement.
fn check_manifest(dir: &Path, manifest: &Value, public: &Path, now: u64) -> Vec<String> {
    let lib = format!("{} {}", manifest["library"], manifest["version"]);
    let scenarios = manifest["scenarios"].as_array().unwrap();
    let mut failures = Vec::new();
    for (name, expect) in REQUIRED {
        let found = scenarios.iter().find(|s| s["name"] == *name);
        match found {
            Some(s) if s["expect"] == *expect => {}
            _ => failures.push(format!("{lib}: scenario {name} (expect {expect}) missing")),
        }
    }
    for s in scenarios {
        let expect = s["expect"].as_str().unwrap();
        let file = dir.join(s["file"].as_str().unwrap());
        let (status, out, stderr) = verify_with_sigproxy(public, &file, now);
        let ok = if expect == "valid" {
            status == 0 && out["valid"] == true
        } else {
            status == 1 && out["valid"] == false && out["code"] == expect
        };
        if !ok {
            let raw = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            failures.push(format!(
                "{lib}: {} ({}) expected {expect}, sigproxy exit {status}: {out}\nstderr: {stderr}\nrequest:\n{raw}",
                s["name"], s["note"]
            ));
        }
    }
    failures
}

#[test]
fn library_signed_requests_verify_in_sigproxy() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let now = now();
    let mut failures = Vec::new();
    for signer in ["py_sign.py", "js_sign.mjs"] {
        let out = tmp.path().join(signer);
        let manifest = generate(signer, &key, &out, now);
        failures.extend(check_manifest(&out, &manifest, &public, now));
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What `sigproxy sign` is asked to sign: (name, sign arguments before the URL, URL).
fn sign_cases() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    vec![
        (
            "get-query",
            vec!["-H", "Accept: application/json"],
            "http://api.example.com/api/items?q=a%20b&tag=x%2Fy&empty=",
        ),
        (
            "post-json",
            vec![
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"item":"widget","quantity":3}"#,
            ],
            "http://api.example.com/api/orders?dry_run=1",
        ),
        (
            "post-sha512-target-uri",
            vec![
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json; charset=utf-8",
                "-d",
                r#"{"status":"shipped"}"#,
                "--digest",
                "sha-512",
                "--components",
                "@method @target-uri @authority content-type content-digest",
            ],
            "http://api.example.com:8443/api/orders/42",
        ),
    ]
}

/// Two edits a verifier must notice: the body (or, without one, the method) and the Host.
fn tampered(raw: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut first = raw.to_vec();
    let what = if split < raw.len() {
        first[split] ^= 0x20; // `{` becomes `[`: same length, different digest
        "body"
    } else {
        assert!(first.starts_with(b"GET "));
        first.splice(0..3, b"PUT".iter().copied());
        "method"
    };
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let host_line = text
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("host:"))
        .unwrap();
    let second = text.replacen(host_line, "Host: evil.example.com", 1);
    vec![(what, first), ("host", second.into_bytes())]
}

/// Runs both libraries' verifiers; returns (library, valid, raw output) per library.
fn verify_with_libraries(public: &Path, request: &Path) -> Vec<(&'static str, bool, String)> {
    let mut py = Command::new(python());
    py.arg(interop_dir().join("py_verify.py"));
    let mut js = node();
    js.arg(interop_dir().join("js_verify.mjs"));
    [("pyauth", py), ("dhensby", js)]
        .into_iter()
        .map(|(lib, mut cmd)| {
            cmd.arg("--public-key")
                .arg(public)
                .args(["--key-id", KEY_ID, "--tag", "sigproxy-interop", "--request"])
                .arg(request);
            let out = run(&mut cmd);
            let json: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
                panic!(
                    "{lib} verifier printed no JSON ({e}): {} {}",
                    out.stdout, out.stderr
                )
            });
            assert!(
                out.status <= 1,
                "{lib} verifier usage error: {json} {}",
                out.stderr
            );
            (
                lib,
                out.status == 0 && json["valid"] == true,
                json.to_string(),
            )
        })
        .collect()
}

#[test]
fn sigproxy_signed_requests_verify_in_both_libraries() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keygen(tmp.path());
    let mut failures = Vec::new();
    for (name, args, url) in sign_cases() {
        let file = tmp.path().join(format!("{name}.http"));
        let out = run(sigproxy()
            .arg("sign")
            .arg("--key")
            .arg(&key)
            .args([
                "--key-id",
                KEY_ID,
                "--tag",
                "sigproxy-interop",
                "--expires",
                "300",
            ])
            .args(&args)
            .arg("--emit-request")
            .arg(&file)
            .arg(url));
        assert_eq!(
            out.status, 0,
            "sign {name} failed: {}{}",
            out.stdout, out.stderr
        );
        let raw = std::fs::read(&file).unwrap();
        let shown = String::from_utf8_lossy(&raw).into_owned();

        let (status, own, _) = verify_with_sigproxy(&public, &file, now());
        if status != 0 || own["valid"] != true {
            failures.push(format!(
                "{name}: sigproxy rejects its own request: {own}\n{shown}"
            ));
        }
        for (lib, valid, output) in verify_with_libraries(&public, &file) {
            if !valid {
                failures.push(format!(
                    "{name}: {lib} rejects: {output}\nrequest:\n{shown}"
                ));
            }
        }
        for (what, bytes) in tampered(&raw) {
            let bad = tmp.path().join(format!("{name}--{what}.http"));
            std::fs::write(&bad, &bytes).unwrap();
            for (lib, valid, output) in verify_with_libraries(&public, &bad) {
                if valid {
                    failures.push(format!(
                        "{name} with {what} tampered: {lib} accepts: {output}\nrequest:\n{}",
                        String::from_utf8_lossy(&bytes)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
