//! Issue 6: is Ed25519 batch verification cheaper than `verify_strict` once the per-signature
//! checks that make its acceptance identical are paid? Measured in one run: `verify_strict`
//! alone, `verify_batch` at n = 1..256 (divide by n for per-signature cost; the group sets
//! `Throughput::Elements(n)`), and each pre-check on R that batch acceptance would need.
//! Checks on the key A are left out: they can run once per key when the key set is loaded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey, verify_batch};

const SIZES: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 256];

/// A signature base of typical size (~300 bytes, as benches/verify.rs's request builds).
fn message(i: usize) -> Vec<u8> {
    let mut m = format!(
        "\"@method\": POST\n\"@authority\": api.datafold.com\n\"@path\": /api/v1/items/{i}\n\
         \"@query\": ?limit=10\n\"content-type\": application/json\n"
    )
    .into_bytes();
    m.extend_from_slice(
        b"\"content-digest\": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n\
          \"@signature-params\": (\"@method\" \"@authority\" \"@path\" \"@query\" \
          \"content-type\" \"content-digest\");created=1700000000;keyid=\"client-v1\"",
    );
    m
}

fn bench(c: &mut Criterion) {
    let n_max = *SIZES.iter().max().unwrap();
    // Distinct keys, as distinct clients' requests would carry.
    let keys: Vec<SigningKey> = (0..n_max)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_bytes(&seed)
        })
        .collect();
    let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let msgs: Vec<Vec<u8>> = (0..n_max).map(message).collect();
    let sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    assert!(verify_batch(&msg_refs, &sigs, &vks).is_ok());

    let mut g = c.benchmark_group("batch/single");
    g.bench_function("verify_strict", |b| {
        b.iter(|| vks[0].verify_strict(black_box(&msgs[0]), black_box(&sigs[0])))
    });
    g.finish();

    let mut g = c.benchmark_group("batch/verify_batch");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| verify_batch(black_box(&msg_refs[..n]), &sigs[..n], &vks[..n]))
        });
    }
    g.finish();

    let r_bytes = CompressedEdwardsY(*sigs[0].r_bytes());
    let r_point: EdwardsPoint = r_bytes.decompress().unwrap();
    let s_bytes = *sigs[0].s_bytes();
    // l − 1 is a canonical scalar; [l−1]R + R = [l]R, computed variable-time as verify does.
    let l_minus_one = -Scalar::ONE;
    let mut g = c.benchmark_group("batch/precheck");
    g.bench_function("s_canonical", |b| {
        b.iter(|| bool::from(Scalar::from_canonical_bytes(black_box(s_bytes)).is_some()))
    });
    g.bench_function("r_decompress", |b| {
        b.iter(|| black_box(r_bytes).decompress())
    });
    g.bench_function("r_decompress_recompress_eq", |b| {
        b.iter(|| {
            black_box(r_bytes)
                .decompress()
                .is_some_and(|p| p.compress() == r_bytes)
        })
    });
    g.bench_function("r_is_small_order", |b| {
        b.iter(|| black_box(r_point).is_small_order())
    });
    g.bench_function("r_is_torsion_free_ct", |b| {
        b.iter(|| black_box(r_point).is_torsion_free())
    });
    g.bench_function("r_is_torsion_free_vartime", |b| {
        b.iter(|| {
            let p = black_box(r_point);
            (EdwardsPoint::vartime_double_scalar_mul_basepoint(&l_minus_one, &p, &Scalar::ZERO) + p)
                .is_identity()
        })
    });
    g.finish();

    // The whole gated fast path at realistic queue depths: every check that makes the batch
    // verdict identical to verify_strict's (R canonical, not identity, torsion-free; s
    // canonical), then one verify_batch. Compare time/n with batch/single/verify_strict.
    let gate = |sig: &Signature| {
        let r = CompressedEdwardsY(*sig.r_bytes());
        let r_ok = r.decompress().is_some_and(|p| {
            p.compress() == r
                && !p.is_identity()
                && (EdwardsPoint::vartime_double_scalar_mul_basepoint(
                    &l_minus_one,
                    &p,
                    &Scalar::ZERO,
                ) + p)
                    .is_identity()
        });
        r_ok && bool::from(Scalar::from_canonical_bytes(*sig.s_bytes()).is_some())
    };
    let mut g = c.benchmark_group("batch/gated");
    for n in [4usize, 8, 32] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                sigs[..n].iter().all(|s| gate(black_box(s)))
                    && verify_batch(black_box(&msg_refs[..n]), &sigs[..n], &vks[..n]).is_ok()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
