//! Lifecycle and edges of the gateway: graceful stop with a request in flight, two instances
//! side by side, the admin listener, `Expect: 100-continue`, hostile bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::client::{Body, Conn, request};
use common::gateway::{settings, start, start_with_admin};
use common::net::free_port;
use common::upstream::Upstream;
use sigproxy::admin::AdminState;

#[test]
fn graceful_stop_finishes_in_flight_and_exits_within_grace() {
    let up = Upstream::start(Duration::from_millis(1500));
    let mut s = settings(up.addr);
    s.shutdown_grace_seconds = 3;
    let mut gw = start(s);
    let addr = gw.addr;
    let client = std::thread::spawn(move || request(addr, "GET", "/slow", &[], Body::None).status);
    let t0 = Instant::now();
    while up.recorded().is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "request never reached upstream"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(gw.handle.in_flight(), 1);
    gw.handle.stop_graceful();
    assert_eq!(client.join().unwrap(), 200, "in-flight request was cut");
    // No longer accepting.
    let t1 = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(
            t1.elapsed() < Duration::from_secs(2),
            "still accepting after stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = gw
        .wait_exit(Duration::from_secs(8))
        .expect("server did not exit");
    assert!(took <= Duration::from_secs(6), "exit took {took:?}");
}

#[test]
fn two_instances_do_not_share_runtime_paths() {
    let up = Upstream::start(Duration::ZERO);
    let a = start(settings(up.addr));
    let b = start(settings(up.addr));
    let (da, db) = (
        a.handle.runtime_dir().to_path_buf(),
        b.handle.runtime_dir().to_path_buf(),
    );
    assert_ne!(da, db);
    assert!(da.join("sigproxy.pid").is_file());
    assert!(db.join("sigproxy.pid").is_file());
    assert!(!da.starts_with("/tmp/pingora"));
    assert_eq!(request(a.addr, "GET", "/", &[], Body::None).status, 200);
    assert_eq!(request(b.addr, "GET", "/", &[], Body::None).status, 200);
    drop(a);
    assert!(!da.exists(), "runtime dir left behind");
    assert!(db.exists());
}

#[test]
fn admin_endpoints_over_the_wire() {
    let up = Upstream::start(Duration::ZERO);
    let mut s = settings(up.addr);
    let admin_addr = format!("127.0.0.1:{}", free_port());
    s.admin_listen = Some(admin_addr.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let registry = prometheus::Registry::new();
    let c = prometheus::IntCounter::new("datafold_requests_total", "requests").unwrap();
    registry.register(Box::new(c.clone())).unwrap();
    c.inc_by(3);
    let state = AdminState {
        ready: ready.clone(),
        registry,
        status: Arc::new(|| serde_json::json!({"mode": "hybrid", "version": "test"})),
        readiness: None,
    };
    let _gw = start_with_admin(s, Some(state));
    let admin = admin_addr.parse().unwrap();
    let t0 = Instant::now();
    while TcpStream::connect(admin).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut conn = Conn::open(admin);
    assert_eq!(conn.request("GET", "/healthz", &[], Body::None).status, 200);
    assert_eq!(conn.request("GET", "/readyz", &[], Body::None).status, 503);
    ready.store(true, Ordering::Release);
    assert_eq!(
        request(admin, "GET", "/readyz", &[], Body::None).status,
        200
    );
    let m = request(admin, "GET", "/metrics", &[], Body::None);
    assert_eq!(m.status, 200);
    assert!(String::from_utf8_lossy(&m.body).contains("datafold_requests_total 3"));
    let st = request(admin, "GET", "/status", &[], Body::None);
    assert_eq!(st.json()["mode"], "hybrid");
    let nf = request(admin, "GET", "/nope", &[], Body::None);
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["error"]["code"], "NOT_FOUND");
}

#[test]
fn expect_continue_signed_body_is_read_and_forwarded_once() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let body = vec![b'x'; 200_000];
    let mut c = Conn::open(gw.addr);
    c.send(
        "POST",
        "/api",
        &[
            "x-test-signed: 1",
            "Expect: 100-continue",
            &format!("Content-Length: {}", body.len()),
        ],
        Body::None,
    );
    let interim = c.read().expect("interim response");
    assert_eq!(interim.status, 100);
    c.write_raw(&body);
    let r = c.read().expect("final response");
    assert_eq!(r.status, 200);
    let rec = up.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].body_len, body.len());
    assert_eq!(rec[0].header("expect"), None);
}

#[test]
fn hostile_bytes_do_not_take_the_proxy_down() {
    let up = Upstream::start(Duration::ZERO);
    let gw = start(settings(up.addr));
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Bad: \xff\xfe\r\nx-test-signed: 1\r\nContent-Length: 2\r\n\r\nhi",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for g in garbage {
        let mut c = Conn::open(gw.addr);
        c.write_raw(g);
        let _ = c.read();
    }
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2 << 20)
    );
    let mut c = Conn::open(gw.addr);
    c.write_raw(huge.as_bytes());
    let _ = c.read();
    assert_eq!(
        request(gw.addr, "GET", "/still-up", &[], Body::None).status,
        200
    );
}

#[test]
fn listeners_are_handed_to_an_upgrading_instance() {
    let up = Upstream::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(up.addr);
    s.runtime_dir = Some(dir.path().to_path_buf());
    let mut old = start(s.clone());
    assert_eq!(
        request(old.addr, "GET", "/old", &[], Body::None).status,
        200
    );
    // The new instance blocks in bootstrap until it receives the sockets.
    let mut s2 = s.clone();
    s2.upgrade = true;
    let new = std::thread::spawn(move || start(s2));
    std::thread::sleep(Duration::from_millis(300));
    old.handle.hand_over();
    let new = new.join().unwrap();
    assert_eq!(new.addr, old.addr);
    let t0 = Instant::now();
    let mut ok = 0;
    while t0.elapsed() < Duration::from_secs(2) {
        if request(new.addr, "GET", "/during", &[], Body::None).status == 200 {
            ok += 1;
        }
    }
    assert!(ok > 0);
    assert!(
        old.wait_exit(Duration::from_secs(10)).is_some(),
        "old instance did not exit"
    );
    assert_eq!(
        request(new.addr, "GET", "/after", &[], Body::None).status,
        200
    );
    // An explicit runtime dir is shared with the successor, so it is never removed. (Both
    // instances share one pid here, so the pid file itself proves nothing in-process.)
    assert!(dir.path().is_dir(), "shared runtime dir was removed");
}
