//! Fuzz key material parsing: a JWK Set as served by the key directory (RFC 7517 / 8037), and a
//! single key as written in a policy or key file (base64, SPKI/PKCS#8 PEM, OKP JWK).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::keys::{self, fuzzing};

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::jwks(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keys::parse_public_key(text);
        if let Ok(k) = keys::parse_private_key(text) {
            // A private key that parses has a public half that parses back to itself.
            let public = keys::public_base64(&k.verifying_key());
            assert_eq!(
                keys::parse_public_key(&public).ok(),
                Some(k.verifying_key()),
                "round trip"
            );
        }
    }
});
