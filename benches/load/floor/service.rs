//! The engine's floor for the load harness: a Pingora 0.9 `ProxyHttp` that only names its
//! upstream (no filters, no modules, no context), on a server configured like sigproxy's (one
//! worker thread by default, its own pid file and upgrade socket). Shared by the `floor` (mimalloc)
//! and `floor-sysalloc` (glibc malloc) examples; it verifies nothing and is not a product.

use async_trait::async_trait;
use clap::Parser;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::upstreams::peer::HttpPeer;

#[derive(Parser)]
#[command(about = "minimal Pingora passthrough (load-harness floor), 127.0.0.1 only")]
pub struct Args {
    /// Listen address, 127.0.0.1:PORT.
    #[arg(long)]
    listen: String,
    /// Upstream address, 127.0.0.1:PORT (plain HTTP/1.1, pooled keep-alive).
    #[arg(long)]
    upstream: String,
    /// Worker threads of the proxy service.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Listener's L4 read buffer in bytes (Pingora's default: 64 KiB; 0 = unbuffered).
    #[arg(long)]
    l4_read_buffer: Option<usize>,
    /// Listener's L4 write buffer in bytes (Pingora's default: 1460; 0 = unbuffered).
    #[arg(long)]
    l4_write_buffer: Option<usize>,
}

struct Floor(HttpPeer);

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }
}

pub fn main() {
    let a = Args::parse();
    let dir = std::env::temp_dir().join(format!("sigproxy-floor-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let conf = ServerConf {
        threads: a.threads,
        daemon: false,
        pid_file: dir.join("floor.pid").to_string_lossy().into_owned(),
        upgrade_sock: dir.join("upgrade.sock").to_string_lossy().into_owned(),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(Opt::default()), conf);
    server.bootstrap();
    let peer = HttpPeer::new(a.upstream.as_str(), false, String::new());
    let mut svc = http_proxy_service(&server.configuration, Floor(peer));
    let buffers = L4BufferSettings {
        read: a.l4_read_buffer,
        write: a.l4_write_buffer,
    };
    svc.add_listener(ListenerConfig::tcp(a.listen.as_str()).l4_buffer(buffers));
    server.add_service(svc);
    server.run_forever();
}
