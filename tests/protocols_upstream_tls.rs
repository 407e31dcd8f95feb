//! Black-box: an `https://` upstream, a real TLS backend (rustls) with a certificate made at test
//! time. Verified against `upstream_tls.ca_file`, by address (IP SAN) or by `server_name` (sent
//! as SNI); a certificate of another CA, a name it does not carry, or no CA file (system roots)
//! is refused with 502 UPSTREAM_UNAVAILABLE before a byte of the request reaches the backend; a
//! new CA file applies without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::client::{Body, request};
use common::sidecar::{ACTIVE, ACTIVE_CLIENT, Sidecar, assert_rejected};
use common::tls::{Pki, TlsUpstream};

fn get(sc: &Sidecar, path: &str) -> common::client::Response {
    request(sc.addr, "GET", path, &["Connection: close"], Body::None)
}

#[test]
fn https_upstream_is_verified_against_the_ca_file_and_name() {
    let pki = Pki::new("backend-ca");
    let leaf = pki.leaf(
        "backend",
        "backend.internal",
        "DNS:backend.internal,IP:127.0.0.1",
    );
    let backend = TlsUpstream::start(&leaf);
    let ca = pki.ca.display().to_string();
    let url = format!("https://127.0.0.1:{}", backend.addr.port());

    // By address: checked against the IP SAN, no SNI sent (rustls sends names only).
    let sc = Sidecar::start(&url, &format!("upstream_tls: {{ca_file: \"{ca}\"}}\n"));
    let r = get(&sc, "/by-ip");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["tls"], true);
    let rec: Vec<_> = backend
        .recorded()
        .into_iter()
        .filter(|x| x.request.target() == "/by-ip")
        .collect();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].sni, None);

    // A signed request with a body crosses the TLS hop byte-exact, identity set.
    let body = vec![b'x'; 70_000];
    let raw = sc.sign(ACTIVE, "POST", "/signed", Some(&body), &[]);
    let r = sc.send_raw(&raw);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = backend
        .recorded()
        .into_iter()
        .find(|x| x.request.target() == "/signed")
        .unwrap();
    assert_eq!(rec.request.body_len, body.len());
    assert_eq!(
        rec.request.header("x-datafold-client-id"),
        Some(ACTIVE_CLIENT)
    );
    drop(sc);

    // By name: `server_name` is checked and sent as SNI.
    let sc = Sidecar::start(
        &url,
        &format!("upstream_tls: {{ca_file: \"{ca}\", server_name: backend.internal}}\n"),
    );
    let r = get(&sc, "/by-name");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rec = backend
        .recorded()
        .into_iter()
        .find(|x| x.request.target() == "/by-name")
        .unwrap();
    assert_eq!(rec.sni.as_deref(), Some("backend.internal"));
    let st = sc.admin_get("/status").json();
    assert_eq!(st["upstream"]["server_name"], "backend.internal", "{st}");
    assert_eq!(st["upstream"]["ca_file"], ca, "{st}");
}

#[test]
fn a_backend_that_cannot_prove_itself_is_refused_with_502() {
    let pki = Pki::new("backend-ca");
    let other = Pki::new("some-other-ca");
    let leaf = pki.leaf(
        "backend",
        "backend.internal",
        "DNS:backend.internal,IP:127.0.0.1",
    );
    let backend = TlsUpstream::start(&leaf);
    let url = format!("https://127.0.0.1:{}", backend.addr.port());
    let cases = [
        (
            "wrong-ca",
            format!("upstream_tls: {{ca_file: \"{}\"}}\n", other.ca.display()),
        ),
        (
            "wrong-name",
            format!(
                "upstream_tls: {{ca_file: \"{}\", server_name: elsewhere.internal}}\n",
                pki.ca.display()
            ),
        ),
        // No CA file: the system roots, which never signed a test CA.
        ("system-roots", String::new()),
    ];
    for (name, extra) in cases {
        let sc = Sidecar::start(&url, &extra);
        let path = format!("/{name}");
        let r = get(&sc, &path);
        assert_rejected(&r, 502, "UPSTREAM_UNAVAILABLE");
        let raw = sc.sign(ACTIVE, "POST", &format!("{path}/signed"), Some(b"{}"), &[]);
        assert_rejected(&sc.send_raw(&raw), 502, "UPSTREAM_UNAVAILABLE");
        assert!(
            backend
                .recorded()
                .iter()
                .all(|x| !x.request.target().starts_with(&path)),
            "{name}: a request reached an unverified backend"
        );
    }
    assert!(*backend.handshakes_failed.lock().unwrap() >= 3);
}

#[test]
fn a_new_upstream_ca_file_applies_without_restart() {
    let pki = Pki::new("backend-ca");
    let other = Pki::new("some-other-ca");
    let leaf = pki.leaf("backend", "backend.internal", "IP:127.0.0.1");
    let backend = TlsUpstream::start(&leaf);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("upstream-ca.pem");
    std::fs::copy(&other.ca, &ca_file).unwrap();
    let url = format!("https://127.0.0.1:{}", backend.addr.port());
    let sc = Sidecar::start(
        &url,
        &format!("upstream_tls: {{ca_file: \"{}\"}}\n", ca_file.display()),
    );
    assert_rejected(&get(&sc, "/before"), 502, "UPSTREAM_UNAVAILABLE");
    // The CA bundle is updated in place (a ConfigMap or Secret rotation): no restart, no signal.
    std::fs::copy(&pki.ca, &ca_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = 0;
    while Instant::now() < deadline {
        status = get(&sc, "/after").status;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200, "the new CA file was not applied");
    // And back: a pooled connection verified under the old CA is not reused under the new one.
    std::fs::copy(&other.ca, &ca_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        status = get(&sc, "/again").status;
        if status == 502 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 502, "the old pooled connection outlived its CA");
}
