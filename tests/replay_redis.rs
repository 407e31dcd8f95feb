//! The Redis nonce store against a real `redis-server`: atomicity across two stores ("replicas"),
//! expiry, outage and recovery without rebuilding the store, claims released when a hung server
//! could not confirm them in time (or the caller gave up), claims independent of the probe's
//! runtime, and what a round trip costs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use scale_common::redis_server::RedisServer;
use sigproxy::replay::{Freshness, NonceStore, RedisStore, RedisStoreConfig, StoreError};

const TTL: Duration = Duration::from_secs(330);

fn store(server: &RedisServer, prefix: &str) -> Arc<RedisStore> {
    let mut cfg = RedisStoreConfig::new(server.url());
    cfg.key_prefix = prefix.into();
    Arc::new(RedisStore::new(&cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_then_replayed_and_replicas_share_state() {
    let server = RedisServer::start();
    let a = store(&server, "");
    let b = store(&server, "");
    assert_eq!(
        a.check_and_remember("k1", "n1", TTL, 0).await,
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        a.check_and_remember("k1", "n1", TTL, 0).await,
        Ok(Freshness::Replayed)
    );
    // The other replica sees it, and the same nonce under another key id is a different nonce.
    assert_eq!(
        b.check_and_remember("k1", "n1", TTL, 0).await,
        Ok(Freshness::Replayed)
    );
    assert_eq!(
        b.check_and_remember("k2", "n1", TTL, 0).await,
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        a.check_and_remember("k2", "n1", TTL, 0).await,
        Ok(Freshness::Replayed)
    );
    // A different prefix is a different deployment.
    let other = store(&server, "staging:");
    assert_eq!(
        other.check_and_remember("k1", "n1", TTL, 0).await,
        Ok(Freshness::Fresh)
    );
    assert_eq!(a.entries(), None);

    // In Redis: namespaced, hashed (the nonce text is not there), with the ttl set.
    let key = a.redis_key("k1", "n1");
    let pttl = server.command(&format!("PTTL {key}\r\n")).unwrap();
    let ms: i64 = pttl.trim().trim_start_matches(':').parse().unwrap();
    assert!((320_000..=330_000).contains(&ms), "PTTL {key} = {pttl:?}");
    let keys = server.command("KEYS *\r\n").unwrap();
    assert!(
        !keys.contains("n1") && keys.contains("sigproxy:nonce:staging:"),
        "{keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_attempts_across_two_replicas_give_one_fresh() {
    let server = RedisServer::start();
    let stores = [store(&server, ""), store(&server, "")];
    for round in 0..5 {
        let nonce = format!("race-{round}");
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = stores[i % 2].clone();
            let nonce = nonce.clone();
            tasks.push(tokio::spawn(async move {
                s.check_and_remember("racer", &nonce, TTL, 0).await
            }));
        }
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Freshness::Fresh) => fresh += 1,
                Ok(Freshness::Replayed) => {}
                Err(e) => panic!("store error during race: {e}"),
            }
        }
        assert_eq!(fresh, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_expire_after_their_ttl() {
    let server = RedisServer::start();
    let s = store(&server, "");
    let ttl = Duration::from_millis(300);
    assert_eq!(
        s.check_and_remember("k", "short", ttl, 0).await,
        Ok(Freshness::Fresh)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        s.check_and_remember("k", "short", ttl, 0).await,
        Ok(Freshness::Replayed)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.check_and_remember("k", "short", ttl, 0).await,
        Ok(Freshness::Fresh)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_unavailable_quickly_and_recovery_needs_no_rebuild() {
    let mut server = RedisServer::start();
    let s = store(&server, "");
    assert_eq!(
        s.check_and_remember("k", "before", TTL, 0).await,
        Ok(Freshness::Fresh)
    );

    server.stop();
    for i in 0..5 {
        let t = Instant::now();
        let r = s
            .check_and_remember("k", &format!("down-{i}"), TTL, 0)
            .await;
        let took = t.elapsed();
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        // response_timeout is 250 ms; allow scheduling slack on a busy 2-core machine.
        assert!(
            took < Duration::from_millis(1_000),
            "attempt {i} took {took:?}"
        );
    }

    server.restart();
    // The connection manager reconnects on its own; give it a bounded few tries.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while Instant::now() < deadline {
        match s.check_and_remember("k", "after", TTL, 0).await {
            Ok(f) => {
                last = Some(f);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(
        last,
        Some(Freshness::Fresh),
        "store did not recover within 5 s"
    );
    assert_eq!(
        s.check_and_remember("k", "after", TTL, 0).await,
        Ok(Freshness::Replayed)
    );
}

/// Issue 12 case 7 at the store: while Redis hangs (SIGSTOP), a claim that times out and one whose
/// caller gives up first are both released again when Redis wakes up, so the same nonces are fresh
/// afterwards — and a nonce that was confirmed stays remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_claims_are_released_when_a_hung_redis_wakes_up() {
    let server = RedisServer::start();
    let s = store(&server, "");
    assert_eq!(
        s.check_and_remember("k", "kept", TTL, 0).await,
        Ok(Freshness::Fresh)
    );
    server.pause();
    let t = Instant::now();
    let r = s.check_and_remember("k", "timed-out", TTL, 0).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The request is dropped mid-flight (a caller with a shorter deadline, a closed connection).
    let gave_up = tokio::time::timeout(
        Duration::from_millis(30),
        s.check_and_remember("k", "abandoned", TTL, 0),
    )
    .await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    // Let the releases be written behind their claims, then wake Redis up: it runs both, in order.
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.resume();
    for nonce in ["timed-out", "abandoned"] {
        assert_eq!(
            s.check_and_remember("k", nonce, TTL, 0).await,
            Ok(Freshness::Fresh),
            "{nonce} was burnt"
        );
        assert_eq!(
            s.check_and_remember("k", nonce, TTL, 0).await,
            Ok(Freshness::Replayed)
        );
    }
    assert_eq!(
        s.check_and_remember("k", "kept", TTL, 0).await,
        Ok(Freshness::Replayed)
    );
    let stats = s.stats();
    assert_eq!(
        stats.released + stats.release_queued + stats.release_not_held,
        2,
        "{stats:?}"
    );
    assert_eq!(stats.release_failed, 0, "{stats:?}");
    assert_eq!(stats.errors, 1, "{stats:?}");
}

/// The readiness probe runs on a thread and runtime of its own and asks first, at start. A claim
/// must not go through that runtime: while it is stalled, claims made from another runtime are
/// answered (with one link for the process, the probe's runtime drove the connection, and these
/// claims timed out: 503).
#[test]
fn claims_do_not_depend_on_the_probe_runtime() {
    let server = RedisServer::start();
    let s = store(&server, "");
    let (probed_tx, probed_rx) = std::sync::mpsc::channel();
    let (resume_tx, resume_rx) = std::sync::mpsc::channel::<()>();
    let prober = {
        let s = s.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                probed_tx.send(s.probe().await).unwrap();
                // Blocks the runtime's only thread: none of its tasks runs until resumed.
                let _ = resume_rx.recv_timeout(Duration::from_secs(30));
            });
        })
    };
    let probed = probed_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(probed, Ok(()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let answers = rt.block_on(async {
        let mut answers = Vec::new();
        for i in 0..3 {
            answers.push(s.check_and_remember("k", &format!("n{i}"), TTL, 0).await);
        }
        answers.push(s.check_and_remember("k", "n0", TTL, 0).await);
        answers
    });
    resume_tx.send(()).unwrap();
    prober.join().unwrap();
    let fresh = Ok(Freshness::Fresh);
    assert_eq!(
        answers,
        [fresh.clone(), fresh.clone(), fresh, Ok(Freshness::Replayed)]
    );
}

/// A value written by an older sigproxy (`SET key 1 NX`) during a rolling upgrade is a used nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_claimed_by_an_older_replica_is_replayed() {
    let server = RedisServer::start();
    let s = store(&server, "");
    let key = s.redis_key("k", "old");
    assert!(
        server
            .command(&format!("SET {key} 1 NX PX 60000\r\n"))
            .unwrap()
            .starts_with("+OK")
    );
    assert_eq!(
        s.check_and_remember("k", "old", TTL, 0).await,
        Ok(Freshness::Replayed)
    );
}

/// Not a benchmark: prints what one round trip costs here, sequentially and with requests in
/// flight together (the multiplexed connection writes concurrent commands back to back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_cost() {
    let server = RedisServer::start();
    let s = store(&server, "");
    for i in 0..200 {
        let _ = s
            .check_and_remember("warm", &i.to_string(), TTL, 0)
            .await
            .unwrap();
    }
    let n = 2_000;
    let t = Instant::now();
    for i in 0..n {
        let f = s
            .check_and_remember("seq", &i.to_string(), TTL, 0)
            .await
            .unwrap();
        assert_eq!(f, Freshness::Fresh);
    }
    let seq = t.elapsed();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / 64 {
                let f = s
                    .check_and_remember("par", &format!("{w}-{i}"), TTL, 0)
                    .await
                    .unwrap();
                assert_eq!(f, Freshness::Fresh);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let par = t.elapsed();
    let done = (n / 64) * 64;
    println!(
        "redis SET NX PX: sequential {:.1} µs/op ({n} ops); 64 in flight {:.1} µs/op, {:.0} ops/s ({done} ops)",
        seq.as_secs_f64() * 1e6 / n as f64,
        par.as_secs_f64() * 1e6 / done as f64,
        done as f64 / par.as_secs_f64()
    );
}
