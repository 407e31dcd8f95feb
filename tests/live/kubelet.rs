//! A ConfigMap volume as the kubelet writes it (pkg/volume/util/atomic_writer.go), on a temp
//! dir: every update writes a new hidden `..<timestamp>` directory, points `..data_tmp` at it,
//! renames that over `..data` (the atomic switch), creates `KEY -> ..data/KEY` links for new
//! keys, removes the links of dropped keys and deletes the old directory. Files are never
//! written in place.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub struct ConfigMapDir {
    pub root: PathBuf,
    keys: BTreeMap<String, String>,
    current: Option<String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn timestamp_dir_name() -> String {
    // The kubelet: `..` + time.Now().UTC().Format("2006_01_02_15_04_05.") + a random suffix.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!(
        "..{}_{:09}.{}{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl ConfigMapDir {
    /// An empty volume at `root` (created), then the first update with `data`.
    pub fn new(root: &Path, data: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(root).unwrap();
        let mut d = ConfigMapDir {
            root: root.to_path_buf(),
            keys: BTreeMap::new(),
            current: None,
        };
        d.update(data);
        d
    }

    /// The user-visible path of `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Replace the whole ConfigMap data, as `kubectl apply`/`patch` does.
    pub fn update(&mut self, data: &[(&str, &str)]) {
        let new: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // 1. The new payload in a fresh hidden directory.
        let ts = timestamp_dir_name();
        let ts_path = self.root.join(&ts);
        std::fs::create_dir(&ts_path).unwrap();
        for (k, v) in &new {
            std::fs::write(ts_path.join(k), v).unwrap();
        }
        // 2. `..data_tmp -> ..<ts>`, renamed over `..data`: the atomic switch.
        let tmp = self.root.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&ts, &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        // 3. Links for keys that are new.
        for k in new.keys() {
            let link = self.root.join(k);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(k), &link).unwrap();
            }
        }
        // 4. Links of keys that were dropped.
        for k in self.keys.keys() {
            if !new.contains_key(k) {
                std::fs::remove_file(self.root.join(k)).unwrap();
            }
        }
        // 5. The old payload directory.
        if let Some(old) = self.current.replace(ts) {
            std::fs::remove_dir_all(self.root.join(old)).unwrap();
        }
        self.keys = new;
    }

    /// Add or change one key, keeping the others (`kubectl patch ... {"data":{K:V}}`).
    pub fn patch(&mut self, key: &str, value: &str) {
        let mut data = self.keys.clone();
        data.insert(key.to_string(), value.to_string());
        self.apply(data);
    }

    /// Drop one key, keeping the others.
    pub fn remove(&mut self, key: &str) {
        let mut data = self.keys.clone();
        data.remove(key);
        self.apply(data);
    }

    fn apply(&mut self, data: BTreeMap<String, String>) {
        let pairs: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.update(&pairs);
    }
}

#[test]
fn kubelet_layout_after_updates() {
    let t = tempfile::tempdir().unwrap();
    let mut cm = ConfigMapDir::new(&t.path().join("cm"), &[("policy.yaml", "a"), ("X", "1")]);
    let read = |k: &str| std::fs::read_to_string(cm.path(k)).ok();
    assert_eq!(read("policy.yaml").as_deref(), Some("a"));
    assert_eq!(
        std::fs::read_link(cm.path("policy.yaml")).unwrap(),
        Path::new("..data/policy.yaml")
    );
    let first = std::fs::read_link(cm.root.join("..data")).unwrap();
    cm.update(&[("policy.yaml", "b"), ("Y", "2")]);
    let read = |k: &str| std::fs::read_to_string(cm.path(k)).ok();
    assert_eq!(read("policy.yaml").as_deref(), Some("b"));
    assert_eq!(read("Y").as_deref(), Some("2"));
    assert!(std::fs::symlink_metadata(cm.path("X")).is_err());
    assert!(!cm.root.join(&first).exists(), "old payload dir kept");
    assert!(!cm.root.join("..data_tmp").exists());
    let names: Vec<String> = std::fs::read_dir(&cm.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}"); // ..<ts>, ..data, policy.yaml, Y
}
