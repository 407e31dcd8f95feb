//! RFC 9421 B.1.4 `test-key-ed25519` in every accepted text form, read from the RFC's own
//! key files in tests/fixtures/rfc9421/keys (the raw base64 public key from `keys.json`, the public
//! JWK as the RFC's JWK without its private member `d`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::Signer as _;
use ed25519_dalek::Verifier as _;
use sigproxy::keys::{
    parse_private_key, parse_public_key, private_base64, public_base64, public_jwk, public_pem,
};

const PUB_PEM: &str = include_str!("fixtures/rfc9421/keys/test-key-ed25519.pub.pem");
const PRIV_PEM: &str = include_str!("fixtures/rfc9421/keys/test-key-ed25519.priv.pem");
const PRIV_JWK: &str = include_str!("fixtures/rfc9421/keys/test-key-ed25519.jwk.json");
const P256_PEM: &str = include_str!("fixtures/rfc9421/keys/test-key-ecc-p256.pub.pem");
const P256_JWK: &str = include_str!("fixtures/rfc9421/keys/test-key-ecc-p256.jwk.json");
const KEYS_JSON: &str = include_str!("fixtures/rfc9421/keys/keys.json");

/// Base64 of the 32 raw public key bytes, as `keys.json` records it for B.1.4.
fn pub_b64() -> String {
    let keys: serde_json::Value = serde_json::from_str(KEYS_JSON).unwrap();
    keys["test-key-ed25519"]["raw_public_b64"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The RFC's JWK with the private member removed: the public JWK.
fn pub_jwk() -> String {
    let mut jwk: serde_json::Value = serde_json::from_str(PRIV_JWK).unwrap();
    assert!(jwk.as_object_mut().unwrap().remove("d").is_some());
    jwk.to_string()
}

#[test]
fn all_public_forms_give_the_same_key() {
    let from_b64 = parse_public_key(&pub_b64()).unwrap();
    assert_eq!(parse_public_key(PUB_PEM).unwrap(), from_b64);
    assert_eq!(parse_public_key(&pub_jwk()).unwrap(), from_b64);
    // CRLF files (edited on Windows) too
    assert_eq!(
        parse_public_key(&PUB_PEM.replace('\n', "\r\n")).unwrap(),
        from_b64
    );
}

#[test]
fn private_forms_agree_and_match_the_public_key() {
    let public = parse_public_key(PUB_PEM).unwrap();
    let from_pem = parse_private_key(PRIV_PEM).unwrap();
    let from_jwk = parse_private_key(PRIV_JWK).unwrap();
    assert_eq!(from_pem.as_bytes(), from_jwk.as_bytes());
    assert_eq!(from_pem.verifying_key(), public);
    // the base64 seed form we write is read back as the same key
    let from_seed = parse_private_key(&private_base64(&from_pem)).unwrap();
    assert_eq!(from_seed.as_bytes(), from_pem.as_bytes());
    // and it really is a key pair
    let sig = from_seed.sign(b"sigproxy");
    public.verify(b"sigproxy", &sig).unwrap();
    assert!(public.verify(b"sigproxY", &sig).is_err());
}

#[test]
fn encoders_reproduce_the_rfc_text() {
    let public = parse_public_key(&pub_b64()).unwrap();
    assert_eq!(public_base64(&public), pub_b64().trim());
    assert_eq!(public_pem(&public).trim(), PUB_PEM.trim());
    let jwk: serde_json::Value =
        serde_json::from_str(&public_jwk(&public, Some("test-key-ed25519"))).unwrap();
    let want: serde_json::Value = serde_json::from_str(&pub_jwk()).unwrap();
    for member in ["kty", "crv", "kid", "x"] {
        assert_eq!(jwk[member], want[member], "{member}");
    }
}

#[test]
fn private_jwk_is_refused_as_a_public_key() {
    let e = parse_public_key(PRIV_JWK).unwrap_err().to_string();
    assert!(e.contains("private key (d)"), "{e}");
    let e = parse_public_key(PRIV_PEM).unwrap_err().to_string();
    assert!(e.contains("this is a private key"), "{e}");
}

#[test]
fn p256_keys_are_refused_by_name() {
    let e = parse_public_key(P256_PEM).unwrap_err().to_string();
    assert!(e.contains("only Ed25519"), "{e}");
    let e = parse_public_key(P256_JWK).unwrap_err().to_string();
    assert!(
        e.contains("private key (d)") || e.contains("crv is P-256"),
        "{e}"
    );
    let e = parse_private_key(P256_JWK).unwrap_err().to_string();
    assert_eq!(e, "JWK crv is P-256, only Ed25519 is supported");
}
