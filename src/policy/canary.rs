//! `canary:` — what share of callers on hybrid routes is enforced, how a caller is recognised
//! (`sticky_on`) and the matchers of `always_require` / `never_require`, parsed into types. The
//! hashing and the per-request decision live with the decision code, not here.

use super::error::Diag;
use super::reader::{MapReader, index, integer, list, string};
use super::yaml::Node;
use http::HeaderName;
use ipnet::IpNet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryPolicy {
    pub percent: u8,
    /// First present wins.
    pub sticky_on: Vec<StickyOn>,
    pub always_require: Vec<CallerMatcher>,
    pub never_require: Vec<CallerMatcher>,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            percent: 0,
            sticky_on: vec![StickyOn::Header(http::header::AUTHORIZATION), StickyOn::Ip],
            always_require: Vec::new(),
            never_require: Vec::new(),
        }
    }
}

/// What identifies a caller for sticky canary bucketing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StickyOn {
    Header(HeaderName),
    Ip,
}

/// `header:name=value` | `ip:CIDR` | `client:ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerMatcher {
    /// Exact value match; the name is lowercased.
    Header {
        name: HeaderName,
        value: String,
    },
    Ip(IpNet),
    /// A verified client id, or an unsigned caller's legacy identity.
    Client(String),
}

impl std::fmt::Display for CallerMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerMatcher::Header { name, value } => write!(f, "header:{name}={value}"),
            CallerMatcher::Ip(net) => write!(f, "ip:{net}"),
            CallerMatcher::Client(id) => write!(f, "client:{id}"),
        }
    }
}

const KEYS: &[&str] = &["percent", "sticky_on", "always_require", "never_require"];

pub(crate) fn parse(d: &mut Diag, node: &Node, path: &str) -> CanaryPolicy {
    let mut c = CanaryPolicy::default();
    let Some(m) = MapReader::new(d, node, path, KEYS) else {
        return c;
    };
    if let Some((n, p)) = m.get("percent") {
        c.percent = integer(d, n, &p, 0, 100)
            .and_then(|v| u8::try_from(v).ok())
            .unwrap_or(0);
    }
    if let Some((n, p)) = m.get("sticky_on") {
        let parsed = strings(d, n, &p, parse_sticky);
        if matches!(&n.value, super::yaml::Value::Seq(items) if items.is_empty())
            || n.value == super::yaml::Value::Null
        {
            d.err(n.pos, &p, "name at least one of \"header:NAME\" or \"ip\"");
        } else if !parsed.is_empty() {
            c.sticky_on = parsed;
        }
    }
    if let Some((n, p)) = m.get("always_require") {
        c.always_require = strings(d, n, &p, parse_matcher);
    }
    if let Some((n, p)) = m.get("never_require") {
        c.never_require = strings(d, n, &p, parse_matcher);
    }
    c
}

fn strings<T>(d: &mut Diag, n: &Node, path: &str, f: fn(&str) -> Result<T, String>) -> Vec<T> {
    let mut out = Vec::new();
    for (i, item) in list(d, n, path).unwrap_or(&[]).iter().enumerate() {
        let ip = index(path, i);
        if let Some(s) = string(d, item, &ip) {
            match f(s) {
                Ok(v) => out.push(v),
                Err(e) => d.err(item.pos, &ip, e),
            }
        }
    }
    out
}

pub(crate) fn header_name(s: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(s.trim().as_bytes())
        .map_err(|_| format!("{s:?} is not a valid HTTP header name"))
}

fn parse_sticky(s: &str) -> Result<StickyOn, String> {
    match s.split_once(':') {
        None if s == "ip" => Ok(StickyOn::Ip),
        Some(("header", name)) => header_name(name).map(StickyOn::Header),
        _ => Err(format!("{s:?}: expected \"header:NAME\" or \"ip\"")),
    }
}

pub(crate) fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or CIDR (e.g. 10.1.0.0/16)"))
}

fn parse_matcher(s: &str) -> Result<CallerMatcher, String> {
    match s.split_once(':') {
        Some(("header", rest)) => {
            let (name, value) = rest
                .split_once('=')
                .ok_or_else(|| format!("{s:?}: expected \"header:name=value\""))?;
            Ok(CallerMatcher::Header {
                name: header_name(name)?,
                value: value.to_string(),
            })
        }
        Some(("ip", cidr)) => parse_cidr(cidr).map(CallerMatcher::Ip),
        Some(("client", id)) if !id.is_empty() => Ok(CallerMatcher::Client(id.to_string())),
        _ => Err(format!(
            "{s:?}: expected \"header:name=value\", \"ip:CIDR\" or \"client:ID\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_into_types() {
        assert_eq!(
            parse_matcher("header:X-Client-Id=partner-a"),
            Ok(CallerMatcher::Header {
                name: HeaderName::from_static("x-client-id"),
                value: "partner-a".into()
            })
        );
        assert_eq!(
            parse_matcher("ip:10.1.0.0/16"),
            Ok(CallerMatcher::Ip("10.1.0.0/16".parse().unwrap()))
        );
        assert_eq!(
            parse_matcher("ip:10.1.2.3"),
            Ok(CallerMatcher::Ip("10.1.2.3/32".parse().unwrap()))
        );
        assert_eq!(
            parse_matcher("client:web"),
            Ok(CallerMatcher::Client("web".into()))
        );
        for bad in [
            "header:x",
            "ip:10.0.0.0/99",
            "client:",
            "who:x",
            "header:bad name=1",
        ] {
            assert!(parse_matcher(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_sticky("ip"), Ok(StickyOn::Ip));
        assert!(parse_sticky("cookie:x").is_err());
    }
}
