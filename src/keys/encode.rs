//! Keys → text, for keygen and for printing: base64 seed, base64 raw public key, SPKI PEM.
//! The JWK writer lives with the JWK reader in `jwk.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::KeyError;

/// DER of `SubjectPublicKeyInfo { AlgorithmIdentifier { id-Ed25519 (1.3.101.112) }, BIT STRING }`
/// up to the 32 key bytes (RFC 8410 §4). Fixed for Ed25519, so the encoder cannot fail.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A fresh key from the operating system's CSPRNG.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| KeyError::new(format!("the system random generator failed: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The private key file format: standard base64 (padded) of the 32-byte seed.
pub fn private_base64(key: &SigningKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// Standard base64 (padded) of the 32 raw public key bytes.
pub fn public_base64(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// `-----BEGIN PUBLIC KEY-----` SPKI PEM, LF line endings, trailing newline.
pub fn public_pem(key: &VerifyingKey) -> String {
    let mut der = Vec::with_capacity(44);
    der.extend_from_slice(&SPKI_ED25519_PREFIX);
    der.extend_from_slice(key.as_bytes());
    // 44 DER bytes are 60 base64 characters: one PEM line (max 64).
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{parse_private_key, parse_public_key};
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    #[test]
    fn generated_keys_differ_and_round_trip() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
        let back = parse_private_key(&private_base64(&a)).unwrap();
        assert_eq!(back.as_bytes(), a.as_bytes());
        let vk = a.verifying_key();
        assert_eq!(parse_public_key(&public_base64(&vk)).unwrap(), vk);
        assert_eq!(parse_public_key(&public_pem(&vk)).unwrap(), vk);
    }

    #[test]
    fn pem_matches_the_pkcs8_crate() {
        let vk = generate().unwrap().verifying_key();
        assert_eq!(
            public_pem(&vk),
            vk.to_public_key_pem(LineEnding::LF).unwrap()
        );
    }
}
