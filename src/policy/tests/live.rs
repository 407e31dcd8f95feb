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
    let mut spec_defaults = ok("mode: hybrid\n").file;
    spec_defaults.routes = full.file.routes.clone();
    spec_defaults.keys = full.file.keys.clone();
    spec_defaults.key_files = full.file.key_files.clone();
    spec_defaults.key_directory = full.file.key_directory.clone();
    assert_eq!(full.file, spec_defaults);
    let minimal = load(&dir.join("minimal.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(minimal.file.upstream.port, 8081);
}
