//! Property tests: no parser on the request path panics, whatever bytes arrive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use sigproxy::cli::request_file::RawRequest;
use sigproxy::keys::{KeyRecord, KeySet, KeySource, KeyStatus};
use sigproxy::signature::{self, Component, RequestView, VerifyOptions, query};

fn keyset() -> KeySet {
    KeySet::new(vec![KeyRecord {
        key_id: "k".into(),
        client_id: "c".into(),
        status: KeyStatus::Active,
        key: SigningKey::from_bytes(&[1; 32]).verifying_key(),
        source: KeySource::Inline,
    }])
    .unwrap()
}

/// Strings that look like structured fields, so the search reaches deep into the parsers.
fn sf_like() -> impl Strategy<Value = String> {
    prop::string::string_regex(r#"[a-z0-9@";=(): ,*?\-./+=A-Za-z\\]{0,120}"#).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn signature_headers_never_panic(si in sf_like(), sig in sf_like(), raw_si in any::<Vec<u8>>()) {
        let fields: Vec<(String, Vec<u8>)> = vec![
            ("Host".into(), b"example.com".to_vec()),
            ("Signature-Input".into(), si.into_bytes()),
            ("Signature-Input".into(), raw_si),
            ("Signature".into(), sig.into_bytes()),
        ];
        let _ = signature::parse_signatures(&fields);
        let view = RequestView { method: "GET", target: "/x?y", scheme: "https", authority: Some("example.com"), fields: &fields };
        let _ = signature::verify(&view, true, &VerifyOptions::default(), &keyset(), 0);
    }

    #[test]
    fn covered_components_never_panic(comp in sf_like(), target in "[ -~]{0,40}", field in any::<Vec<u8>>()) {
        let si = format!("sig1=({comp});created=1;keyid=\"k\"");
        let fields: Vec<(String, Vec<u8>)> = vec![
            ("Signature-Input".into(), si.into_bytes()),
            ("Signature".into(), b"sig1=:AAAA:".to_vec()),
            ("example-dict".into(), field),
        ];
        let view = RequestView { method: "GET", target: &target, scheme: "https", authority: None, fields: &fields };
        if let Ok(Some(entries)) = signature::parse_signatures(&fields) {
            for e in entries {
                let _ = signature::signature_base(&view, &e.components, &e.params_value);
            }
        }
        let _ = Component::parse_spec(&comp);
    }

    #[test]
    fn query_reencoding_never_panics(q in "[ -~]{0,80}", name in "[ -~]{0,10}") {
        let _ = query::lookup(&q, &name);
    }

    #[test]
    fn raw_request_files_never_panic(data in any::<Vec<u8>>(), head in "(GET|POST) /[a-z?=&%]{0,20} HTTP/1.1\r\n([A-Za-z-]{1,10}: [ -~]{0,20}\r\n){0,4}") {
        let _ = RawRequest::parse(&data);
        let mut framed = head.into_bytes();
        framed.extend_from_slice(b"\r\n");
        framed.extend_from_slice(&data);
        let _ = RawRequest::parse(&framed);
    }
}
