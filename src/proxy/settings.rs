//! Plain settings for the gateway's Pingora machinery (filled from the policy by the caller;
//! it parses nothing). No Pingora CLI or YAML is read anywhere.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// Where the legacy backend is: the policy's own type (parsing lives in `policy::network`).
pub use crate::policy::Upstream;

/// Names of the identity headers (SPEC §3 `identity`).
#[derive(Clone, Debug)]
pub struct IdentityHeaders {
    pub client_id: String,
    pub key_id: String,
    pub auth_method: String,
    /// Extra inbound headers to drop; the three above are always dropped.
    pub strip_inbound: Vec<String>,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            client_id: "X-DataFold-Client-Id".into(),
            key_id: "X-DataFold-Key-Id".into(),
            auth_method: "X-DataFold-Auth-Method".into(),
            strip_inbound: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Proxy listener, e.g. `0.0.0.0:8080`.
    pub listen: String,
    pub upstream: Upstream,
    /// Admin listener (`None`: no admin service).
    pub admin_listen: Option<String>,
    /// Worker threads of the proxy service; 0 = one per core.
    pub threads: usize,
    /// SIGTERM: stop accepting, finish in-flight requests, exit within this.
    pub shutdown_grace_seconds: u64,
    /// Exit the process as soon as in-flight requests reach zero during the grace period
    /// (the binary wants this; in-process tests must not).
    pub exit_when_drained: bool,
    /// Install SIGTERM/SIGINT/SIGQUIT handlers (the binary); tests stop through the handle.
    pub handle_signals: bool,
    /// Where the pid file and upgrade socket go; `None`: `$XDG_RUNTIME_DIR` or the temp dir,
    /// in a directory unique to this listen port and process. Set it explicitly (the same for
    /// old and new process) to use `upgrade`.
    pub runtime_dir: Option<PathBuf>,
    /// Take the listening sockets over from a running instance (Pingora's `--upgrade`): that
    /// instance hands them over on SIGQUIT through the upgrade socket in `runtime_dir`.
    pub upgrade: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// Upstream keep-alive idle time.
    pub idle_timeout: Duration,
    /// Limit for bodies buffered for verification (413 beyond).
    pub max_body_bytes: usize,
    pub identity: IdentityHeaders,
    pub trusted_proxies: Vec<IpNet>,
    /// Scheme of our own listener as seen by clients (`http` unless TLS ends here).
    pub listener_scheme: &'static str,
    /// Upstream attempts for a failed connect (1 = no retry).
    pub max_attempts: usize,
}

impl ProxySettings {
    pub fn new(listen: impl Into<String>, upstream: Upstream) -> Self {
        Self {
            listen: listen.into(),
            upstream,
            admin_listen: None,
            threads: 0,
            shutdown_grace_seconds: 10,
            exit_when_drained: false,
            handle_signals: false,
            runtime_dir: None,
            upgrade: false,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_body_bytes: 10 * 1024 * 1024,
            identity: IdentityHeaders::default(),
            trusted_proxies: Vec::new(),
            listener_scheme: "http",
            max_attempts: 1,
        }
    }

    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}
