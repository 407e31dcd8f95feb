//! The in-memory nonce store (`replay.store: memory`): one process's memory, sharded by fingerprint,
//! bounded by `max_entries`, entries expiring after their ttl. When full it refuses new nonces (fail
//! closed) rather than forget one early. It does not share state between replicas (that is Redis).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::fingerprint::{Fingerprint, Fingerprinter, PassThrough};
use super::{Freshness, NonceStore, StoreError};

/// Most shards a store gets; enough that 2–64 worker threads rarely meet on one lock.
const MAX_SHARDS: usize = 64;
/// Fewest nonces a shard is sized for. Each shard has its own share of `max_entries`, so small
/// shards would make the store report full well before the total is reached (see `MemoryStore`).
const MIN_PER_SHARD: usize = 4096;
/// A sparse shard gives memory back after a sweep once its table is this many times too big.
const SHRINK_FACTOR: usize = 4;

/// The memory store. Each of its shards holds `map: fingerprint → expiry` (20 bytes a slot, plus
/// hashbrown's control byte and load factor: ~45 bytes per nonce measured at 1 million, see
/// `tests/replay_memory.rs`) behind its own mutex, so requests only contend when their nonces land
/// in the same shard.
///
/// The bound is per shard: each holds `max_entries / shards` (the first few one more), so the total
/// never exceeds `max_entries`. The keyed fingerprint spreads nonces uniformly and nobody outside the
/// process can aim at one shard, so the first refusal comes at 96–99% of `max_entries` (measured:
/// ~98.5% at 1 million), and refusals then ramp up as more shards fill. Stores below 8192 entries
/// have one shard and an exact bound.
///
/// Expiry needs no scan on the request path beyond an amortised one: a shard sweeps itself (one pass
/// over that shard only) every ttl/8, and when full at most once a second before refusing.
pub struct MemoryStore {
    fingerprinter: Fingerprinter,
    shards: Box<[Shard]>,
    max_entries: usize,
    /// First `now` seen. Expiries are kept as `u32` seconds after it, which is what keeps a slot at
    /// 20 bytes; 136 years of headroom.
    epoch: OnceLock<u64>,
}

/// Aligned to a cache line so two shards' locks never share one.
#[repr(align(64))]
struct Shard(Mutex<ShardState>);

struct ShardState {
    /// Fingerprint → last second (relative to the epoch) at which the nonce must still be refused.
    map: HashMap<Fingerprint, u32, PassThrough>,
    /// `map.capacity()` of the table without tombstones (see `sweep`).
    clean_capacity: usize,
    cap: usize,
    last_sweep: u32,
    next_sweep: u32,
}

impl MemoryStore {
    /// A store for at most `max_entries` unexpired nonces, with a fresh random fingerprint key.
    /// Fails only when the operating system has no randomness to give.
    pub fn new(max_entries: usize) -> Result<Self, StoreError> {
        let fingerprinter = Fingerprinter::random().map_err(|e| {
            StoreError::Unavailable(
                format!("no randomness for the nonce fingerprint key: {e}").into(),
            )
        })?;
        Ok(Self::with_fingerprinter(max_entries, fingerprinter))
    }

    fn with_fingerprinter(max_entries: usize, fingerprinter: Fingerprinter) -> Self {
        let n = shard_count(max_entries);
        let shards = (0..n)
            .map(|i| {
                let cap = max_entries / n + usize::from(i < max_entries % n);
                Shard(Mutex::new(ShardState {
                    map: HashMap::with_hasher(PassThrough),
                    clean_capacity: 0,
                    cap,
                    last_sweep: 0,
                    next_sweep: 0,
                }))
            })
            .collect();
        Self {
            fingerprinter,
            shards,
            max_entries,
            epoch: OnceLock::new(),
        }
    }

    /// `NonceStore::check_and_remember` without the future: the memory store never waits.
    pub fn check_and_remember_sync(
        &self,
        key_id: &str,
        nonce: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<Freshness, StoreError> {
        let fp = self.fingerprinter.fingerprint(key_id, nonce);
        let now = self.relative(now);
        let ttl_secs = ttl_secs(ttl);
        let sweep_every = (ttl_secs / 8).max(1);
        let mut shard = self.shard(fp);
        match shard.check_and_remember(fp, now, now.saturating_add(ttl_secs), sweep_every) {
            Some(freshness) => Ok(freshness),
            None => Err(StoreError::Full {
                max_entries: self.max_entries,
            }),
        }
    }

    /// Nonces held, including expired ones that no sweep has removed yet.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Slots the shards' tables hold room for (live + growth room), for tests.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards.iter().map(|s| lock(s).capacity()).sum()
    }

    fn shard(&self, fp: Fingerprint) -> MutexGuard<'_, ShardState> {
        // The shard count is a power of two.
        lock(&self.shards[fp.shard_bits() as usize & (self.shards.len() - 1)])
    }

    fn relative(&self, now: u64) -> u32 {
        let epoch = *self.epoch.get_or_init(|| now);
        // Before the epoch (the clock stepped back): count it as the epoch. Entries then live a
        // little longer, which is the safe direction.
        u32::try_from(now.saturating_sub(epoch)).unwrap_or(u32::MAX)
    }
}

#[async_trait::async_trait]
impl NonceStore for MemoryStore {
    async fn check_and_remember(
        &self,
        key_id: &str,
        nonce: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<Freshness, StoreError> {
        self.check_and_remember_sync(key_id, nonce, ttl, now)
    }

    fn entries(&self) -> Option<u64> {
        Some(self.len() as u64)
    }

    fn scope(&self) -> crate::policy::ReplayScope {
        crate::policy::ReplayScope::Process
    }

    fn describe(&self) -> String {
        format!("memory (max {} nonces)", self.max_entries)
    }
}

impl ShardState {
    /// `None` when the shard is full of unexpired nonces.
    fn check_and_remember(
        &mut self,
        fp: Fingerprint,
        now: u32,
        expiry: u32,
        sweep_every: u32,
    ) -> Option<Freshness> {
        if now >= self.next_sweep {
            self.sweep(now, sweep_every);
        }
        // `get_mut` then `insert` rather than `entry`: std's `entry` reserves room for a vacant key
        // before we know whether the shard is full, which could double a full shard's table only
        // to refuse the nonce.
        if let Some(until) = self.map.get_mut(&fp) {
            if now <= *until {
                return Some(Freshness::Replayed);
            }
            // Expired but not yet swept: this is a new use of the nonce.
            *until = expiry;
            return Some(Freshness::Fresh);
        }
        if self.map.len() >= self.cap {
            // Sweep at most once a second when full, so a flood of refused requests cannot turn
            // into a scan per request.
            if now > self.last_sweep {
                self.sweep(now, sweep_every);
            }
            if self.map.len() >= self.cap {
                return None;
            }
        }
        self.map.insert(fp, expiry);
        Some(Freshness::Fresh)
    }

    fn sweep(&mut self, now: u32, sweep_every: u32) {
        // Only `retain` erases, so a capacity above the last clean one means the table grew
        // (and was rehashed clean) since.
        self.clean_capacity = self.clean_capacity.max(self.map.capacity());
        self.map.retain(|_, until| *until >= now);
        self.last_sweep = now;
        self.next_sweep = now.saturating_add(sweep_every);
        // After a burst has expired, give the memory back (leaving room to grow without churn).
        let live = self.map.len().max(MIN_PER_SHARD / 4);
        if self.map.capacity() > SHRINK_FACTOR * live {
            self.map.shrink_to(2 * live);
            self.clean_capacity = self.map.capacity();
        } else if self.map.capacity() < self.clean_capacity * 7 / 8 {
            // Erased slots hashbrown could not mark empty stay as tombstones and eat the room
            // left for inserts (`capacity()` = live + room). Out of room with more than half the
            // table live, hashbrown doubles the table instead of cleaning it, so a shard under
            // steady churn ended up twice the size its live nonces need (benches/RESULTS.md,
            // soak). Rebuilding at the same size clears them: O(live), one shard at a time.
            let mut fresh = HashMap::with_capacity_and_hasher(self.clean_capacity, PassThrough);
            fresh.extend(self.map.drain());
            self.map = fresh;
            self.clean_capacity = self.map.capacity();
        }
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.map.capacity()
    }
}

/// A power of two, so a shard is picked with a mask.
fn shard_count(max_entries: usize) -> usize {
    let wanted = (max_entries / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
    1 << wanted.ilog2()
}

/// Whole seconds, rounded up: a nonce is never forgotten before its ttl.
fn ttl_secs(ttl: Duration) -> u32 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A shard's data stays consistent even if a holder panicked (every update is one map operation),
/// so a poisoned lock is used as is rather than taking the store down.
fn lock(shard: &Shard) -> MutexGuard<'_, ShardState> {
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
