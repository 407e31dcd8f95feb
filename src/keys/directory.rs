//! The remote key directory (`key_directory`): a JWKS fetched every `refresh_seconds` with
//! `If-None-Match`, refetched at once (but at most once per `min_refetch_interval`, coalesced) when
//! a request names an unknown keyid, and kept at its last good contents when a fetch fails, the
//! document is malformed, or the caller's `apply` refuses it. A document identical to the one in
//! force (304, or 200 with the same bytes) is neither parsed nor applied again. It does not merge
//! with other key sources: `apply` (the gateway's, typically `KeySet::layered` over the policy's
//! keys and these plus an arc-swap) does that, and a refusal from it (a key id clash) counts as a
//! failed fetch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use sha2::{Digest, Sha256};

use super::KeyIndex;
use super::http_get::{self, Target};
use super::jwks::parse_jwks;

#[derive(Clone, Debug)]
pub struct DirectoryConfig {
    /// `http://` or `https://` (system root certificates) URL of the JWKS.
    pub url: String,
    /// Periodic refresh (`refresh_seconds`, at least 1 s).
    pub refresh: Duration,
    /// Unknown-keyid refetches happen at most this often, whatever the request rate.
    pub min_refetch_interval: Duration,
    /// One whole fetch: connect, TLS, request, response.
    pub timeout: Duration,
    /// Largest JWKS accepted.
    pub max_bytes: usize,
}

impl DirectoryConfig {
    /// Defaults: refetch on unknown keyid at most every 5 s, 5 s per fetch, 32 MiB documents
    /// (about 250,000 keys).
    pub fn new(url: impl Into<String>, refresh_seconds: u64) -> Self {
        Self {
            url: url.into(),
            refresh: Duration::from_secs(refresh_seconds.max(1)),
            min_refetch_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_bytes: 32 << 20,
        }
    }
}

/// Called with the directory's new keys after each fetch that changed them. `Err` (say, a key
/// id that clashes with an inline key) keeps the previous keys and is shown as the last error.
pub type ApplyFn = dyn Fn(Arc<KeyIndex>) -> Result<(), String> + Send + Sync;

/// What one fetch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// New records, applied.
    Changed,
    /// 200 with the same records, or 304 Not Modified.
    Unchanged,
}

/// For `/status` (`keys.directory`).
#[derive(Clone, Debug, Serialize)]
pub struct DirectoryStatus {
    pub url: String,
    /// Unix seconds of the last fetch that succeeded (200 or 304); null until one has.
    pub last_success: Option<u64>,
    /// Why the last fetch failed; null once a later one succeeded.
    pub last_error: Option<String>,
    pub keys: usize,
    /// Keys in the last document that could not be used (see `jwks.rs`).
    pub skipped_keys: usize,
    pub fetches: u64,
    pub failures: u64,
    pub not_modified: u64,
    /// Refetches asked for because of an unknown keyid, and how many of those were run.
    pub unknown_keyid_requests: u64,
    pub unknown_keyid_fetches: u64,
    pub generation: u64,
}

/// Cheap to clone; every clone is the same directory.
#[derive(Clone)]
pub struct KeyDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    config: DirectoryConfig,
    target: Target,
    apply: Box<ApplyFn>,
    records: ArcSwap<KeyIndex>,
    generation: watch::Sender<u64>,
    /// Held across a whole fetch: fetches never overlap, and an unknown-keyid lookup that arrives
    /// during one waits for it instead of starting another.
    fetch: tokio::sync::Mutex<FetchState>,
    /// Fetches finished (any outcome); lets a waiter see that one completed while it waited.
    completed: AtomicU64,
    status: Mutex<Health>,
    fetches: AtomicU64,
    failures: AtomicU64,
    not_modified: AtomicU64,
    unknown_requests: AtomicU64,
    unknown_fetches: AtomicU64,
}

#[derive(Default)]
struct FetchState {
    /// ETag of the applied document; sent as If-None-Match.
    etag: Option<String>,
    /// SHA-256 of the applied document: the same bytes again are not parsed again.
    digest: Option<[u8; 32]>,
    last_started: Option<Instant>,
    /// Only unknown-keyid refetches are rate-limited by `min_refetch_interval`: a key published
    /// just after a periodic fetch must still be found by the first request that uses it.
    last_unknown_fetch: Option<Instant>,
}

#[derive(Default)]
struct Health {
    last_success: Option<u64>,
    last_error: Option<String>,
    skipped: usize,
}

impl KeyDirectory {
    /// Checks the URL; fetches nothing yet (call `refresh` for the first load, `spawn_refresher`
    /// for the periodic one).
    pub fn new(
        config: DirectoryConfig,
        apply: impl Fn(Arc<KeyIndex>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let target = Target::parse(&config.url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                target,
                apply: Box::new(apply),
                records: ArcSwap::from_pointee(KeyIndex::empty()),
                generation: watch::Sender::new(0),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                completed: AtomicU64::new(0),
                status: Mutex::new(Health::default()),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                not_modified: AtomicU64::new(0),
                unknown_requests: AtomicU64::new(0),
                unknown_fetches: AtomicU64::new(0),
            }),
        })
    }

    /// The directory's current keys (the last good set; empty before the first success).
    pub fn records(&self) -> Arc<KeyIndex> {
        self.inner.records.load_full()
    }

    /// Bumped each time new records are applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// True once a fetch has succeeded (for `/readyz`).
    pub fn loaded(&self) -> bool {
        self.health().last_success.is_some()
    }

    /// Fetch now (waiting for a fetch in progress to finish first).
    pub async fn refresh(&self) -> Result<FetchOutcome, String> {
        let mut state = self.inner.fetch.lock().await;
        self.inner.fetch_locked(&mut state).await
    }

    /// A request named a keyid nobody knows: refetch, unless a fetch finished while we waited for
    /// the lock or another unknown-keyid refetch started less than `min_refetch_interval` ago. Returns true when the records
    /// changed (the caller then looks the keyid up again). Waits at most for one fetch.
    pub async fn refetch_for_unknown_keyid(&self) -> bool {
        let inner = &self.inner;
        inner.unknown_requests.fetch_add(1, Ordering::Relaxed);
        let generation = *inner.generation.borrow();
        let completed = inner.completed.load(Ordering::Acquire);
        let mut state = inner.fetch.lock().await;
        if inner.completed.load(Ordering::Acquire) != completed {
            // Someone else's fetch finished while we queued: its result is as fresh as ours would be.
            return *inner.generation.borrow() != generation;
        }
        if state
            .last_unknown_fetch
            .is_some_and(|t| t.elapsed() < inner.config.min_refetch_interval)
        {
            return false;
        }
        state.last_unknown_fetch = Some(Instant::now());
        inner.unknown_fetches.fetch_add(1, Ordering::Relaxed);
        matches!(
            inner.fetch_locked(&mut state).await,
            Ok(FetchOutcome::Changed)
        )
    }

    /// Refresh every `refresh` until the last clone of this directory is dropped.
    pub fn spawn_refresher(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = self.inner.config.refresh;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(inner) = weak.upgrade() else { return };
                let mut state = inner.fetch.lock().await;
                // An unknown-keyid refetch just ran: this one would learn nothing new.
                if state.last_started.is_some_and(|t| t.elapsed() < period / 2) {
                    continue;
                }
                let _ = inner.fetch_locked(&mut state).await;
            }
        })
    }

    pub fn status(&self) -> DirectoryStatus {
        let inner = &self.inner;
        let health = self.health();
        DirectoryStatus {
            url: inner.config.url.clone(),
            last_success: health.last_success,
            last_error: health.last_error.clone(),
            keys: inner.records.load().len(),
            skipped_keys: health.skipped,
            fetches: inner.fetches.load(Ordering::Relaxed),
            failures: inner.failures.load(Ordering::Relaxed),
            not_modified: inner.not_modified.load(Ordering::Relaxed),
            unknown_keyid_requests: inner.unknown_requests.load(Ordering::Relaxed),
            unknown_keyid_fetches: inner.unknown_fetches.load(Ordering::Relaxed),
            generation: *inner.generation.borrow(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.inner
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    async fn fetch_locked(&self, state: &mut FetchState) -> Result<FetchOutcome, String> {
        state.last_started = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch_once(state).await;
        let mut health = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(_) => {
                health.last_success = Some(unix_now());
                health.last_error = None;
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                health.last_error = Some(e.clone());
                tracing::warn!(
                    url = %self.config.url,
                    error = %e,
                    keys_kept = self.records.load().len(),
                    "key directory fetch failed; keeping the last good keys"
                );
            }
        }
        drop(health);
        self.completed.fetch_add(1, Ordering::Release);
        result
    }

    async fn fetch_once(&self, state: &mut FetchState) -> Result<FetchOutcome, String> {
        let resp = http_get::get(
            &self.target,
            state.etag.as_deref(),
            self.config.timeout,
            self.config.max_bytes,
        )
        .await?;
        match resp.status {
            304 if state.etag.is_some() => {
                self.not_modified.fetch_add(1, Ordering::Relaxed);
                return Ok(FetchOutcome::Unchanged);
            }
            200 => {}
            s => return Err(format!("HTTP status {s}")),
        }
        let digest: [u8; 32] = Sha256::digest(&resp.body[..]).into();
        if state.digest == Some(digest) {
            state.etag = resp.etag;
            return Ok(FetchOutcome::Unchanged);
        }
        let parsed = parse_jwks(&resp.body, &self.config.url)?;
        if !parsed.skipped.is_empty() {
            tracing::warn!(
                url = %self.config.url,
                skipped = parsed.skipped.len(),
                reasons = %parsed.skipped.join("; "),
                "key directory: some keys were skipped"
            );
        }
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .skipped = parsed.skipped.len();
        if **self.records.load() == parsed.index {
            state.etag = resp.etag;
            state.digest = Some(digest);
            return Ok(FetchOutcome::Unchanged);
        }
        let records = Arc::new(parsed.index);
        (self.apply)(records.clone()).map_err(|e| format!("new keys not applied: {e}"))?;
        let count = records.len();
        self.records.store(records);
        // Only now: a refused document must be fetched whole again, not answered 304.
        state.etag = resp.etag;
        state.digest = Some(digest);
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(url = %self.config.url, keys = count, "key directory: new keys applied");
        Ok(FetchOutcome::Changed)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
