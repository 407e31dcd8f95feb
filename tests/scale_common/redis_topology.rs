//! Real Redis topologies on loopback for the failover tests: a 3-master Redis Cluster with one
//! replica each (`redis-cli --cluster create`), and a primary + replica watched by three Sentinels
//! (`redis-server --sentinel`), plus `redis-server` with TLS and certificates made at test time
//! (`openssl`). Every process is started on ephemeral 127.0.0.1 ports in a temp dir, waited for
//! with bounded polls, and killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One inline command over plain TCP; the raw reply (first read only), or None.
pub fn command(port: u16, line: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(line.as_bytes()).ok()?;
    s.write_all(b"\r\n").ok()?;
    let mut buf = [0u8; 16384];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A redis-server process with its own directory, killed on drop.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    fn spawn(dir: &Path, port: u16, args: &[String]) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server not installed? (apt-get install redis-server; tests/run.sh does)",
            );
        let node = Self {
            port,
            child: Some(child),
        };
        assert!(
            wait_until(Duration::from_secs(10), || command(port, "PING")
                .is_some_and(|r| r.starts_with("+PONG"))),
            "redis-server on {port} did not answer PING"
        );
        node
    }

    /// SIGKILL, as a crashed node.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP / SIGCONT: a hung node keeps its sockets open (a partitioned or stalled server).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("node not running").id();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {pid} failed");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn base_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One plain redis-server.
pub struct SingleRedis {
    pub node: Node,
    _dir: tempfile::TempDir,
}

impl SingleRedis {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let node = Node::spawn(dir.path(), port, &base_args(port));
        Self { node, _dir: dir }
    }

    pub fn url(&self) -> String {
        self.node.url()
    }
}

/// Three masters and three replicas, every slot covered.
pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..6 {
            let port = free_port();
            let mut args = base_args(port);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{i}.conf"),
                    // Fail over within ~2 s of a master going away.
                    "--cluster-node-timeout",
                    "1000",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            nodes.push(Node::spawn(dir.path(), port, &args));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli not installed? (apt-get install redis-tools; tests/run.sh does)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes, _dir: dir };
        assert!(
            cluster.wait_ok(Duration::from_secs(20)),
            "cluster never reported cluster_state:ok"
        );
        cluster
    }

    /// Every live node says the cluster is ok, three masters serve, and every live replica has
    /// finished syncing (a replica promoted before its first sync would come up empty).
    pub fn wait_ok(&self, limit: Duration) -> bool {
        wait_until(limit, || {
            self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                command(n.port, "CLUSTER INFO").is_some_and(|r| r.contains("cluster_state:ok"))
                    && command(n.port, "INFO replication").is_some_and(|r| {
                        r.contains("role:master") || r.contains("master_link_status:up")
                    })
            }) && self.masters().len() == 3
        })
    }

    /// Ports of the live masters, as one live node sees them.
    pub fn masters(&self) -> Vec<u16> {
        let Some(n) = self.nodes.iter().find(|n| n.child.is_some()) else {
            return Vec::new();
        };
        let Some(text) = command(n.port, "CLUSTER NODES") else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect()
    }

    pub fn node_mut(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// Seed URLs: the three masters at start.
    pub fn seed_urls(&self) -> Vec<String> {
        self.masters()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

/// A primary, one replica, and three sentinels (quorum 2) watching them as `mymaster`.
pub struct SentinelSet {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

pub const MASTER_NAME: &str = "mymaster";

impl SentinelSet {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = free_port();
        let primary = Node::spawn(dir.path(), p, &base_args(p));
        let r = free_port();
        let mut args = base_args(r);
        args.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        let replica = Node::spawn(dir.path(), r, &args);
        assert!(
            wait_until(Duration::from_secs(10), || command(r, "INFO replication")
                .is_some_and(|i| i.contains("master_link_status:up"))),
            "replica never synced"
        );
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\nloglevel warning\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {p} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n"
                ),
            )
            .unwrap();
            let args = vec![conf.display().to_string(), "--sentinel".to_owned()];
            sentinels.push(Node::spawn(dir.path(), port, &args));
        }
        let set = Self {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(15), || set.sentinels.iter().all(|s| {
                command(s.port, &format!("SENTINEL replicas {MASTER_NAME}"))
                    .is_some_and(|r| r.contains(&r_port_str(set.replica.port)))
            })),
            "sentinels never saw the replica"
        );
        set
    }

    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::url).collect()
    }

    /// The primary's port as the first answering sentinel reports it.
    pub fn reported_primary(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let r = command(
                s.port,
                &format!("SENTINEL get-master-addr-by-name {MASTER_NAME}"),
            )?;
            r.lines()
                .filter(|l| !l.starts_with(['*', '$']))
                .nth(1)?
                .parse()
                .ok()
        })
    }
}

fn r_port_str(p: u16) -> String {
    p.to_string()
}

/// A CA and a server certificate for 127.0.0.1 (and a client certificate signed by the same CA),
/// made with `openssl` at test time.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    pub fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("openssl not installed? (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=sigproxy test CA",
        ]);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
            run(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ]);
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                ext,
            ]);
        }
        // A second, unrelated CA: a client trusting only it must refuse the server.
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other-ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=other CA",
        ]);
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `redis-server` speaking only TLS, with a password; client certificates required or not.
pub struct TlsRedis {
    pub node: Node,
}

pub const TLS_PASSWORD: &str = "s3cret-from-a-file";

impl TlsRedis {
    pub fn start(pki: &TestPki, require_client_cert: bool) -> Self {
        let port = free_port();
        let p = |n: &str| pki.path(n).display().to_string();
        let args: Vec<String> = [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            if require_client_cert { "yes" } else { "no" },
            "--requirepass",
            TLS_PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let child = Command::new("redis-server")
            .args(&args)
            .current_dir(pki.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-server not installed?");
        let node = Node {
            port,
            child: Some(child),
        };
        // No plain-text PING here: wait for the TLS port to accept.
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(
                SocketAddr::from(([127, 0, 0, 1], port))
            )
            .is_ok()),
            "redis-server --tls-port {port} did not listen (built without TLS?)"
        );
        Self { node }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.node.port)
    }
}
