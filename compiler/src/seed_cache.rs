//! What reading a seed file costs, paid once: its SHA-256 and the column types
//! inferred from its rows, kept in `target/.dvt_seed_facts.json` under the
//! file's path, size and modification time. A compile of a project with large
//! seeds then reads only their headers. A stale entry cannot load wrong data:
//! `dvtr seed` checks the file's hash against the plan before loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::dialect::LogicalType;

/// Inferred columns of a CSV seed.
pub type Columns = Vec<(String, LogicalType)>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    size: u64,
    mtime_ns: u128,
    delimiter: u8,
    sha256: String,
    /// Inferred columns (CSV only).
    columns: Option<Columns>,
}

/// The facts of a project's seed files, shared by the compile's workers.
#[derive(Debug)]
pub struct SeedCache {
    file: PathBuf,
    entries: Mutex<BTreeMap<String, Entry>>,
    dirty: AtomicBool,
}

/// Size and modification time, the key an entry is valid for.
fn stamp(path: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(path).ok()?;
    let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some((m.len(), mtime))
}

impl SeedCache {
    /// The cache kept in `target_dir` (empty when absent or unreadable).
    pub fn load(target_dir: &Path) -> Self {
        let file = target_dir.join(".dvt_seed_facts.json");
        let entries = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        SeedCache { file, entries: Mutex::new(entries), dirty: AtomicBool::new(false) }
    }

    /// A cache that keeps nothing (tests, embedders).
    pub fn disabled() -> Self {
        SeedCache { file: PathBuf::new(), entries: Mutex::new(BTreeMap::new()), dirty: AtomicBool::new(false) }
    }

    fn valid(&self, path: &Path, delimiter: u8) -> Option<Entry> {
        let (size, mtime_ns) = stamp(path)?;
        let entries = self.entries.lock().ok()?;
        entries.get(&path.display().to_string()).filter(|e| e.size == size && e.mtime_ns == mtime_ns && e.delimiter == delimiter).cloned()
    }

    /// The file's SHA-256 and, for CSV when `infer` is given, its inferred columns.
    pub fn facts<E>(
        &self,
        path: &Path,
        delimiter: u8,
        hash: impl FnOnce() -> Result<String, E>,
        infer: Option<&dyn Fn() -> Result<Columns, E>>,
    ) -> Result<(String, Option<Columns>), E> {
        if let Some(e) = self.valid(path, delimiter)
            && (infer.is_none() || e.columns.is_some())
        {
            return Ok((e.sha256, e.columns));
        }
        // Stamp before reading: a write during the read leaves a stale stamp, never a stale hash.
        let before = stamp(path);
        let sha256 = hash()?;
        let columns = match infer {
            Some(f) => Some(f()?),
            None => None,
        };
        if let (Some((size, mtime_ns)), false) = (before, self.file.as_os_str().is_empty())
            && let Ok(mut entries) = self.entries.lock()
        {
            entries
                .insert(path.display().to_string(), Entry { size, mtime_ns, delimiter, sha256: sha256.clone(), columns: columns.clone() });
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok((sha256, columns))
    }

    /// Writes the cache back when something was added (errors only cost the next compile time).
    pub fn save(&self) {
        if !self.dirty.load(Ordering::Relaxed) || self.file.as_os_str().is_empty() {
            return;
        }
        let Ok(entries) = self.entries.lock() else { return };
        if let (Some(dir), Ok(bytes)) = (self.file.parent(), serde_json::to_vec(&*entries)) {
            let tmp = self.file.with_extension("json.tmp");
            let _ =
                std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&tmp, bytes)).and_then(|()| std::fs::rename(&tmp, &self.file));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_reused_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("s.csv");
        std::fs::write(&seed, "a\n1\n").unwrap();
        let calls = std::cell::Cell::new(0);
        let hash = || -> Result<String, ()> {
            calls.set(calls.get() + 1);
            Ok(format!("h{}", calls.get()))
        };
        let cache = SeedCache::load(dir.path());
        assert_eq!(cache.facts(&seed, b',', hash, None).unwrap().0, "h1");
        cache.save();
        let cache = SeedCache::load(dir.path());
        assert_eq!(cache.facts(&seed, b',', hash, None).unwrap().0, "h1", "reused from target/");
        assert_eq!(calls.get(), 1);
        std::fs::write(&seed, "a\n1\n2\n").unwrap();
        assert_eq!(cache.facts(&seed, b',', hash, None).unwrap().0, "h2", "a changed file is read again");
    }
}
