//! The gateway's start-only settings: what is fixed once the listeners are bound (addresses,
//! worker threads, socket buffers, the runtime directory, signal handling). Everything a request
//! reads comes from the live policy snapshot instead (`hop.rs`). Filled in by the caller; it
//! parses nothing, and no Pingora CLI or YAML is read anywhere.

use std::path::PathBuf;

/// Where the legacy backend is: the policy's own type (parsing lives in `policy::network`).
pub use crate::policy::Upstream;

#[derive(Clone, Debug)]
pub struct ProxySettings {
    /// Proxy listener, e.g. `0.0.0.0:8080`.
    pub listen: String,
    /// Admin listener (`None`: no admin service).
    pub admin_listen: Option<String>,
    /// Worker threads of the proxy service; 0 = one per core.
    pub threads: usize,
    /// In-process gateways only (`exit_when_drained` off): how long Pingora waits for in-flight
    /// requests after a graceful stop. The binary reads the grace from the policy at stop time.
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
    /// The proxy listener speaks TLS; its certificate comes from the policy snapshot in force
    /// at each handshake (`Hop::tls`). HTTP/2 (ALPN, or h2c on a plain listener) follows the
    /// snapshot's `http2.enabled`.
    pub tls: bool,
    /// Per-connection read buffer of the listener's sockets (`None`: Pingora's 64 KiB).
    pub read_buffer_bytes: Option<usize>,
    /// Per-connection write buffer (`None`: Pingora's 1460 bytes).
    pub write_buffer_bytes: Option<usize>,
}

impl ProxySettings {
    pub fn new(listen: impl Into<String>) -> Self {
        Self {
            listen: listen.into(),
            admin_listen: None,
            threads: 0,
            shutdown_grace_seconds: 10,
            exit_when_drained: false,
            handle_signals: false,
            runtime_dir: None,
            upgrade: false,
            tls: false,
            read_buffer_bytes: None,
            write_buffer_bytes: None,
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
