//! The overrides table, override values and sources, key files, and the shipped examples.

use super::super::*;
use super::{PUB, ok};

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
        modes(none.clone()),
        (vec![Required, Off, Hybrid, Required], true, false, 5)
    );
    // SIGNATURE_AUTH_MODE replaces mode and caps routes.
    let o = |m| Overrides {
        mode: Some(m),
        ..none.clone()
    };
    assert_eq!(modes(o(Hybrid)).0, [Hybrid, Off, Hybrid, Hybrid]);
    assert_eq!(modes(o(Off)).0, [Off, Off, Off, Off]);
    assert_eq!(modes(o(Required)).0, [Required, Off, Hybrid, Required]);
    // SIGNATURE_AUTH_REQUIRED=false caps every route (and the default) at hybrid; true adds nothing.
    assert_eq!(
        modes(Overrides {
            required: Some(false),
            ..none.clone()
        })
        .0,
        [Hybrid, Off, Hybrid, Hybrid]
    );
    assert_eq!(
        modes(Overrides {
            required: Some(true),
            ..none.clone()
        })
        .0,
        [Required, Off, Hybrid, Required]
    );
    // Both: the lower cap wins.
    assert_eq!(
        modes(Overrides {
            mode: Some(Off),
            required: Some(false),
            ..none.clone()
        })
        .0,
        [Off, Off, Off, Off]
    );
    assert_eq!(
        modes(Overrides {
            mode: Some(Required),
            required: Some(false),
            ..none.clone()
        })
        .0,
        [Hybrid, Off, Hybrid, Hybrid]
    );
    // SIGNATURE_AUTH_CANARY_PERCENT replaces canary.percent.
    assert_eq!(
        modes(Overrides {
            canary_percent: Some(50),
            ..none.clone()
        })
        .3,
        50
    );
    // SIGNATURE_AUTH_DRY_RUN: true puts everything in dry-run; false keeps a route's own true.
    assert!(
        modes(Overrides {
            dry_run: Some(true),
            ..none.clone()
        })
        .1
    );
    assert!(
        modes(Overrides {
            dry_run: Some(true),
            ..none.clone()
        })
        .2
    );
    assert!(
        modes(Overrides {
            dry_run: Some(false),
            ..none.clone()
        })
        .1
    );
    assert!(
        !modes(Overrides {
            dry_run: Some(false),
            ..none.clone()
        })
        .2
    );
    let p = ok("dry_run: true\n");
    assert!(
        !p.effective(&Overrides {
            dry_run: Some(false),
            ..none.clone()
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
    let merged = FoundOverrides::layered(&env, files).overrides;
    assert_eq!(
        merged,
        Overrides {
            mode: Some(Mode::Hybrid),
            required: Some(false),
            canary_percent: None,
            dry_run: Some(true),
            force_users: vec![],
            mode_keeps_canary: false,
        }
    );
    std::fs::write(dir.path().join("SIGNATURE_AUTH_CANARY_PERCENT"), "150").unwrap();
    std::fs::write(dir.path().join("SIGNATURE_AUTH_MODE"), "required").unwrap();
    let e = overrides_from_dir(dir.path()).unwrap_err();
    let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].ends_with("auth_mode:1:1: auth_mode: SIGNATURE_AUTH_MODE=required and auth_mode=hybrid are both set and disagree (both set the mode); remove one"), "{}", lines[0]);
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
    let ids: Vec<_> = p.keys.iter().map(|k| (k.key_id, k.status)).collect();
    assert_eq!(
        ids,
        [
            ("inline", KeyStatus::Active),
            ("fa", KeyStatus::Active),
            ("fb", KeyStatus::Revoked)
        ]
    );
    assert_eq!(
        p.keys.get("fb").unwrap().source,
        &KeySource::File(keys.join("b.yaml"))
    );
    assert_eq!(p.key_file_paths, [keys.join("a.yaml"), keys.join("b.yaml")]);
    assert_eq!(crate::keys::KeySet::from_index(p.keys.clone()).len(), 3);

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
    // config/policy.yaml writes keys out with their defaults (reference §3.2): wherever the file
    // gives a value, it is the default.
    let mut spec_defaults = ok("mode: hybrid\n").file;
    spec_defaults.routes = full.file.routes.clone();
    spec_defaults.keys = full.file.keys.clone();
    spec_defaults.key_files = full.file.key_files.clone();
    spec_defaults.key_directory = full.file.key_directory.clone();
    assert_eq!(full.file, spec_defaults);
    let minimal = load(&dir.join("minimal.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(minimal.file.upstream.port, 8081);
}

fn env(pairs: &[(&str, &str)]) -> Result<FoundOverrides, Vec<String>> {
    overrides_from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .map_err(|e| e.iter().map(ToString::to_string).collect())
}

#[test]
fn the_migration_guides_flags_mean_our_settings() {
    let o = |pairs: &[(&str, &str)]| env(pairs).unwrap().overrides;
    assert_eq!(o(&[("AUTH_MODE", "legacy")]).mode, Some(Mode::Off));
    assert_eq!(o(&[("AUTH_MODE", " Hybrid\n")]).mode, Some(Mode::Hybrid));
    assert_eq!(o(&[("AUTH_MODE", "signature")]).mode, Some(Mode::Required));
    assert_eq!(
        o(&[("SIGNATURE_AUTH_ENABLED", "false")]).mode,
        Some(Mode::Off)
    );
    // true: checking on, at the policy's own mode.
    assert_eq!(
        o(&[("SIGNATURE_AUTH_ENABLED", "true")]),
        Overrides::default()
    );
    assert_eq!(
        o(&[("SIGNATURE_AUTH_PERCENTAGE", "20")]).canary_percent,
        Some(20)
    );
    assert_eq!(
        o(&[("FORCE_SIGNATURE_USERS", " alice, bob,,alice ")]).force_users,
        ["alice", "bob"]
    );
    // Same validation as ours, with the name of the flag that was wrong.
    let e = env(&[
        ("AUTH_MODE", "required"),
        ("SIGNATURE_AUTH_ENABLED", "yes"),
        ("SIGNATURE_AUTH_PERCENTAGE", "101"),
        ("FORCE_SIGNATURE_USERS", "alice,bo b"),
    ])
    .unwrap_err();
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].starts_with("(environment):1:1: AUTH_MODE: \"required\" is not an AUTH_MODE: expected legacy, hybrid or signature"), "{}", e[0]);
    assert!(
        e[1].contains("SIGNATURE_AUTH_ENABLED: \"yes\" is not a boolean"),
        "{}",
        e[1]
    );
    assert!(
        e[2].contains("SIGNATURE_AUTH_PERCENTAGE: \"101\" is not a percentage"),
        "{}",
        e[2]
    );
    assert!(
        e[3].contains("FORCE_SIGNATURE_USERS: \"bo b\" is not a user id"),
        "{}",
        e[3]
    );
}

#[test]
fn our_name_and_theirs_for_one_setting_must_agree() {
    for (a, b) in [
        (
            ("SIGNATURE_AUTH_CANARY_PERCENT", "10"),
            ("SIGNATURE_AUTH_PERCENTAGE", "20"),
        ),
        (
            ("SIGNATURE_AUTH_MODE", "hybrid"),
            ("AUTH_MODE", "signature"),
        ),
        (("auth_mode", "off"), ("AUTH_MODE", "hybrid")),
        (
            ("SIGNATURE_AUTH_MODE", "hybrid"),
            ("SIGNATURE_AUTH_ENABLED", "false"),
        ),
        (
            ("SIGNATURE_AUTH_MODE", "off"),
            ("SIGNATURE_AUTH_ENABLED", "true"),
        ),
        (("AUTH_MODE", "legacy"), ("SIGNATURE_AUTH_ENABLED", "true")),
    ] {
        let e = env(&[a, b]).unwrap_err();
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].contains(&format!(
                "{}={} and {}={} are both set and disagree",
                a.0, a.1, b.0, b.1
            )) || e[0].contains(&format!(
                "{}={} and {}={} are both set and disagree",
                b.0, b.1, a.0, a.1
            )),
            "{}",
            e[0]
        );
    }
    // Agreeing names are fine, and both are listed.
    for (a, b, mode) in [
        (
            ("SIGNATURE_AUTH_MODE", "required"),
            ("AUTH_MODE", "signature"),
            Some(Mode::Required),
        ),
        (
            ("SIGNATURE_AUTH_MODE", "hybrid"),
            ("SIGNATURE_AUTH_ENABLED", "true"),
            Some(Mode::Hybrid),
        ),
        (
            ("AUTH_MODE", "legacy"),
            ("SIGNATURE_AUTH_ENABLED", "false"),
            Some(Mode::Off),
        ),
    ] {
        let f = env(&[a, b]).unwrap();
        assert_eq!(f.overrides.mode, mode, "{a:?} {b:?}");
        assert_eq!(f.settings.len(), 2);
    }
    let f = env(&[
        ("SIGNATURE_AUTH_CANARY_PERCENT", "10"),
        ("SIGNATURE_AUTH_PERCENTAGE", "10"),
    ])
    .unwrap();
    assert_eq!(f.overrides.canary_percent, Some(10));
}

#[test]
fn a_setting_in_a_file_hides_every_environment_name_of_it() {
    let e = env(&[
        ("SIGNATURE_AUTH_CANARY_PERCENT", "10"),
        ("SIGNATURE_AUTH_MODE", "required"),
        ("SIGNATURE_AUTH_DRY_RUN", "true"),
    ])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("SIGNATURE_AUTH_PERCENTAGE"), "20").unwrap();
    std::fs::write(dir.path().join("SIGNATURE_AUTH_ENABLED"), "true").unwrap();
    let merged = FoundOverrides::layered(&e, overrides_from_dir(dir.path()).unwrap());
    assert_eq!(merged.overrides.canary_percent, Some(20));
    // ENABLED=true from the file: the policy's own mode again, the environment's mode hidden.
    assert_eq!(merged.overrides.mode, None);
    assert_eq!(merged.overrides.dry_run, Some(true));
    let names: Vec<(&str, &OverrideOrigin)> = merged
        .settings
        .iter()
        .map(|s| (s.name.as_str(), &s.origin))
        .collect();
    assert_eq!(
        names,
        [
            ("SIGNATURE_AUTH_DRY_RUN", &OverrideOrigin::Env),
            (
                "SIGNATURE_AUTH_ENABLED",
                &OverrideOrigin::File(dir.path().join("SIGNATURE_AUTH_ENABLED"))
            ),
            (
                "SIGNATURE_AUTH_PERCENTAGE",
                &OverrideOrigin::File(dir.path().join("SIGNATURE_AUTH_PERCENTAGE"))
            ),
        ]
    );
}

#[test]
fn enabled_false_turns_every_route_off() {
    let o = env(&[("SIGNATURE_AUTH_ENABLED", "false")])
        .unwrap()
        .overrides;
    assert_eq!(modes(o).0, [Mode::Off; 4]);
    let o = env(&[("AUTH_MODE", "signature")]).unwrap().overrides;
    assert_eq!(
        modes(o).0,
        [Mode::Required, Mode::Off, Mode::Hybrid, Mode::Required]
    );
}

#[test]
fn forced_users_join_always_require_and_need_a_legacy_user_rule() {
    let found = env(&[("FORCE_SIGNATURE_USERS", "alice,bob")]).unwrap();
    let without = ok("mode: hybrid\n");
    let e = check_overrides(&without, &found).unwrap_err();
    assert!(
        e.to_string().starts_with("(environment):1:1: FORCE_SIGNATURE_USERS: names users, but p.yaml has no canary.legacy_user"),
        "{e}"
    );
    let with = ok("canary: {always_require: [\"ip:10.0.0.0/8\"], legacy_user: {header: X-User}}\n");
    assert_eq!(check_overrides(&with, &found), Ok(()));
    let eff = with.effective(&found.overrides);
    let always: Vec<String> = eff
        .canary
        .always_require
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(always, ["ip:10.0.0.0/8", "client:alice", "client:bob"]);
    // Empty: nothing to recognise, nothing needed.
    let none = env(&[("FORCE_SIGNATURE_USERS", "")]).unwrap();
    assert_eq!(check_overrides(&without, &none), Ok(()));
    // Hashed identities: the users must be digests (lowercased for comparison).
    let hashed = ok("canary: {legacy_user: {header: authorization, hash: sha256}}\n");
    let e = check_overrides(&hashed, &found).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"alice\" is not a SHA-256 hex digest"),
        "{e}"
    );
    let digest = "AB".repeat(32);
    let found = env(&[("FORCE_SIGNATURE_USERS", digest.as_str())]).unwrap();
    assert_eq!(check_overrides(&hashed, &found), Ok(()));
    assert_eq!(
        hashed.effective(&found.overrides).canary.always_require,
        [CallerMatcher::Client("ab".repeat(32))]
    );
}

#[test]
fn auth_mode_hybrid_caps_the_routes_but_keeps_the_canary_running() {
    let p = ok("mode: required\ncanary: {percent: 25}\n");
    // The guide's canary state: everything hybrid, 25 % of callers must sign.
    let guide = env(&[("AUTH_MODE", "hybrid"), ("SIGNATURE_AUTH_PERCENTAGE", "25")]).unwrap();
    let e = p.effective(&guide.overrides);
    assert_eq!((e.mode, e.cap, e.canary_percent), (Mode::Hybrid, None, 25));
    // Our emergency switch of the same name stops the canary as well.
    let ours = env(&[("SIGNATURE_AUTH_MODE", "hybrid")]).unwrap();
    let e = p.effective(&ours.overrides);
    assert_eq!((e.mode, e.cap), (Mode::Hybrid, Some(Mode::Hybrid)));
    // Both names, same mode: ours decides. SIGNATURE_AUTH_REQUIRED=false still stops it.
    let both = env(&[("SIGNATURE_AUTH_MODE", "hybrid"), ("AUTH_MODE", "hybrid")]).unwrap();
    assert_eq!(p.effective(&both.overrides).cap, Some(Mode::Hybrid));
    let rollback = env(&[
        ("AUTH_MODE", "hybrid"),
        ("SIGNATURE_AUTH_REQUIRED", "false"),
    ])
    .unwrap();
    assert_eq!(p.effective(&rollback.overrides).cap, Some(Mode::Hybrid));
}
