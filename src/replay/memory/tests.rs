//! Unit tests of the memory store: replay, keyid separation, expiry on an injected clock, the
//! fail-closed bound, and atomicity under threads.

use super::*;
use std::sync::{Arc, Barrier};

const TTL: Duration = Duration::from_secs(330);
const T0: u64 = 1_700_000_000;

fn store(max_entries: usize) -> MemoryStore {
    MemoryStore::new(max_entries).unwrap()
}

#[test]
fn a_replayed_nonce_is_refused_until_its_ttl_passes() {
    let s = store(100);
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0),
        Ok(Freshness::Replayed)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0 + 330),
        Ok(Freshness::Replayed)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0 + 331),
        Ok(Freshness::Fresh)
    );
    // Remembered again from its new use.
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0 + 400),
        Ok(Freshness::Replayed)
    );
    assert_eq!(s.len(), 1);
}

#[test]
fn key_ids_do_not_collide() {
    let s = store(100);
    for (k, n) in [
        ("k1", "n"),
        ("k2", "n"),
        ("ab", "c"),
        ("a", "bc"),
        ("", "abc"),
        ("abc", ""),
    ] {
        assert_eq!(
            s.check_and_remember_sync(k, n, TTL, T0),
            Ok(Freshness::Fresh),
            "{k:?} {n:?}"
        );
    }
    assert_eq!(s.len(), 6);
}

#[test]
fn sub_second_ttls_round_up_and_zero_ttl_covers_this_second() {
    let s = store(100);
    let ttl = Duration::from_millis(1500);
    assert_eq!(
        s.check_and_remember_sync("k", "n", ttl, T0),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "n", ttl, T0 + 2),
        Ok(Freshness::Replayed)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "n", ttl, T0 + 3),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "z", Duration::ZERO, T0),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "z", Duration::ZERO, T0),
        Ok(Freshness::Replayed)
    );
}

#[test]
fn a_clock_stepping_back_never_forgets_early() {
    let s = store(100);
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0 - 3600),
        Ok(Freshness::Replayed)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "m", TTL, T0 - 3600),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "m", TTL, T0 + 300),
        Ok(Freshness::Replayed)
    );
}

#[test]
fn sweeps_remove_expired_entries() {
    let s = store(100);
    for i in 0..50 {
        let _ = s.check_and_remember_sync("k", &i.to_string(), Duration::from_secs(10), T0);
    }
    assert_eq!(s.len(), 50);
    // ttl 10 → sweep every second; one call after expiry sweeps its shard (one shard at this size).
    let _ = s.check_and_remember_sync("k", "late", Duration::from_secs(10), T0 + 11);
    assert_eq!(s.len(), 1);
    assert_eq!(s.entries(), Some(1));
}

#[test]
fn steady_churn_does_not_double_the_table() {
    // The soak's shard: 16 new nonces a second, ttl 70 s (sweeps every 8 s), ~1,150–1,250 live
    // in a 1,792-slot table. Without cleaning tombstones the table doubled at ~309 s.
    let s = store(4000);
    let ttl = Duration::from_secs(70);
    let mut n = 0u64;
    let mut settled = 0;
    for t in 0..1200u64 {
        for _ in 0..16 {
            n += 1;
            let f = s.check_and_remember_sync("k", &n.to_string(), ttl, T0 + t);
            assert!(matches!(f, Ok(Freshness::Fresh)), "nonce {n} at {t}: {f:?}");
        }
        if t == 150 {
            // The full capacity (7/8 of the buckets) of the table the shard has settled into;
            // `capacity()` itself moves a little as tombstones are made and reused.
            settled = (s.capacity() * 8 / 7 + 1).next_power_of_two() * 7 / 8;
        }
        if t > 150 {
            assert!(
                s.capacity() <= settled,
                "table grew from {settled} to {} slots at {t} s with {} live",
                s.capacity(),
                s.len()
            );
        }
    }
    assert!((1_100..=1_300).contains(&s.len()), "{} live", s.len());
}

#[test]
fn full_store_refuses_without_forgetting_then_accepts_after_expiry() {
    let s = store(3);
    for n in ["a", "b", "c"] {
        assert_eq!(
            s.check_and_remember_sync("k", n, TTL, T0),
            Ok(Freshness::Fresh)
        );
    }
    let full = Err(StoreError::Full { max_entries: 3 });
    assert_eq!(s.check_and_remember_sync("k", "d", TTL, T0), full);
    assert_eq!(s.check_and_remember_sync("k", "d", TTL, T0 + 100), full);
    // Still remembered: full never means forgetting early. Replays are still recognised.
    for n in ["a", "b", "c"] {
        assert_eq!(
            s.check_and_remember_sync("k", n, TTL, T0 + 330),
            Ok(Freshness::Replayed)
        );
    }
    assert_eq!(s.check_and_remember_sync("k", "d", TTL, T0 + 330), full);
    // One second past the ttl everything has expired: new nonces are accepted again.
    assert_eq!(
        s.check_and_remember_sync("k", "d", TTL, T0 + 331),
        Ok(Freshness::Fresh)
    );
    assert_eq!(
        s.check_and_remember_sync("k", "e", TTL, T0 + 331),
        Ok(Freshness::Fresh)
    );
    assert_eq!(s.len(), 2);
}

#[test]
fn zero_capacity_refuses_everything() {
    let s = store(0);
    assert_eq!(
        s.check_and_remember_sync("k", "n", TTL, T0),
        Err(StoreError::Full { max_entries: 0 })
    );
}

#[test]
fn shard_counts_and_caps_add_up() {
    assert_eq!(shard_count(0), 1);
    assert_eq!(shard_count(8191), 1);
    assert_eq!(shard_count(8192), 2);
    assert_eq!(shard_count(100_000), 16);
    assert_eq!(shard_count(1_000_000), 64);
    assert_eq!(shard_count(usize::MAX), 64);
    for max in [0, 1, 3, 8192, 100_001, 1_000_000] {
        let s = store(max);
        let total: usize = s.shards.iter().map(|sh| lock(sh).cap).sum();
        assert_eq!(total, max);
    }
}

#[test]
fn a_large_store_fills_to_near_its_bound() {
    // Per-shard caps: the first refusal must come late, and nothing beyond max_entries is held.
    let max = 65_536; // 16 shards of 4096
    let s = store(max);
    let mut accepted = 0;
    for i in 0..max {
        match s.check_and_remember_sync("k", &i.to_string(), TTL, T0) {
            Ok(Freshness::Fresh) => accepted += 1,
            Ok(Freshness::Replayed) => panic!("nonce {i} falsely replayed"),
            Err(StoreError::Full { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        accepted >= max * 9 / 10,
        "first refusal after only {accepted} of {max}"
    );
    assert!(s.len() <= max);
}

#[test]
fn a_slot_is_twenty_bytes() {
    assert_eq!(std::mem::size_of::<(Fingerprint, u32)>(), 20);
}

#[test]
fn many_threads_same_nonce_exactly_one_is_fresh() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let s = Arc::new(store(1_000_000));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut fresh = vec![0u8; ROUNDS];
                for (round, f) in fresh.iter_mut().enumerate() {
                    barrier.wait();
                    let nonce = format!("nonce-{round}");
                    if s.check_and_remember_sync("k", &nonce, TTL, T0) == Ok(Freshness::Fresh) {
                        *f = 1;
                    }
                }
                fresh
            })
        })
        .collect();
    let mut per_round = [0u32; ROUNDS];
    for h in handles {
        for (round, f) in h.join().unwrap().into_iter().enumerate() {
            per_round[round] += u32::from(f);
        }
    }
    assert!(per_round.iter().all(|&n| n == 1), "{per_round:?}");
    assert_eq!(s.len(), ROUNDS);
}
