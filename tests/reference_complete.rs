//! docs/reference.md cannot drift silently from the code: every error code (with its status and
//! message), metric, alert rule, policy key, live override, CLI subcommand and flag, environment
//! variable, `/status` member and audit line field the code has is in the reference, and every one
//! the reference tables list exists. The lists are read from the code itself — `ErrorCode::ALL`,
//! the metrics registry, `policy::schema` (the parser's list of keys, with each key's live/restart
//! class), clap's command tree, the running binary's `/status` and audit lines — never from a copy
//! kept here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use clap::CommandFactory as _;
use common::client::{Body, request};
use common::sidecar::{ACTIVE, Sidecar};
use common::upstream::Upstream;
use sigproxy::error::ErrorCode;
use sigproxy::metrics::Metrics;
use sigproxy::policy::OVERRIDE_NAMES;
use sigproxy::policy::schema::{self, Apply};

const REFERENCE: &str = include_str!("../docs/reference.md");

/// The text from the heading line `starts` matches to the next heading of the same or a higher
/// level.
fn section(starts: impl Fn(&str) -> bool) -> &'static str {
    let mut offset = 0;
    let mut begin: Option<(usize, usize)> = None;
    for line in REFERENCE.split_inclusive('\n') {
        let level = line.bytes().take_while(|b| *b == b'#').count();
        let heading = level > 0 && line.as_bytes().get(level) == Some(&b' ');
        match begin {
            None if heading && starts(line) => begin = Some((offset, level)),
            Some((b, l)) if heading && level <= l => return &REFERENCE[b..offset],
            _ => {}
        }
        offset += line.len();
    }
    match begin {
        Some((b, _)) => &REFERENCE[b..],
        None => panic!("docs/reference.md has no such heading"),
    }
}

fn numbered(n: &str) -> &'static str {
    let prefix = format!(" {n} ");
    section(move |l| l.trim_start_matches('#').starts_with(&prefix))
}

/// The cells of every table row in `text` (header and separator rows included; `\|` kept
/// inside its cell).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.replace("\\|", "\u{0}")
                .trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('\u{0}', "\\|"))
                .collect()
        })
        .collect()
}

/// First cells that are one backticked name (`` `x` ``), unquoted.
fn row_names(text: &str) -> BTreeSet<String> {
    rows(text)
        .iter()
        .filter_map(|r| {
            let c = r.first()?;
            let inner = c.strip_prefix('`')?.strip_suffix('`')?;
            (!inner.contains('`')).then(|| inner.to_owned())
        })
        .collect()
}

fn backticked(text: &str, name: &str) -> bool {
    text.contains(&format!("`{name}`"))
}

fn same(what: &str, in_code: &BTreeSet<String>, in_doc: &BTreeSet<String>) {
    let missing: Vec<_> = in_code.difference(in_doc).collect();
    let stale: Vec<_> = in_doc.difference(in_code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{what}: in the code but not in docs/reference.md: {missing:?}; in docs/reference.md but not in the code: {stale:?}"
    );
}

#[test]
fn every_error_code_has_its_row_with_status_and_message() {
    let table = numbered("4.5");
    let by_code: Vec<Vec<String>> = rows(table);
    for code in ErrorCode::ALL {
        let row = by_code
            .iter()
            .find(|r| r[0] == format!("`{}`", code.as_str()))
            .unwrap_or_else(|| panic!("§4.5 has no row for {code}"));
        assert_eq!(row[1], code.status().to_string(), "status of {code}");
        assert_eq!(row[2], code.message(), "message of {code}");
    }
    let codes: BTreeSet<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let documented: BTreeSet<String> = row_names(table)
        .into_iter()
        .filter(|n| n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .collect();
    same("error codes (§4.5)", &codes, &documented);
}

/// Whether the registry has a collector named `name`: registering a probe of that name fails
/// exactly when one exists (same name: `AlreadyReg` or a descriptor clash).
fn registered(m: &Metrics, name: &str) -> bool {
    let probe = prometheus::IntGauge::new(name, "reference_complete probe").unwrap();
    let taken = m.registry.register(Box::new(probe.clone())).is_err();
    if !taken {
        m.registry.unregister(Box::new(probe)).unwrap();
    }
    taken
}

/// Every metric name `Metrics::new` registers. A fresh registry's `gather` leaves out labelled
/// families that have no series yet, so the names written in the metrics source are added too,
/// each confirmed against the registry (a name only mentioned there does not count).
fn metric_names(m: &Metrics) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = m
        .registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("metrics.rs")];
    if let Ok(dir) = std::fs::read_dir(src.join("metrics")) {
        files.extend(dir.filter_map(Result::ok).map(|e| e.path()));
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for literal in text.split('"').skip(1).step_by(2) {
            let is_name = literal.starts_with("datafold_")
                && literal
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if is_name && registered(m, literal) {
                names.insert(literal.to_owned());
            }
        }
    }
    names
}

#[test]
fn every_metric_is_in_the_metrics_table_and_every_row_is_registered() {
    let m = Metrics::new().unwrap();
    let in_code = metric_names(&m);
    assert!(in_code.len() >= 10, "{in_code:?}");
    let table = numbered("6.1");
    same("metrics (§6.1)", &in_code, &row_names(table));
}

#[test]
fn every_alert_rule_is_listed_and_uses_only_registered_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/sigproxy/files/alerts.yaml");
    let alerts = std::fs::read_to_string(path).unwrap();
    let rules: BTreeSet<String> = alerts
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().strip_prefix("- ")?;
            let name = l
                .strip_prefix("alert:")
                .or_else(|| l.strip_prefix("record:"))?;
            Some(name.trim().to_owned())
        })
        .collect();
    assert!(rules.len() >= 5, "{rules:?}");
    same("alert rules (§6.2)", &rules, &row_names(numbered("6.2")));

    let m = Metrics::new().unwrap();
    let mut used = BTreeSet::new();
    for (i, _) in alerts.match_indices("datafold_") {
        let name: String = alerts[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| registered(&m, b)))
            .unwrap_or(&name)
            .to_owned();
        assert!(
            registered(&m, &base),
            "alerts.yaml uses {name}, which sigproxy does not register"
        );
        used.insert(base);
    }
    for name in &used {
        assert!(
            numbered("6.2").contains(&format!("`{name}`")),
            "§6.2 does not say that an alert rule uses {name}"
        );
    }
}

/// Every policy key with its class, from `policy::schema` — the parser's own list of known keys —
/// must have its row in §3.2, with the class in the apply column (empty for a section); and every
/// row must be a key.
#[test]
fn every_policy_key_and_override_is_in_the_policy_tables() {
    let table = numbered("3.2");
    let by_key: Vec<Vec<String>> = rows(table);
    for key in schema::KEYS {
        let row = by_key
            .iter()
            .find(|r| r[0] == format!("`{}`", key.path))
            .unwrap_or_else(|| panic!("§3.2 has no row for {}", key.path));
        let apply = &row[3];
        match key.apply {
            Apply::Section => assert!(apply.is_empty(), "{}: a section, not {apply:?}", key.path),
            class => assert!(
                apply.starts_with(class.as_str()),
                "{}: §3.2 says {apply:?}, the schema {}",
                key.path,
                class.as_str()
            ),
        }
    }
    let keys: BTreeSet<String> = schema::KEYS.iter().map(|k| k.path.to_owned()).collect();
    same("policy keys (§3.2)", &keys, &row_names(table));
    let overrides: BTreeSet<String> = OVERRIDE_NAMES.iter().map(|s| (*s).to_owned()).collect();
    same(
        "live overrides (§3.7)",
        &overrides,
        &row_names(numbered("3.7")),
    );
}

#[test]
fn every_subcommand_has_its_section_with_every_flag() {
    let cli = sigproxy::cli::Cli::command();
    let mut seen = 0;
    for sc in cli.get_subcommands() {
        let name = sc.get_name();
        let heading = format!("`sigproxy {name}`");
        let text = section(|l| l.starts_with("### 2.") && l.contains(&heading));
        let mut longs = BTreeSet::new();
        for arg in sc.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            match arg.get_long() {
                Some(long) => {
                    longs.insert(format!("--{long}"));
                    if let Some(short) = arg.get_short() {
                        let row = text
                            .lines()
                            .find(|l| l.starts_with('|') && l.contains(&format!("`--{long}")))
                            .unwrap_or_else(|| panic!("{heading}: no row for --{long}"));
                        assert!(
                            row.contains(&format!("`-{short}`")),
                            "{heading}: the --{long} row does not name -{short}"
                        );
                    }
                }
                None => {
                    let value = arg
                        .get_value_names()
                        .and_then(|v| v.first().map(|s| s.to_string()))
                        .unwrap_or_else(|| id.to_uppercase());
                    assert!(
                        text.contains(&value),
                        "{heading}: the positional {value} is not described"
                    );
                }
            }
        }
        let documented: BTreeSet<String> = rows(text)
            .iter()
            .filter_map(|r| r.first())
            .flat_map(|c| {
                c.split('`')
                    .skip(1)
                    .step_by(2)
                    .filter_map(|t| t.split_whitespace().next())
                    .filter(|t| t.starts_with("--"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        same(&format!("flags of {heading}"), &longs, &documented);
        seen += 1;
    }
    assert!(seen >= 6, "{seen} subcommands");
}

#[test]
fn every_environment_variable_is_in_the_environment_table() {
    let mut vars: BTreeSet<String> = OVERRIDE_NAMES.iter().map(|s| (*s).to_owned()).collect();
    let cli = sigproxy::cli::Cli::command();
    for sc in cli.get_subcommands() {
        for arg in sc.get_arguments() {
            if let Some(env) = arg.get_env() {
                vars.insert(env.to_string_lossy().into_owned());
            }
        }
    }
    // Variables the code reads directly: every `"SIGPROXY_…"` string in src/.
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files += 1;
                assert!(files < 2000, "src/ walk does not end");
                let text = std::fs::read_to_string(&p).unwrap();
                for literal in text.split('"').skip(1).step_by(2) {
                    if literal.starts_with("SIGPROXY_")
                        && literal
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    {
                        vars.insert(literal.to_owned());
                    }
                }
            }
        }
    }
    assert!(vars.contains("SIGPROXY_LOG_FLUSH_MS"), "{vars:?}");
    let table = numbered("8.");
    for v in &vars {
        assert!(backticked(table, v), "§8 does not list {v}");
    }
    let documented: BTreeSet<String> = table
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| t.starts_with("SIGPROXY_") || t.starts_with("SIGNATURE_AUTH_"))
        .map(str::to_owned)
        .collect();
    let stale: Vec<_> = documented.difference(&vars).collect();
    assert!(
        stale.is_empty(),
        "§8 lists variables nothing reads: {stale:?}"
    );
}

/// Member names of a JSON document, nested ones as `parent.child` (array items walked as their
/// parent).
fn members(v: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                members(child, &path, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                members(item, prefix, out);
            }
        }
        _ => {}
    }
}

/// The running binary: a canary that selects every unsigned caller and halts at once, so one
/// unsigned request fills every optional audit field and `/status`'s halt; one signed request
/// fills the client and key fields.
#[test]
fn status_members_and_audit_fields_of_the_running_binary_are_documented() {
    let up = Upstream::start(Duration::ZERO);
    let sc = Sidecar::start(
        up.addr,
        "mode: hybrid\n\
         canary:\n  percent: 100\n  auto_halt: {max_reject_percent: 1, window_seconds: 60, min_requests: 1}\n",
    );
    let r = request(
        sc.addr,
        "GET",
        "/reference/unsigned",
        &["User-Agent: reference-test/1", "Connection: close"],
        Body::None,
    );
    assert_eq!(r.status, 401, "the canary selects this caller");
    let unsigned_id = r.header("x-request-id").unwrap().to_owned();
    let signed = sc.sign(ACTIVE, "GET", "/reference/signed", None, &[]);
    let r = sc.send_raw(&signed);
    assert_eq!(r.status, 200);
    let signed_id = r.header("x-request-id").unwrap().to_owned();

    let mut audit_fields = BTreeSet::new();
    for id in [&unsigned_id, &signed_id] {
        let lines = sc.audit_for(id);
        assert_eq!(lines.len(), 1, "one audit line for {id}");
        members(&lines[0], "", &mut audit_fields);
    }
    same(
        "audit line fields (§7.1)",
        &audit_fields,
        &row_names(numbered("7.1")),
    );

    let status = sc.admin_get("/status").json();
    assert!(
        !status["canary"]["halted"].is_null() && !status["canary"]["auto_halt"].is_null(),
        "{status}"
    );
    let mut status_members = BTreeSet::new();
    members(&status, "", &mut status_members);
    // keys.directory appears only with a key directory: its members from the directory itself.
    let dir = sigproxy::keys::KeyDirectory::new(
        sigproxy::keys::DirectoryConfig::new("http://127.0.0.1:9/keys.jwks", 300),
        |_| Ok(()),
    )
    .unwrap();
    status_members.insert("keys.directory".to_owned());
    members(
        &serde_json::to_value(dir.status()).unwrap(),
        "keys.directory",
        &mut status_members,
    );
    let text = numbered("5.2");
    let rows = row_names(text);
    for m in &status_members {
        let top_or_row = rows.contains(m);
        let leaf = m.rsplit('.').next().unwrap();
        assert!(
            top_or_row || (m.contains('.') && backticked(text, leaf)),
            "§5.2 does not describe /status member {m}"
        );
    }
    let stale: Vec<_> = rows.difference(&status_members).collect();
    assert!(
        stale.is_empty(),
        "§5.2 lists members /status lacks: {stale:?}"
    );
}

/// The original design brief is not shipped: nothing in the repository may cite it. Code and docs
/// cite `reference §N` (docs/reference.md) instead.
#[test]
fn nothing_cites_the_original_brief() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let needles = [["SPEC", " §"].concat(), ["SPEC", ".md"].concat()];
    let mut stack: Vec<std::path::PathBuf> = [
        "src", "tests", "docs", "helm", "config", "docker", "benches", "fuzz", "examples",
    ]
    .iter()
    .map(|d| root.join(d))
    .chain([root.join("README.md")])
    .collect();
    let (mut files, mut found) = (0, Vec::new());
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let skip = p
                .file_name()
                .is_some_and(|n| n == "target" || n == "corpus");
            if !skip {
                stack.extend(
                    std::fs::read_dir(&p)
                        .unwrap()
                        .filter_map(|e| Some(e.ok()?.path())),
                );
            }
            continue;
        }
        files += 1;
        assert!(files < 20_000, "repository walk does not end");
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue; // binary
        };
        for (i, line) in text.lines().enumerate() {
            if needles.iter().any(|n| line.contains(n.as_str())) {
                found.push(format!("{}:{}: {line}", p.display(), i + 1));
            }
        }
    }
    assert!(files > 100, "walked only {files} files");
    assert!(
        found.is_empty(),
        "cite docs/reference.md instead:\n{}",
        found.join("\n")
    );
}
