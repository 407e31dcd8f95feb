//! Test harness: a recording HTTP/1.1 upstream, a raw HTTP/1.1 client, and an in-process
//! gateway on ephemeral 127.0.0.1 ports. Everything is bounded in time.
#![allow(dead_code)]

pub mod client;
pub mod curl;
pub mod gateway;
pub mod net;
pub mod sidecar;
pub mod tls;
pub mod upstream;
