//! The `signature:` section: time windows, nonce and digest requirements, required components,
//! label/tag selection and the public authority/scheme. Validation only; the checks themselves
//! run in `crate::signature`.

use super::error::Diag;
use super::reader::{MapReader, choice, index, integer, list, opt_string, string};
use super::schema;
use super::types::{Requirement, Scheme};
use super::yaml::Node;
use crate::signature::{Component, VerifyOptions};

/// `signature:`. The keys the verifier reads (`max_age_seconds`, `clock_skew_seconds`, `nonce`,
/// `required_components`, `body_digest`, `label`, `tag`) are parsed straight into its own
/// [`VerifyOptions`], defaults included: there is no second copy to keep in step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignaturePolicy {
    /// What the verifier checks, as it reads it: components parsed once, here.
    pub verify: VerifyOptions,
    pub max_body_bytes: u64,
    /// Lowercased `host[:port]` clients signed as `@authority`, when it differs from Host here.
    pub public_authority: Option<String>,
    pub public_scheme: Option<Scheme>,
}

/// `signature.max_body_bytes` when the policy does not say: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

impl Default for SignaturePolicy {
    fn default() -> Self {
        SignaturePolicy {
            verify: VerifyOptions::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            public_authority: None,
            public_scheme: None,
        }
    }
}

/// Request-side derived components of RFC 9421 §2.2 that make sense to require by name.
const DERIVED: &[&str] = &[
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
];

pub(crate) fn parse(d: &mut Diag, node: &Node, path: &str) -> SignaturePolicy {
    let mut s = SignaturePolicy::default();
    let Some(m) = MapReader::new(d, node, path, &schema::children("signature")) else {
        return s;
    };
    let v = &mut s.verify;
    const DAY: u64 = 86_400;
    if let Some((n, p)) = m.get("max_age_seconds") {
        v.max_age_seconds = integer(d, n, &p, 1, 7 * DAY).unwrap_or(v.max_age_seconds);
    }
    if let Some((n, p)) = m.get("clock_skew_seconds") {
        v.clock_skew_seconds = integer(d, n, &p, 0, DAY).unwrap_or(v.clock_skew_seconds);
    }
    if let Some((n, p)) = m.get("nonce") {
        v.nonce = choice(d, n, &p, &Requirement::NAMES).unwrap_or(v.nonce);
    }
    if let Some((n, p)) = m.get("body_digest") {
        v.body_digest = choice(d, n, &p, &Requirement::NAMES).unwrap_or(v.body_digest);
    }
    if let Some((n, p)) = m.get("max_body_bytes") {
        s.max_body_bytes = integer(d, n, &p, 0, 1 << 40).unwrap_or(s.max_body_bytes);
    }
    if let Some((n, p)) = m.get("required_components")
        && let Some(items) = list(d, n, &p)
    {
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ip = index(&p, i);
            let Some(c) = string(d, item, &ip) else {
                continue;
            };
            match parse_component(c) {
                Ok(comp) if out.contains(&comp) => {
                    d.err(item.pos, &ip, format!("{c} is listed twice"))
                }
                Ok(comp) => out.push(comp),
                Err(e) => d.err(item.pos, &ip, e),
            }
        }
        v.required_components = out;
    }
    if let Some((n, p)) = m.get("label") {
        v.label = opt_string(d, n, &p).filter(|l| {
            let ok = is_sf_key(l);
            if !ok {
                d.err(n.pos, &p, format!("{l:?} is not a valid signature label (lowercase letters, digits, _ - . *; starting with a letter or *)"));
            }
            ok
        });
    }
    if let Some((n, p)) = m.get("tag") {
        v.tag = opt_string(d, n, &p).filter(|t| {
            let ok = t.bytes().all(|b| (0x20..0x7f).contains(&b));
            if !ok {
                d.err(
                    n.pos,
                    &p,
                    "a tag is a structured-field string: printable ASCII only",
                );
            }
            ok
        });
    }
    if let Some((n, p)) = m.get("public_authority") {
        s.public_authority =
            opt_string(d, n, &p).and_then(|a| match a.parse::<http::uri::Authority>() {
                Ok(auth) if !a.contains('@') && !auth.host().is_empty() => {
                    Some(a.to_ascii_lowercase())
                }
                _ => {
                    d.err(n.pos, &p, format!("{a:?} is not a host[:port] authority"));
                    None
                }
            });
    }
    if let Some((n, p)) = m.get_some("public_scheme") {
        s.public_scheme = choice(d, n, &p, &Scheme::NAMES);
    }
    s
}

/// A component we can require (a request derived component or a lowercase field name), parsed
/// into the verifier's own [`Component`]: the one parse `required_components` gets.
fn parse_component(c: &str) -> Result<Component, String> {
    check_component(c)?;
    Component::parse_spec(c).map_err(|e| e.detail.into_owned())
}

/// Whether `c` is a component we can require, with a message saying why not.
fn check_component(c: &str) -> Result<(), String> {
    if let Some(name) = c.strip_prefix('@') {
        if DERIVED.contains(&c) {
            return Ok(());
        }
        return Err(match name {
            "status" => "@status is a response component; a request signature cannot cover it".into(),
            "query-param" => "@query-param needs a name parameter, which required_components does not support; require @query or @target-uri".into(),
            "signature-params" => "@signature-params is never a covered component".into(),
            _ => format!("{c} is not an RFC 9421 derived component; known: {}", DERIVED.join(", ")),
        });
    }
    if c.contains(';') || c.contains('"') {
        return Err(format!(
            "{c:?}: component parameters are not supported here; write the bare name"
        ));
    }
    if c.is_empty() || !c.bytes().all(is_tchar) {
        return Err(format!(
            "{c:?} is neither a derived component (@…) nor an HTTP field name"
        ));
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "field names in component identifiers are lowercase: write {:?}",
            c.to_ascii_lowercase()
        ));
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 8941 §3.1.2 key: `( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
pub(crate) fn is_sf_key(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'*'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_accept_request_ones_and_reject_the_rest() {
        for ok in [
            "@method",
            "@target-uri",
            "@authority",
            "@path",
            "@query",
            "content-type",
            "content-digest",
        ] {
            assert_eq!(check_component(ok), Ok(()), "{ok}");
        }
        for bad in [
            "@status",
            "@query-param",
            "@signature-params",
            "@nope",
            "Content-Type",
            "a b",
            "",
            "x;sf",
        ] {
            assert!(check_component(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sf_keys() {
        assert!(is_sf_key("sig1") && is_sf_key("*x") && !is_sf_key("Sig") && !is_sf_key("1a"));
    }
}
