//! Black-box: requests signed by an independent library, PyPI `http-message-signatures`
//! (tests/interop/py_gateway_sign.py in the venv made by tests/interop/setup.sh), go through the
//! built binary: accepted with the identity headers and byte-exact bodies, tampered or replayed
//! ones rejected before the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sidecar::{
    ACTIVE, ACTIVE_CLIENT, Case, REVOKED, Sidecar, assert_rejected, reached, replace, run_cases,
};
use common::upstream::Upstream;
use sha2::{Digest, Sha256};

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

/// A request signed by pyauth as `key_id` (key file `key`).
fn py_sign(
    sc: &Sidecar,
    key: &str,
    key_id: &str,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
    extra: &[&str],
) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("req.http");
    let mut cmd = Command::new(python());
    cmd.arg(interop().join("py_gateway_sign.py"))
        .arg("--key")
        .arg(sc.key_path(key))
        .args(["--key-id", key_id, "--method", method, "--target", target])
        .args(["--authority", &sc.addr.to_string()])
        .arg("--out")
        .arg(&out)
        .args(extra);
    if let Some(b) = body {
        let f = tmp.path().join("body");
        std::fs::write(&f, b).unwrap();
        cmd.arg("--body-file").arg(&f);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "py_gateway_sign: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read(out).unwrap()
}

const POLICY: &str = "mode: required
routes:
  - { path_prefix: /hybrid/, mode: hybrid }
";

#[test]
fn pyauth_signed_requests_through_the_gateway() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, POLICY);
    let (sc, up) = (&sc, &up);
    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.push((
        "get_with_query",
        Box::new(move || {
            let raw = py_sign(
                sc,
                ACTIVE,
                ACTIVE,
                "GET",
                "/py/items?q=a%20b&tag=x%2Fy",
                None,
                &[],
            );
            let r = sc.send_raw(&raw);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let rec = up
                .recorded()
                .into_iter()
                .find(|x| x.request_line.contains("/py/items"))
                .unwrap();
            assert_eq!(rec.header("x-datafold-client-id"), Some(ACTIVE_CLIENT));
            assert_eq!(rec.header("x-datafold-key-id"), Some(ACTIVE));
            assert_eq!(rec.header("x-datafold-auth-method"), Some("signature"));
            let raw = py_sign(sc, ACTIVE, ACTIVE, "GET", "/hybrid/py", None, &[]);
            assert_eq!(sc.send_raw(&raw).status, 200);
            let rec = up
                .recorded()
                .into_iter()
                .find(|x| x.request_line.contains("/hybrid/py"))
                .unwrap();
            assert_eq!(rec.header("x-datafold-auth-method"), Some("signature"));
        }),
    ));
    for (name, n) in [
        ("post_1KB", 1024usize),
        ("post_60KB", 60 * 1024),
        ("post_1MB", 1024 * 1024),
    ] {
        cases.push((
            name,
            Box::new(move || {
                let b: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
                let path = format!("/py/{name}");
                let raw = py_sign(sc, ACTIVE, ACTIVE, "POST", &path, Some(&b), &[]);
                let r = sc.send_raw(&raw);
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                let rec = up.recorded_at(&path).into_iter().next().unwrap();
                assert_eq!(rec.body_len, n);
                assert_eq!(rec.body_sha256, hex::encode(Sha256::digest(&b)));
                // One byte changed after signing.
                let tpath = format!("/py/{name}-tampered");
                let raw = py_sign(sc, ACTIVE, ACTIVE, "POST", &tpath, Some(&b), &[]);
                let mut t = raw.clone();
                let last = t.len() - 1;
                t[last] ^= 0x20;
                assert_rejected(&sc.send_raw(&t), 401, "DIGEST_MISMATCH");
                std::thread::sleep(Duration::from_millis(150));
                assert_eq!(reached(up, &tpath), 0);
            }),
        ));
    }
    cases.push((
        "rejections",
        Box::new(move || {
            let raw = py_sign(
                sc,
                ACTIVE,
                ACTIVE,
                "GET",
                "/py/replay",
                None,
                &["--nonce", "py-once"],
            );
            assert_eq!(sc.send_raw(&raw).status, 200);
            assert_rejected(&sc.send_raw(&raw), 401, "NONCE_REPLAYED");
            let raw = py_sign(sc, REVOKED, REVOKED, "GET", "/py/revoked", None, &[]);
            assert_rejected(&sc.send_raw(&raw), 401, "KEY_REVOKED");
            let raw = py_sign(sc, ACTIVE, "k-unknown", "GET", "/py/unknown", None, &[]);
            assert_rejected(&sc.send_raw(&raw), 401, "KEY_NOT_FOUND");
            let old = (common::sidecar::unix_now() - 1000).to_string();
            let raw = py_sign(
                sc,
                ACTIVE,
                ACTIVE,
                "GET",
                "/py/old",
                None,
                &["--created", &old],
            );
            assert_rejected(&sc.send_raw(&raw), 401, "TIMESTAMP_TOO_OLD");
            let raw = py_sign(sc, ACTIVE, ACTIVE, "GET", "/py/inv-a", None, &[]);
            let raw = replace(&raw, "GET /py/inv-a", "GET /py/inv-b");
            assert_rejected(&sc.send_raw(&raw), 401, "SIGNATURE_INVALID");
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(reached(up, "/py/replay"), 1);
            for p in ["/py/revoked", "/py/unknown", "/py/old", "/py/inv-b"] {
                assert_eq!(reached(up, p), 0, "{p}");
            }
        }),
    ));
    run_cases(cases);
}
