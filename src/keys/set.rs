//! Every key the verifier can resolve, indexed by key id: `KeyIndex` is one hash index over the
//! compact tables of several sources (the policy's inline keys and key files), `KeySet` stacks a
//! few disjoint indexes (the policy's and the key directory's) so that either can change without
//! re-indexing the other. A lookup is one hash probe per layer whatever the number of keys. It does
//! not load or watch sources; it refuses a key id defined twice and names both places.

use std::fmt;
use std::hash::BuildHasher as _;
use std::path::PathBuf;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::table::{KeyRef, KeyTable};
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

/// One key, owned: how tests, benches and small callers hand keys to `KeySet::new`. Loaders of
/// many keys build `KeyTable`s directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub client_id: String,
    pub status: KeyStatus,
    pub key: VerifyingKey,
    pub source: KeySource,
}

/// Where a key sits: table number and row in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Loc {
    table: usize,
    row: usize,
}

/// One hash index over the keys of several tables. Key ids are unique across them.
pub struct KeyIndex {
    tables: Vec<Arc<KeyTable>>,
    /// `starts[t]`: the global number of table `t`'s first key; the last entry is the total.
    starts: Vec<u32>,
    /// Global key numbers, hashed by key id.
    index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    revoked: usize,
}

/// `KeyIndex::build` found key ids defined more than once.
#[derive(Debug)]
pub struct Duplicates {
    tables: Vec<Arc<KeyTable>>,
    /// (first definition, later one), in the order the later ones were met.
    pairs: Vec<(Loc, Loc)>,
}

impl Duplicates {
    /// (first definition, later definition) for every key id met twice or more.
    pub fn pairs(&self) -> impl Iterator<Item = (KeyRef<'_>, KeyRef<'_>)> + '_ {
        self.pairs.iter().filter_map(|(a, b)| {
            Some((
                self.tables.get(a.table)?.get(a.row)?,
                self.tables.get(b.table)?.get(b.row)?,
            ))
        })
    }

    /// "key_id "x" is defined twice: in key file a.yaml and in key file b.yaml", one per pair.
    pub fn messages(&self) -> Vec<String> {
        self.pairs().map(|(a, b)| twice(a.key_id, &a, &b)).collect()
    }
}

fn place(k: &KeyRef<'_>) -> String {
    match k.pos {
        Some(p) => format!("{} (line {}, column {})", k.source, p.line, p.col),
        None => k.source.to_string(),
    }
}

fn twice(key_id: &str, a: &KeyRef<'_>, b: &KeyRef<'_>) -> String {
    format!(
        "key_id {key_id:?} is defined twice: in {} and in {}",
        place(a),
        place(b)
    )
}

impl KeyIndex {
    /// Indexes `tables` (in order: the first definition of a key id is the one in the earliest
    /// table, earliest row). Linear in the number of keys.
    pub fn build(tables: Vec<Arc<KeyTable>>) -> Result<Self, Duplicates> {
        let mut starts = Vec::with_capacity(tables.len() + 1);
        let mut total: u64 = 0;
        for t in &tables {
            starts.push(u32::try_from(total).unwrap_or(u32::MAX));
            total += t.len() as u64;
        }
        starts.push(u32::try_from(total).unwrap_or(u32::MAX));
        let mut me = Self {
            index: HashTable::with_capacity(usize::try_from(total).unwrap_or(0)),
            hasher: hashbrown::DefaultHashBuilder::default(),
            revoked: tables.iter().map(|t| t.revoked_count()).sum(),
            tables,
            starts,
        };
        let mut pairs = Vec::new();
        for (ti, t) in me.tables.iter().enumerate() {
            let base = me.starts.get(ti).copied().unwrap_or(0);
            for row in 0..t.len() {
                let id = t.key_id(row);
                let hash = me.hasher.hash_one(id);
                let global = base.saturating_add(row as u32);
                let (tables, starts, hasher) = (&me.tables, &me.starts, &me.hasher);
                let entry = me.index.entry(
                    hash,
                    |&g| key_id_at(tables, starts, g) == id,
                    |&g| hasher.hash_one(key_id_at(tables, starts, g)),
                );
                match entry {
                    hashbrown::hash_table::Entry::Occupied(o) => {
                        pairs.push((locate(starts, *o.get()), Loc { table: ti, row }));
                    }
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        v.insert(global);
                    }
                }
            }
        }
        if total > u64::from(u32::MAX) {
            // Four billion keys do not fit the index; report it as a clash of the last key with
            // itself rather than index a prefix silently. (Nobody has that many keys.)
            let last = me.tables.len().saturating_sub(1);
            pairs.push((
                Loc {
                    table: last,
                    row: 0,
                },
                Loc {
                    table: last,
                    row: 0,
                },
            ));
        }
        if pairs.is_empty() {
            Ok(me)
        } else {
            Err(Duplicates {
                tables: me.tables,
                pairs,
            })
        }
    }

    /// The index of `tables`, built from this one when they are mostly the same tables (the same
    /// `Arc`s at the same places): only the keys of the changed tables are removed and inserted,
    /// plus one renumbering pass when a changed table's length differs. A reload that revokes one
    /// key among a million costs the ten thousand keys of its file, not the million. Anything else
    /// (tables added or removed, many changed, a duplicate key id) is a full `build`, which gives
    /// the same index and the same errors.
    pub fn update(&self, tables: Vec<Arc<KeyTable>>) -> Result<Self, Duplicates> {
        if tables.len() != self.tables.len() {
            return Self::build(tables);
        }
        let changed: Vec<usize> = (0..tables.len())
            .filter(|&t| match (tables.get(t), self.tables.get(t)) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                _ => true,
            })
            .collect();
        let churn: usize = changed
            .iter()
            .map(|&t| {
                tables.get(t).map_or(0, |x| x.len()) + self.tables.get(t).map_or(0, |x| x.len())
            })
            .sum();
        if churn.saturating_mul(4) > self.len() {
            return Self::build(tables);
        }
        let mut starts = Vec::with_capacity(tables.len() + 1);
        let mut total: u64 = 0;
        for t in &tables {
            starts.push(u32::try_from(total).unwrap_or(u32::MAX));
            total += t.len() as u64;
        }
        if total > u64::from(u32::MAX) {
            return Self::build(tables);
        }
        starts.push(u32::try_from(total).unwrap_or(u32::MAX));
        // Same hasher (same seed): the copied entries stay where they are.
        let hasher = self.hasher.clone();
        let mut index = self.index.clone();
        for &t in &changed {
            let (Some(old), Some(&base)) = (self.tables.get(t), self.starts.get(t)) else {
                continue;
            };
            for row in 0..old.len() {
                let g = base.saturating_add(row as u32);
                if let Ok(e) = index.find_entry(hasher.hash_one(old.key_id(row)), |&x| x == g) {
                    e.remove();
                }
            }
        }
        if starts != self.starts {
            for g in index.iter_mut() {
                let loc = locate(&self.starts, *g);
                *g = starts.get(loc.table).copied().unwrap_or(0) + loc.row as u32;
            }
        }
        let mut me = Self {
            revoked: tables.iter().map(|t| t.revoked_count()).sum(),
            tables,
            starts,
            index,
            hasher,
        };
        for &t in &changed {
            let Some(table) = me.tables.get(t) else {
                continue;
            };
            let base = me.starts.get(t).copied().unwrap_or(0);
            for row in 0..table.len() {
                let id = table.key_id(row);
                let (tables, starts, hasher) = (&me.tables, &me.starts, &me.hasher);
                match me.index.entry(
                    hasher.hash_one(id),
                    |&g| key_id_at(tables, starts, g) == id,
                    |&g| hasher.hash_one(key_id_at(tables, starts, g)),
                ) {
                    hashbrown::hash_table::Entry::Vacant(v) => {
                        v.insert(base.saturating_add(row as u32));
                    }
                    // Let the full build find and order every clash.
                    hashbrown::hash_table::Entry::Occupied(_) => return Self::build(me.tables),
                }
            }
        }
        Ok(me)
    }

    /// An index over no keys.
    pub fn empty() -> Self {
        Self {
            tables: Vec::new(),
            starts: vec![0],
            index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            revoked: 0,
        }
    }

    pub fn get(&self, key_id: &str) -> Option<KeyRef<'_>> {
        let hash = self.hasher.hash_one(key_id);
        let g = *self.index.find(hash, |&g| {
            key_id_at(&self.tables, &self.starts, g) == key_id
        })?;
        let loc = locate(&self.starts, g);
        self.tables.get(loc.table)?.get(loc.row)
    }

    pub fn tables(&self) -> &[Arc<KeyTable>] {
        &self.tables
    }

    pub fn len(&self) -> usize {
        self.starts.last().copied().unwrap_or(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked
    }

    pub fn active_count(&self) -> usize {
        self.len() - self.revoked
    }

    /// Every key, table by table, each in written order.
    pub fn iter(&self) -> impl Iterator<Item = KeyRef<'_>> + '_ {
        self.tables.iter().flat_map(|t| t.iter())
    }

    /// Heap bytes held by the index and its tables (tables shared with another index count
    /// in both).
    pub fn heap_bytes(&self) -> usize {
        self.index.allocation_size()
            + self.starts.capacity() * 4
            + self.tables.iter().map(|t| t.heap_bytes()).sum::<usize>()
    }
}

fn locate(starts: &[u32], g: u32) -> Loc {
    let table = starts.partition_point(|&s| s <= g).saturating_sub(1);
    let row = (g - starts.get(table).copied().unwrap_or(0)) as usize;
    Loc { table, row }
}

fn key_id_at<'a>(tables: &'a [Arc<KeyTable>], starts: &[u32], g: u32) -> &'a str {
    let loc = locate(starts, g);
    tables.get(loc.table).map_or("", |t| t.key_id(loc.row))
}

/// Equal when they hold the same keys from the same sources in the same order (tables shared by
/// `Arc` compare without being read).
impl PartialEq for KeyIndex {
    fn eq(&self, other: &Self) -> bool {
        self.tables.len() == other.tables.len()
            && self
                .tables
                .iter()
                .zip(&other.tables)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
}

impl Eq for KeyIndex {}

impl fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyIndex")
            .field("keys", &self.len())
            .field("revoked", &self.revoked)
            .field(
                "sources",
                &self.tables.iter().map(|t| t.source()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::empty()
    }
}

/// All known keys: a few disjoint indexes (the policy's, the key directory's). Lookup is one
/// hash probe per index.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    layers: Vec<Arc<KeyIndex>>,
}

impl KeySet {
    /// Every problem is reported, not only the first: a duplicate key id (naming both sources) or
    /// an empty key id. Records of one source that follow each other share one table.
    pub fn new(records: Vec<KeyRecord>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        for r in &records {
            if r.key_id.is_empty() {
                errors.push(format!("a key in {} has an empty key_id", r.source));
            }
        }
        let mut tables: Vec<Arc<KeyTable>> = Vec::new();
        let mut builder: Option<super::table::KeyTableBuilder> = None;
        for r in records.iter().filter(|r| !r.key_id.is_empty()) {
            let same = builder.as_ref().is_some_and(|b| b.source() == &r.source);
            if !same && let Some(b) = builder.take() {
                tables.push(Arc::new(b.finish()));
            }
            let b = builder.get_or_insert_with(|| KeyTable::builder(r.source.clone()));
            b.push(&r.key_id, &r.client_id, r.key, r.status, None)
                .map_err(|e| vec![e])?;
        }
        if let Some(b) = builder {
            tables.push(Arc::new(b.finish()));
        }
        match KeyIndex::build(tables) {
            Ok(index) if errors.is_empty() => Ok(Self::from_index(Arc::new(index))),
            Ok(_) => Err(errors),
            Err(d) => {
                errors.extend(d.messages());
                Err(errors)
            }
        }
    }

    pub fn from_index(index: Arc<KeyIndex>) -> Self {
        Self {
            layers: vec![index],
        }
    }

    /// Stacks indexes whose key ids must not overlap; checking costs one probe per key of the
    /// smaller index of each pair. Every clash is reported, naming both places.
    pub fn layered(layers: Vec<Arc<KeyIndex>>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        for (i, a) in layers.iter().enumerate() {
            for b in layers.iter().skip(i + 1) {
                // `a` is the earlier layer: its definition is the first one.
                let (small, large, small_first) = if a.len() <= b.len() {
                    (a, b, true)
                } else {
                    (b, a, false)
                };
                for k in small.iter() {
                    if let Some(other) = large.get(k.key_id) {
                        let (first, second) = if small_first { (k, other) } else { (other, k) };
                        errors.push(twice(k.key_id, &first, &second));
                    }
                }
            }
        }
        if errors.is_empty() {
            // An empty layer (no key directory) would cost a hash per lookup for nothing.
            let mut layers = layers;
            layers.retain(|l| !l.is_empty());
            Ok(Self { layers })
        } else {
            Err(errors)
        }
    }

    pub fn layers(&self) -> &[Arc<KeyIndex>] {
        &self.layers
    }

    pub fn get(&self, key_id: &str) -> Option<KeyRef<'_>> {
        self.layers.iter().find_map(|l| l.get(key_id))
    }

    pub fn len(&self) -> usize {
        self.layers.iter().map(|l| l.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn active_count(&self) -> usize {
        self.layers.iter().map(|l| l.active_count()).sum()
    }

    pub fn revoked_count(&self) -> usize {
        self.layers.iter().map(|l| l.revoked_count()).sum()
    }

    /// Every key, layer by layer, source by source, in written order.
    pub fn iter(&self) -> impl Iterator<Item = KeyRef<'_>> + '_ {
        self.layers.iter().flat_map(|l| l.iter())
    }

    /// Each source that holds at least one key, once, in layer order.
    pub fn sources(&self) -> impl Iterator<Item = &KeySource> + '_ {
        self.layers
            .iter()
            .flat_map(|l| l.tables())
            .filter(|t| !t.is_empty())
            .map(|t| t.source())
    }
}

impl KeyResolver for KeySet {
    fn resolve(&self, key_id: &str) -> Option<ResolvedKey<'_>> {
        self.get(key_id).map(|r| ResolvedKey {
            key: r.key,
            client_id: r.client_id,
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
        let ids: Vec<&str> = set.iter().map(|r| r.key_id).collect();
        assert_eq!(ids, ["zeta", "alpha", "mid"], "source by source, as given");
        for id in ids {
            assert_eq!(set.get(id).unwrap().key_id, id);
        }
        assert!(set.get("nope").is_none());
        assert!(set.get("").is_none());

        let r = set.resolve("alpha").unwrap();
        assert!(r.revoked);
        assert_eq!(r.client_id, "client-of-alpha");
        assert_eq!(r.key, set.get("alpha").unwrap().key);
        let sources: Vec<String> = set.sources().map(ToString::to_string).collect();
        assert_eq!(
            sources,
            [
                "inline keys",
                "key file /k/a.yaml",
                "key directory http://d/keys.jwks"
            ]
        );
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

    fn table(source: KeySource, ids: &[&str], line0: u32) -> Arc<KeyTable> {
        let mut b = KeyTable::builder(source);
        for (i, id) in ids.iter().enumerate() {
            let pos = crate::keys::KeyPos {
                line: line0 + i as u32,
                col: 3,
            };
            let key = SigningKey::from_bytes(&[i as u8; 32]).verifying_key();
            b.push(id, id, key, KeyStatus::Active, Some(pos)).unwrap();
        }
        Arc::new(b.finish())
    }

    #[test]
    fn index_finds_every_key_among_many_tables() {
        let tables: Vec<Arc<KeyTable>> = (0..50)
            .map(|t| {
                let ids: Vec<String> = (0..(t * 7) % 23).map(|r| format!("t{t}-r{r}")).collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                table(KeySource::File(format!("/k/{t}.yaml").into()), &ids, 1)
            })
            .collect();
        let index = KeyIndex::build(tables.clone())
            .map_err(|d| d.messages())
            .unwrap();
        let total: usize = tables.iter().map(|t| t.len()).sum();
        assert_eq!(index.len(), total);
        for (t, table) in tables.iter().enumerate() {
            for r in 0..table.len() {
                let id = format!("t{t}-r{r}");
                let k = index.get(&id).unwrap();
                assert_eq!((k.key_id, k.source), (id.as_str(), table.source()));
                assert_eq!(k.pos.unwrap().line, 1 + r as u32);
            }
        }
        assert!(index.get("t0-r0").is_none(), "table 0 is empty");
        assert!(index.get("t1-r7").is_none());
        assert_eq!(index.iter().count(), total);
        assert_eq!(*index.tables(), tables[..]);
        assert!(KeyIndex::build(Vec::new()).unwrap().is_empty());
        assert!(KeyIndex::empty().get("x").is_none());
    }

    /// `update` must give exactly what `build` gives: the same key → place for every id, the same
    /// verdict on duplicates.
    #[test]
    fn update_agrees_with_build() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let base: Vec<Arc<KeyTable>> = (0..12)
            .map(|t| {
                let ids: Vec<String> = (0..40).map(|r| format!("t{t}-r{r}")).collect();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                table(KeySource::File(format!("/k/{t}.yaml").into()), &ids, 1)
            })
            .collect();
        let old = KeyIndex::build(base.clone()).unwrap();
        // (table to replace, its new ids as (table, row) names, possibly clashing elsewhere)
        let edit = prop::collection::vec(
            (
                0usize..12,
                prop::collection::vec((0usize..14, 0usize..45), 0..50),
            ),
            0..3,
        );
        let mut runner = TestRunner::new(Config::with_cases(300));
        runner
            .run(&edit, |edits| {
                let mut tables = base.clone();
                for (t, rows) in &edits {
                    let ids: Vec<String> = rows.iter().map(|(a, b)| format!("t{a}-r{b}")).collect();
                    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                    tables[*t] = table(KeySource::File(format!("/k/{t}.yaml").into()), &ids, 7);
                }
                let full = KeyIndex::build(tables.clone());
                let incremental = old.update(tables.clone());
                match (full, incremental) {
                    (Ok(f), Ok(i)) => {
                        prop_assert_eq!(f.len(), i.len());
                        for t in 0..14 {
                            for r in 0..45 {
                                let id = format!("t{t}-r{r}");
                                let (a, b) = (f.get(&id), i.get(&id));
                                prop_assert_eq!(
                                    a.map(|k| (k.source.clone(), k.pos)),
                                    b.map(|k| (k.source.clone(), k.pos))
                                );
                            }
                        }
                    }
                    (Err(f), Err(i)) => prop_assert_eq!(f.messages(), i.messages()),
                    (f, i) => {
                        prop_assert!(false, "build ok: {}, update ok: {}", f.is_ok(), i.is_ok())
                    }
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn index_duplicates_name_both_places_in_order() {
        let a = table(KeySource::File("/k/a.yaml".into()), &["x", "y", "x"], 10);
        let b = table(KeySource::File("/k/b.yaml".into()), &["z", "y"], 20);
        let Err(d) = KeyIndex::build(vec![a, b]) else {
            panic!("duplicates accepted")
        };
        let pairs: Vec<_> = d
            .pairs()
            .map(|(f, s)| (f.key_id, f.pos.unwrap().line, s.pos.unwrap().line))
            .collect();
        assert_eq!(pairs, [("x", 10, 12), ("y", 11, 21)]);
        assert_eq!(
            d.messages()[1],
            "key_id \"y\" is defined twice: in key file /k/a.yaml (line 11, column 3) and in key file /k/b.yaml (line 21, column 3)"
        );
    }

    #[test]
    fn layers_resolve_in_turn_and_must_be_disjoint() {
        let policy = Arc::new(
            KeyIndex::build(vec![table(KeySource::Inline, &["p1", "p2"], 1)]).unwrap_or_default(),
        );
        let dir = |ids: &[&str]| {
            let mut b = KeyTable::builder(KeySource::Directory("http://d".into()));
            for id in ids {
                let key = SigningKey::from_bytes(&[9; 32]).verifying_key();
                b.push(id, "partner", key, KeyStatus::Revoked, None)
                    .unwrap();
            }
            Arc::new(KeyIndex::build(vec![Arc::new(b.finish())]).unwrap_or_default())
        };
        let set = KeySet::layered(vec![policy.clone(), dir(&["d1"])]).unwrap();
        assert_eq!(
            (set.len(), set.active_count(), set.revoked_count()),
            (3, 2, 1)
        );
        assert_eq!(set.get("d1").unwrap().client_id, "partner");
        assert_eq!(set.get("p2").unwrap().source, &KeySource::Inline);
        assert!(set.resolve("d1").unwrap().revoked);
        let errs = KeySet::layered(vec![policy, dir(&["d1", "p2"])]).unwrap_err();
        assert_eq!(
            errs,
            [
                "key_id \"p2\" is defined twice: in inline keys (line 2, column 3) and in key directory http://d"
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
