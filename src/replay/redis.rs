//! The shared nonce store (`replay.store: redis`): every replica asks one Redis server, with one
//! atomic `SET key 1 NX PX ttl_ms` per nonce, so a nonce accepted by one sidecar is refused by all.
//! Supports `redis://` and `rediss://` (TLS via rustls) URLs; Sentinel, cluster and unix-socket URLs
//! are refused when the store is built. It does not decide what an outage means for a request: it
//! answers `StoreError::Unavailable` and `on_store_error` (see `on_error.rs`) decides.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{Freshness, NonceStore, StoreError};

/// Every key this store writes starts with this, then the operator's prefix.
pub const KEY_NAMESPACE: &str = "sigproxy:nonce:";

/// How to reach Redis and how long to wait for it.
#[derive(Clone, Debug)]
pub struct RedisStoreConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS).
    pub url: String,
    /// Put after `sigproxy:nonce:` so several deployments can share one Redis without sharing
    /// nonces. Empty by default. Replicas that must share nonces must use the same prefix.
    pub key_prefix: String,
    /// One TCP (and TLS) connection attempt.
    pub connect_timeout: Duration,
    /// One `SET` round trip, and the most a request waits for the store in total (including for a
    /// reconnect in progress) before it gets `Unavailable`.
    pub response_timeout: Duration,
}

impl RedisStoreConfig {
    /// Defaults: no prefix, 500 ms to connect, 250 ms per answer. A healthy Redis answers a `SET` in
    /// well under a millisecond on a LAN; an overloaded one should fail requests fast, not pile them up.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: String::new(),
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(250),
        }
    }
}

/// The Redis nonce store. Cheap to share behind an `Arc`; all requests multiplex over one
/// connection (commands sent concurrently are written back to back without waiting for each other's
/// answers, which is pipelining without batching on our side).
pub struct RedisStore {
    client: Client,
    manager_config: ConnectionManagerConfig,
    /// Built on first use, inside the runtime that serves requests: the connection manager spawns
    /// its reconnect tasks on the current tokio runtime, and the store may be built before any runtime
    /// exists (at config load).
    conn: OnceCell<ConnectionManager>,
    key_prefix: String,
    response_timeout: Duration,
    display_url: String,
}

impl RedisStore {
    /// Checks the URL and builds the store without connecting (so a sidecar starts, and serves its
    /// unsigned routes, while Redis is still coming up). Errors name what is wrong with the URL and
    /// never echo a password.
    pub fn new(config: &RedisStoreConfig) -> Result<Self, String> {
        let display_url = redact(&config.url);
        let scheme = config.url.split("://").next().unwrap_or_default();
        match scheme {
            "redis" | "rediss" => {}
            "redis+sentinel" | "rediss+sentinel" => {
                return Err(format!(
                    "replay.redis_url {display_url}: Redis Sentinel is not supported; point redis_url at the primary (or a proxy such as a Kubernetes Service in front of it)"
                ));
            }
            "redis+unix" | "unix" => {
                return Err(format!(
                    "replay.redis_url {display_url}: unix sockets are not supported; use redis://host:port"
                ));
            }
            _ => {
                return Err(format!(
                    "replay.redis_url {display_url}: expected redis://host:port[/db] or rediss://host:port[/db]"
                ));
            }
        }
        let client = Client::open(config.url.as_str())
            .map_err(|e| format!("replay.redis_url {display_url}: {e}"))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            // A reconnect is attempted on the next request after a failure anyway; a long retry
            // series would only keep requests waiting on one doomed attempt.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        Ok(Self {
            client,
            manager_config,
            conn: OnceCell::new(),
            key_prefix: config.key_prefix.clone(),
            response_timeout: config.response_timeout,
            display_url,
        })
    }

    /// The URL without its password, for logs and `/status`.
    pub fn display_url(&self) -> &str {
        &self.display_url
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
        key.push_str(&hex::encode(&digest[..16]));
        key
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let manager = ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    self.manager_config.clone(),
                )?;
                // The first connection is a shared future that only moves while someone awaits it;
                // requests give up after `response_timeout`, which could be shorter than a TLS
                // handshake to a distant Redis. A task of its own drives it to the end. (Later
                // reconnects are spawned by the manager itself.)
                let mut driver = manager.clone();
                tokio::spawn(async move {
                    let _ = redis::cmd("PING").query_async::<Value>(&mut driver).await;
                });
                Ok::<_, redis::RedisError>(manager)
            })
            .await
            .map_err(|e| unavailable(&self.display_url, &e))?;
        Ok(conn.clone())
    }
}

fn unavailable(url: &str, e: &redis::RedisError) -> StoreError {
    let hint = if e.is_cluster_error() {
        " (this looks like Redis Cluster, which is not supported)"
    } else {
        ""
    };
    StoreError::Unavailable(format!("redis {url}: {e}{hint}").into())
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
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl));
        let op = async {
            let mut conn = self.connection().await?;
            cmd.query_async::<Value>(&mut conn)
                .await
                .map_err(|e| unavailable(&self.display_url, &e))
        };
        // The manager's own timeouts bound one attempt; this bounds the whole wait, including
        // waiting on a reconnect another request started.
        let reply = tokio::time::timeout(self.response_timeout, op)
            .await
            .map_err(|_| {
                StoreError::Unavailable(
                    format!(
                        "redis {}: no answer within {} ms",
                        self.display_url,
                        self.response_timeout.as_millis()
                    )
                    .into(),
                )
            })??;
        match reply {
            Value::Okay => Ok(Freshness::Fresh),
            Value::SimpleString(s) if s == "OK" => Ok(Freshness::Fresh),
            Value::Nil => Ok(Freshness::Replayed),
            other => Err(StoreError::Unavailable(
                format!(
                    "redis {}: unexpected answer to SET NX: {other:?}",
                    self.display_url
                )
                .into(),
            )),
        }
    }

    /// Redis cannot count only our keys without a scan, so `/status` shows no count.
    fn entries(&self) -> Option<u64> {
        None
    }
}

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
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
            RedisStore::new(&RedisStoreConfig::new(ok)).unwrap();
        }
        let e = RedisStore::new(&RedisStoreConfig::new(
            "redis+sentinel://:pw@s1:26379/mymaster",
        ))
        .err()
        .unwrap();
        assert!(e.contains("Sentinel is not supported"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
        let e = RedisStore::new(&RedisStoreConfig::new("unix:///tmp/redis.sock"))
            .err()
            .unwrap();
        assert!(e.contains("unix sockets"), "{e}");
        let e = RedisStore::new(&RedisStoreConfig::new("http://x"))
            .err()
            .unwrap();
        assert!(e.contains("expected redis://"), "{e}");
        assert_eq!(
            redact("redis://app:hunter2@r:6379/1"),
            "redis://app:***@r:6379/1"
        );
        assert_eq!(redact("redis://:hunter2@r"), "redis://:***@r");
        assert_eq!(redact("redis://r:6379"), "redis://r:6379");
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
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_secs(330)), 330_000);
        assert_eq!(ttl_millis(Duration::from_micros(1_500)), 2);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert!(ttl_millis(Duration::MAX) < i64::MAX as u64);
    }
}
