//! Key sets at scale (issue 18): 10k / 100k / 1M keys in key files of 10,000 each, and a JWKS key
//! directory of 10k / 100k keys. Each size runs in a child process of its own (this binary again)
//! so that memory is measured on a clean process. Printed per size:
//!
//! - library: `LivePolicy::load` wall and CPU time per key, RSS growth per key (mimalloc, as the
//!   binary), the key structures' own heap bytes per key, `LivePolicy::reload` after one key file
//!   changed (one key revoked) and after nothing changed;
//! - the release binary (`sigproxy check-config`, `sigproxy run`): check-config time, start → ready
//!   (`/readyz` 200), RSS per key over the same binary with no keys, and the revocation latency end
//!   to end: one key file edited → `/status` shows the key revoked (watcher poll included);
//! - the directory: first fetch (HTTP + parse + apply), RSS per key, a 304 refresh and a refresh
//!   answered 200 with the same bytes (neither must parse or apply anything).
//!
//! Run: `cargo bench --bench keyset` (all sizes, ~2 min), or `KEYSET_SIZES=10000,100000`;
//! `KEYSET_ROUNDS=3` runs every size of the library and binary tables three times, interleaved,
//! and adds the median of each column.
//! Everything binds 127.0.0.1 ephemeral ports and writes to a temp dir. No timed assertion: the
//! numbers are printed for benches/RESULTS.md; correctness (the key really is revoked, the 304
//! really did not re-apply) is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use sigproxy::keys::{DirectoryConfig, KeyDirectory, KeyStatus};
use sigproxy::live::LivePolicy;
use sigproxy::policy::FoundOverrides;

const PER_FILE: usize = 10_000;
const POOL: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name))
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(n) = value("--child-load=") {
        child_load(n);
        return;
    }
    if let Some(n) = value("--child-jwks=") {
        child_jwks(n);
        return;
    }
    let sizes: Vec<usize> = std::env::var("KEYSET_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let rounds: usize = std::env::var("KEYSET_ROUNDS")
        .ok()
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or(1)
        .clamp(1, 9);
    if rounds > 1 {
        println!(
            "{rounds} rounds per size, interleaved: every round's row (`N rR`), then each \
             column's median (`N median`)."
        );
        println!();
    }
    println!("## library (LivePolicy::load / reload), one child process per size");
    println!(
        "| keys | load s | load µs/key | CPU µs/key | RSS B/key | key heap B/key | reload, 1 file changed, s | reload, nothing changed, s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    rounds_of(&sizes, rounds, |n| run_child("--child-load", n));
    println!();
    println!("## release binary (`sigproxy check-config`, `sigproxy run`)");
    println!(
        "| keys | check-config s | start → ready s | µs/key (ready) | RSS B/key | revoke one key → applied s |"
    );
    println!("|---|---|---|---|---|---|");
    let base_rss = binary_baseline_rss();
    rounds_of(&sizes, rounds, |n| binary_row(n, base_rss));
    println!();
    println!("## key directory (JWKS over HTTP on 127.0.0.1)");
    println!(
        "| keys | first fetch s | µs/key | RSS B/key | key heap B/key | 304 refresh ms | 200 same bytes ms | applies after the 3 fetches |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes.iter().copied().filter(|&n| n <= 100_000) {
        println!("{}", run_child("--child-jwks", n));
    }
}

/// Every size `rounds` times (round by round, so that a noisy minute spreads over the sizes),
/// each row printed as it comes; with more than one round, then the median of every column.
fn rounds_of(sizes: &[usize], rounds: usize, mut row: impl FnMut(usize) -> String) {
    let mut rows: Vec<Vec<String>> = vec![Vec::new(); sizes.len()];
    for r in 1..=rounds {
        for (i, &n) in sizes.iter().enumerate() {
            let line = row(n);
            if rounds > 1 {
                // The key count cell says which round: `| 10000 r2 | …`.
                println!(
                    "{}",
                    line.replacen(&format!("| {n} |"), &format!("| {n} r{r} |"), 1)
                );
            } else {
                println!("{line}");
            }
            rows[i].push(line);
        }
    }
    if rounds > 1 {
        for r in &rows {
            println!("{}", median_row(r));
        }
    }
}

/// `| a | b | … |` rows → one row of each column's median (the lower middle value for an even
/// count), printed with the first row's decimals; the key count is left as it is.
fn median_row(rows: &[String]) -> String {
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| {
            r.trim_matches(|c| c == '|' || c == ' ')
                .split(" | ")
                .collect()
        })
        .collect();
    let width = cells.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(width);
    for c in 0..width {
        let first = cells[0].get(c).copied().unwrap_or("");
        let mut v: Vec<f64> = cells
            .iter()
            .filter_map(|r| r.get(c).and_then(|x| x.parse().ok()))
            .collect();
        if c == 0 || v.len() != cells.len() {
            out.push(first.to_owned());
            continue;
        }
        v.sort_by(f64::total_cmp);
        let m = v[(v.len() - 1) / 2];
        let decimals = first.split_once('.').map_or(0, |(_, d)| d.len());
        out.push(format!("{m:.decimals$}"));
    }
    if let Some(keys) = out.first_mut() {
        keys.push_str(" median");
    }
    format!("| {} |", out.join(" | "))
}

fn run_child(flag: &str, n: usize) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg(format!("{flag}={n}"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{flag}={n} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Key files

/// `POOL` distinct public keys (base64), cycled: decoding cost does not depend on repetition.
fn pool() -> Vec<String> {
    (0..POOL as u32)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let vk = SigningKey::from_bytes(&seed).verifying_key();
            base64::engine::general_purpose::STANDARD.encode(vk.as_bytes())
        })
        .collect()
}

fn key_id(i: usize) -> String {
    format!("key-{i:07}")
}

/// One key file in the layout `sigproxy keygen` prints; key `revoked` (if any) revoked.
fn key_file(pool: &[String], range: std::ops::Range<usize>, revoked: Option<usize>) -> String {
    let mut s = String::with_capacity(range.len() * 140 + 8);
    s.push_str("keys:\n");
    for i in range {
        let status = if Some(i) == revoked {
            "revoked"
        } else {
            "active"
        };
        s.push_str(&format!(
            "  - key_id: {}\n    client_id: client-{:07}\n    public_key: \"{}\"\n    status: {status}\n",
            key_id(i),
            i / 4,
            pool[i % pool.len()]
        ));
    }
    s
}

struct Keys {
    _dir: tempfile::TempDir,
    policy: PathBuf,
    pool: Vec<String>,
    n: usize,
}

impl Keys {
    /// `n` keys in files of `PER_FILE`, and a policy naming them (listen/admin on `ports`).
    fn write(n: usize, ports: (u16, u16)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let pool = pool();
        for f in 0..n.div_ceil(PER_FILE) {
            let range = f * PER_FILE..((f + 1) * PER_FILE).min(n);
            std::fs::write(
                keys.join(format!("k{f:04}.yaml")),
                key_file(&pool, range, None),
            )
            .unwrap();
        }
        let policy = dir.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "mode: required\nlisten: \"127.0.0.1:{}\"\nadmin_listen: \"127.0.0.1:{}\"\nupstream: \"127.0.0.1:9\"\nthreads: 1\nshutdown_grace_seconds: 0\nkey_files: [\"keys/*.yaml\"]\n",
                ports.0, ports.1
            ),
        )
        .unwrap();
        Self {
            _dir: dir,
            policy,
            pool,
            n,
        }
    }

    /// The key in the middle of the set, and its file.
    fn victim(&self) -> (usize, PathBuf) {
        let i = self.n / 2;
        let f = i / PER_FILE;
        let path = self
            .policy
            .parent()
            .unwrap()
            .join(format!("keys/k{f:04}.yaml"));
        (i, path)
    }

    /// Rewrites the victim's file with the victim revoked (write to a temp name, rename: what
    /// key management tools and the kubelet do).
    fn revoke_victim(&self) -> usize {
        let (i, path) = self.victim();
        let f = i / PER_FILE;
        let range = f * PER_FILE..((f + 1) * PER_FILE).min(self.n);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, key_file(&self.pool, range, Some(i))).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        i
    }
}

// ---------------------------------------------------------------------------------------------
// Process measurements

/// Resident set size of `pid` ("self" for this process), bytes.
fn rss(pid: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// User + system CPU seconds of this process, all threads (clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 3 of stat(5), so utime (14) and stime (15) are 11, 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn settle_rss(pid: &str) -> usize {
    // mimalloc returns freed pages after a short delay; read once it has.
    std::thread::sleep(Duration::from_millis(300));
    rss(pid)
}

fn child_load(n: usize) {
    let keys = Keys::write(n, (0, 0));
    let rss0 = settle_rss("self");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let rt = LivePolicy::load(&keys.policy, FoundOverrides::default(), 0).unwrap();
    let load = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    assert_eq!(rt.snapshot().keys.len(), n);
    let rss1 = settle_rss("self");
    let heap: usize = rt
        .snapshot()
        .keys
        .layers()
        .iter()
        .map(|l| l.heap_bytes())
        .sum();

    let victim = keys.revoke_victim();
    let t = Instant::now();
    assert!(rt.reload(1).unwrap());
    let reload = t.elapsed().as_secs_f64();
    let live = rt.snapshot();
    let k = live.keys.get(&key_id(victim)).unwrap();
    assert_eq!(k.status, KeyStatus::Revoked);
    assert_eq!(live.keys.len(), n);
    let t = Instant::now();
    assert!(!rt.reload(2).unwrap());
    let noop = t.elapsed().as_secs_f64();

    let per = |x: f64| x / n as f64;
    println!(
        "| {n} | {load:.3} | {:.2} | {:.2} | {:.0} | {:.0} | {reload:.3} | {noop:.3} |",
        per(load) * 1e6,
        per(cpu) * 1e6,
        rss1.saturating_sub(rss0) as f64 / n as f64,
        heap as f64 / n as f64,
    );
}

// ---------------------------------------------------------------------------------------------
// The release binary

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sigproxy")
}

/// `GET path` on 127.0.0.1:`port`; (status, body), or None when nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sigproxy run`; returns it and the seconds until `/readyz` answered 200.
fn start(policy: &Path, admin: u16) -> (Running, f64) {
    let t0 = Instant::now();
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(policy)
        .env("SIGPROXY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = t0 + Duration::from_secs(300);
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!("sigproxy run exited: {status}");
        }
        if http_get(admin, "/readyz").is_some_and(|(s, _)| s == 200) {
            return (running, t0.elapsed().as_secs_f64());
        }
        assert!(Instant::now() < deadline, "not ready in 300 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn revoked_count(admin: u16) -> Option<u64> {
    let (_, body) = http_get(admin, "/status")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["keys"]["revoked"].as_u64()
}

fn binary_baseline_rss() -> usize {
    let ports = (free_port(), free_port());
    let keys = Keys::write(0, ports);
    let (running, _) = start(&keys.policy, ports.1);
    settle_rss(&running.0.id().to_string())
}

fn binary_row(n: usize, base_rss: usize) -> String {
    let ports = (free_port(), free_port());
    let keys = Keys::write(n, ports);
    let t = Instant::now();
    let out = Command::new(bin())
        .arg("check-config")
        .arg(&keys.policy)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let check = t.elapsed().as_secs_f64();
    assert!(out.status.success());
    let (running, ready) = start(&keys.policy, ports.1);
    let rss = settle_rss(&running.0.id().to_string());
    assert_eq!(revoked_count(ports.1), Some(0));
    let t = Instant::now();
    keys.revoke_victim();
    let deadline = t + Duration::from_secs(120);
    while revoked_count(ports.1) != Some(1) {
        assert!(Instant::now() < deadline, "revocation not applied in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let revoke = t.elapsed().as_secs_f64();
    format!(
        "| {n} | {check:.3} | {ready:.3} | {:.2} | {:.0} | {revoke:.3} |",
        ready / n as f64 * 1e6,
        rss.saturating_sub(base_rss) as f64 / n as f64
    )
}

// ---------------------------------------------------------------------------------------------
// The JWKS key directory

/// Serves `body` with ETag "v1"; answers 304 to `If-None-Match: "v1"` unless `honour` is off.
struct Server {
    port: u16,
    honour_etag: Arc<std::sync::atomic::AtomicBool>,
}

fn serve(body: String) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let honour = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = honour.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                if c.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            // Head and body written apart: a copy of the body here would count in the RSS
            // this process measures as the key directory's.
            if h.load(Ordering::SeqCst) && head.contains("if-none-match: \"v1\"") {
                let _ = c.write_all(
                    b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
                );
            } else {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(head.as_bytes());
                let _ = c.write_all(body.as_bytes());
            }
        }
    });
    Server {
        port,
        honour_etag: honour,
    }
}

fn child_jwks(n: usize) {
    let pool: Vec<String> = (0..POOL as u32)
        .map(|i| {
            let mut seed = [9u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            let vk = SigningKey::from_bytes(&seed).verifying_key();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vk.as_bytes())
        })
        .collect();
    let mut body = String::with_capacity(n * 140);
    body.push_str("{\"keys\":[");
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"kty":"OKP","crv":"Ed25519","kid":"{}","client_id":"client-{:07}","alg":"EdDSA","use":"sig","x":"{}"}}"#,
            key_id(i),
            i / 4,
            pool[i % POOL]
        ));
    }
    body.push_str("]}");
    let server = serve(body);
    let applies = Arc::new(AtomicUsize::new(0));
    let counted = applies.clone();
    let dir = KeyDirectory::new(
        DirectoryConfig::new(format!("http://127.0.0.1:{}/keys.jwks", server.port), 300),
        move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rss0 = settle_rss("self");
    let t = Instant::now();
    rt.block_on(dir.refresh()).unwrap();
    let first = t.elapsed().as_secs_f64();
    let rss1 = settle_rss("self");
    assert_eq!(dir.records().len(), n);
    let heap = dir.records().heap_bytes();
    let t = Instant::now();
    rt.block_on(dir.refresh()).unwrap();
    let not_modified = t.elapsed().as_secs_f64();
    assert_eq!(dir.status().not_modified, 1);
    server.honour_etag.store(false, Ordering::SeqCst);
    let t = Instant::now();
    rt.block_on(dir.refresh()).unwrap();
    let same = t.elapsed().as_secs_f64();
    println!(
        "| {n} | {first:.3} | {:.2} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
        first / n as f64 * 1e6,
        rss1.saturating_sub(rss0) as f64 / n as f64,
        heap as f64 / n as f64,
        not_modified * 1e3,
        same * 1e3,
        applies.load(Ordering::SeqCst)
    );
}
