//! The policy file of reference §3: YAML 1.2 text → validated, typed `Policy`, with every error
//! collected and reported as `file:line:col: path: message`, plus the live overrides and the
//! effective view they produce. It does not watch files or swap policies at run time (reload),
//! and it does not decide requests (`crate::decision`).

mod canary;
mod error;
mod file;
mod identity;
mod key_entries;
mod limits;
mod listener;
mod network;
mod overrides;
mod reader;
mod readiness;
pub mod replay;
mod routes;
pub mod schema;
mod signature;
mod tls_files;
mod types;
mod yaml;

#[cfg(test)]
mod tests;

pub use crate::keys::{KeySource, KeyStatus};
pub use canary::{AutoHalt, CallerMatcher, CanaryPolicy, LegacyUser, LegacyUserHash, StickyOn};
pub use error::{ConfigError, ConfigErrors};
pub use file::{FailureRateLimit, KeyDirectory, PolicyFile};
pub use identity::{DEFAULT_OVERRIDE_HEADERS, IdentityPolicy};
pub use key_entries::{CacheCounts, FileStamp, KeyEntry, KeyFileCache, RACY as KEY_FILE_RACY};
pub use limits::Limits;
pub use listener::{Buffers, Http2, TlsListener};
pub use network::{Upstream, UpstreamTls};
pub use overrides::{
    EffectivePolicy, FoundOverrides, MAX_FORCE_USERS, OVERRIDE_NAMES, OverrideKind, OverrideOrigin,
    OverrideSetting, OverrideValue, Overrides, check_against as check_overrides,
    from_dir as overrides_from_dir, from_env as overrides_from_env, parse_bool_value,
    parse_guide_mode_value, parse_mode_value, parse_percent_value, parse_users_value,
};
pub use readiness::{OnReadyTimeout, ReadinessPolicy};
pub use replay::{
    OnStoreError, RedisTarget, RedisTopology, ReplayBackend, ReplayPolicy, ReplayScope,
    SecretSource, redact_url,
};
pub use routes::{Route, RouteMatching, RouteRef};
pub use signature::SignaturePolicy;
pub use tls_files::{PemFile, TlsFiles};
pub use types::{Mode, Requirement, Scheme};
pub use yaml::Pos;

use error::Diag;
use http::Method;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A validated policy: the file as written plus every key entry from every source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub file: PolicyFile,
    /// Every key: the inline keys' table first, then one table per key file in sorted path
    /// order; key ids are unique across them.
    pub keys: Arc<crate::keys::KeyIndex>,
    /// The key files `key_files` matched, to watch and to report.
    pub key_file_paths: Vec<PathBuf>,
    /// The PEM files `tls` and `upstream_tls` name, as read (part of the policy: a change to
    /// one is a reload).
    pub tls_files: TlsFiles,
    /// The policy file's path (as given).
    pub path: PathBuf,
    /// Hex sha256 of the policy file's raw bytes.
    pub sha256: String,
}

impl Policy {
    /// Route lookup on the file as written (no overrides). Per request, prefer
    /// `EffectivePolicy::route_for`.
    pub fn route_for(&self, method: &Method, path: &str) -> RouteRef<'_> {
        routes::lookup(
            &self.file.routes,
            self.file.mode,
            self.file.dry_run,
            self.file.route_matching,
            method,
            path,
        )
    }

    /// The policy with `overrides` applied (reference §3.7). Pure.
    pub fn effective(&self, overrides: &Overrides) -> EffectivePolicy {
        overrides::effective(self, overrides)
    }
}

/// Read and validate the policy file at `path`, and the key files it names.
pub fn load(path: &Path) -> Result<Policy, ConfigErrors> {
    load_inner(path, None)
}

/// `load`, reading and parsing only the key files that changed since `cache` last saw them
/// (`key_entries::cache`): what a reload at a million keys needs.
pub fn load_cached(path: &Path, cache: &KeyFileCache) -> Result<Policy, ConfigErrors> {
    load_inner(path, Some(cache))
}

fn load_inner(path: &Path, cache: Option<&KeyFileCache>) -> Result<Policy, ConfigErrors> {
    let name = path.display().to_string();
    let bytes = read_limited(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            line: 1,
            col: 1,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse_bytes(&bytes, &name, Files::Read(cache))
}

/// No policy or key file is anywhere near this; refusing bigger ones keeps a wrong path (a log,
/// a device) from being read whole.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Read a whole file of at most `MAX_FILE_BYTES`.
pub(crate) fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    // Sized up front: a key file of a few MiB read by doubling leaves the smaller copies behind.
    let hint = file
        .metadata()
        .map_or(0, |m| m.len().min(MAX_FILE_BYTES) as usize);
    let mut bytes = Vec::with_capacity(hint + 1);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Validate policy `text`; `file_name` is used in messages and as the base for relative
/// `key_files` patterns (which are read from disk).
pub fn parse(text: &str, file_name: &str) -> Result<Policy, ConfigErrors> {
    parse_bytes(text.as_bytes(), file_name, Files::Read(None))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Entry points for the cargo-fuzz targets in `fuzz/` (not an API; no disk access).
#[doc(hidden)]
pub mod fuzzing {
    use super::{ConfigErrors, Files, Policy};

    /// `parse` without reading `key_files` or TLS files (a fuzzer must not read `/dev/stdin`).
    pub fn parse_offline(text: &[u8]) -> Result<Policy, ConfigErrors> {
        super::parse_bytes(text, "fuzz.yaml", Files::Skip)
    }

    /// A key file's text, as `key_files` entries are read.
    pub fn parse_key_file(text: &str) -> usize {
        let (keys, errors) =
            super::key_entries::parse_key_file(text, std::path::Path::new("keys.yaml"));
        keys.len() + errors.len()
    }
}

/// Whether parsing reads the files the policy names (`key_files`, TLS PEM files).
enum Files<'a> {
    Read(Option<&'a KeyFileCache>),
    /// Only the fuzz targets: the policy text alone.
    Skip,
}

fn parse_bytes(bytes: &[u8], file_name: &str, files: Files<'_>) -> Result<Policy, ConfigErrors> {
    let mut d = Diag::new(file_name);
    let sha256 = sha256_hex(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            d.err(
                Pos { line, col: 1 },
                "",
                "the policy file is not valid UTF-8",
            );
            return Err(ConfigErrors(d.errors));
        }
    };
    let root = match yaml::parse_document(text) {
        Err((pos, msg)) => {
            d.err(pos, "", format!("YAML syntax error: {msg}"));
            return Err(ConfigErrors(d.errors));
        }
        Ok(root) => root,
    };
    // Every key has a default, so an empty document would be a valid policy: hybrid, no keys.
    // It is what a failed render, a truncation (`> policy.yaml`) or a wrong mount leaves, never
    // what an operator means, so it is refused rather than silently weakening enforcement.
    let root = match root {
        Some(n) if matches!(&n.value, yaml::Value::Map(m) if !m.is_empty()) => n,
        other => {
            let (pos, what) = match &other {
                None => (Pos { line: 1, col: 1 }, "the policy is empty".to_owned()),
                Some(n) if n.value == yaml::Value::Null => {
                    (Pos { line: 1, col: 1 }, "the policy is empty".to_owned())
                }
                Some(n) if matches!(n.value, yaml::Value::Map(_)) => {
                    (n.pos, "the policy is an empty mapping".to_owned())
                }
                Some(n) => {
                    let msg = format!(
                        "expected a mapping, got {}: a policy is a mapping of keys (mode:, upstream:, ...)",
                        n.kind()
                    );
                    d.err(n.pos, "", msg);
                    return Err(ConfigErrors(d.errors));
                }
            };
            d.err(
                pos,
                "",
                format!(
                    "{what} (a failed render or a truncated file?); write at least `mode:` and `upstream:`"
                ),
            );
            return Err(ConfigErrors(d.errors));
        }
    };
    let file = file::parse(&mut d, &root);
    let mut errors = d.errors;
    let base = Path::new(file_name).parent().unwrap_or(Path::new("."));
    let (keys, key_file_paths, tls_files) = match files {
        Files::Read(cache) => {
            let (keys, paths) =
                key_entries::gather(&file, &root, base, file_name, &mut errors, cache);
            let tls = tls_files::gather(&file, &root, base, file_name, &mut errors);
            (keys, paths, tls)
        }
        Files::Skip => {
            let mut offline = file.clone();
            offline.key_files.clear();
            let (keys, paths) =
                key_entries::gather(&offline, &root, base, file_name, &mut errors, None);
            (keys, paths, TlsFiles::default())
        }
    };
    errors.sort_by(|a, b| {
        (a.file != file_name, &a.file, a.line, a.col).cmp(&(
            b.file != file_name,
            &b.file,
            b.line,
            b.col,
        ))
    });
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Policy {
        file,
        keys,
        key_file_paths,
        tls_files,
        path: PathBuf::from(file_name),
        sha256,
    })
}

/// `mode`, which YAML 1.1 tools may have turned into a boolean: `mode: off` is Mode::Off here
/// (YAML 1.2), but `mode: false` is refused rather than guessed, with a hint.
pub(crate) fn parse_mode(d: &mut Diag, n: &yaml::Node, path: &str) -> Option<Mode> {
    if let yaml::Value::Bool(b) = n.value {
        let hint = if b {
            ""
        } else {
            "; to turn checking off write `off` (YAML 1.2 keeps it a string)"
        };
        d.err(
            n.pos,
            path,
            format!("expected one of off | hybrid | required, got boolean {b}{hint}"),
        );
        return None;
    }
    reader::choice(d, n, path, &Mode::NAMES)
}
