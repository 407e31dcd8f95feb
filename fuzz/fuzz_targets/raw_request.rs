//! Fuzz what `sigproxy verify --request` does with a captured request file: the raw HTTP/1.1
//! reader (`cli::request_file`), then — like the command — the RFC 9421 verification of what was
//! read against a fixed key (signature selection, parameters, every derived component and field
//! over hostile targets and fields, the signature base) and the body against `Content-Digest`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigproxy::cli::request_file::RawRequest;
use sigproxy::keys::{KeyRecord, KeySet, KeySource, KeyStatus};
use sigproxy::signature::{self, RequestView, VerifyOptions, digest};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let record = |id: &str, status| KeyRecord {
            key_id: id.into(),
            client_id: "fuzz".into(),
            status,
            key,
            source: KeySource::Inline,
        };
        match KeySet::new(vec![
            record("k1", KeyStatus::Active),
            record("old", KeyStatus::Revoked),
        ]) {
            Ok(k) => k,
            Err(e) => panic!("{e:?}"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = RawRequest::parse(data) else {
        return;
    };
    let authority = raw
        .field("host")
        .map(|h| String::from_utf8_lossy(h).into_owned());
    let view = RequestView {
        method: &raw.method,
        target: &raw.target,
        scheme: "https",
        authority: authority.as_deref(),
        fields: &raw.fields,
    };
    let lax = VerifyOptions {
        required_components: Vec::new(),
        nonce: signature::Requirement::Optional,
        max_age_seconds: u64::MAX / 4,
        clock_skew_seconds: u64::MAX / 4,
        ..VerifyOptions::default()
    };
    for opts in [&VerifyOptions::default(), &lax] {
        let _ = signature::verify(&view, !raw.body.is_empty(), opts, keys(), 1_700_000_000);
    }
    if let Ok(Some(entries)) = signature::parse_signatures(&raw.fields) {
        for e in entries {
            let _ = signature::signature_base(&view, &e.components, &e.params_value);
        }
    }
    // The gateway's and `sigproxy verify`'s one body check: every Content-Digest line joined.
    let _ = digest::check(&raw.fields, &raw.body);
});
