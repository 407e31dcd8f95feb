//! `replay:` — which nonce store, its bound, and what to do when it fails. Configuration only;
//! the stores are `crate::replay`.

use super::error::Diag;
use super::reader::{MapReader, choice, integer, opt_string};
use super::schema;
use super::yaml::Node;
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayBackend {
    Memory,
    Redis { url: String },
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
    let url = m.get("redis_url").and_then(|(n, p)| {
        opt_string(d, n, &p).filter(|u| {
            let ok = u.starts_with("redis://") || u.starts_with("rediss://");
            if !ok {
                d.err(
                    n.pos,
                    &p,
                    format!("{u:?} is not a redis:// or rediss:// URL"),
                );
            }
            ok
        })
    });
    if let (Some(Store::Memory), Some(_)) = (store, &url) {
        // Not silently ignored: a redis_url under the memory store is a half-made change.
        let (n, p) = m
            .get("redis_url")
            .map_or((m.pos, path.to_owned()), |(n, p)| (n.pos, p));
        d.err(
            n,
            &p,
            "redis_url is only used with store: redis (the store here is memory)",
        );
    }
    if store == Some(Store::Redis) {
        match url {
            Some(url) => r.backend = ReplayBackend::Redis { url },
            None if m.get_some("redis_url").is_none() => {
                let pos = m.get("store").map_or(m.pos, |(n, _)| n.pos);
                d.err(
                    pos,
                    &format!("{path}.redis_url"),
                    "store: redis needs redis_url (redis://host:port/db)",
                );
            }
            None => {}
        }
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
