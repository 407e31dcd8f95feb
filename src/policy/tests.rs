//! Tests of the whole loader: exact error positions, several errors at once, YAML 1.2 `off`,
//! suggestions, defaults, route lookup, the overrides table, key files, the shipped examples.

use super::*;
use std::net::SocketAddr;

/// RFC 9421 B.1.4 test-key-ed25519, public half.
const PUB: &str = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

fn ok(text: &str) -> Policy {
    match parse(text, "p.yaml") {
        Ok(p) => p,
        Err(e) => panic!("expected a valid policy, got:\n{e}"),
    }
}

fn errs(text: &str) -> Vec<String> {
    match parse(text, "p.yaml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn one_err(text: &str) -> String {
    let e = errs(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

#[test]
fn empty_file_gets_every_spec_default() {
    for text in ["", "# nothing\n", "{}", "---\n"] {
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
        assert_eq!(
            (s.max_age_seconds, s.clock_skew_seconds, s.max_body_bytes),
            (300, 30, 10_485_760)
        );
        assert_eq!(
            (s.nonce, s.body_digest),
            (Requirement::Required, Requirement::Required)
        );
        assert_eq!(s.required_components, ["@method", "@authority", "@path"]);
        assert_eq!(
            (&s.label, &s.tag, &s.public_authority, s.public_scheme),
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
fn type_errors_point_at_the_value() {
    let cases = [
        (
            "signature:\n  max_age_seconds: \"abc\"\n",
            "p.yaml:2:20: signature.max_age_seconds: expected an integer in 1..=604800, got string \"abc\"",
        ),
        (
            "signature:\n  max_age_seconds: 0\n",
            "p.yaml:2:20: signature.max_age_seconds: 0 is out of range 1..=604800",
        ),
        (
            "canary:\n  percent: 150\n",
            "p.yaml:2:12: canary.percent: 150 is out of range 0..=100",
        ),
        (
            "canary:\n  percent: -1\n",
            "p.yaml:2:12: canary.percent: -1 is out of range 0..=100",
        ),
        (
            "trusted_proxies: [10.0.0.0/8, 10.0.0.0/40]\n",
            "p.yaml:1:31: trusted_proxies[1]: \"10.0.0.0/40\" is not an IP address or CIDR (e.g. 10.1.0.0/16)",
        ),
        (
            "listen: localhost:8080\n",
            "p.yaml:1:9: listen: \"localhost:8080\" is not an IP:PORT address (e.g. \"0.0.0.0:8080\" or \"[::]:8080\"; host names are not resolved here)",
        ),
        (
            "listen: 8080\n",
            "p.yaml:1:9: listen: expected a string, got integer 8080 (quote it to make it a string)",
        ),
        (
            "dry_run: yes\n",
            "p.yaml:1:10: dry_run: expected true or false, got \"yes\" (YAML 1.2 has only true and false)",
        ),
        (
            "upstream: \"ftp://x:1\"\n",
            "p.yaml:1:11: upstream: \"ftp://x:1\": unsupported scheme; expected \"host:port\", \"http://host:port\" or \"https://host:port\"",
        ),
        (
            "signature:\n  nonce: maybe\n",
            "p.yaml:2:10: signature.nonce: unknown value \"maybe\": expected one of required | optional | off",
        ),
        (
            "signature:\n  required_components: [\"@method\", \"@status\"]\n",
            "p.yaml:2:36: signature.required_components[1]: @status is a response component; a request signature cannot cover it",
        ),
        (
            "signature:\n  required_components: [Content-Type]\n",
            "p.yaml:2:25: signature.required_components[0]: field names in component identifiers are lowercase: write \"content-type\"",
        ),
        (
            "signature:\n  label: Sig1\n",
            "p.yaml:2:10: signature.label: \"Sig1\" is not a valid signature label (lowercase letters, digits, _ - . *; starting with a letter or *)",
        ),
        (
            "identity:\n  client_id_header: \"bad header\"\n",
            "p.yaml:2:21: identity.client_id_header: \"bad header\" is not a valid HTTP header name",
        ),
        (
            "canary:\n  sticky_on: [\"cookie:x\"]\n",
            "p.yaml:2:15: canary.sticky_on[0]: \"cookie:x\": expected \"header:NAME\" or \"ip\"",
        ),
        (
            "canary:\n  always_require: [\"ip:300.0.0.0/8\"]\n",
            "p.yaml:2:20: canary.always_require[0]: \"300.0.0.0/8\" is not an IP address or CIDR (e.g. 10.1.0.0/16)",
        ),
        (
            "key_directory:\n  url: \"ftp://x\"\n",
            "p.yaml:2:8: key_directory.url: \"ftp://x\" is not an http:// or https:// URL",
        ),
        (
            "key_directory:\n  url: \"http://x/k.jwks\"\n  refresh_seconds: 0\n",
            "p.yaml:3:20: key_directory.refresh_seconds: 0 is out of range 1..=86400",
        ),
        (
            "replay:\n  store: redis\n",
            "p.yaml:2:10: replay.redis_url: store: redis needs redis_url (redis://host:port/db)",
        ),
        (
            "replay:\n  store: memcached\n",
            "p.yaml:2:10: replay.store: unknown value \"memcached\": expected one of memory | redis",
        ),
        (
            "replay:\n  on_store_error: allw\n",
            "p.yaml:2:19: replay.on_store_error: unknown value \"allw\": expected one of reject | allow; did you mean `allow`?",
        ),
        (
            "routes:\n  - { path_prefix: api, mode: off }\n",
            "p.yaml:2:20: routes[0].path_prefix: path_prefix must start with `/`, got \"api\"",
        ),
        (
            "routes:\n  - { path_prefix: /a }\n",
            "p.yaml:2:5: routes[0]: missing `mode` (off | hybrid | required)",
        ),
        (
            "routes:\n  - { path_prefix: /a, mode: off, methods: [post] }\n",
            "p.yaml:2:45: routes[0].methods[0]: methods are case-sensitive: write \"POST\"",
        ),
        (
            "routes:\n  - { path_prefix: /a, mode: off, methods: [] }\n",
            "p.yaml:2:44: routes[0].methods: an empty methods list matches nothing; omit `methods` to match every method",
        ),
        (
            "routes: {a: 1}\n",
            "p.yaml:1:9: routes: expected a list, got a mapping",
        ),
        (
            "listen: \"127.0.0.1:9000\"\nadmin_listen: \"127.0.0.1:9000\"\n",
            "p.yaml:2:15: admin_listen: admin_listen and listen are the same address 127.0.0.1:9000",
        ),
        (
            "threads: 1.5\n",
            "p.yaml:1:10: threads: expected an integer in 0..=1024, got number 1.5",
        ),
        (
            "keys:\n  - key_id: k\n    public_key: \"abc\"\n",
            "p.yaml:3:17: keys[0].public_key: not a usable Ed25519 public key: ",
        ),
        (
            "- a\n- b\n",
            "p.yaml:1:1: (root): expected a mapping, got a list",
        ),
        ("mode: [off\n", "p.yaml:2:1: (root): YAML syntax error: "),
    ];
    for (text, want) in cases {
        let got = one_err(text);
        assert!(
            got.starts_with(want),
            "for {text:?}\n got: {got}\nwant: {want}"
        );
    }
}

#[test]
fn every_error_is_reported_at_once_in_position_order() {
    let text = "\
mode: false
dry_run: 1
signature:
  max_age_secs: 5
  nonce: sometimes
routes:
  - { path_prefix: /a, mode: hybird }
canary:
  percent: 101
trusted_proxies: [\"nope\"]
";
    let e = errs(text);
    let where_: Vec<&str> = e.iter().map(|l| l.split(": ").next().unwrap()).collect();
    assert_eq!(
        where_,
        [
            "p.yaml:1:7",
            "p.yaml:2:10",
            "p.yaml:4:3",
            "p.yaml:5:10",
            "p.yaml:7:30",
            "p.yaml:9:12",
            "p.yaml:10:19"
        ]
    );
    let all = parse(text, "p.yaml").unwrap_err().to_string();
    assert_eq!(all.lines().count(), 7);
    assert!(
        all.contains("routes[0].mode: unknown value \"hybird\""),
        "{all}"
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
    assert_eq!(f.signature.nonce, Requirement::Optional);
    assert_eq!(p.keys.len(), 2);
    assert_eq!(
        (
            p.keys[0].status,
            p.keys[0].client_id.as_str(),
            p.keys[0].pos
        ),
        (KeyStatus::Revoked, "web", Pos { line: 13, col: 5 })
    );
    assert_eq!(
        (p.keys[1].client_id.as_str(), p.keys[1].status),
        ("k2", KeyStatus::Active)
    );
    assert_eq!(p.key_records()[0].source, KeySource::Inline);
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
        ReplayBackend::Redis {
            url: "redis://127.0.0.1:6379/0".into()
        }
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

/// Modes of (default, /off, /hybrid, /required, /dry) under `o`.
fn modes(o: Overrides) -> (Vec<Mode>, bool, bool, u8) {
    let p = ok(
        "mode: required\ncanary: {percent: 5}\nroutes:\n  - { path_prefix: /off, mode: off }\n  - { path_prefix: /hybrid, mode: hybrid }\n  - { path_prefix: /required, mode: required }\n  - { path_prefix: /dry, mode: required, dry_run: true }\n",
    );
    let e = p.effective(&o);
    let m = |path: &str| e.route_for(&http::Method::GET, path).mode;
    let v = vec![m("/other"), m("/off"), m("/hybrid"), m("/required")];
    (
        v,
        e.route_for(&http::Method::GET, "/dry").dry_run,
        e.route_for(&http::Method::GET, "/required").dry_run,
        e.canary_percent,
    )
}

#[test]
fn overrides_table_every_row() {
    use Mode::*;
    let none = Overrides::default();
    assert_eq!(
        modes(none),
        (vec![Required, Off, Hybrid, Required], true, false, 5)
    );
    // SIGNATURE_AUTH_MODE replaces mode and caps routes.
    let o = |m| Overrides {
        mode: Some(m),
        ..none
    };
    assert_eq!(modes(o(Hybrid)).0, [Hybrid, Off, Hybrid, Hybrid]);
    assert_eq!(modes(o(Off)).0, [Off, Off, Off, Off]);
    assert_eq!(modes(o(Required)).0, [Required, Off, Hybrid, Required]);
    // SIGNATURE_AUTH_REQUIRED=false caps every route (and the default) at hybrid; true adds nothing.
    assert_eq!(
        modes(Overrides {
            required: Some(false),
            ..none
        })
        .0,
        [Hybrid, Off, Hybrid, Hybrid]
    );
    assert_eq!(
        modes(Overrides {
            required: Some(true),
            ..none
        })
        .0,
        [Required, Off, Hybrid, Required]
    );
    // Both: the lower cap wins.
    assert_eq!(
        modes(Overrides {
            mode: Some(Off),
            required: Some(false),
            ..none
        })
        .0,
        [Off, Off, Off, Off]
    );
    assert_eq!(
        modes(Overrides {
            mode: Some(Required),
            required: Some(false),
            ..none
        })
        .0,
        [Hybrid, Off, Hybrid, Hybrid]
    );
    // SIGNATURE_AUTH_CANARY_PERCENT replaces canary.percent.
    assert_eq!(
        modes(Overrides {
            canary_percent: Some(50),
            ..none
        })
        .3,
        50
    );
    // SIGNATURE_AUTH_DRY_RUN: true puts everything in dry-run; false keeps a route's own true.
    assert!(
        modes(Overrides {
            dry_run: Some(true),
            ..none
        })
        .1
    );
    assert!(
        modes(Overrides {
            dry_run: Some(true),
            ..none
        })
        .2
    );
    assert!(
        modes(Overrides {
            dry_run: Some(false),
            ..none
        })
        .1
    );
    assert!(
        !modes(Overrides {
            dry_run: Some(false),
            ..none
        })
        .2
    );
    let p = ok("dry_run: true\n");
    assert!(
        !p.effective(&Overrides {
            dry_run: Some(false),
            ..none
        })
        .dry_run
    );
}

#[test]
fn override_values_parse_trimmed_with_clear_errors() {
    assert_eq!(parse_bool_value(" false\n"), Ok(false));
    assert_eq!(parse_bool_value("TRUE"), Ok(true));
    assert_eq!(
        parse_bool_value("yes"),
        Err("\"yes\" is not a boolean: expected true or false".into())
    );
    assert_eq!(parse_percent_value("25\n"), Ok(25));
    assert!(
        parse_percent_value("101").is_err()
            && parse_percent_value("-1").is_err()
            && parse_percent_value("25%").is_err()
    );
    assert_eq!(parse_mode_value("hybrid\n"), Ok(Mode::Hybrid));
    assert_eq!(
        parse_mode_value("strict"),
        Err("\"strict\" is not a mode: expected off, hybrid or required".into())
    );
}

#[test]
fn overrides_from_env_and_dir_files_win() {
    let env = overrides_from_env([
        ("SIGNATURE_AUTH_MODE".to_string(), "required".to_string()),
        ("SIGNATURE_AUTH_DRY_RUN".to_string(), "true".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ])
    .unwrap();
    assert_eq!(env.settings.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("auth_mode"), "hybrid\n").unwrap();
    std::fs::write(dir.path().join("SIGNATURE_AUTH_REQUIRED"), "false").unwrap();
    let files = overrides_from_dir(dir.path()).unwrap();
    assert_eq!(
        files.settings[0].origin,
        OverrideOrigin::File(dir.path().join("auth_mode"))
    );
    let merged = files.overrides.merged_over(env.overrides);
    assert_eq!(
        merged,
        Overrides {
            mode: Some(Mode::Hybrid),
            required: Some(false),
            canary_percent: None,
            dry_run: Some(true)
        }
    );
    std::fs::write(dir.path().join("SIGNATURE_AUTH_CANARY_PERCENT"), "150").unwrap();
    std::fs::write(dir.path().join("SIGNATURE_AUTH_MODE"), "required").unwrap();
    let e = overrides_from_dir(dir.path()).unwrap_err();
    let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].ends_with("auth_mode:1:1: auth_mode: SIGNATURE_AUTH_MODE and auth_mode are both set, to different modes"), "{}", lines[0]);
    assert!(lines[1].ends_with(":1:1: SIGNATURE_AUTH_CANARY_PERCENT: \"150\" is not a percentage: expected a whole number 0..100"), "{}", lines[1]);
}

#[test]
fn key_files_expand_and_report_their_own_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(
        keys.join("a.yaml"),
        format!("- {{ key_id: fa, client_id: a, public_key: \"{PUB}\" }}\n"),
    )
    .unwrap();
    std::fs::write(
        keys.join("b.yaml"),
        format!("keys:\n  - key_id: fb\n    public_key: \"{PUB}\"\n    status: revoked\n"),
    )
    .unwrap();
    std::fs::write(keys.join("notes.txt"), "not yaml: [").unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "key_files: [\"keys/*.yaml\"]\nkeys:\n  - {{ key_id: inline, public_key: \"{PUB}\" }}\n"
        ),
    )
    .unwrap();
    let p = load(&policy).unwrap();
    let ids: Vec<_> = p
        .keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.status))
        .collect();
    assert_eq!(
        ids,
        [
            ("inline", KeyStatus::Active),
            ("fa", KeyStatus::Active),
            ("fb", KeyStatus::Revoked)
        ]
    );
    assert_eq!(p.keys[2].source, KeySource::File(keys.join("b.yaml")));
    assert_eq!(p.key_file_paths, [keys.join("a.yaml"), keys.join("b.yaml")]);
    assert_eq!(
        crate::keys::KeySet::new(p.key_records()).map(|s| s.len()),
        Ok(3)
    );

    // A broken key file: its own name and line, and the policy's own errors too.
    std::fs::write(
        keys.join("c.yaml"),
        "- key_id: fc\n  public_key: \"nope\"\n  stauts: active\n",
    )
    .unwrap();
    std::fs::write(
        keys.join("d.yaml"),
        format!("- {{ key_id: fa, public_key: \"{PUB}\" }}\n"),
    )
    .unwrap();
    std::fs::write(
        &policy,
        "mode: of\nkey_files: [\"keys/*.yaml\", \"missing.yaml\"]\n",
    )
    .unwrap();
    let e: Vec<String> = load(&policy)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let pol = policy.display().to_string();
    let c = keys.join("c.yaml").display().to_string();
    let dd = keys.join("d.yaml").display().to_string();
    let a = keys.join("a.yaml").display().to_string();
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(
        e[0].starts_with(&format!("{pol}:1:7: mode: unknown value \"of\"")),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with(&format!("{pol}:2:28: key_files[1]: ")),
        "{}",
        e[1]
    );
    assert!(
        e[2].starts_with(&format!(
            "{c}:2:15: keys[0].public_key: not a usable Ed25519 public key"
        )),
        "{}",
        e[2]
    );
    assert_eq!(
        e[3],
        format!("{c}:3:3: keys[0].stauts: unknown key `stauts`; did you mean `status`?")
    );
    assert_eq!(
        e[4],
        format!("{dd}:1:3: keys: duplicate key_id \"fa\" (first defined at {a}:1:3)")
    );
}

#[test]
fn shipped_example_policies_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let full = load(&dir.join("policy.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(full.file.mode, Mode::Hybrid);
    assert_eq!(
        full.route_for(&http::Method::GET, "/health").mode,
        Mode::Off
    );
    assert_eq!(
        full.route_for(&http::Method::POST, "/api/orders").mode,
        Mode::Required
    );
    assert_eq!(
        full.route_for(&http::Method::GET, "/api/orders").mode,
        Mode::Hybrid
    );
    // Every key of SPEC §3 is written out, so the example documents them all: the file's values
    // are the defaults wherever the SPEC gives one.
    let mut spec_defaults = ok("").file;
    spec_defaults.routes = full.file.routes.clone();
    spec_defaults.keys = full.file.keys.clone();
    spec_defaults.key_files = full.file.key_files.clone();
    spec_defaults.key_directory = full.file.key_directory.clone();
    assert_eq!(full.file, spec_defaults);
    let minimal = load(&dir.join("minimal.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(minimal.file.upstream.port, 8081);
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
