//! Prometheus collectors that read the replay store's and the key directory's own state at scrape
//! time, so neither needs to know about metrics: the replay scope (`process` or `shared`), whether
//! the store answered its last probe, what became of released claims, and the directory's fetches,
//! failures, keys and the age of its last good set. Registered with the other metrics (names in
//! `crate::metrics`) and bound to the store and directory once they exist; unbound, they report
//! nothing. Counters mirror monotonic counts kept by the store and the directory (each scrape adds
//! the difference since the last one).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::keys::KeyDirectory;
use crate::metrics as names;
use crate::policy::ReplayScope;
use crate::replay::{NonceStore, StoreStats};

/// Where the collectors read from; set once at start.
#[derive(Clone, Default)]
pub struct Bindings {
    store: Arc<OnceLock<Arc<dyn NonceStore>>>,
    directory: Arc<OnceLock<KeyDirectory>>,
}

impl Bindings {
    pub fn bind_store(&self, store: Arc<dyn NonceStore>) {
        let _ = self.store.set(store);
    }

    pub fn bind_directory(&self, directory: KeyDirectory) {
        let _ = self.directory.set(directory);
    }
}

/// Registers both collectors, unbound.
pub fn register(registry: &Registry) -> Result<Bindings, prometheus::Error> {
    let b = Bindings::default();
    registry.register(Box::new(ReplayCollector::new(b.store.clone())?))?;
    registry.register(Box::new(DirectoryCollector::new(b.directory.clone())?))?;
    Ok(b)
}

/// A counter that follows a monotonic count kept elsewhere.
struct Mirror {
    counter: IntCounter,
    last: Mutex<u64>,
}

impl Mirror {
    fn new(counter: IntCounter) -> Self {
        Self {
            counter,
            last: Mutex::new(0),
        }
    }

    fn sync(&self, now: u64) {
        if let Ok(mut last) = self.last.lock() {
            self.counter.inc_by(now.saturating_sub(*last));
            *last = (*last).max(now);
        }
    }
}

/// Reads one count out of the store's stats.
type StatFn = fn(&StoreStats) -> u64;

/// `datafold_replay_scope{scope}`, `datafold_replay_store_up` (stores that are probed: Redis) and
/// `datafold_replay_store_releases_total{result}`.
struct ReplayCollector {
    store: Arc<OnceLock<Arc<dyn NonceStore>>>,
    scope: IntGaugeVec,
    up: IntGauge,
    releases: IntCounterVec,
    mirrors: [(Mirror, StatFn); 4],
    descs: Vec<Desc>,
}

impl ReplayCollector {
    fn new(store: Arc<OnceLock<Arc<dyn NonceStore>>>) -> Result<Self, prometheus::Error> {
        let scope = IntGaugeVec::new(
            Opts::new(
                names::REPLAY_SCOPE,
                "1 for the replay store's scope: process (memory: a replay is caught only by the process that saw the original) or shared (redis: by every replica)",
            ),
            &["scope"],
        )?;
        let up = IntGauge::new(
            names::REPLAY_STORE_UP,
            "1 when the shared replay store answered its last probe (every 5 s), else 0",
        )?;
        let releases = IntCounterVec::new(
            Opts::new(
                names::REPLAY_STORE_RELEASES,
                "Nonce claims released after a timeout or an abandoned request, by result (released | not_held | queued | failed)",
            ),
            &["result"],
        )?;
        let m = |r: &str| Mirror::new(releases.with_label_values(&[r]));
        let mirrors: [(Mirror, StatFn); 4] = [
            (m("released"), |s| s.released),
            (m("not_held"), |s| s.release_not_held),
            (m("queued"), |s| s.release_queued),
            (m("failed"), |s| s.release_failed),
        ];
        let mut descs: Vec<Desc> = Vec::new();
        descs.extend(scope.desc().into_iter().cloned());
        descs.extend(up.desc().into_iter().cloned());
        descs.extend(releases.desc().into_iter().cloned());
        Ok(Self {
            store,
            scope,
            up,
            releases,
            mirrors,
            descs,
        })
    }
}

impl Collector for ReplayCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(store) = self.store.get() else {
            return Vec::new();
        };
        let active = store.scope();
        for s in ReplayScope::ALL {
            self.scope
                .with_label_values(&[s.as_str()])
                .set(i64::from(s == active));
        }
        let stats = store.stats();
        for (mirror, read) in &self.mirrors {
            mirror.sync(read(&stats));
        }
        let mut out = self.scope.collect();
        out.extend(self.releases.collect());
        if let Some(up) = stats.up {
            self.up.set(i64::from(up));
            out.extend(self.up.collect());
        }
        out
    }
}

/// `datafold_key_directory_*`: fetches, failures, keys, and the age of the last good set.
struct DirectoryCollector {
    directory: Arc<OnceLock<KeyDirectory>>,
    started: Instant,
    fetches: Mirror,
    failures: Mirror,
    keys: IntGauge,
    age: Gauge,
    loaded: IntGauge,
    descs: Vec<Desc>,
}

impl DirectoryCollector {
    fn new(directory: Arc<OnceLock<KeyDirectory>>) -> Result<Self, prometheus::Error> {
        let fetches = IntCounter::new(
            names::KEY_DIRECTORY_FETCHES,
            "Key directory fetches started (periodic and unknown-keyid)",
        )?;
        let failures = IntCounter::new(
            names::KEY_DIRECTORY_FAILURES,
            "Key directory fetches that failed (network, HTTP status, bad document, refused keys); the last good set stays",
        )?;
        let keys = IntGauge::new(
            names::KEY_DIRECTORY_KEYS,
            "Keys in the key directory's last good set",
        )?;
        let age = Gauge::new(
            names::KEY_DIRECTORY_AGE,
            "Seconds since the key directory last answered successfully (since start while it never has)",
        )?;
        let loaded = IntGauge::new(
            names::KEY_DIRECTORY_LOADED,
            "1 once a key directory fetch has succeeded since start",
        )?;
        let mut descs: Vec<Desc> = Vec::new();
        for d in [
            fetches.desc(),
            failures.desc(),
            keys.desc(),
            age.desc(),
            loaded.desc(),
        ] {
            descs.extend(d.into_iter().cloned());
        }
        Ok(Self {
            directory,
            started: Instant::now(),
            fetches: Mirror::new(fetches),
            failures: Mirror::new(failures),
            keys,
            age,
            loaded,
            descs,
        })
    }
}

impl Collector for DirectoryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(directory) = self.directory.get() else {
            return Vec::new();
        };
        let s = directory.status();
        self.fetches.sync(s.fetches);
        self.failures.sync(s.failures);
        self.keys.set(s.keys as i64);
        self.loaded.set(i64::from(s.last_success.is_some()));
        let age = match s.last_success {
            Some(at) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                now.saturating_sub(at) as f64
            }
            None => self.started.elapsed().as_secs_f64().floor(),
        };
        self.age.set(age);
        let mut out = self.fetches.counter.collect();
        out.extend(self.failures.counter.collect());
        out.extend(self.keys.collect());
        out.extend(self.age.collect());
        out.extend(self.loaded.collect());
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::replay::MemoryStore;

    fn text(r: &Registry) -> String {
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn unbound_says_nothing_and_a_memory_store_reports_process_scope_without_up() {
        let r = Registry::new();
        let b = register(&r).unwrap();
        assert_eq!(text(&r), "");
        b.bind_store(Arc::new(MemoryStore::new(8).unwrap()));
        let t = text(&r);
        assert!(
            t.contains("datafold_replay_scope{scope=\"process\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("datafold_replay_scope{scope=\"shared\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("datafold_replay_store_releases_total{result=\"released\"} 0"),
            "{t}"
        );
        assert!(!t.contains("datafold_replay_store_up"), "{t}");
        assert!(!t.contains("datafold_key_directory"), "{t}");
    }

    #[test]
    fn mirrored_counters_follow_the_source() {
        let c = IntCounter::new("x_total", "x").unwrap();
        let m = Mirror::new(c.clone());
        m.sync(3);
        m.sync(3);
        m.sync(10);
        assert_eq!(c.get(), 10);
        m.sync(4); // never backwards
        assert_eq!(c.get(), 10);
    }
}
