//! Black-box: each mode on its own route, dry_run, forged identity headers in every spelling,
//! the `Connection:` trick, X-Request-Id, the audit lines, the admin endpoints, keep-alive after a
//! 401 and hostile input, all through the built binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::client::{Body, Conn, Response, request};
use common::sidecar::{
    ACTIVE, ACTIVE_CLIENT, Case, Sidecar, add_headers, assert_rejected, reached, replace, run_cases,
};
use common::upstream::{Recorded, Upstream};

const POLICY: &str = "mode: required
routes:
  - { path_prefix: /off/, mode: off }
  - { path_prefix: /hybrid/, mode: hybrid }
  - { path_prefix: /dry/, mode: required, dry_run: true }
  - { path_prefix: /req/, mode: required }
identity:
  strip_inbound: [X-Internal-Role]
";

const FORGED: &[&str] = &[
    "X-DataFold-Client-Id: evil-1",
    "x-datafold-client-id: evil-2",
    "X-DATAFOLD-CLIENT-ID: evil-3",
    "X_DataFold_Client_Id: evil-4",
    "x_datafold_client_id: evil-5",
    "X-DataFold-Key-Id: evil-6",
    "x_datafold_key_id: evil-7",
    "X-DataFold-Auth-Method: signature",
    "x_datafold_auth_method: signature",
    "X-Internal-Role: admin",
    "x_internal_role: admin",
];

fn last_for(up: &Upstream, path: &str) -> Recorded {
    up.recorded_at(path)
        .pop()
        .unwrap_or_else(|| panic!("{path} did not reach the upstream"))
}

/// What the backend got is exactly this identity, and none of the forged values.
fn assert_identity(r: &Recorded, method: &str, client: Option<&str>, key: Option<&str>) {
    let norm = |k: &str| k.to_ascii_lowercase().replace('_', "-");
    let get = |n: &str| -> Vec<&str> {
        r.headers
            .iter()
            .filter(|(k, _)| norm(k) == n)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("x-datafold-auth-method"), vec![method], "{r:?}");
    assert_eq!(
        get("x-datafold-client-id"),
        client.into_iter().collect::<Vec<_>>(),
        "{r:?}"
    );
    assert_eq!(
        get("x-datafold-key-id"),
        key.into_iter().collect::<Vec<_>>(),
        "{r:?}"
    );
    assert!(get("x-internal-role").is_empty(), "{r:?}");
    for (k, v) in &r.headers {
        assert!(
            !v.contains("evil") && v != "admin",
            "forged {k}: {v} reached the backend"
        );
    }
}

fn ok(r: &Response) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn modes_identity_audit_admin_and_hostile_input() {
    let up = Upstream::start(Duration::ZERO);
    let mut sidecar = Sidecar::start(up.addr, POLICY);
    let (sc, up) = (&sidecar, &up);
    let mut cases: Vec<Case<'_>> = Vec::new();
    cases.push((
        "off",
        Box::new(move || {
            ok(&request(sc.addr, "GET", "/off/u", FORGED, Body::None));
            assert_identity(&last_for(up, "/off/u"), "none", None, None);
            // Signed on an off route: passed, still no identity.
            let raw = add_headers(&sc.sign(ACTIVE, "GET", "/off/s", None, &[]), FORGED);
            ok(&sc.send_raw(&raw));
            assert_identity(&last_for(up, "/off/s"), "none", None, None);
        }),
    ));
    cases.push((
        "hybrid",
        Box::new(move || {
            ok(&request(sc.addr, "GET", "/hybrid/u", FORGED, Body::None));
            assert_identity(&last_for(up, "/hybrid/u"), "legacy", None, None);
            let raw = add_headers(&sc.sign(ACTIVE, "GET", "/hybrid/s", None, &[]), FORGED);
            ok(&sc.send_raw(&raw));
            let rec = last_for(up, "/hybrid/s");
            assert_identity(&rec, "signature", Some(ACTIVE_CLIENT), Some(ACTIVE));
            // forward_signature_headers defaults to true.
            assert!(rec.header("signature-input").is_some(), "{rec:?}");
            let raw = sc.sign(ACTIVE, "GET", "/hybrid/x1", None, &[]);
            let raw = replace(&raw, "GET /hybrid/x1", "GET /hybrid/x2");
            assert_rejected(&sc.send_raw(&raw), 401, "SIGNATURE_INVALID");
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(reached(up, "/hybrid/x2"), 0);
        }),
    ));
    cases.push((
        "required",
        Box::new(move || {
            let r = request(sc.addr, "GET", "/req/u", FORGED, Body::None);
            assert_rejected(&r, 401, "SIGNATURE_MISSING");
            let raw = add_headers(&sc.sign(ACTIVE, "GET", "/req/s", None, &[]), FORGED);
            ok(&sc.send_raw(&raw));
            assert_identity(
                &last_for(up, "/req/s"),
                "signature",
                Some(ACTIVE_CLIENT),
                Some(ACTIVE),
            );
            let raw = sc.sign(ACTIVE, "GET", "/req/x1", None, &[]);
            let raw = replace(&raw, "GET /req/x1", "GET /req/x2");
            assert_rejected(&sc.send_raw(&raw), 401, "SIGNATURE_INVALID");
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(reached(up, "/req/x2") + reached(up, "/req/u"), 0);
        }),
    ));
    cases.push((
        "dry_run",
        Box::new(move || {
            let r = request(
                sc.addr,
                "GET",
                "/dry/u",
                &["X-Request-Id: dry-unsigned"],
                Body::None,
            );
            ok(&r);
            assert_identity(&last_for(up, "/dry/u"), "legacy", None, None);
            let a = sc.audit_for("dry-unsigned");
            assert_eq!(a.len(), 1, "{a:?}");
            assert_eq!(a[0]["dry_run"], true, "{a:?}");
            assert_eq!(a[0]["code"], "SIGNATURE_MISSING", "{a:?}");
            let raw = sc.sign(
                ACTIVE,
                "GET",
                "/dry/x1",
                None,
                &["-H", "X-Request-Id: dry-bad"],
            );
            let raw = replace(&raw, "GET /dry/x1", "GET /dry/x2");
            ok(&sc.send_raw(&raw));
            // Would have been rejected: passed, but never with an identity.
            let rec = last_for(up, "/dry/x2");
            assert_ne!(
                rec.header("x-datafold-auth-method"),
                Some("signature"),
                "{rec:?}"
            );
            assert!(rec.header("x-datafold-client-id").is_none(), "{rec:?}");
            let a = sc.audit_for("dry-bad");
            assert_eq!(a.len(), 1, "{a:?}");
            assert_eq!(a[0]["code"], "SIGNATURE_INVALID", "{a:?}");
            assert_eq!(a[0]["event_type"], "signature_auth_failure", "{a:?}");
            assert_eq!(a[0]["dry_run"], true, "{a:?}");
        }),
    ));
    cases.push((
        "connection_trick",
        Box::new(move || {
            let trick =
                "Connection: X-DataFold-Client-Id, X-DataFold-Key-Id, X-DataFold-Auth-Method";
            let raw = add_headers(&sc.sign(ACTIVE, "GET", "/hybrid/conn", None, &[]), &[trick]);
            ok(&sc.send_raw(&raw));
            let rec = last_for(up, "/hybrid/conn");
            assert_identity(&rec, "signature", Some(ACTIVE_CLIENT), Some(ACTIVE));
            ok(&request(sc.addr, "GET", "/off/conn", &[trick], Body::None));
            assert_identity(&last_for(up, "/off/conn"), "none", None, None);
        }),
    ));
    cases.push((
        "request_id",
        Box::new(move || {
            let r = request(
                sc.addr,
                "GET",
                "/hybrid/rid",
                &["X-Request-Id: rid-kept-1"],
                Body::None,
            );
            ok(&r);
            assert_eq!(r.header("x-request-id"), Some("rid-kept-1"));
            assert_eq!(
                last_for(up, "/hybrid/rid").header("x-request-id"),
                Some("rid-kept-1")
            );
            let r = request(sc.addr, "GET", "/hybrid/rid2", &[], Body::None);
            ok(&r);
            let generated = r.header("x-request-id").expect("generated id").to_owned();
            assert!(!generated.is_empty());
            assert_eq!(
                last_for(up, "/hybrid/rid2").header("x-request-id"),
                Some(generated.as_str())
            );
            let r = request(
                sc.addr,
                "GET",
                "/req/rid",
                &["X-Request-Id: rid-kept-2"],
                Body::None,
            );
            assert_rejected(&r, 401, "SIGNATURE_MISSING");
            assert_eq!(r.json()["error"]["request_id"], "rid-kept-2");
        }),
    ));
    cases.push((
        "audit",
        Box::new(move || {
            let raw = sc.sign(
                ACTIVE,
                "POST",
                "/req/audit?token=secret-query",
                Some(b"{\"a\":1}"),
                &[
                    "-H",
                    "X-Request-Id: audit-ok",
                    "-H",
                    "User-Agent: audit-agent/1",
                ],
            );
            ok(&sc.send_raw(&raw));
            let sig = head(&raw);
            let a = sc.audit_for("audit-ok");
            assert_eq!(a.len(), 1, "one line per decision: {a:?}");
            let a = &a[0];
            for f in [
                "timestamp",
                "event_type",
                "request_id",
                "client_id",
                "key_id",
                "source_ip",
                "user_agent",
                "method",
                "path",
                "mode",
                "dry_run",
                "latency_ms",
                "code",
            ] {
                assert!(a.get(f).is_some(), "audit line lacks {f}: {a}");
            }
            // Every line carries `code`: "OK" for a pass, the reference §4.5 code otherwise.
            assert_eq!(a["code"], "OK", "{a}");
            assert_eq!(a["event_type"], "signature_auth_success");
            assert_eq!(a["client_id"], ACTIVE_CLIENT);
            assert_eq!(a["key_id"], ACTIVE);
            assert_eq!(a["source_ip"], "127.0.0.1");
            assert_eq!(a["user_agent"], "audit-agent/1");
            assert_eq!(a["method"], "POST");
            assert_eq!(a["path"], "/req/audit");
            assert_eq!(a["mode"], "required");
            assert!(a["latency_ms"].as_f64().is_some(), "{a}");
            let r = request(
                sc.addr,
                "GET",
                "/hybrid/audit",
                &[
                    "X-Request-Id: audit-legacy",
                    "Authorization: Bearer very-secret-token-42",
                ],
                Body::None,
            );
            ok(&r);
            let a = sc.audit_for("audit-legacy");
            assert_eq!(a.len(), 1, "{a:?}");
            assert_eq!(a[0]["event_type"], "legacy_pass");
            let r = request(
                sc.addr,
                "GET",
                "/off/audit",
                &["X-Request-Id: audit-exempt"],
                Body::None,
            );
            ok(&r);
            assert_eq!(sc.audit_for("audit-exempt")[0]["event_type"], "exempt");
            // Never a key, a signature, a raw credential or the query string.
            let private = std::fs::read_to_string(sc.key_path(ACTIVE)).unwrap();
            let signature = sig
                .lines()
                .find_map(|l| l.strip_prefix("Signature: sig1=:"))
                .unwrap()
                .trim_end_matches(':')
                .to_owned();
            for l in sc.stdout_lines() {
                assert!(!l.contains(private.trim()), "private key logged: {l}");
                assert!(!l.contains(&signature), "signature logged: {l}");
                assert!(
                    !l.contains("very-secret-token-42"),
                    "credential logged: {l}"
                );
                assert!(!l.contains("secret-query"), "query logged: {l}");
            }
        }),
    ));
    cases.push((
        "keep_alive_after_401",
        Box::new(move || {
            let mut c = Conn::open(sc.addr);
            let r = c.request("GET", "/req/ka1", &[], Body::None);
            assert_rejected(&r, 401, "SIGNATURE_MISSING");
            let r = c.request("GET", "/hybrid/ka2", &[], Body::None);
            ok(&r);
            // A signed one after a 401 with a body left unread by nobody: also fine.
            let raw = sc.sign(ACTIVE, "POST", "/req/ka3", Some(b"body"), &[]);
            let bad = replace(&raw, "body", "evil");
            c.write_raw(&bad);
            assert_rejected(&c.read().unwrap(), 401, "DIGEST_MISMATCH");
            let raw = sc.sign(ACTIVE, "GET", "/req/ka4", None, &[]);
            c.write_raw(&raw);
            ok(&c.read().unwrap());
        }),
    ));
    run_cases(cases);
    admin_after_traffic(sc);
    hostile_input(sc, up);
    assert!(sidecar.alive(), "sigproxy died on hostile input");
}

fn head(raw: &[u8]) -> String {
    common::sidecar::head(raw)
}

fn admin_after_traffic(sc: &Sidecar) {
    assert_eq!(sc.admin_get("/healthz").status, 200);
    assert_eq!(sc.admin_get("/readyz").status, 200);
    let m = String::from_utf8(sc.admin_get("/metrics").body).unwrap();
    for name in [
        "datafold_auth_attempts_total",
        "datafold_auth_latency_seconds_bucket",
        "datafold_invalid_signatures_total",
        "datafold_migration_progress_percent",
        "datafold_active_keys_total",
        "datafold_config_reloads_total",
        "datafold_canary_percent",
        "datafold_effective_mode",
        "datafold_requests_total",
        "datafold_upstream_latency_seconds_bucket",
    ] {
        assert!(m.contains(name), "metrics lack {name}:\n{m}");
    }
    let value = |prefix: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{m}"))
    };
    let has = |frag: &[&str]| m.lines().any(|l| frag.iter().all(|f| l.contains(f)));
    assert!(
        has(&[
            "datafold_auth_attempts_total",
            "client_id=\"client-one\"",
            "success"
        ]),
        "{m}"
    );
    // Bounded series are exposed at 0 from the start: read the counts.
    assert!(value("datafold_invalid_signatures_total{reason=\"SIGNATURE_INVALID\"} ") >= 1.0);
    assert!(value("datafold_requests_total{code=\"SIGNATURE_MISSING\"} ") >= 1.0);
    assert_eq!(value("datafold_active_keys_total"), 1.0);
    assert_eq!(value("datafold_effective_mode{mode=\"required\"}"), 1.0);
    assert_eq!(value("datafold_canary_percent"), 0.0);
    assert!(value("datafold_config_reloads_total{result=\"success\"}") >= 1.0);
    let p = value("datafold_migration_progress_percent{route=\"all\"}");
    assert!(p > 0.0 && p < 100.0, "migration progress {p}");
    assert!(
        value("datafold_upstream_latency_seconds_count") >= 5.0,
        "{m}"
    );
    let s = sc.admin_get("/status").json();
    for f in [
        "mode",
        "effective_mode",
        "overrides",
        "dry_run",
        "canary_percent",
        "policy",
        "last_reload_error",
        "keys",
        "replay",
        "ed25519_backend",
        "version",
    ] {
        assert!(s.get(f).is_some(), "/status lacks {f}: {s}");
    }
    // .cargo/config.toml compiles in the AVX-512 IFMA backend: a CPU that has it (as the kernel
    // lists its flags, not as the code under test detects them) must use it.
    let cpu_has = |flag: &str| {
        std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| {
            c.lines()
                .find(|l| l.starts_with("flags"))
                .is_some_and(|l| l.split_whitespace().any(|f| f == flag))
        })
    };
    if cfg!(all(
        target_arch = "x86_64",
        curve25519_dalek_backend = "avx512"
    )) && cpu_has("avx512ifma")
        && cpu_has("avx512vl")
    {
        assert_eq!(s["ed25519_backend"], "avx512ifma", "{s}");
    }
    assert!(
        ["avx512ifma", "avx2", "serial"].contains(&s["ed25519_backend"].as_str().unwrap_or("")),
        "{s}"
    );
    assert_eq!(s["mode"], "required");
    assert_eq!(s["effective_mode"], "required");
    assert_eq!(s["keys"]["active"], 1);
    assert_eq!(s["keys"]["revoked"], 1);
    assert_eq!(s["replay"]["store"], "memory");
    assert!(s["replay"]["entries"].as_u64().unwrap() >= 5, "{s}");
    assert!(s["policy"]["generation"].as_u64().is_some(), "{s}");
    assert_eq!(
        s["policy"]["sha256"].as_str().map(str::len),
        Some(64),
        "{s}"
    );
    assert!(
        s["policy"]["path"]
            .as_str()
            .unwrap()
            .ends_with("policy.yaml")
    );
    assert!(s["policy"].get("loaded_at").is_some(), "{s}");
}

/// Throw bytes no client should send; every one gets an answer or a close, never a crash.
fn hostile_input(sc: &Sidecar, up: &Upstream) {
    let huge_value = "a".repeat(200 * 1024);
    let many: String = (0..3000).map(|i| format!("X-H{i}: v\r\n")).collect();
    let inputs: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(),
        b"GET /req/\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Bin: \xff\xfe\x80\r\n\r\n".to_vec(),
        format!("GET /req/h HTTP/1.1\r\nHost: a\r\nX-Big: {huge_value}\r\n\r\n").into_bytes(),
        format!("GET /req/h HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes(),
        b"GET /req/sf HTTP/1.1\r\nHost: a\r\nSignature-Input: sig1=(\"@method\";;;\r\nSignature: sig1=:!!!:\r\n\r\n".to_vec(),
        b"GET /req/sf HTTP/1.1\r\nHost: a\r\nSignature-Input: sig1=(\"@method\");created=99999999999999999999999\r\nSignature: sig1=:AAAA:\r\n\r\n".to_vec(),
        b"GET /req/sf HTTP/1.1\r\nHost: a\r\nSignature-Input: \xff\xfe=(\"\xc3\x28\")\r\nSignature: \xff=:\xff:\r\n\r\n".to_vec(),
        b"GET /req/sf HTTP/1.1\r\nHost: a\r\nSignature-Input: sig1=(\"@query-param\";name=\"%\xff\")\r\nSignature: sig1=:AAAA:\r\nContent-Digest: sha-256=:\xff:\r\n\r\n".to_vec(),
        b"POST /hybrid/cl HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"POST /hybrid/cl HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabc".to_vec(),
        b"POST /hybrid/te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n".to_vec(),
        b"POST /hybrid/te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n".to_vec(),
    ];
    for input in &inputs {
        let mut s = std::net::TcpStream::connect(sc.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(input);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.take(1 << 20).read_to_end(&mut out);
        if let Some(status) = out.get(9..12) {
            // An answer, if any, is an error, never a pass.
            assert_ne!(status, b"200", "{}", String::from_utf8_lossy(&out));
        }
    }
    assert!(reached(up, "/req/h") + reached(up, "/req/sf") == 0);
    // Still serving (the caller also checks the process is alive).
    assert_eq!(sc.admin_get("/healthz").status, 200);
    ok(&sc.send_raw(&sc.sign(ACTIVE, "GET", "/req/after-hostile", None, &[])));
}
