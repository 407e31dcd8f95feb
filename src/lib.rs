//! sigproxy: an RFC 9421 HTTP Message Signature verifying reverse proxy (Ed25519), on Pingora.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod authn;
pub mod cli;
pub mod decision;
pub mod error;
pub mod keys;
pub mod live;
pub mod logsink;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod replay;
pub mod rollout;
pub mod signature;
