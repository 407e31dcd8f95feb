//! `identity:` — the headers that tell the backend who called, which inbound headers are
//! dropped, and which request-override headers (`X-HTTP-Method-Override`, `X-Original-URL` …)
//! are dropped unless a verified signature covers them. Names only; deciding per request and
//! stripping is the gate's and the proxy's job.

use super::canary::header_name;
use super::error::Diag;
use super::reader::{MapReader, boolean, index, list, string};
use super::schema;
use super::yaml::Node;
use http::HeaderName;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityPolicy {
    pub client_id_header: HeaderName,
    pub key_id_header: HeaderName,
    pub auth_method_header: HeaderName,
    /// Extra inbound headers to drop; the three above are always dropped.
    pub strip_inbound: Vec<HeaderName>,
    pub forward_signature_headers: bool,
    /// Headers that make a backend serve another method or path than the request line says
    /// (IIS/Symfony/Laravel `X-Original-URL`, frameworks' method overrides): dropped from every
    /// request, in any case or `_` spelling, unless the verified signature covers them.
    pub strip_override_headers: Vec<HeaderName>,
}

/// `identity.strip_override_headers` when the policy does not say.
pub const DEFAULT_OVERRIDE_HEADERS: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl Default for IdentityPolicy {
    fn default() -> Self {
        IdentityPolicy {
            client_id_header: HeaderName::from_static("x-datafold-client-id"),
            key_id_header: HeaderName::from_static("x-datafold-key-id"),
            auth_method_header: HeaderName::from_static("x-datafold-auth-method"),
            strip_inbound: Vec::new(),
            forward_signature_headers: true,
            strip_override_headers: DEFAULT_OVERRIDE_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
        }
    }
}

pub(crate) fn parse_identity(d: &mut Diag, n: &Node, path: &str) -> IdentityPolicy {
    let mut id = IdentityPolicy::default();
    let Some(m) = MapReader::new(d, n, path, &schema::children("identity")) else {
        return id;
    };
    let header = |d: &mut Diag, n: &Node, p: &str| {
        string(d, n, p).and_then(|s| header_name(s).map_err(|e| d.err(n.pos, p, e)).ok())
    };
    for (key, slot) in [
        ("client_id_header", &mut id.client_id_header),
        ("key_id_header", &mut id.key_id_header),
        ("auth_method_header", &mut id.auth_method_header),
    ] {
        if let Some((n, p)) = m.get(key)
            && let Some(h) = header(d, n, &p)
        {
            *slot = h;
        }
    }
    let names = [
        &id.client_id_header,
        &id.key_id_header,
        &id.auth_method_header,
    ];
    if names[0] == names[1] || names[1] == names[2] || names[0] == names[2] {
        d.err(m.pos, path, "client_id_header, key_id_header and auth_method_header must be three different headers");
    }
    if let Some((n, p)) = m.get("strip_inbound") {
        for (i, item) in list(d, n, &p).unwrap_or(&[]).iter().enumerate() {
            if let Some(h) = header(d, item, &index(&p, i)) {
                id.strip_inbound.push(h);
            }
        }
    }
    if let Some((n, p)) = m.get("strip_override_headers") {
        // Written out, the list replaces the default (`[]` strips none).
        id.strip_override_headers.clear();
        for (i, item) in list(d, n, &p).unwrap_or(&[]).iter().enumerate() {
            if let Some(h) = header(d, item, &index(&p, i))
                && !id.strip_override_headers.contains(&h)
            {
                id.strip_override_headers.push(h);
            }
        }
    }
    if let Some((n, p)) = m.get("forward_signature_headers") {
        id.forward_signature_headers = boolean(d, n, &p).unwrap_or(true);
    }
    id
}
