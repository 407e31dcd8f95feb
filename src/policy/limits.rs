//! `limits:` — what one client may hold of the gateway: how long it may take to send a request
//! head or the gaps in its body, how long an idle keep-alive connection is kept, how long a
//! response write may stall, and how many connections are served at once. nginx's
//! `client_header_timeout`, `client_body_timeout`, `keepalive_timeout`, `send_timeout` and
//! `worker_connections`, with the same defaults. Configuration only; the proxy enforces them.

use super::error::Diag;
use super::reader::{MapReader, integer};
use super::yaml::Node;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request head (request line and fields) must arrive whole within this, counted from
    /// its first byte (from the accept for a new connection).
    pub header_timeout_seconds: u64,
    /// Longest gap between two reads of a request body.
    pub body_timeout_seconds: u64,
    /// An idle keep-alive connection is closed after this; 0 turns keep-alive off.
    pub keepalive_timeout_seconds: u64,
    /// Longest stall of one write of the response to the client.
    pub send_timeout_seconds: u64,
    /// Concurrent client connections; past it a new connection is closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout_seconds: 60,
            body_timeout_seconds: 60,
            keepalive_timeout_seconds: 75,
            send_timeout_seconds: 60,
            max_connections: 10_000,
        }
    }
}

pub(crate) fn parse(d: &mut Diag, n: &Node, path: &str) -> Limits {
    let mut l = Limits::default();
    let Some(m) = MapReader::new(d, n, path, &super::schema::children("limits")) else {
        return l;
    };
    for (key, slot, min) in [
        ("header_timeout_seconds", &mut l.header_timeout_seconds, 1),
        ("body_timeout_seconds", &mut l.body_timeout_seconds, 1),
        (
            "keepalive_timeout_seconds",
            &mut l.keepalive_timeout_seconds,
            0,
        ),
        ("send_timeout_seconds", &mut l.send_timeout_seconds, 1),
    ] {
        if let Some((n, p)) = m.get(key)
            && let Some(v) = integer(d, n, &p, min, 3600)
        {
            *slot = v;
        }
    }
    if let Some((n, p)) = m.get("max_connections")
        && let Some(v) = integer(d, n, &p, 1, 1_000_000)
    {
        l.max_connections = v as usize;
    }
    l
}
