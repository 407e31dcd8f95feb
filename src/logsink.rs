//! Where the JSON log lines (audit and operational) go: stdout, buffered. Lines are gathered in
//! memory and written in one `write` when 32 KiB have piled up or the oldest is `interval` old,
//! like Nginx's `access_log … buffer= flush=` and Envoy's file flush interval. Without it every
//! request cost a `write` on stdout — under Kubernetes a pipe whose reader the kernel must wake.
//! Each thread appends to a buffer of its own (one of `SHARDS`), so worker threads do not queue
//! on one lock or bounce one buffer's cache lines per request; only the write itself is shared.
//!
//! What it does not do: survive SIGKILL. Lines younger than `interval` are lost if the process is
//! killed without a chance to run [`LogSink::flush`]; a clean stop (SIGTERM, SIGINT, the end of
//! `serve`) flushes. `interval == 0` writes every line at once, in the order written. Buffered,
//! one thread's lines keep their order; lines of different threads may be written up to
//! `interval` apart from the order they were logged in (each carries its own timestamp).

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Write a thread's buffer when this much is in it, whatever its age.
const FLUSH_BYTES: usize = 32 * 1024;

/// Buffers per sink: threads get one each, round robin; more threads than this share.
const SHARDS: usize = 8;

/// The default age limit of a buffered line.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);

static GLOBAL: OnceLock<LogSink> = OnceLock::new();

/// The process's stdout sink, shared by `tracing` and the audit lines; made from the
/// environment on first use.
pub fn global() -> &'static LogSink {
    GLOBAL.get_or_init(LogSink::stdout_from_env)
}

/// Writes out the process's sink, if there is one: for paths that leave through
/// `std::process::exit`, which runs no destructors.
pub fn flush_global() {
    if let Some(s) = GLOBAL.get() {
        s.flush();
    }
}

/// The calling thread's buffer, assigned round robin on first use.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static MINE: Cell<usize> = const { Cell::new(usize::MAX) });
    MINE.try_with(|c| {
        if c.get() == usize::MAX {
            c.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        c.get()
    })
    .unwrap_or(0)
}

/// Buffered, shared, line-preserving stdout (or any writer, for tests).
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

struct Shared {
    buffers: Box<[Buffer]>,
    out: Mutex<Box<dyn Write + Send>>,
    interval: Duration,
}

/// One thread's pending lines, on cache lines of its own.
#[repr(align(64))]
#[derive(Default)]
struct Buffer(Mutex<Pending>);

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// When the oldest unwritten byte arrived.
    since: Option<Instant>,
}

impl LogSink {
    /// Lines to `out`, written within `interval` of arriving. A background thread writes a quiet
    /// sink's leftovers; it stops when the last handle to the sink is dropped.
    pub fn new(out: Box<dyn Write + Send>, interval: Duration) -> Self {
        let shared = Arc::new(Shared {
            buffers: (0..SHARDS).map(|_| Buffer::default()).collect(),
            out: Mutex::new(out),
            interval,
        });
        if !interval.is_zero() {
            let weak = Arc::downgrade(&shared);
            let _ = std::thread::Builder::new()
                .name("sigproxy log flush".into())
                .spawn(move || {
                    while let Some(s) = weak.upgrade() {
                        s.flush_if_older(s.interval);
                        let wait = s.interval;
                        drop(s);
                        std::thread::sleep(wait);
                    }
                });
        }
        Self { shared }
    }

    /// Stdout with the interval from `SIGPROXY_LOG_FLUSH_MS` (0 = unbuffered), else 200 ms.
    pub fn stdout_from_env() -> Self {
        let interval = std::env::var("SIGPROXY_LOG_FLUSH_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_INTERVAL, Duration::from_millis);
        Self::new(Box::new(io::stdout()), interval)
    }

    /// One whole line (ending in `\n`), written by a caller that formats its own lines.
    pub fn write_line(&self, line: &[u8]) {
        self.shared.push(line);
    }

    /// Write out everything buffered now.
    pub fn flush(&self) {
        self.shared.flush_if_older(Duration::ZERO);
    }
}

/// A lock whose holder panicked leaves bytes, not broken invariants: keep going.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn flush_if_older(&self, age: Duration) {
        for b in self.buffers.iter() {
            let ready = {
                let mut p = lock(&b.0);
                if p.since.is_some_and(|t| t.elapsed() >= age) {
                    p.take()
                } else {
                    None
                }
            };
            if let Some(bytes) = ready {
                self.write_out(&bytes);
            }
        }
    }

    fn push(&self, line: &[u8]) {
        if self.interval.is_zero() {
            self.write_out(line);
            return;
        }
        let Some(b) = self.buffers.get(shard()) else {
            return;
        };
        let ready = {
            let mut p = lock(&b.0);
            if p.buf.capacity() == 0 {
                p.buf.reserve(FLUSH_BYTES + 1024);
            }
            p.buf.extend_from_slice(line);
            let since = *p.since.get_or_insert_with(Instant::now);
            if p.buf.len() >= FLUSH_BYTES || since.elapsed() >= self.interval {
                p.take()
            } else {
                None
            }
        };
        // Written outside the thread's buffer lock: the other threads' buffers keep filling.
        if let Some(bytes) = ready {
            self.write_out(&bytes);
        }
    }

    fn write_out(&self, bytes: &[u8]) {
        let mut out = lock(&self.out);
        // Nowhere to report a failed log write: the lines are dropped, the request goes on.
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }
}

impl Pending {
    /// The pending bytes, leaving an empty buffer of the same capacity behind.
    fn take(&mut self) -> Option<Vec<u8>> {
        self.since = None;
        let cap = self.buf.capacity();
        Some(std::mem::replace(&mut self.buf, Vec::with_capacity(cap)))
    }
}

/// One event's writer: tracing's formatter writes the whole line, then drops it.
pub struct LineWriter<'a> {
    sink: &'a LogSink,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.sink.shared.push(line);
        Ok(line.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { sink: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can look into.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);
    impl Write for Seen {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Seen {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn unbuffered_writes_each_line() {
        let seen = Seen::default();
        let sink = LogSink::new(Box::new(seen.clone()), Duration::ZERO);
        sink.make_writer().write_all(b"a\n").unwrap();
        assert_eq!(seen.text(), "a\n");
    }

    #[test]
    fn buffered_lines_wait_for_flush_and_keep_order() {
        let seen = Seen::default();
        let sink = LogSink::new(Box::new(seen.clone()), Duration::from_secs(3600));
        sink.make_writer().write_all(b"one\n").unwrap();
        sink.make_writer().write_all(b"two\n").unwrap();
        assert_eq!(seen.text(), "");
        sink.flush();
        assert_eq!(seen.text(), "one\ntwo\n");
        sink.flush();
        assert_eq!(seen.text(), "one\ntwo\n");
    }

    #[test]
    fn a_full_buffer_is_written_at_once() {
        let seen = Seen::default();
        let sink = LogSink::new(Box::new(seen.clone()), Duration::from_secs(3600));
        let line = vec![b'x'; 1000];
        for _ in 0..(FLUSH_BYTES / 1000 + 1) {
            sink.make_writer().write_all(&line).unwrap();
        }
        assert!(seen.text().len() >= FLUSH_BYTES);
    }

    #[test]
    fn each_threads_lines_stay_whole_and_in_order() {
        let seen = Seen::default();
        let sink = LogSink::new(Box::new(seen.clone()), Duration::from_secs(3600));
        std::thread::scope(|s| {
            for t in 0..(SHARDS + 2) {
                let sink = &sink;
                s.spawn(move || {
                    for i in 0..2_000 {
                        sink.write_line(format!("t{t} {i:05} {}\n", "x".repeat(40)).as_bytes());
                    }
                });
            }
        });
        sink.flush();
        let text = seen.text();
        let mut next = vec![0usize; SHARDS + 2];
        for line in text.lines() {
            let mut f = line.split(' ');
            let t: usize = f.next().unwrap()[1..].parse().unwrap();
            let i: usize = f.next().unwrap().parse().unwrap();
            assert_eq!(f.next().unwrap().len(), 40, "{line}");
            assert_eq!(i, next[t], "thread {t} out of order");
            next[t] += 1;
        }
        assert!(next.iter().all(|&n| n == 2_000), "{next:?}");
    }

    #[test]
    fn a_quiet_sink_is_flushed_by_the_background_thread() {
        let seen = Seen::default();
        let sink = LogSink::new(Box::new(seen.clone()), Duration::from_millis(20));
        sink.make_writer().write_all(b"late\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(seen.text(), "late\n");
    }
}
