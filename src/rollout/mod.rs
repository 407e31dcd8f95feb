//! The migration's levers, as pure logic: the sticky canary (`canary`) and its opt-in auto-halt
//! (`halt`). Parsing the policy is `crate::policy`'s job; holding and reloading the policy in
//! force is `crate::live`'s; deciding a request is `decision`'s.

pub mod canary;
pub mod halt;

pub use canary::{Caller, CanaryReason, CanaryVerdict};
pub use halt::{CanaryHalt, HaltInfo, PolicyKey};
