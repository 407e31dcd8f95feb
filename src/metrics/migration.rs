//! The migration gauge's data: per route, the share of non-exempt requests that were signed and
//! valid over the last 5 minutes, in 10-second buckets. A request adds to its bucket in the calling
//! thread's shard (two relaxed adds, no lock); a bucket's 10 seconds begin under a short per-route
//! lock, once per shard. The percentage is computed when the gauge is scraped.
//!
//! What it does not do: count exactly across a bucket's turnover when more threads than shards
//! share one (a request racing the reset may be dropped from that 10 s), or keep a route table —
//! `super::Metrics` maps labels to windows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::cells::{SHARDS, shard};

/// 30 × 10 s = 5 minutes.
const BUCKETS: usize = 30;
pub const BUCKET_SECONDS: u64 = 10;
const EMPTY: u64 = u64::MAX;

struct Bucket {
    /// Which 10-second slot (since the metrics' epoch) the counts belong to; `EMPTY` at first.
    slot: AtomicU64,
    good: AtomicU64,
    total: AtomicU64,
}

#[repr(align(64))]
struct ShardWindow([Bucket; BUCKETS]);

pub struct Window {
    shards: Box<[ShardWindow]>,
    turnover: Mutex<()>,
    /// The last computed share (f64 bits), shown while the 5 minutes hold no sample; `EMPTY`
    /// before the first.
    last: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        let shard = || {
            ShardWindow(std::array::from_fn(|_| Bucket {
                slot: AtomicU64::new(EMPTY),
                good: AtomicU64::new(0),
                total: AtomicU64::new(0),
            }))
        };
        Self {
            shards: (0..SHARDS).map(|_| shard()).collect(),
            turnover: Mutex::new(()),
            last: AtomicU64::new(EMPTY),
        }
    }
}

impl Window {
    /// One request in 10-second slot `slot`.
    pub fn record(&self, good: bool, slot: u64) {
        let Some(w) = self.shards.get(shard()) else {
            return;
        };
        let b = &w.0[(slot % BUCKETS as u64) as usize];
        if b.slot.load(Ordering::Acquire) != slot {
            let _g = self.turnover.lock().unwrap_or_else(PoisonError::into_inner);
            if b.slot.load(Ordering::Acquire) != slot {
                b.good.store(0, Ordering::Relaxed);
                b.total.store(0, Ordering::Relaxed);
                b.slot.store(slot, Ordering::Release);
            }
        }
        b.good.fetch_add(u64::from(good), Ordering::Relaxed);
        b.total.fetch_add(1, Ordering::Relaxed);
    }

    /// The share in percent over the 5 minutes ending in slot `now_slot`; with no sample in them,
    /// the last share computed (None before any).
    pub fn percent(&self, now_slot: u64) -> Option<f64> {
        let oldest = now_slot.saturating_sub(BUCKETS as u64 - 1);
        let (mut good, mut all) = (0u64, 0u64);
        for w in self.shards.iter() {
            for b in &w.0 {
                let s = b.slot.load(Ordering::Acquire);
                if s != EMPTY && s >= oldest {
                    good += b.good.load(Ordering::Relaxed);
                    all += b.total.load(Ordering::Relaxed);
                }
            }
        }
        if all > 0 {
            let p = 100.0 * good as f64 / all as f64;
            self.last.store(p.to_bits(), Ordering::Relaxed);
            return Some(p);
        }
        let last = self.last.load(Ordering::Relaxed);
        (last != EMPTY).then(|| f64::from_bits(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_samples_older_than_five_minutes() {
        let w = Window::default();
        assert_eq!(w.percent(0), None);
        w.record(false, 0);
        w.record(true, 0);
        assert_eq!(w.percent(0), Some(50.0));
        assert_eq!(w.percent(29), Some(50.0));
        // 40 slots later the old bucket is out of the window; the new one alone counts.
        w.record(true, 40);
        assert_eq!(w.percent(40), Some(100.0));
        // Nothing in the last 5 minutes: the last share stays.
        assert_eq!(w.percent(100), Some(100.0));
    }

    #[test]
    fn a_reused_bucket_starts_from_zero() {
        let w = Window::default();
        w.record(false, 3);
        w.record(true, 3 + BUCKETS as u64);
        assert_eq!(w.percent(3 + BUCKETS as u64), Some(100.0));
    }

    #[test]
    fn threads_count_exactly_within_a_slot() {
        let w = Window::default();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let w = &w;
                s.spawn(move || {
                    for i in 0..5_000u64 {
                        w.record((i + t) % 4 == 0, 7);
                    }
                });
            }
        });
        assert_eq!(w.percent(7), Some(25.0));
    }
}
