//! Idle upstream connections kept for the next request: ours, not Pingora's connector pool.
//!
//! Pingora's pool (`TransportConnector::release_stream` / `reused_stream`) spawns a task per
//! released connection to watch it while idle, with a timer, a `Mutex` around the stream and two
//! channels to call the watcher off again: per request a task spawned, woken and finished, a
//! timer armed and dropped, and about six allocations — ~8,000 instructions, more than anything
//! else the passthrough adds to its engine. Here a released connection is just pushed on a list:
//! - it is checked before it is kept and again when it is taken (one poll of a read, never a
//!   wait: a connection that is closed, broken or has unasked-for bytes is dropped);
//! - the list is per worker thread (a shard chosen once per thread, so threads do not contend),
//!   last in, first out, so the warmest connection goes first and the coldest age out; a thread
//!   whose list has none for the upstream takes one from another thread's before connecting;
//! - one sweeper task per pool closes, every [`SWEEP`], what has idled past its time or been
//!   closed by the upstream meanwhile (Pingora's watcher closes those at once; here within a
//!   second — the same bound nginx's upstream keepalive cache has for expiry, none for closes).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

/// How often the sweeper closes expired and dead idle connections.
pub const SWEEP: Duration = Duration::from_secs(1);

/// Idle connections kept per worker thread (Pingora's connector kept 128 in all). Enough for
/// every one of 128 concurrent requests on one thread to find its connection again.
pub const PER_THREAD: usize = 128;

/// Shards: threads beyond this share one (`thread index % SHARDS`).
const SHARDS: usize = 16;

/// The idle connections, by upstream (`Peer::reuse_hash`, which covers address and TLS
/// settings: a reload that changes either stops reusing the old connections, and they age out).
pub struct Pool {
    shards: [Mutex<VecDeque<Idle>>; SHARDS],
    sweeping: AtomicBool,
    me: Weak<Pool>,
}

struct Idle {
    key: u64,
    stream: Stream,
    /// `None`: kept until the upstream closes it or the list overflows.
    expires: Option<Instant>,
}

impl Pool {
    pub fn new() -> Arc<Pool> {
        Arc::new_cyclic(|me| Pool {
            shards: std::array::from_fn(|_| Mutex::new(VecDeque::new())),
            sweeping: AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// The most recently released live connection to `key`: this thread's first, then any
    /// other thread's (a new connection costs far more than looking), else `None`.
    pub fn take(&self, key: u64) -> Option<Stream> {
        let now = Instant::now();
        let own = thread_shard();
        (0..SHARDS).find_map(|n| self.take_from((own + n) % SHARDS, key, now))
    }

    fn take_from(&self, shard: usize, key: u64, now: Instant) -> Option<Stream> {
        loop {
            let mut idle = {
                let mut shard = lock(&self.shards[shard]);
                drop_expired(&mut shard, now);
                let at = shard.iter().rposition(|i| i.key == key)?;
                shard.remove(at)?
            };
            if reusable(&mut idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// Keep `stream` (a connection to `key` whose exchange ended cleanly) for `idle_timeout`.
    pub fn put(&self, key: u64, mut stream: Stream, idle_timeout: Option<Duration>) {
        if idle_timeout == Some(Duration::ZERO) || !reusable(&mut stream) {
            return;
        }
        let now = Instant::now();
        let idle = Idle {
            key,
            stream,
            expires: idle_timeout.and_then(|t| now.checked_add(t)),
        };
        let overflow = {
            let mut shard = lock(&self.shards[thread_shard()]);
            drop_expired(&mut shard, now);
            let overflow = if shard.len() >= PER_THREAD {
                shard.pop_front()
            } else {
                None
            };
            shard.push_back(idle);
            overflow
        };
        drop(overflow);
        self.start_sweeper();
    }

    /// Close what has expired, and what the upstream closed (or wrote to) while it idled.
    pub fn sweep(&self) {
        let now = Instant::now();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain_mut(|i| !expired(i, now) && reusable(&mut i.stream));
        }
    }

    /// Idle connections kept, over all threads.
    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// The sweeper runs on the runtime that first released a connection, for as long as the
    /// pool lives.
    fn start_sweeper(&self) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP).await;
                match me.upgrade() {
                    Some(pool) => pool.sweep(),
                    None => return,
                }
            }
        });
    }
}

/// A poisoned shard (a panic while it was held) is still a list of sockets: go on using it.
fn lock(m: &Mutex<VecDeque<Idle>>) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn expired(i: &Idle, now: Instant) -> bool {
    i.expires.is_some_and(|e| e <= now)
}

/// The oldest are at the front (entries are pushed at the back with the same timeout per
/// upstream); drop them while they have expired. The sweeper catches any other order.
fn drop_expired(shard: &mut VecDeque<Idle>, now: Instant) {
    while shard.front().is_some_and(|i| expired(i, now)) {
        shard.pop_front();
    }
}

/// This thread's shard, assigned in turn the first time a thread asks.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// Whether an idle connection can carry a request: one read polled, never awaited. Nothing to
/// read (`Pending`) is the only good answer; end of stream, an error, or bytes nobody asked for
/// (a late or unsolicited response) all mean the connection goes. `unconstrained`: tokio's
/// per-task budget must not make a read look pending when it is not.
fn reusable(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let read = tokio::task::unconstrained(stream.read(&mut byte));
    let mut read = std::pin::pin!(read);
    matches!(
        read.as_mut().poll(&mut Context::from_waker(Waker::noop())),
        Poll::Pending
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::protocols::l4::stream::Stream as L4Stream;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair on loopback: our end as Pingora's `Stream`, and the server's end.
    async fn pair() -> (Stream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let ours: Stream = Box::new(L4Stream::from(c.unwrap()));
        (ours, s.unwrap().0)
    }

    /// Lets the reactor see what the peer did (a FIN, bytes) before the next poll.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn the_last_released_comes_back_first_and_only_for_its_key() {
        let pool = Pool::new();
        let (a, _sa) = pair().await;
        let (b, _sb) = pair().await;
        let (c, _sc) = pair().await;
        let (ida, idb, idc) = (a.id(), b.id(), c.id());
        pool.put(1, a, Some(Duration::from_secs(60)));
        pool.put(1, b, Some(Duration::from_secs(60)));
        pool.put(2, c, Some(Duration::from_secs(60)));
        assert_eq!(pool.idle(), 3);
        assert_eq!(pool.take(1).map(|s| s.id()), Some(idb));
        assert_eq!(pool.take(2).map(|s| s.id()), Some(idc));
        assert_eq!(pool.take(2).map(|s| s.id()), None);
        assert_eq!(pool.take(1).map(|s| s.id()), Some(ida));
        assert!(pool.take(1).is_none());
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_or_wrote_to_is_never_handed_out() {
        let pool = Pool::new();
        let (a, sa) = pair().await;
        let (b, mut sb) = pair().await;
        let (c, _sc) = pair().await;
        let idc = c.id();
        pool.put(7, c, Some(Duration::from_secs(60)));
        pool.put(7, a, Some(Duration::from_secs(60)));
        pool.put(7, b, Some(Duration::from_secs(60)));
        drop(sa); // closed while idle
        sb.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap(); // a response nobody asked for
        settle().await;
        assert_eq!(
            pool.take(7).map(|s| s.id()),
            Some(idc),
            "skipped both bad ones"
        );
        assert_eq!(pool.idle(), 0, "and dropped them");
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_kept_and_the_sweeper_closes_the_rest() {
        let pool = Pool::new();
        let (a, sa) = pair().await;
        drop(sa);
        settle().await;
        pool.put(1, a, Some(Duration::from_secs(60)));
        assert_eq!(pool.idle(), 0, "closed before it was released");

        let (b, sb) = pair().await;
        let (c, mut sc) = pair().await;
        pool.put(1, b, Some(Duration::from_secs(60)));
        pool.put(1, c, Some(Duration::from_millis(1)));
        drop(sb);
        settle().await;
        pool.sweep();
        assert_eq!(pool.idle(), 0, "one closed by its peer, one expired");
        // Dropped means closed: the server's end sees end of stream.
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), sc.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn expired_connections_are_not_handed_out_even_before_a_sweep() {
        let pool = Pool::new();
        let (a, _sa) = pair().await;
        pool.put(1, a, Some(Duration::from_millis(1)));
        settle().await;
        assert!(pool.take(1).is_none());
        let (b, _sb) = pair().await;
        pool.put(1, b, Some(Duration::ZERO));
        assert_eq!(pool.idle(), 0, "a zero idle time keeps nothing");
    }

    #[tokio::test]
    async fn a_full_list_lets_its_oldest_go() {
        let pool = Pool::new();
        let mut servers = Vec::new();
        let mut first = None;
        for n in 0..=PER_THREAD {
            let (s, peer) = pair().await;
            if n == 0 {
                first = Some(s.id());
            }
            servers.push(peer);
            pool.put(3, s, None);
        }
        assert_eq!(pool.idle(), PER_THREAD);
        let mut ids = Vec::new();
        while let Some(s) = pool.take(3) {
            ids.push(s.id());
        }
        assert_eq!(ids.len(), PER_THREAD);
        assert!(!ids.contains(&first.unwrap()), "the oldest was let go");
    }

    #[tokio::test]
    async fn a_thread_whose_list_is_empty_takes_another_threads() {
        let pool = Pool::new();
        let (a, _sa) = pair().await;
        let id = a.id();
        pool.put(5, a, Some(Duration::from_secs(60)));
        let got = std::thread::scope(|s| s.spawn(|| pool.take(5).map(|s| s.id())).join());
        assert_eq!(got.unwrap(), Some(id));
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sweeper_runs_on_its_own() {
        let pool = Pool::new();
        let (a, mut sa) = pair().await;
        pool.put(1, a, Some(Duration::from_millis(10)));
        let mut buf = [0u8; 1];
        // Bounded: the sweeper closes it within SWEEP (+ slack on a busy machine).
        let n = tokio::time::timeout(SWEEP * 10, sa.read(&mut buf))
            .await
            .expect("the sweeper closed the expired connection")
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(pool.idle(), 0);
    }
}
