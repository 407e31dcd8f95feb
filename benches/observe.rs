//! The per-request observe path (metrics, the audit line's encoding and buffering, the migration
//! sample: `Observer::on_request`) run by 1 and by 2 threads at once on one shared `Metrics` and
//! log sink, as Pingora's worker threads share them. A global lock or a contended cache line on
//! that path shows here as 2 threads doing less than twice the work of one (issue 14's goal:
//! ≥ 1.8×). It measures; it asserts nothing about time.
//!
//! Two readings. Criterion's: wall-clock throughput (`thrpt`, requests/s over all threads), which
//! needs two otherwise idle CPUs to mean anything. Then a summary line per case from the threads'
//! own CPU time (`/proc/thread-self/schedstat`, ns): CPU ns per request with 1 and with 2 threads;
//! contention (cache lines bouncing, spinning) raises it, a busy machine much less so. Sleeping
//! on a lock costs no CPU, so read both.
//!
//! `cargo bench --bench observe` (`-- --quick` for a short run).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::hint::black_box;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use http::{HeaderMap, HeaderValue, Method};
use sigproxy::authn::AuditNote;
use sigproxy::decision::{AuthMethod, Event};
use sigproxy::logsink::LogSink;
use sigproxy::metrics::Metrics;
use sigproxy::observe::Observer;
use sigproxy::policy::Mode;
use sigproxy::proxy::{RequestObserver, RequestRecord};

/// What one request hands the observer: a verified signed GET on a route, or an unsigned
/// (legacy) one on the default route.
struct Fixture {
    headers: HeaderMap,
    note: Box<dyn Any + Send + Sync>,
    method: Method,
    peer: SocketAddr,
}

fn fixture(signed: bool) -> Fixture {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("bench-client/1.0 (observe)"),
    );
    let note = AuditNote {
        event: if signed {
            Event::SignatureAuthSuccess
        } else {
            Event::LegacyPass
        },
        method: if signed {
            AuthMethod::Signature
        } else {
            AuthMethod::Legacy
        },
        mode: if signed { Mode::Required } else { Mode::Hybrid },
        dry_run: false,
        dry_run_rejection: false,
        client_id: signed.then(|| "bench-client".to_owned()),
        key_id: signed.then(|| "bench-v1".to_owned()),
        code: None,
        detail: None,
        auth_latency: Duration::from_micros(41),
        store_error_allowed: false,
        route: if signed { "/api/" } else { "default" }.to_owned(),
        canary: None,
        canary_halt: None,
    };
    Fixture {
        headers,
        note: Box::new(note),
        method: Method::GET,
        peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
    }
}

fn observe_one(obs: &Observer, f: &Fixture, i: u64) {
    let rec = RequestRecord {
        request_id: "3f2a9c-000001",
        method: &f.method,
        target: b"/api/item?x=1",
        headers: &f.headers,
        peer: Some(f.peer),
        client_ip: None,
        status: 200,
        code: None,
        auth_method: Some(f.note_method()),
        detail: None,
        latency: Duration::from_micros(180 + (i & 63)),
        upstream_latency: Some(Duration::from_micros(90 + (i & 31))),
        buffered_body_bytes: 0,
        hand_forwarded: false,
        note: Some(&f.note),
    };
    obs.on_request(black_box(&rec));
}

impl Fixture {
    fn note_method(&self) -> AuthMethod {
        self.note
            .downcast_ref::<AuditNote>()
            .map_or(AuthMethod::None, |n| n.method)
    }
}

fn observer() -> Observer {
    // Audit lines are encoded and buffered as in service, then written to nowhere.
    let sink = LogSink::new(Box::new(io::sink()), Duration::from_millis(200));
    Observer::with_sink(Arc::new(Metrics::new().expect("metrics")), sink)
}

/// `threads` threads, started together, each observing `per_thread` requests; returns the wall
/// time until the last one finished and each thread's own CPU ns.
fn run(obs: &Observer, f: &Fixture, threads: usize, per_thread: u64) -> (Duration, Vec<u64>) {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let c0 = thread_cpu_ns();
                    for i in 0..per_thread {
                        observe_one(obs, f, i);
                    }
                    thread_cpu_ns().saturating_sub(c0)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let cpu: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        (t0.elapsed(), cpu)
    })
}

/// This thread's time on a CPU, ns (`/proc/thread-self/schedstat`, first field); 0 if unreadable.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn bench_threads(c: &mut Criterion) {
    // The subscriber makes `audit` lines enabled, as in service; its own output goes nowhere.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(io::sink)
        .try_init();
    for (name, signed) in [("signed", true), ("unsigned", false)] {
        let obs = observer();
        let f = fixture(signed);
        let mut g = c.benchmark_group(format!("observe/{name}"));
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
                b.iter_custom(|iters| run(&obs, &f, t, iters).0)
            });
        }
        g.finish();
    }
}

/// Wall-clock and CPU scaling from fixed runs, median of `ROUNDS`, printed as one line per case.
fn cpu_summary() {
    const PER_THREAD: u64 = 200_000;
    const ROUNDS: usize = 7;
    println!();
    println!("observe path, {PER_THREAD} requests per thread, median of {ROUNDS} rounds:");
    println!(
        "| case | 1 thread ns/req (wall) | 2 threads ns/req (wall, all) | wall scaling | CPU ns/req, 1 thread | CPU ns/req, 2 threads | CPU ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, signed) in [("signed", true), ("unsigned", false)] {
        let obs = observer();
        let f = fixture(signed);
        let _ = run(&obs, &f, 2, PER_THREAD / 4); // warm-up
        let mut wall = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (k, threads) in [1usize, 2].into_iter().enumerate() {
                let (w, c) = run(&obs, &f, threads, PER_THREAD);
                let reqs = (threads as u64 * PER_THREAD) as f64;
                wall[k].push(w.as_nanos() as f64 / reqs);
                cpu[k].push(c.iter().sum::<u64>() as f64 / reqs);
            }
        }
        let (w1, w2) = (median(&mut wall[0]), median(&mut wall[1]));
        let (c1, c2) = (median(&mut cpu[0]), median(&mut cpu[1]));
        println!(
            "| {name} | {w1:.0} | {w2:.0} | {:.2}× | {c1:.0} | {c2:.0} | {:.2} |",
            w1 / w2,
            c2 / c1
        );
    }
    println!(
        "load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

criterion_group!(benches, bench_threads);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().all(|a| a != "--list") {
        cpu_summary();
    }
}
