//! The emergency switches of reference §3.7 (`SIGNATURE_AUTH_*`) and the DataFold migration guide's
//! feature flags that mean the same things (`AUTH_MODE`, `SIGNATURE_AUTH_ENABLED`,
//! `SIGNATURE_AUTH_PERCENTAGE`, `FORCE_SIGNATURE_USERS`): parsing their string values, finding
//! them in the environment or as files beside the policy, refusing two names that set one
//! setting to different values, and the pure function that applies them to a policy
//! (`Policy::effective`). Watching for changes is the reload code's job.
use super::Policy;
use super::canary::{CallerMatcher, CanaryPolicy, LegacyUserHash};
use super::error::{ConfigError, ConfigErrors};
use super::routes::{self, Route, RouteMatching, RouteRef};
use super::types::Mode;
use http::Method;
use std::path::{Path, PathBuf};

/// What an override name sets. Two names of one setting in one place (both files, or both
/// environment variables) must agree; a setting found in a file hides the environment's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverrideKind {
    Mode,
    Required,
    CanaryPercent,
    DryRun,
    ForceUsers,
}

impl OverrideKind {
    /// The `/status` and `check-config` name of the setting.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mode => "mode",
            Self::Required => "required",
            Self::CanaryPercent => "canary_percent",
            Self::DryRun => "dry_run",
            Self::ForceUsers => "force_users",
        }
    }
}

/// Live overrides; `None` = not set, the policy file decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `SIGNATURE_AUTH_MODE` (alias `auth_mode`; `SIGNATURE_AUTH_ENABLED=false` is `off`;
    /// `AUTH_MODE` in the migration guide's words): replaces `mode` and caps every route.
    pub mode: Option<Mode>,
    /// The mode was set by `AUTH_MODE` alone: as in the migration guide, `AUTH_MODE=hybrid`
    /// is the state in which the canary (`SIGNATURE_AUTH_PERCENTAGE`, `FORCE_SIGNATURE_USERS`)
    /// runs, so it caps the routes but not the canary. Our `SIGNATURE_AUTH_MODE=hybrid` is the
    /// emergency rollback and stops the canary too.
    pub mode_keeps_canary: bool,
    /// `SIGNATURE_AUTH_REQUIRED`: `false` caps every route at hybrid; `true` adds no cap.
    pub required: Option<bool>,
    /// `SIGNATURE_AUTH_CANARY_PERCENT` (alias `SIGNATURE_AUTH_PERCENTAGE`): replaces
    /// `canary.percent`.
    pub canary_percent: Option<u8>,
    /// `SIGNATURE_AUTH_DRY_RUN`: replaces `dry_run`.
    pub dry_run: Option<bool>,
    /// `FORCE_SIGNATURE_USERS=a,b`: `client:a`, `client:b` join `canary.always_require`.
    pub force_users: Vec<String>,
}

/// Every name that is an override, in the order they are reported: ours (reference §3.7;
/// `auth_mode` is the incident runbook's spelling of `SIGNATURE_AUTH_MODE`), then the migration
/// guide's.
pub const OVERRIDE_NAMES: [&str; 9] = [
    "SIGNATURE_AUTH_MODE",
    "auth_mode",
    "SIGNATURE_AUTH_REQUIRED",
    "SIGNATURE_AUTH_CANARY_PERCENT",
    "SIGNATURE_AUTH_DRY_RUN",
    "AUTH_MODE",
    "SIGNATURE_AUTH_ENABLED",
    "SIGNATURE_AUTH_PERCENTAGE",
    "FORCE_SIGNATURE_USERS",
];

/// At most this many users in `FORCE_SIGNATURE_USERS` (a list, not a user database).
pub const MAX_FORCE_USERS: usize = 10_000;

pub fn parse_mode_value(s: &str) -> Result<Mode, String> {
    let t = s.trim().to_ascii_lowercase();
    Mode::NAMES
        .iter()
        .find(|(n, _)| *n == t)
        .map(|(_, m)| *m)
        .ok_or_else(|| format!("{s:?} is not a mode: expected off, hybrid or required"))
}

/// `AUTH_MODE` of the migration guide: `legacy` (legacy auth only: we check nothing), `hybrid`,
/// `signature` (signatures only).
pub fn parse_guide_mode_value(s: &str) -> Result<Mode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "legacy" => Ok(Mode::Off),
        "hybrid" => Ok(Mode::Hybrid),
        "signature" => Ok(Mode::Required),
        _ => Err(format!(
            "{s:?} is not an AUTH_MODE: expected legacy, hybrid or signature (sigproxy's own off | hybrid | required go in SIGNATURE_AUTH_MODE)"
        )),
    }
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

/// `a,b,c`: user ids separated by commas (spaces around them ignored, empty entries skipped). An
/// id is printable ASCII without spaces, at most 256 bytes.
pub fn parse_users_value(s: &str) -> Result<Vec<String>, String> {
    let mut users: Vec<String> = Vec::new();
    for u in s.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        if u.len() > 256 || !u.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{u:?} is not a user id: printable ASCII without spaces, at most 256 bytes, separated by commas"
            ));
        }
        if !users.iter().any(|x| x == u) {
            users.push(u.to_owned());
        }
    }
    if users.len() > MAX_FORCE_USERS {
        return Err(format!("{} users: at most {MAX_FORCE_USERS}", users.len()));
    }
    Ok(users)
}

/// One override's value as it sets its setting. `Mode(None)` is `SIGNATURE_AUTH_ENABLED=true`:
/// checking on, at the policy's mode; `GuideMode` is `AUTH_MODE` (see `mode_keeps_canary`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideValue {
    Mode(Option<Mode>),
    GuideMode(Mode),
    Bool(bool),
    Percent(u8),
    Users(Vec<String>),
}

impl OverrideValue {
    /// What the named override means, or why its value is not valid. `Ok(None)` for a name that
    /// is not an override.
    pub fn parse(name: &str, value: &str) -> Result<Option<(OverrideKind, OverrideValue)>, String> {
        use OverrideValue as V;
        Ok(Some(match name {
            "SIGNATURE_AUTH_MODE" | "auth_mode" => {
                (OverrideKind::Mode, V::Mode(Some(parse_mode_value(value)?)))
            }
            "AUTH_MODE" => (
                OverrideKind::Mode,
                V::GuideMode(parse_guide_mode_value(value)?),
            ),
            "SIGNATURE_AUTH_ENABLED" => {
                let on = parse_bool_value(value)?;
                (OverrideKind::Mode, V::Mode((!on).then_some(Mode::Off)))
            }
            "SIGNATURE_AUTH_REQUIRED" => {
                (OverrideKind::Required, V::Bool(parse_bool_value(value)?))
            }
            "SIGNATURE_AUTH_CANARY_PERCENT" | "SIGNATURE_AUTH_PERCENTAGE" => (
                OverrideKind::CanaryPercent,
                V::Percent(parse_percent_value(value)?),
            ),
            "SIGNATURE_AUTH_DRY_RUN" => (OverrideKind::DryRun, V::Bool(parse_bool_value(value)?)),
            "FORCE_SIGNATURE_USERS" => (
                OverrideKind::ForceUsers,
                V::Users(parse_users_value(value)?),
            ),
            _ => return Ok(None),
        }))
    }

    /// Two names of one setting, read together: the value both mean, or `None` when they
    /// disagree. `SIGNATURE_AUTH_ENABLED=true` agrees with any mode but `off`; `AUTH_MODE`
    /// agrees with our name for the same mode, which then decides (it is the stricter switch).
    fn agree(&self, other: &OverrideValue) -> Option<OverrideValue> {
        use OverrideValue as V;
        match (self, other) {
            (a, b) if a == b => Some(a.clone()),
            (V::GuideMode(g), V::Mode(Some(m))) | (V::Mode(Some(m)), V::GuideMode(g)) if g == m => {
                Some(V::Mode(Some(*m)))
            }
            (V::GuideMode(g), V::Mode(None)) | (V::Mode(None), V::GuideMode(g))
                if *g != Mode::Off =>
            {
                Some(V::GuideMode(*g))
            }
            (OverrideValue::Mode(None), OverrideValue::Mode(Some(m)))
            | (OverrideValue::Mode(Some(m)), OverrideValue::Mode(None))
                if *m != Mode::Off =>
            {
                Some(OverrideValue::Mode(Some(*m)))
            }
            _ => None,
        }
    }
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideOrigin {
    Env,
    File(PathBuf),
}

impl OverrideOrigin {
    /// `environment`, or the file's path: where `/status` says a value came from.
    pub fn describe(&self) -> String {
        match self {
            OverrideOrigin::Env => "environment".to_owned(),
            OverrideOrigin::File(p) => p.display().to_string(),
        }
    }
}

/// One override found, as written (trimmed), for `/status` and `check-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverrideSetting {
    pub name: String,
    pub value: String,
    pub origin: OverrideOrigin,
    pub kind: OverrideKind,
    pub parsed: OverrideValue,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundOverrides {
    pub overrides: Overrides,
    pub settings: Vec<OverrideSetting>,
}

impl FoundOverrides {
    /// `files` (beside the policy) over `env` (read at start), setting by setting: a setting a
    /// file sets hides every environment name of that setting (`SIGNATURE_AUTH_PERCENTAGE` in a
    /// file hides `SIGNATURE_AUTH_CANARY_PERCENT` from the environment); hidden ones are not
    /// listed.
    pub fn layered(env: &FoundOverrides, files: FoundOverrides) -> FoundOverrides {
        let mut settings: Vec<OverrideSetting> = env
            .settings
            .iter()
            .filter(|s| !files.settings.iter().any(|f| f.kind == s.kind))
            .cloned()
            .collect();
        settings.extend(files.settings);
        FoundOverrides {
            overrides: fold(&settings),
            settings,
        }
    }

    /// The names (with their origin) that set `kind`.
    pub fn set_by(&self, kind: OverrideKind) -> impl Iterator<Item = &OverrideSetting> {
        self.settings.iter().filter(move |s| s.kind == kind)
    }
}

/// The overrides the settings mean. Settings of one setting have been checked to agree (one
/// layer) or come from one layer only (`layered`); the last agreeing value is kept.
fn fold(settings: &[OverrideSetting]) -> Overrides {
    let mut o = Overrides::default();
    let mut seen: Vec<(OverrideKind, OverrideValue)> = Vec::new();
    for s in settings {
        let v = match seen.iter().find(|(k, _)| *k == s.kind) {
            Some((_, prev)) => prev.agree(&s.parsed).unwrap_or_else(|| s.parsed.clone()),
            None => s.parsed.clone(),
        };
        seen.retain(|(k, _)| *k != s.kind);
        seen.push((s.kind, v));
    }
    for (setting, v) in seen {
        match (setting, v) {
            (OverrideKind::Mode, OverrideValue::Mode(m)) => o.mode = m,
            (OverrideKind::Mode, OverrideValue::GuideMode(m)) => {
                o.mode = Some(m);
                o.mode_keeps_canary = true;
            }
            (OverrideKind::Required, OverrideValue::Bool(b)) => o.required = Some(b),
            (OverrideKind::CanaryPercent, OverrideValue::Percent(p)) => o.canary_percent = Some(p),
            (OverrideKind::DryRun, OverrideValue::Bool(b)) => o.dry_run = Some(b),
            (OverrideKind::ForceUsers, OverrideValue::Users(u)) => o.force_users = u,
            _ => {}
        }
    }
    o
}

fn collect(
    found: impl IntoIterator<Item = (String, String, OverrideOrigin)>,
) -> Result<FoundOverrides, ConfigErrors> {
    let mut settings: Vec<OverrideSetting> = Vec::new();
    let mut errors = Vec::new();
    for (name, value, origin) in found {
        let error = |message: String| ConfigError {
            file: match &origin {
                OverrideOrigin::Env => "(environment)".to_string(),
                OverrideOrigin::File(p) => p.display().to_string(),
            },
            line: 1,
            col: 1,
            path: name.clone(),
            message,
        };
        match OverrideValue::parse(&name, &value) {
            Ok(Some((setting, parsed))) => {
                let trimmed = value.trim().to_string();
                // Another name of the same setting, here too: they must mean the same.
                if let Some(other) = settings
                    .iter()
                    .filter(|s| s.kind == setting)
                    .find(|s| s.parsed.agree(&parsed).is_none())
                {
                    errors.push(error(format!(
                        "{}={} and {name}={trimmed} are both set and disagree (both set the {}); remove one",
                        other.name,
                        other.value,
                        setting_words(setting),
                    )));
                    continue;
                }
                settings.push(OverrideSetting {
                    name: name.clone(),
                    value: trimmed,
                    origin: origin.clone(),
                    kind: setting,
                    parsed,
                });
            }
            Ok(None) => {}
            Err(message) => errors.push(error(message)),
        }
    }
    if errors.is_empty() {
        Ok(FoundOverrides {
            overrides: fold(&settings),
            settings,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

fn setting_words(s: OverrideKind) -> &'static str {
    match s {
        OverrideKind::Mode => "mode",
        OverrideKind::Required => "required cap",
        OverrideKind::CanaryPercent => "canary percent",
        OverrideKind::DryRun => "dry run",
        OverrideKind::ForceUsers => "forced users",
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
    /// The strictest mode the canary may raise a hybrid route to under the overrides; `None` =
    /// no cap. (The routes' own caps are applied to `routes` and `mode` already.)
    pub cap: Option<Mode>,
    /// The policy's routes with their modes capped (and dry_run forced on under DRY_RUN=true).
    pub routes: Vec<Route>,
    /// `route_matching` from the file (no override changes it).
    pub route_matching: RouteMatching,
    /// The policy's canary with `FORCE_SIGNATURE_USERS` added to `always_require` as `client:`
    /// matchers.
    pub canary: CanaryPolicy,
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

/// Reference §3.7's table. `DRY_RUN=true` puts every route in dry-run (the switch means "reject
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
    let canary_cap = if o.mode_keeps_canary {
        required_cap
    } else {
        cap
    };
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
        cap: canary_cap,
        routes,
        route_matching: p.file.route_matching,
        canary: effective_canary(&p.file.canary, &o.force_users),
        overrides: o.clone(),
    }
}

/// `canary` with `users` required to sign. Hashed legacy identities are compared in lowercase hex.
fn effective_canary(canary: &CanaryPolicy, users: &[String]) -> CanaryPolicy {
    let mut c = canary.clone();
    let hashed = c
        .legacy_user
        .as_ref()
        .is_some_and(|l| l.hash == LegacyUserHash::Sha256);
    for u in users {
        let id = if hashed {
            u.to_ascii_lowercase()
        } else {
            u.clone()
        };
        let m = CallerMatcher::Client(id);
        if !c.always_require.contains(&m) {
            c.always_require.push(m);
        }
    }
    c
}

/// Overrides that make sense only with something in the policy: `FORCE_SIGNATURE_USERS` needs
/// `canary.legacy_user` (else no unsigned caller could ever be recognised as one of them, and
/// the setting would be silently without effect), and with `hash: sha256` its users are SHA-256
/// hex digests.
pub fn check_against(p: &Policy, found: &FoundOverrides) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for s in found.set_by(OverrideKind::ForceUsers) {
        let OverrideValue::Users(users) = &s.parsed else {
            continue;
        };
        let error = |message: String| ConfigError {
            file: match &s.origin {
                OverrideOrigin::Env => "(environment)".to_string(),
                OverrideOrigin::File(p) => p.display().to_string(),
            },
            line: 1,
            col: 1,
            path: s.name.clone(),
            message,
        };
        match &p.file.canary.legacy_user {
            None if !users.is_empty() => errors.push(error(format!(
                "names users, but {} has no canary.legacy_user to recognise an unsigned caller as one: add canary.legacy_user.header (the header your legacy auth sets or reads)",
                p.path.display()
            ))),
            Some(l) if l.hash == LegacyUserHash::Sha256 => {
                if let Some(u) = users
                    .iter()
                    .find(|u| u.len() != 64 || !u.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    errors.push(error(format!(
                        "{u:?} is not a SHA-256 hex digest, and canary.legacy_user.hash is sha256: list the digests of the {} values (printf %s VALUE | sha256sum)",
                        l.header
                    )));
                }
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}
