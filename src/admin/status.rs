//! The `/status` document (reference §5.2): what is in force — modes, overrides and where they came
//! from, canary, routes, policy generation and reload error, keys, replay store — read from the
//! live policy. It serves nothing (see `admin`) and changes nothing.

use std::sync::Arc;

use serde_json::json;

use super::StatusFn;
use crate::keys::KeyDirectory;
use crate::live::LivePolicy;
use crate::replay::NonceStore;

/// `/status` of a running gateway: the document, the listener's protocols and, with a key
/// directory, its state. `listener_tls`: the listener was started with TLS.
pub fn status_fn(
    live: Arc<LivePolicy>,
    replay: Arc<dyn NonceStore>,
    directory: Option<KeyDirectory>,
    listener_tls: bool,
) -> StatusFn {
    Arc::new(move || {
        let mut s = document(&live, replay.as_ref());
        for (k, v) in super::protocols::status(&live, listener_tls) {
            s[k] = v;
        }
        if let Some(d) = &directory {
            s["keys"]["directory"] = serde_json::to_value(d.status()).unwrap_or_default();
        }
        s
    })
}

/// The `/status` document (reference §5.2).
pub fn document(runtime: &LivePolicy, replay: &dyn NonceStore) -> serde_json::Value {
    let live = runtime.snapshot();
    let f = &live.policy.file;
    let overrides: serde_json::Map<String, serde_json::Value> = live
        .overrides
        .settings
        .iter()
        .map(|s| {
            let v =
                json!({"value": s.value, "source": s.origin.describe(), "sets": s.kind.as_str()});
            (s.name.clone(), v)
        })
        .collect();
    // Per setting: which name(s) set it and from where (a setting set in a file hides the
    // environment's names of it).
    let mut by_setting = serde_json::Map::new();
    for s in &live.overrides.settings {
        let entry = by_setting
            .entry(s.kind.as_str().to_owned())
            .or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!({"name": s.name, "value": s.value, "source": s.origin.describe()}));
        }
    }
    let mut sources: Vec<String> = live.keys.sources().map(ToString::to_string).collect();
    sources.sort();
    sources.dedup();
    let last_error = runtime
        .last_reload_error
        .lock()
        .ok()
        .and_then(|e| e.clone());
    json!({
        "mode": f.mode.as_str(),
        "effective_mode": live.effective.mode.as_str(),
        "overrides": overrides,
        "override_settings": by_setting,
        "force_signature_users": live.overrides.overrides.force_users,
        "dry_run": live.effective.dry_run,
        "canary_percent": runtime.canary_percent(&live),
        "canary": {
            "percent": live.effective.canary_percent,
            "effective_percent": runtime.canary_percent(&live),
            "auto_halt": live.policy.file.canary.auto_halt.map(|h| json!({
                "max_reject_percent": h.max_reject_percent,
                "window_seconds": h.window_seconds,
                "min_requests": h.min_requests,
            })),
            "halted": runtime.canary_halt.status(&live.halt_key).map(|h| json!({
                "at": h.at,
                "rejected": h.rejected,
                "total": h.total,
                "window_seconds": h.window_seconds,
                "percent_before": h.percent_before,
            })),
        },
        "routes": live.effective.routes.iter().map(|r| json!({
            "path_prefix": r.path_prefix,
            "methods": r.methods.as_ref().map(|ms| ms.iter().map(|m| m.as_str().to_owned()).collect::<Vec<_>>()),
            "mode": r.mode.as_str(),
            "dry_run": r.dry_run.unwrap_or(live.effective.dry_run),
        })).collect::<Vec<_>>(),
        "policy": {
            "path": live.policy.path.display().to_string(),
            "sha256": live.policy.sha256,
            "generation": live.generation,
            "loaded_at": live.loaded_at,
        },
        "last_reload_error": last_error,
        "restart_required": live.restart_required,
        "keys": {
            "active": live.keys.active_count(),
            "revoked": live.keys.revoked_count(),
            "sources": sources,
        },
        // The store in use is the one the process started with (restart-only keys).
        "replay": {
            "store": runtime.started.replay.backend.store_name(),
            "scope": replay.scope().as_str(),
            "target": replay.describe(),
            "entries": replay.entries(),
            "max_entries": runtime.started.replay.max_entries,
        },
        "ed25519_backend": crate::signature::ed25519_backend(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}
