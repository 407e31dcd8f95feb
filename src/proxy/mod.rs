//! The gateway's Pingora machinery: settings, server start/stop, the `ProxyHttp` phases, body
//! buffering for verification, header hygiene and error responses. The verification decision is
//! not here: it plugs in through [`gate::Gate`].
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use sigproxy::proxy::*;
//! let mut s = ProxySettings::new("0.0.0.0:8080", "127.0.0.1:8081".parse::<Upstream>().unwrap());
//! s.handle_signals = true; // SIGTERM graceful, SIGINT now, SIGQUIT hand listeners over
//! s.exit_when_drained = true; // leave as soon as in-flight requests are done
//! let (gateway, handle) =
//!     build(s, Arc::new(PassthroughGate), Arc::new(NoopObserver), None).unwrap();
//! // `handle.stop_graceful()` / `stop_now()` from any thread; `run` blocks until stopped.
//! gateway.run();
//! ```

mod admit;
pub mod body;
pub mod ctx;
pub mod forward;
pub mod gate;
pub mod headers;
pub mod record;
pub mod respond;
pub mod server;
pub mod service;
pub mod settings;

pub use gate::{
    AuthMethod, Gate, HeadVerdict, Pass, PassthroughGate, Reject, RequestView, Verdict,
};
pub use record::{NoopObserver, RequestObserver, RequestRecord};
pub use server::{Gateway, GatewayHandle, build};
pub use settings::{IdentityHeaders, ProxySettings, Upstream};
