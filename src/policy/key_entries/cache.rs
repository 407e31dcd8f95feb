//! Re-read only the key files that changed. A reload at a million keys must not re-parse (and
//! re-decode) a hundred unchanged files to apply one revocation, nor read them all every poll.
//!
//! A file is known by its stamp: device, inode, size, mtime and ctime, read through the path (so
//! a ConfigMap `..data` swap or a rename-over gives a new inode). A matching stamp is trusted
//! only when the file's times are older than `RACY` at the moment the file was read: a later
//! write then necessarily moves mtime or ctime, whatever the file system's timestamp granularity
//! (ctime cannot be set by tools that preserve mtime). A file changed more recently than that is
//! read again and compared by SHA-256 ("racy" files, as git calls them), so two writes within one
//! timestamp tick are still told apart. It does not parse anything itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::keys::{KeyIndex, KeyTable};

/// Times closer than this to "now" are not trusted to change on the next write: covers coarse
/// (1 s, FAT's 2 s) timestamps and clock ticks.
pub const RACY: Duration = Duration::from_secs(2);

/// What `stat` says about a file, enough to notice any write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of the file `path` names now (symlinks followed); `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self::from_metadata(&m))
    }

    #[cfg(unix)]
    fn from_metadata(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self {
            dev: m.dev(),
            ino: m.ino(),
            len: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    fn from_metadata(m: &std::fs::Metadata) -> Self {
        let secs = |t: std::io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or((0, 0), |d| {
                    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
                })
        };
        Self {
            dev: 0,
            ino: 0,
            len: m.len(),
            mtime: secs(m.modified()),
            ctime: secs(m.created()),
        }
    }

    /// The latest of mtime and ctime.
    fn changed_at(&self) -> SystemTime {
        let at = |(s, ns): (i64, i64)| {
            let d = Duration::new(s.unsigned_abs(), u32::try_from(ns).unwrap_or(0));
            if s >= 0 {
                SystemTime::UNIX_EPOCH + d
            } else {
                SystemTime::UNIX_EPOCH - d
            }
        };
        at(self.mtime).max(at(self.ctime))
    }

    /// True when a write after `seen` could leave this stamp as it is: the file changed less than
    /// `RACY` before `seen` (or after it: a clock step).
    pub fn racy_at(&self, seen: SystemTime) -> bool {
        seen.duration_since(self.changed_at())
            .map_or(true, |age| age < RACY)
    }

    /// Bytes for a fingerprint.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut b = [0u8; 48];
        let fields = [
            self.dev,
            self.ino,
            self.len,
            self.mtime.0 as u64,
            ((self.mtime.1 as u64) << 32) | (self.ctime.1 as u64 & 0xffff_ffff),
            self.ctime.0 as u64,
        ];
        for (chunk, v) in b.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

struct Cached {
    stamp: FileStamp,
    /// When the stamp was taken (just before the bytes were read).
    seen: SystemTime,
    digest: [u8; 32],
    table: Arc<KeyTable>,
}

#[derive(Default)]
struct Inner {
    files: HashMap<PathBuf, Cached>,
    /// The watcher's view: every key file's content digest, by stamp.
    digests: HashMap<PathBuf, (FileStamp, SystemTime, [u8; 32])>,
    /// The last index built, reused whole when no table changed.
    index: Option<Arc<KeyIndex>>,
    counts: CacheCounts,
}

/// What the cache did, for tests and the bench.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Files reused on their stamp alone (not read).
    pub unchanged_by_stamp: u64,
    /// Files read again (racy or stamp changed) whose bytes were the same.
    pub unchanged_by_content: u64,
    /// Files parsed.
    pub parsed: u64,
}

/// The tables of the key files last loaded without errors, by path. One per `LivePolicy`;
/// `policy::load` (check-config, verify) uses none.
#[derive(Default)]
pub struct KeyFileCache {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for KeyFileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFileCache")
            .field("counts", &self.counts())
            .finish()
    }
}

/// What reading one key file through the cache gave.
pub(crate) enum Read {
    /// The cached table: the file is as it was.
    Same(Arc<KeyTable>),
    /// The file's text, to parse; `Cache::store` it afterwards if it parsed cleanly.
    Changed(Fresh),
}

pub(crate) struct Fresh {
    pub text: String,
    stamp: Option<FileStamp>,
    seen: SystemTime,
    digest: [u8; 32],
}

impl Read {
    /// Text read without a cache.
    pub(crate) fn uncached(text: String) -> Self {
        Read::Changed(Fresh {
            text,
            stamp: None,
            seen: SystemTime::UNIX_EPOCH,
            digest: [0; 32],
        })
    }
}

impl KeyFileCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> CacheCounts {
        self.lock().counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file's table if it has not changed, else its text (or why it cannot be read).
    pub(crate) fn read(&self, path: &Path) -> std::io::Result<Read> {
        let seen = SystemTime::now();
        let stamp = FileStamp::of(path);
        {
            let mut inner = self.lock();
            if let (Some(c), Some(s)) = (inner.files.get(path), stamp)
                && c.stamp == s
                && !s.racy_at(c.seen)
            {
                let table = c.table.clone();
                inner.counts.unchanged_by_stamp += 1;
                return Ok(Read::Same(table));
            }
        }
        // Known but racy or moved: compare the content, streamed (no copy of the file), first.
        if self.lock().files.contains_key(path) {
            let digest = digest_file(path)?;
            let mut inner = self.lock();
            if let Some(c) = inner.files.get_mut(path)
                && c.digest == digest
            {
                if let Some(s) = stamp {
                    c.stamp = s;
                    c.seen = seen;
                }
                let table = c.table.clone();
                inner.counts.unchanged_by_content += 1;
                return Ok(Read::Same(table));
            }
        }
        let bytes = super::super::read_limited(path)?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        let text =
            String::from_utf8(bytes).map_err(|_| std::io::Error::other("not valid UTF-8"))?;
        Ok(Read::Changed(Fresh {
            text,
            stamp,
            seen,
            digest,
        }))
    }

    /// Remembers a file that parsed without errors.
    pub(crate) fn store(&self, path: &Path, fresh: &Fresh, table: &Arc<KeyTable>) {
        let mut inner = self.lock();
        inner.counts.parsed += 1;
        if let Some(stamp) = fresh.stamp {
            inner.files.insert(
                path.to_path_buf(),
                Cached {
                    stamp,
                    seen: fresh.seen,
                    digest: fresh.digest,
                    table: table.clone(),
                },
            );
        }
    }

    /// Counts a parse that is not stored (a file with errors).
    pub(crate) fn parsed_with_errors(&self, path: &Path) {
        let mut inner = self.lock();
        inner.counts.parsed += 1;
        inner.files.remove(path);
    }

    /// Forgets files no longer matched by `key_files`.
    pub(crate) fn retain(&self, paths: &[PathBuf]) {
        let mut inner = self.lock();
        inner.files.retain(|p, _| paths.binary_search(p).is_ok());
        inner.digests.retain(|p, _| paths.binary_search(p).is_ok());
    }

    /// SHA-256 of the file's content, read only when its stamp moved or is racy: what the
    /// watcher polls every 250 ms, so that a million keys cost a hundred `stat`s per poll rather
    /// than 140 MB read and hashed, and an unchanged file always gives the same answer.
    pub fn content_digest(&self, path: &Path) -> std::io::Result<[u8; 32]> {
        let seen = SystemTime::now();
        let stamp = FileStamp::of(path);
        if let Some(s) = stamp {
            let mut inner = self.lock();
            if let Some((known, known_seen, digest)) = inner.digests.get(path)
                && *known == s
                && !s.racy_at(*known_seen)
            {
                return Ok(*digest);
            }
            // The loader's digest of the bytes it parsed, under the same stamp: the watcher's
            // first look after a load of a million keys then reads nothing.
            if let Some(c) = inner.files.get(path)
                && c.stamp == s
                && !s.racy_at(c.seen)
            {
                let known = (s, c.seen, c.digest);
                inner.digests.insert(path.to_path_buf(), known);
                return Ok(known.2);
            }
        }
        let digest = digest_file(path)?;
        if let Some(s) = stamp {
            self.lock()
                .digests
                .insert(path.to_path_buf(), (s, seen, digest));
        }
        Ok(digest)
    }

    /// The last index, when it holds exactly `tables` (the same `Arc`s in the same order).
    pub(crate) fn index_for(&self, tables: &[Arc<KeyTable>]) -> Option<Arc<KeyIndex>> {
        let inner = self.lock();
        let index = inner.index.as_ref()?;
        let same = index.tables().len() == tables.len()
            && index
                .tables()
                .iter()
                .zip(tables)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        same.then(|| index.clone())
    }

    /// The last index built (to `update`).
    pub(crate) fn last_index(&self) -> Option<Arc<KeyIndex>> {
        self.lock().index.clone()
    }

    /// The inline table of the last index.
    pub(crate) fn index_for_inline(&self) -> Option<Arc<KeyTable>> {
        self.lock().index.as_ref()?.tables().first().cloned()
    }

    pub(crate) fn set_index(&self, index: &Arc<KeyIndex>) {
        self.lock().index = Some(index.clone());
    }
}

/// SHA-256 of a file of at most `MAX_FILE_BYTES`, streamed (no copy of the file in memory).
fn digest_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Read as _;
    let max = super::super::MAX_FILE_BYTES;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut std::fs::File::open(path)?.take(max + 1), &mut h)?;
    if n > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_writes_and_renames() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k.yaml");
        std::fs::write(&f, "a").unwrap();
        let a = FileStamp::of(&f).unwrap();
        assert_eq!(Some(a), FileStamp::of(&f));
        // Just written: racy now, not once RACY has passed.
        assert!(a.racy_at(SystemTime::now()));
        assert!(!a.racy_at(SystemTime::now() + RACY + Duration::from_millis(10)));
        let tmp = d.path().join("k.tmp");
        std::fs::write(&tmp, "b").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        let b = FileStamp::of(&f).unwrap();
        assert_ne!(a, b, "a rename-over is a new inode");
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert!(FileStamp::of(&d.path().join("missing")).is_none());
    }

    #[test]
    fn content_digest_reads_only_changed_or_racy_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k.yaml");
        std::fs::write(&f, "one").unwrap();
        let cache = KeyFileCache::new();
        let one = cache.content_digest(&f).unwrap();
        assert_eq!(one, <[u8; 32]>::from(Sha256::digest(b"one")));
        // Racy (just written): an in-place rewrite of the same size in the same tick is seen.
        std::fs::write(&f, "two").unwrap();
        let two = cache.content_digest(&f).unwrap();
        assert_eq!(two, <[u8; 32]>::from(Sha256::digest(b"two")));
        // A file whose stamp is old and unchanged is not read: pretend it was seen long after
        // its last change, then make it unreadable without touching its stamp.
        {
            let mut inner = cache.lock();
            let e = inner.digests.get_mut(&f).unwrap();
            e.1 = SystemTime::now() + RACY + Duration::from_secs(1);
            e.2 = [7; 32];
        }
        assert_eq!(
            cache.content_digest(&f).unwrap(),
            [7; 32],
            "served from the stamp"
        );
        std::fs::remove_file(&f).unwrap();
        assert!(cache.content_digest(&f).is_err());
    }

    #[test]
    fn content_digest_takes_the_loaders_digest_under_the_same_stamp() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k.yaml");
        std::fs::write(&f, "keys:\n").unwrap();
        let cache = KeyFileCache::new();
        let Ok(Read::Changed(fresh)) = cache.read(&f) else {
            panic!("a file never seen is read");
        };
        assert_eq!(fresh.digest, <[u8; 32]>::from(Sha256::digest(b"keys:\n")));
        let table = Arc::new(KeyTable::empty(crate::keys::KeySource::File(f.clone())));
        cache.store(&f, &fresh, &table);
        // Just written, so racy: the watcher reads it itself.
        assert_eq!(cache.content_digest(&f).unwrap(), fresh.digest);
        cache.lock().digests.clear();
        // Loaded long after its last change: the loader's digest is used, the file not read.
        {
            let mut inner = cache.lock();
            let c = inner.files.get_mut(&f).unwrap();
            c.seen = SystemTime::now() + RACY + Duration::from_secs(1);
            c.digest = [9; 32];
        }
        assert_eq!(cache.content_digest(&f).unwrap(), [9; 32]);
        // Its stamp moved: read again.
        std::fs::write(&f, "keys: []\n").unwrap();
        assert_eq!(
            cache.content_digest(&f).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"keys: []\n"))
        );
    }
}
