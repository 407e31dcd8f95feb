//! `canary:` — what share of callers on hybrid routes is enforced, how a caller is recognised
//! (`sticky_on`), the matchers of `always_require` / `never_require` and the opt-in
//! `auto_halt`, parsed into types. The hashing and the per-request decision live in
//! `crate::rollout`, not here.

use super::error::Diag;
use super::reader::{MapReader, choice, index, integer, list, string};
use super::schema;
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
    /// `None`: the canary never halts itself.
    pub auto_halt: Option<AutoHalt>,
    /// `None`: an unsigned caller has no identity, so `client:` matchers never match it.
    pub legacy_user: Option<LegacyUser>,
}

/// `canary.legacy_user`: how an unsigned caller is recognised as user `a` by a `client:a`
/// matcher in `always_require` (and so by `FORCE_SIGNATURE_USERS`): the value of `header`, as
/// sent, or its SHA-256 in lowercase hex when that header carries a secret (a bearer token), so
/// the ConfigMap never holds the secret. Anyone can send any header, so it only ever makes a
/// caller *more* enforced: it is never consulted for `never_require`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyUser {
    pub header: HeaderName,
    pub hash: LegacyUserHash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyUserHash {
    /// The header value is the user id.
    None,
    /// The user id is the hex SHA-256 of the header value's bytes (e.g. of `Bearer abc`).
    Sha256,
}

impl LegacyUserHash {
    pub const NAMES: [(&'static str, LegacyUserHash); 2] = [
        ("none", LegacyUserHash::None),
        ("sha256", LegacyUserHash::Sha256),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Sha256 => "sha256",
        }
    }
}

/// `canary.auto_halt`: when more than `max_reject_percent` of the requests of canary callers
/// were rejected for a missing signature within `window_seconds` (and at least `min_requests`
/// were seen), the effective canary drops to 0 until the policy changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoHalt {
    pub max_reject_percent: u8,
    pub window_seconds: u64,
    pub min_requests: u64,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            percent: 0,
            sticky_on: vec![StickyOn::Header(http::header::AUTHORIZATION), StickyOn::Ip],
            always_require: Vec::new(),
            never_require: Vec::new(),
            auto_halt: None,
            legacy_user: None,
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

pub(crate) fn parse(d: &mut Diag, node: &Node, path: &str) -> CanaryPolicy {
    let mut c = CanaryPolicy::default();
    let Some(m) = MapReader::new(d, node, path, &schema::children("canary")) else {
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
    if let Some((n, p)) = m.get_some("auto_halt") {
        c.auto_halt = parse_auto_halt(d, n, &p);
    }
    if let Some((n, p)) = m.get_some("legacy_user") {
        c.legacy_user = parse_legacy_user(d, n, &p);
    }
    c
}

/// Every key is required: a halt rule half written is more likely a mistake than a wish for
/// defaults.
fn parse_auto_halt(d: &mut Diag, node: &Node, path: &str) -> Option<AutoHalt> {
    let m = MapReader::new(d, node, path, &schema::children("canary.auto_halt"))?;
    let mut get = |key: &str, min: u64, max: u64| match m.get(key) {
        Some((n, p)) => integer(d, n, &p, min, max),
        None => {
            d.err(m.pos, path, format!("`{key}` is required in auto_halt"));
            None
        }
    };
    let pct = get("max_reject_percent", 1, 100);
    let window = get("window_seconds", 5, 3600);
    let min = get("min_requests", 1, 1_000_000);
    Some(AutoHalt {
        max_reject_percent: u8::try_from(pct?).ok()?,
        window_seconds: window?,
        min_requests: min?,
    })
}

fn parse_legacy_user(d: &mut Diag, node: &Node, path: &str) -> Option<LegacyUser> {
    let m = MapReader::new(d, node, path, &schema::children("canary.legacy_user"))?;
    let header = match m.get("header") {
        Some((n, p)) => {
            string(d, n, &p).and_then(|s| header_name(s).map_err(|e| d.err(n.pos, &p, e)).ok())
        }
        None => {
            d.err(m.pos, path, "`header` is required in legacy_user");
            None
        }
    };
    let hash = match m.get("hash") {
        Some((n, p)) => choice(d, n, &p, &LegacyUserHash::NAMES)?,
        None => LegacyUserHash::None,
    };
    Some(LegacyUser {
        header: header?,
        hash,
    })
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
        assert_eq!(
            parse_sticky("header:X-Caller"),
            Ok(StickyOn::Header(HeaderName::from_static("x-caller")))
        );
        assert!(parse_sticky("cookie:x").is_err());
    }

    fn halt(text: &str) -> (Option<AutoHalt>, Vec<String>) {
        let root = crate::policy::yaml::parse_document(text).unwrap().unwrap();
        let mut d = Diag::new("p.yaml");
        let c = parse(&mut d, &root, "canary");
        (
            c.auto_halt,
            d.errors.iter().map(|e| e.to_string()).collect(),
        )
    }

    #[test]
    fn auto_halt_is_opt_in_and_validated() {
        assert_eq!(halt("percent: 5\n"), (None, vec![]));
        assert_eq!(halt("auto_halt: null\n"), (None, vec![]));
        assert_eq!(
            halt("auto_halt: {max_reject_percent: 20, window_seconds: 60, min_requests: 50}\n"),
            (
                Some(AutoHalt {
                    max_reject_percent: 20,
                    window_seconds: 60,
                    min_requests: 50
                }),
                vec![]
            )
        );
        let (h, e) = halt("auto_halt: {max_reject_percent: 0, window_seconds: 60}\n");
        assert_eq!(h, None);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e.iter().any(|m| m.contains("min_requests` is required")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("canary.auto_halt.max_reject_percent: 0 is out of range")),
            "{e:?}"
        );
        let (_, e) = halt(
            "auto_halt: {max_reject_percent: 5, window_seconds: 60, min_requests: 1, window: 3}\n",
        );
        assert!(e[0].contains("unknown key `window`"), "{e:?}");
    }
}
