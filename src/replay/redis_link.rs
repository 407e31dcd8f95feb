//! How the Redis replay store reaches Redis: one server (a connection manager that reconnects by
//! itself), a Redis Cluster (the `redis` crate's cluster client: slot routing, MOVED/ASK, topology
//! refresh after a failover; rebuilt from the seeds when answers stop) or the primary that Redis
//! Sentinel names (re-asked after a connection breaks, a write is refused as READONLY, or answers
//! stop). Builds the clients from the policy's
//! `RedisTarget` with the password and TLS material read from files or the environment.
//! It knows nothing about nonces: `redis.rs` sends the commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, RedisError, RedisResult, TlsCertificates, TlsMode, Value,
};
use tokio::runtime::Id as RuntimeId;
use tokio::sync::{Mutex, OnceCell};

use crate::policy::replay::{RedisTarget, RedisTopology, SecretSource, redact_url};

/// Timeouts for every kind of link.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

/// Everything a link needs from the policy, with the secrets already read.
#[derive(Clone)]
pub struct LinkConfig {
    pub topology: RedisTopology,
    pub password: Option<String>,
    pub certificates: Option<TlsCertificates>,
    pub timeouts: Timeouts,
}

impl LinkConfig {
    /// Reads the password and TLS files the policy names. Errors name the policy key and the
    /// file or variable, never a secret.
    pub fn from_target(target: &RedisTarget, timeouts: Timeouts) -> Result<Self, String> {
        let password = match &target.password {
            None => None,
            Some(SecretSource::File(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("replay.redis_password_file {path}: {e}"))?;
                let pw = text.strip_suffix('\n').unwrap_or(&text);
                let pw = pw.strip_suffix('\r').unwrap_or(pw);
                if pw.is_empty() {
                    return Err(format!(
                        "replay.redis_password_file {path}: the file is empty"
                    ));
                }
                Some(pw.to_owned())
            }
            Some(SecretSource::Env(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                Ok(_) => return Err(format!("replay.redis_password_env: ${var} is empty")),
                Err(_) => return Err(format!("replay.redis_password_env: ${var} is not set")),
            },
        };
        let read = |key: &str, path: &Option<String>| -> Result<Option<Vec<u8>>, String> {
            path.as_ref()
                .map(|p| std::fs::read(p).map_err(|e| format!("replay.{key} {p}: {e}")))
                .transpose()
        };
        let root_cert = read("redis_ca_file", &target.ca_file)?;
        let client_tls = match (
            read("redis_client_cert_file", &target.client_cert_file)?,
            read("redis_client_key_file", &target.client_key_file)?,
        ) {
            (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig {
                client_cert,
                client_key,
            }),
            _ => None,
        };
        let certificates =
            (root_cert.is_some() || client_tls.is_some()).then_some(TlsCertificates {
                client_tls,
                root_cert,
            });
        Ok(Self {
            topology: target.topology.clone(),
            password,
            certificates,
            timeouts,
        })
    }

    /// A standalone URL with nothing from files (tests, `RedisStoreConfig::new`).
    pub fn standalone(url: &str, timeouts: Timeouts) -> Self {
        Self {
            topology: RedisTopology::Standalone {
                url: url.to_owned(),
            },
            password: None,
            certificates: None,
            timeouts,
        }
    }
}

/// The URL as a connection description, with the policy's password applied.
fn connection_info(url: &str, password: Option<&str>) -> Result<ConnectionInfo, String> {
    let shown = redact_url(url);
    let scheme = url.split("://").next().unwrap_or_default();
    if !matches!(scheme, "redis" | "rediss") {
        return Err(format!(
            "{shown}: expected redis://host:port[/db] or rediss://host:port[/db] (unix sockets and other schemes are not supported)"
        ));
    }
    let info = url
        .into_connection_info()
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(match password {
        Some(pw) => {
            let settings = info.redis_settings().clone().set_password(pw);
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

/// A connection to send one claim and its release on. Commands sent on one `Pinned` reach Redis
/// in the order they were sent.
#[derive(Clone)]
pub enum Pinned {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(MultiplexedConnection),
}

impl Pinned {
    pub async fn query(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Pinned::Single(c) => cmd.query_async(c).await,
            Pinned::Cluster(c) => cmd.query_async(c).await,
            Pinned::Sentinel(c) => cmd.query_async(c).await,
        }
    }
}

/// One server through a connection manager that reconnects by itself.
pub struct SingleLink {
    client: Client,
    config: ConnectionManagerConfig,
    /// How long the task that drives the first connection waits for it.
    first_connect: Duration,
    conn: OnceCell<ConnectionManager>,
}

/// The response timeout of a one-server or Sentinel link's connection: none. The store bounds each
/// command it sends with one timer of its own (a claim with Pingora's `fast_timeout`); the
/// connection's tokio timer on top was a second timer per claim, and each tokio timer armed
/// earlier than the runtime's next planned wake-up makes the runtime wake itself (an eventfd
/// write, then one more `epoll_wait`). The cluster client keeps its own timeout: its internal
/// requests (slot refreshes) are not ours to bound.
const NO_RESPONSE_TIMEOUT: Option<Duration> = None;

/// A timeout as the `redis` crate reports one (`is_timeout()`), for a bound the store applied.
pub fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
}

/// One `Link` per tokio runtime that uses the store, each built on first use from that runtime.
///
/// A multiplexed connection's I/O runs in a task of the runtime that made it (the `redis` crate
/// spawns it there), and a command sent from another runtime's thread is handed across: the other
/// thread is woken to write it, and wakes ours again with the answer, two cross-thread wake-ups
/// and their syscalls per claim. With one link for the process, the readiness probe (a thread and
/// runtime of its own, which asks first, at start) owned the connection, and every signed request
/// paid that handover: 8 syscalls and a second thread's CPU per request where 3 suffice. Per
/// runtime, a claim's write, wait and read happen on the request's own thread. The cost is one
/// connection (or, for a cluster, one set) per runtime: Pingora's proxy runtime and the probe's.
pub struct Links {
    config: LinkConfig,
    /// Few entries (runtimes are made at start); an entry outlives its runtime (ids are never
    /// reused) only where runtimes come and go, as in tests.
    by_runtime: ArcSwap<Vec<(RuntimeId, Arc<Link>)>>,
    /// Serialises adding an entry, so that a runtime gets one link.
    adding: std::sync::Mutex<()>,
}

impl Links {
    /// Checks the configuration (URLs, TLS material) by building one link; connects nothing.
    pub fn new(config: &LinkConfig) -> Result<Self, String> {
        drop(Link::new(config)?);
        Ok(Self {
            config: config.clone(),
            by_runtime: ArcSwap::from_pointee(Vec::new()),
            adding: std::sync::Mutex::new(()),
        })
    }

    /// The link of the runtime this is called from.
    pub fn current(&self) -> RedisResult<Arc<Link>> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "replay store used outside a tokio runtime",
            )));
        };
        let id = rt.id();
        if let Some(link) = find(&self.by_runtime.load(), id) {
            return Ok(link);
        }
        let _one = self.adding.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.by_runtime.load_full();
        if let Some(link) = find(&now, id) {
            return Ok(link);
        }
        // Checked in `new`: the same configuration builds again.
        let link =
            Arc::new(Link::new(&self.config).map_err(|e| {
                RedisError::from((redis::ErrorKind::Client, "replay store link", e))
            })?);
        let mut next = Vec::with_capacity(now.len() + 1);
        next.extend(now.iter().cloned());
        next.push((id, link.clone()));
        self.by_runtime.store(Arc::new(next));
        Ok(link)
    }

    /// How many runtimes have a link (tests).
    #[cfg(test)]
    pub fn runtimes(&self) -> usize {
        self.by_runtime.load().len()
    }
}

fn find(links: &[(RuntimeId, Arc<Link>)], id: RuntimeId) -> Option<Arc<Link>> {
    links
        .iter()
        .find(|(rt, _)| *rt == id)
        .map(|(_, link)| link.clone())
}

/// The store's way to Redis from one runtime, built without connecting; the first `pin` connects.
pub enum Link {
    Single(Box<SingleLink>),
    Cluster(Arc<ClusterLink>),
    Sentinel(Arc<SentinelLink>),
}

impl Link {
    pub fn new(cfg: &LinkConfig) -> Result<Self, String> {
        let t = cfg.timeouts;
        match &cfg.topology {
            RedisTopology::Standalone { url } => {
                let info = connection_info(url, cfg.password.as_deref())?;
                let client = match &cfg.certificates {
                    Some(certs) => Client::build_with_tls(info, certs.clone()),
                    None => Client::open(info),
                }
                .map_err(|e| format!("{}: {e}", redact_url(url)))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(t.connect))
                    // No timer of the connection's own: `redis.rs` bounds every command it sends
                    // (a claim, its release, a probe), and a second timer per claim would cost a
                    // wake-up of its own (see `NO_RESPONSE_TIMEOUT`).
                    .set_response_timeout(NO_RESPONSE_TIMEOUT)
                    // A reconnect is attempted on the next request after a failure anyway; a long
                    // retry series would only keep requests waiting on one doomed attempt.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                Ok(Link::Single(Box::new(SingleLink {
                    client,
                    config,
                    first_connect: t.connect + t.response,
                    conn: OnceCell::new(),
                })))
            }
            RedisTopology::Cluster { nodes } => {
                let mut infos = Vec::with_capacity(nodes.len());
                for url in nodes {
                    infos.push(connection_info(url, cfg.password.as_deref())?);
                }
                let tls = nodes.iter().any(|u| u.starts_with("rediss://"));
                let mut b = ClusterClientBuilder::new(infos)
                    .connection_timeout(t.connect)
                    .response_timeout(t.response)
                    // The store bounds every request by its response timeout anyway; retries
                    // beyond a few only keep failed requests queued behind a dead node.
                    .retries(2)
                    .min_retry_wait(20)
                    .max_retry_wait(200);
                if let Some(pw) = &cfg.password {
                    b = b.password(pw);
                }
                if tls {
                    b = b.tls(TlsMode::Secure);
                }
                if let Some(certs) = &cfg.certificates {
                    b = b.certs(certs.clone());
                }
                let client = b.build().map_err(|e| format!("redis cluster: {e}"))?;
                Ok(Link::Cluster(Arc::new(ClusterLink {
                    client,
                    current: ArcSwapOption::empty(),
                    connecting: Mutex::new(()),
                    last_rebuild_ms: AtomicU64::new(0),
                    epoch: Instant::now(),
                })))
            }
            RedisTopology::Sentinel { sentinels, master } => Ok(Link::Sentinel(Arc::new(
                SentinelLink::new(cfg, sentinels, master)?,
            ))),
        }
    }

    /// A connection to send a claim on, connecting first when there is none yet.
    pub async fn pin(&self) -> RedisResult<Pinned> {
        match self {
            Link::Single(single) => {
                let SingleLink {
                    client,
                    config,
                    first_connect,
                    conn,
                } = single.as_ref();
                let c = conn
                    .get_or_try_init(|| async {
                        let manager = ConnectionManager::new_lazy_with_config(
                            client.clone(),
                            config.clone(),
                        )?;
                        // The first connection is a shared future that only moves while someone
                        // awaits it; requests give up after the response timeout, which could be
                        // shorter than a TLS handshake to a distant Redis. A task of its own drives
                        // it to the end. (Later reconnects are spawned by the manager itself.)
                        let mut driver = manager.clone();
                        let bound = *first_connect;
                        tokio::spawn(async move {
                            let ping = redis::cmd("PING");
                            let _ =
                                tokio::time::timeout(bound, ping.query_async::<Value>(&mut driver))
                                    .await;
                        });
                        Ok::<_, RedisError>(manager)
                    })
                    .await?;
                Ok(Pinned::Single(c.clone()))
            }
            Link::Cluster(c) => c.pin().await.map(Pinned::Cluster),
            Link::Sentinel(s) => s.pin().await.map(Pinned::Sentinel),
        }
    }

    /// A command failed (or got no answer in time: a timeout error): let the link find Redis
    /// again where that helps.
    pub fn failed(&self, e: &RedisError) {
        match self {
            Link::Sentinel(s) => s.failed(e),
            Link::Cluster(c) => c.failed(e),
            Link::Single(_) => {}
        }
    }

    /// Every primary answers PING (readiness and the `store_up` gauge).
    pub async fn probe(&self) -> RedisResult<()> {
        let mut pinned = self.pin().await?;
        let result = match &mut pinned {
            Pinned::Cluster(c) => {
                use redis::cluster_routing::{
                    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo,
                };
                c.route_command(
                    redis::cmd("PING"),
                    RoutingInfo::MultiNode((
                        MultipleNodeRoutingInfo::AllMasters,
                        Some(ResponsePolicy::AllSucceeded),
                    )),
                )
                .await
                .map(drop)
            }
            other => other.query(&redis::cmd("PING")).await.map(drop),
        };
        if let Err(e) = &result {
            self.failed(e);
        }
        result
    }
}

/// A Redis Cluster connection (one multiplexed connection per node, slot routing, MOVED/ASK and
/// topology refresh: the `redis` crate's), rebuilt from the seed nodes when answers stop: the
/// crate refreshes its slot map on redirects and broken connections, but not on timeouts, so a
/// primary that hangs (rather than dies) would keep its slots routed to it after the cluster
/// failed it over.
pub struct ClusterLink {
    client: ClusterClient,
    current: ArcSwapOption<ClusterConnection>,
    /// Single flight of (re)connecting.
    connecting: Mutex<()>,
    last_rebuild_ms: AtomicU64,
    epoch: Instant,
}

/// At most one rebuild per this long.
const CLUSTER_REBUILD_EVERY: Duration = Duration::from_secs(2);

impl ClusterLink {
    async fn pin(&self) -> RedisResult<ClusterConnection> {
        if let Some(c) = self.current.load_full() {
            return Ok((*c).clone());
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current.load_full() {
            return Ok((*c).clone());
        }
        let conn = self.client.get_async_connection().await?;
        self.current.store(Some(Arc::new(conn.clone())));
        Ok(conn)
    }

    /// After a timeout: build a new connection from the seeds (a fresh slot map) in the
    /// background, at most every `CLUSTER_REBUILD_EVERY`; requests keep the old one meanwhile, and
    /// claims already sent keep theirs for their release.
    fn failed(self: &Arc<Self>, e: &RedisError) {
        if !e.is_timeout() {
            return;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_rebuild_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < CLUSTER_REBUILD_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .last_rebuild_ms
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        rt.spawn(async move {
            let Ok(_one) = this.connecting.try_lock() else {
                return;
            };
            match this.client.get_async_connection().await {
                Ok(conn) => {
                    tracing::warn!("replay store: Redis Cluster connection rebuilt after timeouts");
                    this.current.store(Some(Arc::new(conn)));
                }
                Err(e) => tracing::warn!(error = %e, "replay store: Redis Cluster rebuild failed"),
            }
        });
    }
}

/// The primary that the sentinels name, and one multiplexed connection to it.
pub struct SentinelLink {
    /// Asks the sentinels (and checks `ROLE` on the answer); also the single-flight lock of
    /// re-resolution.
    sentinel: Mutex<SentinelClient>,
    current: ArcSwapOption<Current>,
    conn_config: AsyncConnectionConfig,
    /// When the last re-resolution started (ms since `epoch`), to ask at most every
    /// `REFRESH_EVERY`.
    last_refresh_ms: AtomicU64,
    epoch: Instant,
    master: String,
}

struct Current {
    conn: MultiplexedConnection,
    addr: String,
}

const REFRESH_EVERY: Duration = Duration::from_millis(250);

impl SentinelLink {
    fn new(cfg: &LinkConfig, sentinels: &[String], master: &str) -> Result<Self, String> {
        let mut addrs: Vec<ConnectionAddr> = Vec::with_capacity(sentinels.len());
        let mut db = 0;
        for url in sentinels {
            let info = connection_info(url, None)?;
            db = info.redis_settings().db();
            addrs.push(info.addr().clone());
        }
        let tls = sentinels.iter().any(|u| u.starts_with("rediss://"));
        let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
            .map_err(|e| format!("redis sentinel: {e}"))?
            .set_client_to_redis_db(db);
        if let Some(pw) = &cfg.password {
            b = b.set_client_to_redis_password(pw);
        }
        if tls {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(certs) = &cfg.certificates {
                b = b
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs.clone());
            }
        }
        let client = b.build().map_err(|e| format!("redis sentinel: {e}"))?;
        Ok(Self {
            sentinel: Mutex::new(client),
            current: ArcSwapOption::empty(),
            conn_config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(cfg.timeouts.connect))
                .set_response_timeout(NO_RESPONSE_TIMEOUT),
            last_refresh_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            master: master.to_owned(),
        })
    }

    async fn pin(self: &Arc<Self>) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.current.load_full() {
            return Ok(c.conn.clone());
        }
        self.resolve(None).await
    }

    /// Asks the sentinels for the primary and connects to it, unless another task did while we
    /// waited for the lock. `replacing`: the address of a connection known to be bad.
    async fn resolve(&self, replacing: Option<&str>) -> RedisResult<MultiplexedConnection> {
        let mut sentinel = self.sentinel.lock().await;
        if let Some(c) = self.current.load_full()
            && replacing != Some(c.addr.as_str())
        {
            return Ok(c.conn.clone());
        }
        let client = sentinel.async_get_client().await?;
        let addr = client.get_connection_info().addr().to_string();
        drop(sentinel);
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.conn_config)
            .await?;
        if self.current.load().as_ref().is_none_or(|c| c.addr != addr) {
            tracing::warn!(master = %self.master, addr = %addr, "replay store: Redis Sentinel primary");
        }
        self.current.store(Some(Arc::new(Current {
            conn: conn.clone(),
            addr,
        })));
        Ok(conn)
    }

    /// After a failed command: a broken connection or a READONLY refusal (the primary was demoted)
    /// drops the connection at once; anything else (timeouts) asks the sentinels in the background
    /// whether the primary moved, at most every `REFRESH_EVERY`, and keeps the connection if not —
    /// a hung server keeps the order of what was sent to it.
    fn failed(self: &Arc<Self>, e: &RedisError) {
        let broken = e.is_connection_dropped()
            || e.is_unrecoverable_error()
            || e.code() == Some("READONLY")
            || e.code() == Some("MASTERDOWN");
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_refresh_ms.load(Ordering::Relaxed);
        if !broken && now.saturating_sub(last) < REFRESH_EVERY.as_millis() as u64 {
            return;
        }
        if self
            .last_refresh_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
            && !broken
        {
            return;
        }
        let Some(current) = self.current.load_full() else {
            return;
        };
        if broken {
            // Only if it is still the one that failed.
            let _ = self
                .current
                .compare_and_swap(&Some(current.clone()), None::<Arc<Current>>);
            return;
        }
        let this = self.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let moved = {
                let mut sentinel = this.sentinel.lock().await;
                match sentinel.async_get_client().await {
                    Ok(client) => client.get_connection_info().addr().to_string() != current.addr,
                    Err(_) => false,
                }
            };
            if moved {
                let _ = this.resolve(Some(&current.addr)).await;
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target(password: Option<SecretSource>) -> RedisTarget {
        RedisTarget {
            topology: RedisTopology::Standalone {
                url: "redis://:inline@127.0.0.1:6379/0".into(),
            },
            password,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }

    const T: Timeouts = Timeouts {
        connect: Duration::from_millis(500),
        response: Duration::from_millis(250),
    };

    #[test]
    fn the_password_comes_from_a_file_or_the_environment_and_wins_over_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("password");
        std::fs::write(&f, "from-file\r\n").unwrap();
        let cfg = LinkConfig::from_target(
            &target(Some(SecretSource::File(f.display().to_string()))),
            T,
        )
        .unwrap();
        assert_eq!(cfg.password.as_deref(), Some("from-file"));
        let RedisTopology::Standalone { url } = &cfg.topology else {
            panic!()
        };
        let info = connection_info(url, cfg.password.as_deref()).unwrap();
        assert_eq!(info.redis_settings().password(), Some("from-file"));

        // A variable name nothing sets.
        let var = "REPLAY_LINK_TEST_UNSET_PASSWORD_7F3C";
        assert_eq!(
            LinkConfig::from_target(&target(Some(SecretSource::Env(var.into()))), T)
                .err()
                .unwrap(),
            format!("replay.redis_password_env: ${var} is not set")
        );

        std::fs::write(&f, "\n").unwrap();
        let e = LinkConfig::from_target(
            &target(Some(SecretSource::File(f.display().to_string()))),
            T,
        )
        .err()
        .unwrap();
        assert!(e.ends_with("the file is empty"), "{e}");
        let e = LinkConfig::from_target(
            &target(Some(SecretSource::File("/nonexistent/pw".into()))),
            T,
        )
        .err()
        .unwrap();
        assert!(
            e.starts_with("replay.redis_password_file /nonexistent/pw: "),
            "{e}"
        );
    }

    #[test]
    fn each_runtime_gets_its_own_link_and_keeps_it() {
        let links = Links::new(&LinkConfig::standalone("redis://127.0.0.1:1", T)).unwrap();
        assert!(links.current().is_err(), "outside a runtime");
        let rt = |_| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
        };
        let (a, b) = (rt(0), rt(1));
        let a1 = a.block_on(async { links.current().unwrap() });
        let a2 = a.block_on(async { links.current().unwrap() });
        let b1 = b.block_on(async { links.current().unwrap() });
        assert!(Arc::ptr_eq(&a1, &a2));
        assert!(!Arc::ptr_eq(&a1, &b1));
        assert_eq!(links.runtimes(), 2);
        // A bad configuration is refused when the store is built, not on a request.
        let bad = LinkConfig::standalone("unix:///tmp/redis.sock", T);
        assert!(Links::new(&bad).is_err());
    }

    #[test]
    fn tls_files_are_read_and_named_in_errors() {
        let mut t = target(None);
        t.ca_file = Some("/nonexistent/ca.crt".into());
        let e = LinkConfig::from_target(&t, T).err().unwrap();
        assert!(
            e.starts_with("replay.redis_ca_file /nonexistent/ca.crt: "),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "PEM").unwrap();
        t.ca_file = Some(ca.display().to_string());
        let cfg = LinkConfig::from_target(&t, T).unwrap();
        let certs = cfg.certificates.unwrap();
        assert_eq!(certs.root_cert.as_deref(), Some(&b"PEM"[..]));
        assert!(certs.client_tls.is_none());
    }
}
