//! Counters and histograms for the per-request metrics, sharded per thread: recording is one or
//! two relaxed `fetch_add`s on a cache line of the calling thread's own shard — no lock, no
//! allocation, no line that another worker thread writes — and a scrape sums the shards. They
//! export through the ordinary Prometheus registry as counter and histogram families that print
//! exactly as `prometheus`'s own types would.
//!
//! What this does not do: give a scrape a snapshot taken at one instant (shards are summed one
//! after another while requests go on, as with any set of independent counters; a histogram's
//! `_count` is the sum of its buckets, so the two always agree), or decrement.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

/// Shards per family. Worker threads get one each (round robin); more threads than this share.
pub const SHARDS: usize = 8;

const PER_LINE: usize = 8;

/// One cache line of counters, so two shards never share a line.
#[repr(align(64))]
#[derive(Default)]
struct Line([AtomicU64; PER_LINE]);

/// The calling thread's shard, assigned round robin on its first use.
pub fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static MINE: Cell<usize> = const { Cell::new(usize::MAX) });
    MINE.try_with(|c| {
        let s = c.get();
        if s != usize::MAX {
            return s;
        }
        let s = NEXT.fetch_add(1, Relaxed) % SHARDS;
        c.set(s);
        s
    })
    // Thread-local storage already torn down (a thread's exit path): any shard is correct.
    .unwrap_or(0)
}

/// `n` counters, each kept once per shard.
pub struct Cells {
    n: usize,
    lines_per_shard: usize,
    lines: Box<[Line]>,
}

impl Cells {
    pub fn new(n: usize) -> Self {
        let lines_per_shard = n.div_ceil(PER_LINE).max(1);
        Self {
            n,
            lines_per_shard,
            lines: (0..lines_per_shard * SHARDS)
                .map(|_| Line::default())
                .collect(),
        }
    }

    fn cell(&self, shard: usize, i: usize) -> Option<&AtomicU64> {
        if i >= self.n {
            return None;
        }
        self.lines
            .get(shard * self.lines_per_shard + i / PER_LINE)
            .map(|l| &l.0[i % PER_LINE])
    }

    /// Adds `v` to counter `i` (out of range: ignored) in the calling thread's shard.
    #[inline]
    pub fn add(&self, i: usize, v: u64) {
        if let Some(c) = self.cell(shard(), i) {
            c.fetch_add(v, Relaxed);
        }
    }

    /// Counter `i` over all shards.
    pub fn sum(&self, i: usize) -> u64 {
        (0..SHARDS)
            .filter_map(|s| self.cell(s, i))
            .fold(0u64, |a, c| a.wrapping_add(c.load(Relaxed)))
    }
}

/// A latency histogram with fixed bucket bounds; the sum is kept in whole nanoseconds.
pub struct LatencyCells {
    bounds_ns: Box<[u64]>,
    bounds_s: &'static [f64],
    /// One counter per bucket (not cumulative), then +Inf, then the sum in ns.
    cells: Cells,
}

impl LatencyCells {
    pub fn new(bounds_s: &'static [f64]) -> Self {
        Self {
            bounds_ns: bounds_s.iter().map(|b| (b * 1e9).round() as u64).collect(),
            bounds_s,
            cells: Cells::new(bounds_s.len() + 2),
        }
    }

    /// Like `prometheus::Histogram::observe`: the first bucket whose bound is ≥ the value.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let b = self
            .bounds_ns
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(self.bounds_ns.len());
        self.cells.add(b, 1);
        self.cells.add(self.bounds_ns.len() + 1, ns);
    }

    fn proto(&self) -> proto::Histogram {
        let mut h = proto::Histogram::default();
        let mut cumulative = 0u64;
        let buckets = self
            .bounds_s
            .iter()
            .enumerate()
            .map(|(i, &upper)| {
                cumulative += self.cells.sum(i);
                let mut b = proto::Bucket::default();
                b.set_upper_bound(upper);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        h.set_bucket(buckets);
        h.set_sample_count(cumulative + self.cells.sum(self.bounds_ns.len()));
        h.set_sample_sum(self.cells.sum(self.bounds_ns.len() + 1) as f64 / 1e9);
        h
    }
}

/// A family's metadata: name, help, type and label names (as its `Desc` has them).
pub struct Family {
    pub desc: prometheus::core::Desc,
    kind: MetricType,
}

impl Family {
    pub fn new(
        name: &str,
        help: &str,
        labels: &[&str],
        kind: MetricType,
    ) -> Result<Self, prometheus::Error> {
        let desc = prometheus::core::Desc::new(
            name.to_owned(),
            help.to_owned(),
            labels.iter().map(|l| (*l).to_owned()).collect(),
            Default::default(),
        )?;
        Ok(Self { desc, kind })
    }

    /// An empty family; the registry drops families without series from the output.
    pub fn start(&self) -> MetricFamily {
        let mut f = MetricFamily::default();
        f.set_name(self.desc.fq_name.clone());
        f.set_help(self.desc.help.clone());
        f.set_field_type(self.kind);
        f
    }

    /// One series's labels (values in the order of the family's label names), sorted by name as
    /// the registry's own metrics have them.
    fn labels(&self, values: &[&str]) -> Vec<LabelPair> {
        let mut pairs: Vec<LabelPair> = self
            .desc
            .variable_labels
            .iter()
            .zip(values)
            .map(|(n, v)| {
                let mut p = LabelPair::default();
                p.set_name(n.clone());
                p.set_value((*v).to_owned());
                p
            })
            .collect();
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        pairs
    }

    pub fn push_counter(&self, f: &mut MetricFamily, values: &[&str], v: u64) {
        let mut c = proto::Counter::default();
        c.set_value(v as f64);
        let mut m = proto::Metric::from_label(self.labels(values));
        m.set_counter(c);
        f.mut_metric().push(m);
    }

    pub fn push_gauge(&self, f: &mut MetricFamily, values: &[&str], v: f64) {
        let mut g = proto::Gauge::default();
        g.set_value(v);
        let mut m = proto::Metric::from_label(self.labels(values));
        m.set_gauge(g);
        f.mut_metric().push(m);
    }

    pub fn push_histogram(&self, f: &mut MetricFamily, h: &LatencyCells) {
        let mut m = proto::Metric::from_label(self.labels(&[]));
        m.set_histogram(h.proto());
        f.mut_metric().push(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<Line>(), 64);
        assert_eq!(std::mem::size_of::<Line>(), 64);
        let c = Cells::new(3);
        assert_eq!(c.lines.len(), SHARDS);
        let c = Cells::new(9);
        assert_eq!(c.lines.len(), 2 * SHARDS);
    }

    #[test]
    fn out_of_range_is_ignored() {
        let c = Cells::new(2);
        c.add(2, 5);
        c.add(usize::MAX, 5);
        assert_eq!(c.sum(2), 0);
        assert_eq!(c.sum(0) + c.sum(1), 0);
    }

    #[test]
    fn threads_add_up_exactly() {
        // More threads than shards, so some share one: still exact (atomic adds).
        let c = Cells::new(3);
        std::thread::scope(|s| {
            for t in 0..(SHARDS + 3) {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        c.add(t % 3, 1);
                    }
                });
            }
        });
        let total: u64 = (0..3).map(|i| c.sum(i)).sum();
        assert_eq!(total, (SHARDS as u64 + 3) * 10_000);
        assert_eq!(c.sum(0), 4 * 10_000);
    }

    #[test]
    fn histogram_buckets_like_prometheus() {
        static B: &[f64] = &[0.001, 0.01];
        let h = LatencyCells::new(B);
        for d in [
            Duration::from_micros(1000), // on the bound: first bucket
            Duration::from_micros(1001),
            Duration::from_millis(10),
            Duration::from_secs(3), // +Inf
        ] {
            h.observe(d);
        }
        let p = h.proto();
        let cum: Vec<u64> = p
            .get_bucket()
            .iter()
            .map(|b| b.cumulative_count())
            .collect();
        assert_eq!(cum, vec![1, 3]);
        assert_eq!(p.get_sample_count(), 4);
        assert!((p.get_sample_sum() - 3.012_001).abs() < 1e-9);
    }
}
