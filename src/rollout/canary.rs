//! The canary decision as a pure function: which callers on a hybrid route are treated as
//! `required`. A caller is bucketed by a fixed hash (SHA-256) of its sticky value, so the same
//! caller lands the same way on every replica and raising the percent only adds callers. It
//! reads no clock and no policy file, and it does not track rejections (see `halt`).

use std::net::IpAddr;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::policy::{CallerMatcher, CanaryPolicy, LegacyUser, LegacyUserHash, Mode, StickyOn};

/// Buckets per caller space: percent × 100 of them are enforced (0.01 % resolution).
pub const BUCKETS: u64 = 10_000;

/// What identifies the caller of one request.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub headers: &'a HeaderMap,
    pub ip: Option<IpAddr>,
    /// A verified client id; `None` for unsigned callers (they have none).
    pub client_id: Option<&'a str>,
    /// An unsigned caller's claimed legacy identity (`canary.legacy_user`, see `legacy_user`):
    /// anyone can claim any, so it only ever adds enforcement (`always_require`), never exempts.
    pub legacy_user: Option<&'a str>,
}

/// Why a caller is (or is not) enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryReason {
    /// The route is not hybrid, or an override caps the policy below `required`.
    NotApplicable,
    /// `never_require` matched (it wins over everything else: it is the escape hatch).
    Exempt,
    /// `always_require` matched.
    Always,
    /// The sticky hash fell under the percent.
    Sampled,
    /// The sticky hash fell above the percent, or no sticky value was present.
    NotSampled,
}

impl CanaryReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotApplicable => "not_applicable",
            Self::Exempt => "exempt",
            Self::Always => "always",
            Self::Sampled => "sampled",
            Self::NotSampled => "not_sampled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanaryVerdict {
    /// The route's mode after the canary.
    pub mode: Mode,
    pub reason: CanaryReason,
}

impl CanaryVerdict {
    /// Enforced because of the percentage (what `auto_halt` watches).
    pub fn sampled(&self) -> bool {
        self.reason == CanaryReason::Sampled
    }
}

/// The bucket (0..BUCKETS) of a sticky value. The source name is hashed in so that an IP and a
/// header carrying the same text are different callers.
pub fn bucket(source: &str, value: &[u8]) -> u64 {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(value);
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// The caller's bucket under `sticky_on` (first present wins); `None` when nothing is present.
pub fn caller_bucket(sticky_on: &[StickyOn], caller: &Caller<'_>) -> Option<u64> {
    sticky_on.iter().find_map(|s| match s {
        StickyOn::Header(name) => caller
            .headers
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| bucket(name.as_str(), v.as_bytes())),
        StickyOn::Ip => caller.ip.map(|ip| bucket("ip", ip.to_string().as_bytes())),
    })
}

/// The legacy identity `rule` reads from `headers`: the header's value, or its SHA-256 in
/// lowercase hex. `None` when the header is absent, empty or not visible ASCII.
pub fn legacy_user(rule: &LegacyUser, headers: &HeaderMap) -> Option<String> {
    let v = headers.get(&rule.header)?.to_str().ok()?;
    if v.is_empty() {
        return None;
    }
    Some(match rule.hash {
        LegacyUserHash::None => v.to_owned(),
        LegacyUserHash::Sha256 => hex::encode(Sha256::digest(v.as_bytes())),
    })
}

/// Does `m` match what the caller proved (its verified client id, its address, its headers)?
pub fn matches(m: &CallerMatcher, caller: &Caller<'_>) -> bool {
    match m {
        CallerMatcher::Header { name, value } => caller
            .headers
            .get_all(name)
            .iter()
            .any(|v| v.as_bytes() == value.as_bytes()),
        CallerMatcher::Ip(net) => caller.ip.is_some_and(|ip| net.contains(&ip)),
        CallerMatcher::Client(id) => caller.client_id == Some(id.as_str()),
    }
}

/// The canary applied to one request. `route_mode` is the route's mode after overrides;
/// `cap` is the overrides' cap (`SIGNATURE_AUTH_REQUIRED=false` or `SIGNATURE_AUTH_MODE=hybrid`
/// mean no route may be `required`, so the canary must not make one so); `percent` is the
/// effective canary percent (0 while halted).
pub fn apply(
    route_mode: Mode,
    cap: Option<Mode>,
    percent: u8,
    policy: &CanaryPolicy,
    caller: &Caller<'_>,
) -> CanaryVerdict {
    let verdict = |mode, reason| CanaryVerdict { mode, reason };
    if route_mode != Mode::Hybrid || cap.is_some_and(|c| c < Mode::Required) {
        return verdict(route_mode, CanaryReason::NotApplicable);
    }
    if policy.never_require.iter().any(|m| matches(m, caller)) {
        return verdict(Mode::Hybrid, CanaryReason::Exempt);
    }
    let claimed = |m: &CallerMatcher| matches!(m, CallerMatcher::Client(id) if caller.legacy_user == Some(id.as_str()));
    if policy
        .always_require
        .iter()
        .any(|m| matches(m, caller) || claimed(m))
    {
        return verdict(Mode::Required, CanaryReason::Always);
    }
    let threshold = u64::from(percent.min(100)) * (BUCKETS / 100);
    match caller_bucket(&policy.sticky_on, caller) {
        Some(b) if b < threshold => verdict(Mode::Required, CanaryReason::Sampled),
        _ => verdict(Mode::Hybrid, CanaryReason::NotSampled),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy() -> CanaryPolicy {
        CanaryPolicy::default()
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_str(auth).unwrap());
        h
    }

    fn enforced(p: &CanaryPolicy, percent: u8, h: &HeaderMap, ip: Option<IpAddr>) -> bool {
        let c = Caller {
            headers: h,
            ip,
            client_id: None,
            legacy_user: None,
        };
        apply(Mode::Hybrid, None, percent, p, &c).mode == Mode::Required
    }

    #[test]
    fn share_is_close_to_percent_sticky_and_monotonic() {
        let p = policy();
        let callers: Vec<HeaderMap> = (0..1000)
            .map(|i| headers(&format!("Bearer token-{i}")))
            .collect();
        for percent in [0u8, 5, 10, 25, 30, 50, 60, 75, 100] {
            let n = callers
                .iter()
                .filter(|h| enforced(&p, percent, h, None))
                .count();
            let share = n as f64 / 10.0;
            assert!(
                (share - f64::from(percent)).abs() <= 4.0,
                "{percent}%: got {share}%"
            );
        }
        for h in &callers {
            // Same answer every time; raising never drops a caller.
            assert_eq!(enforced(&p, 30, h, None), enforced(&p, 30, h, None));
            if enforced(&p, 30, h, None) {
                assert!(enforced(&p, 60, h, None));
            }
        }
        assert!(callers.iter().all(|h| enforced(&p, 100, h, None)));
        assert!(!callers.iter().any(|h| enforced(&p, 0, h, None)));
    }

    #[test]
    fn bucket_is_a_fixed_function_of_the_value() {
        // Pinned: every replica, and every future build, must bucket a caller the same way.
        let b = bucket("authorization", b"Bearer token-1");
        assert_eq!(b, bucket("authorization", b"Bearer token-1"));
        assert_ne!(
            bucket("ip", b"10.0.0.1"),
            bucket("x-forwarded-client", b"10.0.0.1")
        );
        let mut h = Sha256::new();
        h.update(b"authorization\0Bearer token-1");
        let d = h.finalize();
        assert_eq!(b, u64::from_be_bytes(d[..8].try_into().unwrap()) % BUCKETS);
    }

    #[test]
    fn sticky_on_first_present_wins() {
        let p = CanaryPolicy {
            sticky_on: vec![
                StickyOn::Header(http::HeaderName::from_static("x-caller")),
                StickyOn::Ip,
            ],
            ..policy()
        };
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let none = HeaderMap::new();
        let mut named = HeaderMap::new();
        named.insert("x-caller", HeaderValue::from_static("billing"));
        let c = |h| Caller {
            headers: h,
            ip: Some(ip),
            client_id: None,
            legacy_user: None,
        };
        assert_eq!(
            caller_bucket(&p.sticky_on, &c(&named)),
            Some(bucket("x-caller", b"billing"))
        );
        assert_eq!(
            caller_bucket(&p.sticky_on, &c(&none)),
            Some(bucket("ip", b"10.0.0.7"))
        );
        let nothing = Caller {
            headers: &none,
            ip: None,
            client_id: None,
            legacy_user: None,
        };
        assert_eq!(caller_bucket(&p.sticky_on, &nothing), None);
        // No sticky value: never sampled, even at 100 %.
        assert_eq!(
            apply(Mode::Hybrid, None, 100, &p, &nothing).reason,
            CanaryReason::NotSampled
        );
    }

    #[test]
    fn matchers_and_caps() {
        let p = CanaryPolicy {
            always_require: vec![
                CallerMatcher::Header {
                    name: http::HeaderName::from_static("x-client-id"),
                    value: "partner-a".into(),
                },
                CallerMatcher::Ip("10.1.0.0/16".parse().unwrap()),
                CallerMatcher::Client("web".into()),
            ],
            never_require: vec![CallerMatcher::Ip("10.1.2.0/24".parse().unwrap())],
            ..policy()
        };
        let empty = HeaderMap::new();
        let mut partner = HeaderMap::new();
        partner.insert("x-client-id", HeaderValue::from_static("partner-a"));
        let at = |h, ip: &str, client| Caller {
            headers: h,
            ip: Some(ip.parse().unwrap()),
            client_id: client,
            legacy_user: None,
        };
        let reason = |c: &Caller<'_>| apply(Mode::Hybrid, None, 0, &p, c).reason;
        assert_eq!(
            reason(&at(&partner, "192.0.2.1", None)),
            CanaryReason::Always
        );
        assert_eq!(reason(&at(&empty, "10.1.9.9", None)), CanaryReason::Always);
        assert_eq!(
            reason(&at(&empty, "192.0.2.1", Some("web"))),
            CanaryReason::Always
        );
        // An unsigned caller has no client id: `client:` cannot match it.
        assert_eq!(
            reason(&at(&empty, "192.0.2.1", None)),
            CanaryReason::NotSampled
        );
        // never_require wins over always_require.
        assert_eq!(
            reason(&at(&partner, "10.1.2.3", None)),
            CanaryReason::Exempt
        );
        // Only hybrid routes, and never above an override's cap.
        let c = at(&partner, "192.0.2.1", None);
        for m in [Mode::Off, Mode::Required] {
            assert_eq!(apply(m, None, 100, &p, &c).mode, m);
        }
        assert_eq!(
            apply(Mode::Hybrid, Some(Mode::Hybrid), 100, &p, &c),
            CanaryVerdict {
                mode: Mode::Hybrid,
                reason: CanaryReason::NotApplicable
            }
        );
        assert_eq!(
            apply(Mode::Hybrid, Some(Mode::Required), 0, &p, &c).mode,
            Mode::Required
        );
    }

    #[test]
    fn a_claimed_legacy_user_is_required_but_never_exempted() {
        let p = CanaryPolicy {
            always_require: vec![CallerMatcher::Client("alice".into())],
            never_require: vec![CallerMatcher::Client("bob".into())],
            ..policy()
        };
        let h = HeaderMap::new();
        let claim = |who| Caller {
            headers: &h,
            ip: None,
            client_id: None,
            legacy_user: Some(who),
        };
        let reason = |c: &Caller<'_>| apply(Mode::Hybrid, None, 0, &p, c).reason;
        assert_eq!(reason(&claim("alice")), CanaryReason::Always);
        // Claiming an exempt identity exempts nothing: only a verified client id could.
        assert_eq!(reason(&claim("bob")), CanaryReason::NotSampled);
        assert_eq!(reason(&claim("carol")), CanaryReason::NotSampled);
    }

    #[test]
    fn legacy_user_reads_the_header_or_its_digest() {
        let rule = |hash| LegacyUser {
            header: http::HeaderName::from_static("authorization"),
            hash,
        };
        let h = headers("Bearer abc");
        assert_eq!(
            legacy_user(&rule(LegacyUserHash::None), &h).as_deref(),
            Some("Bearer abc")
        );
        // printf %s 'Bearer abc' | sha256sum
        assert_eq!(
            legacy_user(&rule(LegacyUserHash::Sha256), &h).as_deref(),
            Some(hex::encode(Sha256::digest(b"Bearer abc")).as_str())
        );
        assert_eq!(
            legacy_user(&rule(LegacyUserHash::None), &HeaderMap::new()),
            None
        );
    }
}
