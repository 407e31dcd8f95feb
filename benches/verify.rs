//! The cost of sigproxy's verify path against the bare Ed25519 verify it cannot avoid, measured
//! in the same run: parse Signature-Input/Signature, derive components, build the base, look the
//! key up, check policy, verify — versus `verify_strict` on the already-built base. The full path
//! runs with 1,000 and with 1,000,000 keys loaded (issue 18: flat in the key count), and the key
//! lookup alone over 1,024 different key ids at both sizes (the cache misses a big set costs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, SigningKey};
use sigproxy::keys::{KeyIndex, KeyRecord, KeySet, KeySource, KeyStatus, KeyTable};
use sigproxy::signature::sign::{SignSpec, sign};
use sigproxy::signature::{Component, RequestView, VerifyOptions, verify};

const NOW: i64 = 1_700_000_000;

fn typical_request(key: &SigningKey) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("Host".into(), b"api.datafold.com".to_vec()),
        ("User-Agent".into(), b"datafold-client/2.3".to_vec()),
        ("Accept".into(), b"application/json".to_vec()),
        ("Content-Type".into(), b"application/json".to_vec()),
        ("Content-Length".into(), b"18".to_vec()),
        (
            "Content-Digest".into(),
            b"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:".to_vec(),
        ),
        (
            "Authorization".into(),
            b"Bearer legacy-token-abcdef".to_vec(),
        ),
    ];
    let comps: Vec<Component> = [
        "@method",
        "@authority",
        "@path",
        "@query",
        "content-type",
        "content-digest",
    ]
    .iter()
    .map(|c| Component::parse_spec(c).unwrap())
    .collect();
    let spec = SignSpec {
        label: "sig1",
        components: &comps,
        key_id: "web-frontend-v1",
        created: NOW,
        expires: Some(NOW + 300),
        nonce: Some("d2VsbC1oZWxsby10aGVyZQ"),
        tag: Some("datafold"),
        include_alg: true,
    };
    let view = RequestView {
        method: "POST",
        target: "/api/v1/items?limit=10",
        scheme: "https",
        authority: Some("api.datafold.com"),
        fields: &fields,
    };
    let h = sign(&view, &spec, key).unwrap();
    fields.push(("Signature-Input".into(), h.signature_input.into_bytes()));
    fields.push(("Signature".into(), h.signature.into_bytes()));
    fields
}

/// `n` keys `client-{i}-v1` (keys from a pool of 251, pushed decoded: no decode cost here) plus
/// `web-frontend-v1` for `key`, in tables of 10,000 as key files would give.
fn big_set(n: usize, key: &SigningKey) -> KeySet {
    let pool: Vec<_> = (0..251u8)
        .map(|i| SigningKey::from_bytes(&[i; 32]).verifying_key())
        .collect();
    let mut tables = Vec::new();
    let mut b = KeyTable::builder(KeySource::File("k0.yaml".into()));
    for i in 0..n {
        if i > 0 && i % 10_000 == 0 {
            tables.push(std::sync::Arc::new(b.finish()));
            b = KeyTable::builder(KeySource::File(format!("k{}.yaml", i / 10_000).into()));
        }
        let id = format!("client-{i}-v1");
        b.push(
            &id,
            &format!("client-{i}"),
            pool[i % 251],
            KeyStatus::Active,
            None,
        )
        .unwrap();
    }
    b.push(
        "web-frontend-v1",
        "web-frontend",
        key.verifying_key(),
        KeyStatus::Active,
        None,
    )
    .unwrap();
    tables.push(std::sync::Arc::new(b.finish()));
    KeySet::from_index(std::sync::Arc::new(KeyIndex::build(tables).unwrap()))
}

fn bench(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let mut records: Vec<KeyRecord> = (0..1000)
        .map(|i| {
            let k = SigningKey::from_bytes(&[(i % 251) as u8; 32]);
            KeyRecord {
                key_id: format!("client-{i}-v1"),
                client_id: format!("client-{i}"),
                status: KeyStatus::Active,
                key: k.verifying_key(),
                source: KeySource::Inline,
            }
        })
        .collect();
    records.push(KeyRecord {
        key_id: "web-frontend-v1".into(),
        client_id: "web-frontend".into(),
        status: KeyStatus::Active,
        key: key.verifying_key(),
        source: KeySource::Inline,
    });
    let keys = KeySet::new(records).unwrap();
    let fields = typical_request(&key);
    let view = RequestView {
        method: "POST",
        target: "/api/v1/items?limit=10",
        scheme: "https",
        authority: Some("api.datafold.com"),
        fields: &fields,
    };
    let opts = VerifyOptions::default();
    let verified = verify(&view, true, &opts, &keys, NOW).unwrap();
    let base = verified.signature_base().to_owned();
    let sig_b64 = String::from_utf8(fields.last().unwrap().1.clone()).unwrap();
    let sig_bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        sig_b64.trim_start_matches("sig1=:").trim_end_matches(':'),
    )
    .unwrap();
    let sig = Signature::from_slice(&sig_bytes).unwrap();
    let vk = key.verifying_key();

    let mut g = c.benchmark_group("verify");
    g.bench_function("bare_ed25519_verify_strict", |b| {
        b.iter(|| {
            vk.verify_strict(black_box(base.as_bytes()), black_box(&sig))
                .unwrap()
        })
    });
    g.bench_function("full_verify_path", |b| {
        b.iter(|| verify(black_box(&view), true, &opts, &keys, NOW).unwrap())
    });
    let million = big_set(1_000_000, &key);
    g.bench_function("full_verify_path_1m_keys", |b| {
        b.iter(|| verify(black_box(&view), true, &opts, &million, NOW).unwrap())
    });
    g.finish();

    // 1,024 different key ids per iteration, spread over the whole set.
    let thousand = big_set(1_000, &key);
    let mut g = c.benchmark_group("key_lookup_1024_ids");
    for (name, set, n) in [
        ("1k_keys", &thousand, 1_000usize),
        ("1m_keys", &million, 1_000_000),
    ] {
        let ids: Vec<String> = (0..1024usize)
            .map(|j| format!("client-{}-v1", (j * 7919 * 131) % n))
            .collect();
        g.bench_function(name, |b| {
            b.iter(|| {
                ids.iter()
                    .filter(|id| set.get(black_box(id)).is_some())
                    .count()
            })
        });
    }
    g.finish();

    // Issue 14's "the verify's tables go cold between requests": the same verify, timed alone,
    // after writing over a buffer that pushes its tables and stack out of the caches (256 KiB:
    // L1 and part of L2, what a request's own work touches; 8 MiB: most of a last-level cache).
    // The eviction is not timed. The difference to the hot loop above is what cold caches cost.
    let mut g = c.benchmark_group("verify_cold");
    g.sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(200))
        .measurement_time(std::time::Duration::from_millis(500))
        .sampling_mode(criterion::SamplingMode::Flat);
    for (name, bytes) in [
        ("after_evicting_256KiB", 256 << 10),
        ("after_evicting_8MiB", 8 << 20),
    ] {
        let mut junk = vec![0u8; bytes];
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for i in 0..iters {
                    for line in junk.chunks_mut(64) {
                        line[0] = line[0].wrapping_add(i as u8 | 1);
                    }
                    black_box(&junk);
                    let t = std::time::Instant::now();
                    vk.verify_strict(black_box(base.as_bytes()), black_box(&sig))
                        .unwrap();
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
