//! Nonce stores behind one small trait: "has this (keyid, nonce) been seen within its lifetime?",
//! answered and remembered in one atomic step. The in-memory store and the shared Redis store live here.
//! This module does not verify signatures, read policy or keep time:
//! the caller passes `now` and the ttl, and calls only after the signature verified, so an attacker
//! who cannot sign cannot burn a legitimate caller's nonce.

mod build;
mod fingerprint;
mod memory;
mod redis;
mod redis_link;

pub use build::{build, spawn_probe};
pub use memory::MemoryStore;
pub use redis::{DEFAULT_TIMEOUTS, KEY_NAMESPACE, RedisStore, RedisStoreConfig};
pub use redis_link::{LinkConfig, Timeouts};

use std::borrow::Cow;
use std::time::Duration;

use crate::error::{Error, ErrorCode};
use crate::policy::ReplayScope;

/// What a store says about a nonce it was asked to remember.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Not seen within its lifetime; it is now remembered for `ttl`.
    Fresh,
    /// Seen before and still remembered: the request is a replay (NONCE_REPLAYED).
    Replayed,
}

/// Why a store could not answer. Both are answered 503 REPLAY_STORE_UNAVAILABLE.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The memory store holds its `max_entries` unexpired nonces. Always fail closed (reference
    /// §4.8): this is capacity, not an outage, so `on_store_error: allow` must not let the request
    /// through.
    #[error("replay store full: {max_entries} unexpired nonces remembered")]
    Full { max_entries: usize },
    /// The store could not be reached or answered garbage (a later Redis store). `on_store_error`
    /// decides whether the request is rejected or let through.
    #[error("replay store unavailable: {0}")]
    Unavailable(Cow<'static, str>),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::new(ErrorCode::ReplayStoreUnavailable, e.to_string())
    }
}

/// A replay store. Implementations must make `check_and_remember` atomic: two concurrent calls with
/// the same (keyid, nonce) get exactly one `Fresh` (the memory store holds one shard lock across the
/// lookup and the insert; Redis does it with `SET key 1 NX PX ttl`).
///
/// Async because the shared store is a network round trip. `async_trait` boxes the future, which
/// costs the memory store one small allocation per signed request (~35 ns, see `benches/replay.rs`)
/// against ~50 µs for the Ed25519 verify it follows; in exchange the gateway holds one
/// `Arc<dyn NonceStore>` chosen at start-up and awaits it, with no second code path. Callers that are
/// not async (the offline `verify`, tests) use `MemoryStore::check_and_remember_sync`.
#[async_trait::async_trait]
pub trait NonceStore: Send + Sync {
    /// Refuse a nonce already seen for this key id; otherwise remember it until `now + ttl`.
    ///
    /// `now` is wall-clock Unix seconds, the clock the signature's `created` is judged by: if the
    /// wall clock steps back, entries live longer (safe), where a monotonic clock would let a nonce
    /// be forgotten while its signature is still inside the window. `ttl` should be
    /// `max_age_seconds + clock_skew_seconds`: a signature accepted at `now` cannot be accepted after
    /// `now + ttl`. Sub-second ttls round up; a nonce is never forgotten early.
    async fn check_and_remember(
        &self,
        key_id: &str,
        nonce: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<Freshness, StoreError>;

    /// Nonces currently held, for `/status`. May include expired ones not yet swept. `None` when the
    /// store cannot count cheaply (a shared store that would need a scan).
    fn entries(&self) -> Option<u64>;

    /// Which replicas a replay is caught across (issue 20): `process` or `shared`.
    fn scope(&self) -> ReplayScope;

    /// Where the store is, for logs and `/status` (never a password).
    fn describe(&self) -> String;

    /// Whether the store answers now (readiness, `datafold_replay_store_up`). The memory store
    /// always does.
    async fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The store's own counts, for metrics.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

/// What a store counts about itself (monotonic counts since start), read at scrape time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Checks that failed (no answer in time, connection errors, garbage).
    pub errors: u64,
    /// Claims released after a failed check or an abandoned request: the nonce is usable again.
    pub released: u64,
    /// Releases that found nothing of ours to delete (the claim never ran, or expired).
    pub release_not_held: u64,
    /// Releases sent but not answered in time: they run, in order behind the claim, when the
    /// server answers again.
    pub release_queued: u64,
    /// Releases that could not be sent at all; such a claim may stay until its ttl.
    pub release_failed: u64,
    /// The last probe's answer; `None` for stores that are never probed (memory).
    pub up: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    /// The memory store's future never waits, so one poll must finish it; no runtime needed.
    fn poll_once<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("memory store future was pending"),
        }
    }

    #[test]
    fn memory_store_works_through_the_trait_object() {
        let store: Arc<dyn NonceStore> = Arc::new(MemoryStore::new(16).unwrap());
        let ttl = Duration::from_secs(330);
        let first = poll_once(store.check_and_remember("k1", "n1", ttl, 1_000));
        let again = poll_once(store.check_and_remember("k1", "n1", ttl, 1_001));
        assert_eq!(first, Ok(Freshness::Fresh));
        assert_eq!(again, Ok(Freshness::Replayed));
        assert_eq!(store.entries(), Some(1));
    }

    #[test]
    fn store_errors_map_to_503() {
        let e: Error = StoreError::Full { max_entries: 5 }.into();
        assert_eq!(e.code, ErrorCode::ReplayStoreUnavailable);
        assert_eq!(e.status(), 503);
        assert!(e.detail.contains("5 unexpired"), "{}", e.detail);
        let e: Error = StoreError::Unavailable("connection refused".into()).into();
        assert_eq!(e.code, ErrorCode::ReplayStoreUnavailable);
        assert!(e.detail.contains("connection refused"));
    }
}
