//! The gateway's Pingora machinery: settings, server start/stop, the `ProxyHttp` phases, body
//! buffering for verification, header hygiene and error responses. The verification decision is
//! not here: it plugs in through [`gate::Gate`].

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
