//! Fuzz `signature::digest::parse` (RFC 9530 Content-Digest) with arbitrary bytes, and the body
//! checker with whatever parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::signature::digest;

fuzz_target!(|data: &[u8]| {
    // Header values reach the parser as bytes; invalid UTF-8 becomes U+FFFD, which the parser must
    // reject without panicking, like any other non-ASCII input.
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = digest::parse(&text) {
        let mut checker = parsed.checker();
        let (a, b) = data.split_at(data.len() / 2);
        checker.update(a);
        checker.update(b);
        let _ = checker.finish();
    }
});
