//! RFC 9530 / RFC 9421 printed Content-Digest values (tests/fixtures/rfc9530) against their bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sigproxy::error::ErrorCode;
use sigproxy::signature::digest::{self, DigestAlg};

fn fixture() -> Value {
    let text = include_str!("fixtures/rfc9530/content-digest.json");
    serde_json::from_str(text).unwrap()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} missing in {v}"))
}

fn body(v: &Value) -> Vec<u8> {
    STANDARD.decode(field(v, "body_base64")).unwrap()
}

#[test]
fn printed_digests_match_their_bodies() {
    let f = fixture();
    let cases = f["matching"].as_array().unwrap();
    assert!(cases.len() >= 14, "fixture lost cases: {}", cases.len());
    for case in cases {
        let header = field(case, "header");
        let body = body(case);
        let parsed = digest::parse(header).unwrap_or_else(|e| panic!("{header}: {e}"));
        // one shot
        let mut c = parsed.checker();
        c.update(&body);
        c.finish()
            .unwrap_or_else(|e| panic!("{}: {e}", field(case, "source")));
        // byte by byte
        let mut c = parsed.checker();
        for b in &body {
            c.update(std::slice::from_ref(b));
        }
        c.finish().unwrap();
        // our signer-side encoder reproduces the printed value
        match field(case, "alg") {
            "sha-256" => assert_eq!(
                digest::content_digest_header(DigestAlg::Sha256, &body),
                header
            ),
            "sha-512" => assert_eq!(
                digest::content_digest_header(DigestAlg::Sha512, &body),
                header
            ),
            _ => assert_eq!(
                format!(
                    "{}, {}",
                    digest::content_digest_header(DigestAlg::Sha256, &body),
                    digest::content_digest_header(DigestAlg::Sha512, &body)
                ),
                header
            ),
        }
        // and a body with one more byte does not match
        let mut c = parsed.checker();
        c.update(&body);
        c.update(b" ");
        assert_eq!(c.finish().unwrap_err().code, ErrorCode::DigestMismatch);
    }
}

#[test]
fn rfc9421_b24_printed_response_digest_does_not_match_its_body() {
    let f = fixture();
    for case in f["mismatching"].as_array().unwrap() {
        let mut c = digest::parse(field(case, "header")).unwrap().checker();
        c.update(&body(case));
        let e = c.finish().unwrap_err();
        assert_eq!(e.code, ErrorCode::DigestMismatch);
        assert!(e.detail.contains("sha-512"), "{}", e.detail);
    }
}

#[test]
fn rfc9530_double_padded_value_is_rejected() {
    let f = fixture();
    let cases = f["invalid"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let e = digest::parse(field(case, "header")).unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::DigestMismatch,
            "{}",
            field(case, "header")
        );
    }
}
