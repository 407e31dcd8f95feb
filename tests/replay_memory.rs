//! Measures the memory store's resident memory per remembered nonce at 1 million nonces (goal: at most
//! 64 bytes), in its own process so the reading is the store's alone. Linux only (/proc/self/status).
//! Run with `--nocapture` to see the numbers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sigproxy::replay::{Freshness, MemoryStore};

const N: u64 = 1_000_000;
const BUDGET_BYTES_PER_NONCE: f64 = 64.0;
const TTL: Duration = Duration::from_secs(330);
const T0: u64 = 1_700_000_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A distinct 22-character nonce (the length of a base64 128-bit nonce), written without allocating
/// so the allocator's heap holds nothing but the store.
fn nonce(i: u64, buf: &mut [u8; 22]) -> &str {
    const DIGITS: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut v = i;
    for b in buf.iter_mut().rev() {
        *b = DIGITS[(v % 32) as usize];
        v /= 32;
    }
    std::str::from_utf8(buf).unwrap()
}

/// Inserts `N` nonces starting at counter `from`, `per_sec` per clock second from `t`.
fn fill(store: &MemoryStore, from: u64, t: u64, per_sec: u64) {
    let mut buf = [0u8; 22];
    for i in 0..N {
        let now = t + i / per_sec;
        let r =
            store.check_and_remember_sync("web-frontend-v1", nonce(from + i, &mut buf), TTL, now);
        assert_eq!(r, Ok(Freshness::Fresh), "nonce {}", from + i);
    }
}

#[test]
fn a_million_nonces_fit_in_64_bytes_each() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc/self/status: memory not measured");
        return;
    }
    // 2^20 so no shard fills before the millionth nonce (each shard's share is 16384).
    let store = MemoryStore::new(1 << 20).unwrap();
    let before = rss_bytes();
    fill(&store, 0, T0, N);
    let after = rss_bytes();
    assert_eq!(store.len() as u64, N);
    let per_nonce = (after - before) as f64 / N as f64;
    println!(
        "1,000,000 nonces at once: {per_nonce:.1} bytes per nonce (RSS +{} KiB)",
        (after - before) / 1024
    );

    // Turnover: a second million over 1000 clock seconds, while the first million expires and is
    // swept. The store should hold about ttl × rate live nonces and not keep the garbage.
    fill(&store, N, T0 + 331, 1000);
    let churned = rss_bytes();
    let live = store.len() as u64;
    let per_live = (churned - before) as f64 / live as f64;
    println!(
        "after turnover: {live} held, {per_live:.1} bytes per held nonce (RSS +{} KiB)",
        (churned - before) / 1024
    );

    assert!(
        per_nonce <= BUDGET_BYTES_PER_NONCE,
        "{per_nonce:.1} bytes per nonce"
    );
    assert!(live < N, "expired nonces were not swept: {live} held");
    assert!(
        churned <= after,
        "turnover grew memory: {after} -> {churned} bytes"
    );
}
