//! Ed25519 key material and key records: parsing base64 / PEM / JWK text, encoding for keygen,
//! compact per-source `KeyTable`s, the `KeySet` the verifier resolves `keyid`s in, and the remote
//! JWKS key directory (`directory`). It does not read config files; loaders build `KeyTable`s
//! (or, for a few keys, `KeyRecord`s for `KeySet::new`).

mod directory;
mod encode;
mod http_get;
mod jwk;
mod jwks;
mod parse;
mod scratch;
mod set;
mod table;

pub use directory::{ApplyFn, DirectoryConfig, DirectoryStatus, FetchOutcome, KeyDirectory};
pub use encode::{generate, private_base64, public_base64, public_pem};
pub use jwk::public_jwk;
pub(crate) use parse::base64_32;
pub use parse::{parse_private_key, parse_public_key};
pub use set::{Duplicates, KeyIndex, KeyRecord, KeySet, KeySource, KeyStatus};
pub use table::{
    KeyPos, KeyRef, KeyTable, KeyTableBuilder, decode_batch_while, decode_points,
    decode_points_while, point_slots, undecoded,
};

use std::fmt;

/// Entry points for the cargo-fuzz targets in `fuzz/` (not an API).
#[doc(hidden)]
pub mod fuzzing {
    /// The key directory's HTTP response reader over `data`, handed to it at most `step` bytes
    /// per read and then closed: status, ETag and body, or why not.
    pub type Response = (u16, Option<String>, Vec<u8>);

    pub fn http_response(data: &[u8], step: usize, max_body: usize) -> Result<Response, String> {
        super::http_get::read_from_bytes(data, step, max_body)
            .map(|r| (r.status, r.etag, r.body.to_vec()))
    }

    /// A JWKS document as the key directory reads it: usable records and skipped keys.
    pub fn jwks(body: &[u8]) -> Result<(usize, usize), String> {
        super::jwks::parse_jwks(body, "http://fuzz/keys.jwks")
            .map(|p| (p.index.len(), p.skipped.len()))
    }
}

/// Why key text could not be used; the Display names the problem in terms an operator can act on
/// ("not 32 bytes after base64 decoding (got 31)").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(String);

impl KeyError {
    pub(crate) fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}
