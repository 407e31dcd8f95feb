//! Building and running the Pingora `Server` from our own settings (no Pingora CLI or YAML):
//! worker threads, a per-instance runtime directory for the pid file and upgrade socket, the
//! proxy listener (our own request path, `conn.rs`) and the optional admin listener; and
//! stopping in the order a load balancer needs: on SIGTERM `/readyz` turns 503 and every
//! response closes its connection, the listener keeps serving for `drain_delay_seconds`, then
//! stops accepting, in-flight requests finish within `shutdown_grace_seconds`, and the process
//! exits. Stopping is through signals (binary) or a `GatewayHandle` (tests and embedders).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::sync::watch;

use super::conn::Front;
use super::ctx::{Connections, Draining, InFlight};
use super::exchange::Core;
use super::gate::Gate;
use super::record::RequestObserver;
use super::settings::ProxySettings;
use crate::admin::{AdminApp, AdminState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Graceful,
    Now,
    Upgrade,
}

/// The stop timing in force, read when a stop begins (the policy may have changed since start).
pub type StopTiming = Arc<dyn Fn() -> (Duration, Duration) + Send + Sync>;

/// Stops a running gateway from another thread.
#[derive(Clone)]
pub struct GatewayHandle {
    tx: Arc<watch::Sender<Option<Stop>>>,
    inflight: InFlight,
    connections: Connections,
    draining: Draining,
    runtime_dir: PathBuf,
}

impl GatewayHandle {
    /// Like SIGTERM: drain (keep serving, `/readyz` 503, responses close their connections) for
    /// the drain delay, stop accepting, let in-flight requests finish within the grace period.
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
    /// Client connections currently open.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }
    /// A stop has begun.
    pub fn draining(&self) -> bool {
        self.draining.is_set()
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
    timing: StopTiming,
    ready: Option<Arc<AtomicBool>>,
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
pub fn build<G, O>(
    settings: ProxySettings,
    gate: Arc<G>,
    observer: Arc<O>,
    admin: Option<AdminState>,
) -> Result<(Gateway, GatewayHandle), String>
where
    G: Gate,
    O: RequestObserver<G::Note>,
{
    let dir = runtime_dir_for(&settings);
    prepare_runtime_dir(&dir)?;

    let conf = ServerConf {
        threads: settings.worker_threads(),
        daemon: false,
        pid_file: dir.join("sigproxy.pid").to_string_lossy().into_owned(),
        upgrade_sock: dir.join("upgrade.sock").to_string_lossy().into_owned(),
        // Pingora sleeps this long after the listeners close; `exit_when_drained` leaves as soon
        // as nothing is in flight, within the grace period read from the policy at that moment.
        grace_period_seconds: Some(if settings.exit_when_drained {
            MAX_GRACE_SECONDS
        } else {
            settings.shutdown_grace_seconds
        }),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };

    let opt = pingora::server::configuration::Opt {
        upgrade: settings.upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();

    let inflight = InFlight::default();
    let connections = Connections::default();
    let draining = Draining::default();
    let timing: StopTiming = {
        let gate = gate.clone();
        Arc::new(move || {
            let snap = gate.snapshot();
            let hop = G::hop(&snap);
            (hop.drain_delay, hop.shutdown_grace)
        })
    };
    let core = Arc::new(Core {
        gate,
        observer,
        upstreams: super::upstream::Upstreams::default(),
        inflight: inflight.clone(),
        connections: connections.clone(),
        draining: draining.clone(),
    });
    let front = Front::new(core, settings.tls);
    let mut svc = Service::new("sigproxy".to_string(), front);
    let buffers = L4BufferSettings {
        read: settings.read_buffer_bytes,
        write: settings.write_buffer_bytes,
    };
    svc.add_listener(ListenerConfig::tcp(settings.listen.clone()).l4_buffer(buffers));
    server.add_service(svc);

    let ready = admin.as_ref().map(|a| a.ready.clone());
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
        connections,
        draining,
        runtime_dir: dir,
    };
    Ok((
        Gateway {
            server,
            rx,
            handle: handle.clone(),
            settings,
            timing,
            ready,
        },
        handle,
    ))
}

/// The longest grace the policy allows (`shutdown_grace_seconds` is validated to this).
const MAX_GRACE_SECONDS: u64 = 3600;

impl Gateway {
    /// Serve until stopped (signal or handle); blocks the calling thread. Removes the runtime
    /// directory on the way out.
    pub fn run(self) {
        let Gateway {
            server,
            rx,
            handle,
            settings,
            timing,
            ready,
        } = self;
        if settings.exit_when_drained {
            let phases = server.watch_execution_phase();
            let h = handle.clone();
            let s = settings.clone();
            let t = timing.clone();
            std::thread::spawn(move || exit_when_drained(phases, h, s, t));
        }
        let signal = Signals {
            rx,
            unix: settings.handle_signals,
            draining: handle.draining.clone(),
            ready,
            timing,
        };
        server.run(RunArgs {
            shutdown_signal: Box::new(signal),
        });
        cleanup_runtime_dir(&settings, &handle.runtime_dir);
    }
}

/// Pingora sleeps the full grace period; leave as soon as no request is in flight and no
/// client connection is open.
fn exit_when_drained(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    h: GatewayHandle,
    settings: ProxySettings,
    timing: StopTiming,
) {
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
    let (_, grace) = timing();
    let deadline = Instant::now() + grace;
    // Open connections, not only requests: a connection accepted just before the listener
    // stopped has its request on the wire but not yet read (in flight: 0). Idle keep-alive
    // connections close at the shutdown signal, so this waits only for ones with work. Zero
    // twice in a row, 20 ms apart: a task the accept loop spawned last has entered by then.
    let busy = || h.in_flight() > 0 || h.connections() > 0;
    let mut quiet = 0;
    while quiet < 2 && Instant::now() < deadline {
        quiet = if busy() { 0 } else { quiet + 1 };
        std::thread::sleep(Duration::from_millis(20));
    }
    if busy() {
        tracing::warn!(
            in_flight = h.in_flight(),
            connections = h.connections(),
            grace_seconds = grace.as_secs(),
            "shutdown_grace_seconds passed with requests or connections still open; exiting anyway"
        );
    }
    cleanup_runtime_dir(&settings, &h.runtime_dir);
    // `exit` skips the flush at the end of `serve`: write the buffered log lines now.
    crate::logsink::flush_global();
    std::process::exit(0);
}

struct Signals {
    rx: watch::Receiver<Option<Stop>>,
    unix: bool,
    draining: Draining,
    ready: Option<Arc<AtomicBool>>,
    timing: StopTiming,
}

impl Signals {
    /// The next stop request, from the handle or (when installed) a signal.
    async fn next(&self) -> Stop {
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
        if self.unix {
            tokio::select! {
                s = handle => s,
                s = unix_signal() => s,
            }
        } else {
            handle.await
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        match self.next().await {
            Stop::Graceful => {}
            Stop::Now => return ShutdownSignal::FastShutdown,
            Stop::Upgrade => return ShutdownSignal::GracefulUpgrade,
        }
        // Load balancers and kube-proxy stop sending only some seconds after they learn the
        // instance is going: keep answering (saying "not ready" and closing connections after
        // each response) until then, so no client meets a refused connection.
        self.draining.start();
        if let Some(r) = &self.ready {
            r.store(false, Ordering::Release);
        }
        let (delay, grace) = (self.timing)();
        tracing::info!(
            drain_delay_seconds = delay.as_secs(),
            shutdown_grace_seconds = grace.as_secs(),
            "stop requested: draining; /readyz is 503, listeners stay open for the drain delay"
        );
        if !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                s = self.next_after_graceful() => return s,
            }
        }
        tracing::info!("drain delay over: closing listeners, finishing in-flight requests");
        ShutdownSignal::GracefulTerminate
    }
}

impl Signals {
    /// During the drain delay a second request to stop now (SIGINT, `stop_now`) wins.
    async fn next_after_graceful(&self) -> ShutdownSignal {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        let handle = async move {
            loop {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                match *rx.borrow_and_update() {
                    Some(Stop::Now) => return ShutdownSignal::FastShutdown,
                    Some(Stop::Upgrade) => return ShutdownSignal::GracefulUpgrade,
                    _ => {}
                }
            }
        };
        if self.unix {
            tokio::select! {
                s = handle => s,
                s = unix_signal() => match s {
                    Stop::Graceful => ShutdownSignal::GracefulTerminate,
                    Stop::Now => ShutdownSignal::FastShutdown,
                    Stop::Upgrade => ShutdownSignal::GracefulUpgrade,
                },
            }
        } else {
            handle.await
        }
    }
}

#[cfg(unix)]
async fn unix_signal() -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => Stop::Graceful,
        _ = int.recv() => Stop::Now,
        _ = quit.recv() => Stop::Upgrade,
    }
}

#[cfg(not(unix))]
async fn unix_signal() -> Stop {
    std::future::pending().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dirs_differ_per_port_and_never_default_tmp() {
        let a = ProxySettings::new("127.0.0.1:8080");
        let b = ProxySettings::new("127.0.0.1:8081");
        let (da, db) = (runtime_dir_for(&a), runtime_dir_for(&b));
        assert_ne!(da, db);
        assert!(
            da.to_string_lossy()
                .contains(&std::process::id().to_string())
        );
        assert_ne!(da.join("sigproxy.pid"), Path::new("/tmp/pingora.pid"));
    }
}
