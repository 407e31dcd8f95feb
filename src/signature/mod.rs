//! Pure RFC 9421 (HTTP Message Signatures) and RFC 9530 (Content-Digest) for Ed25519-signed
//! requests: parsing `Signature-Input`/`Signature`, deriving component values, building the
//! signature base, the policy checks and the Ed25519 verify; and signing, for the CLI.
//! No Pingora, no tokio, no clock: `now` is always an argument. Responses are out of scope.

pub mod base;
pub mod components;
pub mod digest;
pub mod fields;
pub mod input;
pub mod query;
pub mod sign;
pub mod target;
pub mod verify;

pub use base::signature_base;
pub use components::{Component, ComponentName, Derived};
pub use fields::FieldSource;
pub use input::{SigParams, SignatureEntry, parse_signatures};
pub use verify::{Requirement, Verified, VerifyOptions, verify};

use ed25519_dalek::VerifyingKey;

/// The field arithmetic curve25519-dalek runs every Ed25519 verify with, on this CPU:
/// `avx512ifma`, `avx2` or `serial` (for `/status` and the start-up line). The crate decides at
/// run time, by CPUID, among the backends it was compiled with; this asks the same question of the
/// same build flag (`.cargo/config.toml` compiles in the AVX-512 IFMA backend on x86_64).
pub fn ed25519_backend() -> &'static str {
    #[cfg(all(
        target_arch = "x86_64",
        not(any(curve25519_dalek_backend = "serial", curve25519_dalek_backend = "fiat"))
    ))]
    {
        if cfg!(curve25519_dalek_backend = "avx512")
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// What verification needs to know about a key id. Implemented by `keys::KeySet`; declared here
/// so the signature core does not depend on where keys come from.
pub trait KeyResolver {
    fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>>;
}

/// A key found for a `keyid`.
#[derive(Clone, Copy, Debug)]
pub struct ResolvedKey<'a> {
    pub key: &'a VerifyingKey,
    pub client_id: &'a str,
    pub revoked: bool,
}

/// The parts of a request that derived components read, borrowed from wherever the request lives
/// (a Pingora header, a parsed raw request). `scheme` and `authority` are what the *client* used:
/// the caller substitutes `public_scheme`/`public_authority` when TLS or a Host rewrite happened
/// before us.
#[derive(Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The request-target exactly as on the request line (origin-, absolute-, authority- or
    /// asterisk-form), percent-encoding untouched.
    pub target: &'a str,
    pub scheme: &'a str,
    /// Host (HTTP/1.1) or `:authority` (HTTP/2) as received; `None` when the request had neither.
    pub authority: Option<&'a str>,
    pub fields: &'a dyn FieldSource,
}

/// The Ed25519 `alg` name of the RFC 9421 registry; the only algorithm sigproxy accepts.
pub const ALG_ED25519: &str = "ed25519";
