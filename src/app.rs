//! Assembly of the running gateway, shared by `sigproxy run` and `sigproxy demo`: load and
//! validate the policy (nothing is bound when it is bad), then build the replay store, the
//! metrics, the key directory, readiness, the policy reloader, the `/status` document, the gate
//! and the observer, hand them to the proxy and serve until a stop. No argument parsing here
//! (`cli/`), and no request logic (`proxy/`, `authn`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::admin::AdminState;
use crate::authn::Authenticator;
use crate::cli::unix_now;
use crate::keys::{DirectoryConfig, KeyDirectory};
use crate::live::reload::{self, ReloadEvent, Trigger};
use crate::live::{LivePolicy, Snapshot};
use crate::logsink::LogSink;
use crate::metrics::Metrics;
use crate::observe::Observer;
use crate::policy;
use crate::proxy::{self, ProxySettings};
use crate::ratelimit::{DEFAULT_MAX_TRACKED, FailureLimiter};
use crate::replay::NonceStore;

/// How a `run` process gets its listening sockets: bound afresh (default), or handed over by
/// the previous process in `runtime_dir` (`upgrade`).
#[derive(Clone, Debug, Default)]
pub struct Handover {
    pub upgrade: bool,
    pub runtime_dir: Option<PathBuf>,
}

/// JSON lines on stdout: the audit lines (target `audit`) and operational logs, buffered
/// (`crate::logsink`); the caller flushes the returned sink before exiting.
pub fn init_logging() -> LogSink {
    let sink = crate::logsink::global().clone();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGPROXY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(sink.clone())
        .try_init();
    sink
}

/// Everything `run` and `demo` share: loads, builds and serves; returns only on shutdown or on
/// a configuration error (before anything was bound). `on_ready` runs once the gateway is built.
/// Called once the gateway is built, before it serves (the demo prints its lines here).
pub type OnReady = Box<dyn FnOnce(&Snapshot) + Send>;

pub fn serve(config: &Path, on_ready: Option<OnReady>) -> Result<(), String> {
    serve_with(config, on_ready, Handover::default())
}

/// `serve`, with the listening sockets bound or taken over as `handover` says.
pub fn serve_with(
    config: &Path,
    on_ready: Option<OnReady>,
    handover: Handover,
) -> Result<(), String> {
    let env = policy::overrides_from_env(std::env::vars()).map_err(|e| e.to_string())?;
    let runtime = Arc::new(
        LivePolicy::load(config, env, unix_now())
            .map_err(|e| format!("{e}\n{}: policy not valid; not starting", config.display()))?,
    );
    let live = runtime.snapshot();
    let file = &live.policy.file;
    // Built once at start (restart-only keys). A Redis store connects lazily (first its probe, on
    // a thread of its own): a Redis still coming up delays nothing but the signed requests that
    // need it, and readiness when on_store_error is reject.
    let replay: Arc<dyn NonceStore> =
        crate::replay::build(&file.replay).map_err(|e| format!("{}: {e}", config.display()))?;
    let limiter = FailureLimiter::new(DEFAULT_MAX_TRACKED);
    let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
    metrics.config_reloads.with_label_values(&["success"]).inc();
    let directory = match &file.key_directory {
        Some(kd) => Some(
            start_key_directory(kd, &runtime, &metrics)
                .map_err(|e| format!("{}: {e}", config.display()))?,
        ),
        None => None,
    };
    metrics.state.bind_store(replay.clone());
    if let Some(d) = &directory {
        metrics.state.bind_directory(d.clone());
    }
    let readiness = crate::admin::readiness::start(file, &replay, directory.as_ref())?;
    // After the directory's first fetch: the key gauge counts its keys too.
    publish_gauges(&metrics, &runtime, &runtime.snapshot());
    {
        let metrics = metrics.clone();
        reload::spawn(
            runtime.clone(),
            unix_now,
            Box::new(move |rt, trigger, event| on_reload(&metrics, rt, trigger, event)),
        )?;
    }

    let mut settings = settings(&live);
    settings.upgrade = handover.upgrade;
    settings.runtime_dir = handover.runtime_dir;
    let ready = Arc::new(AtomicBool::new(false));
    let listener_tls = settings.tls;
    let admin = AdminState {
        ready: ready.clone(),
        registry: metrics.registry.clone(),
        status: crate::admin::status::status_fn(
            runtime.clone(),
            replay.clone(),
            directory.clone(),
            listener_tls,
        ),
        readiness: Some(Arc::new(readiness)),
    };
    let gate = Arc::new(
        Authenticator::new(runtime.clone(), replay.clone(), limiter, unix_now)
            .with_directory(directory),
    );
    let observer = Arc::new(Observer::new(metrics.clone()));
    let (gateway, _handle) = proxy::build(settings, gate, observer, Some(admin))
        .map_err(|e| format!("cannot start: {e}"))?;
    tracing::info!(
        listen = %file.listen,
        upstream = %file.upstream.address(),
        admin = %file.admin_listen,
        policy = %config.display(),
        ed25519 = crate::signature::ed25519_backend(),
        "sigproxy starting"
    );
    // Pingora binds inside `run`: ready (and the demo's lines) only once the listener answers.
    let listen = file.listen;
    let snapshot = live.clone();
    std::thread::spawn(move || {
        if wait_listening(listen, std::time::Duration::from_secs(30)) {
            ready.store(true, Ordering::Release);
            tracing::info!(listen = %listen, "sigproxy ready");
            if let Some(f) = on_ready {
                f(&snapshot);
            }
        } else {
            tracing::error!(listen = %listen, "listener did not come up within 30 s");
        }
    });
    gateway.run();
    Ok(())
}

/// Builds the key directory, fetches it once (bounded by its timeout; a failure is logged and the
/// gateway starts without directory keys, retrying every `refresh_seconds` and on unknown keyids),
/// and keeps refreshing it on a thread of its own, independent of the proxy's runtimes.
fn start_key_directory(
    kd: &policy::KeyDirectory,
    runtime: &Arc<LivePolicy>,
    metrics: &Arc<Metrics>,
) -> Result<KeyDirectory, String> {
    let (target, metrics) = (runtime.clone(), metrics.clone());
    let config = DirectoryConfig::new(kd.url.clone(), kd.refresh_seconds);
    let dir = KeyDirectory::new(config, move |records| {
        target.set_directory_keys(records)?;
        metrics
            .active_keys
            .set(target.snapshot().active_keys() as i64);
        Ok(())
    })?;
    let (first_tx, first_rx) = std::sync::mpsc::channel();
    let background = dir.clone();
    std::thread::Builder::new()
        .name("key-directory".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = first_tx.send(Err("key directory: cannot start its runtime".to_owned()));
                return;
            };
            rt.block_on(async move {
                let _ = first_tx.send(background.refresh().await);
                let _ = background.spawn_refresher().await;
            });
        })
        .map_err(|e| format!("key directory thread: {e}"))?;
    match first_rx.recv() {
        Ok(Ok(_)) => {
            tracing::info!(url = %kd.url, keys = dir.records().len(), "key directory loaded")
        }
        Ok(Err(e)) => tracing::error!(
            url = %kd.url,
            error = %e,
            "key directory: first fetch failed; starting without its keys"
        ),
        Err(_) => tracing::error!(url = %kd.url, "key directory: first fetch did not report"),
    }
    Ok(dir)
}

fn wait_listening(addr: std::net::SocketAddr, limit: std::time::Duration) -> bool {
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&probe, std::time::Duration::from_millis(200))
            .is_ok()
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

fn publish_gauges(m: &Metrics, runtime: &LivePolicy, live: &Snapshot) {
    m.active_keys.set(live.active_keys() as i64);
    m.canary_percent
        .set(i64::from(runtime.canary_percent(live)));
    m.set_effective_mode(live.effective.mode);
    m.set_restart_required(&live.restart_required);
    m.tls_cert_expiry
        .set(live.hop.tls.as_ref().map_or(0, |t| t.not_after));
    let mut routes: Vec<String> = live
        .effective
        .routes
        .iter()
        .map(|r| r.path_prefix.clone())
        .collect();
    routes.push("default".to_owned());
    m.retain_routes(&routes);
}

/// After each reload attempt: count it, log it, and refresh the gauges from what is in force.
fn on_reload(m: &Metrics, runtime: &LivePolicy, trigger: Trigger, event: &ReloadEvent) {
    match event {
        ReloadEvent::Applied {
            changed,
            generation,
            latency,
        } => {
            m.config_reloads.with_label_values(&["success"]).inc();
            if *changed {
                m.key_reload.observe(latency.as_secs_f64());
            }
            let live = runtime.snapshot();
            publish_gauges(m, runtime, &live);
            tracing::info!(
                trigger = trigger.as_str(),
                changed,
                generation,
                sha256 = %live.policy.sha256,
                effective_mode = live.effective.mode.as_str(),
                canary_percent = runtime.canary_percent(&live),
                dry_run = live.effective.dry_run,
                overrides = ?live.overrides.settings.iter().map(|s| format!("{}={}", s.name, s.value)).collect::<Vec<_>>(),
                "policy reloaded"
            );
        }
        ReloadEvent::Refused { error } => {
            m.config_reloads.with_label_values(&["failure"]).inc();
            tracing::error!(
                trigger = trigger.as_str(),
                error = %error,
                "policy reload refused; the last good policy stays in force"
            );
        }
    }
}

/// The start-only settings; everything a request reads comes from the live snapshot.
fn settings(live: &Snapshot) -> ProxySettings {
    let f = &live.policy.file;
    let mut s = ProxySettings::new(f.listen.to_string());
    s.admin_listen = Some(f.admin_listen.to_string());
    s.threads = f.threads;
    s.shutdown_grace_seconds = f.shutdown_grace_seconds;
    s.exit_when_drained = true;
    s.handle_signals = true;
    s.tls = f.tls.is_some();
    s.read_buffer_bytes = Some(f.listener.read_buffer_bytes);
    s.write_buffer_bytes = Some(f.listener.write_buffer_bytes);
    s
}
