//! The RFC 9421 appendix and §2 examples (tests/fixtures/rfc9421, copied from the WG source and
//! re-verified): signature bases byte for byte, B.2.6 and B.4 verdicts, and every request
//! canonicalisation example.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde_json::Value;
use sigproxy::error::ErrorCode;
use sigproxy::signature::{
    self, Component, KeyResolver, RequestView, Requirement, ResolvedKey, VerifyOptions,
};

fn fixture(rel: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rfc9421")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

struct Keys(HashMap<String, VerifyingKey>);

impl KeyResolver for Keys {
    fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
        self.0.get_key_value(key_id).map(|(id, k)| ResolvedKey {
            key: k,
            client_id: id,
            revoked: false,
        })
    }
}

fn ed25519_keys() -> Keys {
    let keys = fixture("keys/keys.json");
    let raw = keys["test-key-ed25519"]["raw_public_b64"].as_str().unwrap();
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .unwrap()
        .try_into()
        .unwrap();
    Keys(HashMap::from([(
        "test-key-ed25519".to_string(),
        VerifyingKey::from_bytes(&bytes).unwrap(),
    )]))
}

type Fields = Vec<(String, Vec<u8>)>;

fn fields_of(msg: &Value) -> Fields {
    msg["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_string(),
                h[1].as_str().unwrap().as_bytes().to_vec(),
            )
        })
        .collect()
}

fn view<'a>(msg: &'a Value, fields: &'a Fields) -> RequestView<'a> {
    let host = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| std::str::from_utf8(v).unwrap());
    RequestView {
        method: msg["method"].as_str().unwrap(),
        target: msg["target"].as_str().unwrap(),
        scheme: msg["scheme"].as_str().unwrap_or("https"),
        authority: msg["authority"].as_str().or(host),
        fields,
    }
}

/// What the appendix examples need: no nonce, no required components, bodies covered by
/// `content-length` rather than a digest (B.2.6), and the clock of the example.
fn appendix_options() -> VerifyOptions {
    VerifyOptions {
        nonce: Requirement::Off,
        required_components: vec![],
        body_digest: Requirement::Optional,
        ..VerifyOptions::default()
    }
}

fn created(v: &Value) -> i64 {
    let si = v["signature_input"].as_str().unwrap();
    let at = si.find("created=").unwrap() + 8;
    si[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

fn verify_signed_example(name: &str) -> Result<signature::Verified, sigproxy::error::Error> {
    let v = fixture(&format!("signed/{name}.json"));
    let fields = fields_of(&v["message"]);
    let has_body = !v["message"]["body_base64"]
        .as_str()
        .unwrap_or("")
        .is_empty();
    signature::verify(
        &view(&v["message"], &fields),
        has_body,
        &appendix_options(),
        &ed25519_keys(),
        created(&v),
    )
}

#[test]
fn b26_ed25519_base_is_byte_exact_and_verifies() {
    let v = fixture("signed/rfc9421-b26-ed25519.json");
    let expected_base = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rfc9421/signed/rfc9421-b26-ed25519.sigbase.txt"),
    )
    .unwrap();
    let verified = verify_signed_example("rfc9421-b26-ed25519").unwrap();
    assert_eq!(
        verified.signature_base().as_bytes(),
        expected_base.as_slice()
    );
    assert_eq!(verified.label(), "sig-b26");
    assert_eq!(verified.key_id(), "test-key-ed25519");
    assert_eq!(v["expected"], "valid");
}

#[test]
fn b4_transformations_give_the_printed_verdicts() {
    let cases = [
        ("rfc9421-b4-transform-1-valid", true),
        ("rfc9421-b4-transform-2-valid", true),
        ("rfc9421-b4-transform-3-valid", true),
        ("rfc9421-b4-transform-4-valid", true),
        ("rfc9421-b4-transform-5-invalid", false),
        ("rfc9421-b4-transform-6-invalid", false),
    ];
    for (name, valid) in cases {
        let v = fixture(&format!("signed/{name}.json"));
        let fields = fields_of(&v["message"]);
        let entries = signature::parse_signatures(&fields).unwrap().unwrap();
        let base = signature::signature_base(
            &view(&v["message"], &fields),
            &entries[0].components,
            &entries[0].params_value,
        )
        .unwrap();
        assert_eq!(base, v["signature_base"].as_str().unwrap(), "{name}: base");
        match verify_signed_example(name) {
            Ok(_) => assert!(valid, "{name} verified but the RFC says invalid"),
            Err(e) => {
                assert!(!valid, "{name} failed: {e}");
                assert_eq!(e.code, ErrorCode::SignatureInvalid, "{name}");
            }
        }
    }
}

#[test]
fn non_ed25519_examples_are_refused_with_key_id_mismatch() {
    // B.2.1 is RSA-PSS: with its key id mapped to an Ed25519 key, alg must not be accepted.
    let v = fixture("signed/rfc9421-b21-rsa-pss-minimal.json");
    let mut fields = fields_of(&v["message"]);
    for f in fields
        .iter_mut()
        .filter(|f| f.0.eq_ignore_ascii_case("signature-input"))
    {
        f.1 = String::from_utf8(f.1.clone())
            .unwrap()
            .replace("test-key-rsa-pss", "test-key-ed25519")
            .into_bytes();
    }
    if !String::from_utf8_lossy(
        &fields
            .iter()
            .find(|f| f.0.eq_ignore_ascii_case("signature-input"))
            .unwrap()
            .1,
    )
    .contains("alg=")
    {
        for f in fields
            .iter_mut()
            .filter(|f| f.0.eq_ignore_ascii_case("signature-input"))
        {
            f.1.extend_from_slice(b";alg=\"rsa-pss-sha512\"");
        }
    }
    let e = signature::verify(
        &view(&v["message"], &fields),
        false,
        &appendix_options(),
        &ed25519_keys(),
        created(&v),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyIdMismatch, "{e}");
}

#[test]
fn every_request_canonicalisation_example_matches() {
    let examples = fixture("canonicalization.json");
    let mut checked = 0;
    for ex in examples.as_array().unwrap() {
        let (Some(msg), Some(lines)) = (ex.get("message"), ex.get("expected_lines")) else {
            continue;
        };
        let fields = fields_of(msg);
        if msg["kind"] == "response" {
            // Response components are refused clearly, never silently mis-derived.
            for line in lines.as_array().unwrap() {
                let id = line
                    .as_str()
                    .unwrap()
                    .split_once(": ")
                    .map_or(line.as_str().unwrap(), |p| p.0);
                if id.starts_with("\"@status\"") || id.contains(";tr") {
                    let e = Component::parse_spec(id).unwrap_err();
                    assert_eq!(e.code, ErrorCode::SignatureMalformed);
                }
            }
            continue;
        }
        let req = view(msg, &fields);
        for line in lines.as_array().unwrap() {
            let line = line.as_str().unwrap().replace("(SP)", " ");
            let (id, want) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|id| (id, "")))
                .unwrap();
            let c = Component::parse_spec(id).unwrap_or_else(|e| panic!("{}: {id}: {e}", ex["id"]));
            assert_eq!(c.id, id, "{}: identifier serialisation", ex["id"]);
            let mut got = String::new();
            c.push_value(&req, &mut got)
                .unwrap_or_else(|e| panic!("{}: {id}: {e}", ex["id"]));
            assert_eq!(got, want, "{}: {id}", ex["id"]);
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} lines checked");
}

#[test]
fn signature_params_serialisation_keeps_the_signers_order() {
    let examples = fixture("canonicalization.json");
    let ex = examples
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "s2.3-signature-params")
        .unwrap();
    let value = ex["expected_value"].as_str().unwrap();
    let fields: Fields = vec![
        (
            "Signature-Input".into(),
            format!("sig1={value}").into_bytes(),
        ),
        ("Signature".into(), b"sig1=:AA==:".to_vec()),
    ];
    let entries = signature::parse_signatures(&fields).unwrap().unwrap();
    assert_eq!(entries[0].params_value, value);
}
