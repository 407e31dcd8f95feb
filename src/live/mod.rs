//! The policy in force: one immutable `Snapshot` of policy, overrides, keys and what is derived
//! from them (`Accept-Signature`, the request path's `Hop`), held by `LivePolicy` and swapped
//! whole through `arc-swap` so a request always sees one consistent policy; `reload` notices
//! edits and asks for a new one. Building a snapshot is read → validate → derive; a snapshot
//! that fails to build never replaces the one in force.
//! It does not parse YAML (`crate::policy`) nor decide canary membership (`crate::rollout`).

pub mod reload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, PoisonError};

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::keys::{KeyIndex, KeySet};
use crate::policy::{
    self, ConfigErrors, EffectivePolicy, FoundOverrides, Policy, PolicyFile, schema,
};
use crate::proxy::Hop;
use crate::rollout::{CanaryHalt, PolicyKey};
use crate::signature::{Requirement, VerifyOptions};

/// One consistent view of everything configurable.
pub struct Snapshot {
    pub policy: Policy,
    pub overrides: FoundOverrides,
    pub effective: EffectivePolicy,
    pub keys: KeySet,
    /// `Accept-Signature` for 401s: what a client must sign to pass.
    pub accept_signature: HeaderValue,
    pub generation: u64,
    /// Unix seconds.
    pub loaded_at: i64,
    /// What a canary halt is tied to: the policy file's bytes and the overrides.
    pub halt_key: PolicyKey,
    /// What the request path reads from this policy (header names, limits, upstream).
    pub hop: Hop,
    /// Restart-only keys (`policy::schema`) whose value here differs from the one the process
    /// started with: still running with the start value until a restart.
    pub restart_required: Vec<&'static str>,
}

impl Snapshot {
    /// Derives a snapshot from a validated policy, the overrides in force and the key directory's
    /// current records (a key id in two sources is an error).
    pub fn build(
        policy: Policy,
        overrides: FoundOverrides,
        directory: &Arc<KeyIndex>,
        generation: u64,
        now: i64,
    ) -> Result<Self, String> {
        let keys = KeySet::layered(vec![policy.keys.clone(), directory.clone()])
            .map_err(|e| e.join("; "))?;
        let hop = Hop::from_policy_files(&policy.file, &policy.tls_files)?;
        let accept_signature = accept_signature(&policy.file.signature.verify);
        let effective = policy.effective(&overrides.overrides);
        let halt_key = PolicyKey {
            sha256: policy.sha256.clone(),
            overrides: overrides.overrides.clone(),
        };
        Ok(Self {
            policy,
            overrides,
            effective,
            keys,
            accept_signature,
            generation,
            loaded_at: now,
            halt_key,
            hop,
            restart_required: Vec::new(),
        })
    }

    pub fn active_keys(&self) -> usize {
        self.keys.active_count()
    }

    /// What the verifier checks: the policy's `signature:` section as parsed (no second copy).
    pub fn verify_options(&self) -> &VerifyOptions {
        &self.policy.file.signature.verify
    }
}

/// RFC 9421 §5.1: `sig1=("@method" "@authority" "@path" "content-digest");created;keyid;nonce;alg="ed25519"`.
fn accept_signature(v: &VerifyOptions) -> HeaderValue {
    let mut ids: Vec<&str> = v
        .required_components
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    if v.body_digest == Requirement::Required {
        ids.push("\"content-digest\"");
    }
    let mut s = format!(
        "{}=({});created;keyid",
        v.label.as_deref().unwrap_or("sig1"),
        ids.join(" ")
    );
    if v.nonce == Requirement::Required {
        s.push_str(";nonce");
    }
    s.push_str(";alg=\"ed25519\"");
    if let Some(tag) = &v.tag {
        s.push_str(&format!(";tag=\"{tag}\""));
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| {
        HeaderValue::from_static("sig1=(\"@method\" \"@authority\" \"@path\");created;keyid")
    })
}

/// The snapshot in force, how it was loaded, and the last reload error.
pub struct LivePolicy {
    pub live: ArcSwap<Snapshot>,
    pub path: PathBuf,
    /// Overrides from the environment, read once at start; files beside the policy win.
    pub env_overrides: FoundOverrides,
    /// The policy file the process started with: what the restart-only keys are running with.
    pub started: PolicyFile,
    pub last_reload_error: Mutex<Option<String>>,
    /// The canary auto-halt state; survives reloads, cleared by a policy change.
    pub canary_halt: CanaryHalt,
    /// The key directory's last applied records. The lock also serialises snapshot rebuilds, so a
    /// policy reload and a directory update cannot overwrite each other's keys.
    directory_keys: Mutex<Arc<KeyIndex>>,
    /// The key files as last parsed: a reload re-reads only those that changed.
    pub key_cache: policy::KeyFileCache,
}

impl LivePolicy {
    /// Loads the policy, the override files beside it and the key files; every problem is an
    /// error naming file:line:col.
    pub fn load(path: &Path, env: FoundOverrides, now: i64) -> Result<Self, ConfigErrors> {
        let key_cache = policy::KeyFileCache::new();
        let live = load_live(path, &env, &Arc::new(KeyIndex::empty()), 1, now, &key_cache)?;
        Ok(Self {
            started: live.policy.file.clone(),
            live: ArcSwap::from_pointee(live),
            path: path.to_path_buf(),
            env_overrides: env,
            last_reload_error: Mutex::new(None),
            canary_halt: CanaryHalt::new(),
            directory_keys: Mutex::new(Arc::new(KeyIndex::empty())),
            key_cache,
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// The canary percent in force for `live`: the effective one, or 0 while auto-halted.
    pub fn canary_percent(&self, live: &Snapshot) -> u8 {
        self.canary_halt
            .effective_percent(&live.halt_key, live.effective.canary_percent)
    }

    /// Re-reads everything; on success swaps the snapshot in, on failure keeps the old one and
    /// remembers the error. Returns whether anything changed. Restart-only keys that now differ
    /// from the start values are listed in the snapshot's `restart_required` and logged at error
    /// level: the reload applies everything else.
    pub fn reload(&self, now: i64) -> Result<bool, String> {
        let directory = self
            .directory_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.live.load();
        let generation = current.generation + 1;
        match load_live(
            &self.path,
            &self.env_overrides,
            &directory,
            generation,
            now,
            &self.key_cache,
        ) {
            Ok(mut next) => {
                next.restart_required = schema::restart_pending(&self.started, &next.policy.file);
                if !next.restart_required.is_empty() {
                    tracing::error!(
                        restart_required = ?next.restart_required,
                        "policy reloaded; a restart is required for {}: until then the process keeps the values it started with",
                        next.restart_required.join(", ")
                    );
                }
                let changed = next.policy != current.policy || next.overrides != current.overrides;
                if changed {
                    self.live.store(Arc::new(next));
                }
                if let Ok(mut e) = self.last_reload_error.lock() {
                    *e = None;
                }
                Ok(changed)
            }
            Err(errors) => {
                let msg = errors.to_string();
                if let Ok(mut e) = self.last_reload_error.lock() {
                    *e = Some(msg.clone());
                }
                Err(msg)
            }
        }
    }
}

impl LivePolicy {
    /// The key directory fetched new records: rebuild the snapshot with them (same policy, same
    /// generation and load time). On a key id clash the snapshot in force stays and the error goes
    /// back to the directory, which keeps its previous records and shows the error in `/status`.
    pub fn set_directory_keys(&self, records: Arc<KeyIndex>) -> Result<(), String> {
        let mut directory = self
            .directory_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.live.load_full();
        let mut next = Snapshot::build(
            current.policy.clone(),
            current.overrides.clone(),
            &records,
            current.generation,
            current.loaded_at,
        )?;
        next.restart_required = current.restart_required.clone();
        *directory = records;
        self.live.store(Arc::new(next));
        Ok(())
    }
}

fn load_live(
    path: &Path,
    env: &FoundOverrides,
    directory: &Arc<KeyIndex>,
    generation: u64,
    now: i64,
    key_cache: &policy::KeyFileCache,
) -> Result<Snapshot, ConfigErrors> {
    let policy = policy::load_cached(path, key_cache)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let files = policy::overrides_from_dir(dir)?;
    let overrides = FoundOverrides::layered(env, files);
    policy::check_overrides(&policy, &overrides)?;
    Snapshot::build(policy, overrides, directory, generation, now).map_err(|message| {
        ConfigErrors(vec![policy::ConfigError {
            file: path.display().to_string(),
            line: 1,
            col: 1,
            path: String::new(),
            message,
        }])
    })
}
