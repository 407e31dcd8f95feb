//! Failed-verification throttling per source address (reference §4.9, `failure_rate_limit`): counts
//! an address's failures over a rolling minute and says how long it must wait once it has used its
//! allowance. It does not decide what a failure is, answer requests, keep time or hold the limit:
//! the gateway calls `check` before verifying (a limited caller costs no Ed25519 work),
//! `record_failure` after a failed verification, and passes `now` and the policy's `per_minute` of
//! that request to both, so a reload changes the limit at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Addresses tracked at once unless the caller says otherwise: ~7 MiB at most (~110 bytes each).
pub const DEFAULT_MAX_TRACKED: usize = 65_536;

/// Failures are counted in 5-second buckets. The window is the current bucket and the 12 before it,
/// so it always covers the last 60 s and at most 65 s: an address never gets more than `per_minute`
/// failures in any 60 s, and waits at most 5 s longer than a per-second count would make it.
const BUCKET_SECS: u64 = 5;
const BUCKETS: u32 = 13;
const MAX_SHARDS: usize = 16;
const MIN_PER_SHARD: usize = 1024;
const NIL: u32 = u32::MAX;

/// What `check` says about an address.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Answer 429 RATE_LIMITED with `Retry-After: retry_after_secs` (at least 1).
    Limited {
        retry_after_secs: u64,
    },
}

/// The limiter. Memory is bounded by `max_tracked` addresses: when a shard is full, the address whose
/// latest failure is oldest is forgotten (an attacker rotating addresses cycles through the table but
/// cannot grow it). Addresses with no failure in the window are dropped as new failures arrive,
/// without scanning. Sharded by a keyed hash of the address, one mutex per shard.
///
/// `check` and `record_failure` are separate calls, so concurrent requests from one address can each
/// pass `check` before any records its failure: the overshoot is bounded by that address's concurrency.
pub struct FailureLimiter {
    hasher: RandomState,
    shards: Box<[Shard]>,
}

#[repr(align(64))]
struct Shard(Mutex<Lru>);

/// Who is counted: an IPv4 address, or an IPv6 /64. A /64 is one subscriber's usual allocation, so
/// counting IPv6 addresses one by one would hand each attacker 2^64 fresh allowances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Source([u64; 2]);

impl Source {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            // As ::ffff:a.b.c.d, whose low half is never zero, so it cannot meet an IPv6 /64 below.
            IpAddr::V4(v4) => {
                let v = u128::from(v4.to_ipv6_mapped());
                Source([(v >> 64) as u64, v as u64])
            }
            IpAddr::V6(v6) => Source([(u128::from(v6) >> 64) as u64, 0]),
        }
    }
}

impl FailureLimiter {
    /// A limiter remembering at most `max_tracked` addresses. Shards allocate as they fill, so an
    /// unused limiter (`per_minute: 0` on every call) costs nothing.
    pub fn new(max_tracked: usize) -> Self {
        let max_tracked = max_tracked.max(1);
        let n = shard_count(max_tracked);
        let shards = (0..n)
            .map(|i| {
                let cap = max_tracked / n + usize::from(i < max_tracked % n);
                Shard(Mutex::new(Lru::new(cap)))
            })
            .collect();
        Self {
            hasher: RandomState::new(),
            shards,
        }
    }

    /// May `ip` try to authenticate at `now` (Unix seconds) under a limit of `per_minute` failures
    /// (0: no limit)? Does not count anything.
    pub fn check(&self, ip: IpAddr, now: u64, per_minute: u32) -> RateDecision {
        if per_minute == 0 {
            return RateDecision::Allowed;
        }
        let source = Source::of(ip);
        let lru = self.shard(source);
        match lru.get(&source) {
            None => RateDecision::Allowed,
            Some(node) => node.decide(bucket(now), now, per_minute),
        }
    }

    /// Count one failed verification from `ip` at `now`. The caller should not count requests it
    /// refused with 429 (they were not verified), so a limit lifts on schedule. Nothing is stored
    /// while `per_minute` is 0 (no limit).
    pub fn record_failure(&self, ip: IpAddr, now: u64, per_minute: u32) {
        if per_minute == 0 {
            return;
        }
        let source = Source::of(ip);
        self.shard(source).record(source, bucket(now));
    }

    /// Addresses currently tracked (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| lock(s).index.len()).sum()
    }

    fn shard(&self, source: Source) -> MutexGuard<'_, Lru> {
        // The shard count is a power of two.
        let i = self.hasher.hash_one(source) as usize & (self.shards.len() - 1);
        lock(&self.shards[i])
    }
}

/// One address's failures: a ring of per-bucket counts, plus its place in the recency list.
struct Node {
    source: Source,
    /// Indexed by bucket number modulo BUCKETS; holds buckets (newest - BUCKETS, newest].
    counts: [u16; BUCKETS as usize],
    /// Bucket of the latest failure.
    newest: u32,
    /// Neighbours in the recency list: `prev` failed more recently, `next` less.
    prev: u32,
    next: u32,
}

impl Node {
    fn new(source: Source, b: u32) -> Self {
        let mut node = Self {
            source,
            counts: [0; BUCKETS as usize],
            newest: b,
            prev: NIL,
            next: NIL,
        };
        node.record(b);
        node
    }

    fn record(&mut self, b: u32) {
        if b > self.newest {
            // Clear the buckets that the window moved past (all of them after a long quiet spell).
            for k in 1..=(b - self.newest).min(BUCKETS) {
                self.counts[slot(self.newest + k)] = 0;
            }
            self.newest = b;
        }
        // A clock stepping back counts into the newest bucket: never lose a failure.
        let c = &mut self.counts[slot(self.newest)];
        *c = c.saturating_add(1);
    }

    /// Buckets of this node still inside the window that ends at bucket `b`, oldest first.
    fn live(&self, b: u32) -> RangeInclusive<u32> {
        let lo = b.max(self.newest).saturating_sub(BUCKETS - 1);
        lo.max(self.newest.saturating_sub(BUCKETS - 1))..=self.newest
    }

    fn decide(&self, b: u32, now: u64, limit: u32) -> RateDecision {
        let count = |i: u32| u32::from(self.counts[slot(i)]);
        let mut total: u32 = self.live(b).map(count).sum();
        if total < limit {
            return RateDecision::Allowed;
        }
        // Wait until enough of the oldest buckets have left the window to bring the total under.
        let mut last = self.newest;
        for i in self.live(b) {
            total -= count(i);
            last = i;
            if total < limit {
                break;
            }
        }
        let free_at = (u64::from(last) + u64::from(BUCKETS)) * BUCKET_SECS;
        RateDecision::Limited {
            retry_after_secs: free_at.saturating_sub(now).max(1),
        }
    }

    fn expired(&self, b: u32) -> bool {
        b >= self.newest.saturating_add(BUCKETS)
    }
}

/// A shard: the nodes in a slab, linked from most to least recent failure, indexed by address.
/// Ordered by latest failure, so expired nodes gather at the tail and are dropped from there.
struct Lru {
    index: HashMap<Source, u32>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    cap: usize,
}

impl Lru {
    fn new(cap: usize) -> Self {
        Self {
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cap,
        }
    }

    fn get(&self, source: &Source) -> Option<&Node> {
        self.index.get(source).map(|&i| &self.nodes[i as usize])
    }

    fn record(&mut self, source: Source, b: u32) {
        while self.tail != NIL && self.nodes[self.tail as usize].expired(b) {
            self.remove_tail();
        }
        if let Some(&i) = self.index.get(&source) {
            self.nodes[i as usize].record(b);
            self.unlink(i);
            self.push_front(i);
            return;
        }
        if self.index.len() >= self.cap {
            self.remove_tail();
        }
        let node = Node::new(source, b);
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                // Fits: nodes never outnumber `cap`, which is far below u32::MAX per shard.
                (self.nodes.len() - 1) as u32
            }
        };
        self.push_front(i);
        self.index.insert(source, i);
    }

    fn remove_tail(&mut self) {
        let i = self.tail;
        if i == NIL {
            return;
        }
        self.unlink(i);
        self.index.remove(&self.nodes[i as usize].source);
        self.free.push(i);
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        match old {
            NIL => self.tail = i,
            h => self.nodes[h as usize].prev = i,
        }
        self.head = i;
    }
}

fn bucket(now: u64) -> u32 {
    u32::try_from(now / BUCKET_SECS).unwrap_or(u32::MAX)
}

fn slot(bucket: u32) -> usize {
    (bucket % BUCKETS) as usize
}

/// A power of two, so a shard is picked with a mask.
fn shard_count(max_tracked: usize) -> usize {
    1 << (max_tracked / MIN_PER_SHARD).clamp(1, MAX_SHARDS).ilog2()
}

/// Poisoning would only follow a bug panicking mid-update; refusing every later request over it would
/// turn one bad request into an outage, so the shard is used as is.
fn lock(shard: &Shard) -> MutexGuard<'_, Lru> {
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
