//! Every key of the policy file, and whether a change to it applies on reload (`Live`) or only
//! after a restart (`Restart`). This table is the parser's list of known keys (a mapping's
//! unknown-key check reads it), so a key cannot be accepted without a class. It does not parse
//! values (the section parsers) nor compare running and reloaded policies beyond naming the
//! restart-only keys whose values differ (`restart_pending`).
//!
//! Why the restart-only keys cannot change live:
//! - `listen`, `admin_listen`: the listening sockets are bound once; rebinding under traffic
//!   would drop connections or, on failure, leave the process without a listener.
//! - `threads`: the size of the worker thread pools, fixed when the server is built.
//! - `listener.*`: the socket buffers are set when the listener is built.
//! - whether `tls` is there at all (`restart_pending` reports `tls`): a listener speaks TLS or
//!   not from its start. Its files (paths and contents, read with the policy) and `http2.*` are
//!   live: they are read from the snapshot at each new connection.
//! - `replay.store`, `replay.max_entries` and every `replay.redis_*` key (where Redis is, and the
//!   password and TLS files, read once): the nonce store is one object shared by every request;
//!   swapping it would forget every remembered nonce and so reopen a replay window of
//!   `max_age + skew` (and a memory store's table is sized once). A rotated Redis password
//!   therefore needs a restart too.
//! - `readiness.*`: start-up checks; once the process was ready they have nothing left to decide.
//! - `key_directory.url`, `key_directory.refresh_seconds`: the directory client and its refresh
//!   task are started once, with its first fetch before the proxy serves; adding, removing or
//!   repointing it live would need a second fetch protocol with its own failure modes. Its keys
//!   themselves are live (refetched every `refresh_seconds`, and at once on an unknown keyid).
//!
//! Every other key is read from the policy snapshot of each request (or each check) and so
//! applies on the next request after a reload.

use super::file::PolicyFile;
use super::replay::{RedisTopology, ReplayBackend, SecretSource};

/// How a change to a key takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Applied by a reload: the next request sees it.
    Live,
    /// Read at start only; a reload that changes it reports it in `restart_required`.
    Restart,
    /// A mapping (or, with `[]`, a list of mappings) whose own keys are classified.
    Section,
}

impl Apply {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Restart => "restart",
            Self::Section => "section",
        }
    }
}

/// One key: its dotted path (`routes[].mode` for the keys of each list item) and class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub path: &'static str,
    pub apply: Apply,
}

const fn live(path: &'static str) -> Key {
    Key {
        path,
        apply: Apply::Live,
    }
}

const fn restart(path: &'static str) -> Key {
    Key {
        path,
        apply: Apply::Restart,
    }
}

const fn section(path: &'static str) -> Key {
    Key {
        path,
        apply: Apply::Section,
    }
}

/// Every key, in the order of `config/policy.yaml`.
pub const KEYS: &[Key] = &[
    live("mode"),
    live("dry_run"),
    restart("listen"),
    live("upstream"),
    section("upstream_tls"),
    live("upstream_tls.ca_file"),
    live("upstream_tls.server_name"),
    restart("admin_listen"),
    restart("threads"),
    live("shutdown_grace_seconds"),
    live("drain_delay_seconds"),
    live("upstream_timeout_seconds"),
    section("signature"),
    live("signature.max_age_seconds"),
    live("signature.clock_skew_seconds"),
    live("signature.nonce"),
    live("signature.required_components"),
    live("signature.body_digest"),
    live("signature.max_body_bytes"),
    live("signature.label"),
    live("signature.tag"),
    live("signature.public_authority"),
    live("signature.public_scheme"),
    section("keys"),
    live("keys[].key_id"),
    live("keys[].client_id"),
    live("keys[].public_key"),
    live("keys[].status"),
    live("key_files"),
    section("key_directory"),
    restart("key_directory.url"),
    restart("key_directory.refresh_seconds"),
    section("routes"),
    live("routes[].path_prefix"),
    live("routes[].methods"),
    live("routes[].mode"),
    live("routes[].dry_run"),
    section("route_matching"),
    live("route_matching.case_insensitive"),
    section("canary"),
    live("canary.percent"),
    live("canary.sticky_on"),
    live("canary.always_require"),
    live("canary.never_require"),
    section("canary.auto_halt"),
    live("canary.auto_halt.max_reject_percent"),
    live("canary.auto_halt.window_seconds"),
    live("canary.auto_halt.min_requests"),
    section("canary.legacy_user"),
    live("canary.legacy_user.header"),
    live("canary.legacy_user.hash"),
    section("identity"),
    live("identity.client_id_header"),
    live("identity.key_id_header"),
    live("identity.auth_method_header"),
    live("identity.strip_inbound"),
    live("identity.forward_signature_headers"),
    live("identity.strip_override_headers"),
    live("trusted_proxies"),
    section("replay"),
    restart("replay.store"),
    restart("replay.max_entries"),
    restart("replay.redis_url"),
    restart("replay.redis_cluster_nodes"),
    restart("replay.redis_sentinels"),
    restart("replay.redis_sentinel_master"),
    restart("replay.redis_password_file"),
    restart("replay.redis_password_env"),
    restart("replay.redis_ca_file"),
    restart("replay.redis_client_cert_file"),
    restart("replay.redis_client_key_file"),
    live("replay.on_store_error"),
    section("failure_rate_limit"),
    live("failure_rate_limit.per_minute"),
    section("limits"),
    live("limits.header_timeout_seconds"),
    live("limits.body_timeout_seconds"),
    live("limits.keepalive_timeout_seconds"),
    live("limits.send_timeout_seconds"),
    live("limits.max_connections"),
    section("tls"),
    live("tls.cert_file"),
    live("tls.key_file"),
    live("tls.client_ca_file"),
    section("http2"),
    live("http2.enabled"),
    live("http2.max_concurrent_streams"),
    live("http2.max_header_list_bytes"),
    live("http2.max_pending_resets"),
    section("listener"),
    restart("listener.read_buffer_bytes"),
    restart("listener.write_buffer_bytes"),
    section("readiness"),
    restart("readiness.wait_for_key_directory"),
    restart("readiness.wait_for_replay_store"),
    restart("readiness.timeout_seconds"),
    restart("readiness.on_timeout"),
];

/// Sections whose presence (not a key's value) needs a restart to change: reported by
/// `restart_pending` under the section's name.
pub const RESTART_SECTIONS: &[&str] = &["tls"];

/// The section a key belongs to: `""` (the root), `signature`, `routes[]`, `canary.auto_halt`.
pub fn parent(path: &str) -> &str {
    path.rfind('.').map_or("", |i| &path[..i])
}

fn name(path: &str) -> &str {
    path.rfind('.').map_or(path, |i| &path[i + 1..])
}

/// The keys a mapping at `section` may hold (`""` for the root, `routes[]` for a route).
pub fn children(section: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| parent(k.path) == section)
        .map(|k| name(k.path))
        .collect()
}

/// The class of `path` (`None` for a path that is not a key).
pub fn class(path: &str) -> Option<Apply> {
    KEYS.iter().find(|k| k.path == path).map(|k| k.apply)
}

/// The keys that are not sections: what an operator sets.
pub fn leaves() -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(|k| k.apply != Apply::Section)
}

/// The restart-only keys whose values differ between the running process's start policy and a
/// reloaded one, in table order.
pub fn restart_pending(running: &PolicyFile, reloaded: &PolicyFile) -> Vec<&'static str> {
    let mut pending: Vec<&'static str> = leaves()
        .filter(|k| k.apply == Apply::Restart)
        .filter(|k| restart_value(running, k.path) != restart_value(reloaded, k.path))
        .map(|k| k.path)
        .collect();
    // TLS on or off: the listener is one or the other from its start.
    if running.tls.is_some() != reloaded.tls.is_some() {
        pending.push(RESTART_SECTIONS[0]);
    }
    pending
}

/// The value of a restart-only key, as text to compare and show. `None` for any other path (a
/// test proves every restart-only key has one).
pub fn restart_value(f: &PolicyFile, path: &str) -> Option<String> {
    let redis = match &f.replay.backend {
        ReplayBackend::Memory => None,
        ReplayBackend::Redis(t) => Some(t),
    };
    let topology = redis.map(|t| &t.topology);
    let opt = |v: Option<&String>| v.cloned().unwrap_or_default();
    Some(match path {
        "listen" => f.listen.to_string(),
        "admin_listen" => f.admin_listen.to_string(),
        "threads" => f.threads.to_string(),
        "listener.read_buffer_bytes" => f.listener.read_buffer_bytes.to_string(),
        "listener.write_buffer_bytes" => f.listener.write_buffer_bytes.to_string(),
        "replay.store" => f.replay.backend.store_name().to_owned(),
        "replay.redis_url" => match topology {
            Some(RedisTopology::Standalone { url }) => url.clone(),
            _ => String::new(),
        },
        "replay.redis_cluster_nodes" => match topology {
            Some(RedisTopology::Cluster { nodes }) => nodes.join(","),
            _ => String::new(),
        },
        "replay.redis_sentinels" => match topology {
            Some(RedisTopology::Sentinel { sentinels, .. }) => sentinels.join(","),
            _ => String::new(),
        },
        "replay.redis_sentinel_master" => match topology {
            Some(RedisTopology::Sentinel { master, .. }) => master.clone(),
            _ => String::new(),
        },
        "replay.redis_password_file" => match redis.and_then(|t| t.password.as_ref()) {
            Some(SecretSource::File(p)) => p.clone(),
            _ => String::new(),
        },
        "replay.redis_password_env" => match redis.and_then(|t| t.password.as_ref()) {
            Some(SecretSource::Env(v)) => v.clone(),
            _ => String::new(),
        },
        "replay.redis_ca_file" => opt(redis.and_then(|t| t.ca_file.as_ref())),
        "replay.redis_client_cert_file" => opt(redis.and_then(|t| t.client_cert_file.as_ref())),
        "replay.redis_client_key_file" => opt(redis.and_then(|t| t.client_key_file.as_ref())),
        "readiness.wait_for_key_directory" => f.readiness.wait_for_key_directory.to_string(),
        "readiness.wait_for_replay_store" => f.readiness.wait_for_replay_store.to_string(),
        "readiness.timeout_seconds" => f.readiness.timeout_seconds.to_string(),
        "readiness.on_timeout" => f.readiness.on_timeout.as_str().to_owned(),
        "replay.max_entries" => f.replay.max_entries.to_string(),
        "key_directory.url" => f
            .key_directory
            .as_ref()
            .map_or(String::new(), |k| k.url.clone()),
        "key_directory.refresh_seconds" => f
            .key_directory
            .as_ref()
            .map_or(String::new(), |k| k.refresh_seconds.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_entry_and_a_section_above_it() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                KEYS[..i].iter().all(|o| o.path != k.path),
                "{} listed twice",
                k.path
            );
            let p = parent(k.path);
            if !p.is_empty() {
                let section = p.strip_suffix("[]").unwrap_or(p);
                assert_eq!(class(section), Some(Apply::Section), "{}", k.path);
            }
        }
        for s in KEYS.iter().filter(|k| k.apply == Apply::Section) {
            let inner = if matches!(s.path, "keys" | "routes") {
                format!("{}[]", s.path)
            } else {
                s.path.to_owned()
            };
            assert!(!children(&inner).is_empty(), "section {} is empty", s.path);
        }
    }

    #[test]
    fn every_restart_key_can_be_compared_and_nothing_else_claims_to() {
        for k in leaves() {
            let v = restart_value(&PolicyFile::default(), k.path);
            assert_eq!(v.is_some(), k.apply == Apply::Restart, "{}", k.path);
        }
    }

    #[test]
    fn restart_pending_names_what_differs() {
        let a = PolicyFile::default();
        let mut b = a.clone();
        assert!(restart_pending(&a, &b).is_empty());
        b.threads = 3;
        b.mode = crate::policy::Mode::Required;
        b.shutdown_grace_seconds = 1;
        b.replay.backend = ReplayBackend::Redis(super::super::replay::RedisTarget {
            topology: RedisTopology::Standalone {
                url: "redis://127.0.0.1:1/0".into(),
            },
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        });
        assert_eq!(
            restart_pending(&a, &b),
            ["threads", "replay.store", "replay.redis_url"]
        );
    }
}
