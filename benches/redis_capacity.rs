//! Replay-check capacity of one sigproxy process (issue 15 item 4): how many nonce checks per second
//! the store answers with many requests in flight, for the memory store (the baseline, same run),
//! one `redis-server`, and a 3-master Redis Cluster (with replicas), all on loopback. Each store
//! runs `ROUNDS` times for `SECONDS` seconds; the medians go to stdout as a Markdown table for
//! benches/RESULTS.md. Not part of CI.
//!
//!   cargo bench --bench redis_capacity            # needs redis-server and redis-cli
//!   SECONDS=5 ROUNDS=3 INFLIGHT=256 cargo bench --bench redis_capacity

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/scale_common/redis_topology.rs"]
#[allow(dead_code)]
mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sigproxy::policy::RedisTopology;
use sigproxy::replay::{
    DEFAULT_TIMEOUTS, Freshness, LinkConfig, MemoryStore, NonceStore, RedisStore, RedisStoreConfig,
};

const TTL: Duration = Duration::from_secs(330);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    ops_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

/// `inflight` tasks each check fresh nonces back to back for `seconds`.
fn measure(store: Arc<dyn NonceStore>, inflight: usize, seconds: u64, tag: &str) -> Run {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Warm-up: the connection(s) and the server's tables.
        for i in 0..500 {
            let _ = store
                .check_and_remember("warm", &format!("{tag}-{i}"), TTL, 0)
                .await;
        }
        let errors = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for w in 0..inflight {
            let (store, errors) = (store.clone(), errors.clone());
            let tag = tag.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(4096);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    // The memory store never waits: without this its tasks would never let the
                    // others (or the runtime's timers) run.
                    if i % 64 == 63 {
                        tokio::task::yield_now().await;
                    }
                    let t = Instant::now();
                    match store
                        .check_and_remember("bench", &format!("{tag}-{w}-{i}"), TTL, 0)
                        .await
                    {
                        Ok(Freshness::Fresh) => lat.push(t.elapsed()),
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let elapsed = start.elapsed().as_secs_f64();
        all.sort();
        let q = |f: f64| all[((all.len() - 1) as f64 * f) as usize].as_secs_f64() * 1e6;
        Run {
            ops_per_s: all.len() as f64 / elapsed,
            p50_us: q(0.5),
            p99_us: q(0.99),
            errors: errors.load(Ordering::Relaxed),
        }
    })
}

/// Builds a fresh store for one round.
type MakeStore<'a> = Box<dyn Fn() -> Arc<dyn NonceStore> + 'a>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` (CI) runs this without it, and
    // a minute of load against a cluster is not a test: skip.
    if !std::env::args().any(|a| a == "--bench") {
        println!("redis_capacity: a benchmark; run it with `cargo bench --bench redis_capacity`");
        return;
    }
    let seconds = env("SECONDS", 5);
    let rounds = env("ROUNDS", 3) as usize;
    let inflight = env("INFLIGHT", 256) as usize;
    let single = topology::SingleRedis::start();
    let cluster = topology::Cluster::start();
    let redis = |topology: RedisTopology| -> Arc<dyn NonceStore> {
        Arc::new(
            RedisStore::new(&RedisStoreConfig {
                link: LinkConfig {
                    topology,
                    password: None,
                    certificates: None,
                    timeouts: DEFAULT_TIMEOUTS,
                },
                key_prefix: String::new(),
            })
            .unwrap(),
        )
    };
    let stores: Vec<(&str, MakeStore)> = vec![
        (
            "memory (baseline)",
            Box::new(|| Arc::new(MemoryStore::new(20_000_000).unwrap())),
        ),
        (
            "redis, one server",
            Box::new(|| redis(RedisTopology::Standalone { url: single.url() })),
        ),
        (
            "redis cluster, 3 masters + 3 replicas",
            Box::new(|| {
                redis(RedisTopology::Cluster {
                    nodes: cluster.seed_urls(),
                })
            }),
        ),
    ];
    println!(
        "replay-check capacity, one process, {inflight} checks in flight, 2 tokio workers, {rounds} x {seconds} s (medians)\n"
    );
    println!("| store | checks/s | p50 µs | p99 µs | errors | ratio to memory |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut baseline = None;
    for (name, make) in &stores {
        let runs: Vec<Run> = (0..rounds)
            .map(|r| measure(make(), inflight, seconds, &format!("{name}-{r}")))
            .collect();
        let ops = median(runs.iter().map(|r| r.ops_per_s).collect());
        let p50 = median(runs.iter().map(|r| r.p50_us).collect());
        let p99 = median(runs.iter().map(|r| r.p99_us).collect());
        let errors: u64 = runs.iter().map(|r| r.errors).sum();
        let base = *baseline.get_or_insert(ops);
        println!(
            "| {name} | {ops:.0} | {p50:.0} | {p99:.0} | {errors} | {:.3} |",
            ops / base
        );
    }
}
