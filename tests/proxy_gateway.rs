//! Black-box tests of the gateway machinery: a real Pingora listener on an ephemeral port, a
//! real recording upstream, raw HTTP/1.1 on the wire, and the test gate from `common`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::client::{Body, Conn, request};
use common::gateway::{settings, start};
use common::upstream::Upstream;
use sha2::{Digest, Sha256};

const SIZES: [usize; 4] = [1024, 60 * 1024, 1024 * 1024, 10 * 1024 * 1024];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn assert_json_error(r: &common::client::Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"]["code"], code);
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let rid = r.header("x-request-id").expect("x-request-id");
    assert_eq!(v["error"]["request_id"], rid);
}

#[test]
fn rejected_requests_send_zero_bytes_upstream() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    for n in [0].into_iter().chain(SIZES) {
        let body = payload(n);
        // Rejected on the head, body unread (drained for keep-alive).
        let r = request(
            gw.addr,
            "POST",
            "/api/x",
            &["x-test-reject: 1"],
            Body::Length(&body),
        );
        assert_json_error(&r, 401, "SIGNATURE_INVALID");
        assert!(
            r.header("accept-signature").is_some(),
            "401 carries Accept-Signature"
        );
        if n == 0 {
            continue;
        }
        // Rejected after reading the whole body, both framings.
        let mut tampered = body.clone();
        tampered[n / 2..n / 2 + 6].copy_from_slice(b"tamper");
        let r = request(
            gw.addr,
            "POST",
            "/api/x",
            &["x-test-signed: 1"],
            Body::Length(&tampered),
        );
        assert_json_error(&r, 401, "DIGEST_MISMATCH");
        let r = request(
            gw.addr,
            "PUT",
            "/api/x",
            &["x-test-signed: 1"],
            Body::Chunked(&tampered, 16 * 1024),
        );
        assert_json_error(&r, 401, "DIGEST_MISMATCH");
    }
    assert_eq!(up.connection_count(), 0, "upstream saw a connection");
    assert!(up.recorded().is_empty());
}

#[test]
fn accepted_signed_bodies_arrive_intact() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let mut expected = Vec::new();
    for n in SIZES {
        let body = payload(n);
        let r = request(
            gw.addr,
            "POST",
            "/api/cl",
            &["x-test-signed: 1"],
            Body::Length(&body),
        );
        assert_eq!(r.status, 200, "CL {n}");
        assert_eq!(r.json()["body_len"], n);
        expected.push((n, sha(&body)));
        let r = request(
            gw.addr,
            "POST",
            "/api/chunked",
            &["x-test-signed: 1"],
            Body::Chunked(&body, 16 * 1024 + 7),
        );
        assert_eq!(
            r.status,
            200,
            "chunked {n}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["body_len"], n);
        expected.push((n, sha(&body)));
    }
    let rec = up.recorded();
    assert_eq!(rec.len(), expected.len());
    for (got, (n, h)) in rec.iter().zip(expected) {
        assert_eq!(got.body_len, n, "{}", got.request_line);
        assert_eq!(got.body_sha256, h);
        // Buffered bodies go upstream with an exact Content-Length, never chunked.
        assert_eq!(got.header("content-length"), Some(n.to_string().as_str()));
        assert_eq!(got.header("transfer-encoding"), None);
        assert_eq!(got.header("x-datafold-client-id"), Some("test-client"));
        assert_eq!(got.header("x-datafold-auth-method"), Some("signature"));
    }
    // Every size and framing is read whole, then sent on one path.
    let seen = gw.log.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 8);
    for (s, n) in seen.iter().zip(SIZES.iter().flat_map(|n| [*n, *n])) {
        assert_eq!(s.status, 200);
        assert_eq!(s.buffered, n);
        assert!(s.upstream_latency.is_some());
    }
}

#[test]
fn unsigned_bodies_stream_through_unbuffered() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let body = payload(3 * 1024 * 1024 + 5);
    let r = request(
        gw.addr,
        "POST",
        "/legacy",
        &[],
        Body::Chunked(&body, 32 * 1024),
    );
    assert_eq!(r.status, 200);
    let r = request(gw.addr, "POST", "/legacy", &[], Body::Length(&body));
    assert_eq!(r.status, 200);
    let rec = up.recorded();
    assert_eq!(rec.len(), 2);
    for got in &rec {
        assert_eq!(got.body_len, body.len());
        assert_eq!(got.body_sha256, sha(&body));
        assert_eq!(got.header("x-datafold-auth-method"), Some("legacy"));
    }
    // Streamed: the chunked request stays chunked (a buffered one would get Content-Length).
    assert!(
        rec[0]
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
    );
    assert_eq!(
        rec[1].header("content-length"),
        Some(body.len().to_string().as_str())
    );
    let seen = gw.log.0.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|s| s.status == 200 && s.upstream_latency.is_some())
    );
}

#[test]
fn over_limit_bodies_get_413_and_never_reach_upstream() {
    let up = Upstream::start(Duration::ZERO);
    let mut s = settings(up.addr);
    s.policy.signature.max_body_bytes = 100_000;
    let gw = start(s);
    // Announced too large: answered from the head, before the body is sent.
    let mut c = Conn::open(gw.addr);
    c.send(
        "POST",
        "/api/x",
        &["x-test-signed: 1", "Content-Length: 100001"],
        Body::None,
    );
    let r = c.read().expect("response");
    assert_json_error(&r, 413, "BODY_TOO_LARGE");
    // Chunked: counted while reading.
    let body = payload(150_000);
    let r = request(
        gw.addr,
        "POST",
        "/api/x",
        &["x-test-signed: 1"],
        Body::Chunked(&body, 8192),
    );
    assert_json_error(&r, 413, "BODY_TOO_LARGE");
    // At the limit is fine.
    let body = payload(100_000);
    let r = request(
        gw.addr,
        "POST",
        "/api/x",
        &["x-test-signed: 1"],
        Body::Length(&body),
    );
    assert_eq!(r.status, 200);
    assert_eq!(up.recorded().len(), 1);
    assert_eq!(up.recorded()[0].body_len, 100_000);
}

#[test]
fn forged_identity_headers_are_stripped_in_every_spelling() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let forged = [
        "X-DataFold-Client-Id: evil",
        "x_datafold_client_id: evil2",
        "X_DATAFOLD_KEY_ID: evil3",
        "x-datafold-key-id: evil4",
        "X-Datafold-Auth-Method: signature",
        "x_internal_role: admin",
        "X-Internal-Role: admin",
    ];
    let r = request(gw.addr, "GET", "/legacy", &forged, Body::None);
    assert_eq!(r.status, 200);
    let mut signed = forged.to_vec();
    signed.push("x-test-signed: 1");
    let r = request(gw.addr, "POST", "/api", &signed, Body::Length(b"{}"));
    assert_eq!(r.status, 200);
    let rec = up.recorded();
    assert_eq!(rec.len(), 2);
    for got in &rec {
        for (k, v) in &got.headers {
            assert!(
                !v.starts_with("evil") && v != "admin",
                "forged {k}: {v} reached upstream"
            );
            let norm = k.to_ascii_lowercase().replace('_', "-");
            assert!(norm != "x-internal-role", "{k} reached upstream");
        }
    }
    assert_eq!(rec[0].all("x-datafold-client-id"), Vec::<&str>::new());
    assert_eq!(rec[0].header("x-datafold-auth-method"), Some("legacy"));
    assert_eq!(rec[1].all("x-datafold-client-id"), vec!["test-client"]);
    assert_eq!(rec[1].all("x-datafold-key-id"), vec!["test-key"]);
    assert_eq!(rec[1].all("x-datafold-auth-method"), vec!["signature"]);
}

#[test]
fn connection_header_cannot_drop_identity() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let r = request(
        gw.addr,
        "POST",
        "/api",
        &[
            "x-test-signed: 1",
            "Connection: keep-alive, X-DataFold-Client-Id, x_datafold_key_id, X-DataFold-Auth-Method",
        ],
        Body::Length(b"hello"),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let got = &up.recorded()[0];
    assert_eq!(got.header("x-datafold-client-id"), Some("test-client"));
    assert_eq!(got.header("x-datafold-key-id"), Some("test-key"));
    assert_eq!(got.header("x-datafold-auth-method"), Some("signature"));
    for v in got.all("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("datafold"),
            "Connection: {v}"
        );
    }
}

#[test]
fn request_id_is_kept_or_generated_and_forwarded_headers_replaced() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let r = request(
        gw.addr,
        "GET",
        "/a",
        &[
            "X-Request-Id: client-chosen-1",
            "X-Forwarded-For: 6.6.6.6",
            "X-Forwarded-Proto: https",
        ],
        Body::None,
    );
    assert_eq!(r.header("x-request-id"), Some("client-chosen-1"));
    let r2 = request(gw.addr, "GET", "/b", &[], Body::None);
    let generated = r2.header("x-request-id").unwrap().to_string();
    assert_eq!(generated.len(), 32);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    let r3 = request(
        gw.addr,
        "GET",
        "/c",
        &["x-test-reject: 1", "X-Request-Id: rej-7"],
        Body::None,
    );
    assert_eq!(r3.header("x-request-id"), Some("rej-7"));
    assert_eq!(r3.json()["error"]["request_id"], "rej-7");
    let rec = up.recorded();
    assert_eq!(rec[0].header("x-request-id"), Some("client-chosen-1"));
    assert_eq!(rec[0].header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(rec[0].header("x-forwarded-proto"), Some("http"));
    assert_eq!(rec[1].header("x-request-id"), Some(generated.as_str()));
}

#[test]
fn trusted_proxy_forwarded_headers_are_extended() {
    let up = Upstream::start(Duration::ZERO);
    let mut s = settings(up.addr);
    s.policy.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let gw = start(s);
    let r = request(
        gw.addr,
        "GET",
        "/a",
        &["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https"],
        Body::None,
    );
    assert_eq!(r.status, 200);
    let got = &up.recorded()[0];
    assert_eq!(
        got.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(got.header("x-forwarded-proto"), Some("https"));
}

#[test]
fn upstream_down_is_502_json() {
    let port = common::net::free_port();
    let gw = start(settings(format!("127.0.0.1:{port}").parse().unwrap()));
    let r = request(gw.addr, "GET", "/a", &[], Body::None);
    assert_json_error(&r, 502, "UPSTREAM_UNAVAILABLE");
    // Also on the hand-forwarded path (signed chunked body over 64 KiB).
    let body = payload(200_000);
    let r = request(
        gw.addr,
        "POST",
        "/a",
        &["x-test-signed: 1"],
        Body::Chunked(&body, 4096),
    );
    assert_json_error(&r, 502, "UPSTREAM_UNAVAILABLE");
    let seen = gw.log.0.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.status == 502));
}

#[test]
fn upstream_slow_is_504_json() {
    let up = Upstream::start(Duration::from_secs(3));
    let mut s = settings(up.addr);
    s.policy.upstream_timeout_seconds = 1;
    let gw = start(s);
    let t = std::time::Instant::now();
    let r = request(gw.addr, "GET", "/slow", &[], Body::None);
    assert_json_error(&r, 504, "UPSTREAM_TIMEOUT");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "timed out late: {:?}",
        t.elapsed()
    );
}

#[test]
fn connection_stays_usable_after_401() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let mut c = Conn::open(gw.addr);
    let body = payload(70_000);
    // Head rejection with an unread body: the proxy must drain it, not parse it as a request.
    let r = c.request("POST", "/a", &["x-test-reject: 1"], Body::Length(&body));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let r = c.request("GET", "/b", &[], Body::None);
    assert_eq!(r.status, 200);
    // Body rejection after a full read, then a signed success, all on one connection.
    let mut tampered = body.clone();
    tampered[..6].copy_from_slice(b"tamper");
    let r = c.request("POST", "/c", &["x-test-signed: 1"], Body::Length(&tampered));
    assert_eq!(r.status, 401);
    let r = c.request("POST", "/d", &["x-test-signed: 1"], Body::Length(&body));
    assert_eq!(r.status, 200);
    let rec = up.recorded();
    assert_eq!(rec.len(), 2);
    assert!(rec[0].request_line.starts_with("GET /b "));
    assert_eq!(rec[1].body_len, body.len());
}

#[test]
fn pipelined_request_after_a_signed_body_gets_its_own_exchange() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let body = payload(4000);
    let mut c = Conn::open(gw.addr);
    // Both requests in one write: the second must not be taken for body bytes, and the first
    // must reach the upstream whole (never a head without its body).
    let mut wire = format!(
        "POST /first HTTP/1.1\r\nHost: app.test\r\nx-test-signed: 1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"GET /second HTTP/1.1\r\nHost: app.test\r\n\r\n");
    c.write_raw(&wire);
    let a = c.read().expect("first response");
    let b = c.read().expect("second response");
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["body_len"], body.len());
    assert_eq!(b.status, 200);
    let rec = up.recorded();
    assert_eq!(rec.len(), 2);
    assert!(rec[0].request_line.starts_with("POST /first "));
    assert_eq!(rec[0].body_len, body.len());
    assert_eq!(rec[0].body_sha256, sha(&body));
    assert_eq!(rec[0].header("x-datafold-client-id"), Some("test-client"));
    assert!(rec[1].request_line.starts_with("GET /second "));
    assert_eq!(rec[1].header("x-datafold-client-id"), None);
}

#[test]
fn overflowing_chunk_size_is_the_clients_400() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    for signed in [true, false] {
        let mut c = Conn::open(gw.addr);
        let h = if signed { "x-test-signed: 1\r\n" } else { "" };
        c.write_raw(
            format!(
                "POST /x HTTP/1.1\r\nHost: app.test\r\n{h}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nab\r\n0\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.read().expect("a response");
        assert_json_error(&r, 400, "BAD_REQUEST");
    }
    // The signed one never reached the upstream; the streamed one may have started (its head),
    // but never with a body byte.
    for got in up.recorded() {
        assert_eq!(got.body_len, 0);
    }
}

#[test]
fn slow_headers_are_cut_off_and_connections_capped() {
    let up = Upstream::start(Duration::ZERO);
    let mut s = settings(up.addr);
    s.policy.limits.header_timeout_seconds = 1;
    s.policy.limits.max_connections = 20;
    let gw = start(s);
    // Trickle a head one byte at a time: closed after about a second, never answered.
    let mut slow = std::net::TcpStream::connect(gw.addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t0 = std::time::Instant::now();
    let mut closed = false;
    for b in b"GET /slow HTTP/1.1\r\nHost: app.test\r\nX-Pad: aaaaaaaaaaaaaaaaaaa" {
        use std::io::Write as _;
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t0.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        use std::io::Read as _;
        let mut buf = [0u8; 64];
        closed = matches!(slow.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(closed, "a trickling client was not closed");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "closed late: {:?}",
        t0.elapsed()
    );
    // 20 idle connections fill the cap; the 21st is closed at once; after one leaves, room.
    let mut held: Vec<Conn> = (0..20).map(|_| Conn::open(gw.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(gw.handle.connections(), 20);
    let mut over = Conn::open(gw.addr);
    over.send("GET", "/over", &[], Body::None);
    assert!(
        over.read().is_none(),
        "a connection over the cap was served"
    );
    held.pop();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        request(gw.addr, "GET", "/room", &[], Body::None).status,
        200
    );
    assert!(
        up.recorded()
            .iter()
            .all(|r| !r.request_line.contains("/slow"))
    );
}

#[test]
fn absolute_form_goes_upstream_in_origin_form_with_its_authority_as_host() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    // An absolute-form target and a Host that disagree: ambiguous, refused before anything.
    let mut c = Conn::open(gw.addr);
    c.write_raw(b"GET http://api.example:8443/abs HTTP/1.1\r\nHost: other.example\r\n\r\n");
    assert_json_error(&c.read().expect("response"), 400, "BAD_REQUEST");
    assert!(up.recorded().is_empty());
    let mut c = Conn::open(gw.addr);
    c.write_raw(
        b"GET http://api.example:8443/abs/p%2Fq?x=1&y=%20 HTTP/1.1\r\nHost: api.example:8443\r\n\r\n",
    );
    assert_eq!(c.read().expect("response").status, 200);
    let rec = up.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].request_line, "GET /abs/p%2Fq?x=1&y=%20 HTTP/1.1");
    assert_eq!(rec[0].all("host"), vec!["api.example:8443"]);
}
