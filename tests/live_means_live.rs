//! Black-box, issue 11: a reload that `/status` reports as applied is applied to the requests,
//! or refused. A real `sigproxy run`, a recording upstream, reloads by file rename (a plain
//! directory and `kill -HUP`, and the kubelet's `..data` swap). What the upstream *received* is
//! asserted, not only the status code:
//! 1. renaming an identity header strips the new name from unsigned requests in every spelling;
//! 2. `trusted_proxies: []` stops believing a client's X-Forwarded-* (upstream and our own
//!    client-address decisions);
//! 3. a header added to `strip_inbound` is stripped;
//! 4. an empty, comment-only, `---`, `{}` or truncated policy is refused: the last good policy
//!    keeps enforcing, `/status` and the reload failure metric say why; `check-config` exits 2
//!    and `run` refuses to start.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::upstream::{Recorded, Upstream};
use live::kubelet::ConfigMapDir;
use live::{Proxy, policy, ports, send, write_by_rename};

const RELOAD: Duration = Duration::from_secs(3);

/// Lowercase, `_` → `-`: how a backend framework (CGI, Rack, Django) reads a header name.
fn spelled(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Every value the upstream received under `name` in any case or `_` spelling.
fn received(r: &Recorded, name: &str) -> Vec<String> {
    let want = spelled(name);
    r.headers
        .iter()
        .filter(|(k, _)| spelled(k) == want)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The one request the upstream recorded at `target`.
fn at(up: &Upstream, target: &str) -> Recorded {
    let got = up.recorded_at(target);
    assert_eq!(got.len(), 1, "{target}: {got:#?}");
    got[0].clone()
}

/// Plain directory: the policy is replaced by rename; `hup` also sends SIGHUP.
struct Plain {
    tmp: tempfile::TempDir,
    up: Upstream,
    proxy: Proxy,
    addr: SocketAddr,
    admin: SocketAddr,
}

impl Plain {
    fn start(rest: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let up = Upstream::start(Duration::ZERO);
        let (addr, admin) = ports();
        let path = tmp.path().join("policy.yaml");
        std::fs::write(&path, policy(addr, admin, up.addr, rest)).unwrap();
        let proxy = Proxy::start(&path, addr, admin, &tmp.path().join("sigproxy.log"));
        Plain {
            tmp,
            up,
            proxy,
            addr,
            admin,
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.tmp.path().join("policy.yaml")
    }

    /// Replace the policy's tail by rename (and SIGHUP), wait until it is in force.
    fn reload(&self, rest: &str, hup: bool) {
        let text = policy(self.addr, self.admin, self.up.addr, rest);
        write_by_rename(&self.path(), &text);
        if hup {
            self.proxy.signal("HUP");
        }
        self.proxy.wait_policy(&text, RELOAD);
    }
}

/// Case 1, after the reload: the signed caller's identity arrives under the new name; an unsigned
/// caller's forgeries of it, in three spellings, do not arrive at all.
fn assert_caller_header_is_ours(p: &Proxy, up: &Upstream, tag: &str) {
    let signed = format!("/{tag}/signed");
    assert_eq!(send(p.addr, "GET", &signed, Some("k1"), &[]).status, 200);
    assert_eq!(received(&at(up, &signed), "X-Caller"), ["web"]);
    let forged = format!("/{tag}/forged");
    let r = send(
        p.addr,
        "GET",
        &forged,
        None,
        &["X-Caller: admin", "x_caller: admin2", "X-CALLER: admin3"],
    );
    assert_eq!(r.status, 200, "hybrid passes unsigned requests");
    let got = at(up, &forged);
    assert!(
        received(&got, "X-Caller").is_empty(),
        "a forged identity header reached the backend: {:?}",
        got.headers
    );
    assert_eq!(received(&got, "X-DataFold-Auth-Method"), ["legacy"]);
}

#[test]
fn renaming_the_identity_header_through_a_configmap_swap_keeps_it_unforgeable() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Upstream::start(Duration::ZERO);
    let (addr, admin) = ports();
    let before = policy(addr, admin, up.addr, "");
    let mut cm = ConfigMapDir::new(&tmp.path().join("config"), &[("policy.yaml", &before)]);
    let p = Proxy::start(
        &cm.path("policy.yaml"),
        addr,
        admin,
        &tmp.path().join("sigproxy.log"),
    );
    // Before: X-Caller means nothing to sigproxy and passes (the test can see the difference).
    send(addr, "GET", "/before", None, &["X-Caller: admin"]);
    assert_eq!(received(&at(&up, "/before"), "X-Caller"), ["admin"]);
    let after = policy(
        addr,
        admin,
        up.addr,
        "identity: {client_id_header: X-Caller}\n",
    );
    cm.update(&[("policy.yaml", &after)]);
    p.wait_policy(&after, RELOAD);
    assert_caller_header_is_ours(&p, &up, "cm");
}

#[test]
fn renaming_the_identity_header_then_sighup_keeps_it_unforgeable() {
    let t = Plain::start("");
    t.reload("identity: {client_id_header: X-Caller}\n", true);
    assert_caller_header_is_ours(&t.proxy, &t.up, "hup");
    // Renamed back: the default name is ours again, X-Caller an ordinary header.
    t.reload("", true);
    assert_eq!(
        send(
            t.addr,
            "GET",
            "/back",
            None,
            &["X-DataFold-Client-Id: admin"]
        )
        .status,
        200
    );
    assert!(received(&at(&t.up, "/back"), "X-DataFold-Client-Id").is_empty());
}

#[test]
fn emptying_trusted_proxies_stops_believing_forwarded_headers() {
    // 127.0.0.1 (this test) is a trusted proxy; two failures per minute per client address.
    let t =
        Plain::start("trusted_proxies: [\"127.0.0.1/32\"]\nfailure_rate_limit: {per_minute: 2}\n");
    let forwarded = |n: u8| {
        [
            format!("X-Forwarded-For: 203.0.113.{n}"),
            "X-Forwarded-Proto: https".to_owned(),
            "X-Forwarded-Host: evil.example".to_owned(),
        ]
    };
    let hdrs = forwarded(66);
    let h: Vec<&str> = hdrs.iter().map(String::as_str).collect();
    send(t.addr, "GET", "/trusted", None, &h);
    let r = at(&t.up, "/trusted");
    assert_eq!(received(&r, "X-Forwarded-For"), ["203.0.113.66, 127.0.0.1"]);
    assert_eq!(received(&r, "X-Forwarded-Host"), ["evil.example"]);
    // Failures from "different clients" behind the trusted hop are counted apart: never 429.
    let bad = [
        "Signature-Input: sig1=(\"@method\");created=1;keyid=\"k1\"",
        "Signature: sig1=:AAAA:",
    ];
    for n in 1..=4u8 {
        let hdrs = forwarded(n);
        let mut h: Vec<&str> = hdrs.iter().map(String::as_str).collect();
        h.extend(bad);
        assert_eq!(
            send(t.addr, "GET", "/bad", None, &h).status,
            401,
            "client {n}"
        );
    }

    t.reload(
        "trusted_proxies: []\nfailure_rate_limit: {per_minute: 2}\n",
        false,
    );
    send(t.addr, "GET", "/untrusted", None, &h);
    let r = at(&t.up, "/untrusted");
    assert_eq!(
        received(&r, "X-Forwarded-For"),
        ["127.0.0.1"],
        "{:?}",
        r.headers
    );
    assert_eq!(received(&r, "X-Forwarded-Proto"), ["http"]);
    assert!(
        received(&r, "X-Forwarded-Host").is_empty(),
        "{:?}",
        r.headers
    );
    // Our own address decisions: the same rotating X-Forwarded-For is now one client, 127.0.0.1.
    let mut statuses = Vec::new();
    for n in 1..=3u8 {
        let hdrs = forwarded(n);
        let mut h: Vec<&str> = hdrs.iter().map(String::as_str).collect();
        h.extend(bad);
        statuses.push(send(t.addr, "GET", "/bad", None, &h).status);
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[test]
fn a_header_added_to_strip_inbound_is_stripped_after_the_reload() {
    let t = Plain::start("");
    let secret = ["X-Internal-Token: t1", "x_internal_token: t2"];
    send(t.addr, "GET", "/kept", None, &secret);
    assert_eq!(received(&at(&t.up, "/kept"), "X-Internal-Token").len(), 2);
    t.reload("identity: {strip_inbound: [X-Internal-Token]}\n", false);
    send(t.addr, "GET", "/stripped", None, &secret);
    let r = at(&t.up, "/stripped");
    assert!(
        received(&r, "X-Internal-Token").is_empty(),
        "{:?}",
        r.headers
    );
    // Signed requests too: stripping is not a legacy-only rule.
    let signed: Vec<String> = live::sign_lines("GET", "/stripped-signed", "k1");
    let mut h: Vec<&str> = signed.iter().map(String::as_str).collect();
    h.extend(secret);
    let resp = common::client::request(
        t.addr,
        "GET",
        "/stripped-signed",
        &h,
        common::client::Body::None,
    );
    assert_eq!(resp.status, 200);
    assert!(received(&at(&t.up, "/stripped-signed"), "X-Internal-Token").is_empty());
}

fn refused_reloads(p: &Proxy) -> f64 {
    p.metric("datafold_config_reloads_total{result=\"failure\"}")
}

#[test]
fn an_empty_or_truncated_policy_is_refused_and_the_last_good_one_keeps_enforcing() {
    let t = Plain::start("mode: required\n");
    let good = std::fs::read_to_string(t.path()).unwrap();
    let sha = t.proxy.status()["policy"]["sha256"].clone();
    let enforcing = |why: &str| {
        assert_eq!(
            send(t.addr, "GET", "/x", None, &[]).status,
            401,
            "{why}: unsigned"
        );
        assert_eq!(
            send(t.addr, "GET", "/x", Some("k1"), &[]).status,
            200,
            "{why}: signed"
        );
        let s = t.proxy.status();
        assert_eq!(s["mode"], "required", "{why}");
        assert_eq!(s["keys"]["active"], 1, "{why}");
        assert_eq!(s["policy"]["sha256"], sha, "{why}");
    };
    enforcing("start");
    // Truncated in place (`> policy.yaml`), then the other empty shapes by rename, then a file cut
    // off in the middle of a line (a copy interrupted, a render that died).
    let cut = &good[..good.find("public_key").unwrap() + 15];
    let cases: [(&str, &str, &str); 6] = [
        ("truncate", "", "the policy is empty"),
        ("comment", "# rendered by helm\n", "the policy is empty"),
        ("marker", "---\n", "the policy is empty"),
        ("null", "~\n", "the policy is empty"),
        ("empty mapping", "{}\n", "the policy is an empty mapping"),
        ("cut", cut, "YAML syntax error"),
    ];
    for (i, (what, text, why)) in cases.iter().enumerate() {
        let failures = refused_reloads(&t.proxy);
        if i == 0 {
            std::fs::File::create(t.path()).unwrap();
        } else {
            write_by_rename(&t.path(), text);
        }
        // The same error text may still be shown from the case before: wait for this refusal.
        let t0 = std::time::Instant::now();
        while refused_reloads(&t.proxy) <= failures {
            assert!(t0.elapsed() < RELOAD, "{what}: no refused reload counted");
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = t.proxy.status()["last_reload_error"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(e.contains(why), "{what}: {e}");
        assert!(
            e.contains(&format!("{}:", t.path().display())),
            "{what}: {e}"
        );
        enforcing(what);
        // A second look after the debounce: still enforcing (nothing half-applied later).
        std::thread::sleep(Duration::from_millis(400));
        enforcing(what);
    }
    write_by_rename(&t.path(), &good);
    t.proxy
        .wait_status(RELOAD, "restored", |s| s["last_reload_error"].is_null());
    enforcing("restored");
}

fn sigproxy(args: &[&str], dir: &Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SIGPROXY_CONFIG");
    for name in sigproxy::policy::OVERRIDE_NAMES {
        cmd.env_remove(name);
    }
    cmd.output().unwrap()
}

#[test]
fn check_config_and_run_refuse_an_empty_policy() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("zero.yaml", ""),
        ("comment.yaml", "# nothing here\n"),
        ("marker.yaml", "---\n"),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let out = sigproxy(&["check-config", p], tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.starts_with(&format!("{p}:1:1: (root): the policy is empty")),
            "{name}: {err}"
        );
        let out = sigproxy(&["run", "--config", p], tmp.path());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains("the policy is empty"), "{name}: {err}");
        assert!(err.contains("not starting"), "{name}: {err}");
    }
}
