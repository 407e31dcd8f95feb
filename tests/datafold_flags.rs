//! Black-box, issue 16: the DataFold migration guide's feature flags steer a real `sigproxy run`
//! with their meaning in the guide — `AUTH_MODE=legacy|hybrid|signature`,
//! `SIGNATURE_AUTH_ENABLED`, `SIGNATURE_AUTH_PERCENTAGE`, `FORCE_SIGNATURE_USERS` — each as a
//! key of the ConfigMap-shaped directory (applied live) and as an environment variable at start;
//! a conflict with our name for the same setting is refused with both names; `/status` says which
//! name set each value and from where.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::upstream::Upstream;
use live::kubelet::ConfigMapDir;
use live::{Proxy, ports, send};

const TWO_SECONDS: Duration = Duration::from_secs(2);

/// `/api/` is required, the rest hybrid; an unsigned caller is user X by its `X-User: X`.
fn policy(addr: SocketAddr, admin: SocketAddr, up: SocketAddr) -> String {
    format!(
        "listen: \"{addr}\"\nadmin_listen: \"{admin}\"\nupstream: \"{up}\"\nthreads: 2\n\
         shutdown_grace_seconds: 1\nsignature: {{body_digest: optional}}\nmode: hybrid\n\
         routes:\n  - {{ path_prefix: /api/, mode: required }}\n\
         canary: {{legacy_user: {{header: X-User}}}}\n\
         keys:\n  - {{key_id: k1, client_id: web, public_key: \"{}\"}}\n",
        live::public_b64()
    )
}

fn unsigned(p: &Proxy, path: &str, headers: &[&str]) -> u16 {
    send(p.addr, "GET", path, None, headers).status
}

/// `/status`'s account of one override: its value, source and the setting it sets, and the
/// per-setting view naming it.
fn assert_reported(p: &Proxy, name: &str, value: &str, source: &str, sets: &str) {
    let s = p.status();
    let o = &s["overrides"][name];
    assert_eq!(o["value"], value, "{name}: {s:#}");
    assert_eq!(o["source"], source, "{name}: {s:#}");
    assert_eq!(o["sets"], sets, "{name}: {s:#}");
    let by = s["override_settings"][sets].as_array().unwrap();
    assert!(
        by.iter()
            .any(|e| e["name"] == name && e["source"] == source && e["value"] == value),
        "{name}: {s:#}"
    );
}

#[test]
fn each_flag_through_the_configmap_applies_live_and_reports_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(Duration::ZERO);
    let (addr, admin) = ports();
    let mut cm = ConfigMapDir::new(
        &tmp.path().join("config"),
        &[("policy.yaml", &policy(addr, admin, up.addr))],
    );
    let p = Proxy::start(
        &cm.path("policy.yaml"),
        addr,
        admin,
        &tmp.path().join("sigproxy.log"),
    );
    let root = cm.root.clone();
    let file = |name: &str| root.join(name).display().to_string();
    assert_eq!(unsigned(&p, "/api/x", &[]), 401);
    assert_eq!(unsigned(&p, "/x", &[]), 200);

    // AUTH_MODE: legacy = we check nothing; signature = every route required; hybrid caps.
    for (value, mode, api, other) in [
        ("legacy", "off", 200, 200),
        ("signature", "required", 401, 401),
        ("hybrid", "hybrid", 200, 200),
    ] {
        cm.patch("AUTH_MODE", value);
        p.wait_status(TWO_SECONDS, value, |s| s["effective_mode"] == mode);
        assert_eq!(unsigned(&p, "/api/x", &[]), api, "AUTH_MODE={value}");
        assert_eq!(unsigned(&p, "/x", &[]), other, "AUTH_MODE={value}");
        assert_reported(&p, "AUTH_MODE", value, &file("AUTH_MODE"), "mode");
    }
    // Off really is off: no identity from us, the caller's forgery stripped.
    cm.patch("AUTH_MODE", "legacy");
    p.wait_status(TWO_SECONDS, "legacy again", |s| {
        s["effective_mode"] == "off"
    });
    send(
        addr,
        "GET",
        "/api/off",
        None,
        &["X-DataFold-Client-Id: admin"],
    );
    let r = up.recorded_at("/api/off");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("X-DataFold-Client-Id"), None);
    assert_eq!(r[0].header("X-DataFold-Auth-Method"), Some("none"));
    cm.remove("AUTH_MODE");
    p.wait_status(TWO_SECONDS, "AUTH_MODE dropped", |s| {
        s["effective_mode"] == "hybrid" && s["overrides"].as_object().unwrap().is_empty()
    });
    assert_eq!(unsigned(&p, "/api/x", &[]), 401);

    // SIGNATURE_AUTH_ENABLED: false = off; true = the policy's own modes.
    cm.patch("SIGNATURE_AUTH_ENABLED", "false");
    p.wait_status(TWO_SECONDS, "disabled", |s| s["effective_mode"] == "off");
    assert_eq!(unsigned(&p, "/api/x", &[]), 200);
    assert_reported(
        &p,
        "SIGNATURE_AUTH_ENABLED",
        "false",
        &file("SIGNATURE_AUTH_ENABLED"),
        "mode",
    );
    cm.patch("SIGNATURE_AUTH_ENABLED", "true");
    p.wait_status(TWO_SECONDS, "enabled", |s| {
        s["effective_mode"] == "hybrid"
            && s["overrides"]["SIGNATURE_AUTH_ENABLED"]["value"] == "true"
    });
    assert_eq!(unsigned(&p, "/api/x", &[]), 401);
    assert_eq!(unsigned(&p, "/x", &[]), 200);
    cm.remove("SIGNATURE_AUTH_ENABLED");

    // SIGNATURE_AUTH_PERCENTAGE: the canary percent (sticky on the address here: all or none).
    cm.patch("SIGNATURE_AUTH_PERCENTAGE", "100");
    p.wait_status(TWO_SECONDS, "percentage", |s| s["canary_percent"] == 100);
    assert_eq!(unsigned(&p, "/x", &[]), 401);
    assert_reported(
        &p,
        "SIGNATURE_AUTH_PERCENTAGE",
        "100",
        &file("SIGNATURE_AUTH_PERCENTAGE"),
        "canary_percent",
    );
    cm.remove("SIGNATURE_AUTH_PERCENTAGE");
    p.wait_status(TWO_SECONDS, "percentage dropped", |s| {
        s["canary_percent"] == 0
    });
    assert_eq!(unsigned(&p, "/x", &[]), 200);

    // FORCE_SIGNATURE_USERS: these users must sign, recognised by canary.legacy_user (X-User).
    cm.patch("FORCE_SIGNATURE_USERS", "alice, bob");
    p.wait_status(TWO_SECONDS, "forced users", |s| {
        s["force_signature_users"] == serde_json::json!(["alice", "bob"])
    });
    assert_eq!(unsigned(&p, "/x", &["X-User: alice"]), 401);
    assert_eq!(unsigned(&p, "/x", &["X-User: bob"]), 401);
    assert_eq!(unsigned(&p, "/x", &["X-User: carol"]), 200);
    assert_eq!(unsigned(&p, "/x", &[]), 200);
    assert_eq!(
        send(addr, "GET", "/x", Some("k1"), &["X-User: alice"]).status,
        200
    );
    assert_reported(
        &p,
        "FORCE_SIGNATURE_USERS",
        "alice, bob",
        &file("FORCE_SIGNATURE_USERS"),
        "force_users",
    );
    cm.remove("FORCE_SIGNATURE_USERS");
    p.wait_status(TWO_SECONDS, "forced users dropped", |s| {
        s["force_signature_users"] == serde_json::json!([])
    });
    assert_eq!(unsigned(&p, "/x", &["X-User: alice"]), 200);

    // Our name and theirs for one setting, disagreeing: refused, the last good overrides stay.
    cm.update(&[
        ("policy.yaml", &policy(addr, admin, up.addr)),
        ("SIGNATURE_AUTH_CANARY_PERCENT", "10"),
        ("SIGNATURE_AUTH_PERCENTAGE", "20"),
    ]);
    p.wait_status(TWO_SECONDS, "conflict refused", |s| {
        s["last_reload_error"].as_str().is_some_and(|e| {
            e.contains("SIGNATURE_AUTH_PERCENTAGE: SIGNATURE_AUTH_CANARY_PERCENT=10 and SIGNATURE_AUTH_PERCENTAGE=20 are both set and disagree")
        })
    });
    assert_eq!(p.status()["canary_percent"], 0);
    assert_eq!(unsigned(&p, "/x", &[]), 200);
    // Agreeing, they apply, both listed.
    cm.patch("SIGNATURE_AUTH_PERCENTAGE", "10");
    p.wait_status(TWO_SECONDS, "agreeing", |s| {
        s["canary_percent"] == 10 && s["last_reload_error"].is_null()
    });
    assert_eq!(
        p.status()["override_settings"]["canary_percent"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

fn plain_dir(up: &Upstream) -> (tempfile::TempDir, SocketAddr, SocketAddr) {
    let tmp = tempfile::tempdir().unwrap();
    let (addr, admin) = ports();
    std::fs::write(tmp.path().join("policy.yaml"), policy(addr, admin, up.addr)).unwrap();
    (tmp, addr, admin)
}

fn start_with(tmp: &Path, addr: SocketAddr, admin: SocketAddr, env: &[(&str, &str)]) -> Proxy {
    Proxy::start_with_env(
        &tmp.join("policy.yaml"),
        addr,
        admin,
        &tmp.join("sigproxy.log"),
        env,
    )
}

#[test]
fn each_flag_as_an_environment_variable_at_start() {
    let up = Upstream::start(Duration::ZERO);

    let (tmp, addr, admin) = plain_dir(&up);
    let p = start_with(
        tmp.path(),
        addr,
        admin,
        &[("AUTH_MODE", "hybrid"), ("FORCE_SIGNATURE_USERS", "alice")],
    );
    assert_eq!(
        unsigned(&p, "/api/x", &[]),
        200,
        "AUTH_MODE=hybrid caps /api/"
    );
    assert_eq!(unsigned(&p, "/x", &["X-User: alice"]), 401);
    assert_eq!(unsigned(&p, "/x", &["X-User: bob"]), 200);
    assert_reported(&p, "AUTH_MODE", "hybrid", "environment", "mode");
    assert_reported(
        &p,
        "FORCE_SIGNATURE_USERS",
        "alice",
        "environment",
        "force_users",
    );
    drop(p);

    let (tmp, addr, admin) = plain_dir(&up);
    let p = start_with(
        tmp.path(),
        addr,
        admin,
        &[
            ("SIGNATURE_AUTH_PERCENTAGE", "100"),
            ("SIGNATURE_AUTH_ENABLED", "true"),
        ],
    );
    assert_eq!(unsigned(&p, "/x", &[]), 401);
    assert_eq!(unsigned(&p, "/api/x", &[]), 401);
    assert_reported(
        &p,
        "SIGNATURE_AUTH_PERCENTAGE",
        "100",
        "environment",
        "canary_percent",
    );
    assert_reported(&p, "SIGNATURE_AUTH_ENABLED", "true", "environment", "mode");
    // A file beside the policy wins, whichever of the setting's names it uses.
    let f = tmp.path().join("SIGNATURE_AUTH_CANARY_PERCENT");
    std::fs::write(&f, "0").unwrap();
    p.wait_status(TWO_SECONDS, "file wins", |s| s["canary_percent"] == 0);
    assert_eq!(unsigned(&p, "/x", &[]), 200);
    let s = p.status();
    assert!(
        s["overrides"].get("SIGNATURE_AUTH_PERCENTAGE").is_none(),
        "{s:#}"
    );
    assert_reported(
        &p,
        "SIGNATURE_AUTH_CANARY_PERCENT",
        "0",
        &f.display().to_string(),
        "canary_percent",
    );
    drop(p);

    let (tmp, addr, admin) = plain_dir(&up);
    let p = start_with(
        tmp.path(),
        addr,
        admin,
        &[("SIGNATURE_AUTH_ENABLED", "false")],
    );
    assert_eq!(p.status()["effective_mode"], "off");
    assert_eq!(unsigned(&p, "/api/x", &[]), 200);
    drop(p);

    let (tmp, addr, admin) = plain_dir(&up);
    let p = start_with(tmp.path(), addr, admin, &[("AUTH_MODE", "signature")]);
    assert_eq!(p.status()["effective_mode"], "required");
    assert_eq!(unsigned(&p, "/x", &[]), 401);
}

#[test]
fn a_conflicting_or_unusable_flag_at_start_refuses_to_start() {
    let up = Upstream::start(Duration::ZERO);
    let (tmp, _, _) = plain_dir(&up);
    let policy = tmp.path().join("policy.yaml");
    let run = |env: &[(&str, &str)], policy: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
        cmd.arg("run")
            .arg("--config")
            .arg(policy)
            .env_remove("SIGPROXY_CONFIG");
        for name in sigproxy::policy::OVERRIDE_NAMES {
            cmd.env_remove(name);
        }
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(
        &[
            ("SIGNATURE_AUTH_MODE", "hybrid"),
            ("AUTH_MODE", "signature"),
        ],
        &policy,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("AUTH_MODE: SIGNATURE_AUTH_MODE=hybrid and AUTH_MODE=signature are both set and disagree"),
        "{err}"
    );
    let (code, err) = run(&[("AUTH_MODE", "required")], &policy);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("expected legacy, hybrid or signature"),
        "{err}"
    );
    // FORCE_SIGNATURE_USERS without a way to recognise a user would do nothing: refused.
    let bare = tmp.path().join("bare.yaml");
    std::fs::write(
        &bare,
        std::fs::read_to_string(&policy)
            .unwrap()
            .replace("canary: {legacy_user: {header: X-User}}\n", ""),
    )
    .unwrap();
    let (code, err) = run(&[("FORCE_SIGNATURE_USERS", "alice")], &bare);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no canary.legacy_user"), "{err}");
}
