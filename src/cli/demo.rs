//! `sigproxy demo`: the whole product on one machine with nothing else installed — an embedded
//! echo backend, two fresh demo keys (one active, one revoked), a policy written to a temp dir,
//! and three ready-to-paste `sigproxy sign … --send` lines: accepted, rejected, legacy.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use super::EXIT_USAGE;
use crate::keys;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Proxy listener (falls back to a free port when taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listener (falls back to a free port when taken).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
}

pub fn run(args: &DemoArgs) -> ExitCode {
    let sink = crate::app::init_logging();
    let result = demo(args);
    sink.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigproxy demo: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn demo(args: &DemoArgs) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("sigproxy-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let backend = start_echo_backend()?;
    let listen = free_or_given(args.listen)?;
    let admin = free_or_given(args.admin_listen)?;
    let active = write_key(&dir, "demo-client-v1")?;
    let revoked = write_key(&dir, "demo-old-v1")?;
    let policy = format!(
        r#"# Written by `sigproxy demo`.
mode: hybrid
listen: "{listen}"
upstream: "{backend}"
admin_listen: "{admin}"
threads: 1
shutdown_grace_seconds: 1
keys:
  - {{ key_id: demo-client-v1, client_id: demo-client, public_key: "{active}", status: active }}
  - {{ key_id: demo-old-v1, client_id: demo-client, public_key: "{revoked}", status: revoked }}
routes:
  - {{ path_prefix: /health, mode: off }}
  - {{ path_prefix: /api/orders, mode: required }}
"#
    );
    let config = dir.join("policy.yaml");
    std::fs::write(&config, policy).map_err(|e| format!("{}: {e}", config.display()))?;
    let exe =
        std::env::current_exe().map_or_else(|_| "sigproxy".to_owned(), |p| p.display().to_string());
    let lines = instructions(&exe, &dir, listen, admin, backend);
    crate::app::serve(&config, Some(Box::new(move |_| eprintln!("{lines}"))))
}

fn instructions(
    exe: &str,
    dir: &Path,
    listen: SocketAddr,
    admin: SocketAddr,
    backend: SocketAddr,
) -> String {
    let key = |id: &str| dir.join(format!("{id}.key")).display().to_string();
    let body = r#"-X POST -H 'Content-Type: application/json' -d '{"item":"book","qty":1}'"#;
    format!(
        "\nsigproxy demo: proxy http://{listen} -> embedded echo backend {backend}; admin http://{admin}/status\n\
         policy and demo keys in {dir}\n\n\
         # 1. accepted: signed with an active key; the backend receives X-DataFold-Client-Id: demo-client\n\
         {exe} sign --key {k1} --key-id demo-client-v1 {body} --send http://{listen}/api/orders\n\n\
         # 2. rejected: signed with a revoked key; 401 KEY_REVOKED, the backend never sees it\n\
         {exe} sign --key {k2} --key-id demo-old-v1 {body} --send http://{listen}/api/orders\n\n\
         # 3. legacy: unsigned on a hybrid route, with a forged identity header that is stripped\n\
         {exe} sign --unsigned -H 'X-DataFold-Client-Id: admin' --send http://{listen}/api/profile\n",
        dir = dir.display(),
        k1 = key("demo-client-v1"),
        k2 = key("demo-old-v1"),
    )
}

fn write_key(dir: &Path, key_id: &str) -> Result<String, String> {
    let sk = keys::generate().map_err(|e| e.to_string())?;
    let path: PathBuf = dir.join(format!("{key_id}.key"));
    write_private(&path, &keys::private_base64(&sk))?;
    Ok(keys::public_base64(&sk.verifying_key()))
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn free_or_given(want: SocketAddr) -> Result<SocketAddr, String> {
    match TcpListener::bind(want) {
        Ok(l) => l.local_addr().map_err(|e| e.to_string()),
        Err(_) => TcpListener::bind((want.ip(), 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port on {}: {e}", want.ip())),
    }
}

/// A tiny HTTP/1.1 backend that answers every request with what it received, identity headers
/// first: the stand-in for the legacy service.
fn start_echo_backend() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("echo backend: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = echo(stream);
            });
        }
    });
    Ok(addr)
}

fn echo(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut headers = serde_json::Map::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.insert(k, json!(v));
            }
        }
        let mut body = vec![0u8; length.min(16 << 20)];
        reader.read_exact(&mut body)?;
        let identity: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-datafold-"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let out = serde_json::to_string_pretty(&json!({
            "backend_received": {"method": method, "path": target, "identity": identity, "body_bytes": body.len(), "headers": headers}
        }))
        .unwrap_or_default();
        // One write per response: written in pieces, Nagle's algorithm and the client's delayed
        // ACK held every answer on a reused connection for ~40 ms.
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{out}",
            out.len()
        );
        writer.write_all(response.as_bytes())?;
    }
}
