//! Fuzz what the key directory reads from the network: the HTTP/1.1 response reader of
//! `keys/http_get.rs` (status line, headers, Content-Length / chunked / read-to-close bodies, the
//! size cap), then the JWKS parser on whatever body came out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::keys::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let eof = flags & 1 == 1;
    let max_body = [0usize, 1, 16, 1024, 1 << 20][usize::from(flags >> 1) % 5];
    match fuzzing::http_response(buf, eof, max_body) {
        Ok(Some((_, _, body))) => {
            assert!(body.len() <= max_body, "body over the cap");
            let _ = fuzzing::jwks(&body);
        }
        Ok(None) | Err(_) => {}
    }
});
