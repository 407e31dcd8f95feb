//! Real parts for the scale-out tests: a `redis-server` process (and clusters, sentinels and TLS
//! servers of them), a JWKS directory served over HTTP/1.1, and the built `sigproxy run`, all on
//! ephemeral 127.0.0.1 ports and stopped when dropped.
#![allow(dead_code)]

#[path = "../common/client.rs"]
pub mod client;
pub mod jwks_server;
#[path = "../common/net.rs"]
pub mod net;
pub mod proxy;
pub mod redis_server;
pub mod redis_topology;
