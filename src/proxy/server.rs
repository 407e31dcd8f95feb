//! Building and running the Pingora `Server` from our own settings (no Pingora CLI or YAML):
//! worker threads, grace period, a per-instance runtime directory for the pid file and upgrade
//! socket, the proxy listener and the optional admin listener. Stopping is through signals
//! (binary) or a `GatewayHandle` (tests and embedders).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::sync::watch;

use super::ctx::InFlight;
use super::gate::Gate;
use super::record::RequestObserver;
use super::service::SigProxy;
use super::settings::ProxySettings;
use crate::admin::{AdminApp, AdminState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Graceful,
    Now,
    Upgrade,
}

/// Stops a running gateway from another thread.
#[derive(Clone)]
pub struct GatewayHandle {
    tx: Arc<watch::Sender<Option<Stop>>>,
    inflight: InFlight,
    runtime_dir: PathBuf,
}

impl GatewayHandle {
    /// Like SIGTERM: stop accepting, let in-flight requests finish within the grace period.
    pub fn stop_graceful(&self) {
        let _ = self.tx.send(Some(Stop::Graceful));
    }
    /// Like SIGQUIT: hand the listening sockets to a process started with `upgrade`, then stop
    /// gracefully.
    pub fn hand_over(&self) {
        let _ = self.tx.send(Some(Stop::Upgrade));
    }
    /// Like SIGINT: stop now.
    pub fn stop_now(&self) {
        let _ = self.tx.send(Some(Stop::Now));
    }
    /// Requests currently being processed.
    pub fn in_flight(&self) -> usize {
        self.inflight.get()
    }
    /// This instance's directory for the pid file and upgrade socket.
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }
}

/// A built, not yet running gateway.
pub struct Gateway {
    server: Server,
    rx: watch::Receiver<Option<Stop>>,
    handle: GatewayHandle,
    settings: ProxySettings,
}

/// Where this instance keeps its pid file and upgrade socket: unique per listen port and
/// process, so two instances on one host never share Pingora's `/tmp` defaults.
pub fn runtime_dir_for(settings: &ProxySettings) -> PathBuf {
    if let Some(d) = &settings.runtime_dir {
        return d.clone();
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let port = settings.listen.rsplit(':').next().unwrap_or("0");
    base.join(format!("sigproxy-{port}-{}", std::process::id()))
}

fn prepare_runtime_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("runtime dir {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    std::fs::write(
        dir.join("sigproxy.pid"),
        format!("{}\n", std::process::id()),
    )
    .map_err(|e| format!("pid file in {}: {e}", dir.display()))
}

/// A directory we derived is ours alone: remove it. An explicit one may be shared with the
/// process taking over (upgrade): remove only our own pid file.
fn cleanup_runtime_dir(settings: &ProxySettings, dir: &Path) {
    if settings.runtime_dir.is_none() {
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let pid_file = dir.join("sigproxy.pid");
    let ours = std::fs::read_to_string(&pid_file)
        .is_ok_and(|s| s.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(pid_file);
    }
}

/// Build the server: proxy service on `settings.listen`, admin service when `admin` is given.
pub fn build(
    settings: ProxySettings,
    gate: Arc<dyn Gate>,
    observer: Arc<dyn RequestObserver>,
    admin: Option<AdminState>,
) -> Result<(Gateway, GatewayHandle), String> {
    let dir = runtime_dir_for(&settings);
    prepare_runtime_dir(&dir)?;

    let conf = ServerConf {
        threads: settings.worker_threads(),
        daemon: false,
        pid_file: dir.join("sigproxy.pid").to_string_lossy().into_owned(),
        upgrade_sock: dir.join("upgrade.sock").to_string_lossy().into_owned(),
        // Pingora sleeps the whole grace period after SIGTERM; `exit_when_drained` cuts it short.
        grace_period_seconds: Some(settings.shutdown_grace_seconds),
        graceful_shutdown_timeout_seconds: Some(1),
        max_retries: settings.max_attempts.max(1),
        ..ServerConf::default()
    };

    let opt = pingora::server::configuration::Opt {
        upgrade: settings.upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let inflight = InFlight::default();
    let proxy = SigProxy::new(settings.clone(), gate, observer, inflight.clone())?;
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, proxy);
    svc.add_tcp(&settings.listen);
    server.add_service(svc);

    if let (Some(addr), Some(state)) = (&settings.admin_listen, admin) {
        let mut a = Service::new("sigproxy admin".to_string(), AdminApp::new(state));
        a.threads = Some(1);
        a.add_tcp(addr);
        server.add_service(a);
    }

    let (tx, rx) = watch::channel(None);
    let handle = GatewayHandle {
        tx: Arc::new(tx),
        inflight,
        runtime_dir: dir,
    };
    Ok((
        Gateway {
            server,
            rx,
            handle: handle.clone(),
            settings,
        },
        handle,
    ))
}

impl Gateway {
    /// Serve until stopped (signal or handle); blocks the calling thread. Removes the runtime
    /// directory on the way out.
    pub fn run(self) {
        let Gateway {
            server,
            rx,
            handle,
            settings,
        } = self;
        if settings.exit_when_drained {
            let phases = server.watch_execution_phase();
            let h = handle.clone();
            let s = settings.clone();
            std::thread::spawn(move || exit_when_drained(phases, h, s));
        }
        let signal = Signals {
            rx,
            unix: settings.handle_signals,
        };
        server.run(RunArgs {
            shutdown_signal: Box::new(signal),
        });
        cleanup_runtime_dir(&settings, &handle.runtime_dir);
    }
}

/// Pingora sleeps the full grace period; leave as soon as nothing is in flight.
fn exit_when_drained(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    h: GatewayHandle,
    settings: ProxySettings,
) {
    let grace = Duration::from_secs(settings.shutdown_grace_seconds);
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
    let deadline = Instant::now() + grace;
    while h.in_flight() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    cleanup_runtime_dir(&settings, &h.runtime_dir);
    // `exit` skips the flush at the end of `serve`: write the buffered log lines now.
    crate::logsink::flush_global();
    std::process::exit(0);
}

struct Signals {
    rx: watch::Receiver<Option<Stop>>,
    unix: bool,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.rx.clone();
        let handle = async move {
            loop {
                if let Some(s) = *rx.borrow_and_update() {
                    return s;
                }
                if rx.changed().await.is_err() {
                    // Handle dropped: only signals can stop us now.
                    std::future::pending::<()>().await;
                }
            }
        };
        let stop = if self.unix {
            tokio::select! {
                s = handle => s,
                s = unix_signal() => return s,
            }
        } else {
            handle.await
        };
        match stop {
            Stop::Graceful => ShutdownSignal::GracefulTerminate,
            Stop::Now => ShutdownSignal::FastShutdown,
            Stop::Upgrade => ShutdownSignal::GracefulUpgrade,
        }
    }
}

#[cfg(unix)]
async fn unix_signal() -> ShutdownSignal {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => ShutdownSignal::GracefulTerminate,
        _ = int.recv() => ShutdownSignal::FastShutdown,
        _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
    }
}

#[cfg(not(unix))]
async fn unix_signal() -> ShutdownSignal {
    std::future::pending().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::proxy::settings::Upstream;

    #[test]
    fn runtime_dirs_differ_per_port_and_never_default_tmp() {
        let a = ProxySettings::new("127.0.0.1:8080", "127.0.0.1:1".parse::<Upstream>().unwrap());
        let b = ProxySettings::new("127.0.0.1:8081", "127.0.0.1:1".parse::<Upstream>().unwrap());
        let (da, db) = (runtime_dir_for(&a), runtime_dir_for(&b));
        assert_ne!(da, db);
        assert!(
            da.to_string_lossy()
                .contains(&std::process::id().to_string())
        );
        assert_ne!(da.join("sigproxy.pid"), Path::new("/tmp/pingora.pid"));
    }
}
