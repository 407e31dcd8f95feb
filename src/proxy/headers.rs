//! Header hygiene on the way upstream: strip forged identity headers in any spelling, keep a
//! `Connection:` header from nominating them, X-Request-Id, and X-Forwarded-* trust. Pure
//! functions over `http` types; the decision of *what* identity to set is not made here.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Edits go through this so Pingora's `RequestHeader` keeps its header-case map in step with
/// its `HeaderMap` (mutating the map directly makes Pingora panic when it serializes).
pub trait HeaderEdit {
    fn map(&self) -> &HeaderMap;
    /// Removes every value of `name`; nothing to do (and nothing hashed twice) when absent.
    fn remove(&mut self, name: &HeaderName);
    /// Sets `name` to `value` alone, replacing what was there.
    fn insert(&mut self, name: HeaderName, value: HeaderValue);
    /// Like `insert`, for a name known at compile time, sent upstream as `titled` is spelled.
    fn insert_known(&mut self, name: &Known, value: HeaderValue);
}

/// A header name known at compile time: its `HeaderName` and the spelling sent upstream.
pub struct Known {
    pub name: HeaderName,
    pub titled: &'static str,
}

// Statics, not consts: a const `HeaderName` is built and dropped at every use.
pub static X_FORWARDED_FOR: Known = Known {
    name: HeaderName::from_static("x-forwarded-for"),
    titled: "X-Forwarded-For",
};
pub static X_FORWARDED_PROTO: Known = Known {
    name: HeaderName::from_static("x-forwarded-proto"),
    titled: "X-Forwarded-Proto",
};
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: Known = Known {
    name: HeaderName::from_static(super::respond::REQUEST_ID),
    titled: "X-Request-Id",
};

impl HeaderEdit for HeaderMap {
    fn map(&self) -> &HeaderMap {
        self
    }
    fn remove(&mut self, name: &HeaderName) {
        HeaderMap::remove(self, name);
    }
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        HeaderMap::insert(self, name, value);
    }
    fn insert_known(&mut self, name: &Known, value: HeaderValue) {
        HeaderMap::insert(self, name.name.clone(), value);
    }
}

/// Pingora keeps a second map with each name's wire spelling; every edit touches both, so the
/// common no-op (removing an absent header) is checked on one map first.
impl HeaderEdit for pingora::http::RequestHeader {
    fn map(&self) -> &HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        if self.headers.contains_key(name) {
            self.remove_header(name);
        }
    }
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        // Only fails for invalid names/values, which typed arguments rule out.
        let _ = self.insert_header(name, value);
    }
    fn insert_known(&mut self, name: &Known, value: HeaderValue) {
        // A static spelling: no title-casing copy of the name per request.
        let _ = self.insert_header(name.titled, value);
    }
}

impl HeaderEdit for pingora::http::ResponseHeader {
    fn map(&self) -> &HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        if self.headers.contains_key(name) {
            self.remove_header(name);
        }
    }
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.insert_header(name, value);
    }
    fn insert_known(&mut self, name: &Known, value: HeaderValue) {
        let _ = self.insert_header(name.titled, value);
    }
}

/// Lowercase, `_` → `-`: the spelling-insensitive key used to match header names.
pub fn normalize(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

/// Header names equal after lowercasing and `_` → `-` (the spelling-insensitive match of
/// `normalize`, without building the normalized string).
pub fn same_spelling(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// Names (normalized) that must never arrive from a client.
#[derive(Clone, Debug)]
pub struct StripSet {
    names: Vec<String>,
}

impl StripSet {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut names: Vec<String> = names.into_iter().map(normalize).collect();
        names.sort();
        names.dedup();
        Self { names }
    }

    /// Whether `name`, in any case and `_`/`-` spelling, is in the set. No allocation: this runs
    /// over every header of every request.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| same_spelling(n, name))
    }

    /// Remove every header whose normalized name is in the set, and every `Connection` token
    /// naming one (so no hop, ours or the next, drops the identity we set afterwards).
    pub fn strip(&self, headers: &mut impl HeaderEdit) {
        let doomed: Vec<HeaderName> = headers
            .map()
            .keys()
            .filter(|k| self.contains(k.as_str()))
            .cloned()
            .collect();
        for k in doomed {
            headers.remove(&k);
        }
        self.scrub_connection(headers);
    }

    fn scrub_connection(&self, headers: &mut impl HeaderEdit) {
        let values: Vec<HeaderValue> = headers
            .map()
            .get_all(http::header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        if values.is_empty() {
            return;
        }
        let mut kept: Vec<String> = Vec::new();
        for v in &values {
            for tok in v.as_bytes().split(|b| *b == b',') {
                let tok = String::from_utf8_lossy(tok).trim().to_string();
                if !tok.is_empty() && !self.contains(&tok) {
                    kept.push(tok);
                }
            }
        }
        headers.remove(&http::header::CONNECTION);
        if !kept.is_empty()
            && let Ok(v) = HeaderValue::from_str(&kept.join(", "))
        {
            headers.insert(http::header::CONNECTION, v);
        }
    }
}

/// Which of a short fixed list of names (at most 16) a head holds, found in one pass over its
/// names: a bit per entry, no allocation.
#[derive(Default, Clone, Copy)]
pub struct NameSet(u16);

impl NameSet {
    /// Marks `name` if it is in `list`; whether it was.
    pub fn note(&mut self, list: &[HeaderName], name: &HeaderName) -> bool {
        match list.iter().take(16).position(|n| n == name) {
            Some(i) => {
                self.0 |= 1 << i;
                true
            }
            None => false,
        }
    }

    pub fn has(&self, i: usize) -> bool {
        i < 16 && self.0 & (1 << i) != 0
    }

    /// The marked names of `list`.
    pub fn names<'a>(&self, list: &'a [HeaderName]) -> impl Iterator<Item = &'a HeaderName> {
        let bits = self.0;
        list.iter()
            .take(16)
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// Adds to `out` the fields the `Connection` header(s) of `map` name (RFC 9110 §7.6.1), except
/// those in `never` and those in `known` (the caller removes those anyway): only a token beyond
/// them is parsed into a name.
pub fn nominated(
    map: &HeaderMap,
    known: &[HeaderName],
    never: &[HeaderName],
    out: &mut Vec<HeaderName>,
) {
    for v in map.get_all(http::header::CONNECTION) {
        for t in v.as_bytes().split(|b| *b == b',') {
            let t = t.trim_ascii();
            if known
                .iter()
                .any(|k| k.as_str().as_bytes().eq_ignore_ascii_case(t))
            {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(t)
                && !never.contains(&n)
            {
                out.push(n);
            }
        }
    }
}

/// Keep a client's X-Request-Id when it is short printable ASCII, else make a 128-bit hex one.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get(&X_REQUEST_ID.name) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic()) {
            return String::from_utf8_lossy(b).into_owned();
        }
    }
    new_request_id()
}

/// A 128-bit hex id: SipHash-1-3-128 of a process-wide counter under a key drawn once from the OS.
/// Unique within the process (distinct inputs to a PRF), unguessable from outside, and no
/// `getrandom` syscall per request (it was one of the seven syscalls a passthrough request made).
pub fn new_request_id() -> String {
    use siphasher::sip128::{Hasher128, SipHasher13};
    use std::hash::Hasher;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static N: AtomicU64 = AtomicU64::new(0);
    let &(k0, k1) = KEY.get_or_init(|| {
        let mut seed = [0u8; 16];
        if getrandom::fill(&mut seed).is_err() {
            // No OS randomness: the clock still keeps ids apart across restarts.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            seed = t.to_le_bytes();
        }
        let (a, b) = seed.split_at(8);
        let word = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        (word(a), word(b) ^ u64::from(std::process::id()))
    });
    let mut h = SipHasher13::new_with_keys(k0, k1);
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    let id = h.finish128();
    let mut out = String::with_capacity(32);
    push_hex_u64(&mut out, id.h1);
    push_hex_u64(&mut out, id.h2);
    out
}

/// `v` as 16 lowercase hex digits, without `core::fmt` (a request id is made per request).
fn push_hex_u64(out: &mut String, v: u64) {
    let mut digits = [0u8; 16];
    // 8 bytes into 16 digits: the lengths match, so this cannot fail; ASCII is UTF-8.
    if hex::encode_to_slice(v.to_be_bytes(), &mut digits).is_ok()
        && let Ok(s) = std::str::from_utf8(&digits)
    {
        out.push_str(s);
    }
}

/// `ip` in its usual text form appended to `out`: an IPv4 address written digit by digit (the
/// common case, once or twice per request), an IPv6 one through `Display` (RFC 5952 form).
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 15];
            let mut n = 0;
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    b[n] = b'.';
                    n += 1;
                }
                if o >= 100 {
                    b[n] = b'0' + o / 100;
                    n += 1;
                }
                if o >= 10 {
                    b[n] = b'0' + o / 10 % 10;
                    n += 1;
                }
                b[n] = b'0' + o % 10;
                n += 1;
            }
            // ASCII digits and dots: always UTF-8.
            if let Ok(s) = std::str::from_utf8(&b[..n]) {
                out.push_str(s);
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// `v` in decimal appended to `out`, without `core::fmt`.
pub fn push_u64(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // ASCII digits: always UTF-8.
    if let Ok(s) = std::str::from_utf8(&digits[i..]) {
        out.push_str(s);
    }
}

/// `ip` as a header value (its usual text form), remembered per thread for the last address
/// asked: the requests of a keep-alive connection, and most of a worker's, come from one peer,
/// so its text is made once rather than per request (and per use: `X-Forwarded-For`, the audit
/// line). No lock: each thread keeps its own. `None` only if the text is not a valid value,
/// which an address's never is.
pub fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    use std::cell::Cell;
    thread_local! {
        static LAST: Cell<Option<(IpAddr, HeaderValue)>> = const { Cell::new(None) };
    }
    let make = || {
        let mut s = String::with_capacity(15);
        push_ip(&mut s, ip);
        HeaderValue::from_str(&s).ok()
    };
    LAST.try_with(|c| match c.take() {
        Some((last, v)) if last == ip => {
            c.set(Some((last, v.clone())));
            Some(v)
        }
        _ => {
            let v = make()?;
            c.set(Some((ip, v.clone())));
            Some(v)
        }
    })
    // Thread-local storage already torn down (a thread's exit path): made afresh.
    .unwrap_or_else(|_| make())
}

/// A value the proxy sets often, without copying it: `http`, `https`.
fn known_value(value: &str) -> Option<HeaderValue> {
    match value {
        "http" => Some(HeaderValue::from_static("http")),
        "https" => Some(HeaderValue::from_static("https")),
        _ => None,
    }
}

pub fn is_trusted(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)))
}

/// The client address: the right-most untrusted hop of X-Forwarded-For when the peer is a
/// trusted proxy, else the peer itself.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpNet]) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        for part in v.as_bytes().split(|b| *b == b',') {
            if let Ok(ip) = String::from_utf8_lossy(part).trim().parse::<IpAddr>() {
                hops.push(ip);
            }
        }
    }
    for ip in hops.iter().rev() {
        if !trusted.iter().any(|n| n.contains(ip)) {
            return Some(*ip);
        }
    }
    hops.first().copied().or(peer)
}

/// The scheme the client used: a trusted proxy's X-Forwarded-Proto, else ours.
pub fn scheme<'a>(
    headers: &'a HeaderMap,
    peer: Option<IpAddr>,
    trusted: &[IpNet],
    ours: &'a str,
) -> &'a str {
    if is_trusted(peer, trusted)
        && let Some(p) = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
    {
        let p = p.trim();
        if p.eq_ignore_ascii_case("https") || p.eq_ignore_ascii_case("http") {
            return p;
        }
    }
    ours
}

/// Rewrite X-Forwarded-For/-Proto/-Host for the upstream: extended when the peer is trusted,
/// replaced otherwise.
pub fn set_forwarded(
    headers: &mut impl HeaderEdit,
    peer: Option<IpAddr>,
    trusted: &[IpNet],
    ours: &str,
) {
    if is_trusted(peer, trusted) {
        let mut peer_s = String::new();
        if let Some(p) = peer {
            push_ip(&mut peer_s, p);
        }
        let prior: Vec<String> = headers
            .map()
            .get_all(&X_FORWARDED_FOR.name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let mut chain = prior.join(", ");
        if !peer_s.is_empty() {
            if !chain.is_empty() {
                chain.push_str(", ");
            }
            chain.push_str(&peer_s);
        }
        set(headers, &X_FORWARDED_FOR, &chain);
        if headers.map().get(&X_FORWARDED_PROTO.name).is_none() {
            set(headers, &X_FORWARDED_PROTO, ours);
        }
    } else {
        headers.remove(&X_FORWARDED_HOST);
        match peer.and_then(ip_value) {
            Some(v) => headers.insert_known(&X_FORWARDED_FOR, v),
            None => headers.remove(&X_FORWARDED_FOR.name),
        }
        set(headers, &X_FORWARDED_PROTO, ours);
    }
}

/// `name: value` alone, or no `name` at all when `value` is empty (or not a valid value).
pub fn set(headers: &mut impl HeaderEdit, name: &Known, value: &str) {
    if let Some(v) = known_value(value) {
        headers.insert_known(name, v);
        return;
    }
    match HeaderValue::from_str(value) {
        Ok(v) if !value.is_empty() => headers.insert_known(name, v),
        _ => headers.remove(&name.name),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn strips_every_spelling_and_connection_tokens() {
        let s = StripSet::new(["X-DataFold-Client-Id", "X-DataFold-Key-Id"]);
        let mut h = map(&[
            ("x-datafold-client-id", "a"),
            ("x_datafold_client_id", "b"),
            ("X_DataFold_Key_ID", "c"),
            (
                "connection",
                "keep-alive, X-DataFold-Client-Id, x_datafold_key_id",
            ),
            ("other", "1"),
        ]);
        s.strip(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h.get("connection").unwrap(), "keep-alive");
        assert_eq!(h.get("other").unwrap(), "1");
    }

    #[test]
    fn request_id_kept_or_generated() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-1")])), "abc-1");
        let g = request_id(&map(&[("x-request-id", "")]));
        assert_eq!(g.len(), 32);
        assert!(g.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn hand_written_digits_match_fmt() {
        for v in [0u64, 1, 0xf, 0x10, 0xdead_beef, u64::MAX, 1 << 63] {
            let mut s = String::new();
            push_hex_u64(&mut s, v);
            assert_eq!(s, format!("{v:016x}"));
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        for ip in [
            "0.0.0.0",
            "192.0.2.9",
            "255.255.255.255",
            "::",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn ip_value_is_the_address_text_whichever_was_asked_last() {
        let a: IpAddr = "192.0.2.9".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for ip in [a, a, b, a, b, b] {
            assert_eq!(ip_value(ip).unwrap(), ip.to_string().as_str());
        }
        let mut h = HeaderMap::new();
        set(&mut h, &X_FORWARDED_PROTO, "https");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
        set(&mut h, &X_FORWARDED_PROTO, "");
        assert!(h.get("x-forwarded-proto").is_none());
    }

    #[test]
    fn name_set_and_nominated_fields() {
        let list = [
            http::header::CONNECTION,
            HeaderName::from_static("keep-alive"),
            http::header::UPGRADE,
        ];
        let h = map(&[
            ("connection", "Keep-Alive, X-Secret , close"),
            ("connection", "content-length,upgrade"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
        ]);
        let mut set = NameSet::default();
        let marked: Vec<bool> = h.keys().map(|k| set.note(&list, k)).collect();
        assert_eq!(marked, [true, true, false]);
        assert!(set.has(0) && set.has(1) && !set.has(2) && !set.has(99));
        let names: Vec<&str> = set.names(&list).map(HeaderName::as_str).collect();
        assert_eq!(names, ["connection", "keep-alive"]);
        let mut out = Vec::new();
        nominated(&h, &list, &[http::header::CONTENT_LENGTH], &mut out);
        let out: Vec<&str> = out.iter().map(HeaderName::as_str).collect();
        // Known names are left to the caller, `never` ones are kept, the rest are named.
        assert_eq!(out, ["x-secret", "close"]);
    }

    #[test]
    fn strip_set_matches_any_spelling_without_normalizing() {
        let s = StripSet::new(["X-DataFold-Client-Id"]);
        for n in [
            "x-datafold-client-id",
            "X_DATAFOLD_CLIENT_ID",
            "x_DataFold-client_id",
        ] {
            assert!(s.contains(n), "{n}");
        }
        for n in [
            "x-datafold-client-i",
            "x-datafold-client-idd",
            "x.datafold-client-id",
            "",
        ] {
            assert!(!s.contains(n), "{n}");
        }
    }

    #[test]
    fn forwarded_only_from_trusted() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let stranger = Some("192.0.2.9".parse().unwrap());
        assert_eq!(client_ip(&h, stranger, &trusted), stranger);
        assert_eq!(scheme(&h, stranger, &trusted, "http"), "http");
        set_forwarded(&mut h, stranger, &trusted, "http");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.9");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");

        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let proxy = Some("10.1.1.1".parse().unwrap());
        assert_eq!(
            client_ip(&h, proxy, &trusted),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(scheme(&h, proxy, &trusted, "http"), "https");
        set_forwarded(&mut h, proxy, &trusted, "http");
        assert_eq!(h.get("x-forwarded-for").unwrap(), "1.2.3.4, 10.1.1.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    }
}
