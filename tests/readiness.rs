//! `/readyz` that means ready (issue 15 item 5), against the built `sigproxy run`: it waits for the
//! key directory's first successful fetch and for a Redis replay store (with `on_store_error:
//! reject`) to answer, names what it waits for and why, says so once `readiness.timeout_seconds`
//! passed (and serves then with `on_timeout: ready`), and the directory's and the store's state
//! shows in the metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use scale_common::jwks_server::{JwksServer, jwk, jwks};
use scale_common::proxy::{Sigproxy, code, sign_get};
use scale_common::redis_server::RedisServer;
use scale_common::redis_topology::wait_until;

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;
use upstream::Upstream;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn readyz(p: &Sigproxy) -> (u16, serde_json::Value) {
    let r = p.admin_get("/readyz");
    (r.status, r.json())
}

/// The reason `/readyz` gives for `check`, if it waits for it.
fn waiting(body: &serde_json::Value, check: &str) -> Option<String> {
    body["waiting_for"]
        .as_array()?
        .iter()
        .find(|w| w["check"] == check)
        .map(|w| w["reason"].as_str().unwrap_or_default().to_owned())
}

fn metrics(p: &Sigproxy) -> String {
    String::from_utf8(p.admin_get("/metrics").body).unwrap()
}

fn directory_policy(url: &str, readiness: &str) -> String {
    format!(
        "mode: required\nsignature:\n  public_authority: \"api.test\"\nkey_directory:\n  url: \"{url}\"\n  refresh_seconds: 1\nreadiness:\n{readiness}\n"
    )
}

#[test]
fn readyz_waits_for_the_key_directory_and_says_why() {
    let dir = JwksServer::start(&jwks(&[jwk(&key(), "dir-1", "")]), None);
    dir.set_status(503);
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::spawn(
        up.addr,
        &directory_policy(&dir.url(), "  timeout_seconds: 2"),
    );
    let (status, body) = readyz(&p);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    let reason = waiting(&body, "key_directory").expect("waits for the key directory");
    assert!(reason.contains("503"), "{reason}");
    let m = metrics(&p);
    assert!(m.contains("datafold_key_directory_loaded 0"), "{m}");
    assert!(
        !m.contains("datafold_key_directory_failures_total 0\n"),
        "{m}"
    );

    // Past the timeout: still not ready (the default), and it says so, in /readyz and once in the log.
    assert!(wait_until(
        Duration::from_secs(10),
        || readyz(&p).1["timed_out"] == true
    ));
    let (status, body) = readyz(&p);
    assert_eq!(status, 503);
    assert!(waiting(&body, "key_directory").is_some(), "{body}");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(p.log_path())
            .unwrap()
            .contains("readiness: still waiting")
    }));

    // The directory answers: ready within a refresh, and signed requests verify.
    dir.set_status(200);
    assert!(
        wait_until(Duration::from_secs(10), || readyz(&p).0 == 200),
        "{}",
        p.logs()
    );
    assert_eq!(readyz(&p).1, serde_json::json!({"ready": true}));
    let r = p.get("/api/x", &sign_get("/api/x", &key(), "dir-1", "n1"));
    assert_eq!(r.status, 200, "{r:?}");
    let m = metrics(&p);
    assert!(m.contains("datafold_key_directory_loaded 1"), "{m}");
    assert!(m.contains("datafold_key_directory_keys 1"), "{m}");
    // Once ready, the directory failing again does not make the pod unready.
    dir.set_status(500);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(readyz(&p).0, 200);
}

#[test]
fn on_timeout_ready_serves_with_what_it_has() {
    let mut dir = JwksServer::start(&jwks(&[]), None);
    dir.go_down();
    let up = Upstream::start(Duration::ZERO);
    let t = Instant::now();
    let p = Sigproxy::spawn(
        up.addr,
        &directory_policy(&dir.url(), "  timeout_seconds: 1\n  on_timeout: ready"),
    );
    assert!(wait_until(Duration::from_secs(10), || readyz(&p).0 == 200));
    assert!(t.elapsed() >= Duration::from_secs(1));
    let (_, body) = readyz(&p);
    assert_eq!(body["ready"], true);
    assert_eq!(body["timed_out"], true);
    assert!(waiting(&body, "key_directory").is_some(), "{body}");
}

#[test]
fn wait_for_key_directory_false_skips_the_check() {
    let mut dir = JwksServer::start(&jwks(&[]), None);
    dir.go_down();
    let up = Upstream::start(Duration::ZERO);
    // `start` waits for /readyz 200.
    let p = Sigproxy::start(
        up.addr,
        &directory_policy(&dir.url(), "  wait_for_key_directory: false"),
    );
    assert_eq!(readyz(&p).0, 200);
}

fn redis_policy(url: &str, on_store_error: &str) -> String {
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD.encode(key().verifying_key().as_bytes());
    format!(
        "mode: required\nsignature:\n  public_authority: \"api.test\"\nkeys:\n  - {{ key_id: k, client_id: c, public_key: \"{public}\" }}\nreplay:\n  store: redis\n  redis_url: \"{url}\"\n  on_store_error: {on_store_error}\n"
    )
}

#[test]
fn readyz_waits_for_redis_when_a_store_error_rejects() {
    let mut redis = RedisServer::start();
    redis.stop();
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::spawn(up.addr, &redis_policy(&redis.url(), "reject"));
    // The allow policy does not wait: it would serve (unchecked) without Redis anyway.
    let lenient = Sigproxy::start(up.addr, &redis_policy(&redis.url(), "allow"));
    assert_eq!(readyz(&lenient).0, 200);

    let (status, body) = readyz(&p);
    assert_eq!(status, 503, "{body}");
    let reason = waiting(&body, "replay_store").expect("waits for the replay store");
    assert!(
        reason.contains(&format!("127.0.0.1:{}", redis.port)),
        "{reason}"
    );
    assert!(wait_until(Duration::from_secs(5), || metrics(&p)
        .contains("datafold_replay_store_up 0")));
    let r = p.get("/api/x", &sign_get("/api/x", &key(), "k", "before"));
    assert_eq!(
        (r.status, code(&r).as_str()),
        (503, "REPLAY_STORE_UNAVAILABLE")
    );

    redis.restart();
    assert!(
        wait_until(Duration::from_secs(10), || readyz(&p).0 == 200),
        "{}",
        p.logs()
    );
    assert!(wait_until(Duration::from_secs(10), || metrics(&p)
        .contains("datafold_replay_store_up 1")));
    let r = p.get("/api/x", &sign_get("/api/x", &key(), "k", "after"));
    assert_eq!(r.status, 200, "{r:?}");

    // Redis going away later: the gauge drops, readiness stays (no flapping of every replica).
    redis.stop();
    assert!(wait_until(Duration::from_secs(15), || metrics(&p)
        .contains("datafold_replay_store_up 0")));
    assert_eq!(readyz(&p).0, 200);
}
