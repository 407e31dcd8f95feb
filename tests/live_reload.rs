//! Black-box: a running `sigproxy run` process whose policy lives in a ConfigMap-shaped
//! directory updated exactly as the kubelet does. Overrides apply within 2 s of the swap and
//! un-apply when dropped; a bad policy is refused while the old one serves; SIGHUP reloads;
//! a revoked key takes effect live; 20 swaps under load fail no request; the canary is sticky,
//! close to its percent and monotonic; the auto-halt trips and re-arms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::upstream::Upstream;
use live::kubelet::ConfigMapDir;
use live::{Proxy, policy, ports, send};

const TWO_SECONDS: Duration = Duration::from_secs(2);

const API_REQUIRED: &str = "routes:\n  - { path_prefix: /api/, mode: required }\n";

struct Setup {
    _tmp: tempfile::TempDir,
    _up: Upstream,
    cm: ConfigMapDir,
    proxy: Proxy,
    base: String,
}

fn setup(rest: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(Duration::ZERO);
    let (addr, admin) = ports();
    let base = policy(addr, admin, up.addr, "");
    let cm = ConfigMapDir::new(
        &tmp.path().join("config"),
        &[("policy.yaml", &format!("{base}{rest}"))],
    );
    let proxy = Proxy::start(
        &cm.path("policy.yaml"),
        addr,
        admin,
        &tmp.path().join("sigproxy.log"),
    );
    Setup {
        _tmp: tmp,
        _up: up,
        cm,
        proxy,
        base,
    }
}

fn route_mode(s: &serde_json::Value) -> String {
    s["routes"][0]["mode"].as_str().unwrap_or("").to_owned()
}

#[test]
fn each_override_applies_within_two_seconds_and_dropping_it_restores_the_policy() {
    let mut t = setup(API_REQUIRED);
    let p = &t.proxy;
    assert_eq!(send(p.addr, "GET", "/api/x", None, &[]).status, 401);
    assert_eq!(send(p.addr, "GET", "/api/x", Some("k1"), &[]).status, 200);
    let mut worst = Duration::ZERO;
    type Check = fn(&serde_json::Value) -> bool;
    let cases: [(&str, &str, Check, Check); 5] = [
        (
            "SIGNATURE_AUTH_REQUIRED",
            "false",
            |s| route_mode(s) == "hybrid",
            |s| route_mode(s) == "required",
        ),
        (
            "SIGNATURE_AUTH_MODE",
            "off",
            |s| s["effective_mode"] == "off" && route_mode(s) == "off",
            |s| s["effective_mode"] == "hybrid" && route_mode(s) == "required",
        ),
        (
            "auth_mode",
            "hybrid",
            |s| s["effective_mode"] == "hybrid" && route_mode(s) == "hybrid",
            |s| route_mode(s) == "required",
        ),
        (
            "SIGNATURE_AUTH_CANARY_PERCENT",
            "40",
            |s| s["canary_percent"] == 40,
            |s| s["canary_percent"] == 0,
        ),
        (
            "SIGNATURE_AUTH_DRY_RUN",
            "true",
            |s| s["dry_run"] == true,
            |s| s["dry_run"] == false,
        ),
    ];
    for (name, value, applied, restored) in cases {
        let gen0 = t.proxy.status()["policy"]["generation"].as_u64().unwrap();
        t.cm.patch(name, value);
        let took = t.proxy.wait_status(TWO_SECONDS, name, |s| {
            applied(s) && s["overrides"][name]["value"] == value
        });
        worst = worst.max(took);
        let s = t.proxy.status();
        assert!(s["policy"]["generation"].as_u64().unwrap() > gen0);
        // What the override means reaches the requests too.
        let unsigned = send(t.proxy.addr, "GET", "/api/x", None, &[]).status;
        let want = if name == "SIGNATURE_AUTH_CANARY_PERCENT" {
            401
        } else {
            200
        };
        assert_eq!(unsigned, want, "{name}={value}");
        t.cm.remove(name);
        let took = t.proxy.wait_status(TWO_SECONDS, name, |s| {
            restored(s) && s["overrides"].as_object().is_some_and(|o| o.is_empty())
        });
        worst = worst.max(took);
        assert_eq!(send(t.proxy.addr, "GET", "/api/x", None, &[]).status, 401);
    }
    eprintln!("worst swap → applied latency: {worst:?}");
    assert!(t.proxy.is_running());
    // The runbook's line, as written.
    t.cm.patch("SIGNATURE_AUTH_REQUIRED", "false");
    t.proxy
        .wait_status(TWO_SECONDS, "runbook", |s| route_mode(s) == "hybrid");
    let m = t.proxy.metrics();
    assert!(
        m.contains("datafold_effective_mode{mode=\"hybrid\"} 1"),
        "{m}"
    );
}

#[test]
fn an_invalid_policy_or_override_is_refused_and_the_old_one_keeps_serving() {
    let mut t = setup(API_REQUIRED);
    let s0 = t.proxy.status();
    let (gen0, sha0) = (
        s0["policy"]["generation"].clone(),
        s0["policy"]["sha256"].clone(),
    );
    assert!(s0["last_reload_error"].is_null());
    t.cm.update(&[("policy.yaml", &format!("{}mode: sometimes\n", t.base))]);
    t.proxy.wait_status(TWO_SECONDS, "error shown", |s| {
        s["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("mode"))
    });
    let s = t.proxy.status();
    assert_eq!(s["policy"]["generation"], gen0);
    assert_eq!(s["policy"]["sha256"], sha0);
    assert_eq!(send(t.proxy.addr, "GET", "/api/x", None, &[]).status, 401);
    assert_eq!(
        send(t.proxy.addr, "GET", "/api/x", Some("k1"), &[]).status,
        200
    );
    assert!(
        t.proxy
            .metrics()
            .contains("datafold_config_reloads_total{result=\"failure\"} 1")
    );
    // A good policy with a bad override value: refused as a whole.
    let good = format!("{}{API_REQUIRED}", t.base);
    t.cm.update(&[
        ("policy.yaml", good.as_str()),
        ("SIGNATURE_AUTH_REQUIRED", "maybe"),
    ]);
    t.proxy.wait_status(TWO_SECONDS, "override error", |s| {
        s["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("SIGNATURE_AUTH_REQUIRED"))
    });
    assert_eq!(t.proxy.status()["policy"]["generation"], gen0);
    assert_eq!(send(t.proxy.addr, "GET", "/api/x", None, &[]).status, 401);
    // A good one lands and clears the error.
    t.cm.update(&[
        ("policy.yaml", format!("{good}# v2\n").as_str()),
        ("SIGNATURE_AUTH_REQUIRED", "false"),
    ]);
    t.proxy.wait_status(TWO_SECONDS, "recovered", |s| {
        s["last_reload_error"].is_null() && route_mode(s) == "hybrid"
    });
    assert_ne!(t.proxy.status()["policy"]["sha256"], sha0);
    assert!(t.proxy.is_running());
}

#[test]
fn sighup_reloads_and_plain_editor_writes_are_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(Duration::ZERO);
    let (addr, admin) = ports();
    let base = policy(addr, admin, up.addr, "");
    let path = tmp.path().join("policy.yaml");
    std::fs::write(&path, format!("{base}{API_REQUIRED}")).unwrap();
    let mut p = Proxy::start(&path, addr, admin, &tmp.path().join("log"));
    let reloads = |p: &Proxy| {
        p.metrics()
            .lines()
            .find(|l| l.starts_with("datafold_config_reloads_total{result=\"success\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(reloads(&p), 1);
    // SIGHUP alone: a reload (the watcher would not reload unchanged files), no exit.
    p.signal("HUP");
    let t0 = Instant::now();
    while reloads(&p) < 2 {
        assert!(t0.elapsed() < TWO_SECONDS, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(p.is_running(), "SIGHUP killed the process");
    // In-place edit (same inode, truncate + write), then SIGHUP.
    std::fs::write(&path, format!("{base}mode: required\n")).unwrap();
    p.signal("HUP");
    p.wait_status(TWO_SECONDS, "in-place edit", |s| s["mode"] == "required");
    assert_eq!(send(p.addr, "GET", "/other", None, &[]).status, 401);
    // Write-and-rename (vim, sed -i), no signal.
    let tmp_file = tmp.path().join(".policy.yaml.swp");
    std::fs::write(&tmp_file, format!("{base}mode: off\n")).unwrap();
    std::fs::rename(&tmp_file, &path).unwrap();
    p.wait_status(TWO_SECONDS, "rename edit", |s| s["mode"] == "off");
    assert!(p.log_text().contains("\"trigger\":\"sighup\""));
    assert!(p.is_running());
}

#[test]
fn a_key_revoked_in_a_key_file_elsewhere_takes_effect_live() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let entry = |status: &str| {
        format!(
            "- {{key_id: k2, client_id: billing, public_key: \"{}\", status: {status}}}\n",
            live::public_b64()
        )
    };
    std::fs::write(keys.join("billing.yaml"), entry("active")).unwrap();
    let up = Upstream::start(Duration::ZERO);
    let (addr, admin) = ports();
    let rest = format!("key_files: [\"{}/*.yaml\"]\n{API_REQUIRED}", keys.display());
    let cm = ConfigMapDir::new(
        &tmp.path().join("config"),
        &[("policy.yaml", &policy(addr, admin, up.addr, &rest))],
    );
    let p = Proxy::start(
        &cm.path("policy.yaml"),
        addr,
        admin,
        &tmp.path().join("log"),
    );
    assert_eq!(send(p.addr, "GET", "/api/x", Some("k2"), &[]).status, 200);
    // Editor-style replace of the key file.
    std::fs::write(keys.join(".billing.tmp"), entry("revoked")).unwrap();
    std::fs::rename(keys.join(".billing.tmp"), keys.join("billing.yaml")).unwrap();
    let t0 = Instant::now();
    loop {
        let r = send(p.addr, "GET", "/api/x", Some("k2"), &[]);
        if r.status == 401 {
            assert_eq!(r.json()["error"]["code"], "KEY_REVOKED");
            break;
        }
        assert!(t0.elapsed() < TWO_SECONDS, "revocation not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("key revocation applied after {:?}", t0.elapsed());
    // A new key file matching the pattern is picked up too.
    let k3 = entry("active").replace("k2", "k3");
    std::fs::write(keys.join("new.yaml"), k3).unwrap();
    p.wait_status(TWO_SECONDS, "new key file", |s| s["keys"]["active"] == 2);
    assert_eq!(send(p.addr, "GET", "/api/x", Some("k3"), &[]).status, 200);
}

#[test]
fn twenty_swaps_under_load_fail_no_request_and_never_restart() {
    let mut t = setup("");
    let pid = t.proxy.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let bad_samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let addr = t.proxy.addr;
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (stop, ok, bad, samples) =
                (stop.clone(), ok.clone(), bad.clone(), bad_samples.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                // Bounded: stops when told, or after 60 s whatever happens.
                while !stop.load(Ordering::Acquire) && t0.elapsed() < Duration::from_secs(60) {
                    let key = (i % 2 == 0).then_some("k1");
                    let r = send(addr, "GET", "/api/load", key, &[]);
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        bad.fetch_add(1, Ordering::Relaxed);
                        samples
                            .lock()
                            .unwrap()
                            .push((r.status, String::from_utf8_lossy(&r.body).into_owned()));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut latencies = Vec::new();
    for i in 0..20u64 {
        let gen0 = t.proxy.status()["policy"]["generation"].as_u64().unwrap();
        // Alternate what changes: the policy text, an override, both; every version lets
        // unsigned and signed requests through.
        let text = format!("{}# swap {i}\ncanary: {{percent: 0}}\n", t.base);
        match i % 3 {
            0 => t.cm.update(&[("policy.yaml", &text)]),
            1 => {
                t.cm.update(&[("policy.yaml", &text), ("SIGNATURE_AUTH_DRY_RUN", "true")])
            }
            _ => {
                t.cm.update(&[("policy.yaml", &text), ("SIGNATURE_AUTH_REQUIRED", "false")])
            }
        }
        latencies.push(t.proxy.wait_status(TWO_SECONDS, "swap", |s| {
            s["policy"]["generation"].as_u64().unwrap() > gen0
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    for c in clients {
        c.join().unwrap();
    }
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    latencies.sort();
    eprintln!(
        "20 swaps: {ok} requests ok, {bad} failed; swap→applied median {:?}, max {:?}",
        latencies[10], latencies[19]
    );
    assert_eq!(
        bad,
        0,
        "failed requests: {:?}",
        bad_samples
            .lock()
            .unwrap()
            .iter()
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(ok > 100, "too little load: {ok}");
    assert!(t.proxy.is_running());
    assert_eq!(t.proxy.child.id(), pid);
    let m = t.proxy.metrics();
    for code in [
        "UPSTREAM_UNAVAILABLE",
        "UPSTREAM_TIMEOUT",
        "REPLAY_STORE_UNAVAILABLE",
    ] {
        assert!(
            m.contains(&format!("datafold_requests_total{{code=\"{code}\"}} 0")),
            "{code}"
        );
    }
    assert!(t.proxy.status()["policy"]["generation"].as_u64().unwrap() >= 21);
}

/// Which of 1,000 distinct unsigned callers (by `X-Caller`) get 401 on a hybrid route.
fn enforced_callers(p: &Proxy) -> Vec<bool> {
    let mut conn = p.conn();
    (0..1000)
        .map(|i| {
            let h = format!("X-Caller: caller-{i}");
            let r = conn.request("GET", "/app", &[h.as_str()], common::client::Body::None);
            assert!(matches!(r.status, 200 | 401), "{}", r.status);
            r.status == 401
        })
        .collect()
}

#[test]
fn canary_share_is_sticky_close_to_percent_and_monotonic() {
    let mut t = setup("canary: {percent: 30, sticky_on: [\"header:x-caller\", \"ip\"]}\n");
    let a = enforced_callers(&t.proxy);
    let share = a.iter().filter(|e| **e).count() as f64 / 10.0;
    eprintln!("canary 30%: {share}% of 1000 callers enforced");
    assert!((share - 30.0).abs() <= 4.0, "{share}");
    assert_eq!(
        enforced_callers(&t.proxy),
        a,
        "same callers, different answers"
    );
    // A signed caller is never affected.
    assert_eq!(
        send(
            t.proxy.addr,
            "GET",
            "/app",
            Some("k1"),
            &["X-Caller: caller-0"]
        )
        .status,
        200
    );
    t.cm.patch("SIGNATURE_AUTH_CANARY_PERCENT", "60");
    t.proxy
        .wait_status(TWO_SECONDS, "60%", |s| s["canary_percent"] == 60);
    let b = enforced_callers(&t.proxy);
    let share = b.iter().filter(|e| **e).count() as f64 / 10.0;
    eprintln!("canary 60%: {share}% of 1000 callers enforced");
    assert!((share - 60.0).abs() <= 4.0, "{share}");
    let dropped = a.iter().zip(&b).filter(|(was, is)| **was && !**is).count();
    assert_eq!(dropped, 0, "raising the percent released {dropped} callers");
}

#[test]
fn canary_auto_halt_trips_counts_shows_and_rearms_on_a_policy_change() {
    let rest = "canary:\n  percent: 100\n  sticky_on: [\"header:x-caller\"]\n  auto_halt: {max_reject_percent: 50, window_seconds: 60, min_requests: 10}\n";
    let mut t = setup(rest);
    for i in 0..10 {
        let h = format!("X-Caller: c{i}");
        assert_eq!(send(t.proxy.addr, "GET", "/app", None, &[&h]).status, 401);
    }
    let s = t.proxy.status();
    assert_eq!(s["canary_percent"], 0, "{s:#}");
    assert_eq!(s["canary"]["halted"]["rejected"], 10);
    assert_eq!(
        send(t.proxy.addr, "GET", "/app", None, &["X-Caller: c1"]).status,
        200
    );
    let m = t.proxy.metrics();
    assert!(m.contains("datafold_canary_auto_halts_total 1"), "{m}");
    assert!(m.contains("datafold_canary_percent 0"));
    assert!(t.proxy.log_text().contains("canary auto-halt"));
    // Any change to the policy re-arms it.
    t.cm.update(&[("policy.yaml", &format!("{}{rest}# re-armed\n", t.base))]);
    t.proxy.wait_status(TWO_SECONDS, "re-armed", |s| {
        s["canary_percent"] == 100 && s["canary"]["halted"].is_null()
    });
    assert_eq!(
        send(t.proxy.addr, "GET", "/app", None, &["X-Caller: c1"]).status,
        401
    );
}
