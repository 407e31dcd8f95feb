//! Evidence for issue 6: where ed25519-dalek 3's `verify_batch` accepts signatures that
//! `verify_strict` (what sigproxy uses) rejects, and which per-signature checks close the gap.
//! Signatures are built by hand from scalars so that R and A can carry torsion. Every input is
//! derived from fixed seeds, so the batch's transcript-derived coefficients — and therefore every
//! count below — are the same on every run; "random" means "varies with the batch's contents".
//! This is not sigproxy code under test: it pins down the library behaviour the decision rests on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey, verify_batch};
use sha2::{Digest, Sha512};

/// Attempts per probabilistic case. A divergence that happens with probability 1/8 per batch
/// would be missed in all of them with probability (7/8)^64 ≈ 2e-4; the inputs are fixed, so a
/// passing run passes every time (and the counts printed with --nocapture show the margin).
/// Kept small because curve arithmetic in a debug build costs milliseconds.
const ATTEMPTS: u64 = 64;

#[derive(Clone)]
struct Item {
    vk: VerifyingKey,
    msg: Vec<u8>,
    sig: Signature,
}

/// SHA-512 reduced mod ℓ, as Ed25519 does (by hand: the project's sha2 is not dalek's).
fn hash_scalar(h: Sha512) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

fn scalar(tag: &str, n: u64) -> Scalar {
    hash_scalar(
        Sha512::new()
            .chain_update(tag)
            .chain_update(n.to_le_bytes()),
    )
}

/// Ed25519 signing by hand: `a` is the discrete log of A's prime-order part, `r` that of R's, so
/// `s = r + k·a` makes `[s]B − [k]A − R = −(R's torsion) − [k](A's torsion)`.
fn sign_raw(a: Scalar, a_point: EdwardsPoint, r: Scalar, r_bytes: [u8; 32], msg: &[u8]) -> Item {
    let vk = VerifyingKey::from(a_point);
    let k = hash_scalar(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(vk.as_bytes())
            .chain_update(msg),
    );
    let s = r + k * a;
    Item {
        vk,
        msg: msg.to_vec(),
        sig: Signature::from_components(r_bytes, s.to_bytes()),
    }
}

fn honest(n: u64) -> Item {
    let mut seed = [3u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    let key = SigningKey::from_bytes(&seed);
    let msg = format!("honest request {n}").into_bytes();
    Item {
        vk: key.verifying_key(),
        sig: key.sign(&msg),
        msg,
    }
}

fn strict(it: &Item) -> bool {
    it.vk.verify_strict(&it.msg, &it.sig).is_ok()
}

fn batch(items: &[Item]) -> bool {
    let msgs: Vec<&[u8]> = items.iter().map(|i| i.msg.as_slice()).collect();
    let sigs: Vec<Signature> = items.iter().map(|i| i.sig).collect();
    let vks: Vec<VerifyingKey> = items.iter().map(|i| i.vk).collect();
    verify_batch(&msgs, &sigs, &vks).is_ok()
}

/// `it` batched with an honest signature (as it would be among other clients' requests); the
/// pool is signed once because debug-build curve arithmetic is slow.
fn batch_among_honest(it: &Item, n: u64) -> bool {
    static POOL: std::sync::OnceLock<Vec<Item>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| (100..108).map(honest).collect());
    batch(&[pool[(n % 8) as usize].clone(), it.clone()])
}

/// One torsion point of each order 1, 2, 4, 8 (EIGHT_TORSION[i] has order 8/gcd(i, 8)).
fn torsion_by_order() -> [EdwardsPoint; 4] {
    [
        EIGHT_TORSION[0],
        EIGHT_TORSION[4],
        EIGHT_TORSION[2],
        EIGHT_TORSION[1],
    ]
}

/// Attempts for a case whose outcome is expected to be always the same.
fn attempts(ord: usize) -> u64 {
    if ord == 1 { 8 } else { ATTEMPTS }
}

fn order(p: EdwardsPoint) -> usize {
    let mut q = p;
    for k in 1..=8 {
        if q.is_identity() {
            return k;
        }
        q += p;
    }
    panic!("not a small-order point")
}

/// The per-signature checks that make batch acceptance identical to `verify_strict`, as a
/// reference model (too expensive to be worth it; see benches/RESULTS.md): keys with torsion
/// go to `verify_strict` alone (decided once per key); R must be canonically encoded, not the
/// identity, and torsion-free; s canonical; then batch, and on failure one by one.
fn model_verify_many(items: &[Item]) -> Vec<bool> {
    let key_ok = |vk: &VerifyingKey| {
        let a = vk.to_edwards();
        a.is_torsion_free() && !a.is_identity()
    };
    let sig_ok = |sig: &Signature| {
        let r_bytes = CompressedEdwardsY(*sig.r_bytes());
        let r_ok = r_bytes
            .decompress()
            .is_some_and(|r| r.compress() == r_bytes && !r.is_identity() && r.is_torsion_free());
        r_ok && bool::from(Scalar::from_canonical_bytes(*sig.s_bytes()).is_some())
    };
    let mut out: Vec<Option<bool>> = items
        .iter()
        .map(|it| {
            if !key_ok(&it.vk) {
                Some(strict(it))
            } else if !sig_ok(&it.sig) {
                Some(false)
            } else {
                None
            }
        })
        .collect();
    let pending: Vec<Item> = items
        .iter()
        .zip(&out)
        .filter(|(_, v)| v.is_none())
        .map(|(it, _)| it.clone())
        .collect();
    let all_good = !pending.is_empty() && batch(&pending);
    for (it, v) in items.iter().zip(out.iter_mut()) {
        if v.is_none() {
            *v = Some(all_good || strict(it));
        }
    }
    out.into_iter().map(|v| v == Some(true)).collect()
}

fn assert_model_agrees(items: &[Item]) {
    let want: Vec<bool> = items.iter().map(strict).collect();
    assert_eq!(model_verify_many(items), want);
}

#[test]
fn ordinary_cases_agree() {
    let good = honest(1);
    let mut wrong_msg = honest(2);
    wrong_msg.msg.push(b'x');
    // s + ℓ: same point arithmetic, non-canonical scalar. Both reject it at parsing.
    let mut non_canonical_s = honest(3);
    let l = (-Scalar::ONE).to_bytes(); // ℓ − 1
    let mut s = *non_canonical_s.sig.s_bytes();
    let mut carry = 1u16; // adds ℓ − 1 + 1
    for (b, lb) in s.iter_mut().zip(l) {
        let v = *b as u16 + lb as u16 + carry;
        *b = v as u8;
        carry = v >> 8;
    }
    non_canonical_s.sig = Signature::from_components(*non_canonical_s.sig.r_bytes(), s);
    for (it, want) in [
        (&good, true),
        (&wrong_msg, false),
        (&non_canonical_s, false),
    ] {
        assert_eq!(strict(it), want);
        assert_eq!(batch(std::slice::from_ref(it)), want);
    }
    // A bad signature sinks the whole batch: the batch says nothing about the good ones.
    let mixed = [good.clone(), wrong_msg.clone(), honest(4)];
    assert!(!batch(&mixed));
    assert_eq!(
        mixed.iter().map(strict).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_model_agrees(&mixed);
    assert_model_agrees(&[good, honest(5), honest(6), honest(7)]);
}

/// Small-order R (a point of each order 1, 2, 4, 8, plus two non-canonical identity encodings) with
/// `s = k·a`: verify_strict always rejects; the batch accepts R = identity every time and the
/// others whenever the batch coefficient is a multiple of R's order.
#[test]
fn small_order_r_is_accepted_by_batch() {
    let a = scalar("a", 0);
    let a_point = B * a;
    let p_plus_1 = {
        let mut b = [0xffu8; 32];
        b[0] = 0xee;
        b[31] = 0x7f;
        b // 2^255 − 19 + 1: y = 1 without reduction
    };
    let mut identity_sign_bit = CompressedEdwardsY::default().0;
    identity_sign_bit[31] |= 0x80;
    let mut encodings: Vec<([u8; 32], usize)> = torsion_by_order()
        .iter()
        .map(|t| (t.compress().0, order(*t)))
        .collect();
    for bytes in [p_plus_1, identity_sign_bit] {
        let p = CompressedEdwardsY(bytes).decompress().unwrap();
        assert!(
            p.is_identity() && p.compress().0 != bytes,
            "a non-canonical identity"
        );
        encodings.push((bytes, 1));
    }
    for (bytes, ord) in encodings {
        let mut accepted = 0;
        for n in 0..attempts(ord) {
            let it = sign_raw(a, a_point, Scalar::ZERO, bytes, format!("m{n}").as_bytes());
            assert!(!strict(&it), "verify_strict accepted a small-order R");
            accepted += batch_among_honest(&it, n) as u64;
            if n < 4 {
                assert_model_agrees(&[honest(n), it]);
            }
        }
        eprintln!(
            "small-order R, order {ord}: batch accepted {accepted}/{}",
            attempts(ord)
        );
        if ord == 1 {
            assert_eq!(accepted, attempts(ord), "identity R {bytes:02x?}");
        } else {
            assert!(
                accepted > 0 && accepted < ATTEMPTS,
                "order {ord}: {accepted}"
            );
        }
    }
}

/// Mixed-order R = rB + T with s computed over that R: verify_strict always rejects (the key
/// is torsion-free, so [s]B − [k]A has no torsion); the batch accepts in about 1/ord(T) of
/// batches — a verdict that depends on which other requests share the batch.
#[test]
fn mixed_order_r_is_accepted_by_some_batches() {
    let a = scalar("a", 1);
    let a_point = B * a;
    for t in &torsion_by_order()[1..] {
        let ord = order(*t);
        let mut accepted = 0;
        for n in 0..ATTEMPTS {
            let r = scalar("r", n);
            let r_point = B * r + t;
            if n == 0 {
                assert!(!r_point.is_small_order() && !r_point.is_torsion_free());
            }
            let it = sign_raw(
                a,
                a_point,
                r,
                r_point.compress().0,
                format!("m{n}").as_bytes(),
            );
            assert!(!strict(&it), "verify_strict accepted a mixed-order R");
            accepted += batch_among_honest(&it, n) as u64;
            if n < 4 {
                assert_model_agrees(&[it, honest(n)]);
            }
        }
        assert!(
            accepted > 0 && accepted < ATTEMPTS,
            "order {ord}: {accepted}"
        );
        eprintln!("mixed-order R, torsion order {ord}: batch accepted {accepted}/{ATTEMPTS}");
    }
}

/// Small-order A: verify_strict refuses the key outright; with A = identity and s = r the batch
/// equation holds exactly, so the batch accepts every time.
#[test]
fn small_order_a_is_accepted_by_batch() {
    for t in [EIGHT_TORSION[0], EIGHT_TORSION[1]] {
        let mut accepted = 0;
        for n in 0..attempts(order(t)) {
            let r = scalar("r", n);
            let it = sign_raw(Scalar::ZERO, t, r, (B * r).compress().0, &n.to_le_bytes());
            assert!(!strict(&it), "verify_strict accepted a small-order key");
            accepted += batch_among_honest(&it, n) as u64;
            if n < 4 {
                assert_model_agrees(&[honest(n), it]);
            }
        }
        assert!(accepted > 0, "order {}: {accepted}", order(t));
        if t.is_identity() {
            assert_eq!(accepted, attempts(1));
        }
    }
}

/// Mixed-order A = aB + T. With R = rB, [s]B − [k]A − R = −[k]T: verify_strict accepts exactly
/// when ord(T) divides k. The batch multiplies A by (z·k mod ℓ), and that reduction scrambles k's
/// residue mod 8, so the verdicts differ in *both* directions: the batch accepts some signatures
/// verify_strict rejects and rejects some it accepts. And verify_strict does accept a mixed-order
/// R under such a key (R = rB − [k]T, found by trying k mod 8), so "reject every mixed-order R"
/// is only exact once the key is known to be torsion-free.
#[test]
fn mixed_order_a_diverges_both_ways() {
    let a = scalar("a", 2);
    let t = EIGHT_TORSION[1];
    assert_eq!(order(t), 8);
    let a_point = B * a + t;
    let (mut batch_only, mut strict_only) = (0, 0);
    for n in 0..ATTEMPTS {
        let r = scalar("r", n);
        let it = sign_raw(a, a_point, r, (B * r).compress().0, &n.to_le_bytes());
        let (s, b) = (strict(&it), batch_among_honest(&it, n));
        batch_only += (b && !s) as u64;
        strict_only += (s && !b) as u64;
        if n < 4 {
            assert_model_agrees(&[it, honest(n)]);
        }
    }
    assert!(batch_only > 0, "batch never accepted beyond verify_strict");
    assert!(
        strict_only > 0,
        "batch never rejected what verify_strict accepts"
    );
    eprintln!(
        "mixed-order A: batch-only accepts {batch_only}, strict-only {strict_only} of {ATTEMPTS}"
    );

    let mut found = 0;
    for n in 0..ATTEMPTS {
        let r = scalar("r2", n);
        let guess = (n % 8) as u8;
        if guess == 0 {
            continue;
        }
        let r_point = B * r - t * Scalar::from(guess);
        let it = sign_raw(a, a_point, r, r_point.compress().0, &n.to_le_bytes());
        if strict(&it) {
            assert!(!r_point.is_torsion_free() && !r_point.is_small_order());
            assert_model_agrees(&[honest(n), it]);
            found += 1;
        }
    }
    assert!(found > 0, "no mixed-order R accepted by verify_strict");
}
