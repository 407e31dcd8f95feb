//! What `/readyz` waits for besides the listener: start-up checks (the key directory's first
//! successful fetch, the replay store's first answer) that latch once they pass, a timeout after
//! which the answer and one error line in the log say what is still missing and why, and what to do
//! then (`readiness.on_timeout`). A dependency failing later does not make the pod unready: every
//! replica would go unready together and take the unsigned traffic down with the signed; metrics
//! and alerts report that instead. It runs no checks itself: each check is a callback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::keys::KeyDirectory;
use crate::policy::{OnReadyTimeout, OnStoreError, PolicyFile, ReplayBackend};
use crate::replay::NonceStore;

/// A start-up check: `Ok` once its dependency answered, else why not (shown in `/readyz`).
pub type CheckFn = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

struct Check {
    name: &'static str,
    run: CheckFn,
    passed: AtomicBool,
}

/// The start-up checks and their deadline. Cheap to ask: each check reads an atomic or a lock.
pub struct Readiness {
    checks: Vec<Check>,
    started: Instant,
    timeout: Duration,
    on_timeout: OnReadyTimeout,
    timeout_logged: AtomicBool,
}

/// What `/readyz` answers.
#[derive(Debug, PartialEq)]
pub struct ReadyReport {
    pub ready: bool,
    pub body: serde_json::Value,
}

impl Readiness {
    pub fn new(timeout: Duration, on_timeout: OnReadyTimeout) -> Self {
        Self {
            checks: Vec::new(),
            started: Instant::now(),
            timeout,
            on_timeout,
            timeout_logged: AtomicBool::new(false),
        }
    }

    pub fn with_check(mut self, name: &'static str, run: CheckFn) -> Self {
        self.checks.push(Check {
            name,
            run,
            passed: AtomicBool::new(false),
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Runs the checks that have not passed yet; `listening` is the listener's own readiness.
    pub fn report(&self, listening: bool) -> ReadyReport {
        self.report_at(listening, self.started.elapsed())
    }

    fn report_at(&self, listening: bool, waited: Duration) -> ReadyReport {
        let mut waiting = Vec::new();
        for c in &self.checks {
            if c.passed.load(Ordering::Acquire) {
                continue;
            }
            match (c.run)() {
                Ok(()) => c.passed.store(true, Ordering::Release),
                Err(reason) => waiting.push(json!({"check": c.name, "reason": reason})),
            }
        }
        if waiting.is_empty() {
            return ReadyReport {
                ready: listening,
                body: if listening {
                    json!({"ready": true})
                } else {
                    // Starting (not bound yet) or stopping (draining): the listener flag alone.
                    json!({"ready": false, "waiting_for": [{"check": "listener", "reason": "the proxy listener is not serving (starting, or draining for a stop)"}]})
                },
            };
        }
        let timed_out = waited >= self.timeout;
        if timed_out && !self.timeout_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                waited_seconds = waited.as_secs(),
                on_timeout = self.on_timeout.as_str(),
                waiting_for = %serde_json::Value::Array(waiting.clone()),
                "readiness: still waiting after readiness.timeout_seconds"
            );
        }
        // The listener is never skipped: without it there is nothing to be ready for.
        let ready = listening && timed_out && self.on_timeout == OnReadyTimeout::Ready;
        if !listening {
            waiting.push(json!({"check": "listener", "reason": "the proxy listener is not serving (starting, or draining for a stop)"}));
        }
        ReadyReport {
            ready,
            body: json!({
                "ready": ready,
                "waiting_for": waiting,
                "waited_seconds": waited.as_secs(),
                "timeout_seconds": self.timeout.as_secs(),
                "timed_out": timed_out,
            }),
        }
    }
}

/// The checks `f` asks for, and the shared store's probe (started here whether or not readiness
/// waits for it: it also feeds `datafold_replay_store_up`).
pub fn start(
    f: &PolicyFile,
    store: &Arc<dyn NonceStore>,
    directory: Option<&KeyDirectory>,
) -> Result<Readiness, String> {
    let r = &f.readiness;
    let mut readiness = Readiness::new(Duration::from_secs(r.timeout_seconds), r.on_timeout);
    if let (Some(dir), true) = (directory, r.wait_for_key_directory) {
        let dir = dir.clone();
        readiness = readiness.with_check(
            "key_directory",
            Box::new(move || {
                if dir.loaded() {
                    return Ok(());
                }
                let s = dir.status();
                Err(match s.last_error {
                    Some(e) => format!("{}: {e} ({} fetches failed)", s.url, s.failures),
                    None => format!("{}: no fetch has finished yet", s.url),
                })
            }),
        );
    }
    let answered = Latch::default();
    crate::replay::spawn_probe(store.clone(), answered.clone())?;
    let redis = matches!(f.replay.backend, ReplayBackend::Redis(_));
    if redis && r.wait_for_replay_store && f.replay.on_store_error == OnStoreError::Reject {
        let what = store.describe();
        readiness = readiness.with_check(
            "replay_store",
            Box::new(move || answered.check().map_err(|e| format!("{what}: {e}"))),
        );
    }
    Ok(readiness)
}

/// A latch a background task sets once its dependency answered (the replay store's probe).
#[derive(Clone, Default)]
pub struct Latch(Arc<(AtomicBool, std::sync::Mutex<Option<String>>)>);

impl Latch {
    pub fn set(&self) {
        self.0.0.store(true, Ordering::Release);
    }

    /// Why it is not set yet (the last failure).
    pub fn fail(&self, why: String) {
        if let Ok(mut w) = self.0.1.lock() {
            *w = Some(why);
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if self.0.0.load(Ordering::Acquire) {
            return Ok(());
        }
        let why = self.0.1.lock().ok().and_then(|w| w.clone());
        Err(why.unwrap_or_else(|| "no answer yet".to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn checks_latch_and_name_what_is_missing() {
        let latch = Latch::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (l, c) = (latch.clone(), calls.clone());
        let r = Readiness::new(Duration::from_secs(60), OnReadyTimeout::NotReady).with_check(
            "replay_store",
            Box::new(move || {
                c.fetch_add(1, Ordering::Relaxed);
                l.check()
            }),
        );
        let rep = r.report_at(true, Duration::from_secs(1));
        assert!(!rep.ready);
        assert_eq!(rep.body["waiting_for"][0]["check"], "replay_store");
        assert_eq!(rep.body["waiting_for"][0]["reason"], "no answer yet");
        assert_eq!(rep.body["timed_out"], false);
        latch.fail("connection refused".into());
        let rep = r.report_at(true, Duration::from_secs(2));
        assert_eq!(rep.body["waiting_for"][0]["reason"], "connection refused");
        latch.set();
        assert!(r.report_at(true, Duration::from_secs(3)).ready);
        // Latched: not asked again.
        let n = calls.load(Ordering::Relaxed);
        assert!(r.report_at(true, Duration::from_secs(4)).ready);
        assert_eq!(calls.load(Ordering::Relaxed), n);
        // The listener still counts.
        let rep = r.report_at(false, Duration::from_secs(5));
        assert!(!rep.ready);
        assert_eq!(rep.body["waiting_for"][0]["check"], "listener");
    }

    #[test]
    fn after_the_timeout_it_says_so_and_on_timeout_decides() {
        let never = || -> CheckFn { Box::new(|| Err("HTTP 503 from the directory".to_owned())) };
        let strict = Readiness::new(Duration::from_secs(10), OnReadyTimeout::NotReady)
            .with_check("key_directory", never());
        let rep = strict.report_at(true, Duration::from_secs(11));
        assert!(!rep.ready);
        assert_eq!(rep.body["timed_out"], true);
        assert_eq!(
            rep.body["waiting_for"][0]["reason"],
            "HTTP 503 from the directory"
        );
        let lenient = Readiness::new(Duration::from_secs(10), OnReadyTimeout::Ready)
            .with_check("key_directory", never());
        assert!(!lenient.report_at(true, Duration::from_secs(9)).ready);
        let rep = lenient.report_at(true, Duration::from_secs(10));
        assert!(rep.ready);
        assert_eq!(rep.body["waiting_for"][0]["check"], "key_directory");
        assert!(!lenient.report_at(false, Duration::from_secs(20)).ready);
    }
}
