//! Black-box: every row of reference §4.5's table through the built binary, each with its status,
//! JSON body, Content-Type, X-Request-Id, Accept-Signature (401) / Retry-After (429), and the
//! upstream having received nothing for the rejected request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::client::{Body, Conn, request};
use common::sidecar::{
    ACTIVE, Case, REVOKED, Sidecar, assert_rejected, reached, replace, run_cases, unix_now,
};
use common::upstream::Upstream;

const POLICY: &str = "mode: required
routes:
  - { path_prefix: /req/, mode: required }
";

/// Give a wrongly forwarded request time to show up at the upstream before asserting absence.
fn settle() {
    std::thread::sleep(Duration::from_millis(150));
}

#[test]
fn every_spec_code_through_the_binary() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, POLICY);
    let (sc, up) = (&sc, &up);
    // A signed request for `path` with extra `sign` args, as key `key`.
    let signed = move |key: &str, method: &str, path: &str, body: Option<&[u8]>, args: &[&str]| {
        sc.sign(key, method, path, body, args)
    };
    // Send `raw`, expect `status`/`code`, and that nothing for `path` reached the upstream.
    let rejected = move |raw: &[u8], path: &str, status: u16, code: &str| {
        let r = sc.send_raw(raw);
        assert_rejected(&r, status, code);
        settle();
        assert_eq!(reached(up, path), 0, "{code}: {path} reached the upstream");
        r
    };
    let now = unix_now();
    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.push((
        "valid",
        Box::new(move || {
            let r = sc.send_raw(&signed(ACTIVE, "GET", "/req/valid", None, &[]));
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            assert_eq!(reached(up, "/req/valid"), 1);
        }),
    ));
    cases.push((
        "SIGNATURE_MISSING",
        Box::new(move || {
            let r = request(sc.addr, "GET", "/req/missing", &[], Body::None);
            assert_rejected(&r, 401, "SIGNATURE_MISSING");
            settle();
            assert_eq!(reached(up, "/req/missing"), 0);
        }),
    ));
    cases.push((
        "SIGNATURE_MALFORMED",
        Box::new(move || {
            let raw = signed(ACTIVE, "GET", "/req/malformed", None, &[]);
            let raw = replace(&raw, "Signature: sig1=:", "Signature: sig1=:AAAA");
            rejected(&raw, "/req/malformed", 401, "SIGNATURE_MALFORMED");
            // Not a structured field at all.
            let raw = signed(ACTIVE, "GET", "/req/malformed", None, &[]);
            let raw = replace(&raw, "Signature-Input: sig1=(", "Signature-Input: sig1=((");
            rejected(&raw, "/req/malformed", 401, "SIGNATURE_MALFORMED");
        }),
    ));
    cases.push((
        "KEY_NOT_FOUND",
        Box::new(move || {
            let raw = signed("k-nobody", "GET", "/req/nokey", None, &[]);
            rejected(&raw, "/req/nokey", 401, "KEY_NOT_FOUND");
        }),
    ));
    cases.push((
        "KEY_REVOKED",
        Box::new(move || {
            let raw = signed(REVOKED, "GET", "/req/revoked", None, &[]);
            rejected(&raw, "/req/revoked", 401, "KEY_REVOKED");
        }),
    ));
    cases.push((
        "KEY_ID_MISMATCH",
        Box::new(move || {
            let raw = signed(ACTIVE, "GET", "/req/alg", None, &[]);
            let raw = replace(&raw, "alg=\"ed25519\"", "alg=\"rsa-pss-sha512\"");
            rejected(&raw, "/req/alg", 401, "KEY_ID_MISMATCH");
        }),
    ));
    let future = (now + 600).to_string();
    cases.push((
        "TIMESTAMP_OUT_OF_WINDOW",
        Box::new(move || {
            let raw = signed(ACTIVE, "GET", "/req/future", None, &["--created", &future]);
            rejected(&raw, "/req/future", 401, "TIMESTAMP_OUT_OF_WINDOW");
        }),
    ));
    let old = (now - 1000).to_string();
    cases.push((
        "TIMESTAMP_TOO_OLD",
        Box::new(move || {
            let raw = signed(ACTIVE, "GET", "/req/old", None, &["--created", &old]);
            rejected(&raw, "/req/old", 401, "TIMESTAMP_TOO_OLD");
            // `expires` passed.
            let created = (unix_now() - 100).to_string();
            let raw = signed(
                ACTIVE,
                "GET",
                "/req/old",
                None,
                &["--created", &created, "--expires", "10"],
            );
            rejected(&raw, "/req/old", 401, "TIMESTAMP_TOO_OLD");
        }),
    ));
    cases.push((
        "NONCE_MISSING",
        Box::new(move || {
            let raw = signed(ACTIVE, "GET", "/req/nononce", None, &["--no-nonce"]);
            rejected(&raw, "/req/nononce", 401, "NONCE_MISSING");
        }),
    ));
    cases.push((
        "NONCE_REPLAYED",
        Box::new(move || {
            let raw = signed(
                ACTIVE,
                "GET",
                "/req/replay",
                None,
                &["--nonce", "once-only-1"],
            );
            assert_eq!(sc.send_raw(&raw).status, 200);
            let r = sc.send_raw(&raw);
            assert_rejected(&r, 401, "NONCE_REPLAYED");
            settle();
            assert_eq!(
                reached(up, "/req/replay"),
                1,
                "the replay reached the upstream"
            );
            // Same nonce, fresh signature over another path: still a replay.
            let raw = signed(
                ACTIVE,
                "GET",
                "/req/replay2",
                None,
                &["--nonce", "once-only-1"],
            );
            rejected(&raw, "/req/replay2", 401, "NONCE_REPLAYED");
        }),
    ));
    cases.push((
        "COMPONENTS_MISSING",
        Box::new(move || {
            let raw = signed(
                ACTIVE,
                "GET",
                "/req/components",
                None,
                &["--components", "@method @path"],
            );
            rejected(&raw, "/req/components", 401, "COMPONENTS_MISSING");
        }),
    ));
    cases.push((
        "DIGEST_MISSING",
        Box::new(move || {
            let raw = signed(
                ACTIVE,
                "POST",
                "/req/nodigest",
                Some(b"{\"a\":1}"),
                &["--components", "@method @authority @path"],
            );
            rejected(&raw, "/req/nodigest", 401, "DIGEST_MISSING");
        }),
    ));
    cases.push((
        "DIGEST_MISMATCH",
        Box::new(move || {
            let raw = signed(ACTIVE, "POST", "/req/tamper", Some(b"amount=100"), &[]);
            let raw = replace(&raw, "amount=100", "amount=999");
            rejected(&raw, "/req/tamper", 401, "DIGEST_MISMATCH");
        }),
    ));
    cases.push((
        "SIGNATURE_INVALID",
        Box::new(move || {
            let raw = signed(ACTIVE, "GET", "/req/inv-a", None, &[]);
            let raw = replace(&raw, "GET /req/inv-a", "GET /req/inv-b");
            rejected(&raw, "/req/inv-b", 401, "SIGNATURE_INVALID");
            // A covered field changed.
            let raw = signed(ACTIVE, "GET", "/req/inv-c", None, &[]);
            let host = format!("Host: {}", sc.addr);
            let raw = replace(&raw, &host, "Host: evil.example:80");
            rejected(&raw, "/req/inv-c", 401, "SIGNATURE_INVALID");
        }),
    ));
    cases.push((
        "BODY_TOO_LARGE",
        Box::new(move || {
            let body = vec![b'x'; 10 * 1024 * 1024 + 1];
            let raw = signed(ACTIVE, "POST", "/req/big", Some(&body), &[]);
            rejected(&raw, "/req/big", 413, "BODY_TOO_LARGE");
        }),
    ));
    run_cases(cases);
    // Every failure was counted by reason; the replays by client.
    let m = String::from_utf8(sc.admin_get("/metrics").body).unwrap();
    let has = |frag: &[&str]| m.lines().any(|l| frag.iter().all(|f| l.contains(f)));
    // Every bounded series is exposed from the start at 0: a count must be read, not found.
    let value = |series: &str| -> f64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    for code in [
        "SIGNATURE_MALFORMED",
        "KEY_NOT_FOUND",
        "KEY_REVOKED",
        "KEY_ID_MISMATCH",
        "TIMESTAMP_OUT_OF_WINDOW",
        "TIMESTAMP_TOO_OLD",
        "NONCE_MISSING",
        "NONCE_REPLAYED",
        "COMPONENTS_MISSING",
        "DIGEST_MISSING",
        "DIGEST_MISMATCH",
        "SIGNATURE_INVALID",
    ] {
        let series = format!("datafold_invalid_signatures_total{{reason=\"{code}\"}}");
        assert!(value(&series) >= 1.0, "{code} not counted:\n{m}");
    }
    for code in ["SIGNATURE_MISSING", "BODY_TOO_LARGE", "OK"] {
        let series = format!("datafold_requests_total{{code=\"{code}\"}}");
        assert!(value(&series) >= 1.0, "{code} not counted:\n{m}");
    }
    assert!(
        has(&[
            "datafold_replay_attempts_total{",
            "client_id=\"client-one\"",
            " 2"
        ]),
        "replays not counted:\n{m}"
    );
    // A keep-alive connection still works after one of each kind of rejection.
    let mut c = Conn::open(sc.addr);
    let r = c.request("GET", "/req/ka", &[], Body::None);
    assert_rejected(&r, 401, "SIGNATURE_MISSING");
    let r = c.request("GET", "/req/ka", &[], Body::None);
    assert_rejected(&r, 401, "SIGNATURE_MISSING");
}

#[test]
fn rate_limited_with_retry_after() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        "mode: required\nfailure_rate_limit:\n  per_minute: 3\n",
    );
    // Failed verifications count (an unsigned request is not a verification and does not).
    for i in 0..3 {
        let r = sc.send_raw(&sc.sign("k-nobody", "GET", &format!("/rl{i}"), None, &[]));
        assert_rejected(&r, 401, "KEY_NOT_FOUND");
    }
    let r = sc.send_raw(&sc.sign("k-nobody", "GET", "/rl-limited", None, &[]));
    assert_rejected(&r, 429, "RATE_LIMITED");
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    // The limiter's window is 13 buckets of 5 s (it covers at least a full minute).
    assert!((1..=65).contains(&secs), "Retry-After {secs}");
    // Even a valid signed request from this source is refused while limited.
    let r = sc.send_raw(&sc.sign(ACTIVE, "GET", "/rl-valid", None, &[]));
    assert_rejected(&r, 429, "RATE_LIMITED");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(up.recorded().len(), 0);
}

#[test]
fn replay_store_full_fails_closed() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: required\nreplay:\n  max_entries: 2\n");
    for i in 0..2 {
        let r = sc.send_raw(&sc.sign(ACTIVE, "GET", &format!("/fill{i}"), None, &[]));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let raw = sc.sign(ACTIVE, "GET", "/full", None, &[]);
    let r = sc.send_raw(&raw);
    assert_rejected(&r, 503, "REPLAY_STORE_UNAVAILABLE");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(reached(&up, "/full"), 0);
    let status = sc.admin_get("/status").json();
    assert_eq!(status["replay"]["entries"], 2, "{status}");
}

#[test]
fn upstream_down_is_502_json() {
    // A port that was free a moment ago and has nobody listening.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sc = Sidecar::start(dead, "mode: hybrid\n");
    let r = request(sc.addr, "GET", "/legacy", &[], Body::None);
    assert_rejected(&r, 502, "UPSTREAM_UNAVAILABLE");
    let r = sc.send_raw(&sc.sign(ACTIVE, "POST", "/signed", Some(b"{\"x\":1}"), &[]));
    assert_rejected(&r, 502, "UPSTREAM_UNAVAILABLE");
}

/// An upstream slower than `upstream_timeout_seconds` gets a 504 JSON error.
#[test]
fn upstream_slow_is_504_json() {
    let up = Upstream::start(Duration::from_secs(10));
    let sc = Sidecar::start(up.addr, "mode: hybrid\nupstream_timeout_seconds: 1\n");
    let s = std::net::TcpStream::connect(sc.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = String::new();
    let mut w = s.try_clone().unwrap();
    std::io::Write::write_all(
        &mut w,
        b"GET /slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let _ = std::io::Read::read_to_string(&mut &s, &mut out);
    assert!(out.starts_with("HTTP/1.1 504"), "{out}");
    assert!(out.contains("\"code\":\"UPSTREAM_TIMEOUT\""), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{out}"
    );
}
