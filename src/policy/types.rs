//! The small closed vocabularies of the policy: modes, requirements, key status. Enums, so an
//! invalid mode cannot exist past the loader. No parsing of YAML here beyond the word lists.

use std::fmt;

/// Enforcement mode of a route. Ordered by strictness: `Off < Hybrid < Required`, which is what
/// the override caps compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// Passed on; identity headers stripped; `auth_method: none`.
    Off,
    /// Unsigned requests pass as `legacy`; signed ones must be valid.
    Hybrid,
    /// Every request must carry a valid signature.
    Required,
}

impl Mode {
    pub const NAMES: [(&'static str, Mode); 3] = [
        ("off", Mode::Off),
        ("hybrid", Mode::Hybrid),
        ("required", Mode::Required),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Hybrid => "hybrid",
            Mode::Required => "required",
        }
    }

    /// This mode, but no stricter than `cap`.
    pub fn capped(self, cap: Mode) -> Mode {
        self.min(cap)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// For `signature.nonce` and `signature.body_digest`: the verifier's own type.
pub use crate::signature::Requirement;

/// `signature.public_scheme`: the scheme clients signed when TLS ends before the sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub const NAMES: [(&'static str, Scheme); 2] =
        [("http", Scheme::Http), ("https", Scheme::Https)];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_order_by_strictness_and_cap() {
        assert!(Mode::Off < Mode::Hybrid && Mode::Hybrid < Mode::Required);
        assert_eq!(Mode::Required.capped(Mode::Hybrid), Mode::Hybrid);
        assert_eq!(Mode::Off.capped(Mode::Required), Mode::Off);
    }
}
