//! The `Gate` sigproxy runs: route → effective mode → verify the signature → check the body against
//! `Content-Digest` → remember the nonce → decide (reference §4.2). It reads the live policy
//! snapshot once per request and attaches an [`AuditNote`] for the logging phase; it writes no
//! metric and no log line itself (see `observe`).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderName;

use async_trait::async_trait;

use crate::decision::{Action, AuthMethod, Decision, Event, Outcome, decide};
use crate::error::{Error, ErrorCode};
use crate::keys::KeyDirectory;
use crate::live::{LivePolicy, Snapshot};
use crate::policy::{Mode, OnStoreError};
use crate::proxy::Hop;
use crate::proxy::gate::{Gate, HeadVerdict, Identity, Pass, Reject, RequestView, Verdict};
use crate::ratelimit::{FailureLimiter, RateDecision};
use crate::replay::{Freshness, NonceStore, StoreError};
use crate::rollout::{self, CanaryReason, HaltInfo};
use crate::signature::target::Target;
use crate::signature::{self, Requirement, Verified, digest};

const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
const SIGNATURE: HeaderName = HeaderName::from_static("signature");

/// What the logging phase needs to know about the decision.
#[derive(Clone, Debug)]
pub struct AuditNote {
    pub event: Event,
    pub method: AuthMethod,
    pub mode: Mode,
    pub dry_run: bool,
    /// Dry run let through what would have been rejected.
    pub dry_run_rejection: bool,
    /// Known only when a signature verified (also when its nonce was then refused).
    pub client_id: Option<String>,
    pub key_id: Option<String>,
    pub code: Option<ErrorCode>,
    pub detail: Option<String>,
    pub auth_latency: Duration,
    /// The replay store failed and `on_store_error: allow` let the request through.
    pub store_error_allowed: bool,
    /// The matched route's `path_prefix`, or `default` (a bounded metric label; borrowed for
    /// the default route, so a request no route matches allocates nothing for it).
    pub route: Cow<'static, str>,
    /// Why the canary enforced this request, when it did (`always` or `sampled`).
    pub canary: Option<CanaryReason>,
    /// This request tripped the canary auto-halt.
    pub canary_halt: Option<HaltInfo>,
}

/// The route's verdict inputs, fixed at the head check.
#[derive(Clone)]
struct Route {
    mode: Mode,
    dry_run: bool,
    started: Instant,
    label: Cow<'static, str>,
    canary: Option<CanaryReason>,
}

/// The state carried from the head check to the body check.
pub struct Pending {
    live: Arc<Snapshot>,
    verified: Verified,
    route: Route,
}

pub struct Authenticator {
    runtime: Arc<LivePolicy>,
    replay: Arc<dyn NonceStore>,
    limiter: FailureLimiter,
    clock: fn() -> i64,
    /// `key_directory`, asked for a (coalesced, rate-limited) refetch on an unknown keyid.
    directory: Option<KeyDirectory>,
}

impl Authenticator {
    pub fn new(
        runtime: Arc<LivePolicy>,
        replay: Arc<dyn NonceStore>,
        limiter: FailureLimiter,
        clock: fn() -> i64,
    ) -> Self {
        Self {
            runtime,
            replay,
            limiter,
            clock,
            directory: None,
        }
    }

    /// The canary on a hybrid route: the mode an unsigned request gets, why it was enforced,
    /// and the auto-halt when this request tripped it. Signed requests keep the route's mode
    /// (they are verified either way) but count toward the halt's window as not rejected.
    fn canary(
        &self,
        live: &Snapshot,
        req: &RequestView<'_>,
        mode: Mode,
        signed: bool,
        dry_run: bool,
        now: i64,
    ) -> (Mode, Option<CanaryReason>, Option<HaltInfo>) {
        if mode != Mode::Hybrid {
            return (mode, None, None);
        }
        // The policy's canary with FORCE_SIGNATURE_USERS added.
        let canary = &live.effective.canary;
        let percent = self.runtime.canary_percent(live);
        let legacy = match &canary.legacy_user {
            Some(rule) if !signed => rollout::canary::legacy_user(rule, req.headers),
            _ => None,
        };
        let caller = rollout::Caller {
            headers: req.headers,
            ip: Self::ip_key(req),
            client_id: None,
            legacy_user: legacy.as_deref(),
        };
        let v = rollout::canary::apply(mode, live.effective.cap, percent, canary, &caller);
        let enforced = v.mode == Mode::Required;
        let halt = match &canary.auto_halt {
            Some(rule) if v.sampled() => self.runtime.canary_halt.record(
                &live.halt_key,
                rule,
                percent,
                now.max(0) as u64,
                !signed && !dry_run,
            ),
            _ => None,
        };
        let mode = if signed { mode } else { v.mode };
        (mode, enforced.then_some(v.reason), halt)
    }

    pub fn with_directory(mut self, directory: Option<KeyDirectory>) -> Self {
        self.directory = directory;
        self
    }

    fn ip_key(req: &RequestView<'_>) -> Option<IpAddr> {
        req.client_ip.or(req.peer.map(|p| p.ip()))
    }

    /// Verifies the signature: everything that needs only the head.
    fn verify_head(
        &self,
        live: &Snapshot,
        req: &RequestView<'_>,
        now: i64,
    ) -> Result<Verified, Error> {
        let target = std::str::from_utf8(req.target)
            .map_err(|_| Error::new(ErrorCode::SignatureInvalid, "request target is not UTF-8"))?;
        let sig = &live.policy.file.signature;
        let scheme = sig.public_scheme.map_or(req.scheme, |s| s.as_str());
        let authority = match &sig.public_authority {
            Some(a) => Some(a.as_str()),
            None => req.authority.and_then(|a| std::str::from_utf8(a).ok()),
        };
        let view = signature::RequestView {
            method: req.method.as_str(),
            target,
            scheme,
            authority,
            fields: req.headers,
        };
        signature::verify(
            &view,
            req.announced_body != Some(0),
            live.verify_options(),
            &live.keys,
            now,
        )
    }

    /// After the signature (and digest) held: the nonce must be new.
    async fn check_replay(&self, live: &Snapshot, v: &Verified, now: i64) -> Result<bool, Error> {
        let opts = live.verify_options();
        let Some(nonce) = v.nonce().filter(|_| opts.nonce != Requirement::Off) else {
            return Ok(false);
        };
        let ttl = Duration::from_secs(opts.max_age_seconds + opts.clock_skew_seconds);
        match self
            .replay
            .check_and_remember(v.key_id(), nonce, ttl, now.max(0) as u64)
            .await
        {
            Ok(Freshness::Fresh) => Ok(false),
            Ok(Freshness::Replayed) => Err(Error::new(
                ErrorCode::NonceReplayed,
                format!(
                    "nonce already used with key \"{}\" within max_age + skew",
                    v.key_id()
                ),
            )),
            // A full memory store fails closed whatever on_store_error says: forgetting early
            // would let replays through.
            Err(e @ StoreError::Full { .. }) => Err(e.into()),
            Err(e) if live.policy.file.replay.on_store_error == OnStoreError::Allow => {
                tracing::error!(error = %e, "replay store failed; on_store_error=allow lets the request through unchecked");
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn finish(
        &self,
        live: &Snapshot,
        req: &RequestView<'_>,
        route: Route,
        verified: Result<Verified, Error>,
        now: i64,
    ) -> Verdict<AuditNote> {
        let Route {
            mode,
            dry_run,
            started,
            label,
            canary,
        } = route;
        let mut store_error_allowed = false;
        let result = match verified {
            Ok(v) => match self.check_replay(live, &v, now).await {
                Ok(allowed) => {
                    store_error_allowed = allowed;
                    Ok(v)
                }
                Err(e) => Err((e, Some(v))),
            },
            Err(e) => Err((e, None)),
        };
        let outcome = match &result {
            Ok(v) => Outcome::Valid(v),
            Err((e, _)) => Outcome::Invalid(e),
        };
        let decision = decide(mode, dry_run, outcome);
        if let (Err((e, _)), Some(ip)) = (&result, Self::ip_key(req))
            && e.code.status() == 401
        {
            self.limiter.record_failure(
                ip,
                now.max(0) as u64,
                live.policy.file.failure_rate_limit.per_minute,
            );
        }
        let known = match &result {
            Ok(v) | Err((_, Some(v))) => Some(v),
            Err((_, None)) => None,
        };
        let mut note = note(&decision, mode, dry_run, AuthMethod::Signature, started);
        note.client_id = known.map(|v| v.client_id().to_owned());
        note.key_id = known.map(|v| v.key_id().to_owned());
        note.store_error_allowed = store_error_allowed;
        note.route = label;
        note.canary = canary;
        to_verdict(live, req, decision, note)
    }
}

fn note(
    d: &Decision<'_>,
    mode: Mode,
    dry_run: bool,
    method: AuthMethod,
    started: Instant,
) -> AuditNote {
    let detail = match &d.action {
        Action::Reject(e) => Some(e.detail.to_string()),
        _ => None,
    };
    AuditNote {
        event: d.event,
        method,
        mode,
        dry_run,
        dry_run_rejection: d.dry_run_rejection,
        client_id: None,
        key_id: None,
        code: d.code,
        detail,
        auth_latency: started.elapsed(),
        store_error_allowed: false,
        route: Cow::Borrowed(""),
        canary: None,
        canary_halt: None,
    }
}

fn to_verdict(
    live: &Snapshot,
    req: &RequestView<'_>,
    d: Decision<'_>,
    mut note: AuditNote,
) -> Verdict<AuditNote> {
    match d.action {
        Action::Pass { auth, identity } => {
            if note.method != AuthMethod::Signature {
                note.method = auth;
            }
            Verdict::Pass(Pass {
                identity: identity.and_then(Identity::from_verified),
                auth_method: auth,
                strip: overrides_to_strip(
                    &live.policy.file.identity.strip_override_headers,
                    req.headers,
                    identity,
                ),
                note,
            })
        }
        Action::Reject(error) => {
            let accept_signature =
                (error.code.status() == 401).then(|| live.accept_signature.clone());
            let mut r = Reject::new(error, note);
            r.accept_signature = accept_signature;
            Verdict::Reject(r)
        }
    }
}

/// The request's override headers (`identity.strip_override_headers`, matched in any case and
/// `_`/`-` spelling) that no verified signature covers, named exactly as they arrived. A header
/// counts as covered only under its own exact name: covering `x-http-method-override` does not
/// vouch for an `x_http_method_override` sent beside it.
fn overrides_to_strip(
    names: &[HeaderName],
    headers: &http::HeaderMap,
    verified: Option<&Verified>,
) -> Vec<HeaderName> {
    if names.is_empty() {
        return Vec::new();
    }
    headers
        .keys()
        .filter(|k| names.iter().any(|n| same_spelling(k.as_str(), n.as_str())))
        .filter(|k| !verified.is_some_and(|v| v.covers_field(k.as_str())))
        .cloned()
        .collect()
}

/// Header names equal after lowercasing and `_` → `-` (how proxies and CGI-style frameworks
/// fold them). No allocation: this runs over every header of every request.
fn same_spelling(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// The path a route is matched on: the target's path, whatever its form.
fn route_path(target: &[u8]) -> &str {
    let t = std::str::from_utf8(target).unwrap_or("/");
    Target::parse(t).and_then(|t| t.path()).unwrap_or(t)
}

#[async_trait]
impl Gate for Authenticator {
    type Snapshot = Arc<Snapshot>;
    type Pending = Pending;
    type Note = AuditNote;

    fn snapshot(&self) -> Arc<Snapshot> {
        self.runtime.snapshot()
    }

    fn hop(live: &Arc<Snapshot>) -> &Hop {
        &live.hop
    }

    async fn check_head(
        &self,
        live: &Arc<Snapshot>,
        req: &RequestView<'_>,
    ) -> HeadVerdict<AuditNote, Pending> {
        let started = Instant::now();
        let now = (self.clock)();
        let mut live = live.clone();
        let found = live.effective.route_for(req.method, route_path(req.target));
        let label = found.route.map_or(Cow::Borrowed("default"), |r| {
            Cow::Owned(r.path_prefix.clone())
        });
        let signed =
            req.headers.contains_key(&SIGNATURE_INPUT) || req.headers.contains_key(&SIGNATURE);
        let dry_run = found.dry_run;
        let (mode, canary, halt) = self.canary(&live, req, found.mode, signed, dry_run, now);
        let route = Route {
            mode,
            dry_run,
            started,
            label,
            canary,
        };
        if mode == Mode::Off || !signed {
            let d = decide(mode, dry_run, Outcome::Unsigned);
            // Unsigned on a verifying route is a legacy caller, even when refused.
            let method = if mode == Mode::Off {
                AuthMethod::None
            } else {
                AuthMethod::Legacy
            };
            let mut n = note(&d, mode, dry_run, method, started);
            n.route = route.label;
            n.canary = canary;
            n.canary_halt = halt;
            return HeadVerdict::Decided(to_verdict(&live, req, d, n));
        }
        if let Some(ip) = Self::ip_key(req)
            && let RateDecision::Limited { retry_after_secs } = self.limiter.check(
                ip,
                now.max(0) as u64,
                live.policy.file.failure_rate_limit.per_minute,
            )
            && !dry_run
        {
            let e = Error::new(
                ErrorCode::RateLimited,
                format!("{ip} is over failure_rate_limit.per_minute"),
            );
            let d = decide(Mode::Required, false, Outcome::Invalid(&e));
            let mut n = note(&d, mode, dry_run, AuthMethod::Signature, started);
            n.route = route.label.clone();
            let mut v = to_verdict(&live, req, d, n);
            if let Verdict::Reject(r) = &mut v {
                r.retry_after = Some(retry_after_secs);
                r.accept_signature = None;
            }
            return HeadVerdict::Decided(v);
        }
        let mut verified = self.verify_head(&live, req, now);
        if let (Err(e), Some(dir)) = (&verified, &self.directory)
            && e.code == ErrorCode::KeyNotFound
            // Boxed: the fetch (an HTTP client) is a large future, and inline it made every
            // `check_head` future ~19 KB, copied into its box on every request.
            && Box::pin(dir.refetch_for_unknown_keyid()).await
        {
            // The directory just published new keys (and swapped the snapshot): a key registered
            // a moment ago works on its first request.
            live = self.runtime.snapshot();
            verified = self.verify_head(&live, req, now);
        }
        match verified {
            Ok(v) if v.covers_digest() => HeadVerdict::NeedBody(Pending {
                live,
                verified: v,
                route,
            }),
            result => HeadVerdict::Decided(self.finish(&live, req, route, result, now).await),
        }
    }

    async fn check_body(
        &self,
        _snapshot: &Arc<Snapshot>,
        req: &RequestView<'_>,
        body: &[u8],
        pending: Pending,
    ) -> Verdict<AuditNote> {
        let now = (self.clock)();
        // The snapshot of the head check: a key the directory added for this request is in it.
        let Pending {
            live,
            verified,
            route,
        } = pending;
        let checked = digest::check(req.headers, body).map(|()| verified);
        self.finish(&live, req, route, checked, now).await
    }

    fn body_refused(&self, pending: Pending, error: &Error) -> AuditNote {
        let Pending {
            verified, route, ..
        } = pending;
        // Refused whatever the mode: a body that cannot be read whole cannot be checked.
        let d = decide(Mode::Required, false, Outcome::Invalid(error));
        let mut n = note(
            &d,
            route.mode,
            route.dry_run,
            AuthMethod::Signature,
            route.started,
        );
        n.client_id = Some(verified.client_id().to_owned());
        n.key_id = Some(verified.key_id().to_owned());
        n.route = route.label;
        n.canary = route.canary;
        n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::IdentityPolicy;
    use http::HeaderValue;

    fn headers(names: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for n in names {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("DELETE"),
            );
        }
        h
    }

    fn verified(covered: &[&str]) -> Verified {
        crate::signature::verify::verified_for_tests(covered)
    }

    fn names(v: &[HeaderName]) -> Vec<&str> {
        v.iter().map(HeaderName::as_str).collect()
    }

    #[test]
    fn override_headers_are_stripped_in_every_spelling_unless_covered() {
        let list = IdentityPolicy::default().strip_override_headers;
        let h = headers(&[
            "X-HTTP-Method-Override",
            "x_http_method_override",
            "X-Original-URL",
            "x_rewrite_url",
            "X-Method-Override",
            "X-HTTP-Method",
            "X-Other",
        ]);
        let stripped = overrides_to_strip(&list, &h, None);
        let mut all = names(&stripped);
        all.sort_unstable();
        assert_eq!(
            all,
            [
                "x-http-method",
                "x-http-method-override",
                "x-method-override",
                "x-original-url",
                "x_http_method_override",
                "x_rewrite_url",
            ]
        );
        // Covered under its exact name: kept; the `_` spelling beside it is not covered.
        let v = verified(&["x-http-method-override"]);
        let left = overrides_to_strip(&list, &h, Some(&v));
        assert!(!names(&left).contains(&"x-http-method-override"));
        assert!(names(&left).contains(&"x_http_method_override"));
        // An empty list strips nothing; a configured name is matched in any spelling.
        assert!(overrides_to_strip(&[], &h, None).is_empty());
        let custom = [HeaderName::from_static("x_other")];
        assert_eq!(names(&overrides_to_strip(&custom, &h, None)), ["x-other"]);
    }

    #[test]
    fn spelling_fold() {
        assert!(same_spelling("x_a-b", "X-A_B"));
        assert!(!same_spelling("x-ab", "x-a"));
        assert!(!same_spelling("x.ab", "x-ab"));
    }
}
