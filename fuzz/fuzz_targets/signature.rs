//! Fuzz the `Signature` parser (RFC 9421 §4.2): a dictionary of byte sequences, matched by label
//! against a fixed `Signature-Input`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::signature;

fuzz_target!(|data: &[u8]| {
    let fields: Vec<(String, Vec<u8>)> = vec![
        ("Signature-Input".into(), b"sig1=(\"@method\");created=1;keyid=\"k\", sig2=();created=2".to_vec()),
        ("Signature".into(), data.to_vec()),
    ];
    let _ = signature::parse_signatures(&fields);
});
