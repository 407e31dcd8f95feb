//! Tests of `Metrics`: every metric of reference §6 registered, the exposition identical to what
//! `prometheus`'s own types print for the same events, and the migration gauge per route.

use super::*;
use prometheus::{Encoder, HistogramOpts, TextEncoder};

const ALL_NAMES: [&str; 15] = [
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
    "datafold_connections_refused_total",
    "datafold_key_reload_seconds",
];

fn text(r: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The lines of `family` (its HELP, TYPE and samples).
fn family(text: &str, family: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let name = l
                .trim_start_matches("# HELP ")
                .trim_start_matches("# TYPE ");
            name.split(['{', ' ']).next().is_some_and(|n| {
                n == family
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| n.strip_suffix(s) == Some(family))
            })
        })
        .map(str::to_owned)
        .collect()
}

fn sum_value(line: &str) -> Option<f64> {
    let (name, v) = line.split_once(' ')?;
    name.ends_with("_sum").then(|| v.parse().ok())?
}

#[test]
fn registers_every_spec_metric_once() {
    let m = Metrics::new().unwrap();
    m.auth_attempt(AuthMethod::Signature, AttemptStatus::Success, "web");
    m.invalid_signature(Some(ErrorCode::SignatureInvalid));
    m.replay_attempt("web");
    m.observe_upstream(Duration::from_millis(3));
    m.observe_auth(Duration::from_millis(1));
    m.migration_sample("/api/", true, Instant::now());
    let names: Vec<String> = m
        .registry
        .gather()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    for want in ALL_NAMES {
        assert_eq!(
            names.iter().filter(|n| *n == want).count(),
            1,
            "{want} in {names:?}"
        );
    }
}

/// The same events through `prometheus`'s own types (what this module used before it was
/// sharded) and through `Metrics`: the scrape must read the same, line for line.
#[test]
fn exposition_matches_prometheus_types() {
    let m = Metrics::new().unwrap();
    let r = Registry::new();
    let vec = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).unwrap();
        r.register(Box::new(c.clone())).unwrap();
        c
    };
    let hist = |name: &str, help: &str| {
        let h = prometheus::Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        )
        .unwrap();
        r.register(Box::new(h.clone())).unwrap();
        h
    };
    let f = &m.hot.f;
    let requests = vec("datafold_requests_total", &f.requests.desc.help, &["code"]);
    let invalid = vec(
        "datafold_invalid_signatures_total",
        &f.invalid.desc.help,
        &["reason"],
    );
    let store = vec(
        "datafold_replay_store_errors_total",
        &f.store_errors.desc.help,
        &["result"],
    );
    let attempts = vec(
        "datafold_auth_attempts_total",
        &f.attempts.desc.help,
        &["method", "status", "client_id"],
    );
    let replays = vec(
        "datafold_replay_attempts_total",
        &f.replays.desc.help,
        &["client_id"],
    );
    let auth = hist("datafold_auth_latency_seconds", &f.auth_latency.desc.help);
    let upstream = hist(
        "datafold_upstream_latency_seconds",
        &f.upstream_latency.desc.help,
    );
    for c in ErrorCode::ALL {
        requests.with_label_values(&[c.as_str()]);
        if is_invalid_reason(c) {
            invalid.with_label_values(&[c.as_str()]);
        }
    }
    requests.with_label_values(&["OK"]);
    for r in StoreErrorResult::ALL {
        store.with_label_values(&[r.as_str()]);
    }

    let codes = [
        None,
        None,
        Some(ErrorCode::SignatureInvalid),
        Some(ErrorCode::NonceReplayed),
        None,
    ];
    for (i, code) in codes.iter().enumerate() {
        m.request(*code);
        requests
            .with_label_values(&[code.map_or("OK", ErrorCode::as_str)])
            .inc();
        if code.is_some() {
            m.invalid_signature(*code);
            invalid
                .with_label_values(&[code.map_or("UNKNOWN", ErrorCode::as_str)])
                .inc();
        }
        let client = ["web", UNKNOWN_CLIENT, "batch"][i % 3];
        let method = METHODS[i % 3];
        let status = AttemptStatus::ALL[i % 4];
        m.auth_attempt(method, status, client);
        attempts
            .with_label_values(&[method.as_str(), status.as_str(), client])
            .inc();
        // Latencies exactly representable in both (whole microseconds below 2^53 ns).
        let d = Duration::from_micros(40 + 700 * i as u64);
        m.observe_auth(d);
        auth.observe(d.as_secs_f64());
        m.observe_upstream(d * 1000);
        upstream.observe((d * 1000).as_secs_f64());
    }
    m.invalid_signature(None);
    invalid.with_label_values(&["UNKNOWN"]).inc();
    m.replay_attempt("web");
    replays.with_label_values(&["web"]).inc();
    m.replay_store_error(StoreErrorResult::Allowed);
    store.with_label_values(&["allowed"]).inc();

    let ours = text(&m.registry);
    let theirs = text(&r);
    for name in [
        "datafold_requests_total",
        "datafold_invalid_signatures_total",
        "datafold_replay_store_errors_total",
        "datafold_auth_attempts_total",
        "datafold_replay_attempts_total",
        "datafold_auth_latency_seconds",
        "datafold_upstream_latency_seconds",
    ] {
        let (a, b) = (family(&ours, name), family(&theirs, name));
        assert!(a.len() > 2, "{name} missing:\n{ours}");
        assert_eq!(a.len(), b.len(), "{name}:\n{a:#?}\n{b:#?}");
        for (x, y) in a.iter().zip(&b) {
            // A histogram's sum: ours adds whole nanoseconds, prometheus adds f64 seconds; the
            // last digit may differ.
            if let (Some(x), Some(y)) = (sum_value(x), sum_value(y)) {
                assert!(
                    (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                    "{name}: {x} vs {y}"
                );
            } else {
                assert_eq!(x, y, "{name}");
            }
        }
    }
}

#[test]
fn bounded_series_are_there_from_the_start_and_the_rest_once_seen() {
    let m = Metrics::new().unwrap();
    let t = text(&m.registry);
    // Every bounded label value is a series at 0 before any request: a dashboard or an alert
    // on a rate sees 0, not "no data".
    for c in ErrorCode::ALL {
        let line = format!(
            "datafold_invalid_signatures_total{{reason=\"{}\"}} 0",
            c.as_str()
        );
        assert_eq!(t.contains(&line), is_invalid_reason(c), "{line} in\n{t}");
    }
    assert!(!t.contains("reason=\"UNKNOWN\""), "{t}");
    assert!(!t.contains("reason=\"UPSTREAM_TIMEOUT\""), "{t}");
    for r in ["rejected", "allowed"] {
        let line = format!("datafold_replay_store_errors_total{{result=\"{r}\"}} 0");
        assert!(t.contains(&line), "{line} in\n{t}");
    }
    // Label sets that grow with clients and routes appear once seen.
    for absent in [
        "datafold_auth_attempts_total",
        "datafold_replay_attempts_total",
        "datafold_migration_progress_percent",
    ] {
        assert!(family(&t, absent).is_empty(), "{absent} in\n{t}");
    }
    // Request codes are there from the start, as zeros.
    assert!(t.contains("datafold_requests_total{code=\"OK\"} 0"), "{t}");
    assert!(
        t.contains("datafold_requests_total{code=\"NONCE_REPLAYED\"} 0"),
        "{t}"
    );
    assert!(
        t.contains("datafold_upstream_latency_seconds_count 0"),
        "{t}"
    );
}

#[test]
fn migration_progress_per_route_and_overall() {
    let m = Metrics::new().unwrap();
    let t = Instant::now();
    m.migration_sample("/api/", true, t);
    m.migration_sample("/api/", true, t);
    m.migration_sample("default", false, t);
    assert_eq!(m.migration_percent("/api/"), Some(100.0));
    assert_eq!(m.migration_percent("default"), Some(0.0));
    let all = m.migration_percent(ALL_ROUTES).unwrap();
    assert!((all - 200.0 / 3.0).abs() < 1e-9);
    let scraped = text(&m.registry);
    assert!(
        scraped.contains("datafold_migration_progress_percent{route=\"/api/\"} 100"),
        "{scraped}"
    );
    assert!(
        scraped.contains("datafold_migration_progress_percent{route=\"default\"} 0"),
        "{scraped}"
    );
    m.retain_routes(&["/api/".to_owned()]);
    let scraped = text(&m.registry);
    assert!(!scraped.contains("\"default\""), "{scraped}");
    assert!(scraped.contains("route=\"all\""), "{scraped}");
    for i in 0..(2 * MAX_ROUTE_LABELS) {
        m.migration_sample(&format!("/r{i}"), true, t);
    }
    let scraped = text(&m.registry);
    let series = family(&scraped, "datafold_migration_progress_percent")
        .iter()
        .filter(|l| !l.starts_with('#'))
        .count();
    assert_eq!(series, MAX_ROUTE_LABELS + 1, "{scraped}");
    assert!(scraped.contains("route=\"other\""), "{scraped}");
}

#[test]
fn migration_window_forgets_old_samples() {
    let m = Metrics::new().unwrap();
    let t0 = m.hot.epoch;
    m.migration_sample("/a", false, t0);
    m.migration_sample("/a", true, t0);
    let map = m.hot.routes.map.load();
    let w = map.get("/a").unwrap();
    assert_eq!(w.percent(0), Some(50.0));
    m.migration_sample("/a", true, t0 + Duration::from_secs(400));
    assert_eq!(w.percent(40), Some(100.0));
}

#[test]
fn threads_record_every_request() {
    let m = Metrics::new().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let m = &m;
            s.spawn(move || {
                let client = ["a", "b", UNKNOWN_CLIENT, "a"][t];
                for _ in 0..2_500 {
                    m.request(None);
                    m.auth_attempt(AuthMethod::Signature, AttemptStatus::Success, client);
                    m.migration_sample("/api/", t % 2 == 0, Instant::now());
                }
            });
        }
    });
    let t = text(&m.registry);
    assert!(
        t.contains("datafold_requests_total{code=\"OK\"} 10000"),
        "{t}"
    );
    for (client, n) in [("a", 5000), ("b", 2500), (UNKNOWN_CLIENT, 2500)] {
        let line = format!(
            "datafold_auth_attempts_total{{client_id=\"{client}\",method=\"signature\",status=\"success\"}} {n}"
        );
        assert!(t.contains(&line), "{line} in\n{t}");
    }
    assert_eq!(m.migration_percent("/api/"), Some(50.0));
}
