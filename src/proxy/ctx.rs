//! Counters the request path shares with the server's stop logic: requests in flight (graceful
//! drain waits for them) and open client connections (bounded by `limits.max_connections`), and
//! the drain flag that makes every response close its connection. No request logic here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts requests between head read and the observer's record.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
    pub(super) fn enter(&self) -> Guard {
        self.0.fetch_add(1, Ordering::AcqRel);
        Guard(self.0.clone())
    }
}

/// Decrements its counter when dropped.
pub struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Open client connections, admitted up to a limit read at each accept (so a reload of
/// `limits.max_connections` applies to the next connection).
#[derive(Clone, Default)]
pub struct Connections(Arc<AtomicUsize>);

impl Connections {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// A guard for one more connection, or `None` when `max` are open.
    pub(super) fn try_enter(&self, max: usize) -> Option<Guard> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Guard(self.0.clone()))
    }
}

/// Set when a stop has begun: responses carry `Connection: close` and idle connections end, so
/// clients move to another instance while this one still answers.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_admit_up_to_the_limit_and_release_on_drop() {
        let c = Connections::default();
        let a = c.try_enter(2);
        let b = c.try_enter(2);
        assert!(a.is_some() && b.is_some());
        assert!(c.try_enter(2).is_none());
        drop(a);
        assert_eq!(c.get(), 1);
        assert!(c.try_enter(2).is_some());
    }
}
