//! The schema walk at the parser's level: every key of `schema::KEYS` that an operator sets
//! reaches the typed policy (two documents differing only in that key parse to different
//! policies), so no accepted key is silently ignored; and the walk covers exactly the table, so
//! a key added later without an entry here fails.

use super::super::schema::{self, Apply};
use super::super::*;
use super::{PUB, ok};

/// Another valid Ed25519 public key (seed 7,7,…).
fn pub2() -> String {
    crate::keys::public_base64(&ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key())
}

/// For each leaf key: two documents that differ only in that key's value.
fn pairs() -> Vec<(&'static str, String, String)> {
    let key = |id: &str, client: &str, pk: &str, status: &str| {
        format!(
            "keys: [{{key_id: {id}, client_id: {client}, public_key: \"{pk}\", status: {status}}}]"
        )
    };
    let halt = |pct: u8, win: u16, min: u16| {
        format!(
            "canary: {{auto_halt: {{max_reject_percent: {pct}, window_seconds: {win}, min_requests: {min}}}}}"
        )
    };
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    let v: Vec<(&'static str, (String, String))> = vec![
        ("mode", s("mode: hybrid", "mode: required")),
        ("dry_run", s("dry_run: false", "dry_run: true")),
        (
            "listen",
            s("listen: \"127.0.0.1:1\"", "listen: \"127.0.0.1:2\""),
        ),
        (
            "upstream",
            s("upstream: \"127.0.0.1:1\"", "upstream: \"127.0.0.1:2\""),
        ),
        (
            "admin_listen",
            s(
                "admin_listen: \"127.0.0.1:1\"",
                "admin_listen: \"127.0.0.1:2\"",
            ),
        ),
        ("threads", s("threads: 1", "threads: 2")),
        (
            "shutdown_grace_seconds",
            s("shutdown_grace_seconds: 1", "shutdown_grace_seconds: 2"),
        ),
        (
            "upstream_timeout_seconds",
            s("upstream_timeout_seconds: 1", "upstream_timeout_seconds: 2"),
        ),
        (
            "signature.max_age_seconds",
            s(
                "signature: {max_age_seconds: 1}",
                "signature: {max_age_seconds: 2}",
            ),
        ),
        (
            "signature.clock_skew_seconds",
            s(
                "signature: {clock_skew_seconds: 1}",
                "signature: {clock_skew_seconds: 2}",
            ),
        ),
        (
            "signature.nonce",
            s("signature: {nonce: required}", "signature: {nonce: off}"),
        ),
        (
            "signature.required_components",
            s(
                "signature: {required_components: [\"@path\"]}",
                "signature: {required_components: [\"@method\"]}",
            ),
        ),
        (
            "signature.body_digest",
            s(
                "signature: {body_digest: required}",
                "signature: {body_digest: off}",
            ),
        ),
        (
            "signature.max_body_bytes",
            s(
                "signature: {max_body_bytes: 1}",
                "signature: {max_body_bytes: 2}",
            ),
        ),
        (
            "signature.label",
            s("signature: {label: a}", "signature: {label: b}"),
        ),
        (
            "signature.tag",
            s("signature: {tag: a}", "signature: {tag: b}"),
        ),
        (
            "signature.public_authority",
            s(
                "signature: {public_authority: a.test}",
                "signature: {public_authority: b.test}",
            ),
        ),
        (
            "signature.public_scheme",
            s(
                "signature: {public_scheme: http}",
                "signature: {public_scheme: https}",
            ),
        ),
        (
            "keys[].key_id",
            (key("a", "c", PUB, "active"), key("b", "c", PUB, "active")),
        ),
        (
            "keys[].client_id",
            (key("a", "c", PUB, "active"), key("a", "d", PUB, "active")),
        ),
        (
            "keys[].public_key",
            (
                key("a", "c", PUB, "active"),
                key("a", "c", &pub2(), "active"),
            ),
        ),
        (
            "keys[].status",
            (key("a", "c", PUB, "active"), key("a", "c", PUB, "revoked")),
        ),
        (
            "key_files",
            s(
                "key_files: []",
                "key_files: [\"/*.sigproxy-test-matches-nothing\"]",
            ),
        ),
        (
            "key_directory.url",
            s(
                "key_directory: {url: \"http://a.test/\"}",
                "key_directory: {url: \"http://b.test/\"}",
            ),
        ),
        (
            "key_directory.refresh_seconds",
            s(
                "key_directory: {url: \"http://a.test/\", refresh_seconds: 1}",
                "key_directory: {url: \"http://a.test/\", refresh_seconds: 2}",
            ),
        ),
        (
            "routes[].path_prefix",
            s(
                "routes: [{path_prefix: /a, mode: off}]",
                "routes: [{path_prefix: /b, mode: off}]",
            ),
        ),
        (
            "routes[].methods",
            s(
                "routes: [{path_prefix: /a, methods: [GET], mode: off}]",
                "routes: [{path_prefix: /a, methods: [POST], mode: off}]",
            ),
        ),
        (
            "routes[].mode",
            s(
                "routes: [{path_prefix: /a, mode: off}]",
                "routes: [{path_prefix: /a, mode: required}]",
            ),
        ),
        (
            "routes[].dry_run",
            s(
                "routes: [{path_prefix: /a, mode: off, dry_run: false}]",
                "routes: [{path_prefix: /a, mode: off, dry_run: true}]",
            ),
        ),
        (
            "canary.percent",
            s("canary: {percent: 1}", "canary: {percent: 2}"),
        ),
        (
            "canary.sticky_on",
            s(
                "canary: {sticky_on: [ip]}",
                "canary: {sticky_on: [\"header:x-a\"]}",
            ),
        ),
        (
            "canary.always_require",
            s(
                "canary: {always_require: [\"client:a\"]}",
                "canary: {always_require: [\"client:b\"]}",
            ),
        ),
        (
            "canary.never_require",
            s(
                "canary: {never_require: [\"client:a\"]}",
                "canary: {never_require: [\"client:b\"]}",
            ),
        ),
        (
            "canary.auto_halt.max_reject_percent",
            (halt(1, 60, 1), halt(2, 60, 1)),
        ),
        (
            "canary.auto_halt.window_seconds",
            (halt(1, 60, 1), halt(1, 61, 1)),
        ),
        (
            "canary.auto_halt.min_requests",
            (halt(1, 60, 1), halt(1, 60, 2)),
        ),
        (
            "canary.legacy_user.header",
            s(
                "canary: {legacy_user: {header: x-a}}",
                "canary: {legacy_user: {header: x-b}}",
            ),
        ),
        (
            "canary.legacy_user.hash",
            s(
                "canary: {legacy_user: {header: x-a, hash: none}}",
                "canary: {legacy_user: {header: x-a, hash: sha256}}",
            ),
        ),
        (
            "identity.client_id_header",
            s(
                "identity: {client_id_header: x-a}",
                "identity: {client_id_header: x-b}",
            ),
        ),
        (
            "identity.key_id_header",
            s(
                "identity: {key_id_header: x-a}",
                "identity: {key_id_header: x-b}",
            ),
        ),
        (
            "identity.auth_method_header",
            s(
                "identity: {auth_method_header: x-a}",
                "identity: {auth_method_header: x-b}",
            ),
        ),
        (
            "identity.strip_inbound",
            s(
                "identity: {strip_inbound: [x-a]}",
                "identity: {strip_inbound: [x-b]}",
            ),
        ),
        (
            "identity.forward_signature_headers",
            s(
                "identity: {forward_signature_headers: true}",
                "identity: {forward_signature_headers: false}",
            ),
        ),
        (
            "identity.strip_override_headers",
            s(
                "identity: {strip_override_headers: [x-a]}",
                "identity: {strip_override_headers: [x-b]}",
            ),
        ),
        (
            "route_matching.case_insensitive",
            s(
                "route_matching: {case_insensitive: true}",
                "route_matching: {case_insensitive: false}",
            ),
        ),
        (
            "trusted_proxies",
            s(
                "trusted_proxies: [10.0.0.0/8]",
                "trusted_proxies: [10.0.0.0/16]",
            ),
        ),
        (
            "replay.store",
            s(
                "replay: {store: memory}",
                "replay: {store: redis, redis_url: \"redis://a/0\"}",
            ),
        ),
        (
            "replay.max_entries",
            s("replay: {max_entries: 1}", "replay: {max_entries: 2}"),
        ),
        (
            "replay.redis_url",
            s(
                "replay: {store: redis, redis_url: \"redis://a/0\"}",
                "replay: {store: redis, redis_url: \"redis://a/1\"}",
            ),
        ),
        (
            "replay.on_store_error",
            s(
                "replay: {on_store_error: reject}",
                "replay: {on_store_error: allow}",
            ),
        ),
        (
            "failure_rate_limit.per_minute",
            s(
                "failure_rate_limit: {per_minute: 1}",
                "failure_rate_limit: {per_minute: 2}",
            ),
        ),
    ];
    // The files must exist and hold a matching pair: the fixture, under several names.
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = std::env::temp_dir().join(format!("sigproxy-schema-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, from) in [
        ("a.pem", "cert.pem"),
        ("b.pem", "cert.pem"),
        ("ca.pem", "cert.pem"),
        ("cb.pem", "cert.pem"),
        ("k.pem", "key.pem"),
        ("l.pem", "key.pem"),
    ] {
        std::fs::copy(fx.join(from), dir.join(name)).unwrap();
    }
    let d = dir.display().to_string();
    let tls = move |cert: &str, key: &str, ca: &str| {
        format!(
            "tls: {{cert_file: \"{d}/{cert}\", key_file: \"{d}/{key}\", client_ca_file: \"{d}/{ca}\"}}"
        )
    };
    let more: Vec<(&'static str, (String, String))> = vec![
        (
            "drain_delay_seconds",
            s("drain_delay_seconds: 1", "drain_delay_seconds: 2"),
        ),
        (
            "upstream_tls.ca_file",
            (
                format!(
                    "upstream: \"https://127.0.0.1:1\"\nupstream_tls: {{ca_file: \"{}/ca.pem\"}}",
                    dir.display()
                ),
                format!(
                    "upstream: \"https://127.0.0.1:1\"\nupstream_tls: {{ca_file: \"{}/cb.pem\"}}",
                    dir.display()
                ),
            ),
        ),
        (
            "upstream_tls.server_name",
            s(
                "upstream: \"https://127.0.0.1:1\"\nupstream_tls: {server_name: a.internal}",
                "upstream: \"https://127.0.0.1:1\"\nupstream_tls: {server_name: b.internal}",
            ),
        ),
        (
            "limits.header_timeout_seconds",
            s(
                "limits: {header_timeout_seconds: 1}",
                "limits: {header_timeout_seconds: 2}",
            ),
        ),
        (
            "limits.body_timeout_seconds",
            s(
                "limits: {body_timeout_seconds: 1}",
                "limits: {body_timeout_seconds: 2}",
            ),
        ),
        (
            "limits.keepalive_timeout_seconds",
            s(
                "limits: {keepalive_timeout_seconds: 0}",
                "limits: {keepalive_timeout_seconds: 2}",
            ),
        ),
        (
            "limits.send_timeout_seconds",
            s(
                "limits: {send_timeout_seconds: 1}",
                "limits: {send_timeout_seconds: 2}",
            ),
        ),
        (
            "limits.max_connections",
            s(
                "limits: {max_connections: 1}",
                "limits: {max_connections: 2}",
            ),
        ),
        (
            "tls.cert_file",
            (
                tls("a.pem", "k.pem", "ca.pem"),
                tls("b.pem", "k.pem", "ca.pem"),
            ),
        ),
        (
            "tls.key_file",
            (
                tls("a.pem", "k.pem", "ca.pem"),
                tls("a.pem", "l.pem", "ca.pem"),
            ),
        ),
        (
            "tls.client_ca_file",
            (
                tls("a.pem", "k.pem", "ca.pem"),
                tls("a.pem", "k.pem", "cb.pem"),
            ),
        ),
        (
            "http2.enabled",
            s("http2: {enabled: true}", "http2: {enabled: false}"),
        ),
        (
            "http2.max_concurrent_streams",
            s(
                "http2: {max_concurrent_streams: 1}",
                "http2: {max_concurrent_streams: 2}",
            ),
        ),
        (
            "http2.max_header_list_bytes",
            s(
                "http2: {max_header_list_bytes: 4096}",
                "http2: {max_header_list_bytes: 8192}",
            ),
        ),
        (
            "http2.max_pending_resets",
            s(
                "http2: {max_pending_resets: 1}",
                "http2: {max_pending_resets: 2}",
            ),
        ),
        (
            "listener.read_buffer_bytes",
            s(
                "listener: {read_buffer_bytes: 0}",
                "listener: {read_buffer_bytes: 4096}",
            ),
        ),
        (
            "listener.write_buffer_bytes",
            s(
                "listener: {write_buffer_bytes: 1460}",
                "listener: {write_buffer_bytes: 4096}",
            ),
        ),
        (
            "replay.redis_cluster_nodes",
            s(
                "replay: {store: redis, redis_cluster_nodes: [\"redis://a:6379\"]}",
                "replay: {store: redis, redis_cluster_nodes: [\"redis://b:6379\"]}",
            ),
        ),
        (
            "replay.redis_sentinels",
            s(
                "replay: {store: redis, redis_sentinels: [\"redis://s1:26379\"], redis_sentinel_master: m}",
                "replay: {store: redis, redis_sentinels: [\"redis://s2:26379\"], redis_sentinel_master: m}",
            ),
        ),
        (
            "replay.redis_sentinel_master",
            s(
                "replay: {store: redis, redis_sentinels: [\"redis://s1:26379\"], redis_sentinel_master: m}",
                "replay: {store: redis, redis_sentinels: [\"redis://s1:26379\"], redis_sentinel_master: n}",
            ),
        ),
        (
            "replay.redis_password_file",
            s(
                "replay: {store: redis, redis_url: \"redis://a\", redis_password_file: /a}",
                "replay: {store: redis, redis_url: \"redis://a\", redis_password_file: /b}",
            ),
        ),
        (
            "replay.redis_password_env",
            s(
                "replay: {store: redis, redis_url: \"redis://a\", redis_password_env: A}",
                "replay: {store: redis, redis_url: \"redis://a\", redis_password_env: B}",
            ),
        ),
        (
            "replay.redis_ca_file",
            s(
                "replay: {store: redis, redis_url: \"rediss://a\", redis_ca_file: /a}",
                "replay: {store: redis, redis_url: \"rediss://a\", redis_ca_file: /b}",
            ),
        ),
        (
            "replay.redis_client_cert_file",
            s(
                "replay: {store: redis, redis_url: \"rediss://a\", redis_client_cert_file: /a, redis_client_key_file: /k}",
                "replay: {store: redis, redis_url: \"rediss://a\", redis_client_cert_file: /b, redis_client_key_file: /k}",
            ),
        ),
        (
            "replay.redis_client_key_file",
            s(
                "replay: {store: redis, redis_url: \"rediss://a\", redis_client_cert_file: /c, redis_client_key_file: /a}",
                "replay: {store: redis, redis_url: \"rediss://a\", redis_client_cert_file: /c, redis_client_key_file: /b}",
            ),
        ),
        (
            "readiness.wait_for_key_directory",
            s(
                "readiness: {wait_for_key_directory: true}",
                "readiness: {wait_for_key_directory: false}",
            ),
        ),
        (
            "readiness.wait_for_replay_store",
            s(
                "readiness: {wait_for_replay_store: true}",
                "readiness: {wait_for_replay_store: false}",
            ),
        ),
        (
            "readiness.timeout_seconds",
            s(
                "readiness: {timeout_seconds: 1}",
                "readiness: {timeout_seconds: 2}",
            ),
        ),
        (
            "readiness.on_timeout",
            s(
                "readiness: {on_timeout: ready}",
                "readiness: {on_timeout: not_ready}",
            ),
        ),
    ];
    v.into_iter()
        .chain(more)
        .map(|(k, (a, b))| (k, a, b))
        .collect()
}

#[test]
fn every_key_reaches_the_typed_policy() {
    let pairs = pairs();
    let leaves: Vec<&str> = schema::leaves().map(|k| k.path).collect();
    for k in &leaves {
        assert!(
            pairs.iter().any(|(p, _, _)| p == k),
            "policy key `{k}` has no entry in this walk: add two documents that differ in it"
        );
    }
    for (path, a, b) in &pairs {
        assert!(
            leaves.contains(path),
            "`{path}` is not a key of schema::KEYS"
        );
        let pa = ok(&format!("{a}\n"));
        let pb = ok(&format!("{b}\n"));
        assert_ne!(
            pa.file, pb.file,
            "`{path}`: {a:?} and {b:?} parse the same: the key is ignored"
        );
    }
}

#[test]
fn restart_only_keys_are_the_documented_few() {
    let restart: Vec<&str> = schema::leaves()
        .filter(|k| k.apply == Apply::Restart)
        .map(|k| k.path)
        .collect();
    assert_eq!(
        restart,
        [
            "listen",
            "admin_listen",
            "threads",
            "key_directory.url",
            "key_directory.refresh_seconds",
            "replay.store",
            "replay.max_entries",
            "replay.redis_url",
            "replay.redis_cluster_nodes",
            "replay.redis_sentinels",
            "replay.redis_sentinel_master",
            "replay.redis_password_file",
            "replay.redis_password_env",
            "replay.redis_ca_file",
            "replay.redis_client_cert_file",
            "replay.redis_client_key_file",
            "listener.read_buffer_bytes",
            "listener.write_buffer_bytes",
            "readiness.wait_for_key_directory",
            "readiness.wait_for_replay_store",
            "readiness.timeout_seconds",
            "readiness.on_timeout",
        ]
    );
    // A reload that changes one of them is seen as pending.
    for (path, a, b) in pairs().iter().filter(|(p, _, _)| restart.contains(p)) {
        let pa = ok(&format!("{a}\n"));
        let pb = ok(&format!("{b}\n"));
        let pending = schema::restart_pending(&pa.file, &pb.file);
        assert!(pending.contains(path), "{path}: {pending:?}");
    }
    // TLS on or off needs a restart; its files and the HTTP/2 settings do not.
    let plain = ok("mode: hybrid\n");
    let (a, b) = pairs()
        .into_iter()
        .find(|(p, _, _)| *p == "tls.cert_file")
        .map(|(_, a, b)| (ok(&format!("{a}\n")), ok(&format!("{b}\n"))))
        .unwrap();
    assert_eq!(schema::restart_pending(&plain.file, &a.file), ["tls"]);
    assert_eq!(schema::restart_pending(&a.file, &plain.file), ["tls"]);
    assert!(schema::restart_pending(&a.file, &b.file).is_empty());
}

#[test]
fn a_redis_url_under_the_memory_store_is_refused_not_ignored() {
    let e = super::one_err("replay: {store: memory, redis_url: \"redis://a/0\"}\n");
    assert!(
        e.contains("replay.redis_url: redis_url is only used with store: redis"),
        "{e}"
    );
    assert!(ok("replay: {redis_url: null}\n").file.replay.backend == ReplayBackend::Memory);
}
