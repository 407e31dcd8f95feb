//! Prometheus metrics (reference §6), registered once at start in one registry. Label values stay
//! bounded: codes and modes are enums, client ids come only from configured keys (`unknown`
//! otherwise), routes from the policy (at most `MAX_ROUTE_LABELS`, then `other`), auth methods and
//! statuses are fixed sets.
//!
//! The hot path only increments: the per-request series live in per-thread shards (`cells`),
//! found by index (codes, methods, statuses) or, for client ids and routes, in a lock-free map
//! read without allocating; no request takes a lock or allocates once its client and route have
//! been seen. Gauges that summarise (the migration share) are computed when scraped. Series that
//! change rarely (reloads, keys, mode, canary) are ordinary `prometheus` types.

mod cells;
mod migration;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::decision::AuthMethod;
use crate::error::ErrorCode;
use crate::policy::{Mode, schema};
use cells::{Cells, Family, LatencyCells};
use migration::{BUCKET_SECONDS, Window};

/// Client id label for callers that did not verify.
pub const UNKNOWN_CLIENT: &str = "unknown";
/// `route` label of the migration gauge over every route.
pub const ALL_ROUTES: &str = "all";
/// More distinct route labels than this (a policy with very many routes) share `other`.
pub const MAX_ROUTE_LABELS: usize = 64;
const OTHER_ROUTE: &str = "other";

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
    pub active_keys: IntGauge,
    pub config_reloads: IntCounterVec,
    pub canary_percent: IntGauge,
    pub effective_mode: IntGaugeVec,
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
    pub key_reload: prometheus::Histogram,
    hot: Arc<Hot>,
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
    pub const ALL: [Self; 4] = [
        Self::Success,
        Self::Failure,
        Self::DryRunFailure,
        Self::Skipped,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::DryRunFailure => "dry_run_failure",
            Self::Skipped => "skipped",
        }
    }
}

/// `result` label of `datafold_replay_store_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorResult {
    /// The request was refused (`on_store_error: reject`).
    Rejected,
    /// The request went through unchecked (`on_store_error: allow`).
    Allowed,
}

impl StoreErrorResult {
    const ALL: [Self; 2] = [Self::Rejected, Self::Allowed];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Allowed => "allowed",
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

const METHODS: [AuthMethod; 3] = [AuthMethod::Signature, AuthMethod::Legacy, AuthMethod::None];

/// Whether `code` is a `reason` of `datafold_invalid_signatures_total`: a code the gate's verdict
/// (or its refusal of a body it could not read) can carry, pre-created at 0 so a dashboard sees
/// every bounded series from the start. The upstream's failures and sigproxy's own are answered
/// after the gate passed a request: never a reason. Exhaustive, so a new code must be placed.
const fn is_invalid_reason(code: ErrorCode) -> bool {
    use ErrorCode::*;
    match code {
        SignatureMissing
        | SignatureMalformed
        | KeyNotFound
        | KeyRevoked
        | KeyIdMismatch
        | TimestampOutOfWindow
        | TimestampTooOld
        | NonceMissing
        | NonceReplayed
        | ComponentsMissing
        | DigestMissing
        | DigestMismatch
        | SignatureInvalid
        | BodyTooLarge
        | RateLimited
        | ReplayStoreUnavailable
        | BadRequest
        | RequestTimeout => true,
        UpstreamUnavailable | UpstreamTimeout | ProxyError => false,
    }
}

/// Cell of an error code in a per-code family; 0 is `OK` (requests) or `UNKNOWN` (reasons).
fn code_slot(code: Option<ErrorCode>) -> usize {
    code.map_or(0, |c| 1 + c as usize)
}

/// Per-client cells: one per (method, status), then the replay counter.
const CLIENT_ATTEMPTS: usize = METHODS.len() * AttemptStatus::ALL.len();
const CLIENT_CELLS: usize = CLIENT_ATTEMPTS + 1;

fn attempt_slot(method: AuthMethod, status: AttemptStatus) -> usize {
    let m = match method {
        AuthMethod::Signature => 0,
        AuthMethod::Legacy => 1,
        AuthMethod::None => 2,
    };
    m * AttemptStatus::ALL.len() + status as usize
}

/// Labels to per-label state, read without a lock; a new label is added under `add`, once.
struct LabelMap<T> {
    map: ArcSwap<HashMap<Box<str>, Arc<T>>>,
    add: Mutex<()>,
}

impl<T: Default> LabelMap<T> {
    fn new() -> Self {
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
            add: Mutex::new(()),
        }
    }

    /// Runs `f` on `label`'s state; a label not seen before is added (`fallback` names the
    /// state to use instead once `limit` labels exist).
    fn with<R>(&self, label: &str, limit: usize, fallback: &str, f: impl FnOnce(&T) -> R) -> R {
        if let Some(t) = self.map.load().get(label) {
            return f(t);
        }
        let _g = self.add.lock().unwrap_or_else(PoisonError::into_inner);
        let cur = self.map.load_full();
        let key = if cur.contains_key(label) || cur.len() < limit {
            label
        } else {
            fallback
        };
        if let Some(t) = cur.get(key) {
            return f(t);
        }
        let mut next = HashMap::clone(&cur);
        let t = Arc::new(T::default());
        next.insert(Box::from(key), t.clone());
        self.map.store(Arc::new(next));
        f(&t)
    }

    fn retain(&self, keep: impl Fn(&str) -> bool) {
        let _g = self.add.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&self.map.load_full());
        next.retain(|k, _| keep(k));
        self.map.store(Arc::new(next));
    }

    fn snapshot(&self) -> Vec<(Box<str>, Arc<T>)> {
        self.map
            .load()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

struct ClientCells(Cells);

impl Default for ClientCells {
    fn default() -> Self {
        Self(Cells::new(CLIENT_CELLS))
    }
}

/// The per-request series and the collector that exports them.
struct Hot {
    epoch: Instant,
    requests: Cells,
    invalid: Cells,
    store_errors: Cells,
    auth_latency: LatencyCells,
    upstream_latency: LatencyCells,
    unknown_client: ClientCells,
    clients: LabelMap<ClientCells>,
    all_routes: Window,
    routes: LabelMap<Window>,
    /// Label of each code cell (`None`: no code has that number).
    code_labels: Vec<Option<ErrorCode>>,
    f: Families,
}

struct Families {
    requests: Family,
    invalid: Family,
    store_errors: Family,
    auth_latency: Family,
    upstream_latency: Family,
    attempts: Family,
    replays: Family,
    migration: Family,
}

impl Hot {
    fn new() -> Result<Self, prometheus::Error> {
        let code_cells = 1
            + ErrorCode::ALL
                .iter()
                .map(|c| *c as usize)
                .max()
                .unwrap_or(0)
            + 1;
        let mut code_labels = vec![None; code_cells];
        for c in ErrorCode::ALL {
            code_labels[code_slot(Some(c))] = Some(c);
        }
        let counter = MetricType::COUNTER;
        let f = Families {
            requests: Family::new(
                "datafold_requests_total",
                "Requests by outcome code (OK or an error code)",
                &["code"],
                counter,
            )?,
            invalid: Family::new(
                "datafold_invalid_signatures_total",
                "Rejected signatures by reason (error code)",
                &["reason"],
                counter,
            )?,
            store_errors: Family::new(
                "datafold_replay_store_errors_total",
                "Replay store failures by what was done (rejected|allowed)",
                &["result"],
                counter,
            )?,
            auth_latency: Family::new(
                "datafold_auth_latency_seconds",
                "Time spent deciding a request (verify, digest, replay)",
                &[],
                MetricType::HISTOGRAM,
            )?,
            upstream_latency: Family::new(
                "datafold_upstream_latency_seconds",
                "Upstream request sent → response header received",
                &[],
                MetricType::HISTOGRAM,
            )?,
            attempts: Family::new(
                "datafold_auth_attempts_total",
                "Authentication attempts by method (signature|legacy|none), status and client id",
                &["method", "status", "client_id"],
                counter,
            )?,
            replays: Family::new(
                "datafold_replay_attempts_total",
                "Replayed nonces by client id",
                &["client_id"],
                counter,
            )?,
            migration: Family::new(
                "datafold_migration_progress_percent",
                "Share of non-exempt requests that were signed and valid, last 5 minutes, by route",
                &["route"],
                MetricType::GAUGE,
            )?,
        };
        Ok(Self {
            epoch: Instant::now(),
            requests: Cells::new(code_cells),
            invalid: Cells::new(code_cells),
            store_errors: Cells::new(StoreErrorResult::ALL.len()),
            auth_latency: LatencyCells::new(LATENCY_BUCKETS),
            upstream_latency: LatencyCells::new(LATENCY_BUCKETS),
            unknown_client: ClientCells::default(),
            clients: LabelMap::new(),
            all_routes: Window::default(),
            routes: LabelMap::new(),
            code_labels,
            f,
        })
    }

    fn slot(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / BUCKET_SECONDS
    }

    fn client<R>(&self, client: &str, f: impl FnOnce(&Cells) -> R) -> R {
        if client == UNKNOWN_CLIENT {
            return f(&self.unknown_client.0);
        }
        // Client ids come from configured keys: no limit beyond the key set.
        self.clients
            .with(client, usize::MAX, UNKNOWN_CLIENT, |c| f(&c.0))
    }

    fn collect_clients(&self, attempts: &mut MetricFamily, replays: &mut MetricFamily) {
        let mut all = self.clients.snapshot();
        all.retain(|(k, _)| &**k != UNKNOWN_CLIENT);
        let unknown = (UNKNOWN_CLIENT, &self.unknown_client);
        for (client, cells) in all.iter().map(|(k, v)| (&**k, &**v)).chain([unknown]) {
            for m in METHODS {
                for s in AttemptStatus::ALL {
                    let v = cells.0.sum(attempt_slot(m, s));
                    if v > 0 {
                        self.f.attempts.push_counter(
                            attempts,
                            &[m.as_str(), s.as_str(), client],
                            v,
                        );
                    }
                }
            }
            let v = cells.0.sum(CLIENT_ATTEMPTS);
            if v > 0 {
                self.f.replays.push_counter(replays, &[client], v);
            }
        }
    }
}

impl Collector for Hot {
    fn desc(&self) -> Vec<&Desc> {
        let f = &self.f;
        [
            &f.requests,
            &f.invalid,
            &f.store_errors,
            &f.auth_latency,
            &f.upstream_latency,
            &f.attempts,
            &f.replays,
            &f.migration,
        ]
        .into_iter()
        .map(|f| &f.desc)
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let f = &self.f;
        let mut requests = f.requests.start();
        let mut invalid = f.invalid.start();
        for (i, code) in self.code_labels.iter().enumerate() {
            let (label, reason) = match (i, code) {
                (0, _) => (None, false),
                (_, Some(c)) => (Some(c.as_str()), is_invalid_reason(*c)),
                (_, None) => continue,
            };
            // Every request code and every reason is shown from the start (zeros, not gaps);
            // `UNKNOWN`, a reason without a code (never expected), once seen.
            f.requests.push_counter(
                &mut requests,
                &[label.unwrap_or("OK")],
                self.requests.sum(i),
            );
            let v = self.invalid.sum(i);
            if v > 0 || reason {
                f.invalid
                    .push_counter(&mut invalid, &[label.unwrap_or("UNKNOWN")], v);
            }
        }
        let mut store_errors = f.store_errors.start();
        for r in StoreErrorResult::ALL {
            let v = self.store_errors.sum(r as usize);
            f.store_errors
                .push_counter(&mut store_errors, &[r.as_str()], v);
        }
        let mut auth_latency = f.auth_latency.start();
        f.auth_latency
            .push_histogram(&mut auth_latency, &self.auth_latency);
        let mut upstream_latency = f.upstream_latency.start();
        f.upstream_latency
            .push_histogram(&mut upstream_latency, &self.upstream_latency);
        let mut attempts = f.attempts.start();
        let mut replays = f.replays.start();
        self.collect_clients(&mut attempts, &mut replays);
        let mut migration = f.migration.start();
        let now = self.slot(Instant::now());
        let routes = self.routes.snapshot();
        let all = (ALL_ROUTES, &self.all_routes);
        for (label, w) in routes.iter().map(|(k, v)| (&**k, &**v)).chain([all]) {
            if let Some(p) = w.percent(now) {
                f.migration.push_gauge(&mut migration, &[label], p);
            }
        }
        vec![
            requests,
            invalid,
            store_errors,
            auth_latency,
            upstream_latency,
            attempts,
            replays,
            migration,
        ]
    }
}

/// Lets the registry hold the collector while `Metrics` keeps recording into it.
struct Shared(Arc<Hot>);

impl Collector for Shared {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let hot = Arc::new(Hot::new()?);
        registry.register(Box::new(Shared(hot.clone())))?;
        let active_keys = IntGauge::new(
            "datafold_active_keys_total",
            "Active (not revoked) keys loaded",
        )?;
        registry.register(Box::new(active_keys.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "datafold_config_reloads_total",
                "Policy loads and reloads by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
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
        let canary_halts = IntCounter::new(
            "datafold_canary_auto_halts_total",
            "Times the canary auto-halt dropped the effective canary to 0",
        )?;
        registry.register(Box::new(canary_halts.clone()))?;
        let tls_cert_expiry = IntGauge::new(
            "datafold_tls_cert_expiry_timestamp_seconds",
            "notAfter (Unix seconds) of the certificate the TLS listener serves; 0 without TLS",
        )?;
        registry.register(Box::new(tls_cert_expiry.clone()))?;
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "datafold_connections_refused_total",
                "Client connections closed before a request reached verification, by reason \
                 (max_connections|header_timeout|bad_request|tls_handshake|h2_abuse)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
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
        let key_reload = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "datafold_key_reload_seconds",
                "Seconds from a changed policy, override or key file being noticed (polled every \
                 250 ms) or a SIGHUP to the reloaded policy and keys being in force: how long a \
                 revoked key keeps working, less at most one poll",
            )
            .buckets(RELOAD_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(key_reload.clone()))?;
        // Pre-create every bounded series so dashboards see zeros, not gaps.
        for r in ["success", "failure"] {
            config_reloads.with_label_values(&[r]);
        }
        for m in [Mode::Off, Mode::Hybrid, Mode::Required] {
            effective_mode.with_label_values(&[m.as_str()]);
        }
        let state = crate::admin::collect::register(&registry)?;
        Ok(Self {
            registry,
            active_keys,
            config_reloads,
            canary_percent,
            effective_mode,
            canary_halts,
            tls_cert_expiry,
            connections_refused,
            restart_required,
            state,
            key_reload,
            hot,
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

    /// One finished request: `datafold_requests_total{code}` (`None`: `OK`).
    pub fn request(&self, code: Option<ErrorCode>) {
        self.hot.requests.add(code_slot(code), 1);
    }

    pub fn auth_attempt(&self, method: AuthMethod, status: AttemptStatus, client_id: &str) {
        let i = attempt_slot(method, status);
        self.hot.client(client_id, |c| c.add(i, 1));
    }

    pub fn observe_auth(&self, d: Duration) {
        self.hot.auth_latency.observe(d);
    }

    pub fn observe_upstream(&self, d: Duration) {
        self.hot.upstream_latency.observe(d);
    }

    /// A rejected signature, by its code (`None`: `UNKNOWN`).
    pub fn invalid_signature(&self, reason: Option<ErrorCode>) {
        self.hot.invalid.add(code_slot(reason), 1);
    }

    pub fn replay_attempt(&self, client_id: &str) {
        self.hot.client(client_id, |c| c.add(CLIENT_ATTEMPTS, 1));
    }

    pub fn replay_store_error(&self, result: StoreErrorResult) {
        self.hot.store_errors.add(result as usize, 1);
    }

    /// Feeds the migration gauge: `signed_valid` among non-exempt requests, for `route` and
    /// for `all`.
    pub fn migration_sample(&self, route: &str, signed_valid: bool, now: Instant) {
        let slot = self.hot.slot(now);
        self.hot.all_routes.record(signed_valid, slot);
        // `all` counts as one of the labels, as it always has.
        self.hot
            .routes
            .with(route, MAX_ROUTE_LABELS - 1, OTHER_ROUTE, |w| {
                w.record(signed_valid, slot)
            });
    }

    /// The migration gauge's value for `route` now (what a scrape would show).
    pub fn migration_percent(&self, route: &str) -> Option<f64> {
        let now = self.hot.slot(Instant::now());
        if route == ALL_ROUTES {
            return self.hot.all_routes.percent(now);
        }
        let map = self.hot.routes.map.load();
        map.get(route).and_then(|w| w.percent(now))
    }

    /// After a reload: drop the migration series of routes the policy no longer has.
    pub fn retain_routes(&self, routes: &[String]) {
        self.hot
            .routes
            .retain(|label| routes.iter().any(|r| r == label));
    }
}

#[cfg(test)]
mod tests;
