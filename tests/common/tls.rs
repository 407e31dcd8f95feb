//! TLS for the black-box tests: certificates made at test time with the `openssl` command (a CA,
//! server and client leaves with the SANs a test asks for), rustls client and server
//! configurations from those files, and a recording HTTP/1.1 upstream behind TLS that remembers
//! the SNI each connection sent. Everything on 127.0.0.1, bounded in time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::upstream::Recorded;

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl) must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA in a temp dir, and the certificates it signs.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    ca_key: PathBuf,
    serial: Mutex<u32>,
}

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A new CA named `name` (P-256, valid two days).
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
            dir.path(),
        );
        Self {
            dir,
            ca,
            ca_key,
            serial: Mutex::new(1),
        }
    }

    /// A leaf for `cn` with `sans` (`DNS:localhost,IP:127.0.0.1`), for servers and clients.
    pub fn leaf(&self, file: &str, cn: &str, sans: &str) -> Pair {
        let serial = {
            let mut s = self.serial.lock().unwrap();
            *s += 1;
            *s
        };
        let d = self.dir.path();
        let ext = d.join(format!("{file}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .unwrap();
        let (key, csr, cert) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.pem"),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ],
            d,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                self.ca.to_str().unwrap(),
                "-CAkey",
                self.ca_key.to_str().unwrap(),
                "-set_serial",
                &serial.to_string(),
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                ext.to_str().unwrap(),
            ],
            d,
        );
        Pair {
            cert: d.join(cert),
            key: d.join(key),
        }
    }
}

/// Hex SHA-256 of the first certificate in a PEM file (what the proxy reports as `sha256`).
pub fn leaf_sha256(cert: &Path) -> String {
    use sha2::Digest as _;
    let der = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    hex::encode(sha2::Sha256::digest(der.as_ref()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting `ca`, offering `alpn`, presenting `client` when given.
pub fn client_config(
    ca: &Path,
    alpn: &[&[u8]],
    client: Option<&Pair>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut c = match client {
        Some(p) => b
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&p.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&p.key).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(c)
}

fn server_config(p: &Pair) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                CertificateDer::pem_file_iter(&p.cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&p.key).unwrap(),
            )
            .unwrap(),
    )
}

/// One request that reached the TLS upstream, with the SNI its connection sent.
#[derive(Clone, Debug)]
pub struct TlsRecorded {
    pub sni: Option<String>,
    pub request: Recorded,
}

/// A recording HTTP/1.1 upstream behind TLS (answers 200, a JSON echo of the headers).
pub struct TlsUpstream {
    pub addr: SocketAddr,
    pub handshakes_failed: Arc<Mutex<usize>>,
    pub requests: Arc<Mutex<Vec<TlsRecorded>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl TlsUpstream {
    pub fn start(p: &Pair) -> Self {
        let config = server_config(p);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(0));
        let (s, r, f) = (stop.clone(), requests.clone(), failed.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (config, r, f) = (config.clone(), r.clone(), f.clone());
                        std::thread::spawn(move || serve_tls(tcp, config, r, f));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            addr,
            handshakes_failed: failed,
            requests,
            stop,
        }
    }

    pub fn recorded(&self) -> Vec<TlsRecorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    out: Arc<Mutex<Vec<TlsRecorded>>>,
    failed: Arc<Mutex<usize>>,
) {
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        if s.conn.complete_io(&mut s.sock).is_err() {
            *failed.lock().unwrap() += 1;
            return;
        }
    }
    let sni = s.conn.server_name().map(str::to_owned);
    for _ in 0..1000 {
        let Some((head, body)) = read_request(&mut s) else {
            return;
        };
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        use sha2::Digest as _;
        let rec = Recorded {
            request_line,
            headers: headers.clone(),
            body_len: body.len(),
            body_sha256: hex::encode(sha2::Sha256::digest(&body)),
        };
        out.lock().unwrap().push(TlsRecorded {
            sni: sni.clone(),
            request: rec,
        });
        let echo: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), serde_json::Value::String(v.clone())))
            .collect();
        let body =
            serde_json::json!({"headers": echo, "body_len": body.len(), "tls": true}).to_string();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).is_err() || s.flush().is_err() {
            return;
        }
    }
}

/// One request: the head as text and a Content-Length body (no chunked: the proxy always sends
/// a verified body with its length, and these tests stream nothing).
fn read_request(s: &mut impl Read) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 64 * 1024 || s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf[..buf.len() - 4]).into_owned();
    let len = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head, body))
}
