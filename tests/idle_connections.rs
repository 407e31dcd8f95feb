//! Memory per idle client connection, black-box: 2,000 keep-alive connections that each made one
//! request and went quiet must cost the proxy little (a few KiB each, not Pingora's default 64 KiB
//! read buffer), and a normal request is still served at once meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::client::{Body, Conn, request};
use common::sidecar::Sidecar;
use common::upstream::Upstream;

const IDLE: usize = 2000;
/// Per idle connection, all costs included (socket state we own, task, buffers). The debug build
/// holds ~3.8–4.3 KiB (release ~3.5, benches/RESULTS.md); Pingora's defaults cost ~105 KiB here,
/// and Pingora's own per-connection task alone (~8.6 KiB, if a connection were served inside it
/// again) would exceed this; nginx ~0.5 KiB.
const BOUND_KIB: u64 = 6;

#[test]
fn two_thousand_idle_connections_stay_small() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(up.addr, "mode: off\n");
    // Warm up: worker threads, pools, allocator arenas.
    for _ in 0..50 {
        assert_eq!(
            request(sc.addr, "GET", "/warm", &[], Body::None).status,
            200
        );
    }
    let before = sc.rss_kib();
    let mut conns = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut c = Conn::open(sc.addr);
        let r = c.request("GET", &format!("/idle/{i}"), &[], Body::None);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        conns.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = sc.rss_kib();
    let per = after.saturating_sub(before) * 1024 / IDLE as u64;
    eprintln!("RSS {before} KiB -> {after} KiB with {IDLE} idle connections: {per} B each");
    assert!(
        per <= BOUND_KIB * 1024,
        "{per} B per idle connection (bound {BOUND_KIB} KiB)"
    );
    // Still serving, and the idle connections are still usable.
    assert_eq!(
        request(sc.addr, "GET", "/normal", &[], Body::None).status,
        200
    );
    for c in conns.iter_mut().step_by(200) {
        assert_eq!(c.request("GET", "/again", &[], Body::None).status, 200);
    }
}
