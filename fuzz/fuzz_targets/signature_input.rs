//! Fuzz the `Signature-Input` parser (RFC 9421 §4.1) — dictionary, inner lists, component
//! identifiers and their parameters, signature parameters — and the base built from what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::signature::{self, RequestView};

fuzz_target!(|data: &[u8]| {
    let fields: Vec<(String, Vec<u8>)> = vec![
        ("Host".into(), b"example.com".to_vec()),
        ("Example-Dict".into(), b"a=1, b=(x y);z".to_vec()),
        ("Signature-Input".into(), data.to_vec()),
        ("Signature".into(), b"sig1=:AAAA:".to_vec()),
    ];
    if let Ok(Some(entries)) = signature::parse_signatures(&fields) {
        let view = RequestView { method: "GET", target: "/p?a=b&c=%20", scheme: "https", authority: Some("example.com"), fields: &fields };
        for e in entries {
            let _ = signature::signature_base(&view, &e.components, &e.params_value);
        }
    }
});
