//! Canary auto-halt (`canary.auto_halt`): a sliding window of the requests of sampled canary
//! callers and how many of them were rejected for want of a signature. Past the configured
//! share (with a minimum count) the canary halts: its effective percent is 0 until the policy
//! or its overrides change. Time is passed in; it keeps no clock, and it does not decide
//! requests itself.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::policy::{AutoHalt, Overrides};

/// Which policy a halt belongs to: the file's sha256 and the overrides in force. A key file
/// change alone does not re-arm a halted canary; a policy edit or an override change does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyKey {
    pub sha256: String,
    pub overrides: Overrides,
}

/// Why and when the canary halted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaltInfo {
    /// Unix seconds.
    pub at: u64,
    pub rejected: u64,
    pub total: u64,
    pub window_seconds: u64,
    /// The percent that was in force before the halt.
    pub percent_before: u8,
}

#[derive(Default)]
struct Inner {
    key: Option<PolicyKey>,
    /// (second, total, rejected), oldest first, at most `window_seconds` entries.
    window: VecDeque<(u64, u64, u64)>,
    halted: Option<HaltInfo>,
}

#[derive(Default)]
pub struct CanaryHalt {
    /// Fast path: requests read this, and lock only while a halt is in force.
    halted: AtomicBool,
    inner: Mutex<Inner>,
}

impl CanaryHalt {
    pub fn new() -> Self {
        Self::default()
    }

    /// The canary percent to use under the policy `key`: `percent`, or 0 while halted. A halt
    /// recorded under another policy is cleared here.
    pub fn effective_percent(&self, key: &PolicyKey, percent: u8) -> u8 {
        if !self.halted.load(Ordering::Acquire) {
            return percent;
        }
        let Ok(mut g) = self.inner.lock() else {
            return percent;
        };
        if g.key.as_ref() == Some(key) && g.halted.is_some() {
            return 0;
        }
        reset(&mut g, key);
        self.halted.store(false, Ordering::Release);
        percent
    }

    /// One request of a sampled canary caller under `key`. Returns the halt when this request
    /// tripped it.
    pub fn record(
        &self,
        key: &PolicyKey,
        rule: &AutoHalt,
        percent: u8,
        now: u64,
        rejected: bool,
    ) -> Option<HaltInfo> {
        let mut g = self.inner.lock().ok()?;
        if g.key.as_ref() != Some(key) {
            reset(&mut g, key);
            self.halted.store(false, Ordering::Release);
        }
        if g.halted.is_some() {
            return None;
        }
        match g.window.back_mut() {
            Some(b) if b.0 == now => {
                b.1 += 1;
                b.2 += u64::from(rejected);
            }
            _ => g.window.push_back((now, 1, u64::from(rejected))),
        }
        let oldest = now.saturating_sub(rule.window_seconds.saturating_sub(1));
        while g.window.front().is_some_and(|b| b.0 < oldest) {
            g.window.pop_front();
        }
        let (total, bad) = g.window.iter().fold((0, 0), |a, b| (a.0 + b.1, a.1 + b.2));
        // bad/total > max% without floating point.
        if total >= rule.min_requests && bad * 100 > total * u64::from(rule.max_reject_percent) {
            let info = HaltInfo {
                at: now,
                rejected: bad,
                total,
                window_seconds: rule.window_seconds,
                percent_before: percent,
            };
            g.halted = Some(info.clone());
            g.window.clear();
            self.halted.store(true, Ordering::Release);
            return Some(info);
        }
        None
    }

    /// The halt in force under `key`, if any.
    pub fn status(&self, key: &PolicyKey) -> Option<HaltInfo> {
        let g = self.inner.lock().ok()?;
        if g.key.as_ref() == Some(key) {
            g.halted.clone()
        } else {
            None
        }
    }
}

fn reset(g: &mut Inner, key: &PolicyKey) {
    g.key = Some(key.clone());
    g.window.clear();
    g.halted = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PolicyKey {
        PolicyKey {
            sha256: s.into(),
            overrides: Overrides::default(),
        }
    }

    const RULE: AutoHalt = AutoHalt {
        max_reject_percent: 20,
        window_seconds: 10,
        min_requests: 10,
    };

    #[test]
    fn halts_past_the_share_with_enough_requests_until_the_policy_changes() {
        let h = CanaryHalt::new();
        let a = key("a");
        // 9 rejected of 9: under min_requests, no halt.
        for _ in 0..9 {
            assert_eq!(h.record(&a, &RULE, 25, 100, true), None);
        }
        assert_eq!(h.effective_percent(&a, 25), 25);
        let info = h.record(&a, &RULE, 25, 100, true).expect("halt");
        assert_eq!(
            (info.rejected, info.total, info.percent_before),
            (10, 10, 25)
        );
        assert_eq!(h.effective_percent(&a, 25), 0);
        assert_eq!(h.status(&a), Some(info));
        // Further requests do not trip it again.
        assert_eq!(h.record(&a, &RULE, 25, 101, true), None);
        assert_eq!(h.effective_percent(&a, 25), 0);
        // A new policy re-arms the canary with a fresh window.
        let b = key("b");
        assert_eq!(h.effective_percent(&b, 30), 30);
        assert_eq!(h.status(&b), None);
        assert_eq!(h.record(&b, &RULE, 30, 102, true), None);
    }

    #[test]
    fn share_at_or_under_the_limit_and_old_samples_do_not_halt() {
        let h = CanaryHalt::new();
        let a = key("a");
        // Exactly 20 % rejected: not more than the limit.
        for i in 0..50u64 {
            assert_eq!(h.record(&a, &RULE, 5, 200, i % 5 == 4), None);
        }
        // Rejections that fell out of the window do not count.
        let h = CanaryHalt::new();
        for _ in 0..9 {
            h.record(&a, &RULE, 5, 300, true);
        }
        for _ in 0..9 {
            assert_eq!(h.record(&a, &RULE, 5, 310, false), None);
        }
        assert_eq!(h.effective_percent(&a, 5), 5);
    }
}
