//! Loopback ports for the black-box harnesses (`tests/common` and `tests/scale_common` both use
//! this one file). It starts nothing and keeps no socket open.

use std::net::TcpListener;

/// A port the kernel just handed out on 127.0.0.1 (the listener is closed again at once). Another
/// process may take it before the caller binds it; the callers retry their start with new ports.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
