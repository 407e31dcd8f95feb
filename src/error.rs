//! The one error type of sigproxy's request path: a stable code (reference §4.5) plus a detail that
//! names exactly what was wrong. Status, code string and public message live here and nowhere else.

use std::borrow::Cow;
use std::fmt;

/// Stable machine-readable rejection codes (reference §4.5). The string forms never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    SignatureMissing,
    SignatureMalformed,
    KeyNotFound,
    KeyRevoked,
    KeyIdMismatch,
    TimestampOutOfWindow,
    TimestampTooOld,
    NonceMissing,
    NonceReplayed,
    ComponentsMissing,
    DigestMissing,
    DigestMismatch,
    SignatureInvalid,
    BodyTooLarge,
    RateLimited,
    ReplayStoreUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// The request itself is malformed (framing, a chunk size that overflows, a head Pingora
    /// cannot parse): the client's error, answered and the connection closed.
    BadRequest,
    /// The client stopped sending its body for longer than `limits.body_timeout_seconds`.
    RequestTimeout,
    /// Something on our side failed that is neither the client's nor the upstream's fault.
    ProxyError,
}

impl ErrorCode {
    /// Every code, in the order of reference §4.5; used to pre-register bounded metric labels.
    pub const ALL: [ErrorCode; 21] = [
        Self::SignatureMissing,
        Self::SignatureMalformed,
        Self::KeyNotFound,
        Self::KeyRevoked,
        Self::KeyIdMismatch,
        Self::TimestampOutOfWindow,
        Self::TimestampTooOld,
        Self::NonceMissing,
        Self::NonceReplayed,
        Self::ComponentsMissing,
        Self::DigestMissing,
        Self::DigestMismatch,
        Self::SignatureInvalid,
        Self::BodyTooLarge,
        Self::RateLimited,
        Self::ReplayStoreUnavailable,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::BadRequest,
        Self::RequestTimeout,
        Self::ProxyError,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignatureMissing => "SIGNATURE_MISSING",
            Self::SignatureMalformed => "SIGNATURE_MALFORMED",
            Self::KeyNotFound => "KEY_NOT_FOUND",
            Self::KeyRevoked => "KEY_REVOKED",
            Self::KeyIdMismatch => "KEY_ID_MISMATCH",
            Self::TimestampOutOfWindow => "TIMESTAMP_OUT_OF_WINDOW",
            Self::TimestampTooOld => "TIMESTAMP_TOO_OLD",
            Self::NonceMissing => "NONCE_MISSING",
            Self::NonceReplayed => "NONCE_REPLAYED",
            Self::ComponentsMissing => "COMPONENTS_MISSING",
            Self::DigestMissing => "DIGEST_MISSING",
            Self::DigestMismatch => "DIGEST_MISMATCH",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::BodyTooLarge => "BODY_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::ReplayStoreUnavailable => "REPLAY_STORE_UNAVAILABLE",
            Self::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Self::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            Self::BadRequest => "BAD_REQUEST",
            Self::RequestTimeout => "REQUEST_TIMEOUT",
            Self::ProxyError => "PROXY_ERROR",
        }
    }

    /// HTTP status the code is answered with.
    pub const fn status(self) -> u16 {
        match self {
            Self::BodyTooLarge => 413,
            Self::RateLimited => 429,
            Self::ReplayStoreUnavailable => 503,
            Self::UpstreamUnavailable => 502,
            Self::UpstreamTimeout => 504,
            Self::BadRequest => 400,
            Self::RequestTimeout => 408,
            Self::ProxyError => 500,
            _ => 401,
        }
    }

    /// The fixed public message of reference §4.5 (what a client sees in the JSON body).
    pub const fn message(self) -> &'static str {
        match self {
            Self::SignatureMissing => "Required signature headers missing",
            Self::SignatureMalformed => "Malformed signature header",
            Self::KeyNotFound => "Public key not found for client",
            Self::KeyRevoked => "Key has been revoked",
            Self::KeyIdMismatch => "Key ID mismatch (alg or client does not match the key)",
            Self::TimestampOutOfWindow => "Timestamp outside tolerance window",
            Self::TimestampTooOld => "Request timestamp too old (or `expires` passed)",
            Self::NonceMissing => "Nonce required",
            Self::NonceReplayed => "Nonce already used",
            Self::ComponentsMissing => "Signature does not cover required components",
            Self::DigestMissing => "Body present but content-digest not signed",
            Self::DigestMismatch => "Body does not match Content-Digest",
            Self::SignatureInvalid => "Signature verification failed",
            Self::BodyTooLarge => "Request body exceeds max_body_bytes",
            Self::RateLimited => "Too many failed authentications",
            Self::ReplayStoreUnavailable => "Replay store unavailable",
            Self::UpstreamUnavailable => "Upstream unavailable",
            Self::UpstreamTimeout => "Upstream timed out",
            Self::BadRequest => "Malformed request",
            Self::RequestTimeout => "Request body not received in time",
            Self::ProxyError => "Request could not be proxied",
        }
    }

    pub fn from_str_code(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection: the stable code plus a detail naming what was wrong ("component \"@path\" is not
/// covered", "created is 412 s old, max_age_seconds is 300", "unknown keyid \"abc\"").
/// The detail goes to audit lines and the offline `verify` output; the JSON error body sent to a
/// client carries the code's fixed message, so the detail never leaks policy internals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub detail: Cow<'static, str>,
}

impl Error {
    pub fn new(code: ErrorCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert_eq!(ErrorCode::from_str_code(c.as_str()), Some(c));
        }
        assert_eq!(ErrorCode::from_str_code("NOPE"), None);
    }

    #[test]
    fn statuses_follow_spec() {
        assert_eq!(ErrorCode::NonceReplayed.status(), 401);
        assert_eq!(ErrorCode::BodyTooLarge.status(), 413);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::ReplayStoreUnavailable.status(), 503);
        assert_eq!(ErrorCode::UpstreamUnavailable.status(), 502);
        assert_eq!(ErrorCode::UpstreamTimeout.status(), 504);
    }
}
