//! A raw HTTP/1.1 client over one TcpStream, so tests control framing and keep-alive exactly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub enum Body<'a> {
    None,
    Length(&'a [u8]),
    /// Sent as chunks of this size.
    Chunked(&'a [u8], usize),
}

pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        Self {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    /// Write a request; `headers` are raw lines without CRLF. Write errors are ignored (the
    /// proxy may answer and close before a large rejected body is fully sent).
    pub fn send(&mut self, method: &str, target: &str, headers: &[&str], body: Body<'_>) {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: app.test\r\n");
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        match &body {
            Body::None => {}
            Body::Length(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
            Body::Chunked(..) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        if self.w.write_all(head.as_bytes()).is_err() {
            return;
        }
        match body {
            Body::None => {}
            Body::Length(b) => {
                let _ = self.w.write_all(b);
            }
            Body::Chunked(b, size) => {
                for c in b.chunks(size.max(1)) {
                    if self
                        .w
                        .write_all(format!("{:x}\r\n", c.len()).as_bytes())
                        .is_err()
                        || self.w.write_all(c).is_err()
                        || self.w.write_all(b"\r\n").is_err()
                    {
                        return;
                    }
                }
                let _ = self.w.write_all(b"0\r\n\r\n");
            }
        }
    }

    /// Another handle on the socket, for writing from a second thread.
    pub fn writer(&self) -> TcpStream {
        self.w.try_clone().unwrap()
    }

    /// Write raw bytes (hostile input, or a body sent after `100 Continue`).
    pub fn write_raw(&mut self, b: &[u8]) {
        let _ = self.w.write_all(b);
    }

    /// Read one response (Content-Length, chunked, or until close).
    pub fn read(&mut self) -> Option<Response> {
        let mut line = String::new();
        if self.r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.r.read_line(&mut h).ok()? == 0 {
                return None;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':')?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if (100..200).contains(&status) {
            return Some(Response {
                status,
                headers,
                body,
            });
        }
        if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(cl, 0);
            self.r.read_exact(&mut body).ok()?;
        } else if get("transfer-encoding").is_some() {
            loop {
                let mut size = String::new();
                self.r.read_line(&mut size).ok()?;
                let n = usize::from_str_radix(size.trim(), 16).ok()?;
                let mut buf = vec![0u8; n + 2];
                if n == 0 {
                    let mut end = String::new();
                    let _ = self.r.read_line(&mut end);
                    break;
                }
                self.r.read_exact(&mut buf).ok()?;
                body.extend_from_slice(&buf[..n]);
            }
        } else {
            let _ = self.r.read_to_end(&mut body);
        }
        Some(Response {
            status,
            headers,
            body,
        })
    }

    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[&str],
        body: Body<'_>,
    ) -> Response {
        self.send(method, target, headers, body);
        self.read().expect("no response")
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[&str],
    body: Body<'_>,
) -> Response {
    Conn::open(addr).request(method, target, headers, body)
}
