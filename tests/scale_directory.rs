//! Key rotation through the remote key directory, against the built `sigproxy run` and a JWKS
//! served by the test: a newly published key works on its first request, a removed key stops
//! working after the refresh, keyid spam causes a handful of fetches at most, and the directory
//! going down (or serving garbage) keeps the last good keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use scale_common::jwks_server::{JwksServer, jwk, jwks};
use scale_common::proxy::{Sigproxy, code, sign_get};

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;
use upstream::Upstream;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn policy(url: &str, refresh_seconds: u64) -> String {
    format!(
        r#"mode: required
signature:
  public_authority: "api.test"
key_directory:
  url: "{url}"
  refresh_seconds: {refresh_seconds}
"#
    )
}

/// A signed GET with a fresh nonce; returns (status, code, client id the backend was told).
fn call(p: &Sigproxy, up: &Upstream, key: &SigningKey, kid: &str) -> (u16, String) {
    let nonce = format!("{kid}-{:?}", Instant::now());
    let before = up.requests.lock().unwrap().len();
    let r = p.get("/api/k", &sign_get("/api/k", key, kid, &nonce));
    if r.status == 200 {
        let reqs = up.requests.lock().unwrap();
        assert_eq!(reqs.len(), before + 1);
        let last = reqs.last().unwrap();
        assert_eq!(last.header("x-datafold-key-id"), Some(kid));
    }
    (r.status, code(&r))
}

#[test]
fn rotation_through_the_directory() {
    let mut dir = JwksServer::start(
        &jwks(&[jwk(&key(1), "dir-1", r#","client_id":"partner-a""#)]),
        Some("\"v1\""),
    );
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(up.addr, &policy(&dir.url(), 1));
    assert_eq!(
        call(&p, &up, &key(1), "dir-1"),
        (200, String::new()),
        "{}",
        p.logs()
    );
    let last = up.requests.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.header("x-datafold-client-id"), Some("partner-a"));

    // Published now: works on the very first request (unknown keyid → immediate refetch).
    dir.set(
        &jwks(&[jwk(&key(1), "dir-1", ""), jwk(&key(2), "dir-2", "")]),
        Some("\"v2\""),
    );
    assert_eq!(call(&p, &up, &key(2), "dir-2"), (200, String::new()));
    let metrics = String::from_utf8(p.admin_get("/metrics").body).unwrap();
    assert!(
        metrics.contains("datafold_active_keys_total 2"),
        "{metrics}"
    );

    // Removed: refused once the 1 s refresh has run.
    dir.set(&jwks(&[jwk(&key(2), "dir-2", "")]), Some("\"v3\""));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = call(&p, &up, &key(1), "dir-1");
        if got.0 == 401 {
            assert_eq!(got.1, "KEY_NOT_FOUND");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dir-1 still accepted 5 s after removal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Revoked in the directory: KEY_REVOKED, not KEY_NOT_FOUND.
    dir.set(
        &jwks(&[jwk(&key(2), "dir-2", r#","status":"revoked""#)]),
        Some("\"v4\""),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(&p, &up, &key(2), "dir-2").0 == 200 {
        assert!(
            Instant::now() < deadline,
            "dir-2 still accepted 5 s after revocation"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        call(&p, &up, &key(2), "dir-2"),
        (401, "KEY_REVOKED".to_owned())
    );

    // Directory down, then serving garbage: the last good keys stay.
    dir.set(&jwks(&[jwk(&key(3), "dir-3", "")]), Some("\"v5\""));
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(&p, &up, &key(3), "dir-3").0 != 200 {
        assert!(Instant::now() < deadline, "dir-3 never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    dir.go_down();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(call(&p, &up, &key(3), "dir-3"), (200, String::new()));
    let st = p.status();
    let d = &st["keys"]["directory"];
    assert!(d["failures"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        d["last_error"].as_str().unwrap().contains("refused"),
        "{st}"
    );
    assert_eq!(d["keys"], 1, "{st}");
    assert_eq!(d["url"], dir.url());

    dir.come_back();
    dir.set("<html>maintenance</html>", Some("\"broken\""));
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(call(&p, &up, &key(3), "dir-3"), (200, String::new()));
    let st = p.status();
    assert!(
        st["keys"]["directory"]["last_error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{st}"
    );
    assert_eq!(st["keys"]["active"], 1);
    assert!(
        st["keys"]["sources"][0]
            .as_str()
            .unwrap()
            .contains("key directory")
    );
}

#[test]
fn unknown_keyid_spam_causes_a_handful_of_fetches() {
    let dir = JwksServer::start(&jwks(&[jwk(&key(1), "dir-1", "")]), Some("\"v1\""));
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(up.addr, &policy(&dir.url(), 300));
    let before = dir.requests();
    let stranger = key(9);
    for i in 0..100 {
        let kid = format!("random-{i}-{:?}", Instant::now());
        assert_eq!(
            call(&p, &up, &stranger, &kid),
            (401, "KEY_NOT_FOUND".to_owned())
        );
    }
    let fetches = dir.requests() - before;
    assert!(
        fetches <= 5,
        "100 unknown keyids caused {fetches} directory fetches"
    );
    let d = &p.status()["keys"]["directory"];
    assert_eq!(d["unknown_keyid_requests"], 100, "{d}");
    // The known key still works.
    assert_eq!(call(&p, &up, &key(1), "dir-1"), (200, String::new()));
    println!("100 unknown keyids → {fetches} directory fetch(es)");
}
