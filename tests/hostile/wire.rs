//! The attacker's side of the wire: write arbitrary bytes (at once, or trickled) on one
//! connection and read back every response the proxy sends before it closes or goes quiet.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub use crate::common::client::Response;

/// What came back on one connection.
#[derive(Debug)]
pub struct Exchange {
    pub responses: Vec<Response>,
    /// The proxy closed the connection (EOF) rather than going quiet.
    pub closed: bool,
}

impl Exchange {
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }
    pub fn only(&self) -> &Response {
        assert_eq!(self.responses.len(), 1, "want one response, got {self:?}");
        &self.responses[0]
    }
}

pub struct Wire {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Wire {
    pub fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        Self {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    /// Write now (errors ignored: the proxy may have answered and closed already).
    pub fn write(&mut self, b: &[u8]) -> bool {
        self.w.write_all(b).is_ok()
    }

    /// Write from a detached thread, so a proxy answering early cannot block us.
    pub fn write_behind(&self, b: Vec<u8>) {
        let mut w = self.w.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(&b);
        });
    }

    /// Read responses until EOF, or until nothing arrives for `quiet`; `head` says which of the
    /// expected responses answer a HEAD (no body), in order.
    pub fn read_all(&mut self, quiet: Duration, head: &[bool]) -> Exchange {
        self.r.get_ref().set_read_timeout(Some(quiet)).unwrap();
        let mut responses = Vec::new();
        let mut closed = false;
        for i in 0..64 {
            match read_response(&mut self.r, head.get(i).copied().unwrap_or(false)) {
                Read1::Response(r) => responses.push(r),
                Read1::Eof => {
                    closed = true;
                    break;
                }
                Read1::Quiet => break,
            }
        }
        Exchange { responses, closed }
    }

    /// Read exactly one response (waiting up to `wait`).
    pub fn read_one(&mut self, wait: Duration) -> Option<Response> {
        self.r.get_ref().set_read_timeout(Some(wait)).unwrap();
        match read_response(&mut self.r, false) {
            Read1::Response(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the proxy closed the connection within `wait` (EOF or reset).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        self.r
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 4096];
        while Instant::now() < deadline {
            match self.r.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// Send `bytes` on a fresh connection; read what comes back (quiet after 2 s).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Exchange {
    let mut w = Wire::open(addr);
    w.write_behind(bytes.to_vec());
    w.read_all(Duration::from_secs(2), &[])
}

enum Read1 {
    Response(Response),
    Eof,
    Quiet,
}

fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> Read1 {
    let mut line = Vec::new();
    match r.read_until(b'\n', &mut line) {
        Ok(0) => return Read1::Eof,
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Read1::Quiet;
        }
        Err(_) => return Read1::Eof,
    }
    let text = String::from_utf8_lossy(&line);
    let Some(status) = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
    else {
        panic!("not an HTTP response line: {text:?}");
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return Read1::Eof;
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
    let mut body = Vec::new();
    let no_body = head || (100..200).contains(&status) || status == 204 || status == 304;
    if no_body {
    } else if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(cl, 0);
        if r.read_exact(&mut body).is_err() {
            return Read1::Eof;
        }
    } else if get("transfer-encoding").is_some() {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return Read1::Eof;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return Read1::Eof;
            };
            if n == 0 {
                let mut end = String::new();
                let _ = r.read_line(&mut end);
                break;
            }
            let mut buf = vec![0u8; n + 2];
            if r.read_exact(&mut buf).is_err() {
                return Read1::Eof;
            }
            body.extend_from_slice(&buf[..n]);
        }
    } else {
        let _ = r.read_to_end(&mut body);
    }
    Read1::Response(Response {
        status,
        headers,
        body,
    })
}
