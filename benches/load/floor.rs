//! `floor`: the load harness's minimal Pingora 0.9 passthrough with mimalloc, sigproxy's allocator
//! (see floor/service.rs). `cargo run --release --example floor -- --listen 127.0.0.1:P --upstream 127.0.0.1:U`
#![forbid(unsafe_code)]

#[path = "floor/service.rs"]
mod service;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    service::main();
}
