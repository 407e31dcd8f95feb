//! A byte-recording HTTP/1.1 upstream for the attack suite: every byte each connection received,
//! and the requests a strict server parses out of them (raw head, framing, decoded body,
//! trailers). Anything a strict server would refuse or two servers could read differently —
//! a bare CR or LF, obs-fold, CL together with TE, two Content-Lengths, a malformed chunk — is
//! recorded as a violation: the proxy must never send such bytes upstream. Answers 200 with
//! `ok <target>`. Bounded: 30 s per read, 1000 requests per connection.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
}

#[derive(Clone, Debug)]
pub struct Seen {
    /// Which upstream connection (0-based, in accept order).
    pub conn: usize,
    /// The head exactly as received, request line to the empty line.
    pub head: Vec<u8>,
    pub request_line: String,
    /// Names as received (case kept) and raw values.
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The raw trailer section of a chunked body (empty when none).
    pub trailers: Vec<u8>,
}

impl Seen {
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }
    pub fn method(&self) -> &str {
        self.request_line.split(' ').next().unwrap_or("")
    }
    /// Every value of `name` (any case; `_` is a different name, as for a strict server).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }
    /// Header names as received, lowercased, with `_` folded to `-` (how CGI-style backends
    /// see them): for "no spelling of X reached the backend".
    pub fn folded_names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase().replace('_', "-"))
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    raw: Mutex<Vec<Vec<u8>>>,
    violations: Mutex<Vec<String>>,
    /// Targets whose head arrived but whose body never completed (connection closed).
    incomplete: Mutex<Vec<String>>,
}

pub struct RawUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl RawUpstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared::default());
        let conns = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, c, st) = (shared.clone(), conns.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let n = c.fetch_add(1, Ordering::AcqRel);
                        sh.raw.lock().unwrap().push(Vec::new());
                        let sh = sh.clone();
                        std::thread::spawn(move || serve(s, n, sh));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            shared,
            conns,
            stop,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests whose target starts with `prefix` (each case uses its own path).
    pub fn under(&self, prefix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.target().starts_with(prefix))
            .collect()
    }

    /// Waits (at most 5 s) until `n` requests under `prefix` arrived; returns what arrived.
    pub fn wait_under(&self, prefix: &str, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.under(prefix);
            if v.len() >= n || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every byte every connection received, concatenated.
    pub fn all_bytes(&self) -> Vec<u8> {
        self.shared.raw.lock().unwrap().concat()
    }

    pub fn contains_bytes(&self, needle: &[u8]) -> bool {
        self.all_bytes().windows(needle.len()).any(|w| w == needle)
    }

    /// What a strict server would have refused (see the module doc), with the bytes around it.
    pub fn violations(&self) -> Vec<String> {
        self.shared.violations.lock().unwrap().clone()
    }

    /// Targets of requests whose head arrived and whose body never completed.
    pub fn incomplete(&self) -> Vec<String> {
        self.shared.incomplete.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::Acquire)
    }
}

/// The connection's bytes, read on demand and kept for the record.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    conn: usize,
    shared: Arc<Shared>,
}

impl Wire {
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                if let Some(r) = self.shared.raw.lock().unwrap().get_mut(self.conn) {
                    r.extend_from_slice(&chunk[..n]);
                }
                true
            }
        }
    }

    /// The bytes up to and including the next `\n` (None on EOF).
    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|b| *b == b'\n') {
                let l = self.buf[self.pos..self.pos + i + 1].to_vec();
                self.pos += i + 1;
                return Some(l);
            }
            if self.buf.len() > 2 << 20 || !self.fill() {
                return None;
            }
        }
    }

    fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() - self.pos < n {
            if !self.fill() {
                return None;
            }
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Some(v)
    }

    fn violation(&self, what: &str, around: &[u8]) {
        self.shared.violations.lock().unwrap().push(format!(
            "conn {}: {what}: {:?}",
            self.conn,
            String::from_utf8_lossy(&around[..around.len().min(300)])
        ));
    }
}

/// A line must end with CRLF and hold no other CR or LF.
fn strict_line(w: &Wire, l: &[u8]) -> bool {
    let ok = l.ends_with(b"\r\n") && !l[..l.len() - 2].iter().any(|b| *b == b'\r' || *b == b'\n');
    if !ok {
        w.violation("bare CR or LF", l);
    }
    ok
}

fn serve(s: TcpStream, conn: usize, shared: Arc<Shared>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut out = s.try_clone().unwrap();
    let mut w = Wire {
        s,
        buf: Vec::new(),
        pos: 0,
        conn,
        shared: shared.clone(),
    };
    for _ in 0..1000 {
        let Some(rl) = w.line() else { return };
        let mut head = rl.clone();
        if !strict_line(&w, &rl) {
            return;
        }
        let request_line = String::from_utf8_lossy(&rl[..rl.len() - 2]).into_owned();
        if request_line.split(' ').count() != 3 {
            w.violation("request line is not METHOD SP TARGET SP VERSION", &rl);
            return;
        }
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let Some(l) = w.line() else { return };
            head.extend_from_slice(&l);
            if !strict_line(&w, &l) {
                return;
            }
            let l = &l[..l.len() - 2];
            if l.is_empty() {
                break;
            }
            if matches!(l[0], b' ' | b'\t') {
                w.violation("obs-fold", l);
                return;
            }
            let Some(c) = l.iter().position(|b| *b == b':') else {
                w.violation("field line without a colon", l);
                return;
            };
            let name = &l[..c];
            if name.is_empty()
                || !name
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
            {
                w.violation("field name is not a token", l);
                return;
            }
            let value = l[c + 1..].trim_ascii().to_vec();
            if value.contains(&0) {
                w.violation("NUL in a field value", l);
            }
            headers.push((String::from_utf8_lossy(name).into_owned(), value));
        }
        let get = |n: &str| -> Vec<Vec<u8>> {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let te = get("transfer-encoding");
        let cl = get("content-length");
        if !te.is_empty() && !cl.is_empty() {
            w.violation("Content-Length and Transfer-Encoding together", &head);
            return;
        }
        if cl.len() > 1 {
            w.violation("several Content-Length fields", &head);
            return;
        }
        let mut trailers = Vec::new();
        let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
        let cut = |w: &Wire| w.shared.incomplete.lock().unwrap().push(target.clone());
        let (framing, body) = if !te.is_empty() {
            if te.len() != 1 || !te[0].eq_ignore_ascii_case(b"chunked") {
                w.violation("Transfer-Encoding other than a single chunked", &head);
                return;
            }
            let mut body = Vec::new();
            loop {
                let Some(sz) = w.line() else {
                    cut(&w);
                    return;
                };
                if !strict_line(&w, &sz) {
                    return;
                }
                let hexpart = sz[..sz.len() - 2]
                    .split(|b| *b == b';')
                    .next()
                    .unwrap_or(b"");
                let ok = !hexpart.is_empty()
                    && hexpart.len() <= 16
                    && hexpart.iter().all(u8::is_ascii_hexdigit);
                let Some(n) = ok
                    .then(|| usize::from_str_radix(std::str::from_utf8(hexpart).unwrap(), 16).ok())
                    .flatten()
                else {
                    w.violation("malformed chunk size", &sz);
                    return;
                };
                if n == 0 {
                    loop {
                        let Some(t) = w.line() else {
                            cut(&w);
                            return;
                        };
                        if !strict_line(&w, &t) {
                            return;
                        }
                        if t == b"\r\n" {
                            break;
                        }
                        trailers.extend_from_slice(&t);
                    }
                    break;
                }
                let Some(data) = w.exact(n + 2) else {
                    cut(&w);
                    return;
                };
                if &data[n..] != b"\r\n" {
                    w.violation("chunk data not followed by CRLF", &data);
                    return;
                }
                body.extend_from_slice(&data[..n]);
            }
            (Framing::Chunked, body)
        } else if let Some(v) = cl.first() {
            let Some(n) = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
            else {
                w.violation("malformed Content-Length", v);
                return;
            };
            let Some(body) = w.exact(n) else {
                cut(&w);
                return;
            };
            (Framing::Length(n), body)
        } else {
            (Framing::None, Vec::new())
        };
        let seen = Seen {
            conn,
            head,
            request_line,
            headers,
            framing,
            body,
            trailers,
        };
        shared.seen.lock().unwrap().push(seen);
        let body = format!("ok {target}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
