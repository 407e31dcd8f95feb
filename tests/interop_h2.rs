//! Black-box interop over HTTP/2: every scenario the independent signers write (PyPI
//! `http-message-signatures` via tests/interop/py_sign.py, npm `http-message-signatures` via
//! js_sign.mjs — valid requests and their tampered variants, each with the outcome it must get)
//! is sent through the built binary over h2, by Python `httpx[http2]` (py_h2_send.py) and by
//! `curl`: prior-knowledge h2c on a plain listener and h2 by ALPN on a TLS one. Each must get the
//! outcome its manifest names: valid ones reach the upstream with the identity headers, the
//! others are answered with their code and never reach it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sidecar::{ACTIVE, ACTIVE_CLIENT, Sidecar};
use common::tls::Pki;
use common::upstream::Upstream;
use serde_json::Value;

fn interop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn python() -> PathBuf {
    let py = interop().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run tests/interop/setup.sh before cargo test",
        py.display()
    );
    py
}

/// One signer's scenarios for the sidecar's active key: (name, file, expected outcome).
fn scenarios(sc: &Sidecar, signer: &str, out: &Path) -> Vec<(String, PathBuf, String)> {
    let mut cmd = if signer.ends_with(".py") {
        Command::new(python())
    } else {
        assert!(
            interop().join("node_modules").exists(),
            "tests/interop/node_modules missing: run tests/interop/setup.sh"
        );
        let mut c = Command::new("node");
        c.current_dir(interop());
        c
    };
    let o = cmd
        .arg(interop().join(signer))
        .arg("--key")
        .arg(sc.key_path(ACTIVE))
        .args(["--key-id", ACTIVE, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{signer}: {o:?}");
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    m["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                out.join(s["file"].as_str().unwrap()),
                s["expect"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every file through py_h2_send.py in one process: (status, http version, error code) each.
fn send_httpx(base: &str, cacert: Option<&Path>, files: &[PathBuf]) -> Vec<(u16, String, Value)> {
    let mut cmd = Command::new(python());
    cmd.arg(interop().join("py_h2_send.py"))
        .args(["--base", base]);
    if let Some(c) = cacert {
        cmd.arg("--cacert").arg(c);
    }
    let o = cmd.args(files).output().unwrap();
    assert!(
        o.status.success(),
        "py_h2_send: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["status"].as_u64().unwrap() as u16,
                v["http_version"].as_str().unwrap().to_owned(),
                v["code"].clone(),
            )
        })
        .collect()
}

/// A scenario (name, file, expected outcome), what came back (status, HTTP version, error code),
/// and which client sent it.
type Outcome<'a> = (
    &'a (String, PathBuf, String),
    (u16, String, Value),
    &'static str,
);

/// The marker the upstream saw for a scenario: its request target.
fn target_of(file: &Path) -> String {
    let raw = std::fs::read(file).unwrap();
    common::curl::parse_raw(&raw).1
}

/// Runs both signers' scenarios through `sc` over h2 (httpx for one half of the set, curl for
/// the other, alternating, so each request is sent once: nonces are single-use). The signers
/// sign for `http://` URLs: over TLS (`https`), a request covering `@target-uri` (which holds
/// the scheme) must fail as SIGNATURE_INVALID whatever its manifest says for plain HTTP.
fn run_all(sc: &Sidecar, up: &Upstream, base: &str, cacert: Option<&Path>, curl_args: &[&str]) {
    let https = base.starts_with("https://");
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut valid = 0;
    for signer in ["py_sign.py", "js_sign.mjs"] {
        let mut all = scenarios(sc, signer, &tmp.path().join(signer));
        if https {
            for s in &mut all {
                let raw = String::from_utf8_lossy(&std::fs::read(&s.1).unwrap()).into_owned();
                if common::sidecar::head(raw.as_bytes()).contains("\"@target-uri\"")
                    && ["valid", "DIGEST_MISMATCH"].contains(&s.2.as_str())
                {
                    s.2 = "SIGNATURE_INVALID".into();
                }
            }
        }
        // Valid requests first, then the tampered ones (whose nonce may repeat their parent's).
        let (mut by_httpx, mut by_curl) = (Vec::new(), Vec::new());
        let mut ordered: Vec<_> = all.iter().filter(|s| s.2 == "valid").collect();
        ordered.extend(all.iter().filter(|s| s.2 != "valid"));
        for (i, s) in ordered.into_iter().enumerate() {
            if i % 2 == 0 {
                by_httpx.push(s.clone());
            } else {
                by_curl.push(s.clone());
            }
        }
        let files: Vec<PathBuf> = by_httpx.iter().map(|s| s.1.clone()).collect();
        let mut results: Vec<Outcome<'_>> = by_httpx
            .iter()
            .zip(send_httpx(base, cacert, &files))
            .map(|(s, r)| (s, r, "httpx"))
            .collect();
        for s in &by_curl {
            let raw = std::fs::read(&s.1).unwrap();
            let g = common::curl::send_raw(&raw, base, curl_args);
            let code = g.json()["error"]["code"].clone();
            results.push((s, (g.status, g.version.clone(), code), "curl"));
        }
        for ((name, file, expect), (status, version, code), client) in results {
            let h2 = version == "2" || version == "HTTP/2";
            let ok = h2
                && if expect == "valid" {
                    status == 200
                } else {
                    code == expect.as_str()
                };
            if !ok {
                failures.push(format!(
                    "{signer} {name} via {client}: expected {expect}, got {status} {code} over {version}"
                ));
            }
            let reached = up.recorded_at(&target_of(file));
            if expect == "valid" {
                valid += 1;
                let id_ok = reached.iter().any(|r| {
                    r.header("x-datafold-client-id") == Some(ACTIVE_CLIENT)
                        && r.request_line.ends_with("HTTP/1.1")
                });
                if !id_ok {
                    failures.push(format!("{signer} {name}: no verified request upstream"));
                }
            }
        }
    }
    assert!(valid >= 4, "only {valid} valid scenarios");
    // No tampered request reached the upstream: every recorded one carries the identity.
    for r in up.recorded() {
        if r.header("x-datafold-auth-method") != Some("signature") {
            failures.push(format!("unverified request upstream: {}", r.request_line));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn independent_signers_over_h2c_prior_knowledge() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: required\n");
    let base = format!("http://{}", sc.addr);
    run_all(&sc, &up, &base, None, &["--http2-prior-knowledge"]);
}

#[test]
fn independent_signers_over_h2_by_alpn_on_tls() {
    let pki = Pki::new("interop-ca");
    let leaf = pki.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        &format!(
            "mode: required\ntls: {{cert_file: \"{}\", key_file: \"{}\"}}\n",
            leaf.cert.display(),
            leaf.key.display()
        ),
    );
    let base = format!("https://127.0.0.1:{}", sc.addr.port());
    let ca = pki.ca.to_str().unwrap();
    run_all(&sc, &up, &base, Some(&pki.ca), &["--http2", "--cacert", ca]);
}
