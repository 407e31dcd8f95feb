//! Two `sigproxy run` processes sharing one real `redis-server` (`replay.store: redis`): a nonce
//! accepted by one is NONCE_REPLAYED at the other, a signed request sent to both at once passes
//! exactly once, a Redis outage answers 503 while the proxies stay up and recovers without a
//! restart, a request refused 503 while Redis hangs stays retryable once it answers again, and what
//! the Redis round trip adds to a signed request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use scale_common::proxy::{Sigproxy, code, sign_get};
use scale_common::redis_server::RedisServer;

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;
use upstream::Upstream;

const KID: &str = "scale-key";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn policy(store: &str) -> String {
    use base64::Engine as _;
    let public = base64::engine::general_purpose::STANDARD.encode(key().verifying_key().as_bytes());
    format!(
        r#"mode: required
signature:
  public_authority: "api.test"
keys:
  - key_id: {KID}
    client_id: scale-client
    public_key: "{public}"
replay:
{store}
"#
    )
}

fn redis_policy(redis: &RedisServer) -> String {
    policy(&format!("  store: redis\n  redis_url: \"{}\"", redis.url()))
}

fn recorded(up: &Upstream) -> usize {
    up.requests.lock().unwrap().len()
}

#[test]
fn a_nonce_used_at_one_replica_is_refused_at_the_other() {
    let redis = RedisServer::start();
    let up = Upstream::start(Duration::ZERO);
    let a = Sigproxy::start(up.addr, &redis_policy(&redis));
    let b = Sigproxy::start(up.addr, &redis_policy(&redis));

    let signed = sign_get("/api/orders", &key(), KID, "nonce-one");
    let r = a.get("/api/orders", &signed);
    assert_eq!(r.status, 200, "{:?} {}", r, a.logs());
    let r = b.get("/api/orders", &signed);
    assert_eq!((r.status, code(&r).as_str()), (401, "NONCE_REPLAYED"));
    let r = a.get("/api/orders", &signed);
    assert_eq!((r.status, code(&r).as_str()), (401, "NONCE_REPLAYED"));

    let signed = sign_get("/api/orders", &key(), KID, "nonce-two");
    assert_eq!(b.get("/api/orders", &signed).status, 200);
    assert_eq!(code(&a.get("/api/orders", &signed)), "NONCE_REPLAYED");
    assert_eq!(
        recorded(&up),
        2,
        "exactly the two accepted requests reached the backend"
    );
    for p in [&a, &b] {
        let s = p.status();
        assert_eq!(s["replay"]["store"], "redis");
        assert_eq!(s["replay"]["scope"], "shared");
        let m = String::from_utf8(p.admin_get("/metrics").body).unwrap();
        assert!(
            m.contains("datafold_replay_scope{scope=\"shared\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("datafold_replay_scope{scope=\"process\"} 0"),
            "{m}"
        );
        let log = std::fs::read_to_string(p.log_path()).unwrap();
        assert!(!log.contains("caught per process only"), "{log}");
    }
}

/// Issue 20: with the memory store each replica remembers only its own nonces. The same signed
/// request is refused as a replay by the process that saw it, and accepted by the other one — and
/// both say so: `/status` `replay.scope`, the scope metric, and one warning line at start.
#[test]
fn a_memory_store_pair_catches_replays_per_process_only_and_says_so() {
    let up = Upstream::start(Duration::ZERO);
    let a = Sigproxy::start(up.addr, &policy("  store: memory"));
    let b = Sigproxy::start(up.addr, &policy("  store: memory"));
    let signed = sign_get("/api/orders", &key(), KID, "per-process");
    assert_eq!(a.get("/api/orders", &signed).status, 200);
    let r = a.get("/api/orders", &signed);
    assert_eq!((r.status, code(&r).as_str()), (401, "NONCE_REPLAYED"));
    // The other process never saw it: the replay is accepted there.
    assert_eq!(b.get("/api/orders", &signed).status, 200);
    assert_eq!(
        recorded(&up),
        2,
        "the backend got the same signed request twice"
    );
    for p in [&a, &b] {
        let s = p.status();
        assert_eq!(s["replay"]["store"], "memory");
        assert_eq!(s["replay"]["scope"], "process");
        let m = String::from_utf8(p.admin_get("/metrics").body).unwrap();
        assert!(
            m.contains("datafold_replay_scope{scope=\"process\"} 1"),
            "{m}"
        );
        assert!(
            m.contains("datafold_replay_scope{scope=\"shared\"} 0"),
            "{m}"
        );
        let log = std::fs::read_to_string(p.log_path()).unwrap();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("replays are caught per process only"))
            .collect();
        assert_eq!(warnings.len(), 1, "{log}");
        assert!(
            warnings[0].contains("\"level\":\"WARN\""),
            "{}",
            warnings[0]
        );
    }
}

#[test]
fn the_same_signed_request_sent_to_both_at_once_passes_once() {
    let redis = RedisServer::start();
    let up = Upstream::start(Duration::ZERO);
    let proxies = [
        Sigproxy::start(up.addr, &redis_policy(&redis)),
        Sigproxy::start(up.addr, &redis_policy(&redis)),
    ];
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    let rounds = 200;
    let mut one_each = 0;
    for round in 0..rounds {
        let signed = Arc::new(sign_get("/api/race", &key(), KID, &format!("race-{round}")));
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = addrs
            .iter()
            .map(|&addr| {
                let (signed, barrier) = (signed.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut headers: Vec<&str> = Vec::new();
                    headers.extend(signed.iter().map(String::as_str));
                    let mut conn = scale_common::client::Conn::open(addr);
                    barrier.wait();
                    let r = conn.request(
                        "GET",
                        "/api/race",
                        &headers,
                        scale_common::client::Body::None,
                    );
                    (r.status, code(&r))
                })
            })
            .collect();
        let mut results: Vec<(u16, String)> =
            handles.into_iter().map(|h| h.join().unwrap()).collect();
        results.sort();
        assert_eq!(
            results,
            [(200, String::new()), (401, "NONCE_REPLAYED".to_owned())],
            "round {round}"
        );
        one_each += 1;
    }
    assert_eq!(one_each, rounds);
    assert_eq!(recorded(&up), rounds);
}

#[test]
fn redis_down_answers_503_and_service_resumes_when_it_is_back() {
    let mut redis = RedisServer::start();
    let up = Upstream::start(Duration::ZERO);
    let mut p = Sigproxy::start(up.addr, &redis_policy(&redis));
    assert_eq!(
        p.get("/api/x", &sign_get("/api/x", &key(), KID, "before"))
            .status,
        200
    );

    redis.stop();
    for i in 0..5 {
        let t = Instant::now();
        let r = p.get(
            "/api/x",
            &sign_get("/api/x", &key(), KID, &format!("down-{i}")),
        );
        assert_eq!(
            (r.status, code(&r).as_str()),
            (503, "REPLAY_STORE_UNAVAILABLE"),
            "{r:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "503 took {:?}",
            t.elapsed()
        );
    }
    assert!(p.alive());
    assert_eq!(p.admin_get("/healthz").status, 200);
    assert_eq!(
        recorded(&up),
        1,
        "nothing reached the backend while the store was down"
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let status = loop {
        n += 1;
        let r = p.get(
            "/api/x",
            &sign_get("/api/x", &key(), KID, &format!("after-{n}")),
        );
        if r.status == 200 || Instant::now() > deadline {
            break r.status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "no recovery within 10 s: {}", p.logs());
    let signed = sign_get("/api/x", &key(), KID, "after-replay");
    assert_eq!(p.get("/api/x", &signed).status, 200);
    assert_eq!(code(&p.get("/api/x", &signed)), "NONCE_REPLAYED");
}

/// Issue 12 case 7. A hung Redis (SIGSTOP) still accepts the claim into its socket buffer; the
/// proxy answers 503 after its timeout, and when Redis wakes up it runs the claim. Unless the proxy
/// released it, the client's retry of the 503 (the right thing to do) gets NONCE_REPLAYED.
#[test]
fn a_request_refused_while_redis_hangs_stays_retryable() {
    let redis = RedisServer::start();
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(up.addr, &redis_policy(&redis));
    // The proxy's connection to Redis is up before Redis hangs, as in production.
    assert_eq!(
        p.get("/api/x", &sign_get("/api/x", &key(), KID, "warm"))
            .status,
        200
    );

    redis.pause();
    let signed = sign_get("/api/pay", &key(), KID, "hung-1");
    let other = sign_get("/api/pay", &key(), KID, "hung-2");
    let results: Vec<_> = [&signed, &other, &signed]
        .iter()
        .map(|s| {
            let t = Instant::now();
            let r = p.get("/api/pay", s);
            (r.status, code(&r), t.elapsed())
        })
        .collect();
    // Let the releases be written behind the claims before Redis runs them.
    std::thread::sleep(Duration::from_millis(300));
    redis.resume();
    for (status, code, took) in &results {
        assert_eq!(
            (*status, code.as_str()),
            (503, "REPLAY_STORE_UNAVAILABLE"),
            "{}",
            p.logs()
        );
        assert!(*took < Duration::from_secs(2), "503 took {took:?}");
    }
    assert_eq!(
        recorded(&up),
        1,
        "nothing reached the backend while Redis hung"
    );

    // The client retries the very requests it was refused: each is accepted once, then replayed.
    for s in [&signed, &other] {
        let r = p.get("/api/pay", s);
        assert_eq!(r.status, 200, "retry after 503: {r:?} {}", p.logs());
    }
    for s in [&signed, &other] {
        let r = p.get("/api/pay", s);
        assert_eq!((r.status, code(&r).as_str()), (401, "NONCE_REPLAYED"));
    }
    let got = up.requests.lock().unwrap();
    assert_eq!(got.len(), 3, "warm-up and the two retries, each once");
    for r in got.iter().skip(1) {
        assert_eq!(r.target(), "/api/pay");
        assert_eq!(
            r.header("x-datafold-client-id"),
            Some("scale-client"),
            "the retry reached the backend verified"
        );
    }
}

#[test]
fn on_store_error_allow_lets_requests_through_and_counts_them() {
    let mut redis = RedisServer::start();
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(
        up.addr,
        &policy(&format!(
            "  store: redis\n  redis_url: \"{}\"\n  on_store_error: allow",
            redis.url()
        )),
    );
    redis.stop();
    let r = p.get("/api/x", &sign_get("/api/x", &key(), KID, "allowed-1"));
    assert_eq!(r.status, 200, "{r:?}");
    // Counted in the logging phase, which may finish just after the response was sent.
    let want = "datafold_replay_store_errors_total{result=\"allowed\"} 1";
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let metrics = String::from_utf8(p.admin_get("/metrics").body).unwrap();
        if metrics.contains(want) {
            break;
        }
        assert!(Instant::now() < deadline, "no {want} in\n{metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints what a signed request costs with the memory store and with Redis on loopback: median and
/// p99 over keep-alive connections, the two proxies alternating request by request so machine
/// noise hits both alike (debug build; a comparison, not a benchmark).
#[test]
fn redis_round_trip_latency() {
    let redis = RedisServer::start();
    let up = Upstream::start(Duration::ZERO);
    let mem = Sigproxy::start(up.addr, &policy("  store: memory"));
    let red = Sigproxy::start(up.addr, &redis_policy(&redis));
    let mut conns = [
        scale_common::client::Conn::open(mem.addr),
        scale_common::client::Conn::open(red.addr),
    ];
    let n = 500;
    let mut times = [Vec::with_capacity(n), Vec::with_capacity(n)];
    for i in 0..n {
        for (which, conn) in conns.iter_mut().enumerate() {
            let signed = sign_get("/api/lat", &key(), KID, &format!("lat-{which}-{i}"));
            let headers: Vec<&str> = signed.iter().map(String::as_str).collect();
            let t = Instant::now();
            let r = conn.request(
                "GET",
                "/api/lat",
                &headers,
                scale_common::client::Body::None,
            );
            times[which].push(t.elapsed());
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    let summary = |t: &mut Vec<Duration>| {
        t.sort();
        format!("median {:?} p99 {:?}", t[n / 2], t[n * 99 / 100])
    };
    let (m, r) = (summary(&mut times[0]), summary(&mut times[1]));
    println!(
        "signed GET through sigproxy, {n} requests each, keep-alive: memory store {m}; redis store {r}"
    );
}
