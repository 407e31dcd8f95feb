//! Black-box: the TLS listener of the built binary, with certificates made at test time by
//! `openssl` and real clients (`curl`, `openssl s_client`, a rustls client): TLS 1.2 and 1.3,
//! ALPN h2 with http/1.1 fallback, signed requests with their identity upstream, client
//! certificates, certificate rotation through a Kubernetes-style `..data` swap under load
//! without one failed request, a bad rotation refused with the last good pair kept, and the
//! handshake bounded by the header timeout and `max_connections`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::curl::{self, s_client};
use common::sidecar::{ACTIVE, ACTIVE_CLIENT, EXE, Sidecar};
use common::tls::{Pair, Pki, client_config, leaf_sha256};
use common::upstream::Upstream;

fn tls_policy(p: &Pair, more: &str) -> String {
    format!(
        "drain_delay_seconds: 0\ntls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n{more}",
        p.cert.display(),
        p.key.display()
    )
}

fn base(sc: &Sidecar) -> String {
    format!("https://127.0.0.1:{}", sc.addr.port())
}

fn metric(sc: &Sidecar, line_start: &str) -> f64 {
    let r = sc.admin_get("/metrics");
    String::from_utf8_lossy(&r.body)
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn tls_listener_speaks_h2_and_http11_with_real_clients() {
    let pki = Pki::new("sigproxy-test-ca");
    let leaf = pki.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, &tls_policy(&leaf, "mode: hybrid\n"));
    let ca = pki.ca.to_str().unwrap();
    let addr = sc.addr.to_string();

    // curl: h2 by ALPN, http/1.1 when asked; the upstream hears HTTP/1.1 either way, with the
    // scheme the client used.
    let g = curl::get(&format!("{}/h2", base(&sc)), &["--http2", "--cacert", ca]);
    assert_eq!((g.status, g.version.as_str()), (200, "2"), "{g:?}");
    let g = curl::get(&format!("{}/h1", base(&sc)), &["--http1.1", "--cacert", ca]);
    assert_eq!((g.status, g.version.as_str()), (200, "1.1"), "{g:?}");
    for path in ["/h2", "/h1"] {
        let rec = up.recorded_at(path);
        assert_eq!(rec.len(), 1, "{path}");
        assert!(rec[0].request_line.ends_with("HTTP/1.1"), "{:?}", rec[0]);
        assert_eq!(rec[0].header("x-forwarded-proto"), Some("https"), "{path}");
        assert_eq!(rec[0].header("host"), Some(addr.as_str()), "{path}");
        assert_eq!(rec[0].header("x-datafold-auth-method"), Some("legacy"));
    }

    // openssl s_client: both versions, each ALPN choice; TLS 1.1 refused.
    let (ok, out) = s_client(&addr, &["-CAfile", ca, "-tls1_3", "-alpn", "h2,http/1.1"]);
    assert!(
        ok && out.contains("TLSv1.3") && out.contains("ALPN protocol: h2"),
        "{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let (ok, out) = s_client(&addr, &["-CAfile", ca, "-tls1_2", "-alpn", "http/1.1"]);
    assert!(
        ok && out.contains("TLSv1.2") && out.contains("ALPN protocol: http/1.1"),
        "{out}"
    );
    let (ok, out) = s_client(&addr, &["-tls1_1"]);
    assert!(!ok, "TLS 1.1 must be refused: {out}");
    let (ok, out) = s_client(&addr, &["-CAfile", ca, "-tls1_2", "-cipher", "AES128-SHA"]);
    assert!(!ok, "a non-forward-secret CBC suite must be refused: {out}");

    // Plain HTTP on the TLS port: closed, counted.
    let before = metric(
        &sc,
        "datafold_connections_refused_total{reason=\"tls_handshake\"}",
    );
    let g = curl::get(&format!("http://{addr}/plain"), &[]);
    assert_eq!(g.status, 0, "{g:?}");
    assert!(up.recorded_at("/plain").is_empty());
    let after = metric(
        &sc,
        "datafold_connections_refused_total{reason=\"tls_handshake\"}",
    );
    assert!(after > before, "{before} -> {after}");

    // A signed request over h2 on TLS verifies and carries the identity upstream; the same
    // request tampered does not reach it.
    let raw = sc.sign(ACTIVE, "GET", "/signed/ok", None, &[]);
    let g = curl::send_raw(&raw, &base(&sc), &["--http2", "--cacert", ca]);
    assert_eq!((g.status, g.version.as_str()), (200, "2"), "{g:?}");
    let rec = up.recorded_at("/signed/ok");
    assert_eq!(rec[0].header("x-datafold-client-id"), Some(ACTIVE_CLIENT));
    assert_eq!(rec[0].header("x-datafold-auth-method"), Some("signature"));
    let raw = sc.sign(ACTIVE, "GET", "/signed/a", None, &[]);
    let raw = common::sidecar::replace(&raw, "GET /signed/a", "GET /signed/b");
    let g = curl::send_raw(&raw, &base(&sc), &["--http2", "--cacert", ca]);
    assert_eq!(g.status, 401, "{g:?}");
    assert_eq!(g.json()["error"]["code"], "SIGNATURE_INVALID");
    assert!(up.recorded_at("/signed/b").is_empty());

    // /status and the expiry gauge describe the certificate served.
    let st = sc.admin_get("/status").json();
    assert_eq!(st["tls"]["enabled"], true, "{st}");
    assert_eq!(st["tls"]["subject"], "CN=localhost", "{st}");
    assert_eq!(st["tls"]["sha256"], leaf_sha256(&leaf.cert), "{st}");
    assert_eq!(st["tls"]["restart_required"], false, "{st}");
    assert!(metric(&sc, "datafold_tls_cert_expiry_timestamp_seconds") > 1.0e9);
}

#[test]
fn client_certificates_are_required_when_client_ca_file_is_set() {
    let pki = Pki::new("sigproxy-test-ca");
    let leaf = pki.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    let client = pki.leaf("client", "caller-one", "DNS:caller-one");
    let stranger_pki = Pki::new("someone-else");
    let stranger = stranger_pki.leaf("client", "caller-two", "DNS:caller-two");
    let up = Upstream::start(Duration::ZERO);
    let more = format!("  client_ca_file: \"{}\"\n", pki.ca.display());
    let sc = Sidecar::start(up.addr, &tls_policy(&leaf, &more));
    let ca = pki.ca.to_str().unwrap();
    let url = format!("{}/mtls", base(&sc));

    let g = curl::get(&url, &["--cacert", ca]);
    assert_eq!(g.status, 0, "no client certificate must not pass: {g:?}");
    let (c, k) = (
        stranger.cert.to_str().unwrap(),
        stranger.key.to_str().unwrap(),
    );
    let g = curl::get(&url, &["--cacert", ca, "--cert", c, "--key", k]);
    assert_eq!(
        g.status, 0,
        "a certificate of another CA must not pass: {g:?}"
    );
    assert!(up.recorded_at("/mtls").is_empty());
    let (c, k) = (client.cert.to_str().unwrap(), client.key.to_str().unwrap());
    for v in ["--http2", "--http1.1"] {
        let g = curl::get(&url, &[v, "--cacert", ca, "--cert", c, "--key", k]);
        assert_eq!(g.status, 200, "{v}: {g:?}");
    }
    assert_eq!(up.recorded_at("/mtls").len(), 2);
    assert_eq!(sc.admin_get("/status").json()["tls"]["client_auth"], true);
}

/// A Kubernetes Secret volume: files are symlinks through `..data` to a timestamped directory;
/// the kubelet updates by writing a new directory and renaming a new `..data` link over the old.
struct SecretDir {
    root: PathBuf,
    n: usize,
}

impl SecretDir {
    fn new(root: &Path, p: &Pair) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let mut s = Self {
            root: root.to_path_buf(),
            n: 0,
        };
        s.swap(&p.cert, &p.key);
        for f in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{f}"), root.join(f)).unwrap();
        }
        s
    }

    fn swap(&mut self, cert: &Path, key: &Path) {
        self.n += 1;
        let dir = format!("..2026_11_30_{:02}", self.n);
        let d = self.root.join(&dir);
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(cert, d.join("tls.crt")).unwrap();
        std::fs::copy(key, d.join("tls.key")).unwrap();
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&dir, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
    }
}

/// One HTTPS request on a new connection with a rustls client: (status, served leaf sha256).
fn one_tls_request(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
) -> (u16, String) {
    use sha2::Digest as _;
    let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, String::new());
    };
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Until the status line is in (a close without close_notify after it is not a failure).
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let status = String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let served = s
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| hex::encode(sha2::Sha256::digest(c.as_ref())))
        .unwrap_or_default();
    (status, served)
}

#[test]
fn certificate_rotation_by_kubelet_swap_under_load_fails_no_request() {
    let pki = Pki::new("sigproxy-test-ca");
    let first = pki.leaf("first", "localhost", "DNS:localhost,IP:127.0.0.1");
    let second = pki.leaf("second", "localhost", "DNS:localhost,IP:127.0.0.1");
    let third = pki.leaf("third", "localhost", "DNS:localhost,IP:127.0.0.1");
    let secret_tmp = tempfile::tempdir().unwrap();
    let root = secret_tmp.path().join("tls");
    let mut secret = SecretDir::new(&root, &first);
    let up = Upstream::start(Duration::ZERO);
    let policy = format!(
        "drain_delay_seconds: 0\ntls:\n  cert_file: \"{0}/tls.crt\"\n  key_file: \"{0}/tls.key\"\n",
        root.display()
    );
    let sc = Sidecar::start(up.addr, &policy);
    let config = client_config(&pki.ca, &[b"http/1.1"], None);
    let (sha1, sha2, sha3) = (
        leaf_sha256(&first.cert),
        leaf_sha256(&second.cert),
        leaf_sha256(&third.cert),
    );
    assert_eq!(one_tls_request(sc.addr, &config, "/warm").0, 200);

    // Four clients, a new connection (a new handshake) per request, until told to stop or
    // for at most 60 s / 20 000 requests each.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failures, seen, config) =
                (stop.clone(), failures.clone(), seen.clone(), config.clone());
            let addr = sc.addr;
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                for _ in 0..20_000 {
                    if stop.load(Ordering::Acquire) || Instant::now() > deadline {
                        break;
                    }
                    let (status, served) = one_tls_request(addr, &config, "/load");
                    if status != 200 {
                        failures.fetch_add(1, Ordering::AcqRel);
                    }
                    *seen.lock().unwrap().entry(served).or_default() += 1;
                }
            })
        })
        .collect();
    let served_now = || one_tls_request(sc.addr, &config, "/probe").1;
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if served_now() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    std::thread::sleep(Duration::from_millis(500));

    // 1. A good new pair: served within seconds.
    secret.swap(&second.cert, &second.key);
    assert!(wait_for(&sha2), "the rotated certificate was not served");
    std::thread::sleep(Duration::from_millis(500));

    // 2. A bad pair (a key that is not the certificate's): refused, the last good one stays,
    //    /status and the reload counter say so.
    let failed_before = metric(&sc, "datafold_config_reloads_total{result=\"failure\"}");
    secret.swap(&third.cert, &first.key);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut st = serde_json::Value::Null;
    while Instant::now() < deadline {
        st = sc.admin_get("/status").json();
        if st["last_reload_error"].is_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = st["last_reload_error"].as_str().unwrap_or("");
    assert!(err.contains("tls.key_file"), "{st}");
    assert!(
        err.contains("policy.yaml:") && err.contains(": tls.key_file: "),
        "the error names the policy file, line and key: {err}"
    );
    assert_eq!(st["tls"]["sha256"], sha2, "{st}");
    assert_eq!(served_now(), sha2);
    assert!(metric(&sc, "datafold_config_reloads_total{result=\"failure\"}") > failed_before);
    std::thread::sleep(Duration::from_millis(500));

    // 3. Fixed: the third pair is served and the error clears.
    secret.swap(&third.cert, &third.key);
    assert!(wait_for(&sha3), "the fixed certificate was not served");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }
    assert!(sc.admin_get("/status").json()["last_reload_error"].is_null());
    let seen = seen.lock().unwrap().clone();
    let total: usize = seen.values().sum();
    assert_eq!(
        failures.load(Ordering::Acquire),
        0,
        "failed requests during rotation: {seen:?}"
    );
    assert!(total > 50, "too little load to mean anything: {seen:?}");
    for sha in [&sha1, &sha2, &sha3] {
        assert!(
            seen.contains_key(sha.as_str()),
            "{sha} never served under load: {seen:?}"
        );
    }
    // Only the three good certificates were ever served.
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn handshakes_are_bounded_by_header_timeout_and_max_connections() {
    let pki = Pki::new("sigproxy-test-ca");
    let leaf = pki.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        &tls_policy(
            &leaf,
            "limits: {header_timeout_seconds: 2, max_connections: 3}\n",
        ),
    );
    let ca = pki.ca.to_str().unwrap();
    let url = format!("{}/bounded", base(&sc));
    // Three connections that start a handshake and stall hold every slot ...
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(sc.addr).unwrap();
            s.write_all(&[0x16]).unwrap(); // a TLS record header's first byte, then nothing
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let g = curl::get(&url, &["--cacert", ca]);
    assert_eq!(g.status, 0, "a fourth connection must be refused: {g:?}");
    // ... and each is closed by the header timeout, freeing the slots.
    let started = Instant::now();
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 64];
        let n = s.read(&mut b).unwrap_or(0);
        assert!(
            n == 0 || b[0] == 0x15,
            "closed (or a TLS alert), got {n} bytes"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let g = curl::get(&url, &["--cacert", ca]);
    assert_eq!(g.status, 200, "{g:?}");
    assert!(
        metric(
            &sc,
            "datafold_connections_refused_total{reason=\"tls_handshake\"}"
        ) >= 3.0
    );
    assert!(
        metric(
            &sc,
            "datafold_connections_refused_total{reason=\"max_connections\"}"
        ) >= 1.0
    );
}

#[test]
fn bad_tls_files_are_configuration_errors_with_file_line_and_key() {
    let pki = Pki::new("sigproxy-test-ca");
    let a = pki.leaf("a", "localhost", "DNS:localhost");
    let b = pki.leaf("b", "localhost", "DNS:localhost");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    let check = |tls: &str| {
        std::fs::write(&policy, format!("mode: hybrid\ntls:\n{tls}")).unwrap();
        let o = Command::new(EXE)
            .arg("check-config")
            .arg(&policy)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = check(&format!(
        "  cert_file: \"{}\"\n  key_file: \"{}/missing.key\"\n",
        a.cert.display(),
        dir.path().display()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("policy.yaml:4:13: tls.key_file: ") && err.contains("missing.key"),
        "{err}"
    );
    let (code, err) = check(&format!(
        "  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        a.key.display(),
        a.key.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.cert_file: ") && err.contains("no PEM certificate"),
        "{err}"
    );
    let (code, err) = check(&format!(
        "  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        a.cert.display(),
        b.key.display()
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tls.key_file: ") && err.contains("does not go with"),
        "{err}"
    );
    let (code, out) = check(&format!(
        "  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        a.cert.display(),
        a.key.display()
    ));
    assert_eq!(code, Some(0), "{out}");

    // `run` refuses to start on a bad pair, before binding anything.
    std::fs::write(
        &policy,
        format!(
            "listen: \"127.0.0.1:1\"\ntls:\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
            a.cert.display(),
            b.key.display()
        ),
    )
    .unwrap();
    let o = Command::new(EXE)
        .args(["run", "--config"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("tls.key_file"));
}

#[test]
fn a_signed_post_over_h2_on_tls_reaches_upstream_byte_exact() {
    let pki = Pki::new("sigproxy-test-ca");
    let leaf = pki.leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1");
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, &tls_policy(&leaf, "mode: required\n"));
    let ca = pki.ca.to_str().unwrap();
    let body: Vec<u8> = (0..300_000).map(|i| (i * 7 % 251) as u8).collect();
    let raw = sc.sign(ACTIVE, "POST", "/h2/post", Some(&body), &[]);
    let g = curl::send_raw(&raw, &base(&sc), &["--http2", "--cacert", ca]);
    assert_eq!((g.status, g.version.as_str()), (200, "2"), "{g:?}");
    let rec = up.recorded_at("/h2/post");
    use sha2::Digest as _;
    assert_eq!(rec[0].body_len, body.len());
    assert_eq!(rec[0].body_sha256, hex::encode(sha2::Sha256::digest(&body)));
    assert_eq!(
        rec[0].header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(rec[0].header("x-datafold-client-id"), Some(ACTIVE_CLIENT));
    // One byte changed after signing: 401 DIGEST_MISMATCH, nothing upstream.
    let raw = sc.sign(ACTIVE, "POST", "/h2/tampered", Some(&body), &[]);
    let mut t = raw.clone();
    let last = t.len() - 1;
    t[last] ^= 1;
    let g = curl::send_raw(&t, &base(&sc), &["--http2", "--cacert", ca]);
    assert_eq!(g.status, 401, "{g:?}");
    assert_eq!(g.json()["error"]["code"], "DIGEST_MISMATCH");
    assert!(up.recorded_at("/h2/tampered").is_empty());
    // Unsigned on a required route: 401 with Accept-Signature, over h2 as over HTTP/1.1.
    let r = curl::get(
        &format!("{}/h2/unsigned", base(&sc)),
        &["--http2", "--cacert", ca],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "SIGNATURE_MISSING");
}
