//! Black-box, on the built binary: how a request's first bytes are read — the next request on an
//! idle keep-alive connection (read in one call of up to 4 KiB into a buffer the wait does not
//! keep, then handed to Pingora's parser), and the first request on a plain listener where the
//! h2c preface decides HTTP/1.1 or HTTP/2. Asserts what the upstream received, byte for byte:
//! heads split across many small writes, heads at and across the 4 KiB read, heads of several
//! reads, pipelined requests and bodies behind the head, a slow head after an idle wait
//! (header timeout), a last request with the client's FIN, and the HTTP/2 preface trickled a byte
//! at a time. Not about timing: no assertion on how many reads were made (benches/load).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::client::{Body, Conn};
use common::sidecar::{ACTIVE, ACTIVE_CLIENT, Sidecar};
use common::upstream::{Recorded, Upstream};
use sha2::Digest as _;

/// A GET whose head is exactly `len` bytes: an `X-Pad` header of `x`s fills it.
fn head_of(path: &str, len: usize) -> Vec<u8> {
    let h = format!(
        "GET {path} HTTP/1.1\r\nHost: app.test\r\nX-Pad: {}\r\n\r\n",
        pad_of(path, len)
    );
    assert_eq!(h.len(), len);
    h.into_bytes()
}

/// The `X-Pad` value that makes `head_of(path, len)` `len` bytes long.
fn pad_of(path: &str, len: usize) -> String {
    let rest = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nX-Pad: \r\n\r\n").len();
    assert!(len > rest, "{len} is too short");
    "x".repeat(len - rest)
}

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// A keep-alive connection that has made one request and been answered: the next request on it
/// goes through the idle wait.
fn warm(sc: &Sidecar) -> Conn {
    let mut c = Conn::open(sc.addr);
    let r = c.request("GET", "/warm", &[], Body::None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c
}

/// The one request the upstream saw at `target`.
fn one_at(up: &Upstream, target: &str) -> Recorded {
    let got = up.recorded_at(target);
    assert_eq!(got.len(), 1, "{target}: {got:?}");
    got.into_iter().next().unwrap()
}

#[test]
fn next_head_split_across_many_small_writes_reaches_the_upstream_whole() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    let mut c = warm(&sc);
    let mut w = c.writer();
    w.set_nodelay(true).unwrap();
    let wire = b"GET /split/one?q=1 HTTP/1.1\r\nHost: app.test\r\nX-Trickled: abc def\r\n\r\n";
    // One byte per write, a pause between: each arrives on its own (bounded: ~70 writes).
    for b in wire.iter() {
        w.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let r = c.read().expect("a response");
    assert_eq!(r.status, 200);
    let got = one_at(&up, "/split/one?q=1");
    assert_eq!(got.request_line, "GET /split/one?q=1 HTTP/1.1");
    assert_eq!(got.header("x-trickled"), Some("abc def"));
    // The connection still carries requests afterwards.
    assert_eq!(c.request("GET", "/after", &[], Body::None).status, 200);
    assert_eq!(up.recorded_at("/after").len(), 1);
}

#[test]
fn next_heads_at_and_across_the_first_read_reach_the_upstream_whole() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    let mut c = warm(&sc);
    // Around 4 KiB (the first read), two reads' worth, and many reads' worth.
    for len in [4095, 4096, 4097, 8191, 8192, 8193, 40_000] {
        let path = format!("/big/{len}");
        c.write_raw(&head_of(&path, len));
        let r = c.read().expect("a response");
        assert_eq!(r.status, 200, "{len}");
        let got = one_at(&up, &path);
        assert_eq!(
            got.header("x-pad"),
            Some(pad_of(&path, len).as_str()),
            "{len}"
        );
        assert_eq!(got.header("host"), Some("app.test"));
    }
    // The same sizes as the first request of a connection (the h2c preface check reads it).
    for len in [4096, 4097, 9000] {
        let path = format!("/first/{len}");
        let mut f = Conn::open(sc.addr);
        f.write_raw(&head_of(&path, len));
        assert_eq!(f.read().expect("a response").status, 200, "{len}");
        let got = one_at(&up, &path);
        assert_eq!(
            got.header("x-pad"),
            Some(pad_of(&path, len).as_str()),
            "{len}"
        );
    }
}

#[test]
fn pipelined_requests_and_bodies_behind_the_next_head_are_each_served() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    let mut c = warm(&sc);
    let body = vec![b'b'; 6000];
    // Three requests in one write, crossing the first read's 4 KiB: a GET, a POST whose body
    // straddles the boundary, a GET behind it.
    let mut wire = b"GET /pipe/1 HTTP/1.1\r\nHost: app.test\r\n\r\n".to_vec();
    wire.extend_from_slice(
        format!(
            "POST /pipe/2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"GET /pipe/3 HTTP/1.1\r\nHost: app.test\r\n\r\n");
    assert!(wire.len() > 4096);
    c.write_raw(&wire);
    for i in 1..=3 {
        let r = c.read().unwrap_or_else(|| panic!("response {i}"));
        assert_eq!(r.status, 200, "response {i}");
    }
    let rec: Vec<String> = up
        .recorded()
        .iter()
        .filter(|r| r.target().starts_with("/pipe/"))
        .map(|r| r.request_line.clone())
        .collect();
    assert_eq!(
        rec,
        [
            "GET /pipe/1 HTTP/1.1",
            "POST /pipe/2 HTTP/1.1",
            "GET /pipe/3 HTTP/1.1"
        ]
    );
    let post = one_at(&up, "/pipe/2");
    assert_eq!(post.body_len, body.len());
    assert_eq!(post.body_sha256, sha(&body));
    // A small POST whose head and body arrive in the same read.
    let small = b"hello, body";
    c.write_raw(
        format!(
            "POST /pipe/4 HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n",
            small.len()
        )
        .as_bytes()
        .iter()
        .chain(small.iter())
        .copied()
        .collect::<Vec<u8>>()
        .as_slice(),
    );
    assert_eq!(c.read().expect("response 4").status, 200);
    let got = one_at(&up, "/pipe/4");
    assert_eq!(got.body_sha256, sha(small));
    // Nothing else reached the upstream: no body byte was taken for a request.
    assert_eq!(up.recorded().len(), 5);
}

#[test]
fn a_signed_next_request_in_small_writes_verifies() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: required\n");
    let mut c = Conn::open(sc.addr);
    // The first signed request, then the next one on the same connection a few bytes at a time.
    for (i, chunk) in [usize::MAX, 7].into_iter().enumerate() {
        let body = format!("{{\"n\":{i}}}");
        let raw = sc.sign(
            ACTIVE,
            "POST",
            &format!("/signed/{i}"),
            Some(body.as_bytes()),
            &[],
        );
        let mut w = c.writer();
        w.set_nodelay(true).unwrap();
        for part in raw.chunks(chunk.min(raw.len())) {
            w.write_all(part).unwrap();
            if chunk != usize::MAX {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let r = c.read().expect("a response");
        assert_eq!(r.status, 200, "{i}: {}", String::from_utf8_lossy(&r.body));
        let got = one_at(&up, &format!("/signed/{i}"));
        assert_eq!(got.header("x-datafold-client-id"), Some(ACTIVE_CLIENT));
        assert_eq!(got.body_sha256, sha(body.as_bytes()));
    }
}

#[test]
fn a_slow_next_head_is_cut_off_by_the_header_timeout() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        "mode: off\nlimits:\n  header_timeout_seconds: 1\n  keepalive_timeout_seconds: 30\n",
    );
    let c = warm(&sc);
    let mut w = c.writer();
    w.set_nodelay(true).unwrap();
    w.write_all(b"GET /slow HTTP/1.1\r\n").unwrap();
    let t0 = Instant::now();
    let mut closed = false;
    // A header byte every 200 ms, for at most 5 s: the head never ends.
    while t0.elapsed() < Duration::from_secs(5) {
        if w.write_all(b"X").is_err() || probe_closed(&w) {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(closed, "a trickled head after an idle wait was not cut off");
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "closed late: {:?}",
        t0.elapsed()
    );
    assert!(up.recorded_at("/slow").is_empty());
}

/// Whether the proxy closed its side (a read sees EOF, or the socket errs) rather than only being
/// quiet for the probe's 10 ms.
fn probe_closed(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    match (&*s).read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn a_last_request_sent_with_the_clients_fin_is_answered() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    let mut c = warm(&sc);
    let w = c.writer();
    (&w).write_all(b"GET /last HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    w.shutdown(Shutdown::Write).unwrap();
    let r = c.read().expect("the last response");
    assert_eq!(r.status, 200);
    assert_eq!(one_at(&up, "/last").request_line, "GET /last HTTP/1.1");
}

#[test]
fn a_first_request_whose_first_bytes_look_like_the_h2_preface_is_http11() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    // `P` and `PR` could still be `PRI`: more is read before deciding; `POST` and `PRO…` are
    // HTTP/1.1 requests (a method that starts like the preface is not HTTP/2).
    for (method, path) in [("POST", "/p/post"), ("PROPFIND", "/p/propfind")] {
        let body = b"0123456789";
        let wire = format!(
            "{method} {path} HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n0123456789",
            body.len()
        );
        let mut c = Conn::open(sc.addr);
        let mut w = c.writer();
        w.set_nodelay(true).unwrap();
        let bytes = wire.as_bytes();
        w.write_all(&bytes[..1]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        w.write_all(&bytes[1..2]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        w.write_all(&bytes[2..]).unwrap();
        let r = c.read().expect("a response");
        assert_eq!(r.status, 200, "{method}");
        let got = one_at(&up, path);
        assert_eq!(got.request_line, format!("{method} {path} HTTP/1.1"));
        assert_eq!(got.body_sha256, sha(body));
    }
}

#[test]
fn the_h2_preface_trickled_a_byte_at_a_time_or_sent_whole_is_http2() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    for (trickle, path) in [(true, "/h2/trickled"), (false, "/h2/whole")] {
        assert_eq!(h2_get(&sc, path, trickle), Some(0x88), "{path}: no 200");
        let got = one_at(&up, path);
        assert_eq!(got.request_line, format!("GET {path} HTTP/1.1"));
        assert_eq!(got.header("host"), Some("app.test"));
    }
}

/// A GET for `path` over prior-knowledge h2c by hand, so the test decides how the bytes arrive:
/// the connection preface (RFC 9113 §3.4) one byte per write (`trickle`) or with the frames
/// after it in one write (everything read before HTTP/2 is decided must be put back), an empty
/// SETTINGS, and a HEADERS frame (HPACK: static `:method GET`, `:scheme http`, literal `:path`
/// and `:authority`; END_STREAM | END_HEADERS) on stream 1. Returns the first byte of the
/// answer's header block (`:status 200` from the static table is 0x88), `None` without one.
fn h2_get(sc: &Sidecar, path: &str, trickle: bool) -> Option<u8> {
    let mut s = TcpStream::connect(sc.addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut frames = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 8]);
    block.extend_from_slice(b"app.test");
    frames.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]);
    frames.extend_from_slice(&block);
    if trickle {
        for b in preface {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        s.write_all(&frames).unwrap();
    } else {
        s.write_all(&[&preface[..], &frames].concat()).unwrap();
    }
    // Read frames until a HEADERS frame on stream 1 (bounded: 64 frames, 10 s per read).
    for _ in 0..64 {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).ok()?;
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).ok()?;
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        assert_ne!(h[3], 7, "GOAWAY: {payload:?}");
        if h[3] == 1 && stream == 1 {
            return payload.first().copied();
        }
        if h[3] == 4 && h[4] & 1 == 0 {
            s.write_all(&[0, 0, 0, 4, 1, 0, 0, 0, 0]).unwrap(); // SETTINGS ACK
        }
    }
    None
}
