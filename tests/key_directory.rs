//! The remote JWKS key directory against a directory served by the test: rotation (publish,
//! remove), ETag/304, coalesced unknown-keyid refetches, and keeping the last good keys through
//! outages, malformed documents and refused merges. Merging goes through `KeySet::layered` with an
//! inline key, as the gateway does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod scale_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ed25519_dalek::SigningKey;
use scale_common::jwks_server::{JwksServer, jwk, jwks};
use sigproxy::keys::{
    DirectoryConfig, FetchOutcome, KeyDirectory, KeyRecord, KeySet, KeySource, KeyStatus,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn inline(id: &str) -> KeyRecord {
    KeyRecord {
        key_id: id.into(),
        client_id: "inline-client".into(),
        status: KeyStatus::Active,
        key: key(200).verifying_key(),
        source: KeySource::Inline,
    }
}

/// A directory whose `apply` merges with one inline key into a swappable `KeySet`, as the gateway's.
fn directory(url: String, refresh_s: u64) -> (KeyDirectory, Arc<ArcSwap<KeySet>>) {
    let set = Arc::new(ArcSwap::from_pointee(
        KeySet::new(vec![inline("inline-1")]).unwrap(),
    ));
    let target = set.clone();
    let policy_keys = set.load().layers()[0].clone();
    let dir = KeyDirectory::new(DirectoryConfig::new(url, refresh_s), move |records| {
        let merged =
            KeySet::layered(vec![policy_keys.clone(), records]).map_err(|e| e.join("; "))?;
        target.store(Arc::new(merged));
        Ok(())
    })
    .unwrap();
    (dir, set)
}

fn ids(set: &KeySet) -> Vec<String> {
    let mut ids: Vec<String> = set.iter().map(|r| r.key_id.to_owned()).collect();
    ids.sort();
    ids
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn published_keys_appear_and_removed_keys_disappear_on_refresh() {
    let server = JwksServer::start(
        &jwks(&[jwk(&key(1), "dir-1", r#","client_id":"partner-a""#)]),
        None,
    );
    let (dir, set) = directory(server.url(), 1);
    assert!(!dir.loaded());
    assert_eq!(dir.refresh().await, Ok(FetchOutcome::Changed));
    assert!(dir.loaded());
    assert_eq!(ids(&set.load()), ["dir-1", "inline-1"]);
    let r = set.load().get("dir-1").unwrap().to_record();
    assert_eq!(
        (r.client_id.as_str(), r.key),
        ("partner-a", key(1).verifying_key())
    );
    assert_eq!(r.source, KeySource::Directory(server.url()));

    let refresher = dir.spawn_refresher();
    let mut generation = dir.subscribe();
    server.set(
        &jwks(&[
            jwk(&key(1), "dir-1", ""),
            jwk(&key(2), "dir-2", r#","status":"revoked""#),
        ]),
        None,
    );
    tokio::time::timeout(Duration::from_secs(5), generation.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&set.load()), ["dir-1", "dir-2", "inline-1"]);
    assert_eq!(set.load().get("dir-2").unwrap().status, KeyStatus::Revoked);
    assert_eq!(
        set.load().get("dir-1").unwrap().client_id,
        "dir-1",
        "client_id defaults to kid"
    );

    server.set(&jwks(&[jwk(&key(2), "dir-2", "")]), None);
    wait_for("dir-1 to go", Duration::from_secs(5), || {
        set.load().get("dir-1").is_none()
    })
    .await;
    assert_eq!(ids(&set.load()), ["dir-2", "inline-1"]);
    assert_eq!(dir.records().len(), 1);
    let st = dir.status();
    assert_eq!((st.keys, st.failures, st.last_error.clone()), (1, 0, None));
    assert!(st.fetches >= 3 && st.generation == 3, "{st:?}");
    refresher.abort();
}

#[tokio::test]
async fn etag_gives_304_and_keeps_the_set() {
    let server = JwksServer::start(&jwks(&[jwk(&key(1), "dir-1", "")]), Some("\"v1\""));
    let (dir, set) = directory(server.url(), 300);
    assert_eq!(dir.refresh().await, Ok(FetchOutcome::Changed));
    assert_eq!(dir.refresh().await, Ok(FetchOutcome::Unchanged));
    assert_eq!(dir.refresh().await, Ok(FetchOutcome::Unchanged));
    assert_eq!(
        server
            .not_modified
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert_eq!(ids(&set.load()), ["dir-1", "inline-1"]);
    let st = dir.status();
    assert_eq!((st.fetches, st.not_modified, st.generation), (3, 2, 1));

    server.set(&jwks(&[jwk(&key(3), "dir-3", "")]), Some("\"v2\""));
    assert_eq!(dir.refresh().await, Ok(FetchOutcome::Changed));
    assert_eq!(ids(&set.load()), ["dir-3", "inline-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keyid_refetches_are_coalesced() {
    let server = JwksServer::start(&jwks(&[jwk(&key(1), "dir-1", "")]), None);
    let (dir, set) = directory(server.url(), 300);
    dir.refresh().await.unwrap();

    // A key published right after a fetch is found by the first request that names it.
    server.set(
        &jwks(&[jwk(&key(1), "dir-1", ""), jwk(&key(4), "new-key", "")]),
        None,
    );
    assert!(dir.refetch_for_unknown_keyid().await);
    assert!(set.load().get("new-key").is_some());
    assert_eq!(server.requests(), 2);

    // Keyid spam: 100 concurrent, then 100 one after another, all within the 5 s interval.
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let dir = dir.clone();
        tasks.push(tokio::spawn(async move {
            dir.refetch_for_unknown_keyid().await
        }));
    }
    for t in tasks {
        assert!(!t.await.unwrap());
    }
    for _ in 0..100 {
        assert!(!dir.refetch_for_unknown_keyid().await);
    }
    let st = dir.status();
    assert_eq!(st.unknown_keyid_requests, 201);
    assert!(
        server.requests() <= 5,
        "{} fetches for 201 unknown keyids",
        server.requests()
    );
    assert_eq!(server.requests() as u64, st.fetches);
}

#[tokio::test]
async fn outages_malformed_documents_and_refused_merges_keep_the_last_good_keys() {
    let mut server = JwksServer::start(&jwks(&[jwk(&key(1), "dir-1", "")]), Some("\"a\""));
    let (dir, set) = directory(server.url(), 300);
    dir.refresh().await.unwrap();
    let good = ids(&set.load());
    let last_success = dir.status().last_success.unwrap();

    server.go_down();
    let e = dir.refresh().await.unwrap_err();
    assert!(e.contains("connect") && e.contains("refused"), "{e}");
    assert_eq!(ids(&set.load()), good);
    let st = dir.status();
    assert_eq!(
        (st.failures, st.keys, st.last_success),
        (1, 1, Some(last_success))
    );
    assert!(st.last_error.unwrap().contains("refused"));

    server.come_back();
    for (body, status, want) in [
        ("<html>oops</html>", 200, "not valid JSON"),
        (r#"{"keys": [ {"kty""#, 200, "not valid JSON"),
        (r#"{"jwks": []}"#, 200, "no \"keys\" array"),
        ("{}", 500, "HTTP status 500"),
    ] {
        server.set(body, Some("\"b\""));
        server.set_status(status);
        let e = dir.refresh().await.unwrap_err();
        assert!(e.contains(want), "{e}");
        assert_eq!(ids(&set.load()), good);
        assert_eq!(dir.records().len(), 1);
    }

    // A directory key that clashes with an inline key: the merge refuses, the old set stays, and
    // the document is fetched whole next time (no 304 for a refused ETag).
    server.set(&jwks(&[jwk(&key(5), "inline-1", "")]), Some("\"c\""));
    let e = dir.refresh().await.unwrap_err();
    assert!(e.contains("defined twice"), "{e}");
    assert_eq!(ids(&set.load()), good);
    let before = server
        .not_modified
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(dir.refresh().await.is_err());
    assert_eq!(
        server
            .not_modified
            .load(std::sync::atomic::Ordering::SeqCst),
        before
    );

    server.set(&jwks(&[jwk(&key(6), "dir-6", "")]), Some("\"d\""));
    assert_eq!(dir.refresh().await, Ok(FetchOutcome::Changed));
    assert_eq!(ids(&set.load()), ["dir-6", "inline-1"]);
    let st = dir.status();
    assert_eq!((st.failures, st.last_error), (7, None));
}

#[tokio::test]
async fn non_ed25519_keys_are_skipped_and_counted() {
    let body = jwks(&[
        jwk(&key(1), "ok", ""),
        r#"{"kty":"RSA","kid":"rsa","n":"AQAB","e":"AQAB"}"#.to_owned(),
        r#"{"kty":"EC","crv":"P-256","kid":"ec","x":"AA","y":"AA"}"#.to_owned(),
    ]);
    let server = JwksServer::start(&body, None);
    let (dir, set) = directory(server.url(), 300);
    dir.refresh().await.unwrap();
    assert_eq!(ids(&set.load()), ["inline-1", "ok"]);
    assert_eq!(dir.status().skipped_keys, 2);
}

#[tokio::test]
async fn a_silent_or_non_http_peer_fails_within_the_timeout() {
    // Accepts connections (kernel backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = DirectoryConfig::new(format!("http://{}/k", silent.local_addr().unwrap()), 300);
    cfg.timeout = Duration::from_millis(300);
    let dir = KeyDirectory::new(cfg, |_| Ok(())).unwrap();
    let t = Instant::now();
    let e = dir.refresh().await.unwrap_err();
    assert!(e.contains("within 300 ms"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));

    // https to a plain HTTP server: the TLS handshake fails, nothing is applied.
    let server = JwksServer::start(&jwks(&[jwk(&key(1), "k", "")]), None);
    let url = format!("https://{}/k", server.addr);
    let dir = KeyDirectory::new(DirectoryConfig::new(url, 300), |_| Ok(())).unwrap();
    let e = dir.refresh().await.unwrap_err();
    assert!(e.contains("TLS"), "{e}");
    assert!(dir.records().is_empty());
    assert!(KeyDirectory::new(DirectoryConfig::new("ftp://x/", 1), |_| Ok(())).is_err());
}
