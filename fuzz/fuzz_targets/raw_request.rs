//! Fuzz the raw HTTP/1.1 request reader behind `sigproxy verify --request`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigproxy::cli::request_file::RawRequest;

fuzz_target!(|data: &[u8]| {
    let _ = RawRequest::parse(data);
});
