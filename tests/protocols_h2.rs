//! Black-box: HTTP/2 from clients on the built binary's plain listener (prior-knowledge h2c),
//! with the `h2` crate and `curl --http2-prior-knowledge` as clients. Signed requests verify
//! with `@authority` from `:authority` and bodies in DATA frames, the upstream hears HTTP/1.1
//! with Host, framing and identity headers; tampering is caught before the upstream. The bounds:
//! SETTINGS advertise `http2.max_concurrent_streams` and `max_header_list_bytes` (a bigger head
//! gets 431), and a client resetting streams as fast as it opens them (rapid reset, CVE-2023-44487)
//! is cut off with GOAWAY ENHANCE_YOUR_CALM after bounded upstream work while the proxy stays
//! healthy; cookie crumbs are joined before verification and forwarding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::curl::{self, parse_raw};
use common::sidecar::{ACTIVE, ACTIVE_CLIENT, Sidecar};
use common::upstream::Upstream;
use sha2::Digest as _;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What an h2 request got: status, body, the connection's advertised max concurrent streams.
struct H2Got {
    status: u16,
    body: Vec<u8>,
}

/// Send one request over a new h2c connection: `raw` is an HTTP/1.1 request as signed (its Host
/// becomes `:authority`); the body goes in DATA frames of `frame` bytes.
async fn h2_send(addr: SocketAddr, raw: &[u8], frame: usize, extra: &[(&str, &str)]) -> H2Got {
    let (method, target, headers, body) = parse_raw(raw);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .unwrap();
    let mut req = http::Request::builder()
        .method(method.as_str())
        .uri(format!("http://{host}{target}"));
    for (k, v) in &headers {
        if ["host", "content-length", "connection"].contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        req = req.header(k.to_ascii_lowercase(), v);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let (resp, mut send) = client
        .send_request(req.body(()).unwrap(), body.is_empty())
        .unwrap();
    if !body.is_empty() {
        let chunks: Vec<&[u8]> = body.chunks(frame).collect();
        for (i, c) in chunks.iter().enumerate() {
            send.reserve_capacity(c.len());
            send.send_data(Bytes::copy_from_slice(c), i + 1 == chunks.len())
                .unwrap();
        }
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    H2Got { status, body: out }
}

const POLICY: &str =
    "mode: required\ndrain_delay_seconds: 0\nroutes:\n  - { path_prefix: /open/, mode: hybrid }\n";

#[test]
fn signed_requests_over_h2c_verify_and_reach_upstream_as_http11() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, POLICY);
    let rt = rt();
    let addr = sc.addr.to_string();

    // GET: @method @authority @path @query from the pseudo-headers.
    let raw = sc.sign(ACTIVE, "GET", "/h2/get?q=a%20b&x=1", None, &[]);
    let got = rt.block_on(h2_send(sc.addr, &raw, 16_384, &[]));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let rec = up.recorded_at("/h2/get?q=a%20b&x=1");
    assert_eq!(rec.len(), 1);
    assert!(rec[0].request_line.ends_with(" HTTP/1.1"));
    assert_eq!(rec[0].header("host"), Some(addr.as_str()));
    assert_eq!(rec[0].header("x-datafold-client-id"), Some(ACTIVE_CLIENT));
    assert_eq!(rec[0].header("x-datafold-key-id"), Some(ACTIVE));
    assert_eq!(rec[0].header("x-datafold-auth-method"), Some("signature"));
    assert_eq!(rec[0].header("content-length"), None);
    assert_eq!(rec[0].header("transfer-encoding"), None);

    // POST, body in many DATA frames, Content-Digest checked over the reassembled bytes.
    let body: Vec<u8> = (0..200_000).map(|i| (i * 13 % 251) as u8).collect();
    let raw = sc.sign(ACTIVE, "POST", "/h2/post", Some(&body), &[]);
    let got = rt.block_on(h2_send(sc.addr, &raw, 1000, &[]));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let rec = up.recorded_at("/h2/post");
    assert_eq!(rec[0].body_len, body.len());
    assert_eq!(rec[0].body_sha256, hex::encode(sha2::Sha256::digest(&body)));
    assert_eq!(rec[0].header("content-length"), Some("200000"));

    // Tampered: the body, the path, the authority. None reaches the upstream.
    let raw = sc.sign(ACTIVE, "POST", "/h2/t-body", Some(&body), &[]);
    let mut t = raw.clone();
    let n = t.len() - 1;
    t[n] ^= 1;
    let got = rt.block_on(h2_send(sc.addr, &t, 1000, &[]));
    assert_eq!(got.status, 401);
    let j: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(j["error"]["code"], "DIGEST_MISMATCH");
    let raw = sc.sign(ACTIVE, "GET", "/h2/t-path-a", None, &[]);
    let t = common::sidecar::replace(&raw, "/h2/t-path-a", "/h2/t-path-b");
    assert_eq!(rt.block_on(h2_send(sc.addr, &t, 1000, &[])).status, 401);
    let raw = sc.sign(ACTIVE, "GET", "/h2/t-auth", None, &[]);
    let t = common::sidecar::replace(&raw, &format!("Host: {addr}"), "Host: localhost:1");
    let got = rt.block_on(h2_send(sc.addr, &t, 1000, &[]));
    assert_eq!(got.status, 401, "{}", String::from_utf8_lossy(&got.body));
    std::thread::sleep(Duration::from_millis(100));
    for p in ["/h2/t-body", "/h2/t-path-a", "/h2/t-path-b", "/h2/t-auth"] {
        assert!(up.recorded_at(p).is_empty(), "{p} reached the upstream");
    }

    // Identity headers a client sends over h2 are stripped like over HTTP/1.1.
    let got = rt.block_on(h2_send(
        sc.addr,
        format!("GET /open/forged HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
        1000,
        &[
            ("x-datafold-client-id", "admin"),
            ("x-datafold-auth-method", "signature"),
        ],
    ));
    assert_eq!(got.status, 200);
    let rec = up.recorded_at("/open/forged");
    assert_eq!(rec[0].header("x-datafold-client-id"), None);
    assert_eq!(rec[0].header("x-datafold-auth-method"), Some("legacy"));

    // curl with prior knowledge, signed by `sigproxy sign`, too.
    let raw = sc.sign(ACTIVE, "PUT", "/h2/curl", Some(b"{\"a\":1}"), &[]);
    let g = curl::send_raw(
        &raw,
        &format!("http://{addr}"),
        &["--http2-prior-knowledge"],
    );
    assert_eq!((g.status, g.version.as_str()), (200, "2"), "{g:?}");
    assert_eq!(up.recorded_at("/h2/curl")[0].body_len, 7);
}

#[test]
fn cookie_crumbs_are_one_field_for_the_signature_and_the_upstream() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, POLICY);
    // Signed over the cookie as one field; sent as two crumbs (RFC 9113 §8.2.3).
    let raw = sc.sign(
        ACTIVE,
        "GET",
        "/h2/cookie",
        None,
        &[
            "-H",
            "Cookie: a=1; b=2",
            "--components",
            "@method @authority @path cookie",
        ],
    );
    let (m, t, headers, _) = parse_raw(&raw);
    let without: Vec<String> = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("cookie"))
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let stripped = format!("{m} {t} HTTP/1.1\r\n{}\r\n\r\n", without.join("\r\n"));
    let got = rt().block_on(h2_send(
        sc.addr,
        stripped.as_bytes(),
        1000,
        &[("cookie", "a=1"), ("cookie", "b=2")],
    ));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    let rec = up.recorded_at("/h2/cookie");
    assert_eq!(rec[0].all("cookie"), ["a=1; b=2"]);
}

#[test]
fn settings_advertise_the_policy_bounds_and_big_heads_get_431() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        "mode: hybrid\nhttp2: {max_concurrent_streams: 7, max_header_list_bytes: 4096}\n",
    );
    // The advertised stream limit, as the h2 client reads it from our SETTINGS.
    let advertised = rt().block_on(async {
        let tcp = tokio::net::TcpStream::connect(sc.addr).await.unwrap();
        let (client, mut conn) = h2::client::handshake(tcp).await.unwrap();
        let mut client = client.ready().await.unwrap();
        let req = http::Request::get(format!("http://{}/small", sc.addr))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = tokio::select! {
            r = resp => r.unwrap(),
            r = &mut conn => panic!("connection ended first: {r:?}"),
        };
        assert_eq!(resp.status(), 200);
        conn.max_concurrent_send_streams()
    });
    assert_eq!(advertised, 7);
    // A head over max_header_list_bytes: 431, and nothing upstream.
    let big = format!("X-Big: {}", "b".repeat(8000));
    let g = curl::get(
        &format!("http://{}/big", sc.addr),
        &["--http2-prior-knowledge", "-H", &big],
    );
    assert_eq!(g.status, 431, "{g:?}");
    assert!(up.recorded_at("/big").is_empty());
}

/// Open a stream, send a complete GET, reset it after `pause` (zero: at once); repeat. Returns
/// (streams opened, how the connection ended).
async fn rapid_reset(
    addr: SocketAddr,
    max_streams: usize,
    within: Duration,
    pause: Duration,
) -> (usize, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let deadline = Instant::now() + within;
    let mut opened = 0usize;
    while opened < max_streams && Instant::now() < deadline {
        client = match tokio::time::timeout(Duration::from_secs(5), client.ready()).await {
            Ok(Ok(c)) => c,
            _ => break,
        };
        let req = http::Request::get(format!("http://{addr}/reset/{opened}"))
            .body(())
            .unwrap();
        let Ok((_resp, mut send)) = client.send_request(req, true) else {
            break;
        };
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        send.send_reset(h2::Reason::CANCEL);
        opened += 1;
        if opened.is_multiple_of(8) {
            tokio::task::yield_now().await;
        }
    }
    let ended = match tokio::time::timeout(Duration::from_secs(10), conn).await {
        Ok(Ok(Ok(()))) => "closed cleanly".to_string(),
        Ok(Ok(Err(e))) => format!("{e:?} {:?}", e.reason()),
        Ok(Err(e)) => format!("task: {e}"),
        Err(_) => "still open".to_string(),
    };
    (opened, ended)
}

#[test]
fn a_rapid_reset_flood_is_cut_off_and_the_proxy_stays_healthy() {
    // A slow backend: each request the proxy forwards keeps it busy for 300 ms after the client
    // has already cancelled it, the work a rapid-reset attacker wants to pile up. The client
    // waits 10 ms before each reset, so the proxy has accepted the stream (h2's own bound, on
    // streams reset before they are accepted, never sees it).
    let up = Upstream::start(Duration::from_millis(300));
    let sc = Sidecar::start(
        up.addr,
        "mode: hybrid\ndrain_delay_seconds: 0\nhttp2: {max_concurrent_streams: 10, max_pending_resets: 5}\n",
    );
    let rt = rt();
    let (opened, ended) = rt.block_on(rapid_reset(
        sc.addr,
        600,
        Duration::from_secs(30),
        Duration::from_millis(10),
    ));
    // Cut off: GOAWAY ENHANCE_YOUR_CALM, or (when the client was still writing as the proxy
    // closed) a broken connection; the `h2_abuse` count below says which side ended it.
    assert_ne!(ended, "still open", "after {opened} streams");
    assert!(opened < 600, "{opened} streams were accepted: {ended}");
    // The upstream work the flood caused is bounded by the stream limits, not by its length:
    // a stream reset by the client keeps its slot until its upstream request is answered, so
    // at most 2 x max_concurrent_streams requests of this connection are at the upstream at
    // once.
    std::thread::sleep(Duration::from_millis(800));
    let reached = up
        .recorded()
        .iter()
        .filter(|r| r.target().starts_with("/reset/"))
        .count();
    assert!(reached > 0, "no stream of the flood was forwarded at all");
    let peak = up.peak_concurrency();
    assert!(
        peak <= 2 * 10,
        "{peak} requests at the upstream at once ({reached} in all)"
    );
    // Healthy: ready, serving h2 and HTTP/1.1, the cut counted.
    assert_eq!(sc.admin_get("/readyz").status, 200);
    let g = curl::get(
        &format!("http://{}/after", sc.addr),
        &["--http2-prior-knowledge"],
    );
    assert_eq!((g.status, g.version.as_str()), (200, "2"), "{g:?}");
    let m = String::from_utf8_lossy(&sc.admin_get("/metrics").body).into_owned();
    assert!(
        m.lines().any(
            |l| l.starts_with("datafold_connections_refused_total{reason=\"h2_abuse\"}")
                && !l.ends_with(" 0")
        ),
        "{m}"
    );
}

#[test]
fn a_fast_backend_rapid_reset_flood_is_cut_off_too() {
    // Resets that land before the proxy accepted the stream: h2's own pending-reset bound.
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        "mode: hybrid\ndrain_delay_seconds: 0\nhttp2: {max_pending_resets: 5}\n",
    );
    let (opened, ended) = rt().block_on(rapid_reset(
        sc.addr,
        20_000,
        Duration::from_secs(30),
        Duration::ZERO,
    ));
    // Either bound may fire first; the flood must not run to its end.
    assert!(opened < 20_000, "{ended} after {opened} streams");
    assert_eq!(sc.admin_get("/readyz").status, 200);
    let g = curl::get(
        &format!("http://{}/after", sc.addr),
        &["--http2-prior-knowledge"],
    );
    assert_eq!(g.status, 200, "{g:?}");
}

#[test]
fn h2c_follows_http2_enabled() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: hybrid\nhttp2: {enabled: false}\n");
    let g = curl::get(
        &format!("http://{}/no-h2", sc.addr),
        &["--http2-prior-knowledge"],
    );
    assert_ne!(g.status, 200, "{g:?}");
    assert!(up.recorded_at("/no-h2").is_empty());
    let g = curl::get(&format!("http://{}/h1", sc.addr), &[]);
    assert_eq!((g.status, g.version.as_str()), (200, "1.1"));
}
