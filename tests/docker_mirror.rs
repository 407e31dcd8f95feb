//! `docker/build-and-smoke.sh --print-mirror`: the Debian mirror the image build would bootstrap
//! from is the one this machine's apt already uses (deb822 and one-line sources), with
//! `DEBIAN_MIRROR` still winning and Debian's default only when no source qualifies. Runs the
//! script's own parser on apt configurations written to a temp dir; nothing is fetched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/build-and-smoke.sh");
const DEFAULT: &str = "http://deb.debian.org/debian";

/// Writes `files` (path relative to the fake /etc/apt, content) and returns what the script prints.
fn mirror(files: &[(&str, &str)], env_mirror: Option<&str>) -> String {
    let etc = tempfile::tempdir().unwrap();
    std::fs::create_dir(etc.path().join("sources.list.d")).unwrap();
    for (rel, text) in files {
        std::fs::write(etc.path().join(rel), text).unwrap();
    }
    run(etc.path(), env_mirror)
}

fn run(etc: &Path, env_mirror: Option<&str>) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT)
        .arg("--print-mirror")
        .env("APT_ETC", etc)
        .env_remove("DEBIAN_MIRROR");
    if let Some(m) = env_mirror {
        cmd.env("DEBIAN_MIRROR", m);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

const DEB822: &str = "\
Types: deb
URIs: http://sec.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# disabled: never chosen
URIs: http://off.example/debian
Suites: bookworm
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: file:/srv/local-only
 https://mirror.example/pub/deb/
Suites: bookworm bookworm-updates
Components: main
";

#[test]
fn deb822_stanza_for_the_suite_wins_over_security_disabled_source_and_file_uris() {
    assert_eq!(
        mirror(&[("sources.list.d/debian.sources", DEB822)], None),
        "https://mirror.example/pub/deb/"
    );
}

#[test]
fn one_line_entries_with_options_are_read() {
    let list = "# deb http://commented.example/debian bookworm main\n\
                deb-src http://src.example/debian bookworm main\n\
                deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://one.example/debian bookworm main\n";
    assert_eq!(
        mirror(&[("sources.list", list)], None),
        "http://one.example/debian"
    );
    // *.list files in sources.list.d too.
    assert_eq!(
        mirror(&[("sources.list.d/extra.list", list)], None),
        "http://one.example/debian"
    );
}

#[test]
fn a_mirror_of_another_release_beats_the_default_and_security_only_does_not() {
    let trixie = "Types: deb\nURIs: http://m.example/debian\nSuites: trixie trixie-updates\n";
    assert_eq!(
        mirror(&[("sources.list.d/t.sources", trixie)], None),
        "http://m.example/debian"
    );
    // The exact suite beats another release, whatever the file order.
    let both = "deb http://other.example/debian trixie main\n\
                deb http://exact.example/debian bookworm main\n";
    assert_eq!(
        mirror(&[("sources.list", both)], None),
        "http://exact.example/debian"
    );
    let security = "Types: deb\nURIs: http://s.example/debian-security\nSuites: trixie-security\n";
    assert_eq!(
        mirror(&[("sources.list.d/s.sources", security)], None),
        DEFAULT
    );
}

#[test]
fn no_sources_means_debians_default_and_the_override_always_wins() {
    assert_eq!(mirror(&[], None), DEFAULT);
    let missing = tempfile::tempdir().unwrap();
    assert_eq!(run(&missing.path().join("nope"), None), DEFAULT);
    assert_eq!(
        mirror(
            &[("sources.list.d/debian.sources", DEB822)],
            Some("http://given.example/debian")
        ),
        "http://given.example/debian"
    );
}
