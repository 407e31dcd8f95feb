//! The replay store beyond one Redis node (issue 15 item 4), against the built `sigproxy run` and
//! real Redis processes on loopback: a 3-master Redis Cluster and a Sentinel-managed primary, each
//! losing its primary (SIGKILL) under signed load — no replay is ever accepted, refusals are 503
//! REPLAY_STORE_UNAVAILABLE within a bound, and service recovers by itself after the failover —
//! and `rediss://` with a CA, a client certificate and a password read from files made at test time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use scale_common::proxy::{Sigproxy, code, sign_get};
use scale_common::redis_topology::{
    Cluster, MASTER_NAME, SentinelSet, TLS_PASSWORD, TestPki, TlsRedis, wait_until,
};

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;
use upstream::Upstream;

const KID: &str = "topo-key";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn policy(replay: &str) -> String {
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD.encode(key().verifying_key().as_bytes());
    format!(
        r#"mode: required
signature:
  public_authority: "api.test"
keys:
  - key_id: {KID}
    client_id: topo-client
    public_key: "{public}"
replay:
  store: redis
  on_store_error: reject
{replay}
"#
    )
}

fn yaml_list(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// What one request got.
struct Sent {
    status: u16,
    code: String,
    took: Duration,
}

fn send(p: &Sigproxy, signed: &[String]) -> Sent {
    let t = Instant::now();
    let r = p.get("/api/t", signed);
    Sent {
        status: r.status,
        code: code(&r),
        took: t.elapsed(),
    }
}

/// Signed traffic through `p` for `duration`, with `fail` (losing a primary) run once after
/// `fail_after`: each round sends a fresh request, then replays one accepted earlier. Then waits for
/// 20 fresh requests in a row to pass, and replays everything ever accepted once more. Asserts the
/// issue's three properties and returns (refused fresh requests, seconds to recover).
fn load_through_a_failover(
    p: &Sigproxy,
    up: &Upstream,
    duration: Duration,
    fail_after: Duration,
    fail: impl FnOnce(),
) -> (usize, f64) {
    let start = Instant::now();
    let mut fail = Some(fail);
    let mut failed_at = None;
    let mut accepted: Vec<Vec<String>> = Vec::new();
    let (mut refused, mut replays_sent) = (0, 0);
    let mut last_refusal = None;
    let mut n = 0u64;
    while start.elapsed() < duration && n < 20_000 {
        n += 1;
        if failed_at.is_none() && start.elapsed() >= fail_after {
            (fail.take().unwrap())();
            failed_at = Some(Instant::now());
        }
        let signed = sign_get("/api/t", &key(), KID, &format!("load-{n}"));
        let s = send(p, &signed);
        match (s.status, s.code.as_str()) {
            (200, _) => accepted.push(signed),
            (503, "REPLAY_STORE_UNAVAILABLE") => {
                refused += 1;
                last_refusal = Some(Instant::now());
            }
            other => panic!("fresh request {n}: unexpected {other:?}\n{}", p.logs()),
        }
        assert!(
            s.took < Duration::from_secs(2),
            "fresh request {n} took {:?} ({})",
            s.took,
            s.status
        );
        if !accepted.is_empty() {
            let again = &accepted[(n as usize * 7) % accepted.len()];
            let s = send(p, again);
            replays_sent += 1;
            assert_ne!(s.status, 200, "a replay was accepted (round {n})");
            assert!(
                matches!(
                    (s.status, s.code.as_str()),
                    (401, "NONCE_REPLAYED") | (503, "REPLAY_STORE_UNAVAILABLE")
                ),
                "replay got {} {}",
                s.status,
                s.code
            );
            assert!(s.took < Duration::from_secs(2), "replay took {:?}", s.took);
        }
    }
    let failed_at = failed_at.expect("the load ended before the failure was injected");
    // Recovery: 20 fresh requests in a row accepted, within 30 s of the failure.
    let mut streak = 0;
    let recovered = wait_until(Duration::from_secs(30), || {
        n += 1;
        let signed = sign_get("/api/t", &key(), KID, &format!("load-{n}"));
        let s = send(p, &signed);
        if s.status == 200 {
            accepted.push(signed);
            streak += 1;
        } else {
            assert_eq!(
                (s.status, s.code.as_str()),
                (503, "REPLAY_STORE_UNAVAILABLE")
            );
            refused += 1;
            last_refusal = Some(Instant::now());
            streak = 0;
        }
        streak >= 20
    });
    assert!(recovered, "no recovery within 30 s\n{}", p.logs());
    let recovery = last_refusal.map_or(0.0, |t| t.duration_since(failed_at).as_secs_f64());
    // Every nonce ever accepted, before, during and after the failover, is still refused.
    for (i, signed) in accepted.iter().enumerate() {
        let s = send(p, signed);
        assert_eq!(
            (s.status, s.code.as_str()),
            (401, "NONCE_REPLAYED"),
            "accepted request {i} replayed after recovery"
        );
    }
    assert_eq!(
        up.requests.lock().unwrap().len(),
        accepted.len(),
        "the backend got exactly the accepted requests"
    );
    println!(
        "{} fresh accepted, {refused} refused (503), {replays_sent} replays refused during load; last refusal {recovery:.2} s after the failure",
        accepted.len()
    );
    (refused, recovery)
}

#[test]
fn cluster_loses_a_master_under_load() {
    let mut cluster = Cluster::start();
    let up = Upstream::start(Duration::ZERO);
    let seeds = cluster.seed_urls();
    let p = Sigproxy::start(
        up.addr,
        &policy(&format!("  redis_cluster_nodes: {}", yaml_list(&seeds))),
    );
    assert_eq!(p.status()["replay"]["scope"], "shared");
    let victim = cluster.masters()[0];
    let (_refused, recovery) = load_through_a_failover(
        &p,
        &up,
        Duration::from_secs(8),
        Duration::from_secs(2),
        || cluster.node_mut(victim).kill(),
    );
    assert!(cluster.wait_ok(Duration::from_secs(10)));
    assert!(!cluster.masters().contains(&victim));
    assert!(recovery < 30.0);
}

/// A master that hangs (SIGSTOP: a stalled or partitioned server) rather than dies: the cluster
/// fails it over, and the proxy must stop routing its slots to it although no connection breaks.
#[test]
fn cluster_master_hangs_under_load() {
    let cluster = Cluster::start();
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(
        up.addr,
        &policy(&format!(
            "  redis_cluster_nodes: {}",
            yaml_list(&cluster.seed_urls())
        )),
    );
    let victim = cluster.masters()[1];
    let node = cluster.nodes.iter().find(|n| n.port == victim).unwrap();
    let (_refused, recovery) = load_through_a_failover(
        &p,
        &up,
        Duration::from_secs(8),
        Duration::from_secs(2),
        || node.pause(),
    );
    node.resume();
    assert!(recovery < 30.0);
}

#[test]
fn sentinel_fails_over_under_load() {
    let mut set = SentinelSet::start();
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(
        up.addr,
        &policy(&format!(
            "  redis_sentinels: {}\n  redis_sentinel_master: {MASTER_NAME}",
            yaml_list(&set.sentinel_urls())
        )),
    );
    assert_eq!(p.status()["replay"]["scope"], "shared");
    let (old, new) = (set.primary.port, set.replica.port);
    let (_refused, recovery) = load_through_a_failover(
        &p,
        &up,
        Duration::from_secs(8),
        Duration::from_secs(2),
        || set.primary.kill(),
    );
    assert_eq!(
        set.reported_primary(),
        Some(new),
        "sentinels promoted the replica"
    );
    assert_ne!(old, new);
    assert!(recovery < 30.0);
}

#[test]
fn rediss_with_ca_client_certificate_and_password_files() {
    let pki = TestPki::make();
    let redis = TlsRedis::start(&pki, true);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, format!("{TLS_PASSWORD}\n")).unwrap();
    let files = |ca: &str| {
        format!(
            "  redis_url: \"{}\"\n  redis_password_file: \"{}\"\n  redis_ca_file: \"{}\"\n  redis_client_cert_file: \"{}\"\n  redis_client_key_file: \"{}\"",
            redis.url(),
            pw.display(),
            pki.path(ca).display(),
            pki.path("client.crt").display(),
            pki.path("client.key").display()
        )
    };
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(up.addr, &policy(&files("ca.crt")));
    let signed = sign_get("/api/t", &key(), KID, "tls-1");
    let s = send(&p, &signed);
    assert_eq!(s.status, 200, "{}", p.logs());
    let s = send(&p, &signed);
    assert_eq!((s.status, s.code.as_str()), (401, "NONCE_REPLAYED"));
    assert_eq!(p.status()["replay"]["store"], "redis");
    assert!(
        !std::fs::read_to_string(p.log_path())
            .unwrap()
            .contains(TLS_PASSWORD),
        "the password reached the log"
    );
    assert!(!p.status().to_string().contains(TLS_PASSWORD));

    // A proxy trusting another CA never gets an answer: not ready, and signed requests get 503.
    let wrong = Sigproxy::spawn(up.addr, &policy(&files("other-ca.crt")));
    let reason = || {
        let r = wrong.admin_get("/readyz");
        assert_eq!(r.status, 503);
        r.json()["waiting_for"]
            .as_array()
            .and_then(|w| w.iter().find(|w| w["check"] == "replay_store").cloned())
            .map(|w| w["reason"].to_string())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || reason()
            .to_lowercase()
            .contains("certificate")),
        "{}",
        reason()
    );
}
