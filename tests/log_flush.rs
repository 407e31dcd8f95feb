//! Black-box: log lines are buffered (SIGPROXY_LOG_FLUSH_MS), and a clean stop writes them out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::client::{Body, request};
use common::sidecar::Sidecar;
use common::upstream::Upstream;

#[test]
fn buffered_audit_lines_are_written_on_sigterm() {
    let up = Upstream::start(Duration::ZERO);
    let mut sc =
        Sidecar::start_with_env(up.addr, "mode: off", &[("SIGPROXY_LOG_FLUSH_MS", "60000")]);
    let r = request(sc.addr, "GET", "/x", &["X-Request-Id: flush-1"], Body::None);
    assert_eq!(r.status, 200);
    // Buffered for up to a minute: nothing written yet.
    std::thread::sleep(Duration::from_millis(300));
    assert!(sc.audit().iter().all(|a| a["request_id"] != "flush-1"));
    assert!(sc.terminate(), "sigproxy did not exit on SIGTERM");
    let lines = sc.audit_for("flush-1");
    assert_eq!(lines.len(), 1, "{:?}", sc.stdout_lines());
    assert_eq!(lines[0]["event_type"], "exempt");
}
