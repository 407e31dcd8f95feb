//! Noticing that the policy changed: a polling watcher over the policy file, the override files
//! beside it, the key files and the directories `key_files` lists, the PEM files of `tls` and
//! `upstream_tls`, plus `SIGHUP`. A change is
//! debounced (the files must read the same twice in a row), then handed to
//! `LivePolicy::reload`. It does not parse or validate anything itself.
//!
//! Why polling rather than inotify: every path is re-resolved on every tick, so a ConfigMap's
//! `..data` symlink swap, a write-and-rename and an in-place write all look the same (the bytes
//! read through the path changed) and no watch can die with a replaced inode or directory.
//! The cost is reading a few small files every `interval` (250 ms), which bounds the reaction
//! time well under the 2 s of reference §3.8 without a new dependency or per-platform code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::live::{LivePolicy, Snapshot};
use crate::policy::{self, OVERRIDE_NAMES};

/// How often the files are read.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// A change must hold still this long before it is applied (editors write in several steps).
pub const SETTLE: Duration = Duration::from_millis(100);
/// A file that keeps changing is applied anyway after this long.
pub const MAX_SETTLE: Duration = Duration::from_secs(1);

/// What one reload attempt did.
#[derive(Clone, Debug)]
pub enum ReloadEvent {
    /// The new files validated; `changed` when the snapshot was swapped. `latency`: from the
    /// change being noticed (or the SIGHUP) to the new snapshot in force.
    Applied {
        changed: bool,
        generation: u64,
        latency: Duration,
    },
    /// The new files did not validate; the previous snapshot stays.
    Refused { error: String },
}

/// Why a reload was attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Sighup,
}

impl Trigger {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileChange => "file_change",
            Self::Sighup => "sighup",
        }
    }
}

pub type OnReload = Box<dyn Fn(&LivePolicy, Trigger, &ReloadEvent) + Send>;

/// Starts the watcher thread (and the `SIGHUP` listener on Unix). The `SIGHUP` handler is
/// installed before this returns, so a `SIGHUP` after it can no longer kill the process.
pub fn spawn(
    runtime: Arc<LivePolicy>,
    clock: fn() -> i64,
    on_reload: OnReload,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<()>();
    listen_sighup(tx)?;
    std::thread::Builder::new()
        .name("sigproxy-watch".into())
        .spawn(move || watch_loop(&runtime, &rx, clock, &on_reload))
        .map_err(|e| format!("cannot start the policy watcher: {e}"))?;
    Ok(())
}

fn watch_loop(runtime: &LivePolicy, hup: &mpsc::Receiver<()>, clock: fn() -> i64, f: &OnReload) {
    let cache = Some(&runtime.key_cache);
    let noticed = Instant::now();
    let mut last = fingerprint_with(&runtime.path, &runtime.snapshot(), cache);
    // An edit made between the load and this first fingerprint (reading many freshly written key
    // files takes a while) is in `last` already and would never be seen: reload once now. With
    // nothing changed this swaps nothing and reports nothing.
    match runtime.reload(clock()) {
        Ok(false) => {}
        Ok(true) => f(
            runtime,
            Trigger::FileChange,
            &ReloadEvent::Applied {
                changed: true,
                generation: runtime.snapshot().generation,
                latency: noticed.elapsed(),
            },
        ),
        Err(error) => f(
            runtime,
            Trigger::FileChange,
            &ReloadEvent::Refused { error },
        ),
    }
    let mut hup_open = true;
    loop {
        let trigger = if hup_open {
            match hup.recv_timeout(INTERVAL) {
                Ok(()) => Some(Trigger::Sighup),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    hup_open = false;
                    None
                }
            }
        } else {
            std::thread::sleep(INTERVAL);
            None
        };
        let live = runtime.snapshot();
        let now_fp = fingerprint_with(&runtime.path, &live, cache);
        let noticed = Instant::now();
        let trigger = match trigger {
            Some(t) => t,
            None if now_fp != last => Trigger::FileChange,
            None => continue,
        };
        let settled = settle(now_fp, || fingerprint_with(&runtime.path, &live, cache));
        // Fingerprints are taken over the files the old snapshot names; if the reload changes
        // that set (a new key file), the next tick sees a difference and reloads once more,
        // harmlessly, rather than missing an edit made in between.
        last = settled;
        let event = match runtime.reload(clock()) {
            Ok(changed) => ReloadEvent::Applied {
                changed,
                generation: runtime.snapshot().generation,
                latency: noticed.elapsed(),
            },
            Err(error) => ReloadEvent::Refused { error },
        };
        f(runtime, trigger, &event);
    }
}

/// Waits until two reads `SETTLE` apart agree (at most `MAX_SETTLE`); returns the last one.
fn settle(mut fp: [u8; 32], read: impl Fn() -> [u8; 32]) -> [u8; 32] {
    let until = Instant::now() + MAX_SETTLE;
    loop {
        std::thread::sleep(SETTLE);
        let next = read();
        if next == fp || Instant::now() >= until {
            return next;
        }
        fp = next;
    }
}

/// Every path whose bytes (or absence) decide the snapshot, and the directories whose listing
/// decides which key files a pattern matches.
pub fn watched(policy_path: &Path, live: &Snapshot) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let dir = policy_dir(policy_path);
    let mut files = vec![policy_path.to_path_buf()];
    files.extend(OVERRIDE_NAMES.iter().map(|n| dir.join(n)));
    files.extend(live.policy.key_file_paths.iter().cloned());
    // The listener's certificate, key and client CA, the upstream's CA: a rotated Secret reloads.
    files.extend(live.policy.tls_files.paths());
    let mut dirs: Vec<PathBuf> = live
        .policy
        .file
        .key_files
        .iter()
        .filter_map(|p| dir.join(p).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    (files, dirs)
}

fn policy_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// A digest of what the watched paths read as now (content, not mtime: mtimes can be coarse and
/// the kubelet's swap keeps them).
pub fn fingerprint(policy_path: &Path, live: &Snapshot) -> [u8; 32] {
    fingerprint_with(policy_path, live, None)
}

/// `fingerprint`, with the content of key files (a million keys can be 140 MB of them) taken
/// from `key_cache`: re-read only when their `stat` stamp moved or is racy (`policy::FileStamp`).
pub fn fingerprint_with(
    policy_path: &Path,
    live: &Snapshot,
    key_cache: Option<&policy::KeyFileCache>,
) -> [u8; 32] {
    let (files, dirs) = watched(policy_path, live);
    let key_files = &live.policy.key_file_paths;
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_os_str().as_encoded_bytes());
        if let Some(cache) = key_cache
            && key_files.binary_search(&f).is_ok()
        {
            match cache.content_digest(&f) {
                Ok(digest) => {
                    h.update(b"\x01");
                    h.update(digest);
                }
                Err(e) => h.update(format!("\x00{:?}", e.kind()).as_bytes()),
            }
            continue;
        }
        match policy::read_limited(&f) {
            Ok(bytes) => {
                h.update(b"\x01");
                h.update(Sha256::digest(&bytes));
            }
            Err(e) => h.update(format!("\x00{:?}", e.kind()).as_bytes()),
        }
    }
    for d in dirs {
        h.update(d.as_os_str().as_encoded_bytes());
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .map(|it| it.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        names.sort();
        for n in names {
            h.update(b"\x02");
            h.update(n.as_encoded_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(unix)]
fn listen_sighup(tx: mpsc::Sender<()>) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("sigproxy-sighup".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("SIGHUP runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let mut hup = match signal(SignalKind::hangup()) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("SIGHUP handler: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while hup.recv().await.is_some() {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        })
        .map_err(|e| format!("cannot start the SIGHUP listener: {e}"))?;
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "the SIGHUP listener did not start".to_string())?
}

#[cfg(not(unix))]
fn listen_sighup(_tx: mpsc::Sender<()>) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn settle_waits_for_two_equal_reads() {
        use std::cell::Cell;
        let n = Cell::new(0u8);
        let out = settle([0; 32], || {
            n.set(n.get() + 1);
            [n.get().min(3); 32]
        });
        assert_eq!(out, [3; 32]);
        assert_eq!(n.get(), 4);
    }

    #[test]
    fn fingerprint_follows_content_through_symlink_swaps() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let policy = "upstream: \"127.0.0.1:1\"\n";
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/policy.yaml"), policy).unwrap();
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/policy.yaml", d.join("policy.yaml")).unwrap();
        let path = d.join("policy.yaml");
        let rt = LivePolicy::load(&path, Default::default(), 1).unwrap();
        let live = rt.snapshot();
        let a = fingerprint(&path, &live);
        assert_eq!(a, fingerprint(&path, &live));
        // Same bytes under a new directory: no change.
        std::fs::create_dir(d.join("..v2")).unwrap();
        std::fs::write(d.join("..v2/policy.yaml"), policy).unwrap();
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert_eq!(a, fingerprint(&path, &live));
        // An override key appears.
        std::fs::write(d.join("..v2/SIGNATURE_AUTH_REQUIRED"), "false").unwrap();
        std::os::unix::fs::symlink(
            "..data/SIGNATURE_AUTH_REQUIRED",
            d.join("SIGNATURE_AUTH_REQUIRED"),
        )
        .unwrap();
        assert_ne!(a, fingerprint(&path, &live));
    }
}
