//! A JWKS key directory served by the test itself: HTTP/1.1 on an ephemeral 127.0.0.1 port, one
//! request per connection, `ETag`/`If-None-Match` → 304. The test changes the document, the ETag
//! and the status at will, can take the server down (port closed: connection refused) and bring it
//! back on the same port, and reads how many requests and 304s it served.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;

#[derive(Clone)]
struct Doc {
    body: String,
    etag: Option<String>,
    status: u16,
}

pub struct JwksServer {
    pub addr: SocketAddr,
    doc: Arc<Mutex<Doc>>,
    pub requests: Arc<AtomicUsize>,
    pub not_modified: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// `{"kty":"OKP","crv":"Ed25519","kid":…,"x":…}` plus `extra` members (`,"status":"revoked"`).
pub fn jwk(key: &SigningKey, kid: &str, extra: &str) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    format!(
        r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","alg":"EdDSA","use":"sig","x":"{x}"{extra}}}"#
    )
}

pub fn jwks(keys: &[String]) -> String {
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

impl JwksServer {
    pub fn start(body: &str, etag: Option<&str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = Self {
            addr,
            doc: Arc::new(Mutex::new(Doc {
                body: body.into(),
                etag: etag.map(Into::into),
                status: 200,
            })),
            requests: Arc::default(),
            not_modified: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        s.serve(listener);
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/auth/keys.jwks", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn set(&self, body: &str, etag: Option<&str>) {
        let mut d = self.doc.lock().unwrap();
        d.body = body.into();
        d.etag = etag.map(Into::into);
        d.status = 200;
    }

    /// Answer every request with this status (and the current body).
    pub fn set_status(&self, status: u16) {
        self.doc.lock().unwrap().status = status;
    }

    /// Close the port: connections are refused until `come_back`.
    pub fn go_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn come_back(&mut self) {
        self.go_down();
        self.stop.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(self.addr).unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (doc, requests, nm, stop) = (
            self.doc.clone(),
            self.requests.clone(),
            self.not_modified.clone(),
            self.stop.clone(),
        );
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(2)))
                            .unwrap();
                        let head = read_head(&mut stream);
                        requests.fetch_add(1, Ordering::SeqCst);
                        let d = doc.lock().unwrap().clone();
                        let inm = header(&head, "if-none-match");
                        let matched = d
                            .etag
                            .as_ref()
                            .filter(|t| d.status == 200 && inm.as_ref() == Some(t));
                        let resp = if let Some(tag) = matched {
                            nm.fetch_add(1, Ordering::SeqCst);
                            format!(
                                "HTTP/1.1 304 Not Modified\r\nETag: {tag}\r\nConnection: close\r\n\r\n"
                            )
                        } else {
                            let etag = d.etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
                            format!(
                                "HTTP/1.1 {} X\r\nContent-Type: application/jwk-set+json\r\n{etag}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                                d.status,
                                d.body.len(),
                                d.body
                            )
                        };
                        let _ = stream.write_all(resp.as_bytes());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }
}

fn read_head(stream: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(2);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.go_down();
    }
}
