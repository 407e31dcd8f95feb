//! Text → Ed25519 key, with the format detected from the text itself: PEM, JWK, or base64.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::pkcs8::spki::DecodePublicKey as _;
use ed25519_dalek::pkcs8::{self, DecodePrivateKey as _};
use ed25519_dalek::{SigningKey, VerifyingKey};

use super::{KeyError, jwk};

/// Padded or unpadded input both accepted: key files are written by many tools.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const B64_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
pub(super) const B64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

enum Form<'a> {
    Pem { label: &'a str },
    Jwk,
    Base64,
}

fn detect(text: &str) -> Form<'_> {
    if let Some(rest) = text.strip_prefix("-----BEGIN ") {
        let label = rest.split_once("-----").map_or(rest, |(l, _)| l);
        Form::Pem { label }
    } else if text.starts_with('{') {
        Form::Jwk
    } else {
        Form::Base64
    }
}

/// Base64 (standard or url-safe alphabet, padded or not) of exactly 32 bytes.
pub(crate) fn base64_32(text: &str) -> Result<[u8; 32], KeyError> {
    let engine = if text.bytes().any(|b| b == b'-' || b == b'_') {
        &B64_URL
    } else {
        &B64_STANDARD
    };
    // Base64 of 32 bytes is 43 or 44 characters: decoded on the stack, nothing allocated (a
    // million keys load through here). Longer text takes the general path for its error.
    if text.len() <= 64 {
        let mut buf = [0u8; 48];
        match engine.decode_slice(text, &mut buf) {
            Ok(n) => {
                return buf
                    .get(..n)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        KeyError::new(format!("not 32 bytes after base64 decoding (got {n})"))
                    });
            }
            Err(base64::DecodeSliceError::DecodeError(e)) => {
                return Err(KeyError::new(format!("not a PEM, JWK or base64 key: {e}")));
            }
            // 48 bytes hold 64 characters' worth; kept for the general path all the same.
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {}
        }
    }
    let bytes = engine
        .decode(text)
        .map_err(|e| KeyError::new(format!("not a PEM, JWK or base64 key: {e}")))?;
    let got = bytes.len();
    bytes
        .try_into()
        .map_err(|_| KeyError::new(format!("not 32 bytes after base64 decoding (got {got})")))
}

fn spki_error(e: pkcs8::spki::Error) -> KeyError {
    match e {
        pkcs8::spki::Error::OidUnknown { oid } => KeyError::new(format!(
            "SPKI PEM key algorithm is {oid}, only Ed25519 (1.3.101.112) is supported"
        )),
        e => KeyError::new(format!("invalid SPKI PEM public key: {e}")),
    }
}

fn pkcs8_error(e: pkcs8::Error) -> KeyError {
    match e {
        pkcs8::Error::PublicKey(pkcs8::spki::Error::OidUnknown { oid }) => KeyError::new(format!(
            "PKCS#8 PEM key algorithm is {oid}, only Ed25519 (1.3.101.112) is supported"
        )),
        e => KeyError::new(format!("invalid PKCS#8 PEM private key: {e}")),
    }
}

/// A public key from base64 of the 32 raw bytes, an SPKI PEM, or an OKP/Ed25519 JWK (RFC 8037).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let text = text.trim();
    match detect(text) {
        Form::Pem {
            label: "PUBLIC KEY",
        } => VerifyingKey::from_public_key_pem(text).map_err(spki_error),
        Form::Pem { label } if label.contains("PRIVATE KEY") => Err(KeyError::new(format!(
            "this is a private key (PEM {label}); a public key is expected here"
        ))),
        Form::Pem { label } => Err(KeyError::new(format!(
            "PEM {label:?} is not supported for a public key; expected \"PUBLIC KEY\" (SPKI)"
        ))),
        Form::Jwk => jwk::parse_public(text),
        Form::Base64 => VerifyingKey::from_bytes(&base64_32(text)?)
            .map_err(|_| KeyError::new("the 32 bytes are not a valid Ed25519 public key")),
    }
}

/// A private key from base64 of the 32-byte seed, a PKCS#8 PEM, or an OKP/Ed25519 JWK with `d`.
pub fn parse_private_key(text: &str) -> Result<SigningKey, KeyError> {
    let text = text.trim();
    match detect(text) {
        Form::Pem {
            label: "PRIVATE KEY",
        } => SigningKey::from_pkcs8_pem(text).map_err(pkcs8_error),
        Form::Pem { label } if label.contains("ENCRYPTED") => Err(KeyError::new(
            "encrypted PKCS#8 keys are not supported; decrypt it first",
        )),
        Form::Pem {
            label: "PUBLIC KEY",
        } => Err(KeyError::new(
            "this is a public key (PEM PUBLIC KEY); a private key is expected here",
        )),
        Form::Pem { label } => Err(KeyError::new(format!(
            "PEM {label:?} is not supported for a private key; expected \"PRIVATE KEY\" (PKCS#8)"
        ))),
        Form::Jwk => jwk::parse_private(text),
        Form::Base64 => Ok(SigningKey::from_bytes(&base64_32(text)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

    fn err_pub(text: &str) -> String {
        parse_public_key(text).unwrap_err().to_string()
    }

    #[test]
    fn base64_variants_all_decode_to_the_same_key() {
        let want = parse_public_key(RAW).unwrap();
        let url = RAW.replace('+', "-").replace('/', "_");
        for text in [
            RAW.to_owned(),
            RAW.trim_end_matches('=').to_owned(),
            url.clone(),
            url.trim_end_matches('=').to_owned(),
            format!("  {RAW}\n"),
        ] {
            assert_eq!(parse_public_key(&text).unwrap(), want, "{text:?}");
        }
    }

    #[test]
    fn wrong_lengths_and_garbage_are_named() {
        // 31 bytes
        assert_eq!(
            err_pub("JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0Q=="),
            "not 32 bytes after base64 decoding (got 31)"
        );
        assert_eq!(
            parse_private_key(&base64::engine::general_purpose::STANDARD.encode([1u8; 64]))
                .unwrap_err()
                .to_string(),
            "not 32 bytes after base64 decoding (got 64)"
        );
        assert!(err_pub("not a key!").starts_with("not a PEM, JWK or base64 key"));
        assert!(err_pub("").contains("got 0"));
    }

    #[test]
    fn pem_labels_are_checked() {
        let p256 = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf\nw0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==\n-----END PUBLIC KEY-----\n";
        let e = err_pub(p256);
        assert!(
            e.contains("1.2.840.10045.2.1") && e.contains("only Ed25519"),
            "{e}"
        );
        assert!(
            err_pub("-----BEGIN RSA PUBLIC KEY-----\nAA==\n-----END RSA PUBLIC KEY-----")
                .contains("\"RSA PUBLIC KEY\" is not supported")
        );
        assert!(err_pub("-----BEGIN PRIVATE KEY-----\n").contains("this is a private key"));
        let pubpem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n-----END PUBLIC KEY-----";
        assert!(
            parse_private_key(pubpem)
                .unwrap_err()
                .to_string()
                .contains("this is a public key")
        );
        assert!(
            err_pub("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .starts_with("invalid SPKI PEM")
        );
    }
}
