//! `replay.on_store_error`: what a store outage means for a request. `reject` answers 503
//! REPLAY_STORE_UNAVAILABLE; `allow` lets the request through without replay protection, loudly (an
//! error-level log line and a counter per request). A full memory store is capacity, not an outage:
//! it is always rejected. This module does not talk to any store itself.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};

use super::{Freshness, NonceStore, StoreError};

/// Counter of store errors by what was done about them:
/// `datafold_replay_store_errors_total{result="rejected"|"allowed"}`.
#[derive(Clone)]
pub struct StoreErrorMetrics {
    counter: IntCounterVec,
}

impl StoreErrorMetrics {
    pub const NAME: &'static str = "datafold_replay_store_errors_total";

    pub fn new() -> prometheus::Result<Self> {
        let counter = IntCounterVec::new(
            Opts::new(
                Self::NAME,
                "Replay store errors, by outcome: rejected (503) or allowed through unprotected",
            ),
            &["result"],
        )?;
        // Both series exist from the start, so a dashboard shows 0 rather than nothing.
        for result in ["rejected", "allowed"] {
            counter.with_label_values(&[result]);
        }
        Ok(Self { counter })
    }

    /// Register in the admin registry; call once.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.counter.clone()))
    }

    pub fn get(&self, result: &str) -> u64 {
        self.counter.with_label_values(&[result]).get()
    }

    fn inc(&self, result: &str) {
        self.counter.with_label_values(&[result]).inc();
    }
}

/// Wraps the configured store and applies `on_store_error`, so the gateway keeps one code path:
/// `Ok(Fresh)` means go on, `Ok(Replayed)` is NONCE_REPLAYED, `Err` is 503.
pub struct OnStoreError {
    inner: Arc<dyn NonceStore>,
    allow: bool,
    metrics: StoreErrorMetrics,
}

impl OnStoreError {
    /// `allow` is `on_store_error: allow`.
    pub fn new(inner: Arc<dyn NonceStore>, allow: bool, metrics: StoreErrorMetrics) -> Self {
        Self {
            inner,
            allow,
            metrics,
        }
    }
}

#[async_trait::async_trait]
impl NonceStore for OnStoreError {
    async fn check_and_remember(
        &self,
        key_id: &str,
        nonce: &str,
        ttl: Duration,
        now: u64,
    ) -> Result<Freshness, StoreError> {
        match self.inner.check_and_remember(key_id, nonce, ttl, now).await {
            Err(StoreError::Unavailable(why)) if self.allow => {
                self.metrics.inc("allowed");
                tracing::error!(
                    key_id,
                    error = %why,
                    "replay store unavailable; on_store_error: allow let this request through WITHOUT replay protection"
                );
                Ok(Freshness::Fresh)
            }
            Err(e) => {
                self.metrics.inc("rejected");
                tracing::error!(key_id, error = %e, "replay store error; request rejected (503)");
                Err(e)
            }
            ok => ok,
        }
    }

    fn entries(&self) -> Option<u64> {
        self.inner.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::MemoryStore;

    /// A store that is down: the real failure answer, not a mock of a working store.
    struct Down;

    #[async_trait::async_trait]
    impl NonceStore for Down {
        async fn check_and_remember(
            &self,
            _: &str,
            _: &str,
            _: Duration,
            _: u64,
        ) -> Result<Freshness, StoreError> {
            Err(StoreError::Unavailable("connection refused".into()))
        }
        fn entries(&self) -> Option<u64> {
            None
        }
    }

    #[tokio::test]
    async fn allow_lets_outages_through_and_counts_them() {
        let ttl = Duration::from_secs(10);
        let m = StoreErrorMetrics::new().unwrap();
        let reject = OnStoreError::new(Arc::new(Down), false, m.clone());
        let allow = OnStoreError::new(Arc::new(Down), true, m.clone());
        assert!(matches!(
            reject.check_and_remember("k", "n", ttl, 1).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(
            allow.check_and_remember("k", "n", ttl, 1).await,
            Ok(Freshness::Fresh)
        );
        assert_eq!(
            allow.check_and_remember("k", "n", ttl, 1).await,
            Ok(Freshness::Fresh)
        );
        assert_eq!((m.get("rejected"), m.get("allowed")), (1, 2));

        let registry = Registry::new();
        m.register(&registry).unwrap();
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert_eq!(names, [StoreErrorMetrics::NAME]);
    }

    #[tokio::test]
    async fn full_is_rejected_even_under_allow_and_replays_pass_through() {
        let m = StoreErrorMetrics::new().unwrap();
        let store = OnStoreError::new(Arc::new(MemoryStore::new(1).unwrap()), true, m.clone());
        let ttl = Duration::from_secs(10);
        assert_eq!(
            store.check_and_remember("k", "a", ttl, 1).await,
            Ok(Freshness::Fresh)
        );
        assert_eq!(
            store.check_and_remember("k", "a", ttl, 1).await,
            Ok(Freshness::Replayed)
        );
        assert!(matches!(
            store.check_and_remember("k", "b", ttl, 1).await,
            Err(StoreError::Full { .. })
        ));
        assert_eq!((m.get("rejected"), m.get("allowed")), (1, 0));
        assert_eq!(store.entries(), Some(1));
    }
}
