//! Tests of the whole loader: defaults, exact error positions, several errors at once, YAML 1.2
//! `off`, suggestions, route lookup; the overrides and key files have their own files.

mod errors;
mod live;
mod replay;
mod schema;

use super::*;
use std::net::SocketAddr;

/// RFC 9421 B.1.4 test-key-ed25519, public half.
pub(super) const PUB: &str = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

pub(super) fn ok(text: &str) -> Policy {
    match parse(text, "p.yaml") {
        Ok(p) => p,
        Err(e) => panic!("expected a valid policy, got:\n{e}"),
    }
}

pub(super) fn errs(text: &str) -> Vec<String> {
    match parse(text, "p.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

pub(super) fn one_err(text: &str) -> String {
    let e = errs(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

#[test]
fn empty_or_mapping_less_documents_are_refused() {
    for text in [
        "",
        "# nothing\n",
        "---\n",
        "--- # only a marker\n...\n",
        "null\n",
        "~\n",
    ] {
        assert_eq!(
            one_err(text),
            "p.yaml:1:1: (root): the policy is empty (a failed render or a truncated file?); write at least `mode:` and `upstream:`",
            "{text:?}"
        );
    }
    assert!(one_err("{}\n").starts_with("p.yaml:1:1: (root): the policy is an empty mapping"));
    assert!(one_err("\n\n  - mode: required\n").starts_with(
        "p.yaml:3:3: (root): expected a mapping, got a list: a policy is a mapping of keys"
    ));
    assert!(
        one_err("mode\n").starts_with(
            "p.yaml:1:1: (root): expected a mapping, got string \"mode\": a policy is"
        )
    );
}

#[test]
fn a_one_key_file_gets_every_spec_default() {
    for text in ["mode: hybrid\n", "---\ndry_run: false\n", "{threads: 0}"] {
        let p = ok(text);
        let f = &p.file;
        assert_eq!(f.mode, Mode::Hybrid);
        assert!(!f.dry_run);
        assert_eq!(f.listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(f.upstream.to_string(), "http://127.0.0.1:8081");
        assert_eq!(
            f.admin_listen,
            "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
        );
        assert_eq!((f.threads, f.shutdown_grace_seconds), (0, 10));
        let s = &f.signature;
        let v = &s.verify;
        assert_eq!(
            (v.max_age_seconds, v.clock_skew_seconds, s.max_body_bytes),
            (300, 30, 10_485_760)
        );
        assert_eq!(
            (v.nonce, v.body_digest),
            (Requirement::Required, Requirement::Required)
        );
        let ids: Vec<&str> = v
            .required_components
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["\"@method\"", "\"@authority\"", "\"@path\""]);
        assert_eq!(
            (&v.label, &v.tag, &s.public_authority, s.public_scheme),
            (&None, &None, &None, None)
        );
        assert!(
            p.keys.is_empty()
                && f.key_files.is_empty()
                && f.key_directory.is_none()
                && f.routes.is_empty()
        );
        assert_eq!(f.canary.percent, 0);
        assert_eq!(
            f.canary.sticky_on,
            [StickyOn::Header(http::header::AUTHORIZATION), StickyOn::Ip]
        );
        assert!(f.canary.always_require.is_empty() && f.canary.never_require.is_empty());
        assert_eq!(f.identity.client_id_header, "x-datafold-client-id");
        assert_eq!(f.identity.key_id_header, "x-datafold-key-id");
        assert_eq!(f.identity.auth_method_header, "x-datafold-auth-method");
        assert!(f.identity.strip_inbound.is_empty() && f.identity.forward_signature_headers);
        assert!(f.trusted_proxies.is_empty());
        assert_eq!(f.replay.backend, ReplayBackend::Memory);
        assert_eq!(
            (f.replay.max_entries, f.replay.on_store_error),
            (1_000_000, OnStoreError::Reject)
        );
        assert_eq!(f.failure_rate_limit.per_minute, 0);
        assert_eq!(p.sha256, sha256_hex(text.as_bytes()));
    }
}

#[test]
fn sha256_is_of_the_raw_bytes() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn mode_off_is_off_and_mode_false_is_an_error_with_a_hint() {
    assert_eq!(ok("mode: off\n").file.mode, Mode::Off);
    assert_eq!(
        ok("routes:\n  - { path_prefix: /h, mode: off }\n")
            .file
            .routes[0]
            .mode,
        Mode::Off
    );
    assert_eq!(ok("mode: 'required'\n").file.mode, Mode::Required);
    assert_eq!(
        one_err("mode: false\n"),
        "p.yaml:1:7: mode: expected one of off | hybrid | required, got boolean false; to turn checking off write `off` (YAML 1.2 keeps it a string)"
    );
    assert_eq!(
        one_err("mode: strict\n"),
        "p.yaml:1:7: mode: unknown value \"strict\": expected one of off | hybrid | required"
    );
    assert_eq!(
        one_err("mode: requird\n"),
        "p.yaml:1:7: mode: unknown value \"requird\": expected one of off | hybrid | required; did you mean `required`?"
    );
}

#[test]
fn unknown_keys_name_their_path_and_the_closest_key() {
    assert_eq!(
        one_err("mdoe: off\n"),
        "p.yaml:1:1: mdoe: unknown key `mdoe`; did you mean `mode`?"
    );
    assert_eq!(
        one_err("signature:\n  max_age_secs: 5\n"),
        "p.yaml:2:3: signature.max_age_secs: unknown key `max_age_secs`; did you mean `max_age_seconds`?"
    );
    assert_eq!(
        one_err(
            "routes:\n  - { path_prefix: /a, mode: off }\n  - path_prefix: /b\n    mode: off\n    mehtods: [GET]\n"
        ),
        "p.yaml:5:5: routes[1].mehtods: unknown key `mehtods`; did you mean `methods`?"
    );
    let e = one_err("zebra: 1\n");
    assert!(
        e.starts_with("p.yaml:1:1: zebra: unknown key `zebra`; known keys here: mode, dry_run,"),
        "{e}"
    );
    assert_eq!(
        one_err("mode: off\nmode: hybrid\n"),
        "p.yaml:2:1: mode: duplicate key `mode`"
    );
}

#[test]
fn full_sections_parse_into_types() {
    let p = ok(&format!(
        "\
mode: required
dry_run: true
upstream: \"https://backend.internal:8443\"
threads: 4
signature:
  required_components: [\"@target-uri\", content-digest]
  label: sig1
  tag: web-bot
  public_authority: API.Example.com
  public_scheme: https
  nonce: optional
keys:
  - {{ key_id: k1, client_id: web, public_key: \"{PUB}\", status: revoked }}
  - {{ key_id: k2, public_key: \"{PUB}\" }}
key_directory: {{ url: \"http://datafold:8080/api/auth/keys.jwks\" }}
canary:
  percent: 25
  sticky_on: [\"header:X-Client\", ip]
  always_require: [\"header:x-client-id=partner-a\", \"ip:10.1.0.0/16\"]
  never_require: [\"client:legacy-batch\"]
identity:
  strip_inbound: [X-Internal-User]
  forward_signature_headers: false
trusted_proxies: [10.0.0.0/8, \"::1\"]
replay: {{ store: redis, redis_url: \"redis://127.0.0.1:6379/0\", on_store_error: allow }}
failure_rate_limit: {{ per_minute: 20 }}
"
    ));
    let f = &p.file;
    assert_eq!((f.mode, f.dry_run, f.threads), (Mode::Required, true, 4));
    assert_eq!(
        (f.upstream.tls, f.upstream.sni.as_str(), f.upstream.port),
        (true, "backend.internal", 8443)
    );
    assert_eq!(
        f.signature.public_authority.as_deref(),
        Some("api.example.com")
    );
    assert_eq!(f.signature.public_scheme, Some(Scheme::Https));
    assert_eq!(f.signature.verify.nonce, Requirement::Optional);
    // Parsed once, into the verifier's own components: what a request is checked against.
    let required = &f.signature.verify.required_components;
    assert_eq!(
        required.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["\"@target-uri\"", "\"content-digest\""]
    );
    assert!(matches!(
        required[0].name,
        crate::signature::ComponentName::Derived(crate::signature::Derived::TargetUri)
    ));
    assert_eq!(p.keys.len(), 2);
    let k1 = p.keys.get("k1").unwrap();
    assert_eq!(
        (k1.status, k1.client_id, k1.pos),
        (
            KeyStatus::Revoked,
            "web",
            Some(crate::keys::KeyPos { line: 13, col: 5 })
        )
    );
    assert_eq!(f.keys[0].pos, Pos { line: 13, col: 5 });
    let k2 = p.keys.get("k2").unwrap();
    assert_eq!((k2.client_id, k2.status), ("k2", KeyStatus::Active));
    assert_eq!(k1.source, &KeySource::Inline);
    assert_eq!(
        f.key_directory.as_ref().map(|k| k.refresh_seconds),
        Some(300)
    );
    assert_eq!(
        f.canary.sticky_on[0],
        StickyOn::Header(http::HeaderName::from_static("x-client"))
    );
    assert_eq!(f.canary.always_require[1].to_string(), "ip:10.1.0.0/16");
    assert_eq!(
        f.canary.never_require,
        [CallerMatcher::Client("legacy-batch".into())]
    );
    assert_eq!(
        f.identity.strip_inbound,
        [http::HeaderName::from_static("x-internal-user")]
    );
    assert_eq!(f.trusted_proxies.len(), 2);
    assert_eq!(
        f.replay.backend,
        ReplayBackend::Redis(crate::policy::RedisTarget {
            topology: crate::policy::RedisTopology::Standalone {
                url: "redis://127.0.0.1:6379/0".into()
            },
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        })
    );
    assert_eq!(f.failure_rate_limit.per_minute, 20);
}

#[test]
fn duplicate_key_ids_are_errors() {
    let text = format!(
        "keys:\n  - {{ key_id: a, public_key: \"{PUB}\" }}\n  - {{ key_id: a, public_key: \"{PUB}\" }}\n"
    );
    assert_eq!(
        one_err(&text),
        "p.yaml:3:5: keys: duplicate key_id \"a\" (first defined at p.yaml:2:5)"
    );
}

#[test]
fn route_for_uses_the_file_as_written() {
    let p = ok(
        "mode: hybrid\nroutes:\n  - { path_prefix: /health, mode: off }\n  - { path_prefix: /api/, methods: [POST, PUT, DELETE], mode: required, dry_run: true }\n",
    );
    let r = p.route_for(&http::Method::POST, "/api/orders");
    assert_eq!(
        (r.index, r.mode, r.dry_run),
        (Some(1), Mode::Required, true)
    );
    let r = p.route_for(&http::Method::GET, "/api/orders");
    assert_eq!((r.index, r.mode, r.dry_run), (None, Mode::Hybrid, false));
    assert_eq!(p.route_for(&http::Method::GET, "/health").mode, Mode::Off);
}

mod never_panics {
    use super::super::parse;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn on_arbitrary_text(text in any::<String>()) {
            let _ = parse(&text, "fuzz.yaml");
        }

        #[test]
        fn on_yaml_shaped_text(text in "[a-z_@/:.0-9 \\-\\[\\]{},\"'&*!|>#?\n]{0,300}") {
            let _ = parse(&text, "fuzz.yaml");
        }

        #[test]
        fn on_policy_shaped_text(
            parts in proptest::collection::vec(prop_oneof![
                Just("mode: "), Just("routes:\n  - "), Just("{ path_prefix: /a, mode: off }"), Just("signature:\n  "),
                Just("max_age_seconds: "), Just("canary:\n  percent: "), Just("150"), Just("off"), Just("\n"),
                Just("keys:\n  - "), Just("key_id: a"), Just("&x "), Just("*x"), Just("[\""), Just("trusted_proxies: "),
                Just("listen: "), Just("\"1.2.3.4:5\""), Just("- "), Just("  "), Just(": "),
            ], 0..40)
        ) {
            let _ = parse(&parts.concat(), "fuzz.yaml");
        }
    }
}

#[test]
fn policy_can_be_shared_across_threads_and_bad_bytes_are_errors() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Policy>();
    shareable::<EffectivePolicy>();
    let e = parse_bytes(
        b"mode: off\nlisten: \"\xff\"\n",
        "p.yaml",
        Files::Read(None),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "p.yaml:2:1: (root): the policy file is not valid UTF-8"
    );
    let e = errs("mode: off\n\tdry_run: true\n");
    // saphyr places this one at the scalar before the tab; the message still says what is wrong.
    assert!(
        e[0].contains("YAML syntax error") && e[0].contains("tab"),
        "{e:?}"
    );
}

#[test]
fn route_matching_and_override_headers_parse_with_defaults() {
    let p = ok("mode: hybrid");
    assert!(p.file.route_matching.case_insensitive);
    assert_eq!(
        p.file.identity.strip_override_headers,
        DEFAULT_OVERRIDE_HEADERS.map(http::HeaderName::from_static)
    );
    assert_eq!(
        p.route_for(&http::Method::GET, "/x").mode,
        p.effective(&Overrides::default())
            .route_for(&http::Method::GET, "/x")
            .mode
    );
    let p = ok("route_matching: { case_insensitive: false }
routes:
  - { path_prefix: /admin, mode: required }
identity:
  strip_override_headers: [X-Original-URL, x_custom, X-Original-URL]
");
    assert!(!p.file.route_matching.case_insensitive);
    let e = p.effective(&Overrides::default());
    assert!(!e.route_matching.case_insensitive);
    assert_eq!(e.route_for(&http::Method::GET, "/ADMIN").mode, Mode::Hybrid);
    assert_eq!(
        e.route_for(&http::Method::GET, "/health/..;/admin").mode,
        Mode::Required
    );
    assert_eq!(
        p.file.identity.strip_override_headers,
        [
            http::HeaderName::from_static("x-original-url"),
            http::HeaderName::from_static("x_custom")
        ]
    );
    assert!(
        ok("identity: { strip_override_headers: [] }")
            .file
            .identity
            .strip_override_headers
            .is_empty()
    );
    let e = one_err("route_matching: { case_insensitive: maybe }");
    assert!(
        e.starts_with("p.yaml:1:37: route_matching.case_insensitive:"),
        "{e}"
    );
    let e = one_err("route_matching: { case_sensitive: true }");
    assert!(e.contains("unknown key `case_sensitive`"), "{e}");
    let e = one_err("identity: { strip_override_headers: [\"bad header\"] }");
    assert!(e.contains("identity.strip_override_headers[0]"), "{e}");
}
