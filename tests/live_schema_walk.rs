//! Black-box, issue 11's schema walk: for every key of the policy schema
//! (`sigproxy::policy::schema::KEYS`), one running `sigproxy run` is reloaded (file rename +
//! SIGHUP) between two policies that differ in that key, and
//! - a `live` key must change what a request observably gets (status, the upstream reached, the
//!   headers the upstream received, the canary's halt), each side checked against its expected
//!   observation;
//! - a `restart` key must be reported in `/status` `restart_required` (and the metric) while the
//!   process keeps running with its start value.
//!
//! A key of the schema with neither a probe here nor a restart class fails the test, so a key
//! added later without a class or a proof of liveness cannot pass. All failures are reported
//! together. One proxy, three upstreams, about a hundred reloads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod live;

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::client::{Body, request};
use common::upstream::{Recorded, Upstream};
use live::{Proxy, Sig, ports, public_b64_of, sign_with, write_by_rename};
use sigproxy::policy::schema::{self, Apply};

const RELOAD: Duration = Duration::from_secs(3);

struct H {
    tmp: tempfile::TempDir,
    a: Upstream,
    b: Upstream,
    slow: Upstream,
    /// Answers after 5 s: a request still in flight when a drain ends.
    slower: Upstream,
    proxy: Option<Proxy>,
    addr: SocketAddr,
    admin: SocketAddr,
    /// A port nothing listens on: the Redis the replay store cannot reach.
    dead: u16,
    n: AtomicU32,
}

type Sections = Vec<(&'static str, String)>;

fn sec(pairs: &[(&'static str, &str)]) -> Sections {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

impl H {
    fn p(&self) -> &Proxy {
        self.proxy.as_ref().unwrap()
    }

    fn policy_path(&self) -> PathBuf {
        self.tmp.path().join("policy.yaml")
    }

    /// The base policy with `over` replacing (or adding) top-level sections.
    fn render(&self, over: &Sections) -> String {
        let key = format!(
            "[{{key_id: k1, client_id: web, public_key: \"{}\"}}]",
            public_b64_of(7)
        );
        let mut base: Sections = vec![
            ("listen", format!("\"{}\"", self.addr)),
            ("admin_listen", format!("\"{}\"", self.admin)),
            ("upstream", format!("\"{}\"", self.a.addr)),
            ("threads", "2".into()),
            ("shutdown_grace_seconds", "1".into()),
            ("drain_delay_seconds", "0".into()),
            ("mode", "hybrid".into()),
            ("signature", "{body_digest: optional}".into()),
            ("keys", key),
            (
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", on_store_error: allow}}",
                    self.dead
                ),
            ),
        ];
        for (k, v) in over {
            match base.iter_mut().find(|(bk, _)| bk == k) {
                Some(slot) => slot.1 = v.clone(),
                None => base.push((k, v.clone())),
            }
        }
        base.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
    }

    /// Make `over` the policy in force: rename over the file, SIGHUP, wait for its sha256.
    fn load(&self, over: &Sections) {
        let text = self.render(over);
        write_by_rename(&self.policy_path(), &text);
        self.p().signal("HUP");
        self.p().wait_policy(&text, RELOAD);
    }

    fn path(&self) -> String {
        format!("/probe/{}", self.n.fetch_add(1, Ordering::Relaxed))
    }

    /// `method` a fresh path, signed per `sig`, with `headers` and `body`; the status and what
    /// the upstreams recorded for it.
    fn send(
        &self,
        method: &str,
        sig: Option<&Sig<'_>>,
        headers: &[&str],
        body: Option<&[u8]>,
        digest: bool,
    ) -> (u16, Option<(char, Recorded)>) {
        let path = self.path();
        let mut lines: Vec<String> = sig
            .map(|s| sign_with(method, &path, s, &[], body.filter(|_| digest)))
            .unwrap_or_default();
        lines.extend(headers.iter().map(|h| h.to_string()));
        let h: Vec<&str> = lines.iter().map(String::as_str).collect();
        let b = body.map_or(Body::None, Body::Length);
        let status = request(self.addr, method, &path, &h, b).status;
        let seen = [('A', &self.a), ('B', &self.b), ('S', &self.slow)]
            .iter()
            .find_map(|(c, u)| u.recorded_at(&path).into_iter().next().map(|r| (*c, r)));
        (status, seen)
    }

    fn unsigned(&self, headers: &[&str]) -> String {
        self.send("GET", None, headers, None, false).0.to_string()
    }

    fn signed(&self, sig: &Sig<'_>) -> String {
        self.send("GET", Some(sig), &[], None, false).0.to_string()
    }

    /// The values the upstream received under `name` (any case), joined with `,`.
    fn received(&self, sig: Option<&Sig<'_>>, headers: &[&str], name: &str) -> String {
        match self.send("GET", sig, headers, None, false) {
            (_, Some((_, r))) => r
                .headers
                .iter()
                .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            (status, None) => format!("not forwarded ({status})"),
        }
    }

    /// A request written in two parts with a pause between them on one connection: `200`, or
    /// `cut` when the connection closed (or answered otherwise) before the whole response.
    fn raw(&self, first: &str, pause: Duration, rest: &str) -> String {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(first.as_bytes());
        std::thread::sleep(pause);
        let _ = c.write_all(rest.as_bytes());
        let mut buf = [0u8; 12];
        match c.read_exact(&mut buf) {
            Ok(()) if buf.starts_with(b"HTTP/1.1 200") => "200".into(),
            _ => "cut".into(),
        }
    }

    /// With one idle connection held open, does a second one get an answer?
    fn second_connection(&self) -> String {
        // Connections of earlier probes are closed by now on our side; let the proxy see it.
        std::thread::sleep(Duration::from_millis(300));
        let _idle = std::net::TcpStream::connect(self.addr).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let req = format!("GET {} HTTP/1.1\r\nHost: app.test\r\n\r\n", self.path());
        self.raw(&req, Duration::ZERO, "")
    }

    /// `n` unsigned requests, then whether the canary auto-halt is in force.
    fn halt_after(&self, n: usize, pause_after: Option<(usize, Duration)>) -> String {
        for i in 0..n {
            if let Some((at, d)) = pause_after
                && i == at
            {
                std::thread::sleep(d);
            }
            self.unsigned(&["Authorization: Bearer canary-caller"]);
        }
        if self.p().status()["canary"]["halted"].is_null() {
            "running".into()
        } else {
            "halted".into()
        }
    }
}

/// One live key's proof: the observation under policy `a` and under `b`, each as expected.
struct Probe {
    key: &'static str,
    a: Sections,
    b: Sections,
    observe: Box<dyn Fn(&H) -> String>,
    want: [&'static str; 2],
}

fn probe(
    key: &'static str,
    a: Sections,
    b: Sections,
    want: [&'static str; 2],
    observe: impl Fn(&H) -> String + 'static,
) -> Probe {
    Probe {
        key,
        a,
        b,
        observe: Box::new(observe),
        want,
    }
}

fn sig() -> Sig<'static> {
    Sig::default()
}

/// A value of header `x-a` whose canary bucket is under 50 %.
fn sampled_value() -> String {
    (0..1000)
        .map(|i| format!("v{i}"))
        .find(|v| sigproxy::rollout::canary::bucket("x-a", v.as_bytes()) < 5_000)
        .unwrap()
}

fn probes(h: &H) -> Vec<Probe> {
    let sg = |s: &str| format!("{{body_digest: optional, {s}}}");
    let key = |id: &str, client: &str, seed: u8, status: &str| {
        format!(
            "[{{key_id: {id}, client_id: {client}, public_key: \"{}\", status: {status}}}]",
            public_b64_of(seed)
        )
    };
    let halt = |pct: u8, win: u16, min: u16| {
        format!(
            "{{percent: 100, auto_halt: {{max_reject_percent: {pct}, window_seconds: {win}, min_requests: {min}}}}}"
        )
    };
    let route = |r: &str| format!("[{{path_prefix: /probe/, {r}}}]");
    let sticky = sampled_value();
    let forged = |name: &'static str| format!("{name}: forged");
    let replay = |on: &str| {
        format!(
            "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", on_store_error: {on}}}",
            h.dead
        )
    };
    let bad_sig: [&str; 2] = [
        "Signature-Input: sig1=(\"@method\");created=1;keyid=\"k1\"",
        "Signature: sig1=:AAAA:",
    ];
    vec![
        probe(
            "mode",
            sec(&[("mode", "hybrid")]),
            sec(&[("mode", "required")]),
            ["200", "401"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "dry_run",
            sec(&[("mode", "required"), ("dry_run", "false")]),
            sec(&[("mode", "required"), ("dry_run", "true")]),
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "upstream",
            vec![],
            vec![("upstream", format!("\"{}\"", h.b.addr))],
            ["A", "B"],
            |h| {
                h.send("GET", None, &[], None, false)
                    .1
                    .map_or("none".into(), |(c, _)| c.to_string())
            },
        ),
        probe(
            "upstream_timeout_seconds",
            vec![
                ("upstream", format!("\"{}\"", h.slow.addr)),
                ("upstream_timeout_seconds", "10".into()),
            ],
            vec![
                ("upstream", format!("\"{}\"", h.slow.addr)),
                ("upstream_timeout_seconds", "1".into()),
            ],
            ["200", "504"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "signature.max_age_seconds",
            vec![("signature", sg("max_age_seconds: 300"))],
            vec![("signature", sg("max_age_seconds: 60"))],
            ["200", "401"],
            |h| {
                h.signed(&Sig {
                    created_offset: -120,
                    ..sig()
                })
            },
        ),
        probe(
            "signature.clock_skew_seconds",
            vec![("signature", sg("clock_skew_seconds: 120"))],
            vec![("signature", sg("clock_skew_seconds: 5"))],
            ["200", "401"],
            |h| {
                h.signed(&Sig {
                    created_offset: 60,
                    ..sig()
                })
            },
        ),
        probe(
            "signature.nonce",
            vec![("signature", sg("nonce: optional"))],
            vec![("signature", sg("nonce: required"))],
            ["200", "401"],
            |h| {
                h.signed(&Sig {
                    nonce: false,
                    ..sig()
                })
            },
        ),
        probe(
            "signature.required_components",
            vec![("signature", sg("required_components: [\"@method\"]"))],
            vec![(
                "signature",
                sg("required_components: [\"@method\", \"content-type\"]"),
            )],
            ["200", "401"],
            |h| h.signed(&sig()),
        ),
        probe(
            "signature.body_digest",
            sec(&[("signature", "{body_digest: optional}")]),
            sec(&[("signature", "{body_digest: required}")]),
            ["200", "401"],
            |h| {
                h.send("POST", Some(&sig()), &[], Some(b"hello world"), false)
                    .0
                    .to_string()
            },
        ),
        probe(
            "signature.max_body_bytes",
            vec![("signature", sg("max_body_bytes: 1000"))],
            vec![("signature", sg("max_body_bytes: 4"))],
            ["200", "413"],
            |h| {
                h.send("POST", Some(&sig()), &[], Some(b"hello world"), true)
                    .0
                    .to_string()
            },
        ),
        probe(
            "signature.label",
            vec![("signature", sg("label: sig1"))],
            vec![("signature", sg("label: sig2"))],
            ["200", "401"],
            |h| h.signed(&sig()),
        ),
        probe(
            "signature.tag",
            vec![("signature", sg("tag: t1"))],
            vec![("signature", sg("tag: t2"))],
            ["200", "401"],
            |h| {
                h.signed(&Sig {
                    tag: Some("t1"),
                    ..sig()
                })
            },
        ),
        probe(
            "signature.public_authority",
            vec![("signature", sg("public_authority: app.test"))],
            vec![("signature", sg("public_authority: other.test"))],
            ["200", "401"],
            |h| h.signed(&sig()),
        ),
        probe(
            "signature.public_scheme",
            vec![("signature", sg("public_scheme: http"))],
            vec![("signature", sg("public_scheme: https"))],
            ["200", "401"],
            |h| {
                h.signed(&Sig {
                    components: &["@method", "@authority", "@path", "@scheme"],
                    ..sig()
                })
            },
        ),
        probe(
            "keys[].key_id",
            vec![("keys", key("k1", "web", 7, "active"))],
            vec![("keys", key("k2", "web", 7, "active"))],
            ["200", "401"],
            |h| h.signed(&sig()),
        ),
        probe(
            "keys[].client_id",
            vec![("keys", key("k1", "web", 7, "active"))],
            vec![("keys", key("k1", "app", 7, "active"))],
            ["web", "app"],
            |h| h.received(Some(&sig()), &[], "x-datafold-client-id"),
        ),
        probe(
            "keys[].public_key",
            vec![("keys", key("k1", "web", 7, "active"))],
            vec![("keys", key("k1", "web", 8, "active"))],
            ["200", "401"],
            |h| h.signed(&sig()),
        ),
        probe(
            "keys[].status",
            vec![("keys", key("k1", "web", 7, "active"))],
            vec![("keys", key("k1", "web", 7, "revoked"))],
            ["200", "401"],
            |h| h.signed(&sig()),
        ),
        probe(
            "key_files",
            sec(&[("key_files", "[]")]),
            sec(&[("key_files", "[\"keys/*.yaml\"]")]),
            ["401", "200"],
            |h| {
                h.signed(&Sig {
                    key_id: "k9",
                    seed: 9,
                    ..sig()
                })
            },
        ),
        probe(
            "routes[].path_prefix",
            vec![("routes", route("mode: required"))],
            sec(&[("routes", "[{path_prefix: /elsewhere, mode: required}]")]),
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "routes[].methods",
            vec![("routes", route("methods: [GET], mode: required"))],
            vec![("routes", route("methods: [POST], mode: required"))],
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "routes[].mode",
            vec![("routes", route("mode: required"))],
            vec![("routes", route("mode: off"))],
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "routes[].dry_run",
            vec![("routes", route("mode: required, dry_run: false"))],
            vec![("routes", route("mode: required, dry_run: true"))],
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "canary.percent",
            sec(&[("canary", "{percent: 0}")]),
            sec(&[("canary", "{percent: 100}")]),
            ["200", "401"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "canary.sticky_on",
            sec(&[("canary", "{percent: 50, sticky_on: [\"header:x-a\"]}")]),
            sec(&[("canary", "{percent: 50, sticky_on: [\"header:x-b\"]}")]),
            ["401", "200"],
            move |h| h.unsigned(&[&format!("x-a: {sticky}")]),
        ),
        probe(
            "canary.always_require",
            sec(&[("canary", "{always_require: [\"ip:127.0.0.1/32\"]}")]),
            sec(&[("canary", "{always_require: [\"ip:10.0.0.0/8\"]}")]),
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "canary.never_require",
            sec(&[("canary", "{percent: 100, never_require: []}")]),
            sec(&[(
                "canary",
                "{percent: 100, never_require: [\"ip:127.0.0.1/32\"]}",
            )]),
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "canary.auto_halt.max_reject_percent",
            vec![("canary", halt(50, 60, 2))],
            vec![("canary", halt(100, 60, 2))],
            ["halted", "running"],
            |h| h.halt_after(3, None),
        ),
        probe(
            "canary.auto_halt.window_seconds",
            vec![("canary", halt(50, 60, 3))],
            vec![("canary", halt(50, 5, 3))],
            ["halted", "running"],
            |h| h.halt_after(3, Some((2, Duration::from_millis(6_200)))),
        ),
        probe(
            "canary.auto_halt.min_requests",
            vec![("canary", halt(50, 60, 2))],
            vec![("canary", halt(50, 60, 100))],
            ["halted", "running"],
            |h| h.halt_after(3, None),
        ),
        probe(
            "canary.legacy_user.header",
            sec(&[(
                "canary",
                "{always_require: [\"client:alice\"], legacy_user: {header: x-user}}",
            )]),
            sec(&[(
                "canary",
                "{always_require: [\"client:alice\"], legacy_user: {header: x-other}}",
            )]),
            ["401", "200"],
            |h| h.unsigned(&["x-user: alice"]),
        ),
        probe(
            "canary.legacy_user.hash",
            sec(&[(
                "canary",
                "{always_require: [\"client:alice\"], legacy_user: {header: x-user, hash: none}}",
            )]),
            sec(&[(
                "canary",
                "{always_require: [\"client:alice\"], legacy_user: {header: x-user, hash: sha256}}",
            )]),
            ["401", "200"],
            |h| h.unsigned(&["x-user: alice"]),
        ),
        probe(
            "identity.client_id_header",
            vec![],
            sec(&[("identity", "{client_id_header: X-Caller}")]),
            ["|forged", "web|"],
            move |h| {
                let f = forged("X_Caller");
                format!(
                    "{}|{}",
                    h.received(Some(&sig()), &[], "x-caller"),
                    h.received(None, &[&f], "x-caller")
                )
            },
        ),
        probe(
            "identity.key_id_header",
            vec![],
            sec(&[("identity", "{key_id_header: X-Kid}")]),
            ["|forged", "k1|"],
            move |h| {
                let f = forged("x-kid");
                format!(
                    "{}|{}",
                    h.received(Some(&sig()), &[], "x-kid"),
                    h.received(None, &[&f], "x-kid")
                )
            },
        ),
        probe(
            "identity.auth_method_header",
            vec![],
            sec(&[("identity", "{auth_method_header: X-Am}")]),
            ["forged", "legacy"],
            move |h| h.received(None, &[&forged("X-AM")], "x-am"),
        ),
        probe(
            "identity.strip_inbound",
            sec(&[("identity", "{strip_inbound: []}")]),
            sec(&[("identity", "{strip_inbound: [X-Secret]}")]),
            ["s", ""],
            |h| h.received(None, &["x-secret: s"], "x-secret"),
        ),
        probe(
            "identity.forward_signature_headers",
            sec(&[("identity", "{forward_signature_headers: true}")]),
            sec(&[("identity", "{forward_signature_headers: false}")]),
            ["yes", "no"],
            |h| {
                let got = h.received(Some(&sig()), &[], "signature-input");
                if got.starts_with("sig1=") {
                    "yes"
                } else {
                    "no"
                }
                .into()
            },
        ),
        probe(
            "identity.strip_override_headers",
            sec(&[("identity", "{strip_override_headers: [x-a]}")]),
            sec(&[("identity", "{strip_override_headers: [x-b]}")]),
            ["", "kept"],
            |h| h.received(None, &["X-A: kept"], "x-a"),
        ),
        probe(
            "route_matching.case_insensitive",
            sec(&[
                ("routes", "[{path_prefix: /PROBE/, mode: required}]"),
                ("route_matching", "{case_insensitive: true}"),
            ]),
            sec(&[
                ("routes", "[{path_prefix: /PROBE/, mode: required}]"),
                ("route_matching", "{case_insensitive: false}"),
            ]),
            ["401", "200"],
            |h| h.unsigned(&[]),
        ),
        probe(
            "trusted_proxies",
            sec(&[("trusted_proxies", "[\"127.0.0.1/32\"]")]),
            sec(&[("trusted_proxies", "[]")]),
            ["203.0.113.66, 127.0.0.1", "127.0.0.1"],
            |h| h.received(None, &["X-Forwarded-For: 203.0.113.66"], "x-forwarded-for"),
        ),
        probe(
            "replay.on_store_error",
            vec![("replay", replay("allow"))],
            vec![("replay", replay("reject"))],
            ["200", "503"],
            |h| h.signed(&sig()),
        ),
        probe(
            "limits.max_connections",
            sec(&[("limits", "{max_connections: 100}")]),
            sec(&[("limits", "{max_connections: 1}")]),
            ["200", "cut"],
            |h| h.second_connection(),
        ),
        probe(
            "limits.keepalive_timeout_seconds",
            sec(&[("limits", "{keepalive_timeout_seconds: 75}")]),
            sec(&[("limits", "{keepalive_timeout_seconds: 0}")]),
            ["open", "close"],
            |h| {
                // A second request on the same connection: answered, or the connection closed.
                let mut c = common::client::Conn::open(h.addr);
                assert_eq!(c.request("GET", &h.path(), &[], Body::None).status, 200);
                c.send("GET", &h.path(), &[], Body::None);
                if c.read().is_some() { "open" } else { "close" }.into()
            },
        ),
        probe(
            "limits.header_timeout_seconds",
            sec(&[("limits", "{header_timeout_seconds: 60}")]),
            sec(&[("limits", "{header_timeout_seconds: 1}")]),
            ["200", "cut"],
            |h| {
                let first = format!("GET {} HTTP/1.1\r\n", h.path());
                h.raw(
                    &first,
                    Duration::from_millis(2_000),
                    "Host: app.test\r\n\r\n",
                )
            },
        ),
        probe(
            "limits.body_timeout_seconds",
            sec(&[("limits", "{body_timeout_seconds: 60}")]),
            sec(&[("limits", "{body_timeout_seconds: 1}")]),
            ["200", "cut"],
            |h| {
                let first = format!(
                    "POST {} HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nhello",
                    h.path()
                );
                h.raw(&first, Duration::from_millis(2_000), "world")
            },
        ),
        probe(
            "http2.enabled",
            sec(&[("http2", "{enabled: true}")]),
            sec(&[("http2", "{enabled: false}")]),
            ["200", "000"],
            |h| {
                // A new connection with the HTTP/2 preface (curl's prior knowledge).
                let o = std::process::Command::new("curl")
                    .args([
                        "-s",
                        "--max-time",
                        "5",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .arg("--http2-prior-knowledge")
                    .arg(format!("http://{}{}", h.addr, h.path()))
                    .output()
                    .expect("curl");
                String::from_utf8_lossy(&o.stdout).into_owned()
            },
        ),
        probe(
            "failure_rate_limit.per_minute",
            sec(&[("failure_rate_limit", "{per_minute: 0}")]),
            sec(&[("failure_rate_limit", "{per_minute: 1}")]),
            ["401", "429"],
            move |h| {
                let mut last = String::new();
                for _ in 0..3 {
                    last = h.unsigned(&bad_sig);
                }
                last
            },
        ),
    ]
}

/// A different value for each restart-only key.
fn restart_variants(h: &H) -> Vec<(&'static str, Sections)> {
    let other = || format!("\"127.0.0.1:{}\"", common::gateway::free_port());
    vec![
        ("listen", vec![("listen", other())]),
        ("admin_listen", vec![("admin_listen", other())]),
        ("threads", sec(&[("threads", "3")])),
        (
            "listener.read_buffer_bytes",
            sec(&[("listener", "{read_buffer_bytes: 4096}")]),
        ),
        (
            "listener.write_buffer_bytes",
            sec(&[("listener", "{write_buffer_bytes: 4096}")]),
        ),
        (
            "key_directory.url",
            sec(&[("key_directory", "{url: \"http://127.0.0.1:9/jwks\"}")]),
        ),
        (
            "key_directory.refresh_seconds",
            sec(&[(
                "key_directory",
                "{url: \"http://127.0.0.1:9/jwks\", refresh_seconds: 30}",
            )]),
        ),
        ("replay.store", sec(&[("replay", "{store: memory}")])),
        (
            "replay.max_entries",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", on_store_error: allow, max_entries: 5}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_url",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/1\", on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_cluster_nodes",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_cluster_nodes: [\"redis://127.0.0.1:{}\"], on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_sentinels",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_sentinels: [\"redis://127.0.0.1:{}\"], redis_sentinel_master: m, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_sentinel_master",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_sentinels: [\"redis://127.0.0.1:{}\"], redis_sentinel_master: n, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_password_file",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", redis_password_file: /run/secrets/redis, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_password_env",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", redis_password_env: REDIS_PASSWORD, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_ca_file",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", redis_ca_file: /run/secrets/ca.crt, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_client_cert_file",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", redis_client_cert_file: /c.crt, redis_client_key_file: /c.key, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "replay.redis_client_key_file",
            vec![(
                "replay",
                format!(
                    "{{store: redis, redis_url: \"redis://127.0.0.1:{}/0\", redis_client_cert_file: /c.crt, redis_client_key_file: /c.key, on_store_error: allow}}",
                    h.dead
                ),
            )],
        ),
        (
            "readiness.wait_for_key_directory",
            sec(&[("readiness", "{wait_for_key_directory: false}")]),
        ),
        (
            "readiness.wait_for_replay_store",
            sec(&[("readiness", "{wait_for_replay_store: false}")]),
        ),
        (
            "readiness.timeout_seconds",
            sec(&[("readiness", "{timeout_seconds: 7}")]),
        ),
        (
            "readiness.on_timeout",
            sec(&[("readiness", "{on_timeout: ready}")]),
        ),
    ]
}

fn start() -> H {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("keys")).unwrap();
    std::fs::write(
        tmp.path().join("keys/k9.yaml"),
        format!(
            "- {{key_id: k9, client_id: nine, public_key: \"{}\"}}\n",
            public_b64_of(9)
        ),
    )
    .unwrap();
    let (addr, admin) = ports();
    let mut h = H {
        a: Upstream::start(Duration::ZERO),
        b: Upstream::start(Duration::ZERO),
        slow: Upstream::start(Duration::from_secs(2)),
        slower: Upstream::start(Duration::from_secs(5)),
        proxy: None,
        addr,
        admin,
        dead: common::gateway::free_port(),
        n: AtomicU32::new(0),
        tmp,
    };
    let text = h.render(&vec![]);
    std::fs::write(h.policy_path(), &text).unwrap();
    h.proxy = Some(Proxy::start(
        &h.policy_path(),
        addr,
        admin,
        &h.tmp.path().join("sigproxy.log"),
    ));
    h
}

#[test]
fn every_policy_key_applies_live_or_is_reported_as_needing_a_restart() {
    let h = start();
    let t0 = Instant::now();
    let probes = probes(&h);
    let restarts = restart_variants(&h);
    let mut failures: Vec<String> = Vec::new();
    for k in schema::leaves() {
        let proven = match k.apply {
            Apply::Live => {
                probes.iter().any(|p| p.key == k.path)
                    || AT_STOP.contains(&k.path)
                    || NOT_PROBED.iter().any(|(n, _)| *n == k.path)
            }
            Apply::Restart => restarts.iter().any(|(r, _)| *r == k.path),
            Apply::Section => true,
        };
        if !proven {
            failures.push(format!(
                "{} ({}): no probe in this walk; prove it changes behaviour on reload, or classify it",
                k.path,
                k.apply.as_str()
            ));
        }
    }
    for p in &probes {
        if schema::class(p.key) != Some(Apply::Live) {
            failures.push(format!(
                "{}: probed as live, but the schema says {:?}",
                p.key,
                schema::class(p.key)
            ));
            continue;
        }
        let got = catch_unwind(AssertUnwindSafe(|| {
            h.load(&p.a);
            let a = (p.observe)(&h);
            h.load(&p.b);
            let b = (p.observe)(&h);
            (a, b)
        }));
        match got {
            Ok((a, b)) if [a.as_str(), b.as_str()] == p.want => {}
            Ok((a, b)) => failures.push(format!(
                "{} (live): observed {a:?} then {b:?} across the reload, want {:?} then {:?}",
                p.key, p.want[0], p.want[1]
            )),
            Err(e) => failures.push(format!("{}: {}", p.key, panic_text(&e))),
        }
    }
    for (key, over) in &restarts {
        if schema::class(key) != Some(Apply::Restart) {
            failures.push(format!(
                "{key}: checked as restart-only, but the schema says {:?}",
                schema::class(key)
            ));
            continue;
        }
        let got = catch_unwind(AssertUnwindSafe(|| {
            h.load(&vec![]);
            assert_eq!(h.p().status()["restart_required"], serde_json::json!([]));
            h.load(over);
            let s = h.p().status();
            let pending: Vec<String> =
                serde_json::from_value(s["restart_required"].clone()).unwrap();
            let series = format!("datafold_config_restart_required{{key=\"{key}\"}}");
            let metric = h.p().metric(&series);
            // Still serving, on the listener and admin port it started with.
            let serving = h.unsigned(&[]);
            (pending, metric, serving)
        }));
        match got {
            Ok((pending, metric, serving)) => {
                if !pending.iter().any(|p| p == key) || metric != 1.0 || serving != "200" {
                    failures.push(format!(
                        "{key} (restart): restart_required {pending:?}, metric {metric}, request {serving}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{key}: {}", panic_text(&e))),
        }
    }
    // Back to the start values: nothing pending, and the error log named what was.
    h.load(&vec![]);
    assert_eq!(h.p().status()["restart_required"], serde_json::json!([]));
    let log = h.p().log_text();
    assert!(
        log.lines().any(|l| l.contains("\"level\":\"ERROR\"")
            && l.contains("a restart is required for threads")),
        "no error line naming the restart-only key"
    );
    failures.extend(stop_phase(&h));
    for (k, why) in NOT_PROBED {
        eprintln!("schema walk: {k} is not probed here: {why}");
    }
    eprintln!(
        "schema walk: {} probes, {} restart keys, {:?}",
        probes.len(),
        restarts.len(),
        t0.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} key(s) not applied live nor reported:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Live keys read when a stop begins (from the policy in force then): proven by `stop_phase`.
const AT_STOP: [&str; 2] = ["drain_delay_seconds", "shutdown_grace_seconds"];

/// Live keys this walk cannot observe cheaply, each with why and where it is read per request.
/// Adding a key here is a reviewed decision, not a way around the walk.
const NOT_PROBED: &[(&str, &str)] = &[
    (
        "limits.send_timeout_seconds",
        "needs a client that stops reading a response larger than the socket buffers; read from the \
         request's snapshot (proxy::Hop::send_timeout) for every response write",
    ),
    (
        "tls.cert_file",
        "this walk's listener is plain HTTP (TLS on/off needs a restart, reported as `tls`); the \
         pair is read with the policy and taken from the snapshot (proxy::Hop::tls) at each \
         handshake: tests/protocols_tls.rs rotates it under load",
    ),
    (
        "tls.key_file",
        "as tls.cert_file (a key that is not the certificate's is refused like a bad policy: \
         tests/protocols_tls.rs)",
    ),
    (
        "tls.client_ca_file",
        "as tls.cert_file; part of the same rustls configuration, built per snapshot",
    ),
    (
        "http2.max_concurrent_streams",
        "an HTTP/2 connection's SETTINGS come from the snapshot when it starts \
         (proxy::h2::options); tests/protocols_h2.rs reads them back",
    ),
    (
        "http2.max_header_list_bytes",
        "as http2.max_concurrent_streams (431 beyond it: tests/protocols_h2.rs)",
    ),
    (
        "http2.max_pending_resets",
        "as http2.max_concurrent_streams (the rapid-reset tests of tests/protocols_h2.rs)",
    ),
    (
        "upstream_tls.ca_file",
        "this walk's upstream is plain HTTP; the bundle is read with the policy and the peer built \
         per snapshot (proxy::Hop::peer): tests/protocols_upstream_tls.rs swaps it without a restart",
    ),
    (
        "upstream_tls.server_name",
        "as upstream_tls.ca_file (the peer's verified name and SNI, per snapshot)",
    ),
];

/// The last act: reload `drain_delay_seconds: 2` and `shutdown_grace_seconds: 10` (the process
/// started with 0 and 1), SIGTERM, then on a fresh connection during the drain a request to an
/// upstream that answers after 5 s. With the start values the listener would be closed at once
/// (`refused`); with a grace of 1 s the request would be cut at 3 s (`cut`).
fn stop_phase(h: &H) -> Vec<String> {
    use std::io::{Read, Write};
    let over = vec![
        ("upstream", format!("\"{}\"", h.slower.addr)),
        ("drain_delay_seconds", "2".to_owned()),
        ("shutdown_grace_seconds", "10".to_owned()),
    ];
    let got = catch_unwind(AssertUnwindSafe(|| {
        h.load(&over);
        h.p().signal("TERM");
        let t0 = Instant::now();
        while request(h.admin, "GET", "/readyz", &[], Body::None).status != 503 {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "/readyz did not turn 503"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let Ok(mut c) = std::net::TcpStream::connect(h.addr) else {
            return "refused".to_owned();
        };
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let req = format!("GET {} HTTP/1.1\r\nHost: app.test\r\n\r\n", h.path());
        if c.write_all(req.as_bytes()).is_err() {
            return "refused".to_owned();
        }
        let mut buf = [0u8; 12];
        match c.read_exact(&mut buf) {
            Ok(()) if buf.starts_with(b"HTTP/1.1 200") => "200".to_owned(),
            Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
            Err(_) => "cut".to_owned(),
        }
    }));
    match got {
        Ok(s) if s == "200" => vec![],
        Ok(s) if s == "refused" => vec![format!(
            "drain_delay_seconds (live, at stop): a fresh connection was refused during the reloaded 2 s drain"
        )],
        Ok(s) if s == "cut" => vec![format!(
            "shutdown_grace_seconds (live, at stop): an in-flight request was cut before the reloaded 10 s grace"
        )],
        Ok(s) => vec![format!(
            "drain_delay_seconds / shutdown_grace_seconds: answered {s:?} during the drain"
        )],
        Err(e) => vec![format!(
            "drain_delay_seconds / shutdown_grace_seconds: {}",
            panic_text(&e)
        )],
    }
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}
