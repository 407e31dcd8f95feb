//! Every example policy in `config/` (the rollout stages and the rollback) passes
//! `sigproxy check-config`, and each stage says the percent its name promises.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn check(path: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .arg("check-config")
        .arg(path)
        .env_remove("SIGNATURE_AUTH_MODE")
        .env_remove("auth_mode")
        .env_remove("SIGNATURE_AUTH_REQUIRED")
        .env_remove("SIGNATURE_AUTH_CANARY_PERCENT")
        .env_remove("SIGNATURE_AUTH_DRY_RUN")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {text}", path.display());
    text
}

#[test]
fn every_example_policy_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for dir in [root.clone(), root.join("rollout")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                check(&p);
                seen += 1;
            }
        }
    }
    assert!(seen >= 10, "only {seen} policies found");
}

#[test]
fn each_rollout_stage_has_its_percent_and_the_rollback_enforces_nobody() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rollout");
    for pct in [5, 10, 25, 50, 75, 100] {
        let out = check(&dir.join(format!("stage-{pct:03}.yaml")));
        assert!(out.contains(&format!("canary: {pct}% of callers")), "{out}");
        assert!(out.contains("default mode: hybrid"), "{out}");
        assert!(out.contains("canary auto_halt:"), "{out}");
    }
    let out = check(&dir.join("stage-100-required.yaml"));
    assert!(out.contains("default mode: required"), "{out}");
    let out = check(&dir.join("rollback.yaml"));
    assert!(
        out.contains("default mode: hybrid") && out.contains("canary: 0%"),
        "{out}"
    );
    let out = check(&dir.join("stage-000-dry-run.yaml"));
    assert!(out.contains("dry_run: true"), "{out}");
}
