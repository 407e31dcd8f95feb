//! The built `sigproxy` binary as a child process (`sigproxy run --config`), on ephemeral
//! 127.0.0.1 ports, with fresh keys from `sigproxy keygen`; requests signed by `sigproxy sign
//! --emit-request`. Everything bounded in time; the child is killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{Body, Conn, Response, request};
use super::net::free_port;

pub const EXE: &str = env!("CARGO_BIN_EXE_sigproxy");

/// The active key and the revoked key every sidecar knows.
pub const ACTIVE: &str = "k-active";
pub const ACTIVE_CLIENT: &str = "client-one";
pub const REVOKED: &str = "k-revoked";

pub struct Sidecar {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn keygen(dir: &Path, id: &str, client: &str) -> String {
    let out = Command::new(EXE)
        .args(["keygen", "--key-id", id, "--client-id", client, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "keygen: {out:?}");
    std::fs::read_to_string(dir.join(format!("{id}.pub")))
        .unwrap()
        .trim()
        .to_owned()
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

impl Sidecar {
    /// Start `sigproxy run` with a policy: listen/admin/upstream/keys are filled in, `extra` is
    /// appended as more top-level YAML (mode, routes, signature, replay …).
    pub fn start(upstream: impl std::fmt::Display, extra: &str) -> Self {
        Self::start_with_env(upstream, extra, &[])
    }

    /// `start` with extra environment for the proxy (set after the defaults, so they win).
    pub fn start_with_env(
        upstream: impl std::fmt::Display,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        let active = keygen(dir.path(), ACTIVE, ACTIVE_CLIENT);
        let revoked = keygen(dir.path(), REVOKED, "client-old");
        let mut last = String::new();
        for _attempt in 0..3 {
            let (p, a) = (free_port(), free_port());
            if p == a {
                continue;
            }
            let policy = format!(
                "listen: \"127.0.0.1:{p}\"\nadmin_listen: \"127.0.0.1:{a}\"\nupstream: \"{upstream}\"\n\
                 threads: 2\nshutdown_grace_seconds: 1\n\
                 keys:\n  - key_id: {ACTIVE}\n    client_id: {ACTIVE_CLIENT}\n    public_key: \"{active}\"\n\
                 \x20 - key_id: {REVOKED}\n    client_id: client-old\n    public_key: \"{revoked}\"\n    status: revoked\n\
                 {extra}\n"
            );
            let path = dir.path().join("policy.yaml");
            std::fs::write(&path, policy).unwrap();
            let mut child = Command::new(EXE)
                .arg("run")
                .arg("--config")
                .arg(&path)
                .env_remove("SIGPROXY_CONFIG")
                .env("SIGPROXY_LOG", "info,pingora=warn")
                // Tests read the log right after a request: no 200 ms line buffering.
                .env("SIGPROXY_LOG_FLUSH_MS", "0")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = collect(child.stdout.take().unwrap());
            let stderr = collect(child.stderr.take().unwrap());
            let mut sc = Sidecar {
                addr: SocketAddr::from(([127, 0, 0, 1], p)),
                admin: SocketAddr::from(([127, 0, 0, 1], a)),
                dir,
                child,
                stdout,
                stderr,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = sc.child.try_wait() {
                    break; // a port clash or a bad policy; retry with new ports
                }
                if sc.try_admin("/readyz").is_some_and(|r| r.status == 200) {
                    return sc;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            std::thread::sleep(Duration::from_millis(50));
            last = format!(
                "stdout: {:?}\nstderr: {:?}",
                sc.stdout.lock().unwrap(),
                sc.stderr.lock().unwrap()
            );
            let _ = sc.child.kill();
            let _ = sc.child.wait();
            dir = std::mem::replace(&mut sc.dir, tempfile::tempdir().unwrap());
        }
        panic!("sigproxy did not become ready:\n{last}");
    }

    /// SIGTERM, then wait (at most 10 s) for the process to exit; true when it did.
    pub fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Send a signal (`TERM`, `HUP`, `QUIT` …) without waiting.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
    }

    /// The exit status, waiting at most `max` for it.
    pub fn wait_exit(&mut self, max: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn key_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.key"))
    }

    /// The proxy's resident set size in KiB (Linux `/proc`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn try_admin(&self, path: &str) -> Option<Response> {
        let s =
            std::net::TcpStream::connect_timeout(&self.admin, Duration::from_millis(200)).ok()?;
        drop(s);
        let mut c = Conn::open(self.admin);
        c.send("GET", path, &["Connection: close"], Body::None);
        c.read()
    }

    pub fn admin_get(&self, path: &str) -> Response {
        request(self.admin, "GET", path, &["Connection: close"], Body::None)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sign with `sigproxy sign` as key `key_id` and return the raw request it emits.
    /// `args` are extra `sign` arguments (`--created`, `--components`, `-H` …).
    pub fn sign(
        &self,
        key_id: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        args: &[&str],
    ) -> Vec<u8> {
        sign_with(
            &self.key_path(key_file_for(key_id)),
            key_id,
            method,
            &self.url(path),
            body,
            args,
        )
    }

    /// Every stdout line that is an audit line, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    }

    /// All raw stdout lines so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The audit lines for one request id, waiting briefly for the logging phase.
    pub fn audit_for(&self, request_id: &str) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v: Vec<_> = self
                .audit()
                .into_iter()
                .filter(|a| a["request_id"] == request_id)
                .collect();
            if !v.is_empty() || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send raw bytes on a fresh connection and read one response. The bytes are written from
    /// another thread, so a proxy that answers before reading a large body cannot block us.
    pub fn send_raw(&self, raw: &[u8]) -> Response {
        let mut c = Conn::open(self.addr);
        write_behind(&c, raw.to_vec());
        c.read().expect("no response")
    }
}

/// Keys live under their own id; an unknown key id signs with the active key.
fn key_file_for(key_id: &str) -> &str {
    if key_id == REVOKED { REVOKED } else { ACTIVE }
}

pub fn sign_with(
    key: &Path,
    key_id: &str,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    args: &[&str],
) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("req.http");
    let mut cmd = Command::new(EXE);
    cmd.args(["sign", "--key"])
        .arg(key)
        .args(["--key-id", key_id, "-X", method, "--emit-request"])
        .arg(&out)
        .args(args);
    if let Some(b) = body {
        let f = tmp.path().join("body");
        std::fs::write(&f, b).unwrap();
        cmd.arg("-d").arg(format!("@{}", f.display()));
    }
    let o = cmd.arg(url).output().unwrap();
    assert!(o.status.success(), "sign: {o:?}");
    std::fs::read(&out).unwrap()
}

/// Write `raw` on `c`'s socket from a detached thread (it ends when written or refused).
pub fn write_behind(c: &Conn, raw: Vec<u8>) {
    let mut w = c.writer();
    std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut w, &raw);
    });
}

/// How many requests for exactly `path` (query ignored) reached the upstream.
pub fn reached(up: &super::upstream::Upstream, path: &str) -> usize {
    up.recorded()
        .iter()
        .filter(|r| r.target().split('?').next() == Some(path))
        .count()
}

/// Byte-level edits of a raw request.
pub fn replace(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (f, t) = (from.as_bytes(), to.as_bytes());
    let i = raw
        .windows(f.len())
        .position(|w| w == f)
        .unwrap_or_else(|| panic!("{from:?} not in request"));
    [&raw[..i], t, &raw[i + f.len()..]].concat()
}

/// The header block of a raw request, as text.
pub fn head(raw: &[u8]) -> String {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Insert raw header lines (each without CRLF) after the request line.
pub fn add_headers(raw: &[u8], lines: &[&str]) -> Vec<u8> {
    let i = raw.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut extra = String::new();
    for l in lines {
        extra.push_str(l);
        extra.push_str("\r\n");
    }
    [&raw[..i], extra.as_bytes(), &raw[i..]].concat()
}

/// Assert a rejection (reference §4.4): status, JSON body with code/message/request_id,
/// Content-Type, X-Request-Id equal to the body's, Accept-Signature on 401.
pub fn assert_rejected(r: &Response, status: u16, code: &str) {
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "want {status} {code}, got {body}");
    let j = r.json();
    assert_eq!(j["error"]["code"], code, "{body}");
    assert!(
        j["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let rid = j["error"]["request_id"].as_str().unwrap_or("");
    assert!(!rid.is_empty(), "{body}");
    assert_eq!(r.header("x-request-id"), Some(rid), "{:?}", r.headers);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    if status == 401 {
        let a = r.header("accept-signature").unwrap_or("");
        assert!(
            a.contains("\"@method\"") && a.contains("\"@authority\"") && a.contains("\"@path\""),
            "Accept-Signature: {a:?}"
        );
    }
}

/// A named test case run by `run_cases`.
pub type Case<'a> = (&'static str, Box<dyn FnOnce() + Send + 'a>);

/// Run named cases in parallel threads; report every failing name at the end.
pub fn run_cases(cases: Vec<Case<'_>>) {
    let failed: Vec<&str> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .into_iter()
            .map(|(name, f)| {
                (
                    name,
                    std::thread::Builder::new()
                        .name(name.into())
                        .spawn_scoped(s, f)
                        .unwrap(),
                )
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(n, h)| h.join().is_err().then_some(n))
            .collect()
    });
    assert!(failed.is_empty(), "failed cases: {failed:?}");
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
