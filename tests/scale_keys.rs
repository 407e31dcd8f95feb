//! A big key set against the built `sigproxy run` (issue 18): 100,000 keys in 100 key files, every
//! one loaded and usable; one key revoked by rewriting its file (write + rename, as key management
//! tools and the kubelet do) is refused within 1 s of the rename, while its neighbours in the same
//! file and keys in other files keep working, and nothing signed with it reaches the backend once
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::SigningKey;
use scale_common::proxy::{Sigproxy, code, sign_get};

#[path = "common/upstream.rs"]
#[allow(dead_code)]
mod upstream;
use upstream::Upstream;

const KEYS: usize = 100_000;
const PER_FILE: usize = 1_000;
/// Keys cycle through this many signing keys (key `i` is `signer(i % POOL)`): decoding costs the
/// same whether public keys repeat or not, and the test can sign as any key id.
const POOL: usize = 64;

fn signer(i: usize) -> SigningKey {
    let mut seed = [3u8; 32];
    seed[..8].copy_from_slice(&(i % POOL).to_le_bytes());
    SigningKey::from_bytes(&seed)
}

fn key_id(i: usize) -> String {
    format!("dev-{i:06}")
}

fn write_file(dir: &Path, file: usize, revoked: Option<usize>, pool: &[String]) {
    let mut s = String::from("keys:\n");
    for i in file * PER_FILE..(file + 1) * PER_FILE {
        let status = if Some(i) == revoked {
            "revoked"
        } else {
            "active"
        };
        s.push_str(&format!(
            "  - key_id: {}\n    client_id: device-{i}\n    public_key: \"{}\"\n    status: {status}\n",
            key_id(i),
            pool[i % POOL]
        ));
    }
    let path = dir.join(format!("keys-{file:03}.yaml"));
    let tmp = dir.join(format!(".keys-{file:03}.tmp"));
    std::fs::write(&tmp, s).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// The log lines that are not audit lines (those would bury the rest).
fn not_audit(p: &Sigproxy) -> String {
    let log = std::fs::read_to_string(p.log_path()).unwrap_or_default();
    log.lines()
        .filter(|l| !l.contains("\"target\":\"audit\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A signed GET as key `i`: (status, code); a fresh nonce each time.
fn call(p: &Sigproxy, i: usize, n: usize) -> (u16, String) {
    let nonce = format!("n-{i}-{n}");
    let r = p.get(
        &format!("/api/{i}/{n}"),
        &sign_get(&format!("/api/{i}/{n}"), &signer(i), &key_id(i), &nonce),
    );
    (r.status, code(&r))
}

#[test]
fn revoking_one_of_100k_keys_applies_within_a_second() {
    let keys_dir = tempfile::tempdir().unwrap();
    let pool: Vec<String> = (0..POOL)
        .map(|i| {
            base64::engine::general_purpose::STANDARD.encode(signer(i).verifying_key().as_bytes())
        })
        .collect();
    for f in 0..KEYS / PER_FILE {
        write_file(keys_dir.path(), f, None, &pool);
    }
    let written = Instant::now();
    let up = Upstream::start(Duration::ZERO);
    let p = Sigproxy::start(
        up.addr,
        &format!(
            "mode: required\nsignature:\n  public_authority: \"api.test\"\nkey_files: [\"{}/keys-*.yaml\"]\n",
            keys_dir.path().display()
        ),
    );
    let status = p.status();
    assert_eq!(status["keys"]["active"], KEYS, "{status}");
    assert_eq!(status["keys"]["revoked"], 0);

    // Every file is in: first, middle and last keys all verify, as themselves.
    let victim = 54_321;
    for i in [0, 999, 1_000, victim - 1, victim, victim + 1, KEYS - 1] {
        assert_eq!(
            call(&p, i, 0),
            (200, String::new()),
            "key {i}: {}",
            p.logs()
        );
        let got = up.recorded_at(&format!("/api/{i}/0"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("x-datafold-key-id"), Some(key_id(i).as_str()));
        let client = format!("device-{i}");
        assert_eq!(got[0].header("x-datafold-client-id"), Some(client.as_str()));
    }

    // The steady state: a key file changed in the last 2 s is "racy" (a second write in the same
    // timestamp tick would not move its stamp), so the watcher reads it in full on every poll
    // until then. Just after writing 100 files that is 13 MB per poll, not what a revocation in
    // production meets; let them age first.
    std::thread::sleep(
        (written + Duration::from_millis(2500)).saturating_duration_since(Instant::now()),
    );

    // Revoke: the file is replaced at `t0`; keep asking as the victim until refused.
    let file = victim / PER_FILE;
    let t0 = Instant::now();
    write_file(keys_dir.path(), file, Some(victim), &pool);
    let mut n = 1;
    let latency = loop {
        let (status, c) = call(&p, victim, n);
        if status == 401 {
            assert_eq!(c, "KEY_REVOKED");
            break t0.elapsed();
        }
        assert_eq!(status, 200, "{c}");
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still accepted 20 s after the revocation; /status {}; log: {}",
            p.status(),
            not_audit(&p)
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(5));
    };
    eprintln!(
        "revocation applied {} ms after the file was replaced ({n} requests)",
        latency.as_millis()
    );
    assert!(
        latency <= Duration::from_secs(1),
        "revocation took {latency:?} (bound: 1 s)"
    );
    // Refused from then on, and never forwarded once refused.
    for m in n..n + 3 {
        assert_eq!(call(&p, victim, m), (401, "KEY_REVOKED".to_owned()));
        assert!(up.recorded_at(&format!("/api/{victim}/{m}")).is_empty());
    }
    // Its neighbours in the same file and keys elsewhere are untouched.
    for i in [file * PER_FILE, victim + 1, KEYS - 1] {
        assert_eq!(call(&p, i, 99), (200, String::new()), "key {i}");
    }
    let status = p.status();
    assert_eq!(status["keys"]["active"], KEYS - 1, "{status}");
    assert_eq!(status["keys"]["revoked"], 1);
}
