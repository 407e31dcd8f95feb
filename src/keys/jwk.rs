//! OKP/Ed25519 JSON Web Keys (RFC 8037 §2): reading `x` (and `d`), writing a public JWK.
//! Other key types are rejected by name; JWK Sets are for the key directory, not for here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Deserialize;

use super::KeyError;
use super::parse::B64_URL;

/// Only the members RFC 8037 gives meaning to; others (`use`, `key_ops`, `kid`, …) are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    crv: Option<String>,
    alg: Option<String>,
    x: Option<String>,
    d: Option<String>,
    keys: Option<serde::de::IgnoredAny>,
}

impl Jwk {
    fn from_text(text: &str) -> Result<Self, KeyError> {
        serde_json::from_str(text).map_err(|e| KeyError::new(format!("invalid JWK JSON: {e}")))
    }

    /// kty/crv/alg say Ed25519. crv is checked first: it names the curve of EC and OKP keys alike.
    fn check_type(&self) -> Result<(), KeyError> {
        if self.kty.is_none() && self.keys.is_some() {
            return Err(KeyError::new(
                "this is a JWK Set (\"keys\": […]); give a single JWK",
            ));
        }
        match self.crv.as_deref() {
            Some("Ed25519") | None => {}
            Some(crv) => {
                return Err(KeyError::new(format!(
                    "JWK crv is {crv}, only Ed25519 is supported"
                )));
            }
        }
        match self.kty.as_deref() {
            Some("OKP") => {}
            Some(kty) => {
                return Err(KeyError::new(format!(
                    "JWK kty is {kty}, only OKP (Ed25519) is supported"
                )));
            }
            None => return Err(KeyError::new("JWK has no kty")),
        }
        if self.crv.is_none() {
            return Err(KeyError::new("JWK has no crv (expected Ed25519)"));
        }
        match self.alg.as_deref() {
            // RFC 8037 says EdDSA; RFC 9864 adds the fully specified Ed25519.
            None | Some("EdDSA") | Some("Ed25519") => Ok(()),
            Some(alg) => Err(KeyError::new(format!("JWK alg is {alg}, expected EdDSA"))),
        }
    }

    fn member_32(name: &str, value: Option<&str>) -> Result<[u8; 32], KeyError> {
        let value = value.ok_or_else(|| KeyError::new(format!("JWK has no {name}")))?;
        let bytes = B64_URL
            .decode(value)
            .map_err(|e| KeyError::new(format!("JWK {name} is not base64url: {e}")))?;
        let got = bytes.len();
        bytes.try_into().map_err(|_| {
            KeyError::new(format!(
                "JWK {name} is not 32 bytes after base64url decoding (got {got})"
            ))
        })
    }

    fn public(&self) -> Result<VerifyingKey, KeyError> {
        let x = Self::member_32("x", self.x.as_deref())?;
        VerifyingKey::from_bytes(&x)
            .map_err(|_| KeyError::new("JWK x is not a valid Ed25519 public key"))
    }
}

/// The `x` bytes of a public JWK whose `kty` and `crv` the caller has checked (OKP, Ed25519):
/// `alg` absent, `EdDSA` or `Ed25519`, no private `d`. The point itself is not decoded here (the
/// key directory decodes a whole set at once, on every core).
pub(super) fn public_x(
    alg: Option<&str>,
    x: Option<&str>,
    has_d: bool,
) -> Result<[u8; 32], KeyError> {
    match alg {
        None | Some("EdDSA") | Some("Ed25519") => {}
        Some(alg) => return Err(KeyError::new(format!("JWK alg is {alg}, expected EdDSA"))),
    }
    if has_d {
        return Err(KeyError::new(
            "JWK contains the private key (d); give the public JWK (without d) here",
        ));
    }
    Jwk::member_32("x", x)
}

pub(super) fn parse_public(text: &str) -> Result<VerifyingKey, KeyError> {
    let jwk = Jwk::from_text(text)?;
    jwk.check_type()?;
    // A private key pasted where public keys are distributed is a leak waiting to happen.
    if jwk.d.is_some() {
        return Err(KeyError::new(
            "JWK contains the private key (d); give the public JWK (without d) here",
        ));
    }
    jwk.public()
}

pub(super) fn parse_private(text: &str) -> Result<SigningKey, KeyError> {
    let jwk = Jwk::from_text(text)?;
    jwk.check_type()?;
    let d = Jwk::member_32("d", jwk.d.as_deref())?;
    let key = SigningKey::from_bytes(&d);
    if jwk.x.is_some() && jwk.public()? != key.verifying_key() {
        return Err(KeyError::new(
            "JWK x is not the public key of d (the two halves belong to different keys)",
        ));
    }
    Ok(key)
}

/// An RFC 8037 public JWK for `key`: `{"kty":"OKP","crv":"Ed25519","x":…}` plus `kid`, `alg`, `use`.
pub fn public_jwk(key: &VerifyingKey, kid: Option<&str>) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("kty".into(), "OKP".into());
    obj.insert("crv".into(), "Ed25519".into());
    if let Some(kid) = kid {
        obj.insert("kid".into(), kid.into());
    }
    obj.insert("alg".into(), "EdDSA".into());
    obj.insert("use".into(), "sig".into());
    obj.insert("x".into(), URL_SAFE_NO_PAD.encode(key.as_bytes()).into());
    serde_json::Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
    const D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";

    fn err_pub(text: &str) -> String {
        parse_public(text).unwrap_err().to_string()
    }

    #[test]
    fn other_key_types_are_named() {
        assert_eq!(
            err_pub(r#"{"kty":"EC","crv":"P-256","x":"qIVY","y":"Mc4n"}"#),
            "JWK crv is P-256, only Ed25519 is supported"
        );
        assert_eq!(
            err_pub(r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#),
            "JWK crv is X25519, only Ed25519 is supported"
        );
        assert_eq!(
            err_pub(r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#),
            "JWK kty is RSA, only OKP (Ed25519) is supported"
        );
        assert_eq!(
            err_pub(&format!(r#"{{"crv":"Ed25519","x":"{X}"}}"#)),
            "JWK has no kty"
        );
        assert_eq!(
            err_pub(&format!(r#"{{"kty":"OKP","x":"{X}"}}"#)),
            "JWK has no crv (expected Ed25519)"
        );
        assert_eq!(
            err_pub(&format!(
                r#"{{"kty":"OKP","crv":"Ed25519","alg":"ES256","x":"{X}"}}"#
            )),
            "JWK alg is ES256, expected EdDSA"
        );
        assert!(err_pub(r#"{"keys":[]}"#).contains("JWK Set"));
        assert!(err_pub("{nope").starts_with("invalid JWK JSON"));
        assert!(err_pub(r#"{"kty":5}"#).starts_with("invalid JWK JSON"));
    }

    #[test]
    fn x_and_d_are_checked() {
        assert_eq!(err_pub(r#"{"kty":"OKP","crv":"Ed25519"}"#), "JWK has no x");
        assert_eq!(
            err_pub(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#),
            "JWK x is not 32 bytes after base64url decoding (got 3)"
        );
        let std_alphabet = X.replace('_', "/").replace('-', "+");
        assert!(
            err_pub(&format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{std_alphabet}"}}"#
            ))
            .starts_with("JWK x is not base64url")
        );
        let with_d = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{X}","d":"{D}"}}"#);
        assert!(err_pub(&with_d).contains("contains the private key"));
        let sk = parse_private(&with_d).unwrap();
        assert_eq!(
            sk.verifying_key(),
            parse_public(&format!(
                r#"{{"kty":"OKP","crv":"Ed25519","x":"{X}","use":"sig","alg":"EdDSA"}}"#
            ))
            .unwrap()
        );
        // d alone is enough; d with someone else's x is not
        parse_private(&format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{D}"}}"#)).unwrap();
        let other_x =
            URL_SAFE_NO_PAD.encode(SigningKey::from_bytes(&[7; 32]).verifying_key().as_bytes());
        let e = parse_private(&format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{other_x}","d":"{D}"}}"#
        ))
        .unwrap_err();
        assert!(e.to_string().contains("different keys"), "{e}");
        assert_eq!(
            parse_private(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{X}"}}"#))
                .unwrap_err()
                .to_string(),
            "JWK has no d"
        );
    }

    #[test]
    fn public_jwk_round_trips() {
        let vk = SigningKey::from_bytes(&[9; 32]).verifying_key();
        for kid in [None, Some("k-1 \"quoted\"")] {
            let text = public_jwk(&vk, kid);
            assert_eq!(parse_public(&text).unwrap(), vk);
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["kid"].as_str(), kid);
            assert_eq!(v["kty"], "OKP");
            assert_eq!(v["crv"], "Ed25519");
            assert!(!text.contains('='), "x must be unpadded base64url: {text}");
        }
    }
}
