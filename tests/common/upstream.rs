//! A tiny threaded HTTP/1.1 server that records what reached it: connections, request line,
//! headers, body byte count and SHA-256; answers 200 with a JSON echo of the headers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub request_line: String,
    /// Header names as received (case kept) and values.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub body_sha256: String,
}

impl Recorded {
    /// The request target as received (path and query).
    pub fn target(&self) -> &str {
        self.request_line.split_whitespace().nth(1).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Requests read and not yet answered, now and at most so far.
    load: Arc<Load>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct Load {
    busy: AtomicUsize,
    peak: AtomicUsize,
}

impl Load {
    fn enter(&self) {
        let now = self.busy.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(now, Ordering::AcqRel);
    }
    fn leave(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Upstream {
    /// `delay`: wait this long before answering (the slow upstream).
    pub fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let load = Arc::new(Load::default());
        let (c, r, s, l) = (
            connections.clone(),
            requests.clone(),
            stop.clone(),
            load.clone(),
        );
        std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::AcqRel);
                        let (r, l) = (r.clone(), l.clone());
                        std::thread::spawn(move || serve(stream, r, &l, delay));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            connections,
            requests,
            load,
            stop,
        }
    }

    /// The most requests this upstream was working on at one time (read, not yet answered).
    pub fn peak_concurrency(&self) -> usize {
        self.load.peak.load(Ordering::Acquire)
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The recorded requests whose target is exactly `target`, in arrival order.
    pub fn recorded_at(&self, target: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| r.target() == target)
            .collect()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn serve(stream: TcpStream, out: Arc<Mutex<Vec<Recorded>>>, load: &Load, delay: Duration) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    const MAX_PER_CONNECTION: usize = 1000;
    for served in 1..=MAX_PER_CONNECTION {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request_line = line.trim_end().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut hasher = Sha256::new();
        let mut body_len = 0usize;
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            loop {
                let mut size = String::new();
                if r.read_line(&mut size).unwrap_or(0) == 0 {
                    return;
                }
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or(0);
                if n == 0 {
                    let mut end = String::new();
                    let _ = r.read_line(&mut end);
                    break;
                }
                let mut buf = vec![0u8; n + 2];
                if r.read_exact(&mut buf).is_err() {
                    return;
                }
                hasher.update(&buf[..n]);
                body_len += n;
            }
        } else if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut left = cl;
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let n = match r.read(&mut buf[..left.min(64 * 1024)]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                hasher.update(&buf[..n]);
                body_len += n;
                left -= n;
            }
        }
        let rec = Recorded {
            request_line,
            headers: headers.clone(),
            body_len,
            body_sha256: hex::encode(hasher.finalize()),
        };
        out.lock().unwrap().push(rec);
        load.enter();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let echo: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::String(v.clone())))
            .collect();
        let body = serde_json::json!({"headers": echo, "body_len": body_len}).to_string();
        // The last answer on a connection says so, as a real server does: closing silently
        // races with the proxy reusing the pooled connection (a flaky 502 under load).
        let close = if served == MAX_PER_CONNECTION {
            "Connection: close\r\n"
        } else {
            ""
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{close}Content-Length: {}\r\n\r\n{}",
            body.len(),
            body
        );
        // Done before the answer is written: whoever waits on it cannot see it answered while
        // it still counts as busy here.
        load.leave();
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
