//! `readiness:` — what `/readyz` waits for before it says ready: the key directory's first
//! successful fetch, and the replay store answering (Redis with `on_store_error: reject`), each only
//! when configured; how long to wait before `/readyz` and the log say why it is still waiting; and
//! whether to give up waiting then. Configuration only; the checks are `crate::admin::readiness`.

use super::error::Diag;
use super::reader::{MapReader, boolean, choice, integer};
use super::yaml::Node;

/// What `/readyz` does once `timeout_seconds` passed with a dependency still not answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnReadyTimeout {
    /// Stay not ready (503), naming what is missing and why. The safe default: a pod without its
    /// keys or its replay store would refuse signed traffic, so it should not get any.
    NotReady,
    /// Report ready anyway (with what is missing listed), serving with what it has.
    Ready,
}

impl OnReadyTimeout {
    pub fn as_str(self) -> &'static str {
        match self {
            OnReadyTimeout::NotReady => "not_ready",
            OnReadyTimeout::Ready => "ready",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadinessPolicy {
    /// With `key_directory` set: not ready before its first successful fetch.
    pub wait_for_key_directory: bool,
    /// With `replay.store: redis` and `on_store_error: reject`: not ready before Redis answers.
    pub wait_for_replay_store: bool,
    /// After this long (from start) still waiting, `/readyz` says why and an error is logged.
    pub timeout_seconds: u64,
    pub on_timeout: OnReadyTimeout,
}

impl Default for ReadinessPolicy {
    fn default() -> Self {
        Self {
            wait_for_key_directory: true,
            wait_for_replay_store: true,
            timeout_seconds: 60,
            on_timeout: OnReadyTimeout::NotReady,
        }
    }
}

pub(crate) fn parse(d: &mut Diag, n: &Node, path: &str) -> ReadinessPolicy {
    let mut r = ReadinessPolicy::default();
    let Some(m) = MapReader::new(
        d,
        n,
        path,
        &[
            "wait_for_key_directory",
            "wait_for_replay_store",
            "timeout_seconds",
            "on_timeout",
        ],
    ) else {
        return r;
    };
    if let Some((n, p)) = m.get("wait_for_key_directory") {
        r.wait_for_key_directory = boolean(d, n, &p).unwrap_or(r.wait_for_key_directory);
    }
    if let Some((n, p)) = m.get("wait_for_replay_store") {
        r.wait_for_replay_store = boolean(d, n, &p).unwrap_or(r.wait_for_replay_store);
    }
    if let Some((n, p)) = m.get("timeout_seconds") {
        r.timeout_seconds = integer(d, n, &p, 1, 86_400).unwrap_or(r.timeout_seconds);
    }
    if let Some((n, p)) = m.get("on_timeout") {
        r.on_timeout = choice(
            d,
            n,
            &p,
            &[
                ("not_ready", OnReadyTimeout::NotReady),
                ("ready", OnReadyTimeout::Ready),
            ],
        )
        .unwrap_or(r.on_timeout);
    }
    r
}
