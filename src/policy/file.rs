//! The policy file as written, validated and typed (`PolicyFile`), with every default of reference
//! §3.2 so an almost empty file is valid. No overrides, no key material, no I/O: see `Policy` for
//! those.

use super::canary::{self, CanaryPolicy, parse_cidr};
use super::error::Diag;
use super::identity::{IdentityPolicy, parse_identity};
use super::key_entries::{self, KeyEntry};
use super::limits::{self, Limits};
use super::listener::{self, Buffers, Http2, TlsListener};
use super::network::{Upstream, UpstreamTls, parse_upstream_tls, socket_addr};
use super::reader::{MapReader, boolean, index, integer, list, string};
use super::readiness::{self, ReadinessPolicy};
use super::replay::{OnStoreError, ReplayBackend, ReplayPolicy, parse_replay};
use super::routes::{self, Route, RouteMatching};
use super::schema;
use super::signature::{self, SignaturePolicy};
use super::types::Mode;
use super::yaml::Node;
use ipnet::IpNet;
use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyFile {
    pub mode: Mode,
    pub dry_run: bool,
    pub listen: SocketAddr,
    pub upstream: Upstream,
    /// How an `https://` upstream is verified (CA file, name to check).
    pub upstream_tls: UpstreamTls,
    pub admin_listen: SocketAddr,
    /// 0 = one per core.
    pub threads: usize,
    pub shutdown_grace_seconds: u64,
    /// Upstream response timeout (and write timeout): past it, 504 UPSTREAM_TIMEOUT.
    pub upstream_timeout_seconds: u64,
    pub signature: SignaturePolicy,
    /// Inline keys only; `Policy::keys` has every source.
    pub keys: Vec<KeyEntry>,
    pub key_files: Vec<String>,
    pub key_directory: Option<KeyDirectory>,
    pub routes: Vec<Route>,
    pub route_matching: RouteMatching,
    pub canary: CanaryPolicy,
    pub identity: IdentityPolicy,
    pub trusted_proxies: Vec<IpNet>,
    pub replay: ReplayPolicy,
    pub failure_rate_limit: FailureRateLimit,
    pub limits: Limits,
    /// SIGTERM: keep accepting and serving this long (with `/readyz` 503) before closing the
    /// listeners, so load balancers stop sending first.
    pub drain_delay_seconds: u64,
    /// TLS on the proxy listener; `None`: plain HTTP.
    pub tls: Option<TlsListener>,
    pub http2: Http2,
    pub listener: Buffers,
    pub readiness: ReadinessPolicy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDirectory {
    /// An `http://` or `https://` URL of a JWKS document.
    pub url: String,
    pub refresh_seconds: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailureRateLimit {
    /// 0 = off.
    pub per_minute: u32,
}

impl Default for PolicyFile {
    fn default() -> Self {
        PolicyFile {
            mode: Mode::Hybrid,
            dry_run: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            upstream: Upstream {
                tls: false,
                host: "127.0.0.1".into(),
                port: 8081,
                sni: String::new(),
            },
            upstream_tls: UpstreamTls::default(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            threads: 0,
            shutdown_grace_seconds: 10,
            upstream_timeout_seconds: 60,
            signature: SignaturePolicy::default(),
            keys: Vec::new(),
            key_files: Vec::new(),
            key_directory: None,
            routes: Vec::new(),
            route_matching: RouteMatching::default(),
            canary: CanaryPolicy::default(),
            identity: IdentityPolicy::default(),
            trusted_proxies: Vec::new(),
            replay: ReplayPolicy {
                backend: ReplayBackend::Memory,
                max_entries: 1_000_000,
                on_store_error: OnStoreError::Reject,
            },
            failure_rate_limit: FailureRateLimit::default(),
            limits: Limits::default(),
            drain_delay_seconds: 5,
            tls: None,
            http2: Http2::default(),
            listener: Buffers::default(),
            readiness: ReadinessPolicy::default(),
        }
    }
}

pub(crate) fn parse(d: &mut Diag, root: &Node) -> PolicyFile {
    let mut f = PolicyFile::default();
    let Some(m) = MapReader::new(d, root, "", &schema::children("")) else {
        return f;
    };
    if let Some((n, p)) = m.get("mode") {
        f.mode = super::parse_mode(d, n, &p).unwrap_or(f.mode);
    }
    if let Some((n, p)) = m.get("dry_run") {
        f.dry_run = boolean(d, n, &p).unwrap_or(f.dry_run);
    }
    let addr = |d: &mut Diag, key: &str, default: SocketAddr| match m.get(key) {
        Some((n, p)) => string(d, n, &p)
            .and_then(|s| socket_addr(s).map_err(|e| d.err(n.pos, &p, e)).ok())
            .unwrap_or(default),
        None => default,
    };
    f.listen = addr(d, "listen", f.listen);
    f.admin_listen = addr(d, "admin_listen", f.admin_listen);
    if f.listen == f.admin_listen && f.listen.port() != 0 {
        let pos = m
            .get("admin_listen")
            .or(m.get("listen"))
            .map_or(m.pos, |(n, _)| n.pos);
        d.err(
            pos,
            "admin_listen",
            format!("admin_listen and listen are the same address {}", f.listen),
        );
    }
    if let Some((n, p)) = m.get("upstream")
        && let Some(u) = string(d, n, &p)
            .and_then(|s| s.parse::<Upstream>().map_err(|e| d.err(n.pos, &p, e)).ok())
    {
        f.upstream = u;
    }
    if let Some((n, p)) = m.get("upstream_tls") {
        f.upstream_tls = parse_upstream_tls(d, n, &p);
        if !f.upstream.tls && f.upstream_tls != UpstreamTls::default() {
            d.err(
                n.pos,
                &p,
                format!(
                    "applies to an https:// upstream only; upstream is {}",
                    f.upstream
                ),
            );
        }
    }
    if let Some((n, p)) = m.get("threads") {
        f.threads = integer(d, n, &p, 0, 1024).map_or(0, |v| v as usize);
    }
    if let Some((n, p)) = m.get("shutdown_grace_seconds") {
        f.shutdown_grace_seconds = integer(d, n, &p, 0, 3600).unwrap_or(f.shutdown_grace_seconds);
    }
    if let Some((n, p)) = m.get("drain_delay_seconds") {
        f.drain_delay_seconds = integer(d, n, &p, 0, 3600).unwrap_or(f.drain_delay_seconds);
    }
    if let Some((n, p)) = m.get_some("tls") {
        f.tls = listener::parse_tls(d, n, &p);
    }
    if let Some((n, p)) = m.get("http2") {
        f.http2 = listener::parse_http2(d, n, &p);
    }
    if let Some((n, p)) = m.get("listener") {
        f.listener = listener::parse_buffers(d, n, &p);
    }
    if let Some((n, p)) = m.get("limits") {
        f.limits = limits::parse(d, n, &p);
    }
    if let Some((n, p)) = m.get("upstream_timeout_seconds") {
        f.upstream_timeout_seconds =
            integer(d, n, &p, 1, 3600).unwrap_or(f.upstream_timeout_seconds);
    }
    if let Some((n, p)) = m.get("signature") {
        f.signature = signature::parse(d, n, &p);
    }
    if let Some((n, p)) = m.get("keys") {
        f.keys = key_entries::parse_list(d, n, &p, &crate::keys::KeySource::Inline);
    }
    if let Some((n, p)) = m.get("key_files") {
        for (i, item) in list(d, n, &p).unwrap_or(&[]).iter().enumerate() {
            if let Some(s) = string(d, item, &index(&p, i)) {
                f.key_files.push(s.to_string());
            }
        }
    }
    if let Some((n, p)) = m.get_some("key_directory") {
        f.key_directory = parse_key_directory(d, n, &p);
    }
    if let Some((n, p)) = m.get("routes") {
        f.routes = routes::parse(d, n, &p);
    }
    if let Some((n, p)) = m.get("route_matching") {
        f.route_matching = routes::parse_matching(d, n, &p);
    }
    if let Some((n, p)) = m.get("canary") {
        f.canary = canary::parse(d, n, &p);
    }
    if let Some((n, p)) = m.get("identity") {
        f.identity = parse_identity(d, n, &p);
    }
    if let Some((n, p)) = m.get("trusted_proxies") {
        for (i, item) in list(d, n, &p).unwrap_or(&[]).iter().enumerate() {
            let ip = index(&p, i);
            if let Some(s) = string(d, item, &ip) {
                match parse_cidr(s) {
                    Ok(net) => f.trusted_proxies.push(net),
                    Err(e) => d.err(item.pos, &ip, e),
                }
            }
        }
    }
    if let Some((n, p)) = m.get("replay") {
        f.replay = parse_replay(d, n, &p, f.replay.clone());
    }
    if let Some((n, p)) = m.get("failure_rate_limit")
        && let Some(r) = MapReader::new(d, n, &p, &schema::children("failure_rate_limit"))
        && let Some((n, p)) = r.get("per_minute")
    {
        f.failure_rate_limit.per_minute = integer(d, n, &p, 0, 1_000_000).map_or(0, |v| v as u32);
    }
    if let Some((n, p)) = m.get("readiness") {
        f.readiness = readiness::parse(d, n, &p);
    }
    f
}

fn http_url(s: &str) -> bool {
    s.parse::<http::Uri>().is_ok_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    })
}

fn parse_key_directory(d: &mut Diag, n: &Node, path: &str) -> Option<KeyDirectory> {
    let m = MapReader::new(d, n, path, &schema::children("key_directory"))?;
    let url = match m.get("url") {
        Some((n, p)) => string(d, n, &p).and_then(|s| {
            if http_url(s) {
                Some(s.to_string())
            } else {
                d.err(
                    n.pos,
                    &p,
                    format!("{s:?} is not an http:// or https:// URL"),
                );
                None
            }
        }),
        None => {
            d.err(m.pos, path, "missing `url`");
            None
        }
    };
    let refresh_seconds = match m.get("refresh_seconds") {
        Some((n, p)) => integer(d, n, &p, 1, 86_400)?,
        None => 300,
    };
    Some(KeyDirectory {
        url: url?,
        refresh_seconds,
    })
}
