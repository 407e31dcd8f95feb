//! Black-box, on the built binary: the pool of idle upstream connections (src/proxy/pool.rs).
//! Asserts what the upstream saw, connection by connection: requests from different clients
//! share one idle connection; a connection the upstream closed while idle is never written to
//! again (a POST, which is not retried, gets through whole on a new one); and bytes an upstream
//! sends after its response — a second, unasked-for response — never reach the next client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::client::{Body, request};
use common::sidecar::Sidecar;
use common::upstream::Upstream;

/// What a raw upstream does after answering a request.
#[derive(Clone, Copy)]
enum After {
    /// Close the connection 100 ms later (no `Connection: close`: the proxy keeps it).
    Close,
    /// Write a second response nobody asked for 100 ms later, then keep the connection open.
    Unasked,
}

/// What reached the raw upstream, per request: connection number, request line, body.
type Seen = Arc<Mutex<Vec<(usize, String, Vec<u8>)>>>;

/// An upstream that answers one request per connection, then does `after`. Records
/// (connection number, request line, body) per request.
struct Raw {
    addr: SocketAddr,
    seen: Seen,
}

impl Raw {
    fn start(after: After) -> Raw {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            // Bounded: the tests make a handful of connections.
            for (n, c) in l.incoming().take(16).enumerate() {
                let Ok(c) = c else { return };
                let s = s.clone();
                std::thread::spawn(move || answer_once(c, n + 1, after, &s));
            }
        });
        Raw { addr, seen }
    }

    fn seen(&self) -> Vec<(usize, String, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }
}

fn answer_once(c: TcpStream, n: usize, after: After, seen: &Mutex<Vec<(usize, String, Vec<u8>)>>) {
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        if h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).unwrap();
    seen.lock()
        .unwrap()
        .push((n, line.trim_end().to_owned(), body));
    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nanswer {n:02}");
    w.write_all(answer.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    match after {
        After::Close => {}
        After::Unasked => {
            let _ = w.write_all(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 6\r\n\r\nunasked");
            // Held open (bounded) so only the unasked bytes, not a close, mark it.
            std::thread::sleep(Duration::from_secs(5));
        }
    }
}

#[test]
fn requests_from_different_clients_share_one_idle_upstream_connection() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    for n in 0..5 {
        // A new client connection each time: only the upstream side is reused.
        let r = request(sc.addr, "GET", &format!("/shared/{n}"), &[], Body::None);
        assert_eq!(r.status, 200);
    }
    assert_eq!(up.recorded().len(), 5);
    assert_eq!(
        up.connection_count(),
        1,
        "every request on the one pooled connection"
    );
}

#[test]
fn a_connection_the_upstream_closed_while_idle_is_not_written_to_again() {
    let up = Raw::start(After::Close);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    let first = request(sc.addr, "GET", "/first", &[], Body::None);
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"answer 01");
    // The upstream closes its idle connection 100 ms after answering.
    std::thread::sleep(Duration::from_millis(400));
    // A POST is never sent twice (not idempotent): it only gets through if the dead connection
    // is noticed before anything is written to it.
    let body = b"{\"one\":\"body\"}";
    let second = request(
        sc.addr,
        "POST",
        "/second",
        &["Content-Type: application/json"],
        Body::Length(body),
    );
    assert_eq!(
        second.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&second.body)
    );
    assert_eq!(second.body, b"answer 02");
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, 1);
    assert_eq!(
        seen[1],
        (2, "POST /second HTTP/1.1".to_owned(), body.to_vec())
    );
}

#[test]
fn bytes_an_upstream_sends_after_its_response_never_reach_the_next_client() {
    let up = Raw::start(After::Unasked);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    let first = request(sc.addr, "GET", "/first", &[], Body::None);
    assert_eq!(first.status, 200);
    // The unasked-for 418 arrives on the idle connection 100 ms after the answer.
    std::thread::sleep(Duration::from_millis(400));
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = request(sc.addr, "GET", "/second", &[], Body::None);
    assert!(Instant::now() < deadline);
    assert_eq!(second.status, 200, "the unasked response was relayed");
    assert_eq!(second.body, b"answer 02");
    let seen = up.seen();
    assert_eq!(
        seen.iter().map(|s| (s.0, s.1.as_str())).collect::<Vec<_>>(),
        [(1, "GET /first HTTP/1.1"), (2, "GET /second HTTP/1.1")]
    );
}
