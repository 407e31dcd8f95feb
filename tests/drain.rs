//! Zero-downtime stop, black-box: the real binary under steady load on fresh connections gets
//! SIGTERM. For `drain_delay_seconds` it keeps accepting and answering every request (each
//! response closing its connection, `/readyz` 503 throughout), then stops accepting, lets the
//! requests in flight finish, and exits 0 within the delay plus the grace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::client::{Body, Conn};
use common::sidecar::Sidecar;
use common::upstream::Upstream;

/// One request on a fresh connection: `Ok((status, connection header))` or the I/O failure.
fn fresh_request(addr: SocketAddr) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /load HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let status = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|c| c.parse().ok())
                        .ok_or("no status")?;
                    let conn = head
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
                                .map(|(_, v)| v.trim().to_ascii_lowercase())
                        })
                        .unwrap_or_default();
                    return Ok((status, conn));
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("closed after {} bytes", buf.len()))
}

struct Sample {
    sent: Instant,
    result: Result<(u16, String), String>,
}

#[test]
fn sigterm_drains_then_stops_without_a_refused_connection() {
    // Each request spends 300 ms upstream, so there is always one in flight.
    let up = Upstream::start(Duration::from_millis(300));
    let mut sc = Sidecar::start(
        up.addr,
        "mode: off\ndrain_delay_seconds: 2\nlimits:\n  keepalive_timeout_seconds: 30\n",
    );
    let addr = sc.addr;
    // A keep-alive client that is idle when the stop begins: its next response must close.
    let mut idle = Conn::open(addr);
    assert_eq!(idle.request("GET", "/warm", &[], Body::None).status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                // Bounded: the test stops the load, and no loop runs past 30 s regardless.
                while !stop.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(30) {
                    let sent = Instant::now();
                    let result = fresh_request(addr);
                    let refused = result.is_err();
                    samples.lock().unwrap().push(Sample { sent, result });
                    if refused {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));

    let term = Instant::now();
    sc.signal("TERM");
    // /readyz is 503 from the moment the signal is handled (a few ms for delivery and the
    // runtime's signal task) until the admin listener closes.
    std::thread::sleep(Duration::from_millis(100));
    let mut readyz = Vec::new();
    while term.elapsed() < Duration::from_millis(1700) {
        if let Ok(s) = TcpStream::connect_timeout(&sc.admin, Duration::from_millis(500)) {
            drop(s);
            let mut c = Conn::open(sc.admin);
            c.send("GET", "/readyz", &["Connection: close"], Body::None);
            if let Some(r) = c.read() {
                readyz.push((term.elapsed(), r.status));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle_after = idle.request("GET", "/idle-client", &[], Body::None);

    let status = sc.wait_exit(Duration::from_secs(10));
    let exited = term.elapsed();
    stop.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }

    assert!(!readyz.is_empty(), "no /readyz answer during the drain");
    for (at, st) in &readyz {
        assert_eq!(*st, 503, "/readyz answered {st} {at:?} after SIGTERM");
    }
    assert_eq!(idle_after.status, 200);
    assert_eq!(
        idle_after.header("connection"),
        Some("close"),
        "a keep-alive client must be told to move on during the drain"
    );
    let status = status.expect("sigproxy did not exit within drain + grace");
    assert!(status.success(), "exit status {status:?}");
    // drain 2 s + grace 1 s (the harness's shutdown_grace_seconds) + start/stop slack.
    assert!(exited < Duration::from_secs(5), "exit took {exited:?}");

    let samples = samples.lock().unwrap();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= term && s.sent < term + Duration::from_millis(1800))
        .collect();
    assert!(
        during.len() >= 3,
        "too little load during the drain ({} requests)",
        during.len()
    );
    for s in &during {
        match &s.result {
            Ok((200, conn)) => assert_eq!(conn, "close", "drain responses close their connection"),
            other => panic!(
                "request sent {:?} after SIGTERM failed: {other:?}",
                s.sent - term
            ),
        }
    }
    // Everything sent before the stop completed, in flight at SIGTERM included.
    for s in samples.iter().filter(|s| s.sent < term) {
        assert!(
            matches!(s.result, Ok((200, _))),
            "request sent before SIGTERM failed: {:?}",
            s.result
        );
    }
    assert!(up.recorded().len() >= during.len());
}
