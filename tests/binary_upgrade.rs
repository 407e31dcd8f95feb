//! Binary upgrade without Kubernetes, black-box: `sigproxy run --runtime-dir D` serves steady load
//! on fresh connections (unsigned and signed); a second `sigproxy run --runtime-dir D --upgrade`
//! starts, the first gets SIGQUIT and hands its listening sockets over. Not one request may be
//! refused or fail, the upstream must see each request exactly once (signed ones with the
//! verified identity), the new process must serve (and verify) once the old one is gone, and the
//! old one must exit 0. Loopback only; every loop is bounded in count and time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::net::free_port;
use common::sidecar::{ACTIVE, ACTIVE_CLIENT, EXE, keygen, sign_with};
use common::upstream::Upstream;

/// One `sigproxy run` child with its output collected; killed on drop.
struct Proc {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

impl Proc {
    fn start(policy: &Path, runtime_dir: &Path, upgrade: bool) -> Proc {
        let mut cmd = Command::new(EXE);
        cmd.arg("run")
            .arg("--config")
            .arg(policy)
            .arg("--runtime-dir")
            .arg(runtime_dir);
        if upgrade {
            cmd.arg("--upgrade");
        }
        let mut child = cmd
            .env_remove("SIGPROXY_CONFIG")
            .env_remove("SIGPROXY_RUNTIME_DIR")
            .env("SIGPROXY_LOG", "info,pingora=info")
            .env("SIGPROXY_LOG_FLUSH_MS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Wait (bounded) for the exit; its status, or None if still running.
    fn wait_exit(&mut self, max: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The `path` of every audit line so far.
    fn audited_paths(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .filter_map(|v| v["path"].as_str().map(str::to_owned))
            .collect()
    }

    fn output(&self) -> String {
        format!(
            "stdout (last 20): {:?}\nstderr: {:?}",
            self.stdout
                .lock()
                .unwrap()
                .iter()
                .rev()
                .take(20)
                .collect::<Vec<_>>(),
            self.stderr.lock().unwrap()
        )
    }
}

/// One request on a fresh connection (`Connection: close`), never panicking: the status, or
/// what went wrong (refused, reset, timed out, no status line).
fn fresh(addr: SocketAddr, raw: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(raw).map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {} bytes: {head:?}", buf.len()))
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A raw request with `Connection: close` added after the request line.
fn closing(raw: &[u8]) -> Vec<u8> {
    let i = raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    [&raw[..i], b"Connection: close\r\n", &raw[i..]].concat()
}

#[derive(Debug)]
struct Outcome {
    target: String,
    result: Result<u16, String>,
    /// Sent after the old process had exited.
    after_old: bool,
}

#[test]
fn upgrade_hands_over_under_load_without_a_failed_request() {
    let up = Upstream::start(Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let runtime_dir = dir.path().join("run");
    std::fs::create_dir(&runtime_dir).unwrap();
    let public = keygen(dir.path(), ACTIVE, ACTIVE_CLIENT);
    let key = dir.path().join(format!("{ACTIVE}.key"));

    // The old process, on fresh ephemeral ports (retried if another test took one meanwhile).
    let policy = dir.path().join("policy.yaml");
    let mut started = None;
    for _attempt in 0..3 {
        let (p, a) = (free_port(), free_port());
        if p == a {
            continue;
        }
        std::fs::write(
            &policy,
            format!(
                "listen: \"127.0.0.1:{p}\"\nadmin_listen: \"127.0.0.1:{a}\"\nupstream: \"{}\"\n\
                 threads: 2\nshutdown_grace_seconds: 5\nmode: hybrid\n\
                 routes:\n  - {{ path_prefix: /signed/, mode: required }}\n\
                 keys:\n  - {{ key_id: {ACTIVE}, client_id: {ACTIVE_CLIENT}, public_key: \"{public}\" }}\n",
                up.addr
            ),
        )
        .unwrap();
        let mut old = Proc::start(&policy, &runtime_dir, false);
        let admin = SocketAddr::from(([127, 0, 0, 1], a));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && old.child.try_wait().unwrap().is_none() {
            if fresh(admin, &get("/readyz")) == Ok(200) {
                started = Some((old, SocketAddr::from(([127, 0, 0, 1], p))));
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        if started.is_some() {
            break;
        }
    }
    let (mut old, addr) = started.expect("the first sigproxy did not become ready");

    // Signed requests, made before the load starts (each nonce once).
    let url = |path: &str| format!("http://{addr}{path}");
    let mut signed: Vec<(String, Vec<u8>)> = (0..45)
        .map(|i| {
            let path = format!("/signed/{i}");
            let raw = sign_with(&key, ACTIVE, "GET", &url(&path), None, &[]);
            (path, closing(&raw))
        })
        .collect();
    let reserved: Vec<_> = signed.split_off(30); // sent only once the old process is gone

    // Steady load: three unsigned clients and one signed, each a fresh connection per request,
    // paced so the machine is not saturated (every loop bounded in count and time).
    let stop = Arc::new(AtomicBool::new(false));
    let old_gone = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let hard_stop = Instant::now() + Duration::from_secs(90);
    let mut clients = Vec::new();
    for t in 0..3 {
        let (stop, old_gone, outcomes) = (stop.clone(), old_gone.clone(), outcomes.clone());
        clients.push(std::thread::spawn(move || {
            for i in 0..20_000 {
                if stop.load(Ordering::Acquire) || Instant::now() > hard_stop {
                    break;
                }
                let target = format!("/u/{t}/{i}");
                let after_old = old_gone.load(Ordering::Acquire);
                let result = fresh(addr, &get(&target));
                outcomes.lock().unwrap().push(Outcome {
                    target,
                    result,
                    after_old,
                });
                std::thread::sleep(Duration::from_millis(3));
            }
        }));
    }
    {
        let (stop, old_gone, outcomes) = (stop.clone(), old_gone.clone(), outcomes.clone());
        clients.push(std::thread::spawn(move || {
            for (target, raw) in signed {
                if stop.load(Ordering::Acquire) || Instant::now() > hard_stop {
                    break;
                }
                let after_old = old_gone.load(Ordering::Acquire);
                let result = fresh(addr, &raw);
                outcomes.lock().unwrap().push(Outcome {
                    target,
                    result,
                    after_old,
                });
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    let ok_count = || {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.result == Ok(200))
            .count()
    };
    // Until `n` requests have succeeded, for at most 30 s; whether they did.
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ok_count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        ok_count() >= n
    };
    assert!(wait_for(150), "the load never got going:\n{}", old.output());

    // The new process blocks in its bootstrap until the old one sends the sockets: start it,
    // wait until it listens on the upgrade socket, then SIGQUIT the old one.
    let mut new = Proc::start(&policy, &runtime_dir, true);
    let sock = runtime_dir.join("upgrade.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline && new.child.try_wait().unwrap().is_none(),
            "the new process never opened {}:\n{}",
            sock.display(),
            new.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let before_quit = ok_count();
    old.signal("-QUIT");
    // Pingora: sockets sent at once, 5 s until the old process stops accepting, then up to
    // shutdown_grace_seconds (5) for its in-flight requests.
    let status = old.wait_exit(Duration::from_secs(40));
    let old_paths_final = old.audited_paths();
    assert!(
        status.is_some(),
        "old process still running 40 s after SIGQUIT:\n{}",
        old.output()
    );
    old_gone.store(true, Ordering::Release);
    let during = ok_count() - before_quit;
    // More load on the new process alone (the failure check below says what went wrong).
    wait_for(ok_count() + 150);
    for (target, raw) in &reserved {
        outcomes.lock().unwrap().push(Outcome {
            target: target.clone(),
            result: fresh(addr, raw),
            after_old: true,
        });
    }
    stop.store(true, Ordering::Release);
    for c in clients {
        c.join().unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.result != Ok(200)).collect();
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.after_old).collect();
    eprintln!(
        "requests: {} in all, {} while the old process handed over and drained, {} after it exited, {} failed",
        outcomes.len(),
        during,
        after.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the hand-over, e.g. {:?}\nold: {}\nnew: {}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(10)],
        old.output(),
        new.output()
    );
    assert!(
        new.child.try_wait().unwrap().is_none(),
        "new process died:\n{}",
        new.output()
    );
    assert!(
        status.unwrap().success(),
        "old process exit status {status:?}:\n{}",
        old.output()
    );
    assert!(
        during > 0,
        "no request was served between SIGQUIT and the old process's exit"
    );

    // What the upstream received: each request exactly once, nothing else; the signed ones with
    // the verified identity.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in up.recorded() {
        *seen.entry(r.target().to_owned()).or_default() += 1;
        if r.target().starts_with("/signed/") {
            assert_eq!(
                r.header("x-datafold-client-id"),
                Some(ACTIVE_CLIENT),
                "{r:?}"
            );
        }
    }
    let sent: BTreeSet<String> = outcomes.iter().map(|o| o.target.clone()).collect();
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        sent,
        "the upstream saw other requests than were sent"
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "reached the upstream twice: {twice:?}");

    // Both processes served; everything sent after the old one exited was served (and the
    // signed requests verified) by the new one.
    let new_paths: BTreeSet<String> = new.audited_paths().into_iter().collect();
    let old_paths: BTreeSet<String> = old_paths_final.into_iter().collect();
    assert!(!old_paths.is_empty(), "the old process logged no request");
    let missing: Vec<_> = after
        .iter()
        .filter(|o| !new_paths.contains(&o.target))
        .map(|o| &o.target)
        .collect();
    assert!(
        missing.is_empty(),
        "sent after the old process exited but not served by the new one: {missing:?}"
    );
    assert!(
        reserved.iter().all(|(p, _)| new_paths.contains(p)),
        "the new process did not verify the signed requests"
    );

    new.signal("-TERM");
    let s = new.wait_exit(Duration::from_secs(30));
    assert!(
        s.is_some_and(|s| s.success()),
        "new process: {s:?}\n{}",
        new.output()
    );
}
