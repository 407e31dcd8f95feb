//! The migration's levers at run time: the sticky canary (`canary`), its opt-in auto-halt
//! (`halt`) and the watcher that applies policy and override edits without a restart
//! (`watch`). Parsing the policy is `crate::policy`'s job; deciding a request is `decision`'s.

pub mod canary;
pub mod halt;
pub mod watch;

pub use canary::{Caller, CanaryReason, CanaryVerdict};
pub use halt::{CanaryHalt, HaltInfo, PolicyKey};
