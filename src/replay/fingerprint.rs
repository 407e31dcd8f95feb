//! Keyed 128-bit fingerprints of (keyid, nonce) for the in-memory store, so it keeps 16 bytes per
//! nonce instead of two strings, and a pass-through hasher for maps keyed by them. Not for a shared
//! store: its keys must agree across processes, which a per-process random key cannot give.

use std::hash::{BuildHasher, Hash, Hasher};

use siphasher::sip128::{Hasher128, SipHasher13};

/// SipHash-1-3-128 of the length-prefixed keyid and the nonce, under a per-process random key.
///
/// Why keyed: nobody outside the process can aim two nonces at one fingerprint, one map bucket or
/// one shard. Why 128 bits: a false "replayed" needs a random collision, and with a million
/// remembered nonces each check has at most 2^20 / 2^128 ≈ 3e-33 odds of one.
///
/// Four `u32`s rather than a `u128`: alignment 4 lets a map entry with a `u32` expiry pack into 20
/// bytes, where a `u128` key would pad it to 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint([u32; 4]);

impl Fingerprint {
    /// Bits that pick the shard: word 3, disjoint from the 64 bits the map hashes on (words 0–1),
    /// so a shard's map still sees uniformly spread hashes.
    pub(crate) fn shard_bits(self) -> u32 {
        self.0[3]
    }
}

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a uniform keyed hash: hand 64 of its bits to the map instead of hashing again.
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// Holds the secret key. Cloning it would spread the key; there is no need, so it is not `Clone`.
pub(crate) struct Fingerprinter {
    k0: u64,
    k1: u64,
}

impl Fingerprinter {
    /// A fresh key from the operating system's random source.
    pub(crate) fn random() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 16];
        getrandom::fill(&mut seed)?;
        let (a, b) = seed.split_at(8);
        let word = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        Ok(Self::with_keys(word(a), word(b)))
    }

    pub(crate) fn with_keys(k0: u64, k1: u64) -> Self {
        Self { k0, k1 }
    }

    pub(crate) fn fingerprint(&self, key_id: &str, nonce: &str) -> Fingerprint {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart; the nonce is last, so the
        // hash's own length padding already delimits it.
        h.write(&(key_id.len() as u64).to_le_bytes());
        h.write(key_id.as_bytes());
        h.write(nonce.as_bytes());
        let v = h.finish128().as_u128();
        Fingerprint([
            v as u32,
            (v >> 32) as u32,
            (v >> 64) as u32,
            (v >> 96) as u32,
        ])
    }
}

/// `BuildHasher` for maps keyed by `Fingerprint`: the hash is the fingerprint's own bits.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

#[derive(Debug)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `Fingerprint` is hashed here and it uses `write_u64`; fold anything else so the
        // hasher is still correct (if weak) should another key type ever be used with it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_fingerprint_other_key_other_fingerprint() {
        let a = Fingerprinter::with_keys(1, 2);
        let b = Fingerprinter::with_keys(1, 3);
        assert_eq!(a.fingerprint("k", "n"), a.fingerprint("k", "n"));
        assert_ne!(a.fingerprint("k", "n"), b.fingerprint("k", "n"));
    }

    #[test]
    fn keyid_is_delimited_from_nonce() {
        let f = Fingerprinter::with_keys(7, 9);
        assert_ne!(f.fingerprint("ab", "c"), f.fingerprint("a", "bc"));
        assert_ne!(f.fingerprint("", "abc"), f.fingerprint("abc", ""));
        assert_ne!(f.fingerprint("k1", "n"), f.fingerprint("k2", "n"));
    }

    #[test]
    fn random_keys_differ_between_fingerprinters() {
        let a = Fingerprinter::random().unwrap();
        let b = Fingerprinter::random().unwrap();
        assert_ne!((a.k0, a.k1), (b.k0, b.k1));
    }

    #[test]
    fn fingerprint_bits_look_uniform() {
        // A weak check that all 128 bits are used: over 4096 inputs every bit is set in roughly half.
        let f = Fingerprinter::random().unwrap();
        let mut ones = [0u32; 128];
        for i in 0..4096u32 {
            let Fingerprint(w) = f.fingerprint("key", &i.to_string());
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += (w[bit / 32] >> (bit % 32)) & 1;
            }
        }
        for (bit, &n) in ones.iter().enumerate() {
            assert!((1800..2300).contains(&n), "bit {bit} set {n}/4096 times");
        }
    }
}
