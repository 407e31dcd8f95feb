//! Micro-benchmarks of the in-memory nonce store, single-threaded: remembering fresh nonces (with the
//! store held near a million live entries, sweeps included) and refusing a replayed one; and the cost
//! of going through the async trait object the gateway uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sigproxy::replay::{Freshness, MemoryStore, NonceStore};

const TTL: Duration = Duration::from_secs(100);
const T0: u64 = 1_700_000_000;
/// One clock second per this many inserts: with a 100 s ttl the store settles near 1 million live
/// nonces, the size the default `replay.max_entries` (reference §3.2) is for, and sweeps run as
/// they would in service.
const INSERTS_PER_SEC: u64 = 10_000;

/// A distinct 16-character nonce per counter value, written without allocating.
fn nonce(i: u64, buf: &mut [u8; 16]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (k, b) in buf.iter_mut().enumerate() {
        *b = HEX[((i >> (60 - 4 * k)) & 0xf) as usize];
    }
    std::str::from_utf8(buf).unwrap_or("")
}

fn poll_once<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("memory store future was pending"),
    }
}

fn fresh_store() -> MemoryStore {
    MemoryStore::new(2_000_000).unwrap()
}

fn bench_fresh(c: &mut Criterion) {
    let store = fresh_store();
    let mut i = 0u64;
    let mut buf = [0u8; 16];
    c.bench_function("memory/fresh_nonce", |b| {
        b.iter(|| {
            i += 1;
            let now = T0 + i / INSERTS_PER_SEC;
            let r = store.check_and_remember_sync("web-frontend-v1", nonce(i, &mut buf), TTL, now);
            assert_eq!(r, Ok(Freshness::Fresh));
        })
    });
}

/// The same with a store of ~10,000 live nonces that fits in cache: the difference from
/// `fresh_nonce` is the cost of a million-entry table's cache and TLB misses.
fn bench_fresh_small(c: &mut Criterion) {
    let store = fresh_store();
    let mut i = 0u64;
    let mut buf = [0u8; 16];
    c.bench_function("memory/fresh_nonce_10k_live", |b| {
        b.iter(|| {
            i += 1;
            let now = T0 + i / INSERTS_PER_SEC;
            let r = store.check_and_remember_sync(
                "web-frontend-v1",
                nonce(i, &mut buf),
                Duration::from_secs(1),
                now,
            );
            assert_eq!(r, Ok(Freshness::Fresh));
        })
    });
}

/// Issue 14's "the replay map's random access at a quarter-million live nonces": the same with a
/// 25 s ttl, so the store settles near 250,000 live nonces (the signed load runs hold that many).
fn bench_fresh_250k(c: &mut Criterion) {
    let store = fresh_store();
    let mut i = 0u64;
    let mut buf = [0u8; 16];
    c.bench_function("memory/fresh_nonce_250k_live", |b| {
        b.iter(|| {
            i += 1;
            let now = T0 + i / INSERTS_PER_SEC;
            let r = store.check_and_remember_sync(
                "web-frontend-v1",
                nonce(i, &mut buf),
                Duration::from_secs(25),
                now,
            );
            assert_eq!(r, Ok(Freshness::Fresh));
        })
    });
}

fn bench_replayed(c: &mut Criterion) {
    let store = fresh_store();
    // A realistically full store, so the lookup pays real cache misses.
    let mut buf = [0u8; 16];
    for i in 0..1_000_000 {
        let _ = store.check_and_remember_sync("web-frontend-v1", nonce(i, &mut buf), TTL, T0);
    }
    c.bench_function("memory/replayed_nonce", |b| {
        b.iter(|| {
            let r = store.check_and_remember_sync(
                "web-frontend-v1",
                black_box("00000000000beef0"),
                TTL,
                T0 + 1,
            );
            assert_eq!(r, Ok(Freshness::Replayed));
        })
    });
}

fn bench_trait_object(c: &mut Criterion) {
    let store: Arc<dyn NonceStore> = Arc::new(fresh_store());
    let mut i = 0u64;
    let mut buf = [0u8; 16];
    c.bench_function("memory/fresh_nonce_via_dyn_async_trait", |b| {
        b.iter(|| {
            i += 1;
            let now = T0 + i / INSERTS_PER_SEC;
            let f = store.check_and_remember("web-frontend-v1", nonce(i, &mut buf), TTL, now);
            assert_eq!(poll_once(f), Ok(Freshness::Fresh));
        })
    });
}

criterion_group!(
    benches,
    bench_fresh,
    bench_fresh_small,
    bench_fresh_250k,
    bench_trait_object,
    bench_replayed
);
criterion_main!(benches);
