//! Black-box: signed bodies of 1 KB, 60 KB, 1 MB and 10 MiB (the limit) reach the upstream
//! byte-exact (count and SHA-256) through the built binary, Content-Length and chunked; the
//! same bodies tampered by one byte reach it not at all; unsigned bodies on a hybrid route
//! stream through, even past max_body_bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::client::{Body, request};
use common::sidecar::{ACTIVE, Case, Sidecar, assert_rejected, head, reached, run_cases};
use common::upstream::Upstream;
use sha2::{Digest, Sha256};

const POLICY: &str = "mode: required
routes:
  - { path_prefix: /hybrid/, mode: hybrid }
";

/// Deterministic bytes covering every value (not UTF-8, has CRLFs and NULs).
fn body(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The same request with its Content-Length body re-framed as chunks of `size`.
fn chunked(raw: &[u8], size: usize) -> Vec<u8> {
    let h = head(raw);
    let payload = &raw[h.len()..];
    let mut out: String = h
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str("Transfer-Encoding: chunked\r\n\r\n");
    let mut out = out.into_bytes();
    for c in payload.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn flip_middle(raw: &[u8]) -> Vec<u8> {
    let start = head(raw).len();
    let mut raw = raw.to_vec();
    let i = start + (raw.len() - start) / 2;
    raw[i] ^= 0x01;
    raw
}

#[test]
fn signed_bodies_byte_exact_or_not_at_all() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, POLICY);
    let (sc, up) = (&sc, &up);
    let sizes: [(&'static str, usize); 4] = [
        ("1KB", 1024),
        ("60KB", 60 * 1024),
        ("1MB", 1024 * 1024),
        ("10MiB", 10 * 1024 * 1024),
    ];
    let mut cases: Vec<Case<'_>> = Vec::new();
    for (i, (name, n)) in sizes.into_iter().enumerate() {
        cases.push((
            name,
            Box::new(move || {
                let b = body(n, i as u64);
                let path = format!("/signed/{name}");
                let raw = sc.sign(ACTIVE, "POST", &path, Some(&b), &[]);
                let r = sc.send_raw(&raw);
                assert_eq!(
                    r.status,
                    200,
                    "{name}: {}",
                    String::from_utf8_lossy(&r.body)
                );
                let got = up.recorded_at(&path);
                assert_eq!(got.len(), 1, "{name}");
                assert_eq!(got[0].body_len, n, "{name}: byte count");
                assert_eq!(got[0].body_sha256, sha(&b), "{name}: content");
                assert_eq!(got[0].header("x-datafold-auth-method"), Some("signature"));
                // The same, chunked (fresh signature: the nonce is single-use).
                let cpath = format!("/signed/{name}-chunked");
                let raw = sc.sign(ACTIVE, "POST", &cpath, Some(&b), &[]);
                let r = sc.send_raw(&chunked(&raw, 16 * 1024 + 7));
                assert_eq!(
                    r.status,
                    200,
                    "{name} chunked: {}",
                    String::from_utf8_lossy(&r.body)
                );
                let got = up.recorded_at(&cpath);
                assert_eq!(got.len(), 1, "{name} chunked");
                assert_eq!(got[0].body_len, n, "{name} chunked: byte count");
                assert_eq!(got[0].body_sha256, sha(&b), "{name} chunked: content");
                // Tampered by one bit in the middle: 401, and not one byte upstream.
                let tpath = format!("/tampered/{name}");
                let raw = sc.sign(ACTIVE, "POST", &tpath, Some(&b), &[]);
                assert_rejected(&sc.send_raw(&flip_middle(&raw)), 401, "DIGEST_MISMATCH");
                let tcpath = format!("/tampered/{name}-chunked");
                let raw = sc.sign(ACTIVE, "POST", &tcpath, Some(&b), &[]);
                let t = chunked(&flip_middle(&raw), 8 * 1024);
                assert_rejected(&sc.send_raw(&t), 401, "DIGEST_MISMATCH");
                std::thread::sleep(Duration::from_millis(150));
                assert_eq!(reached(up, &tpath) + reached(up, &tcpath), 0, "{name}");
            }),
        ));
    }
    cases.push((
        "unsigned_hybrid_streams",
        Box::new(move || {
            // Past max_body_bytes: an unsigned body on a hybrid route is not buffered.
            for (i, n) in [1024, 11 * 1024 * 1024].into_iter().enumerate() {
                let b = body(n, 100 + i as u64);
                let path = format!("/hybrid/stream{i}");
                let r = request(sc.addr, "POST", &path, &[], Body::Length(&b));
                assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                let rec = up.recorded_at(&path).into_iter().next().unwrap();
                assert_eq!(
                    (rec.body_len, rec.body_sha256.as_str()),
                    (n, sha(&b).as_str())
                );
                assert_eq!(rec.header("x-datafold-auth-method"), Some("legacy"));
            }
            let b = body(300 * 1024, 7);
            let r = request(
                sc.addr,
                "POST",
                "/hybrid/chunks",
                &[],
                Body::Chunked(&b, 4096),
            );
            assert_eq!(r.status, 200);
            let rec = up
                .recorded()
                .into_iter()
                .find(|x| x.request_line.contains("/hybrid/chunks"))
                .unwrap();
            assert_eq!(
                (rec.body_len, rec.body_sha256.as_str()),
                (b.len(), sha(&b).as_str())
            );
        }),
    ));
    run_cases(cases);
}

/// An upstream that answers `413` as soon as it has a request head and then closes the
/// connection with the body unread (as a server with a body limit does). Every connection is
/// served in turn; at most `max` of them.
fn answers_before_the_body(max: usize) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(max) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
            );
            // Dropped with the body unread: the kernel resets the connection.
        }
    });
    addr
}

/// The upstream's early answer reaches the client — not a 502 because writing the rest of the
/// body failed after the upstream closed. Streamed (unsigned, hybrid) and read-whole (signed)
/// bodies; several rounds, since the reset races with the answer.
#[test]
fn an_upstream_answer_before_the_body_is_relayed() {
    const ROUNDS: usize = 4;
    let up = answers_before_the_body(4 * ROUNDS);
    let sc = Sidecar::start(up, POLICY);
    let big = body(16 * 1024 * 1024, 11);
    let mut raw = format!(
        "POST /hybrid/upload HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        sc.addr,
        big.len()
    )
    .into_bytes();
    raw.extend_from_slice(&big);
    let signed_body = body(8 * 1024 * 1024, 12);
    for round in 0..ROUNDS {
        // A fresh nonce each round.
        let signed = sc.sign(ACTIVE, "POST", "/signed/upload", Some(&signed_body), &[]);
        for (what, req) in [("streamed", &raw), ("signed", &signed)] {
            let r = sc.send_raw(req);
            assert_eq!(
                (r.status, r.body.as_slice()),
                (413, &b"too large"[..]),
                "{what}, round {round}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
}
