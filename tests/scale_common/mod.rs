//! Real parts for the scale-out tests: a `redis-server` process and a JWKS directory served over
//! HTTP/1.1, both on ephemeral 127.0.0.1 ports and stopped when dropped.
#![allow(dead_code)]

pub mod jwks_server;
pub mod redis_server;
