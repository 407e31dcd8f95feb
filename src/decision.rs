//! The per-request decision of reference §4.1 as a pure function: (effective mode, dry run, what
//! verification found) → pass with an identity, pass as legacy/none, or reject with a code.
//! No I/O, no clock, no Pingora: the proxy gathers the inputs and carries out the answer.

use crate::error::{Error, ErrorCode};
use crate::policy::Mode;
use crate::signature::Verified;

/// What verification found (after the digest and replay checks, when they applied).
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// No `Signature-Input` and no `Signature`.
    Unsigned,
    Valid(&'a Verified),
    Invalid(&'a Error),
}

/// How the caller was authenticated; the value of the auth-method identity header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    Signature,
    Legacy,
    None,
}

impl AuthMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Legacy => "legacy",
            Self::None => "none",
        }
    }
}

/// The audit event (reference §7.1 `event_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    SignatureAuthSuccess,
    SignatureAuthFailure,
    LegacyPass,
    Exempt,
}

impl Event {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignatureAuthSuccess => "signature_auth_success",
            Self::SignatureAuthFailure => "signature_auth_failure",
            Self::LegacyPass => "legacy_pass",
            Self::Exempt => "exempt",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Action<'a> {
    /// Forward. `identity` is `Some` only for a verified signature: the proof the identity
    /// headers are made from.
    Pass {
        auth: AuthMethod,
        identity: Option<&'a Verified>,
    },
    Reject(Error),
}

#[derive(Clone, Debug)]
pub struct Decision<'a> {
    pub action: Action<'a>,
    pub event: Event,
    /// The code that was (or, in dry run, would have been) answered; `None` for a clean pass.
    pub code: Option<ErrorCode>,
    /// In dry run, the request was let through although it would have been rejected.
    pub dry_run_rejection: bool,
}

/// Whether a request on a route in `mode` needs its signature checked at all.
pub fn needs_verification(mode: Mode) -> bool {
    mode != Mode::Off
}

/// Reference §4.1. `mode` is the route's effective mode after overrides and canary.
pub fn decide(mode: Mode, dry_run: bool, outcome: Outcome<'_>) -> Decision<'_> {
    let (action, event) = match (mode, outcome) {
        (Mode::Off, _) => (
            Action::Pass {
                auth: AuthMethod::None,
                identity: None,
            },
            Event::Exempt,
        ),
        (_, Outcome::Valid(v)) => (
            Action::Pass {
                auth: AuthMethod::Signature,
                identity: Some(v),
            },
            Event::SignatureAuthSuccess,
        ),
        (_, Outcome::Invalid(e)) => (Action::Reject(e.clone()), Event::SignatureAuthFailure),
        (Mode::Hybrid, Outcome::Unsigned) => (
            Action::Pass {
                auth: AuthMethod::Legacy,
                identity: None,
            },
            Event::LegacyPass,
        ),
        (Mode::Required, Outcome::Unsigned) => (
            Action::Reject(Error::new(
                ErrorCode::SignatureMissing,
                "route requires a signature; none was sent",
            )),
            Event::SignatureAuthFailure,
        ),
    };
    match action {
        Action::Reject(e) if dry_run => Decision {
            code: Some(e.code),
            action: Action::Pass {
                auth: AuthMethod::Legacy,
                identity: None,
            },
            event,
            dry_run_rejection: true,
        },
        Action::Reject(e) => Decision {
            code: Some(e.code),
            action: Action::Reject(e),
            event,
            dry_run_rejection: false,
        },
        pass => Decision {
            action: pass,
            event,
            code: None,
            dry_run_rejection: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified() -> Verified {
        crate::signature::verify::verified_for_tests(&[])
    }

    fn bad() -> Error {
        Error::new(ErrorCode::SignatureInvalid, "x")
    }

    fn summary(d: &Decision<'_>) -> (&'static str, Option<ErrorCode>, Event) {
        let what = match &d.action {
            Action::Pass {
                auth,
                identity: Some(_),
            } => {
                assert_eq!(*auth, AuthMethod::Signature);
                "identity"
            }
            Action::Pass {
                auth,
                identity: None,
            } => auth.as_str(),
            Action::Reject(_) => "reject",
        };
        (what, d.code, d.event)
    }

    #[test]
    fn spec_table() {
        let v = verified();
        let e = bad();
        use ErrorCode::*;
        use Event::*;
        type Row<'a> = (Mode, Outcome<'a>, (&'static str, Option<ErrorCode>, Event));
        let rows: [Row<'_>; 9] = [
            (Mode::Off, Outcome::Unsigned, ("none", None, Exempt)),
            (Mode::Off, Outcome::Valid(&v), ("none", None, Exempt)),
            (Mode::Off, Outcome::Invalid(&e), ("none", None, Exempt)),
            (
                Mode::Hybrid,
                Outcome::Unsigned,
                ("legacy", None, LegacyPass),
            ),
            (
                Mode::Hybrid,
                Outcome::Valid(&v),
                ("identity", None, SignatureAuthSuccess),
            ),
            (
                Mode::Hybrid,
                Outcome::Invalid(&e),
                ("reject", Some(SignatureInvalid), SignatureAuthFailure),
            ),
            (
                Mode::Required,
                Outcome::Unsigned,
                ("reject", Some(SignatureMissing), SignatureAuthFailure),
            ),
            (
                Mode::Required,
                Outcome::Valid(&v),
                ("identity", None, SignatureAuthSuccess),
            ),
            (
                Mode::Required,
                Outcome::Invalid(&e),
                ("reject", Some(SignatureInvalid), SignatureAuthFailure),
            ),
        ];
        for (mode, outcome, want) in rows {
            assert_eq!(
                summary(&decide(mode, false, outcome)),
                want,
                "{mode:?} {outcome:?}"
            );
        }
    }

    #[test]
    fn dry_run_never_rejects_and_never_grants_identity() {
        let e = bad();
        for (mode, outcome) in [
            (Mode::Required, Outcome::Unsigned),
            (Mode::Hybrid, Outcome::Invalid(&e)),
        ] {
            let d = decide(mode, true, outcome);
            assert!(matches!(
                d.action,
                Action::Pass {
                    auth: AuthMethod::Legacy,
                    identity: None
                }
            ));
            assert!(d.dry_run_rejection);
            assert!(d.code.is_some());
            assert_eq!(d.event, Event::SignatureAuthFailure);
        }
        let v = verified();
        let d = decide(Mode::Required, true, Outcome::Valid(&v));
        assert!(
            matches!(
                d.action,
                Action::Pass {
                    identity: Some(_),
                    ..
                }
            ) && !d.dry_run_rejection
        );
    }
}
