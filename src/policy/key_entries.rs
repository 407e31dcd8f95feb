//! Key entries as the policy writes them — inline `keys:` and the files `key_files` names —
//! with where each was written, gathered into one `KeyIndex` (key ids unique across every
//! file, a clash naming both places). It checks shape, ids and status; turning `public_key` text
//! into a key is `crate::keys`' job. Key files in the block layout `keygen` writes take a fast
//! path (`fast`); anything else goes through the positioned YAML tree. Files are read as a
//! pipeline: the next file is read and parsed while the other cores decode the last one's points.
//! `key_files` globs support `*` and `?` in the last path segment.

mod cache;
mod fast;

pub use cache::{CacheCounts, FileStamp, KeyFileCache, RACY};

use super::error::{ConfigError, Diag};
use super::file::PolicyFile;
use super::reader::{MapReader, choice, index, list, string};
use super::yaml::{self, Node, Pos};
use crate::keys::{
    KeyIndex, KeyPos, KeyRecord, KeySource, KeyStatus, KeyTable, decode_batch_while,
    parse_public_key,
};
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One key as configured, its public key text already checked and parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub key_id: String,
    /// Defaults to `key_id` when omitted.
    pub client_id: String,
    /// As written (base64, PEM or JWK).
    pub public_key: String,
    pub key: VerifyingKey,
    pub status: KeyStatus,
    /// Where it was written: `Inline` (the policy file) or `File(path)`.
    pub source: KeySource,
    /// The file (policy or key file) and position of the entry, for messages.
    pub file: String,
    pub pos: Pos,
}

impl KeyEntry {
    pub fn record(&self) -> KeyRecord {
        KeyRecord {
            key_id: self.key_id.clone(),
            client_id: self.client_id.clone(),
            status: self.status,
            key: self.key,
            source: self.source.clone(),
        }
    }
}

const STATUS: [(&str, KeyStatus); 2] = [
    ("active", KeyStatus::Active),
    ("revoked", KeyStatus::Revoked),
];

/// Parse a `keys:` list; `source` is where these entries come from.
pub(crate) fn parse_list(
    d: &mut Diag,
    node: &Node,
    path: &str,
    source: &KeySource,
) -> Vec<KeyEntry> {
    let mut out = Vec::new();
    for (i, item) in list(d, node, path).unwrap_or(&[]).iter().enumerate() {
        let ip = index(path, i);
        let Some(m) = MapReader::new(d, item, &ip, &super::schema::children("keys[]")) else {
            continue;
        };
        let req = |key: &str, d: &mut Diag| match m.get(key) {
            Some((n, p)) => string(d, n, &p).and_then(|s| {
                if s.trim().is_empty() {
                    d.err(n.pos, &p, format!("{key} is empty"));
                    None
                } else {
                    Some(s.to_string())
                }
            }),
            None => {
                d.err(item.pos, &ip, format!("missing `{key}`"));
                None
            }
        };
        let key_id = req("key_id", d);
        let public_key = req("public_key", d);
        let key = match (&public_key, m.get("public_key")) {
            (Some(text), Some((n, p))) => match parse_public_key(text) {
                Ok(k) => Some(k),
                Err(e) => {
                    d.err(n.pos, &p, format!("not a usable Ed25519 public key: {e}"));
                    None
                }
            },
            _ => None,
        };
        let client_id = match m.get("client_id") {
            Some(_) => req("client_id", d),
            None => key_id.clone(),
        };
        let status = match m.get("status") {
            Some((n, p)) => choice(d, n, &p, &STATUS),
            None => Some(KeyStatus::Active),
        };
        if let (Some(key_id), Some(client_id), Some(public_key), Some(key), Some(status)) =
            (key_id, client_id, public_key, key, status)
        {
            let (source, file, pos) = (source.clone(), d.file.clone(), item.pos);
            out.push(KeyEntry {
                key_id,
                client_id,
                public_key,
                key,
                status,
                source,
                file,
                pos,
            });
        }
    }
    out
}

/// Parse one key file into a table of its valid keys, with the errors of the others.
pub(crate) fn parse_key_file(text: &str, path: &Path) -> (KeyTable, Vec<ConfigError>) {
    let source = KeySource::File(path.to_path_buf());
    if let Some(table) = fast::parse(text, &source) {
        return (table, Vec::new());
    }
    let (entries, errors) = parse_key_file_entries(text, path);
    (table_of(&entries, source), errors)
}

/// The full reader: a list of entries, or a mapping with a `keys:` list.
pub(crate) fn parse_key_file_entries(text: &str, path: &Path) -> (Vec<KeyEntry>, Vec<ConfigError>) {
    let file = path.display().to_string();
    let source = KeySource::File(path.to_path_buf());
    let mut d = Diag::new(&file);
    let keys = match yaml::parse_document(text) {
        Err((pos, msg)) => {
            d.err(pos, "", format!("YAML syntax error: {msg}"));
            Vec::new()
        }
        Ok(None) => Vec::new(),
        Ok(Some(root)) => match &root.value {
            yaml::Value::Seq(_) => parse_list(&mut d, &root, "keys", &source),
            _ => match MapReader::new(&mut d, &root, "", &["keys"]) {
                Some(m) => m
                    .get("keys")
                    .map(|(n, p)| parse_list(&mut d, n, &p, &source))
                    .unwrap_or_default(),
                None => Vec::new(),
            },
        },
    };
    (keys, d.errors)
}

fn key_pos(p: Pos) -> KeyPos {
    KeyPos {
        line: u32::try_from(p.line).unwrap_or(u32::MAX),
        col: u32::try_from(p.col).unwrap_or(u32::MAX),
    }
}

/// Entries already checked and parsed → one table (ids are not checked for uniqueness here).
fn table_of(entries: &[KeyEntry], source: KeySource) -> KeyTable {
    let mut b = KeyTable::builder(source);
    b.reserve(entries.len(), entries.iter().map(|e| e.key_id.len()).sum());
    for e in entries {
        // Only fails past 4 GiB of ids, which a 4 MiB file cannot hold.
        let _ = b.push(
            &e.key_id,
            &e.client_id,
            e.key,
            e.status,
            Some(key_pos(e.pos)),
        );
    }
    b.finish()
}

/// Inline keys plus key files, indexed; key ids unique across all of them. Returns the index
/// (of the valid keys, when there are errors) and the key files the patterns matched. With a
/// `cache`, only the key files that changed since the last load are read and parsed, and an
/// unchanged set of tables reuses the last index.
pub(crate) fn gather(
    file: &PolicyFile,
    root: &yaml::Node,
    base: &Path,
    file_name: &str,
    errors: &mut Vec<ConfigError>,
    cache: Option<&KeyFileCache>,
) -> (Arc<KeyIndex>, Vec<PathBuf>) {
    let mut paths = Vec::new();
    let patterns = match &root.value {
        yaml::Value::Map(m) => m
            .iter()
            .find(|(k, _)| k.value == yaml::Value::Str("key_files".into())),
        _ => None,
    };
    let pattern_nodes: &[yaml::Node] = match patterns.map(|(_, v)| &v.value) {
        Some(yaml::Value::Seq(items)) => items,
        _ => &[],
    };
    for (i, pattern) in file.key_files.iter().enumerate() {
        let pos = pattern_nodes.get(i).map_or(Pos::default(), |n| n.pos);
        match expand(pattern, base) {
            Ok(found) => paths.extend(found),
            Err(message) => errors.push(ConfigError {
                file: file_name.to_string(),
                line: pos.line,
                col: pos.col,
                path: format!("key_files[{i}]"),
                message,
            }),
        }
    }
    paths.sort();
    paths.dedup();
    let mut tables = Vec::with_capacity(paths.len() + 1);
    let inline = table_of(&file.keys, KeySource::Inline);
    // The inline table is rebuilt from the policy each time; keep the old `Arc` when it is the
    // same, so that an unchanged key set reuses its index.
    let previous_inline = cache
        .and_then(|c| c.index_for_inline())
        .filter(|t| **t == inline);
    tables.push(previous_inline.unwrap_or_else(|| Arc::new(inline)));
    // One slot per path, filled in whatever order the pipeline finishes files; read in order.
    let mut slots: Vec<Slot> = std::iter::repeat_with(Slot::default)
        .take(paths.len())
        .collect();
    // A pipeline over the files: while the other cores decode the points of the last batch of
    // files read, this thread reads and parses the next batch, then helps decode. A batch is one
    // file, or as many small files as make `BATCH_KEYS` keys (threads for a file of a hundred
    // keys would cost more than they save). Every long-lived buffer is allocated here, on this
    // thread (see `decode_batch_while`).
    let mut pending: Vec<Pending> = Vec::new();
    let mut next_path = paths.iter().enumerate();
    let read_batch =
        |slots: &mut [Slot],
         next_path: &mut std::iter::Enumerate<std::slice::Iter<'_, PathBuf>>| {
            let mut batch = Vec::new();
            let mut keys = 0;
            while keys < BATCH_KEYS {
                let Some((i, path)) = next_path.next() else {
                    break;
                };
                if let Some(p) = read_one(i, path, cache, slots) {
                    keys += p.prepared.raw.len();
                    batch.push(p);
                }
            }
            batch
        };
    loop {
        let (next, decoded) = if pending.is_empty() {
            (read_batch(&mut slots, &mut next_path), true)
        } else {
            let pairs = pending
                .iter_mut()
                .map(|p| (&p.prepared.raw[..], &mut p.prepared.points[..]))
                .collect();
            decode_batch_while(pairs, || read_batch(&mut slots, &mut next_path))
        };
        for p in pending.drain(..) {
            finish_one(p, decoded, cache, &mut slots);
        }
        if next.is_empty() {
            break;
        }
        pending = next;
    }
    for (slot, path) in slots.into_iter().zip(&paths) {
        match slot.table {
            Some(table) => tables.push(table),
            // Every path ends with a table or an error; should one not, say so rather than
            // load without its keys in silence.
            None if slot.errors.is_empty() => errors.push(ConfigError {
                file: path.display().to_string(),
                line: 1,
                col: 1,
                path: String::new(),
                message: "key file not read".into(),
            }),
            None => {}
        }
        errors.extend(slot.errors);
    }
    if let Some(c) = cache {
        c.retain(&paths);
        if let Some(index) = c.index_for(&tables) {
            return (index, paths);
        }
    }
    let built = match cache.and_then(KeyFileCache::last_index) {
        Some(last) => last.update(tables),
        None => KeyIndex::build(tables),
    };
    let index = match built {
        Ok(index) => index,
        Err(dups) => {
            let label = |s: &KeySource| match s {
                KeySource::File(p) => p.display().to_string(),
                _ => file_name.to_string(),
            };
            for (first, second) in dups.pairs() {
                let (fp, sp) = (
                    first.pos.unwrap_or_default(),
                    second.pos.unwrap_or_default(),
                );
                errors.push(ConfigError {
                    file: label(second.source),
                    line: sp.line as usize,
                    col: sp.col as usize,
                    path: "keys".into(),
                    message: format!(
                        "duplicate key_id {:?} (first defined at {}:{}:{})",
                        second.key_id,
                        label(first.source),
                        fp.line,
                        fp.col
                    ),
                });
            }
            KeyIndex::empty()
        }
    };
    let index = Arc::new(index);
    if let Some(c) = cache
        && errors.is_empty()
    {
        c.set_index(&index);
    }
    (index, paths)
}

/// Key files are decoded in batches of at least this many keys (or one file, if bigger).
const BATCH_KEYS: usize = 4096;

/// One key file's outcome in `gather`: its table, or the errors that kept it out.
#[derive(Default)]
struct Slot {
    table: Option<Arc<KeyTable>>,
    errors: Vec<ConfigError>,
}

/// A key file parsed by the fast path whose points are still to be decoded.
struct Pending {
    slot: usize,
    path: PathBuf,
    fresh: cache::Fresh,
    prepared: fast::Prepared,
}

/// Reads key file `i` (through the cache, if any) and parses it: an unchanged, unreadable or
/// slow-path file goes straight into its slot; a fast-path file comes back to have its points
/// decoded.
fn read_one(
    i: usize,
    path: &Path,
    cache: Option<&KeyFileCache>,
    slots: &mut [Slot],
) -> Option<Pending> {
    let read = match cache {
        Some(c) => c.read(path),
        None => super::read_limited(path)
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| std::io::Error::other("not valid UTF-8"))
            })
            .map(cache::Read::uncached),
    };
    let slot = slots.get_mut(i)?;
    match read {
        Ok(cache::Read::Same(table)) => slot.table = Some(table),
        Ok(cache::Read::Changed(fresh)) => {
            let source = KeySource::File(path.to_path_buf());
            if let Some(prepared) = fast::prepare(&fresh.text, &source) {
                return Some(Pending {
                    slot: i,
                    path: path.to_path_buf(),
                    fresh,
                    prepared,
                });
            }
            full_read(path, &fresh, cache, slot);
        }
        Err(e) => slot.errors.push(ConfigError {
            file: path.display().to_string(),
            line: 1,
            col: 1,
            path: String::new(),
            message: format!("cannot read key file: {e}"),
        }),
    }
    None
}

/// A fast-path file whose points are decoded: its table, or (a key that is not a point) the full
/// reader's table and errors.
fn finish_one(p: Pending, decoded: bool, cache: Option<&KeyFileCache>, slots: &mut [Slot]) {
    let Some(slot) = slots.get_mut(p.slot) else {
        return;
    };
    match p.prepared.finish(decoded) {
        Some(table) => {
            let table = Arc::new(table);
            if let Some(c) = cache {
                c.store(&p.path, &p.fresh, &table);
            }
            slot.table = Some(table);
        }
        None => full_read(&p.path, &p.fresh, cache, slot),
    }
}

/// The full reader over a key file's text, into its slot (the table of its valid keys and the
/// errors of the others).
fn full_read(path: &Path, fresh: &cache::Fresh, cache: Option<&KeyFileCache>, slot: &mut Slot) {
    let (entries, errs) = parse_key_file_entries(&fresh.text, path);
    let table = Arc::new(table_of(&entries, KeySource::File(path.to_path_buf())));
    if let Some(c) = cache {
        if errs.is_empty() {
            c.store(path, fresh, &table);
        } else {
            c.parsed_with_errors(path);
        }
    }
    slot.table = Some(table);
    slot.errors = errs;
}

/// Expand one `key_files` pattern relative to `base`. A pattern without wildcards must exist;
/// a wildcard that matches nothing is not an error (an empty key directory is valid).
pub(crate) fn expand(pattern: &str, base: &Path) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.contains(['*', '?']) {
        return if full.is_file() {
            Ok(vec![full])
        } else {
            Err(format!(
                "{} does not exist or is not a file",
                full.display()
            ))
        };
    }
    let dir = full.parent().unwrap_or(Path::new("."));
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err("wildcards are supported in the last path segment only".into());
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            // Hidden entries are skipped: a ConfigMap volume's `..data` directories live there.
            !n.starts_with('.') && glob_match(name.as_bytes(), n.as_bytes()) && e.path().is_file()
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// `*` matches any run of bytes, `?` one byte. Iterative with one backtrack point: linear-ish.
fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i, mut star, mut mark) = (0, 0, None, 0);
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match(b"*.yaml", b"a.yaml"));
        assert!(glob_match(b"k?-*.yaml", b"k1-x.yaml"));
        assert!(!glob_match(b"*.yaml", b"a.yml"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a*b*c", b"aXbY"));
    }

    #[test]
    fn key_file_shapes_and_errors() {
        let f = Path::new("f.yaml");
        let pk = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";
        let (k, e) = parse_key_file(&format!("- {{key_id: a, public_key: \"{pk}\"}}\n"), f);
        assert_eq!((k.len(), e.len(), k.get(0).unwrap().client_id), (1, 0, "a"));
        let (k, e) = parse_key_file(
            &format!("keys:\n  - key_id: a\n    public_key: {pk}\n    status: revokd\n"),
            f,
        );
        assert_eq!(k.len(), 0);
        assert_eq!(
            e[0].to_string(),
            "f.yaml:4:13: keys[0].status: unknown value \"revokd\": expected one of active | revoked; did you mean `revoked`?"
        );
        let (_, e) = parse_key_file("- {key_id: a}\n", f);
        assert_eq!(
            e[0].to_string(),
            "f.yaml:1:3: keys[0]: missing `public_key`"
        );
    }

    /// Key files read through the pipeline (the next batch parsed while the last one's points
    /// decode) — big files each a batch, small files batched together, tiny sets on one thread:
    /// a key that is not a point still names its file, line and column, a duplicate across files
    /// still names both places, errors come in file order, and the cached and uncached loads
    /// agree key for key.
    #[test]
    fn pipelined_load_keeps_every_error_and_every_key() {
        for (files, per_file) in [(4, 5000), (30, 300), (3, 40)] {
            pipelined_load(files, per_file);
        }
    }

    #[allow(clippy::unwrap_used)]
    fn pipelined_load(files: usize, n: usize) {
        let pk = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";
        let not_a_point = "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let d = tempfile::tempdir().unwrap();
        let keys = d.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let name = |f: usize| keys.join(format!("f{f:02}.yaml"));
        let write = |f: usize, bad: Option<usize>, extra: Option<&str>| {
            let mut s = String::from("keys:\n");
            for i in 0..n {
                let key = if Some(i) == bad { not_a_point } else { pk };
                s.push_str(&format!("  - key_id: f{f}-{i}\n    public_key: {key}\n"));
            }
            if let Some(id) = extra {
                s.push_str(&format!("  - key_id: {id}\n    public_key: {pk}\n"));
            }
            std::fs::write(name(f), s).unwrap();
        };
        for f in 0..files {
            write(f, None, None);
        }
        let policy = d.path().join("policy.yaml");
        std::fs::write(&policy, "key_files: [\"keys/*.yaml\"]\n").unwrap();
        let cache = KeyFileCache::new();
        let cached = super::super::load_cached(&policy, &cache).unwrap();
        let plain = super::super::load(&policy).unwrap();
        assert_eq!(cached.keys.len(), files * n);
        assert_eq!(cached, plain);
        let row = n - 3;
        let k = plain.keys.get(&format!("f{}-{row}", files - 1)).unwrap();
        let line = 2 + 2 * row as u32;
        assert_eq!(k.pos, Some(KeyPos { line, col: 5 }));
        assert_eq!(k.key.as_bytes(), &crate::keys::base64_32(pk).unwrap());

        // A key in the second file is not a point; the last file redefines f0-17 at its end.
        let (bad_file, bad_row, last) = (1, n / 2, files - 1);
        write(bad_file, Some(bad_row), None);
        write(last, None, Some("f0-17"));
        let parsed = cache.counts().parsed;
        for e in [
            super::super::load_cached(&policy, &cache).unwrap_err(),
            super::super::load(&policy).unwrap_err(),
        ] {
            let e = e.to_string();
            let bad_at = e.find(&format!(
                "{}:{}:17: keys[{bad_row}].public_key: not a usable Ed25519 public key",
                name(bad_file).display(),
                3 + 2 * bad_row
            ));
            let dup_at = e.find(&format!(
                "{}:{}:5: keys: duplicate key_id \"f0-17\" (first defined at {}:{}:5)",
                name(last).display(),
                2 + 2 * n,
                name(0).display(),
                2 + 2 * 17
            ));
            assert!(bad_at.is_some() && dup_at.is_some(), "{files}x{n}: {e}");
            assert!(bad_at < dup_at, "{e}");
            assert_eq!(e.lines().count(), 2, "{e}");
        }
        assert_eq!(cache.counts().parsed, parsed + 2);
        // Fixed: only the two rewritten files are parsed again, and every key is there.
        write(bad_file, None, None);
        write(last, None, None);
        let fixed = super::super::load_cached(&policy, &cache).unwrap();
        assert_eq!(cache.counts().parsed, parsed + 4);
        assert_eq!(fixed.keys.len(), files * n);
        assert_eq!(fixed, plain);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn reloads_parse_only_the_key_files_that_changed() {
        let pk = "JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";
        let d = tempfile::tempdir().unwrap();
        let keys = d.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        let write = |name: &str, ids: &[&str], revoked: &str| {
            let mut s = String::from("keys:\n");
            for id in ids {
                let status = if *id == revoked { "revoked" } else { "active" };
                s.push_str(&format!(
                    "  - key_id: {id}\n    public_key: {pk}\n    status: {status}\n"
                ));
            }
            std::fs::write(keys.join(name), s).unwrap();
        };
        write("a.yaml", &["a1", "a2"], "");
        write("b.yaml", &["b1", "b2"], "");
        write("c.yaml", &["c1"], "");
        let policy = d.path().join("policy.yaml");
        std::fs::write(&policy, "key_files: [\"keys/*.yaml\"]\n").unwrap();
        let cache = KeyFileCache::new();
        let load = || super::super::load_cached(&policy, &cache);

        let p1 = load().unwrap();
        assert_eq!((p1.keys.len(), cache.counts().parsed), (5, 3));
        // Nothing changed: nothing parsed, the very same index.
        let p2 = load().unwrap();
        assert!(Arc::ptr_eq(&p1.keys, &p2.keys));
        assert_eq!(cache.counts().parsed, 3);
        assert_eq!(p1, p2);

        // One key revoked: that file alone is parsed again; the others' tables are shared.
        write("b.yaml", &["b1", "b2"], "b2");
        let p3 = load().unwrap();
        assert_eq!(cache.counts().parsed, 4);
        assert_eq!(p3.keys.get("b2").unwrap().status, KeyStatus::Revoked);
        let (t1, t3) = (p1.keys.tables(), p3.keys.tables());
        assert!(Arc::ptr_eq(&t1[1], &t3[1]) && Arc::ptr_eq(&t1[3], &t3[3]));
        assert!(!Arc::ptr_eq(&t1[2], &t3[2]));
        assert_ne!(p1, p3);

        // The same bytes written again (same size, possibly the same timestamp tick): no parse.
        write("b.yaml", &["b1", "b2"], "b2");
        let p4 = load().unwrap();
        assert!(Arc::ptr_eq(&p3.keys, &p4.keys));
        assert_eq!(cache.counts().parsed, 4);

        // A broken file fails the load and is not cached; fixed, it loads again.
        std::fs::write(keys.join("c.yaml"), "- key_id: c1\n  public_key: nope\n").unwrap();
        let e = load().unwrap_err();
        assert!(e.to_string().contains("c.yaml:2:15"), "{e}");
        write("c.yaml", &["c1", "c2"], "");
        assert_eq!(load().unwrap().keys.len(), 6);
        // A duplicate across files still names both places, cached or not.
        write("c.yaml", &["c1", "a2"], "");
        let e = load().unwrap_err().to_string();
        let a = keys.join("a.yaml").display().to_string();
        assert!(
            e.contains(&format!(
                "duplicate key_id \"a2\" (first defined at {a}:5:5)"
            )),
            "{e}"
        );
        // A file removed: its keys are gone.
        std::fs::remove_file(keys.join("c.yaml")).unwrap();
        let p5 = load().unwrap();
        assert_eq!(p5.keys.len(), 4);
        assert!(p5.keys.get("c1").is_none());
    }
}
