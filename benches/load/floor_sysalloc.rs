//! `floor-sysalloc`: the same minimal Pingora passthrough as `floor`, on glibc's malloc, to weigh
//! the allocator choice (CPU per request against memory per idle connection, issue 19).
#![forbid(unsafe_code)]

#[path = "floor/service.rs"]
mod service;

fn main() {
    service::main();
}
