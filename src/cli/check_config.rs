//! `sigproxy check-config FILE`: validate a policy (and its key files and live overrides) and
//! print the effective policy, or print every error as `file:line:col: path: message` and exit 2.
//! It does not bind, connect or fetch the remote key directory.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::policy::schema::{self, Apply};
use crate::policy::{self, ConfigErrors, FoundOverrides, OverrideOrigin, Policy};

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// The policy file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

pub fn run(args: &CheckConfigArgs) -> ExitCode {
    match check(args, std::env::vars()) {
        Ok(text) => {
            // A reader that went away (`| head`) is not worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} error(s); policy not valid",
                args.file.display(),
                errors.len()
            );
            ExitCode::from(2)
        }
    }
}

/// Load policy and overrides (environment `vars`, then files beside the policy, which win) and
/// render the effective policy. All errors of all three are returned together.
pub fn check(
    args: &CheckConfigArgs,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<String, ConfigErrors> {
    let mut errors = Vec::new();
    let policy = policy::load(&args.file)
        .map_err(|e| errors.extend(e.0))
        .ok();
    let env = policy::overrides_from_env(vars)
        .map_err(|e| errors.extend(e.0))
        .ok();
    let dir = args
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let files = policy::overrides_from_dir(dir)
        .map_err(|e| errors.extend(e.0))
        .ok();
    match (policy, env, files) {
        (Some(p), Some(env), Some(files)) if errors.is_empty() => {
            let found = FoundOverrides::layered(&env, files);
            policy::check_overrides(&p, &found)?;
            Ok(render(&p, &found))
        }
        _ => Err(ConfigErrors(errors)),
    }
}

fn yes_no_default<T: std::fmt::Display>(v: &Option<T>, none: &str) -> String {
    v.as_ref()
        .map_or_else(|| none.to_string(), ToString::to_string)
}

/// The effective policy as an operator reads it. Infallible: writing to a String cannot fail.
pub fn render(p: &Policy, found: &FoundOverrides) -> String {
    let f = &p.file;
    let e = p.effective(&found.overrides);
    let mut s = String::new();
    let _ = writeln!(s, "policy: {} (sha256 {})", p.path.display(), p.sha256);
    let _ = writeln!(
        s,
        "listen: {}  admin_listen: {}  upstream: {}",
        f.listen, f.admin_listen, f.upstream,
    );
    let tls = match &f.tls {
        Some(t) => format!(
            "https (cert {}, key {}{})",
            t.cert_file,
            t.key_file,
            t.client_ca_file
                .as_ref()
                .map_or(String::new(), |c| format!(", client certificates from {c}"))
        ),
        None => "plain http".to_string(),
    };
    let h2 = &f.http2;
    let _ = writeln!(
        s,
        "listener: {tls}; http2: {}",
        if h2.enabled {
            format!(
                "on (max_concurrent_streams {}, max_header_list_bytes {}, max_pending_resets {})",
                h2.max_concurrent_streams, h2.max_header_list_bytes, h2.max_pending_resets
            )
        } else {
            "off".to_string()
        }
    );
    if f.upstream.tls {
        let _ = writeln!(
            s,
            "upstream_tls: verified against {}, name {}",
            f.upstream_tls
                .ca_file
                .as_deref()
                .unwrap_or("the system roots"),
            f.upstream_tls
                .server_name
                .as_deref()
                .unwrap_or(&f.upstream.sni)
        );
    }
    let threads = if f.threads == 0 {
        "one per core".to_string()
    } else {
        f.threads.to_string()
    };
    let _ = writeln!(
        s,
        "threads: {threads}  shutdown_grace_seconds: {}",
        f.shutdown_grace_seconds
    );
    if found.settings.is_empty() {
        let _ = writeln!(s, "overrides: none");
    } else {
        let _ = writeln!(
            s,
            "overrides (files beside the policy win over the environment):"
        );
        for o in &found.settings {
            let origin = match &o.origin {
                OverrideOrigin::Env => "environment".to_string(),
                OverrideOrigin::File(path) => format!("file {}", path.display()),
            };
            let _ = writeln!(
                s,
                "  {}={} ({origin}; sets {})",
                o.name,
                o.value,
                o.kind.as_str()
            );
        }
    }
    let was = |now: String, file: String| {
        if now == file {
            now
        } else {
            format!("{now} (file: {file})")
        }
    };
    let _ = writeln!(
        s,
        "default mode: {}",
        was(e.mode.to_string(), f.mode.to_string())
    );
    let _ = writeln!(
        s,
        "dry_run: {}",
        was(e.dry_run.to_string(), f.dry_run.to_string())
    );
    let _ = writeln!(
        s,
        "canary: {} of callers on hybrid routes",
        was(
            format!("{}%", e.canary_percent),
            format!("{}%", f.canary.percent)
        )
    );
    let _ = writeln!(s, "routes (first match wins):");
    for (i, (r, file_r)) in e.routes.iter().zip(&f.routes).enumerate() {
        let methods = r.methods.as_ref().map_or("any method".to_string(), |ms| {
            ms.iter()
                .map(http::Method::as_str)
                .collect::<Vec<_>>()
                .join(",")
        });
        let dry = r.dry_run.unwrap_or(e.dry_run);
        let _ = writeln!(
            s,
            "  [{i}] {:<20} {:<18} {}{}",
            r.path_prefix,
            methods,
            was(r.mode.to_string(), file_r.mode.to_string()),
            if dry { "  dry_run" } else { "" }
        );
    }
    let _ = writeln!(
        s,
        "  [-] {:<20} {:<18} {}{}",
        "(unmatched)",
        "any method",
        e.mode,
        if e.dry_run { "  dry_run" } else { "" }
    );
    let _ = writeln!(
        s,
        "route_matching: case_insensitive {} (every lenient reading of a path; the strictest route wins)",
        f.route_matching.case_insensitive
    );
    let g = &f.signature;
    let _ = writeln!(
        s,
        "signature: max_age {}s, clock_skew {}s, nonce {}, body_digest {}, max_body_bytes {}",
        g.verify.max_age_seconds,
        g.verify.clock_skew_seconds,
        g.verify.nonce,
        g.verify.body_digest,
        g.max_body_bytes
    );
    let required: Vec<&str> = g
        .verify
        .required_components
        .iter()
        .map(|c| c.name_str())
        .collect();
    let _ = writeln!(s, "  required_components: {}", required.join(" "));
    let _ = writeln!(
        s,
        "  label: {}  tag: {}  public_authority: {}  public_scheme: {}",
        yes_no_default(&g.verify.label, "any"),
        yes_no_default(&g.verify.tag, "any"),
        yes_no_default(&g.public_authority, "as received"),
        g.public_scheme.map_or("as received", |x| x.as_str())
    );
    let id = &f.identity;
    let names = |hs: &[http::HeaderName]| {
        hs.iter()
            .map(http::HeaderName::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "identity: {} {} {}; also stripped: [{}]; forward_signature_headers: {}",
        id.client_id_header,
        id.key_id_header,
        id.auth_method_header,
        names(&id.strip_inbound),
        id.forward_signature_headers
    );
    let _ = writeln!(
        s,
        "override headers stripped unless signed: [{}]",
        names(&id.strip_override_headers)
    );
    let proxies: Vec<String> = f.trusted_proxies.iter().map(ToString::to_string).collect();
    let _ = writeln!(s, "trusted_proxies: [{}]", proxies.join(", "));
    let store = match &f.replay.backend {
        policy::ReplayBackend::Memory => format!("memory (max {} entries)", f.replay.max_entries),
        policy::ReplayBackend::Redis(target) => format!("redis {target}"),
    };
    let _ = writeln!(
        s,
        "replay: {store}, on_store_error {}, scope {}",
        f.replay.on_store_error.as_str(),
        f.replay.backend.scope().as_str()
    );
    let rd = &f.readiness;
    let mut waits = Vec::new();
    if f.key_directory.is_some() && rd.wait_for_key_directory {
        waits.push("key directory");
    }
    if matches!(f.replay.backend, policy::ReplayBackend::Redis(_))
        && rd.wait_for_replay_store
        && f.replay.on_store_error == policy::OnStoreError::Reject
    {
        waits.push("replay store");
    }
    let _ = writeln!(
        s,
        "readiness: waits for the listener{}; after {} s still waiting: {}",
        waits.iter().map(|w| format!(", {w}")).collect::<String>(),
        rd.timeout_seconds,
        rd.on_timeout.as_str()
    );
    let rl = f.failure_rate_limit.per_minute;
    let _ = writeln!(
        s,
        "failure_rate_limit: {}",
        if rl == 0 {
            "off".to_string()
        } else {
            format!("{rl}/minute per ip")
        }
    );
    // The canary in force: FORCE_SIGNATURE_USERS joins always_require.
    let c = &e.canary;
    let list = |v: &[policy::CallerMatcher]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "canary matchers: always_require [{}], never_require [{}]",
        list(&c.always_require),
        list(&c.never_require)
    );
    if let Some(l) = &c.legacy_user {
        let how = match l.hash {
            policy::LegacyUserHash::None => "its value",
            policy::LegacyUserHash::Sha256 => "the SHA-256 hex of its value",
        };
        let _ = writeln!(
            s,
            "canary legacy_user: an unsigned caller is client:ID for always_require when {how} in {} is ID",
            l.header
        );
    }
    if let Some(h) = &c.auto_halt {
        let _ = writeln!(
            s,
            "canary auto_halt: to 0% when > {}% of canary callers' requests are rejected within {}s (min {} requests)",
            h.max_reject_percent, h.window_seconds, h.min_requests
        );
    }
    if let Some(k) = &f.key_directory {
        let _ = writeln!(
            s,
            "key_directory: {} every {}s (not fetched by check-config)",
            k.url, k.refresh_seconds
        );
    }
    render_keys(&mut s, p, LIST_KEYS_UP_TO);
    render_classes(&mut s);
    s
}

/// Past this many keys, `check-config` lists keys per source rather than one line each: a million
/// lines help nobody read a policy.
const LIST_KEYS_UP_TO: usize = 1000;

fn render_keys(s: &mut String, p: &Policy, list_up_to: usize) {
    let keys = &p.keys;
    let _ = writeln!(
        s,
        "keys: {} ({} active, {} revoked)",
        keys.len(),
        keys.active_count(),
        keys.revoked_count()
    );
    let file = |source: &policy::KeySource| match source {
        policy::KeySource::File(path) => path.display().to_string(),
        _ => p.path.display().to_string(),
    };
    if keys.len() > list_up_to {
        for t in keys.tables().iter().filter(|t| !t.is_empty()) {
            let _ = writeln!(
                s,
                "  {}: {} keys ({} revoked)",
                file(t.source()),
                t.len(),
                t.revoked_count()
            );
        }
        let _ = writeln!(
            s,
            "  (more than {list_up_to} keys: listed per file, not one by one)"
        );
        return;
    }
    for k in keys.iter() {
        let status = match k.status {
            policy::KeyStatus::Active => "active",
            policy::KeyStatus::Revoked => "revoked",
        };
        let pos = k.pos.unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<24} client {:<20} {:<8} {}:{}:{}",
            k.key_id,
            k.client_id,
            status,
            file(k.source),
            pos.line,
            pos.col
        );
    }
}

/// Every key by class (`policy::schema`): what a reload applies and what needs a restart.
fn render_classes(s: &mut String) {
    let _ = writeln!(
        s,
        "key classes (sigproxy run applies `live` keys on reload; a changed `restart` key is reported in /status restart_required until a restart):"
    );
    for (apply, label) in [(Apply::Live, "live"), (Apply::Restart, "restart")] {
        let keys: Vec<&str> = schema::leaves()
            .filter(|k| k.apply == apply)
            .map(|k| k.path)
            .collect();
        let mut line = format!("  {label}:");
        for (i, k) in keys.iter().enumerate() {
            let sep = if i + 1 < keys.len() { "," } else { "" };
            if line.len() + k.len() + 2 > 100 {
                let _ = writeln!(s, "{line}");
                line = " ".repeat(label.len() + 3);
            }
            line.push(' ');
            line.push_str(k);
            line.push_str(sep);
        }
        let _ = writeln!(s, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_keys_are_listed_per_file() {
        let pk = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("k.yaml");
        std::fs::write(
            &keys,
            format!("- {{key_id: a, public_key: {pk}}}\n- {{key_id: b, public_key: {pk}, status: revoked}}\n"),
        )
        .unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(
            &file,
            format!("key_files: [k.yaml]\nkeys:\n  - {{key_id: c, public_key: {pk}}}\n"),
        )
        .unwrap();
        let p = policy::load(&file).unwrap();
        let mut few = String::new();
        render_keys(&mut few, &p, 3);
        assert!(few.contains("keys: 3 (2 active, 1 revoked)"), "{few}");
        assert!(few.contains(&format!("{}:2:3", keys.display())), "{few}");
        let mut many = String::new();
        render_keys(&mut many, &p, 2);
        assert!(
            many.contains(&format!("  {}: 2 keys (1 revoked)\n", keys.display())),
            "{many}"
        );
        assert!(
            many.contains(&format!("  {}: 1 keys (0 revoked)\n", file.display())),
            "{many}"
        );
        assert!(many.contains("more than 2 keys"), "{many}");
        assert!(!many.contains(":2:3"), "{many}");
    }

    #[test]
    fn renders_the_effective_policy_and_collects_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(&file, "mode: required\nroutes:\n  - { path_prefix: /api/, methods: [POST], mode: required }\nkeys:\n  - { key_id: k1, client_id: web, public_key: \"JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\" }\n").unwrap();
        std::fs::write(dir.path().join("SIGNATURE_AUTH_REQUIRED"), "false\n").unwrap();
        let args = CheckConfigArgs { file: file.clone() };
        let env = [(
            "SIGNATURE_AUTH_CANARY_PERCENT".to_string(),
            "10".to_string(),
        )];
        let out = check(&args, env.clone()).unwrap();
        assert!(
            out.contains("default mode: hybrid (file: required)"),
            "{out}"
        );
        assert!(out.contains("[0] /api/"), "{out}");
        assert!(out.contains("hybrid (file: required)"), "{out}");
        assert!(
            out.contains("SIGNATURE_AUTH_REQUIRED=false (file "),
            "{out}"
        );
        assert!(
            out.contains("SIGNATURE_AUTH_CANARY_PERCENT=10 (environment; sets canary_percent)"),
            "{out}"
        );
        assert!(out.contains("canary: 10% (file: 0%) of callers"), "{out}");
        assert!(
            out.contains("k1 ") && out.contains("client web") && out.contains("active"),
            "{out}"
        );
        // Every key is named once, under its class.
        let classes = &out[out.find("key classes").unwrap()..];
        let mut class = "";
        let mut seen: Vec<(String, &str)> = Vec::new();
        for line in classes.lines().skip(1) {
            let mut words = line.split([' ', ',']).filter(|w| !w.is_empty()).peekable();
            if let Some(label) = words.peek().and_then(|w| w.strip_suffix(':')) {
                class = label;
                words.next();
            }
            seen.extend(words.map(|w| (w.to_owned(), class)));
        }
        let mut want: Vec<(String, &str)> = schema::leaves()
            .map(|k| (k.path.to_owned(), k.apply.as_str()))
            .collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want, "{classes}");
        assert!(
            classes.contains("restart: listen, admin_listen, threads"),
            "{classes}"
        );

        std::fs::write(&file, "mode: false\nlisten: x\n").unwrap();
        std::fs::write(dir.path().join("SIGNATURE_AUTH_DRY_RUN"), "maybe").unwrap();
        let e = check(&args, env).unwrap_err();
        assert_eq!(e.len(), 3, "{e}");
        assert_eq!(run(&args), ExitCode::from(2));
    }
}
