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

/// Set when a stop has begun: responses carry `Connection: close`, idle connections end and
/// HTTP/2 connections get a GOAWAY, so clients move to another instance while this one still
/// answers.
#[derive(Clone, Default)]
pub struct Draining(Arc<DrainState>);

#[derive(Default)]
struct DrainState {
    set: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Draining {
    pub fn start(&self) {
        self.0.set.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
    }
    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::Acquire)
    }
    /// Resolves once a stop has begun (at once if it already has).
    pub async fn wait(&self) {
        let notified = self.0.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_set() {
            return;
        }
        notified.await;
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

    #[tokio::test]
    async fn drain_wakes_waiters_and_later_callers() {
        let d = Draining::default();
        let w = tokio::spawn({
            let d = d.clone();
            async move { d.wait().await }
        });
        tokio::task::yield_now().await;
        d.start();
        tokio::time::timeout(std::time::Duration::from_secs(5), w)
            .await
            .unwrap()
            .unwrap();
        // Already draining: returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), d.wait())
            .await
            .unwrap();
    }
}
