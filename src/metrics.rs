//! Prometheus metrics of reference §6, registered once at start in one registry. Label values stay
//! bounded: codes and modes are enums, client ids come only from configured keys (`unknown`
//! otherwise), auth methods and statuses are fixed sets. The hot path only increments.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::decision::AuthMethod;
use crate::error::ErrorCode;
use crate::policy::{Mode, schema};

/// Client id label for callers that did not verify.
pub const UNKNOWN_CLIENT: &str = "unknown";
/// `route` label of the migration gauge over every route.
pub const ALL_ROUTES: &str = "all";
/// More distinct route labels than this (a policy with very many routes) share `other`.
pub const MAX_ROUTE_LABELS: usize = 64;

/// Read at scrape time from the replay store and the key directory (`admin::collect`), registered
/// by `Metrics::new` and bound to them at start (`Metrics::state`).
pub const REPLAY_SCOPE: &str = "datafold_replay_scope";
pub const REPLAY_STORE_UP: &str = "datafold_replay_store_up";
pub const REPLAY_STORE_RELEASES: &str = "datafold_replay_store_releases_total";
pub const KEY_DIRECTORY_FETCHES: &str = "datafold_key_directory_fetches_total";
pub const KEY_DIRECTORY_FAILURES: &str = "datafold_key_directory_failures_total";
pub const KEY_DIRECTORY_KEYS: &str = "datafold_key_directory_keys";
pub const KEY_DIRECTORY_AGE: &str = "datafold_key_directory_age_seconds";
pub const KEY_DIRECTORY_LOADED: &str = "datafold_key_directory_loaded";

pub struct Metrics {
    pub registry: Registry,
    pub auth_attempts: IntCounterVec,
    pub auth_latency: Histogram,
    pub invalid_signatures: IntCounterVec,
    pub replay_attempts: IntCounterVec,
    /// By `route` (path_prefix, `default`, or `all`).
    pub migration_progress: GaugeVec,
    pub active_keys: IntGauge,
    pub config_reloads: IntCounterVec,
    pub canary_percent: IntGauge,
    pub effective_mode: IntGaugeVec,
    pub requests: IntCounterVec,
    pub upstream_latency: Histogram,
    pub replay_store_errors: IntCounterVec,
    /// Times the canary auto-halt tripped.
    pub canary_halts: IntCounter,
    /// notAfter (Unix seconds) of the certificate the TLS listener serves; 0 without TLS.
    pub tls_cert_expiry: IntGauge,
    /// Client connections ended before a request reached the gate, by reason.
    pub connections_refused: IntCounterVec,
    /// 1 for each restart-only policy key whose reloaded value waits for a restart.
    pub restart_required: IntGaugeVec,
    /// The replay store's and the key directory's own state, bound to them at start.
    pub state: crate::admin::collect::Bindings,
    /// A noticed change (file or SIGHUP) → the new snapshot in force: the revocation latency.
    pub key_reload: Histogram,
    progress: Mutex<HashMap<String, ProgressWindow>>,
}

/// Attempt outcome label of `datafold_auth_attempts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptStatus {
    Success,
    Failure,
    /// Dry run: would have been rejected, was let through.
    DryRunFailure,
    /// Not verified (legacy or exempt).
    Skipped,
}

impl AttemptStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::DryRunFailure => "dry_run_failure",
            Self::Skipped => "skipped",
        }
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// Reloads: a settle of 100 ms is always in, a million keys take well under a second.
const RELOAD_BUCKETS: &[f64] = &[
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram = |name: &str, help: &str| -> Result<Histogram, prometheus::Error> {
            let h = Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let auth_attempts = counter_vec(
            "datafold_auth_attempts_total",
            "Authentication attempts by method (signature|legacy|none), status and client id",
            &["method", "status", "client_id"],
        )?;
        let auth_latency = histogram(
            "datafold_auth_latency_seconds",
            "Time spent deciding a request (verify, digest, replay)",
        )?;
        let invalid_signatures = counter_vec(
            "datafold_invalid_signatures_total",
            "Rejected signatures by reason (error code)",
            &["reason"],
        )?;
        let replay_attempts = counter_vec(
            "datafold_replay_attempts_total",
            "Replayed nonces by client id",
            &["client_id"],
        )?;
        let migration_progress = GaugeVec::new(
            Opts::new(
                "datafold_migration_progress_percent",
                "Share of non-exempt requests that were signed and valid, last 5 minutes, by route",
            ),
            &["route"],
        )?;
        registry.register(Box::new(migration_progress.clone()))?;
        let active_keys = IntGauge::new(
            "datafold_active_keys_total",
            "Active (not revoked) keys loaded",
        )?;
        registry.register(Box::new(active_keys.clone()))?;
        let config_reloads = counter_vec(
            "datafold_config_reloads_total",
            "Policy loads and reloads by result",
            &["result"],
        )?;
        let canary_percent = IntGauge::new("datafold_canary_percent", "Effective canary percent")?;
        registry.register(Box::new(canary_percent.clone()))?;
        let effective_mode = IntGaugeVec::new(
            Opts::new(
                "datafold_effective_mode",
                "1 for the effective default mode",
            ),
            &["mode"],
        )?;
        registry.register(Box::new(effective_mode.clone()))?;
        let requests = counter_vec(
            "datafold_requests_total",
            "Requests by outcome code (OK or an error code)",
            &["code"],
        )?;
        let upstream_latency = histogram(
            "datafold_upstream_latency_seconds",
            "Upstream request sent → response header received",
        )?;
        let replay_store_errors = counter_vec(
            "datafold_replay_store_errors_total",
            "Replay store failures by what was done (rejected|allowed)",
            &["result"],
        )?;
        let tls_cert_expiry = IntGauge::new(
            "datafold_tls_cert_expiry_timestamp_seconds",
            "notAfter (Unix seconds) of the certificate the TLS listener serves; 0 without TLS",
        )?;
        registry.register(Box::new(tls_cert_expiry.clone()))?;
        let canary_halts = IntCounter::new(
            "datafold_canary_auto_halts_total",
            "Times the canary auto-halt dropped the effective canary to 0",
        )?;
        registry.register(Box::new(canary_halts.clone()))?;
        let connections_refused = counter_vec(
            "datafold_connections_refused_total",
            "Client connections closed before a request reached verification, by reason \
             (max_connections|header_timeout|bad_request|tls_handshake|h2_abuse)",
            &["reason"],
        )?;
        for e in crate::proxy::ConnEvent::ALL {
            connections_refused.with_label_values(&[e.as_str()]);
        }
        let restart_required = IntGaugeVec::new(
            Opts::new(
                "datafold_config_restart_required",
                "1 for each restart-only policy key whose reloaded value is not in force until a restart",
            ),
            &["key"],
        )?;
        registry.register(Box::new(restart_required.clone()))?;
        for k in schema::leaves().filter(|k| k.apply == schema::Apply::Restart) {
            restart_required.with_label_values(&[k.path]);
        }
        for k in schema::RESTART_SECTIONS {
            restart_required.with_label_values(&[k]);
        }
        let key_reload = Histogram::with_opts(
            HistogramOpts::new(
                "datafold_key_reload_seconds",
                "Seconds from a changed policy, override or key file being noticed (polled every \
                 250 ms) or a SIGHUP to the reloaded policy and keys being in force: how long a \
                 revoked key keeps working, less at most one poll",
            )
            .buckets(RELOAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(key_reload.clone()))?;
        // Pre-create every bounded series so dashboards see zeros, not gaps.
        for c in ErrorCode::ALL {
            requests.with_label_values(&[c.as_str()]);
        }
        requests.with_label_values(&["OK"]);
        for r in ["success", "failure"] {
            config_reloads.with_label_values(&[r]);
        }
        for m in [Mode::Off, Mode::Hybrid, Mode::Required] {
            effective_mode.with_label_values(&[m.as_str()]);
        }
        let state = crate::admin::collect::register(&registry)?;
        Ok(Self {
            registry,
            auth_attempts,
            auth_latency,
            invalid_signatures,
            replay_attempts,
            migration_progress,
            active_keys,
            config_reloads,
            canary_percent,
            effective_mode,
            requests,
            upstream_latency,
            replay_store_errors,
            canary_halts,
            tls_cert_expiry,
            connections_refused,
            restart_required,
            state,
            key_reload,
            progress: Mutex::new(HashMap::new()),
        })
    }

    pub fn set_effective_mode(&self, mode: Mode) {
        for m in [Mode::Off, Mode::Hybrid, Mode::Required] {
            self.effective_mode
                .with_label_values(&[m.as_str()])
                .set(i64::from(m == mode));
        }
    }

    /// `pending`: the restart-only keys that differ from the start values (labels are the
    /// schema's restart-only keys, a fixed set).
    pub fn set_restart_required(&self, pending: &[&str]) {
        let restart = schema::leaves()
            .filter(|k| k.apply == schema::Apply::Restart)
            .map(|k| k.path)
            .chain(schema::RESTART_SECTIONS.iter().copied());
        for k in restart {
            self.restart_required
                .with_label_values(&[k])
                .set(i64::from(pending.contains(&k)));
        }
    }

    pub fn auth_attempt(&self, method: AuthMethod, status: AttemptStatus, client_id: &str) {
        self.auth_attempts
            .with_label_values(&[method.as_str(), status.as_str(), client_id])
            .inc();
    }

    /// Feeds the migration gauge: `signed_valid` among non-exempt requests, for `route` and
    /// for `all`.
    pub fn migration_sample(&self, route: &str, signed_valid: bool, now: Instant) {
        let Ok(mut windows) = self.progress.lock() else {
            return;
        };
        let route = if windows.contains_key(route) || windows.len() < MAX_ROUTE_LABELS {
            route
        } else {
            "other"
        };
        for label in [ALL_ROUTES, route] {
            let w = windows
                .entry(label.to_owned())
                .or_insert_with(|| ProgressWindow::new(now));
            w.record(signed_valid, now);
            if let Some(p) = w.percent() {
                self.migration_progress.with_label_values(&[label]).set(p);
            }
        }
    }

    /// After a reload: drop the migration series of routes the policy no longer has.
    pub fn retain_routes(&self, routes: &[String]) {
        let Ok(mut windows) = self.progress.lock() else {
            return;
        };
        windows.retain(|label, _| {
            let keep = label == ALL_ROUTES || routes.iter().any(|r| r == label);
            if !keep {
                let _ = self.migration_progress.remove_label_values(&[label]);
            }
            keep
        });
    }

    pub fn observe_upstream(&self, d: Duration) {
        self.upstream_latency.observe(d.as_secs_f64());
    }
}

/// A 5-minute rolling share, in 10-second buckets.
struct ProgressWindow {
    start: Instant,
    buckets: [(u64, u64, u64); 30],
}

impl ProgressWindow {
    fn new(start: Instant) -> Self {
        Self {
            start,
            buckets: [(u64::MAX, 0, 0); 30],
        }
    }

    fn record(&mut self, good: bool, now: Instant) {
        let slot = now.duration_since(self.start).as_secs() / 10;
        let b = &mut self.buckets[(slot % 30) as usize];
        if b.0 != slot {
            *b = (slot, 0, 0);
        }
        b.1 += u64::from(good);
        b.2 += 1;
        let oldest = slot.saturating_sub(29);
        for b in &mut self.buckets {
            if b.0 != u64::MAX && b.0 < oldest {
                *b = (u64::MAX, 0, 0);
            }
        }
    }

    fn percent(&self) -> Option<f64> {
        let (good, all) = self
            .buckets
            .iter()
            .filter(|b| b.0 != u64::MAX)
            .fold((0, 0), |a, b| (a.0 + b.1, a.1 + b.2));
        (all > 0).then(|| 100.0 * good as f64 / all as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_spec_metric_once() {
        let m = Metrics::new().unwrap();
        m.auth_attempt(AuthMethod::Signature, AttemptStatus::Success, "web");
        m.invalid_signatures
            .with_label_values(&["SIGNATURE_INVALID"])
            .inc();
        m.replay_attempts.with_label_values(&["web"]).inc();
        m.observe_upstream(Duration::from_millis(3));
        m.auth_latency.observe(0.001);
        m.migration_sample("/api/", true, Instant::now());
        let names: Vec<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for want in [
            "datafold_auth_attempts_total",
            "datafold_auth_latency_seconds",
            "datafold_invalid_signatures_total",
            "datafold_replay_attempts_total",
            "datafold_migration_progress_percent",
            "datafold_active_keys_total",
            "datafold_config_reloads_total",
            "datafold_canary_percent",
            "datafold_effective_mode",
            "datafold_requests_total",
            "datafold_upstream_latency_seconds",
            "datafold_canary_auto_halts_total",
            "datafold_config_restart_required",
            "datafold_key_reload_seconds",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }

    #[test]
    fn migration_window_forgets_old_samples() {
        let t0 = Instant::now();
        let mut w = ProgressWindow::new(t0);
        w.record(false, t0);
        w.record(true, t0);
        assert_eq!(w.percent(), Some(50.0));
        w.record(true, t0 + Duration::from_secs(400));
        assert_eq!(w.percent(), Some(100.0));
    }

    #[test]
    fn migration_progress_per_route_and_overall() {
        let m = Metrics::new().unwrap();
        let t = Instant::now();
        m.migration_sample("/api/", true, t);
        m.migration_sample("/api/", true, t);
        m.migration_sample("default", false, t);
        let get = |l: &str| m.migration_progress.with_label_values(&[l]).get();
        assert_eq!(get("/api/"), 100.0);
        assert_eq!(get("default"), 0.0);
        assert!((get(ALL_ROUTES) - 200.0 / 3.0).abs() < 1e-9);
        m.retain_routes(&["/api/".to_owned()]);
        let text = format!("{:?}", m.registry.gather());
        assert!(!text.contains("\"default\""), "{text}");
        for i in 0..(2 * MAX_ROUTE_LABELS) {
            m.migration_sample(&format!("/r{i}"), true, t);
        }
        assert!(m.progress.lock().unwrap().len() <= MAX_ROUTE_LABELS + 1);
    }
}
