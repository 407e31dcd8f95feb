//! The shared nonce store (`replay.store: redis`): every replica asks the same Redis (one server, a
//! Redis Cluster, or the primary Sentinel names; see `redis_link.rs`), so a nonce accepted by one
//! sidecar is refused by all. A claim is one atomic `SET key token NX PX ttl GET` whose value is
//! unique to the request; a claim we could not confirm in time (timeout, a broken connection, or
//! the request abandoned) is released with a compare-and-delete sent behind it on the same
//! connection, so a request answered 503 stays retryable (issue 12 case 7).
//! It does not decide what an outage means for a request: it answers `StoreError::Unavailable`
//! and `on_store_error` (see `authn.rs`) decides.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pingora::prelude::timeout as fast_timeout;
use redis::{RedisError, Value};
use sha2::{Digest, Sha256};

use super::redis_link::{Link, LinkConfig, Links, Pinned, Timeouts, timed_out};
use super::{Freshness, NonceStore, StoreError, StoreStats};
use crate::policy::replay::{RedisTarget, RedisTopology, ReplayScope, redact_url};

/// Every key this store writes starts with this, then the operator's prefix.
pub const KEY_NAMESPACE: &str = "sigproxy:nonce:";

/// Deletes `KEYS[1]` only while it still holds `ARGV[1]`: releases our claim and nobody else's.
const RELEASE_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// How often a release is re-sent when the connection it went out on broke before answering.
const RELEASE_ATTEMPTS: u32 = 5;

/// Default timeouts: 500 ms to connect, 250 ms per answer. A healthy Redis answers a `SET` in well
/// under a millisecond on a LAN; an overloaded one should fail requests fast, not pile them up.
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_millis(500),
    response: Duration::from_millis(250),
};

/// How to reach Redis and how long to wait for it.
#[derive(Clone)]
pub struct RedisStoreConfig {
    /// Where Redis is, the password and TLS material already read, and the timeouts. The response
    /// timeout is also the most a request waits for the store in total (including for a reconnect
    /// in progress) before it gets `Unavailable`.
    pub link: LinkConfig,
    /// Put after `sigproxy:nonce:` so several deployments can share one Redis without sharing
    /// nonces. Empty by default. Replicas that must share nonces must use the same prefix.
    pub key_prefix: String,
}

impl RedisStoreConfig {
    /// One server at `url` (`redis://[user:password@]host[:port][/db]` or `rediss://…`), default
    /// timeouts, no prefix.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            link: LinkConfig::standalone(&url.into(), DEFAULT_TIMEOUTS),
            key_prefix: String::new(),
        }
    }

    /// From the policy: reads the password and TLS files it names (at start).
    pub fn from_target(target: &RedisTarget) -> Result<Self, String> {
        Ok(Self {
            link: LinkConfig::from_target(target, DEFAULT_TIMEOUTS)?,
            key_prefix: String::new(),
        })
    }
}

/// The Redis nonce store. Cheap to share behind an `Arc`; the requests of one runtime multiplex
/// over one connection per server, driven on that runtime (commands sent concurrently are written
/// back to back without waiting for each other's answers, which is pipelining without batching on
/// our side).
pub struct RedisStore {
    /// One link per runtime that asks (the proxy's, the probe's): see `Links`.
    links: Links,
    key_prefix: String,
    response_timeout: Duration,
    display: String,
    /// Random per process, so that two replicas never write the same claim value.
    token_tag: u64,
    token_seq: AtomicU64,
    /// Set once the server refused `SET … NX GET` (Redis before 7.0): plain `SET … NX` from then on.
    legacy_set: AtomicBool,
    stats: Arc<Counters>,
}

/// What the store counts, read by `stats()`.
#[derive(Debug, Default)]
struct Counters {
    errors: AtomicU64,
    released: AtomicU64,
    not_held: AtomicU64,
    queued: AtomicU64,
    release_failed: AtomicU64,
    probe_ok: AtomicBool,
}

impl RedisStore {
    /// Builds the store without connecting (so a sidecar starts, and serves its unsigned routes,
    /// while Redis is still coming up). Errors name what is wrong with a URL and never echo a
    /// password.
    pub fn new(config: &RedisStoreConfig) -> Result<Self, String> {
        let display = describe(&config.link.topology);
        let links = Links::new(&config.link).map_err(|e| format!("replay store {display}: {e}"))?;
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag)
            .map_err(|e| format!("replay store: no randomness for claim values: {e}"))?;
        Ok(Self {
            links,
            key_prefix: config.key_prefix.clone(),
            response_timeout: config.link.timeouts.response,
            display,
            token_tag: u64::from_le_bytes(tag),
            token_seq: AtomicU64::new(0),
            legacy_set: AtomicBool::new(false),
            stats: Arc::new(Counters::default()),
        })
    }

    /// Where the store is, without a password, for logs and `/status`.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    /// The Redis key for (key id, nonce): namespace, prefix, then the first 128 bits of
    /// SHA-256(len(key_id) ‖ key_id ‖ len(nonce) ‖ nonce) in hex, lengths as 8-byte big-endian.
    /// Unkeyed on purpose: every replica must compute the same key. The hash keeps attacker-chosen
    /// strings out of Redis and every key 32 hex digits long; the length prefixes keep ("ab","c")
    /// and ("a","bc") apart. 128 bits make an accidental collision (a false NONCE_REPLAYED) need
    /// about 2^64 remembered nonces.
    pub fn redis_key(&self, key_id: &str, nonce: &str) -> String {
        let mut h = Sha256::new();
        h.update((key_id.len() as u64).to_be_bytes());
        h.update(key_id.as_bytes());
        h.update((nonce.len() as u64).to_be_bytes());
        h.update(nonce.as_bytes());
        let digest = h.finalize();
        let mut key = String::with_capacity(KEY_NAMESPACE.len() + self.key_prefix.len() + 2 * 16);
        key.push_str(KEY_NAMESPACE);
        key.push_str(&self.key_prefix);
        let mut digits = [0u8; 32];
        // 16 bytes into 32 digits: the lengths match, so this cannot fail; ASCII is UTF-8.
        if hex::encode_to_slice(&digest[..16], &mut digits).is_ok()
            && let Ok(d) = std::str::from_utf8(&digits)
        {
            key.push_str(d);
        }
        key
    }

    /// A claim value no other request (of any replica) uses: the process tag and a counter.
    fn token(&self) -> String {
        let seq = self.token_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{seq:x}", self.token_tag)
    }

    fn unavailable(&self, e: &RedisError) -> StoreError {
        StoreError::Unavailable(format!("redis {}: {e}", self.display).into())
    }

    /// Sends the claim on `conn` and reads what it says about the nonce.
    async fn claim(
        &self,
        conn: &mut Pinned,
        key: &str,
        token: &str,
        ttl_ms: u64,
    ) -> Result<Freshness, RedisError> {
        loop {
            let legacy = self.legacy_set.load(Ordering::Relaxed);
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(token).arg("NX").arg("PX").arg(ttl_ms);
            if !legacy {
                // Answers the value that was there: nil when we set it, our own token when a
                // retry of this very claim (by the cluster client, after a lost answer) got there
                // second — both fresh — and anything else when the nonce was used.
                cmd.arg("GET");
            }
            match conn.query(&cmd).await {
                Ok(reply) => return read_claim(legacy, token, reply),
                Err(e) if !legacy && is_syntax_error(&e) => {
                    // Redis < 7.0 refuses NX together with GET, and wrote nothing.
                    if !self.legacy_set.swap(true, Ordering::Relaxed) {
                        tracing::warn!(store = %self.display, "replay store: Redis refused SET NX GET (Redis < 7.0?); using SET NX");
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A human description of where the store is, passwords redacted.
fn describe(t: &RedisTopology) -> String {
    let urls = |v: &[String]| {
        v.iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(",")
    };
    match t {
        RedisTopology::Standalone { url } => redact_url(url),
        RedisTopology::Cluster { nodes } => format!("cluster[{}]", urls(nodes)),
        RedisTopology::Sentinel { sentinels, master } => {
            format!("sentinel[{}]/{master}", urls(sentinels))
        }
    }
}

/// Reads the answer to the claim.
fn read_claim(legacy: bool, token: &str, reply: Value) -> Result<Freshness, RedisError> {
    match reply {
        Value::Nil if legacy => Ok(Freshness::Replayed),
        Value::Nil => Ok(Freshness::Fresh),
        Value::Okay if legacy => Ok(Freshness::Fresh),
        Value::SimpleString(s) if legacy && s == "OK" => Ok(Freshness::Fresh),
        Value::BulkString(v) if !legacy => Ok(if v == token.as_bytes() {
            Freshness::Fresh
        } else {
            Freshness::Replayed
        }),
        other => Err(RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected answer to SET NX",
            format!("{other:?}"),
        ))),
    }
}

fn is_syntax_error(e: &RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.contains("syntax error"))
}

/// A claim sent to Redis whose outcome this request has not yet taken in. Dropped while armed (no
/// answer in time, an error, or the request abandoned mid-flight), it sends the compare-and-delete
/// on the same connection: Redis runs a connection's commands in order, so even a hung server that
/// wakes up runs the claim first and the release second, and the nonce stays usable.
struct PendingClaim {
    link: Arc<Link>,
    conn: Pinned,
    /// Bounds each attempt of the release (the connection has no timeout of its own).
    response_timeout: Duration,
    key: String,
    token: String,
    stats: Arc<Counters>,
    armed: bool,
}

impl Drop for PendingClaim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let stats = self.stats.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            stats.release_failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (link, mut conn, bound) = (self.link.clone(), self.conn.clone(), self.response_timeout);
        let (key, token) = (
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        // The first write happens in the task's first poll; each attempt is bounded, so the task
        // ends by itself.
        rt.spawn(async move {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(RELEASE_SCRIPT).arg(1).arg(&key).arg(&token);
            for attempt in 0..RELEASE_ATTEMPTS {
                let answer = tokio::time::timeout(bound, conn.query(&cmd))
                    .await
                    .unwrap_or_else(|_| Err(timed_out()));
                let counter = match answer {
                    Ok(Value::Int(1)) => &stats.released,
                    Ok(_) => &stats.not_held,
                    // Sent, and waiting behind the claim on a server that does not answer: it
                    // runs, in order, when the server does.
                    Err(e) if e.is_timeout() => &stats.queued,
                    // The connection broke: the claim on it either ran before that or never will.
                    // Release through the connection the link finds next.
                    Err(e) => {
                        link.failed(&e);
                        tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
                        match link.pin().await {
                            Ok(next) => conn = next,
                            Err(_) => continue,
                        }
                        continue;
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
            stats.release_failed.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// Milliseconds for `PX`, rounded up (never forget early), at least 1, and within Redis's range.
fn ttl_millis(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms)
        .unwrap_or(u64::MAX)
        .clamp(1, i64::MAX as u64 / 2)
}

#[async_trait::async_trait]
impl NonceStore for RedisStore {
    /// `now` is not used: Redis expires the key `ttl` after it was set, by its own clock, so replicas
    /// whose clocks disagree still agree on when a nonce is forgotten.
    async fn check_and_remember(
        &self,
        key_id: &str,
        nonce: &str,
        ttl: Duration,
        _now: u64,
    ) -> Result<Freshness, StoreError> {
        let key = self.redis_key(key_id, nonce);
        // The link a claim went out on, to tell it when the claim got no answer in time.
        let mut sent_on: Option<Arc<Link>> = None;
        let op = async {
            let link = self.links.current().map_err(|e| self.unavailable(&e))?;
            let conn = link.pin().await.map_err(|e| self.unavailable(&e))?;
            sent_on = Some(link.clone());
            // Armed from before the first byte is written until the answer is read: whatever
            // interrupts this future in between (the timeout below, or the request being dropped)
            // releases the claim.
            let mut pending = PendingClaim {
                link,
                conn,
                response_timeout: self.response_timeout,
                key,
                token: self.token(),
                stats: self.stats.clone(),
                armed: true,
            };
            let mut conn = pending.conn.clone();
            let result = self
                .claim(&mut conn, &pending.key, &pending.token, ttl_millis(ttl))
                .await;
            // A claim that failed may still have run (an answer lost with its connection): it is
            // released too. Only a clear answer, fresh or replayed, disarms.
            pending.armed = result.is_err();
            result.map_err(|e| {
                pending.link.failed(&e);
                self.unavailable(&e)
            })
        };
        // The one timer of a claim (the one-server and Sentinel connections have none of their
        // own): it bounds the whole wait, including waiting on a reconnect another request
        // started. Armed only if the answer is not there at the first poll. Pingora's timer (10 ms
        // buckets on a clock thread of its own, which Pingora runs anyway) rather than tokio's: a
        // tokio timer armed earlier than the runtime's next planned wake-up makes the runtime
        // wake itself (an eventfd write and one more `epoll_wait` per claim).
        let result = match fast_timeout(self.response_timeout, op).await {
            Ok(result) => result,
            Err(_) => {
                if let Some(link) = &sent_on {
                    link.failed(&timed_out());
                }
                Err(StoreError::Unavailable(
                    format!(
                        "redis {}: no answer within {} ms",
                        self.display,
                        self.response_timeout.as_millis()
                    )
                    .into(),
                ))
            }
        };
        if result.is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Redis cannot count only our keys without a scan, so `/status` shows no count.
    fn entries(&self) -> Option<u64> {
        None
    }

    fn scope(&self) -> ReplayScope {
        ReplayScope::Shared
    }

    fn describe(&self) -> String {
        self.display.clone()
    }

    async fn probe(&self) -> Result<(), StoreError> {
        let r = match self.links.current() {
            Ok(link) => match tokio::time::timeout(self.response_timeout * 4, link.probe()).await {
                Ok(r) => r,
                Err(_) => {
                    link.failed(&timed_out());
                    Err(timed_out())
                }
            },
            Err(e) => Err(e),
        };
        self.stats.probe_ok.store(r.is_ok(), Ordering::Relaxed);
        r.map_err(|e| self.unavailable(&e))
    }

    fn stats(&self) -> StoreStats {
        let s = &self.stats;
        StoreStats {
            errors: s.errors.load(Ordering::Relaxed),
            released: s.released.load(Ordering::Relaxed),
            release_not_held: s.not_held.load(Ordering::Relaxed),
            release_queued: s.queued.load(Ordering::Relaxed),
            release_failed: s.release_failed.load(Ordering::Relaxed),
            up: Some(s.probe_ok.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_passwords_never_shown() {
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1:6379/3",
            "rediss://cache.internal:6380/0",
            "redis://:s3cret@127.0.0.1:6379/0",
        ] {
            let s = RedisStore::new(&RedisStoreConfig::new(ok)).unwrap();
            assert!(!s.display_url().contains("s3cret"), "{}", s.display_url());
        }
        let e = RedisStore::new(&RedisStoreConfig::new("unix:///tmp/redis.sock"))
            .err()
            .unwrap();
        assert!(e.contains("unix sockets"), "{e}");
        let e = RedisStore::new(&RedisStoreConfig::new("http://:pw@x"))
            .err()
            .unwrap();
        assert!(e.contains("expected redis://"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn keys_are_namespaced_length_prefixed_and_the_same_in_every_replica() {
        let mut cfg = RedisStoreConfig::new("redis://127.0.0.1:1");
        cfg.key_prefix = "prod:".into();
        let a = RedisStore::new(&cfg).unwrap();
        let b = RedisStore::new(&cfg).unwrap();
        let k = a.redis_key("key-1", "nonce-1");
        assert_eq!(k, b.redis_key("key-1", "nonce-1"));
        assert!(k.starts_with("sigproxy:nonce:prod:"), "{k}");
        assert_eq!(k.len(), "sigproxy:nonce:prod:".len() + 32);
        assert_ne!(a.redis_key("ab", "c"), a.redis_key("a", "bc"));
        assert_ne!(k, a.redis_key("key-2", "nonce-1"));
        // Pinned, so a change of digest (which would split a rolling upgrade's replicas) fails here.
        assert_eq!(
            RedisStore::new(&RedisStoreConfig::new("redis://h"))
                .unwrap()
                .redis_key("k", "n"),
            "sigproxy:nonce:f21ea2c986b32f9ea0627c0c8583c1bb"
        );
    }

    #[test]
    fn claim_values_differ_within_and_across_processes() {
        let a = RedisStore::new(&RedisStoreConfig::new("redis://h")).unwrap();
        let b = RedisStore::new(&RedisStoreConfig::new("redis://h")).unwrap();
        let (a1, a2, b1) = (a.token(), a.token(), b.token());
        assert_ne!(a1, a2);
        assert_ne!(a1, b1, "two stores (replicas) drew the same tag");
    }

    #[test]
    fn claim_answers() {
        let read = |legacy, reply| read_claim(legacy, "tok", reply).ok();
        let (fresh, replayed) = (Some(Freshness::Fresh), Some(Freshness::Replayed));
        assert_eq!(read(false, Value::Nil), fresh);
        // A retry of our own claim finds our own value: still fresh.
        assert_eq!(read(false, Value::BulkString(b"tok".to_vec())), fresh);
        // Someone else's value (or an older sigproxy's "1"): used.
        assert_eq!(read(false, Value::BulkString(b"1".to_vec())), replayed);
        assert_eq!(read(true, Value::Okay), fresh);
        assert_eq!(read(true, Value::Nil), replayed);
        assert_eq!(read(false, Value::Okay), None);
        assert_eq!(read(true, Value::Int(3)), None);
    }

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_secs(330)), 330_000);
        assert_eq!(ttl_millis(Duration::from_micros(1_500)), 2);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert!(ttl_millis(Duration::MAX) < i64::MAX as u64);
    }
}
