//! `Hop`: everything the request path reads from the policy, derived once per policy snapshot
//! (so a reload applies to the next request, and one request never mixes two policies): the
//! header strip set and identity header names, `trusted_proxies`, the body limit, the upstream
//! peer (with the CA and name its TLS is verified against) and its timeouts, the client limits,
//! the HTTP/2 settings and the listener's TLS configuration (applied to the next connection).
//! Built from a validated policy and the PEM files it read; it reads no file and binds nothing.

use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use pingora::prelude::HttpPeer;

use super::headers::StripSet;
use super::tls::{self, ServerTls};
use crate::policy::{Http2, Limits, PolicyFile, TlsFiles, Upstream};
use std::sync::Arc;

/// Proxy settings of one policy snapshot.
#[derive(Clone, Debug)]
pub struct Hop {
    /// Inbound headers dropped from every request in any spelling: the identity headers,
    /// `identity.strip_inbound`, and the signature headers when they are not forwarded.
    pub strip: StripSet,
    pub client_id_header: HeaderName,
    pub key_id_header: HeaderName,
    pub auth_method_header: HeaderName,
    pub trusted_proxies: Vec<IpNet>,
    /// Limit for bodies read whole for verification (413 beyond).
    pub max_body_bytes: usize,
    pub upstream: Upstream,
    /// The upstream as Pingora's connector wants it (address resolved when the snapshot was
    /// built; connection pools are keyed by it, so an unchanged upstream keeps its pool).
    pub peer: HttpPeer,
    pub limits: Limits,
    /// HTTP/2 from clients: on or off, and its bounds (read when a connection starts).
    pub http2: Http2,
    /// The listener's TLS configuration (`None`: the policy has no `tls:`). Read at each
    /// handshake, so a rotated certificate serves the next connection.
    pub tls: Option<Arc<ServerTls>>,
    /// On a stop: keep serving (not ready, closing connections) this long before closing the
    /// listeners.
    pub drain_delay: Duration,
    /// On a stop: after the listeners close, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
}

impl Hop {
    /// The settings of a policy file without TLS material (no `tls:` listener, system roots for
    /// an `https://` upstream). Fails only when the upstream name does not resolve.
    pub fn from_policy(f: &PolicyFile) -> Result<Self, String> {
        Self::from_policy_files(f, &TlsFiles::default())
    }

    /// The settings of a policy file and the PEM files it names. Fails when the upstream name
    /// does not resolve or the TLS material does not make a configuration (a key that does not
    /// match its certificate, an unparsable certificate).
    pub fn from_policy_files(f: &PolicyFile, files: &TlsFiles) -> Result<Self, String> {
        let id = &f.identity;
        let mut names: Vec<&str> = vec![
            id.client_id_header.as_str(),
            id.key_id_header.as_str(),
            id.auth_method_header.as_str(),
        ];
        names.extend(id.strip_inbound.iter().map(HeaderName::as_str));
        if !id.forward_signature_headers {
            names.extend(["signature", "signature-input"]);
        }
        let timeout = Duration::from_secs(f.upstream_timeout_seconds);
        Ok(Self {
            strip: StripSet::new(names),
            client_id_header: id.client_id_header.clone(),
            key_id_header: id.key_id_header.clone(),
            auth_method_header: id.auth_method_header.clone(),
            trusted_proxies: f.trusted_proxies.clone(),
            max_body_bytes: usize::try_from(f.signature.max_body_bytes).unwrap_or(usize::MAX),
            peer: peer(f, files, timeout)?,
            upstream: f.upstream.clone(),
            limits: f.limits,
            http2: f.http2,
            tls: ServerTls::build(files, f.http2.enabled).map_err(|e| format!("tls: {e}"))?,
            drain_delay: Duration::from_secs(f.drain_delay_seconds),
            shutdown_grace: Duration::from_secs(f.shutdown_grace_seconds),
        })
    }

    /// The settings of a policy that says nothing but where the upstream is (tests, embedders).
    pub fn for_upstream(upstream: Upstream) -> Result<Self, String> {
        let f = PolicyFile {
            upstream,
            ..PolicyFile::default()
        };
        Self::from_policy(&f)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.header_timeout_seconds)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.body_timeout_seconds)
    }

    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.send_timeout_seconds)
    }

    /// `None`: keep-alive is off.
    pub fn keepalive_timeout(&self) -> Option<Duration> {
        (self.limits.keepalive_timeout_seconds > 0)
            .then(|| Duration::from_secs(self.limits.keepalive_timeout_seconds))
    }
}

/// The connect timeout: an upstream on the same pod or node answers a SYN in microseconds; five
/// seconds is the patience for one across a busy network.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn peer(f: &PolicyFile, files: &TlsFiles, timeout: Duration) -> Result<HttpPeer, String> {
    let u = &f.upstream;
    let addr = u.resolve()?;
    let name = f
        .upstream_tls
        .server_name
        .clone()
        .unwrap_or_else(|| u.sni.clone());
    let mut p = HttpPeer::new(addr, u.tls, name);
    if u.tls {
        p.options.ca = tls::upstream_ca(files).map_err(|e| format!("upstream_tls.ca_file: {e}"))?;
        // Pooled connections were verified against the CA in force when they were made: a new
        // CA file gets new connections.
        p.group_key = files.upstream_ca.as_ref().map_or(0, |ca| {
            u64::from_str_radix(ca.sha256.get(..16).unwrap_or("0"), 16).unwrap_or(0)
        });
    }
    p.options.connection_timeout = Some(CONNECT_TIMEOUT);
    p.options.total_connection_timeout = Some(CONNECT_TIMEOUT * 2);
    p.options.read_timeout = Some(timeout);
    p.options.write_timeout = Some(timeout);
    // How long an idle pooled upstream connection is kept.
    p.options.idle_timeout = Some(Duration::from_secs(60));
    Ok(p)
}
