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
    #[arg(long, required_unless_present = "calibrate")]
    listen: Option<String>,
    /// Upstream address, 127.0.0.1:PORT (plain HTTP/1.1, pooled keep-alive).
    #[arg(long, required_unless_present = "calibrate")]
    upstream: Option<String>,
    /// Per request, before naming the upstream: a chain of N dependent shift/xor/multiply steps
    /// on one register (no memory, no tables, no vector code), a stand-in for a verify-sized
    /// computation. 0: none.
    #[arg(long, default_value_t = 0)]
    compute_iters: u64,
    /// Print how long --compute-iters takes on its own (median of 2,000 runs, µs) and exit.
    #[arg(long)]
    calibrate: bool,
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

struct Floor(HttpPeer, u64);

/// The --compute-iters work: `n` dependent steps, the result kept from the optimiser.
fn compute(n: u64) {
    let mut x: u64 = std::hint::black_box(0x9E37_79B9_7F4A_7C15);
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    }
    std::hint::black_box(x);
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        if self.1 > 0 {
            compute(self.1);
        }
        Ok(Box::new(self.0.clone()))
    }
}

pub fn main() {
    let a = Args::parse();
    if a.calibrate {
        let mut t: Vec<std::time::Duration> = (0..2000)
            .map(|_| {
                let s = std::time::Instant::now();
                compute(a.compute_iters);
                s.elapsed()
            })
            .collect();
        t.sort();
        println!("{:.1}", t[t.len() / 2].as_secs_f64() * 1e6);
        return;
    }
    let (Some(listen), Some(upstream)) = (a.listen, a.upstream) else {
        eprintln!("--listen and --upstream are required");
        std::process::exit(2);
    };
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
    let peer = HttpPeer::new(upstream.as_str(), false, String::new());
    let mut svc = http_proxy_service(&server.configuration, Floor(peer, a.compute_iters));
    let buffers = L4BufferSettings {
        read: a.l4_read_buffer,
        write: a.l4_write_buffer,
    };
    svc.add_listener(ListenerConfig::tcp(listen.as_str()).l4_buffer(buffers));
    server.add_service(svc);
    server.run_forever();
}
