//! The emergency switches of SPEC §3 (`SIGNATURE_AUTH_*`): parsing their string values, finding
//! them in the environment or as files beside the policy, and the pure function that applies
//! them to a policy (`Policy::effective`). Watching for changes is the reload code's job.

use super::Policy;
use super::error::{ConfigError, ConfigErrors};
use super::routes::{self, Route, RouteMatching, RouteRef};
use super::types::Mode;
use http::Method;
use std::path::{Path, PathBuf};

/// Live overrides; `None` = not set, the policy file decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `SIGNATURE_AUTH_MODE` (alias `auth_mode`): replaces `mode` and caps every route.
    pub mode: Option<Mode>,
    /// `SIGNATURE_AUTH_REQUIRED`: `false` caps every route at hybrid; `true` adds no cap.
    pub required: Option<bool>,
    /// `SIGNATURE_AUTH_CANARY_PERCENT`: replaces `canary.percent`.
    pub canary_percent: Option<u8>,
    /// `SIGNATURE_AUTH_DRY_RUN`: replaces `dry_run`.
    pub dry_run: Option<bool>,
}

/// Every name that is an override, in the order they are reported. `auth_mode` is the incident
/// runbook's spelling of `SIGNATURE_AUTH_MODE`.
pub const OVERRIDE_NAMES: [&str; 5] = [
    "SIGNATURE_AUTH_MODE",
    "auth_mode",
    "SIGNATURE_AUTH_REQUIRED",
    "SIGNATURE_AUTH_CANARY_PERCENT",
    "SIGNATURE_AUTH_DRY_RUN",
];

pub fn parse_mode_value(s: &str) -> Result<Mode, String> {
    let t = s.trim().to_ascii_lowercase();
    Mode::NAMES
        .iter()
        .find(|(n, _)| *n == t)
        .map(|(_, m)| *m)
        .ok_or_else(|| format!("{s:?} is not a mode: expected off, hybrid or required"))
}

pub fn parse_bool_value(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean: expected true or false")),
    }
}

pub fn parse_percent_value(s: &str) -> Result<u8, String> {
    match s.trim().parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!(
            "{s:?} is not a percentage: expected a whole number 0..100"
        )),
    }
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }

    /// Apply one named value. `Ok(false)` when `name` is not an override name.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, String> {
        match name {
            "SIGNATURE_AUTH_MODE" | "auth_mode" => {
                let m = parse_mode_value(value)?;
                if self.mode.is_some_and(|old| old != m) {
                    return Err(
                        "SIGNATURE_AUTH_MODE and auth_mode are both set, to different modes".into(),
                    );
                }
                self.mode = Some(m);
            }
            "SIGNATURE_AUTH_REQUIRED" => self.required = Some(parse_bool_value(value)?),
            "SIGNATURE_AUTH_CANARY_PERCENT" => {
                self.canary_percent = Some(parse_percent_value(value)?)
            }
            "SIGNATURE_AUTH_DRY_RUN" => self.dry_run = Some(parse_bool_value(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// File overrides win over environment ones, key by key.
    pub fn merged_over(self, base: Overrides) -> Overrides {
        Overrides {
            mode: self.mode.or(base.mode),
            required: self.required.or(base.required),
            canary_percent: self.canary_percent.or(base.canary_percent),
            dry_run: self.dry_run.or(base.dry_run),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideOrigin {
    Env,
    File(PathBuf),
}

/// One override found, as written (trimmed), for `/status` and `check-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideSetting {
    pub name: String,
    pub value: String,
    pub origin: OverrideOrigin,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundOverrides {
    pub overrides: Overrides,
    pub settings: Vec<OverrideSetting>,
}

impl FoundOverrides {
    /// `files` (beside the policy) over `env` (read at start), key by key; an environment
    /// setting shadowed by a file is not listed.
    pub fn layered(env: &FoundOverrides, files: FoundOverrides) -> FoundOverrides {
        let mut settings: Vec<OverrideSetting> = env
            .settings
            .iter()
            .filter(|s| !files.settings.iter().any(|f| f.name == s.name))
            .cloned()
            .collect();
        settings.extend(files.settings);
        FoundOverrides {
            overrides: files.overrides.merged_over(env.overrides),
            settings,
        }
    }
}

fn collect(
    found: impl IntoIterator<Item = (String, String, OverrideOrigin)>,
) -> Result<FoundOverrides, ConfigErrors> {
    let mut out = FoundOverrides::default();
    let mut errors = Vec::new();
    for (name, value, origin) in found {
        match out.overrides.set(&name, &value) {
            Ok(true) => out.settings.push(OverrideSetting {
                name,
                value: value.trim().to_string(),
                origin,
            }),
            Ok(false) => {}
            Err(message) => {
                let file = match &origin {
                    OverrideOrigin::Env => "(environment)".to_string(),
                    OverrideOrigin::File(p) => p.display().to_string(),
                };
                errors.push(ConfigError {
                    file,
                    line: 1,
                    col: 1,
                    path: name,
                    message,
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Overrides among `vars` (pass `std::env::vars()`); other variables are ignored.
pub fn from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<FoundOverrides, ConfigErrors> {
    let mut found: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| OVERRIDE_NAMES.contains(&k.as_str()))
        .map(|(k, v)| (k, v, OverrideOrigin::Env))
        .collect();
    found.sort_by_key(|(k, _, _)| OVERRIDE_NAMES.iter().position(|n| n == k));
    collect(found)
}

/// Overrides stored as files named after them in `dir` (the policy's directory; on Kubernetes
/// the other keys of the same ConfigMap). Symlinks are followed, as the kubelet makes them.
pub fn from_dir(dir: &Path) -> Result<FoundOverrides, ConfigErrors> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in OVERRIDE_NAMES {
        let path = dir.join(name);
        match super::read_limited(&path) {
            Ok(bytes) => found.push((
                name.to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
                OverrideOrigin::File(path),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(ConfigError {
                file: path.display().to_string(),
                line: 1,
                col: 1,
                path: name.to_string(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    match collect(found) {
        Ok(f) if errors.is_empty() => Ok(f),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(mut e) => {
            e.0.extend(errors);
            Err(e)
        }
    }
}

/// The policy as it applies now: file values with the overrides applied. Built by
/// `Policy::effective`; cheap enough to rebuild on every reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// Mode of requests no route matches.
    pub mode: Mode,
    pub dry_run: bool,
    pub canary_percent: u8,
    /// The strictest mode any route may have under the overrides; `None` = no cap.
    pub cap: Option<Mode>,
    /// The policy's routes with their modes capped (and dry_run forced on under DRY_RUN=true).
    pub routes: Vec<Route>,
    /// `route_matching` from the file (no override changes it).
    pub route_matching: RouteMatching,
    pub overrides: Overrides,
}

impl EffectivePolicy {
    /// First matching route, or the default. Does not allocate for ordinary paths.
    pub fn route_for(&self, method: &Method, path: &str) -> RouteRef<'_> {
        routes::lookup(
            &self.routes,
            self.mode,
            self.dry_run,
            self.route_matching,
            method,
            path,
        )
    }
}

/// SPEC §3's table. `DRY_RUN=true` puts every route in dry-run (the switch means "reject
/// nothing"); `DRY_RUN=false` replaces the top-level value, so a route that explicitly says
/// `dry_run: true` keeps it: an override never makes a route stricter than its file says.
pub(crate) fn effective(p: &Policy, o: &Overrides) -> EffectivePolicy {
    let required_cap = match o.required {
        Some(false) => Some(Mode::Hybrid),
        _ => None,
    };
    let cap = match (o.mode, required_cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let capped = |m: Mode| cap.map_or(m, |c| m.capped(c));
    let force_dry = o.dry_run == Some(true);
    let routes = p
        .file
        .routes
        .iter()
        .map(|r| Route {
            mode: capped(r.mode),
            dry_run: if force_dry { Some(true) } else { r.dry_run },
            ..r.clone()
        })
        .collect();
    EffectivePolicy {
        mode: capped(o.mode.unwrap_or(p.file.mode)),
        dry_run: o.dry_run.unwrap_or(p.file.dry_run),
        canary_percent: o.canary_percent.unwrap_or(p.file.canary.percent),
        cap,
        routes,
        route_matching: p.file.route_matching,
        overrides: *o,
    }
}
