//! The gateway's request path on Pingora's core (not `pingora-proxy`): listeners and stop order
//! (`server`), client connections (`conn`), one request start to finish (`exchange`), the
//! upstream half (`upstream`) and its idle connections (`pool`), bodies (`body`), header
//! hygiene (`headers`), error responses (`respond`) and the settings each request reads (`hop`).
//! The verification decision is not here: it plugs in through [`gate::Gate`]; metrics and audit
//! lines through [`record::RequestObserver`].
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use sigproxy::proxy::*;
//! let hop = Hop::for_upstream("127.0.0.1:8081".parse().unwrap()).unwrap();
//! let mut s = ProxySettings::new("0.0.0.0:8080");
//! s.handle_signals = true; // SIGTERM drains then stops, SIGINT now, SIGQUIT hands listeners over
//! s.exit_when_drained = true; // leave as soon as in-flight requests are done
//! let (gateway, handle) =
//!     build(s, Arc::new(PassthroughGate::new(hop)), Arc::new(NoopObserver), None).unwrap();
//! // `handle.stop_graceful()` / `stop_now()` from any thread; `run` blocks until stopped.
//! gateway.run();
//! ```

pub mod body;
mod conn;
pub mod ctx;
mod exchange;
pub mod gate;
mod h2;
pub mod headers;
pub mod hop;
mod pool;
pub mod record;
pub mod respond;
pub mod server;
pub mod settings;
pub mod tls;
mod upstream;

pub use gate::{
    AuthMethod, Gate, HeadVerdict, Identity, Pass, PassthroughGate, Reject, RequestView, Verdict,
};
pub use hop::Hop;
pub use record::{ConnEvent, NoopObserver, RequestObserver, RequestRecord};
pub use server::{Gateway, GatewayHandle, build};
pub use settings::{ProxySettings, Upstream};
