//! Key records from every source, merged into one `KeySet` indexed by key id for the request path.
//! It does not load or watch sources; it only refuses a set in which two records share a key id.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::signature::{KeyResolver, ResolvedKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
}

/// Where a record came from, so a conflict or a status page can name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The policy file's `keys:` list.
    Inline,
    /// One of the `key_files:` files.
    File(PathBuf),
    /// A remote JWKS (`key_directory.url`).
    Directory(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline => f.write_str("inline keys"),
            Self::File(path) => write!(f, "key file {}", path.display()),
            Self::Directory(url) => write!(f, "key directory {url}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub client_id: String,
    pub status: KeyStatus,
    pub key: VerifyingKey,
    pub source: KeySource,
}

/// All known keys. Lookup is one hash probe; iteration is in key id order.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// Sorted by key_id.
    records: Vec<KeyRecord>,
    by_id: HashMap<String, usize>,
}

impl KeySet {
    /// Every problem is reported, not only the first: a duplicate key id (naming both sources) or
    /// an empty key id.
    pub fn new(mut records: Vec<KeyRecord>) -> Result<Self, Vec<String>> {
        // Stable sort: of two records with one id, the first given is "first defined".
        records.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        let mut errors = Vec::new();
        for r in &records {
            if r.key_id.is_empty() {
                errors.push(format!("a key in {} has an empty key_id", r.source));
            }
        }
        for pair in records.windows(2) {
            if let [a, b] = pair
                && a.key_id == b.key_id
                && !a.key_id.is_empty()
            {
                errors.push(format!(
                    "key_id {:?} is defined twice: in {} and in {}",
                    a.key_id, a.source, b.source
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let by_id = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key_id.clone(), i))
            .collect();
        Ok(Self { records, by_id })
    }

    pub fn get(&self, key_id: &str) -> Option<&KeyRecord> {
        self.by_id.get(key_id).and_then(|&i| self.records.get(i))
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn active_count(&self) -> usize {
        self.count(KeyStatus::Active)
    }

    pub fn revoked_count(&self) -> usize {
        self.count(KeyStatus::Revoked)
    }

    fn count(&self, status: KeyStatus) -> usize {
        self.records.iter().filter(|r| r.status == status).count()
    }

    /// Records in key id order.
    pub fn iter(&self) -> std::slice::Iter<'_, KeyRecord> {
        self.records.iter()
    }
}

impl<'a> IntoIterator for &'a KeySet {
    type Item = &'a KeyRecord;
    type IntoIter = std::slice::Iter<'a, KeyRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl KeyResolver for KeySet {
    fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
        self.get(key_id).map(|r| ResolvedKey {
            key: &r.key,
            client_id: &r.client_id,
            revoked: r.status == KeyStatus::Revoked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn rec(id: &str, status: KeyStatus, source: KeySource) -> KeyRecord {
        let seed = [id.len() as u8; 32];
        KeyRecord {
            key_id: id.into(),
            client_id: format!("client-of-{id}"),
            status,
            key: SigningKey::from_bytes(&seed).verifying_key(),
            source,
        }
    }

    #[test]
    fn lookup_counts_and_order() {
        let set = KeySet::new(vec![
            rec("zeta", KeyStatus::Active, KeySource::Inline),
            rec(
                "alpha",
                KeyStatus::Revoked,
                KeySource::File("/k/a.yaml".into()),
            ),
            rec(
                "mid",
                KeyStatus::Active,
                KeySource::Directory("http://d/keys.jwks".into()),
            ),
        ])
        .unwrap();
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
        assert_eq!((set.active_count(), set.revoked_count()), (2, 1));
        let ids: Vec<&str> = set.iter().map(|r| r.key_id.as_str()).collect();
        assert_eq!(ids, ["alpha", "mid", "zeta"]);
        for id in ids {
            assert_eq!(set.get(id).unwrap().key_id, id);
        }
        assert!(set.get("nope").is_none());
        assert!(set.get("").is_none());

        let r = set.resolve("alpha").unwrap();
        assert!(r.revoked);
        assert_eq!(r.client_id, "client-of-alpha");
        assert_eq!(*r.key, set.get("alpha").unwrap().key);
        assert!(!set.resolve("zeta").unwrap().revoked);
        assert!(set.resolve("ZETA").is_none(), "key ids are case-sensitive");
    }

    #[test]
    fn duplicates_name_both_sources() {
        let errs = KeySet::new(vec![
            rec("k1", KeyStatus::Active, KeySource::Inline),
            rec("k2", KeyStatus::Active, KeySource::Inline),
            rec(
                "k1",
                KeyStatus::Revoked,
                KeySource::File("/etc/sigproxy/keys/b.yaml".into()),
            ),
            rec(
                "",
                KeyStatus::Active,
                KeySource::Directory("http://d/k".into()),
            ),
        ])
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "a key in key directory http://d/k has an empty key_id".to_owned(),
                "key_id \"k1\" is defined twice: in inline keys and in key file /etc/sigproxy/keys/b.yaml".to_owned(),
            ]
        );
    }

    #[test]
    fn status_is_lowercase_in_serde() {
        assert_eq!(
            serde_json::to_string(&KeyStatus::Revoked).unwrap(),
            "\"revoked\""
        );
        let s: KeyStatus = serde_json::from_str("\"active\"").unwrap();
        assert_eq!(s, KeyStatus::Active);
        assert!(serde_json::from_str::<KeyStatus>("\"Active\"").is_err());
    }

    #[test]
    fn empty_set_is_fine() {
        let set = KeySet::new(Vec::new()).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.active_count(), 0);
    }
}
