//! `replay:` — which nonce store, its bound, how to reach Redis (one server, a cluster or a
//! Sentinel-managed primary; password and TLS material from files or the environment, never inline)
//! and what to do when the store fails. Configuration only, no I/O: the files named here are read
//! when the store is built (`crate::replay::build`).

use super::error::Diag;
use super::reader::{MapReader, choice, index, integer, list, opt_string, string};
use super::schema;
use super::yaml::Node;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayBackend {
    Memory,
    Redis(RedisTarget),
}

impl ReplayBackend {
    /// `memory` or `redis`, as in the policy.
    pub fn store_name(&self) -> &'static str {
        match self {
            ReplayBackend::Memory => "memory",
            ReplayBackend::Redis(_) => "redis",
        }
    }

    /// Whether every replica sees the same nonces (`shared`) or each process its own (`process`).
    pub fn scope(&self) -> ReplayScope {
        match self {
            ReplayBackend::Memory => ReplayScope::Process,
            ReplayBackend::Redis(_) => ReplayScope::Shared,
        }
    }
}

/// What a nonce store guarantees across replicas (issue 20): `process` catches a replay only when
/// it reaches the same process as the original; `shared` catches it at any replica that uses the
/// same store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayScope {
    Process,
    Shared,
}

impl ReplayScope {
    pub const ALL: [ReplayScope; 2] = [ReplayScope::Process, ReplayScope::Shared];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplayScope::Process => "process",
            ReplayScope::Shared => "shared",
        }
    }
}

/// Where the Redis replay store lives and how to authenticate to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTarget {
    pub topology: RedisTopology,
    /// The password for the data nodes, read at start; wins over one written in a URL.
    pub password: Option<SecretSource>,
    /// PEM CA bundle trusted for `rediss://` (default: the system roots).
    pub ca_file: Option<String>,
    /// PEM client certificate and key for Redis servers that require mutual TLS.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// `redis_url`: one server (or a proxy / Kubernetes Service in front of the primary).
    Standalone { url: String },
    /// `redis_cluster_nodes`: seed nodes of a Redis Cluster; the rest is discovered.
    Cluster { nodes: Vec<String> },
    /// `redis_sentinels` + `redis_sentinel_master`: the primary named `master`, as the sentinels
    /// report it, followed across failovers.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl RedisTopology {
    pub fn kind(&self) -> &'static str {
        match self {
            RedisTopology::Standalone { .. } => "standalone",
            RedisTopology::Cluster { .. } => "cluster",
            RedisTopology::Sentinel { .. } => "sentinel",
        }
    }
}

/// A secret named by the policy, read when the store is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file (a mounted Kubernetes Secret); one trailing newline is ignored.
    File(String),
    /// An environment variable (`env: valueFrom: secretKeyRef`).
    Env(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStoreError {
    Reject,
    Allow,
}

impl OnStoreError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnStoreError::Reject => "reject",
            OnStoreError::Allow => "allow",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayPolicy {
    pub backend: ReplayBackend,
    /// Memory store bound; full = reject.
    pub max_entries: usize,
    pub on_store_error: OnStoreError,
}

fn redis_url(d: &mut Diag, n: &Node, p: &str) -> Option<String> {
    opt_string(d, n, p).filter(|u| {
        let ok = u.starts_with("redis://") || u.starts_with("rediss://");
        if !ok {
            d.err(
                n.pos,
                p,
                format!("{:?} is not a redis:// or rediss:// URL", redact_url(u)),
            );
        }
        ok
    })
}

fn url_list(d: &mut Diag, n: &Node, p: &str) -> Option<Vec<String>> {
    let items = list(d, n, p)?;
    if items.is_empty() {
        d.err(n.pos, p, "needs at least one redis:// or rediss:// URL");
        return None;
    }
    let mut urls = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        urls.push(redis_url(d, item, &index(p, i))?);
    }
    Some(urls)
}

pub(crate) fn parse_replay(
    d: &mut Diag,
    n: &Node,
    path: &str,
    mut r: ReplayPolicy,
) -> ReplayPolicy {
    let Some(m) = MapReader::new(d, n, path, &schema::children("replay")) else {
        return r;
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Store {
        Memory,
        Redis,
    }
    let store = match m.get("store") {
        Some((n, p)) => choice(
            d,
            n,
            &p,
            &[("memory", Store::Memory), ("redis", Store::Redis)],
        ),
        None => Some(Store::Memory),
    };
    // The three ways to name Redis; exactly one with `store: redis`, none with memory.
    let forms = ["redis_url", "redis_cluster_nodes", "redis_sentinels"];
    let given: Vec<&str> = forms
        .iter()
        .copied()
        .filter(|k| m.get_some(k).is_some())
        .collect();
    let topology = match given.as_slice() {
        [] => None,
        ["redis_url"] => m
            .get("redis_url")
            .and_then(|(n, p)| redis_url(d, n, &p).map(|url| RedisTopology::Standalone { url })),
        ["redis_cluster_nodes"] => m
            .get("redis_cluster_nodes")
            .and_then(|(n, p)| url_list(d, n, &p).map(|nodes| RedisTopology::Cluster { nodes })),
        ["redis_sentinels"] => {
            let sentinels = m
                .get("redis_sentinels")
                .and_then(|(n, p)| url_list(d, n, &p));
            let master = match m.get_some("redis_sentinel_master") {
                Some((n, p)) => string(d, n, &p)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                None => {
                    let pos = m.get("redis_sentinels").map_or(m.pos, |(n, _)| n.pos);
                    d.err(
                        pos,
                        &format!("{path}.redis_sentinel_master"),
                        "redis_sentinels needs redis_sentinel_master (the name the sentinels monitor, e.g. mymaster)",
                    );
                    None
                }
            };
            sentinels
                .zip(master)
                .map(|(sentinels, master)| RedisTopology::Sentinel { sentinels, master })
        }
        _ => {
            let (n, p) = m.get(given[1]).unwrap_or((n, path.to_owned()));
            d.err(
                n.pos,
                &p,
                format!(
                    "{} are different ways to name the Redis store; give one",
                    given.join(" and ")
                ),
            );
            None
        }
    };
    if !given.contains(&"redis_sentinels")
        && let Some((n, p)) = m.get_some("redis_sentinel_master")
    {
        d.err(
            n.pos,
            &p,
            "redis_sentinel_master is used only with redis_sentinels",
        );
    }
    let file = |d: &mut Diag, key: &str| -> Option<String> {
        let (n, p) = m.get_some(key)?;
        string(d, n, &p)
            .filter(|s| {
                if s.is_empty() {
                    d.err(n.pos, &p, "empty path");
                }
                !s.is_empty()
            })
            .map(str::to_owned)
    };
    let password = match (
        file(d, "redis_password_file"),
        m.get_some("redis_password_env"),
    ) {
        (Some(_), Some((n, p))) => {
            d.err(
                n.pos,
                &p,
                "give redis_password_file or redis_password_env, not both",
            );
            None
        }
        (Some(f), None) => Some(SecretSource::File(f)),
        (None, Some((n, p))) => string(d, n, &p).and_then(|v| {
            let ok = !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !v.as_bytes()[0].is_ascii_digit();
            if !ok {
                d.err(
                    n.pos,
                    &p,
                    format!("{v:?} is not an environment variable name"),
                );
            }
            ok.then(|| SecretSource::Env(v.to_owned()))
        }),
        (None, None) => None,
    };
    let ca_file = file(d, "redis_ca_file");
    let client_cert_file = file(d, "redis_client_cert_file");
    let client_key_file = file(d, "redis_client_key_file");
    if client_cert_file.is_some() != client_key_file.is_some() {
        let key = if client_cert_file.is_some() {
            "redis_client_cert_file"
        } else {
            "redis_client_key_file"
        };
        let (n, p) = m.get(key).unwrap_or((n, path.to_owned()));
        d.err(
            n.pos,
            &p,
            "redis_client_cert_file and redis_client_key_file go together",
        );
    }
    match store {
        Some(Store::Redis) => match topology {
            Some(topology) => {
                r.backend = ReplayBackend::Redis(RedisTarget {
                    topology,
                    password,
                    ca_file,
                    client_cert_file,
                    client_key_file,
                });
            }
            None if given.is_empty() => {
                let pos = m.get("store").map_or(m.pos, |(n, _)| n.pos);
                d.err(
                    pos,
                    &format!("{path}.redis_url"),
                    "store: redis needs redis_url (redis://host:port/db), redis_cluster_nodes or redis_sentinels",
                );
            }
            None => {}
        },
        Some(Store::Memory) => {
            // Redis settings with the memory store are almost certainly a forgotten `store: redis`:
            // a silent per-process store is what issue 20 is about.
            if let Some(k) = schema::children("replay")
                .into_iter()
                .filter(|k| k.starts_with("redis_"))
                .find(|k| m.get_some(k).is_some())
                && let Some((n, p)) = m.get(k)
            {
                d.err(
                    n.pos,
                    &p,
                    format!("{k} is only used with store: redis (the store here is memory)"),
                );
            }
        }
        None => {}
    }
    if let Some((n, p)) = m.get("max_entries") {
        r.max_entries = integer(d, n, &p, 1, 1 << 32).map_or(r.max_entries, |v| v as usize);
    }
    if let Some((n, p)) = m.get("on_store_error") {
        r.on_store_error = choice(
            d,
            n,
            &p,
            &[
                ("reject", OnStoreError::Reject),
                ("allow", OnStoreError::Allow),
            ],
        )
        .unwrap_or(r.on_store_error);
    }
    r
}

/// `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`, for errors, logs and
/// `/status`: a password written in a URL is never shown.
pub fn redact_url(url: &str) -> String {
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

impl std::fmt::Display for RedisTarget {
    /// For `check-config` and logs: the topology with every URL redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls = |v: &[String]| {
            v.iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &self.topology {
            RedisTopology::Standalone { url } => write!(f, "{}", redact_url(url))?,
            RedisTopology::Cluster { nodes } => write!(f, "cluster [{}]", urls(nodes))?,
            RedisTopology::Sentinel { sentinels, master } => {
                write!(f, "sentinel master {master:?} via [{}]", urls(sentinels))?
            }
        }
        match &self.password {
            Some(SecretSource::File(p)) => write!(f, ", password from file {p}")?,
            Some(SecretSource::Env(v)) => write!(f, ", password from ${v}")?,
            None => {}
        }
        if let Some(ca) = &self.ca_file {
            write!(f, ", CA {ca}")?;
        }
        if let Some(c) = &self.client_cert_file {
            write!(f, ", client certificate {c}")?;
        }
        Ok(())
    }
}
