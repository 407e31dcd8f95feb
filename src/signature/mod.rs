//! Pure RFC 9421 (HTTP Message Signatures) and RFC 9530 (Content-Digest) for Ed25519 requests:
//! parsing `Signature-Input`/`Signature`, deriving component values, building the signature base,
//! the policy checks and the Ed25519 verify. No Pingora, no tokio, no clock: `now` is an argument.

pub mod digest;

use ed25519_dalek::VerifyingKey;

/// What verification needs to know about a key id. Implemented by `keys::KeySet`; kept here so the
/// signature core does not depend on where keys come from.
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
