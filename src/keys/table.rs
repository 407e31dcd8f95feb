//! Compact storage for the keys of one source (the inline list, one key file, the JWKS): key ids
//! and client ids packed into one string buffer each (client ids interned: a client's keys share
//! one copy), the decoded Ed25519 point once per key, the status as one bit and, for keys written
//! in a file, the line:col of the entry. About 220 bytes a key, most of it the decoded point.
//! Also the parallel point decoder the parsers use. It does not index across sources (`set`).

use std::hash::BuildHasher as _;
use std::path::PathBuf;

use ed25519_dalek::VerifyingKey;
use hashbrown::HashTable;

use super::{KeySource, KeyStatus};

/// Where an entry was written: 1-based line and column. `0:0` when the source has no positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPos {
    pub line: u32,
    pub col: u32,
}

/// Many strings in one buffer: `ends[i]` is where string `i` stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Strings {
    bytes: String,
    ends: Vec<u32>,
}

impl Strings {
    fn push(&mut self, s: &str) -> Result<u32, String> {
        let index = u32::try_from(self.ends.len()).map_err(|_| TOO_BIG.to_string())?;
        self.bytes.push_str(s);
        let end = u32::try_from(self.bytes.len()).map_err(|_| TOO_BIG.to_string())?;
        self.ends.push(end);
        Ok(index)
    }

    fn get(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(0) as usize,
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.bytes.get(start..end).unwrap_or("")
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4
    }
}

const TOO_BIG: &str = "more than 4 GiB of key ids in one key source";

/// `clients[i]` when key `i`'s client id is its key id (the default): nothing stored twice.
const SAME_AS_KEY_ID: u32 = u32::MAX;

/// The keys of one source, in the order they were written. Immutable once built; shared by `Arc`
/// between the policy, the live key set and (for the directory) the fetcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTable {
    source: KeySource,
    ids: Strings,
    clients: Vec<u32>,
    client_names: Strings,
    points: Vec<VerifyingKey>,
    /// Bit `i` set: key `i` is revoked.
    revoked: Vec<u64>,
    revoked_count: usize,
    /// Empty when the source has no positions (the directory).
    positions: Positions,
}

/// Line and column of every entry. A file written by a tool has its entries at one column and a
/// fixed number of lines apart: both are then two numbers, not one per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Positions {
    lines: Progression,
    cols: Progression,
}

impl Positions {
    fn push(&mut self, p: KeyPos) {
        self.lines.push(p.line);
        self.cols.push(p.col);
    }

    fn get(&self, i: usize) -> Option<KeyPos> {
        Some(KeyPos {
            line: self.lines.get(i)?,
            col: self.cols.get(i)?,
        })
    }

    fn len(&self) -> usize {
        self.lines.len
    }

    fn shrink(&mut self) {
        self.lines.values.shrink_to_fit();
        self.cols.values.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        (self.lines.values.capacity() + self.cols.values.capacity()) * 4
    }
}

/// A `u32` per entry, kept as `first + i * step` while the values are such a progression and as
/// one value per entry from the first one that is not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Progression {
    len: usize,
    first: u32,
    step: u32,
    /// Empty while the progression holds.
    values: Vec<u32>,
}

impl Progression {
    fn at(&self, i: usize) -> Option<u32> {
        let i = u32::try_from(i).ok()?;
        self.step.checked_mul(i)?.checked_add(self.first)
    }

    fn push(&mut self, v: u32) {
        if self.values.is_empty() {
            match self.len {
                0 => self.first = v,
                1 if v >= self.first => self.step = v - self.first,
                _ if self.at(self.len) == Some(v) => {}
                _ => {
                    self.values = (0..self.len).filter_map(|i| self.at(i)).collect();
                    self.values.push(v);
                }
            }
        } else {
            self.values.push(v);
        }
        self.len += 1;
    }

    fn get(&self, i: usize) -> Option<u32> {
        if i >= self.len {
            return None;
        }
        match self.values.get(i) {
            Some(&v) => Some(v),
            None => self.at(i),
        }
    }
}

/// One key, borrowed from its table.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    pub key_id: &'a str,
    pub client_id: &'a str,
    pub status: KeyStatus,
    pub key: &'a VerifyingKey,
    pub source: &'a KeySource,
    /// Where the entry was written, when the source is a file.
    pub pos: Option<KeyPos>,
}

impl KeyRef<'_> {
    pub fn to_record(&self) -> super::KeyRecord {
        super::KeyRecord {
            key_id: self.key_id.to_owned(),
            client_id: self.client_id.to_owned(),
            status: self.status,
            key: *self.key,
            source: self.source.clone(),
        }
    }
}

impl KeyTable {
    pub fn builder(source: KeySource) -> KeyTableBuilder {
        KeyTableBuilder::new(source)
    }

    /// An empty table (a key file with no keys, a directory not fetched yet).
    pub fn empty(source: KeySource) -> Self {
        KeyTableBuilder::new(source).finish()
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The file the table was read from, if any.
    pub fn path(&self) -> Option<&PathBuf> {
        match &self.source {
            KeySource::File(p) => Some(p),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked_count
    }

    pub fn key_id(&self, i: usize) -> &str {
        self.ids.get(i)
    }

    /// Key `i`; `None` past the end.
    pub fn get(&self, i: usize) -> Option<KeyRef<'_>> {
        let key = self.points.get(i)?;
        let key_id = self.ids.get(i);
        let client_id = match self.clients.get(i).copied().unwrap_or(SAME_AS_KEY_ID) {
            SAME_AS_KEY_ID => key_id,
            c => self.client_names.get(c as usize),
        };
        let revoked = self
            .revoked
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0);
        Some(KeyRef {
            key_id,
            client_id,
            status: if revoked {
                KeyStatus::Revoked
            } else {
                KeyStatus::Active
            },
            key,
            source: &self.source,
            pos: self.positions.get(i),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = KeyRef<'_>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Heap bytes held (capacity, not length), for the memory benches and tests.
    pub fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + self.client_names.heap_bytes()
            + self.clients.capacity() * 4
            + self.points.capacity() * std::mem::size_of::<VerifyingKey>()
            + self.revoked.capacity() * 8
            + self.positions.heap_bytes()
    }
}

/// Appends keys one by one; `finish` trims every buffer to size.
pub struct KeyTableBuilder {
    table: KeyTable,
    /// Client id → index into `client_names`, so each distinct client id is stored once.
    client_index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    /// Keys added without their point (`push_deferred`).
    deferred: usize,
}

impl KeyTableBuilder {
    fn new(source: KeySource) -> Self {
        Self {
            table: KeyTable {
                source,
                ids: Strings::default(),
                clients: Vec::new(),
                client_names: Strings::default(),
                points: Vec::new(),
                revoked: Vec::new(),
                revoked_count: 0,
                positions: Positions::default(),
            },
            client_index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            deferred: 0,
        }
    }

    /// Room for `keys` more keys whose ids take `id_bytes` in all, so that nothing grows by
    /// doubling (and leaves the allocator holding the smaller copies).
    pub fn reserve(&mut self, keys: usize, id_bytes: usize) {
        let t = &mut self.table;
        if self.deferred == 0 {
            t.points.reserve_exact(keys);
        }
        t.clients.reserve_exact(keys);
        t.ids.ends.reserve_exact(keys);
        t.ids.bytes.reserve_exact(id_bytes);
        t.revoked.reserve_exact(keys.div_ceil(64));
    }

    /// Keys added so far.
    pub fn len(&self) -> usize {
        self.table.ids.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn source(&self) -> &KeySource {
        &self.table.source
    }

    /// Adds one key. `pos` must be given for every key or for none. Errors only past 4 GiB of
    /// ids in one source, or after `push_deferred`.
    pub fn push(
        &mut self,
        key_id: &str,
        client_id: &str,
        key: VerifyingKey,
        status: KeyStatus,
        pos: Option<KeyPos>,
    ) -> Result<(), String> {
        if self.deferred > 0 {
            return Err("a key with its point after keys without".into());
        }
        self.push_row(key_id, client_id, status, pos)?;
        self.table.points.push(key);
        Ok(())
    }

    /// Adds one key whose point comes later: all keys of a table are deferred or none, and
    /// `finish_with_points` then takes the decoded points, which move into the table as they are.
    pub fn push_deferred(
        &mut self,
        key_id: &str,
        client_id: &str,
        status: KeyStatus,
        pos: Option<KeyPos>,
    ) -> Result<(), String> {
        if !self.table.points.is_empty() {
            return Err("a key without its point after keys with".into());
        }
        self.push_row(key_id, client_id, status, pos)?;
        self.deferred += 1;
        Ok(())
    }

    /// Everything but the point.
    fn push_row(
        &mut self,
        key_id: &str,
        client_id: &str,
        status: KeyStatus,
        pos: Option<KeyPos>,
    ) -> Result<(), String> {
        let t = &mut self.table;
        let i = t.ids.ends.len();
        t.ids.push(key_id)?;
        let client = if client_id == key_id {
            SAME_AS_KEY_ID
        } else {
            let hash = self.hasher.hash_one(client_id);
            let names = &mut t.client_names;
            match self
                .client_index
                .find(hash, |&c| names.get(c as usize) == client_id)
            {
                Some(&c) => c,
                None => {
                    let c = names.push(client_id)?;
                    let hasher = &self.hasher;
                    let names = &t.client_names;
                    self.client_index
                        .insert_unique(hash, c, |&x| hasher.hash_one(names.get(x as usize)));
                    c
                }
            }
        };
        t.clients.push(client);
        if i.is_multiple_of(64) {
            t.revoked.push(0);
        }
        if status == KeyStatus::Revoked {
            if let Some(w) = t.revoked.last_mut() {
                *w |= 1 << (i % 64);
            }
            t.revoked_count += 1;
        }
        if let Some(p) = pos {
            t.positions.push(p);
        }
        Ok(())
    }

    /// Finishes a table whose keys were all `push_deferred`: `points` are theirs, in order.
    pub fn finish_with_points(mut self, points: Vec<VerifyingKey>) -> Result<KeyTable, String> {
        if points.len() != self.deferred || self.deferred != self.len() {
            return Err(format!(
                "{} points for {} deferred keys",
                points.len(),
                self.deferred
            ));
        }
        self.table.points = points;
        Ok(self.finish())
    }

    /// The table. Keys pushed deferred but never given points are dropped (an empty table).
    pub fn finish(mut self) -> KeyTable {
        if self.table.points.len() != self.table.ids.ends.len() {
            return KeyTable::empty(self.table.source);
        }
        let t = &mut self.table;
        t.ids.shrink();
        t.client_names.shrink();
        t.clients.shrink_to_fit();
        t.points.shrink_to_fit();
        t.revoked.shrink_to_fit();
        if t.positions.len() != t.points.len() {
            t.positions = Positions::default();
        }
        t.positions.shrink();
        self.table
    }
}

/// Below this many keys, decoding on the calling thread is cheaper than starting threads.
const PARALLEL_MIN: usize = 4096;

/// Keys decoded per turn by each thread: small enough that the threads finish together (a few
/// ms of work), large enough that taking the next turn costs nothing.
const TURN: usize = 512;

/// Decodes (decompresses and checks) 32-byte Ed25519 public keys on every core: the one costly
/// step of loading a key (a field square root, a few µs), so a million keys take seconds, not
/// tens of seconds. Returns the points in order and the indices of the bytes that are not a point
/// (their slots hold a placeholder and must not be used). The output is allocated here, on the
/// calling thread; the workers only fill it, so no memory is left in short-lived threads' heaps.
pub fn decode_points(raw: &[[u8; 32]]) -> (Vec<VerifyingKey>, Vec<usize>) {
    let mut out = point_slots(raw.len());
    if out.len() != raw.len() {
        return (Vec::new(), (0..raw.len()).collect());
    }
    let ((), ok) = decode_points_while(raw, &mut out, || ());
    let bad = if ok { Vec::new() } else { undecoded(raw, &out) };
    (out, bad)
}

/// `n` placeholder points for `decode_points_while` to fill, allocated on the calling thread
/// (empty if the placeholder cannot be made, which does not happen).
pub fn point_slots(n: usize) -> Vec<VerifyingKey> {
    placeholder().map_or_else(Vec::new, |p| vec![p; n])
}

/// Decodes `raw` into `out` (same length, from `point_slots`) on the other cores while this
/// thread runs `work` (reading and parsing the next key file, say), then decodes with them until
/// every key is done. Returns what `work` returned and whether every key decoded; when one did
/// not, `undecoded` names them. The workers allocate nothing: every turn is a pair of slices of
/// the caller's buffers, handed out under a lock.
pub fn decode_points_while<R>(
    raw: &[[u8; 32]],
    out: &mut [VerifyingKey],
    work: impl FnOnce() -> R,
) -> (R, bool) {
    decode_batch_while(vec![(raw, out)], work)
}

/// `decode_points_while` over several (raw, out) pairs at once (the points of several small key
/// files): one set of threads for all of them. Whether every key of every pair decoded; a pair
/// whose lengths differ is not decoded at all (and makes it false).
pub fn decode_batch_while<R>(
    batch: Vec<(&[[u8; 32]], &mut [VerifyingKey])>,
    work: impl FnOnce() -> R,
) -> (R, bool) {
    let helpers = std::thread::available_parallelism().map_or(1, usize::from) - 1;
    let mut all_ok = true;
    let mut total = 0;
    // The turns, allocated here (not in a worker).
    let mut turns = Vec::with_capacity(
        batch
            .iter()
            .map(|(r, _)| r.len().div_ceil(TURN))
            .sum::<usize>(),
    );
    for (r, o) in batch {
        if r.len() == o.len() {
            total += r.len();
            turns.extend(r.chunks(TURN).zip(o.chunks_mut(TURN)));
        } else {
            all_ok = false;
        }
    }
    if helpers == 0 || total < PARALLEL_MIN {
        let r = work();
        for (raw, out) in turns {
            all_ok &= decode_into(raw, out);
        }
        return (r, all_ok);
    }
    let turns = std::sync::Mutex::new(turns.into_iter());
    let decoded_all = std::sync::atomic::AtomicBool::new(true);
    let decode_turns = || {
        loop {
            // A poisoned lock (a panicking thread, which `from_bytes` never is) ends the turns;
            // the slots left then hold the placeholder and count as not decoded.
            let next = match turns.lock() {
                Ok(mut t) => t.next(),
                Err(_) => None,
            };
            let Some((r, o)) = next else { break };
            if !decode_into(r, o) {
                decoded_all.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    };
    let r = std::thread::scope(|s| {
        // A thread that cannot be started (a pids limit, say) leaves its share to the others and
        // to this thread; `spawn` would panic instead.
        let handles: Vec<_> = (0..helpers)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("sigproxy-keys".into())
                    .spawn_scoped(s, decode_turns)
                    .ok()
            })
            .collect();
        let r = work();
        decode_turns();
        for h in handles {
            if h.join().is_err() {
                decoded_all.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
        r
    });
    let ok = all_ok
        && decoded_all.load(std::sync::atomic::Ordering::Relaxed)
        && turns.lock().is_ok_and(|mut t| t.next().is_none());
    (r, ok)
}

/// The indices whose slot does not hold the key of their bytes (not a point, or never decoded).
pub fn undecoded(raw: &[[u8; 32]], out: &[VerifyingKey]) -> Vec<usize> {
    let mut bad: Vec<usize> = raw
        .iter()
        .zip(out)
        .enumerate()
        .filter(|(_, (r, o))| o.as_bytes() != *r)
        .map(|(i, _)| i)
        .collect();
    bad.extend(out.len()..raw.len());
    bad
}

/// Decodes `raw` into `out` (same length); false when any is not a point.
fn decode_into(raw: &[[u8; 32]], out: &mut [VerifyingKey]) -> bool {
    let mut ok = true;
    for (r, o) in raw.iter().zip(out.iter_mut()) {
        match VerifyingKey::from_bytes(r) {
            Ok(k) => *o = k,
            Err(_) => ok = false,
        }
    }
    ok
}

/// Any valid point, to fill slots before decoding (y = 1: the identity, a valid encoding).
fn placeholder() -> Option<VerifyingKey> {
    let mut one = [0u8; 32];
    one[0] = 1;
    VerifyingKey::from_bytes(&one).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn vk(seed: u8) -> VerifyingKey {
        SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    #[test]
    fn rows_keep_ids_clients_status_and_positions() {
        let mut b = KeyTable::builder(KeySource::File("/k/a.yaml".into()));
        let p = |line| Some(KeyPos { line, col: 5 });
        b.push("k1", "web", vk(1), KeyStatus::Active, p(2)).unwrap();
        b.push("k2", "k2", vk(2), KeyStatus::Revoked, p(6)).unwrap();
        b.push("k3", "web", vk(3), KeyStatus::Active, p(10))
            .unwrap();
        for i in 3..200u32 {
            let id = format!("bulk-{i}");
            let status = if i % 3 == 0 {
                KeyStatus::Revoked
            } else {
                KeyStatus::Active
            };
            b.push(&id, "bulk-client", vk(4), status, p(i * 4)).unwrap();
        }
        let t = b.finish();
        assert_eq!(t.len(), 200);
        let k = t.get(0).unwrap();
        assert_eq!(
            (k.key_id, k.client_id, k.status, *k.key, k.pos),
            ("k1", "web", KeyStatus::Active, vk(1), p(2))
        );
        let k = t.get(1).unwrap();
        assert_eq!(
            (k.key_id, k.client_id, k.status),
            ("k2", "k2", KeyStatus::Revoked)
        );
        assert_eq!(t.get(2).unwrap().client_id, "web");
        assert_eq!(t.client_names.len(), 2, "web and bulk-client, once each");
        let revoked: usize = t.iter().filter(|k| k.status == KeyStatus::Revoked).count();
        assert_eq!(revoked, t.revoked_count());
        assert_eq!(revoked, 1 + (3..200).filter(|i| i % 3 == 0).count());
        assert_eq!(t.get(199).unwrap().key_id, "bulk-199");
        assert_eq!(t.get(199).unwrap().status, KeyStatus::Active);
        assert!(t.get(200).is_none());
        assert_eq!(t.iter().count(), 200);
        assert_eq!(t.path(), Some(&PathBuf::from("/k/a.yaml")));
    }

    #[test]
    fn progressions_store_two_numbers_until_they_break() {
        for values in [
            vec![],
            vec![5],
            vec![2, 6, 10, 14],
            vec![3, 3, 3],
            vec![2, 6, 10, 15, 19],
            vec![9, 4, 20],
            vec![1, 2, 4, 8],
            vec![u32::MAX - 1, u32::MAX, 0],
        ] {
            let mut p = Progression::default();
            for &v in &values {
                p.push(v);
            }
            let got: Vec<u32> = (0..values.len()).filter_map(|i| p.get(i)).collect();
            assert_eq!(got, values);
            assert_eq!(p.get(values.len()), None);
        }
        let mut p = Progression::default();
        for i in 0..1000 {
            p.push(2 + 4 * i);
        }
        assert!(
            p.values.is_empty(),
            "a keygen file's lines cost nothing per key"
        );
    }

    #[test]
    fn deferred_points_move_in_and_must_match() {
        let mut b = KeyTable::builder(KeySource::Inline);
        b.push_deferred("a", "web", KeyStatus::Active, None)
            .unwrap();
        b.push_deferred("b", "b", KeyStatus::Revoked, None).unwrap();
        assert!(b.push("c", "c", vk(3), KeyStatus::Active, None).is_err());
        let t = b.finish_with_points(vec![vk(1), vk(2)]).unwrap();
        assert_eq!(*t.get(1).unwrap().key, vk(2));
        assert_eq!(t.get(1).unwrap().status, KeyStatus::Revoked);
        assert_eq!(t.get(0).unwrap().client_id, "web");
        let mut b = KeyTable::builder(KeySource::Inline);
        b.push_deferred("a", "a", KeyStatus::Active, None).unwrap();
        assert!(b.finish_with_points(vec![]).is_err());
        let mut b = KeyTable::builder(KeySource::Inline);
        b.push("a", "a", vk(1), KeyStatus::Active, None).unwrap();
        assert!(b.push_deferred("b", "b", KeyStatus::Active, None).is_err());
    }

    #[test]
    fn positions_are_all_or_nothing_and_columns_may_differ() {
        let mut b = KeyTable::builder(KeySource::Directory("http://d".into()));
        b.push("a", "a", vk(1), KeyStatus::Active, None).unwrap();
        let t = b.finish();
        assert_eq!(t.get(0).unwrap().pos, None);
        let mut b = KeyTable::builder(KeySource::Inline);
        let at = |line, col| Some(KeyPos { line, col });
        for (i, (line, col)) in [(1, 3), (2, 3), (3, 7), (4, 3)].into_iter().enumerate() {
            b.push(
                &format!("k{i}"),
                "c",
                vk(1),
                KeyStatus::Active,
                at(line, col),
            )
            .unwrap();
        }
        let t = b.finish();
        let got: Vec<_> = t.iter().map(|k| k.pos).collect();
        assert_eq!(got, [at(1, 3), at(2, 3), at(3, 7), at(4, 3)]);
        assert!(KeyTable::empty(KeySource::Inline).is_empty());
    }

    #[test]
    fn parallel_decode_matches_serial_and_flags_bad_points() {
        let mut raw: Vec<[u8; 32]> = (0..PARALLEL_MIN as u32 + 7)
            .map(|i| vk((i % 250) as u8).to_bytes())
            .collect();
        // y = 2 is not on the curve (x² would have to be a non-square).
        let mut bad = [0u8; 32];
        bad[0] = 2;
        assert!(VerifyingKey::from_bytes(&bad).is_err());
        raw[17] = bad;
        raw[PARALLEL_MIN + 3] = bad;
        let (got, failed) = decode_points(&raw);
        assert_eq!(got.len(), raw.len());
        assert_eq!(failed, [17, PARALLEL_MIN + 3]);
        for (i, (g, r)) in got.iter().zip(&raw).enumerate() {
            if !failed.contains(&i) {
                assert_eq!(g.to_bytes(), *r, "row {i}");
            }
        }
        // The work runs on the calling thread, alongside the decoding, and comes back.
        let mut out = point_slots(raw.len());
        let me = std::thread::current().id();
        let (same, ok) = decode_points_while(&raw, &mut out, || std::thread::current().id() == me);
        assert!(same && !ok);
        assert_eq!(undecoded(&raw, &out), [17, PARALLEL_MIN + 3]);
        let tail = &raw[PARALLEL_MIN - 100..];
        let mut out = point_slots(tail.len() - 1);
        let ((), ok) = decode_points_while(tail, &mut out, || ());
        assert!(!ok, "slots of the wrong length are not a decode");
        let (few, failed) = decode_points(&raw[15..18]);
        assert_eq!((few.len(), failed), (3, vec![2]));
        assert_eq!(few[0].to_bytes(), raw[15]);
    }
}
