//! Builds the nonce store the policy names (once, at start: `replay.store` and the Redis settings
//! are restart-only) and says what it guarantees: a memory store logs one warning that replays are
//! caught per process only. Also runs the shared store's probe (a PING every few seconds on a
//! thread of its own) for readiness and `datafold_replay_store_up`.

use std::sync::Arc;
use std::time::Duration;

use super::{MemoryStore, NonceStore, RedisStore, RedisStoreConfig};
use crate::admin::readiness::Latch;
use crate::policy::{ReplayBackend, ReplayPolicy};

/// The store for `policy`; reads the Redis password and TLS files it names. Does not connect.
pub fn build(policy: &ReplayPolicy) -> Result<Arc<dyn NonceStore>, String> {
    match &policy.backend {
        ReplayBackend::Memory => {
            let store = MemoryStore::new(policy.max_entries).map_err(|e| e.to_string())?;
            tracing::warn!(
                replay_scope = "process",
                "replay.store is memory: replays are caught per process only; a signed request replayed to another replica is accepted there. With several replicas use replay.store: redis"
            );
            Ok(Arc::new(store))
        }
        ReplayBackend::Redis(target) => {
            let config = RedisStoreConfig::from_target(target)?;
            let store = RedisStore::new(&config)?;
            tracing::info!(replay_scope = "shared", store = %store.display_url(), "replay store: redis");
            Ok(Arc::new(store))
        }
    }
}

/// Until the first answer: how often to ask. After it: how often to refresh the `up` gauge.
const PROBE_STARTING: Duration = Duration::from_millis(500);
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Probes a shared store for ever on a thread of its own: sets `answered` at the first answer
/// (readiness), and leaves each result in the store's `stats().up`. Nothing for a memory store.
pub fn spawn_probe(store: Arc<dyn NonceStore>, answered: Latch) -> Result<(), String> {
    if store.stats().up.is_none() {
        answered.set();
        return Ok(());
    }
    std::thread::Builder::new()
        .name("replay-probe".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                answered.fail("replay store probe: cannot start its runtime".to_owned());
                return;
            };
            rt.block_on(async move {
                let mut logged = false;
                loop {
                    match store.probe().await {
                        Ok(()) => {
                            if !logged {
                                tracing::info!(store = %store.describe(), "replay store answers");
                                logged = true;
                            }
                            answered.set();
                        }
                        Err(e) => {
                            if logged {
                                tracing::warn!(error = %e, "replay store probe failed");
                            }
                            answered.fail(e.to_string());
                        }
                    }
                    let wait = if answered.check().is_ok() {
                        PROBE_EVERY
                    } else {
                        PROBE_STARTING
                    };
                    tokio::time::sleep(wait).await;
                }
            });
        })
        .map(drop)
        .map_err(|e| format!("replay store probe thread: {e}"))
}
