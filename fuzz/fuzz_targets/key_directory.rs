//! Fuzz what the key directory reads from the network: the HTTP/1.1 response reader of
//! `keys/http_get.rs` (status line, headers, Content-Length / chunked / read-to-close bodies, the
//! size cap; the bytes handed over a few at a time or all at once), then the JWKS parser on whatever body came out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::keys::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    // Bytes per read: a head or chunk split anywhere, or everything at once.
    let step = [1usize, 3, 16, 1024, usize::MAX][usize::from(flags & 7) % 5];
    let max_body = [0usize, 1, 16, 1024, 1 << 20][usize::from(flags >> 3) % 5];
    if let Ok((_, _, body)) = fuzzing::http_response(buf, step, max_body) {
        assert!(body.len() <= max_body, "body over the cap");
        let _ = fuzzing::jwks(&body);
    }
});
