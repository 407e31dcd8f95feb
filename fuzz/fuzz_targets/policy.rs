//! Fuzz the policy loader: YAML 1.2 → validated `Policy` (every section's reader and its error
//! messages), without reading `key_files` from disk; on success, the effective policy and route
//! lookups of paths taken from the input. Also the key-file and override-value parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::policy::{self, Overrides};

fuzz_target!(|data: &[u8]| {
    // Policy text, then (after a NUL) request paths to look up, one per line.
    let (text, paths) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    if let Ok(p) = policy::fuzzing::parse_offline(text) {
        let e = p.effective(&Overrides::default());
        for line in paths.split(|b| *b == b'\n').take(8) {
            let path = String::from_utf8_lossy(line);
            let _ = e.route_for(&http::Method::GET, &path);
            let _ = p.route_for(&http::Method::POST, &path);
        }
    }
    if let Ok(s) = std::str::from_utf8(text) {
        let _ = policy::fuzzing::parse_key_file(s);
        let _ = policy::parse_mode_value(s);
        let _ = policy::parse_bool_value(s);
        let _ = policy::parse_percent_value(s);
    }
});
