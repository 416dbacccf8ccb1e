//! What a compile read: every file and folder of the project tree (stamped by
//! size and modification time), the connection files beside it, and the
//! environment variables its templates asked for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Environment variables read while loading and rendering, with their values.
static ENV_READS: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());

/// Variables read outside templates (profile search, loader switches).
const ALWAYS_READ: [&str; 3] = ["DVT_PROFILES_DIR", "HOME", "DVT_REQUIRE_SOURCE_CONNECTION"];

/// Notes that `name` was read and had `value`.
pub fn record_env(name: &str, value: Option<&str>) {
    if let Ok(mut m) = ENV_READS.lock() {
        m.entry(name.to_string()).or_insert_with(|| value.map(str::to_string));
    }
}

/// The variables read so far, each with a digest of its value: values may be
/// secrets, and only whether they changed matters.
pub fn env_reads() -> Vec<(String, String)> {
    let mut m = ENV_READS.lock().map(|m| m.clone()).unwrap_or_default();
    for name in ALWAYS_READ {
        m.entry(name.to_string()).or_insert_with(|| std::env::var(name).ok());
    }
    m.iter().map(|(k, v)| (k.clone(), value_digest(k, v.as_deref()))).collect()
}

/// The digest [`env_reads`] records for `name` having `value`.
pub fn value_digest(name: &str, value: Option<&str>) -> String {
    match value {
        None => "-".into(),
        Some(v) => crate::hex::encode(&Sha256::new().chain_update(name).chain_update([0]).chain_update(v).finalize()),
    }
}

/// A file system entry as it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the project (`/`-separated), or absolute outside it.
    pub path: String,
    pub kind: Kind,
    pub len: u64,
    pub mtime_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File = 0,
    Dir = 1,
    Absent = 2,
}

impl Kind {
    pub fn from_u8(b: u8) -> Option<Kind> {
        [Kind::File, Kind::Dir, Kind::Absent].into_iter().find(|k| *k as u8 == b)
    }
}

fn stamp(path: String, m: &std::fs::Metadata) -> Entry {
    let (len, mtime_ns) = crate::artifact_write::stamp_of(m);
    let kind = if m.is_dir() { Kind::Dir } else { Kind::File };
    Entry { path, kind, len: if m.is_dir() { 0 } else { len }, mtime_ns }
}

/// Stamps `path` (following links), or records that it does not exist.
pub fn probe(path: &Path) -> Entry {
    let name = path.to_string_lossy().into_owned();
    match std::fs::metadata(path) {
        Ok(m) => stamp(name, &m),
        Err(_) => Entry { path: name, kind: Kind::Absent, len: 0, mtime_ns: 0 },
    }
}

/// Every folder and file under `root`, sorted by path, links followed, hidden
/// entries skipped (as the loader skips them), and the top-level folders in
/// `skip` (the target and log paths: what the compile writes) left out.
/// A folder's stamp changes when an entry is added, removed or renamed in it.
pub fn tree(root: &Path, skip: &[String]) -> Vec<Entry> {
    let mut out = Vec::new();
    if let Ok(m) = std::fs::metadata(root) {
        out.push(stamp(String::new(), &m));
    }
    out.extend(walk(root, "", skip, 0));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The folders under `root` (itself included), stamped: what a compile wrote
/// there is gone or renamed when one of their times changes. Files are not
/// stat'ed (a folder's entries come with their types).
pub fn folders(root: &Path) -> Vec<Entry> {
    fn into(dir: &Path, rel: &str, out: &mut Vec<Entry>) {
        let Ok(m) = std::fs::metadata(dir) else { return };
        out.push(stamp(rel.to_string(), &m));
        // A folder's link count is 2 + its subfolders where the file system counts them
        // (ext4, xfs, tmpfs; others report 1): at 2, its files (thousands of compiled
        // tests) need not be listed to know it has no subfolder.
        #[cfg(unix)]
        if std::os::unix::fs::MetadataExt::nlink(&m) == 2 {
            return;
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let name = e.file_name().to_string_lossy().into_owned();
                into(&e.path(), &if rel.is_empty() { name } else { format!("{rel}/{name}") }, out);
            }
        }
    }
    let mut out = Vec::new();
    into(root, "", &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether the folders [`folders`] found under `root` are there with the same times
/// (one `stat` each: a folder's time changes when an entry in it is removed or renamed).
pub fn folders_unchanged(root: &Path, saved: &[Entry]) -> bool {
    saved.iter().all(|e| {
        let p = if e.path.is_empty() { root.to_path_buf() } else { root.join(&e.path) };
        std::fs::metadata(&p).is_ok_and(|m| m.is_dir() && stamp(e.path.clone(), &m) == *e)
    })
}

/// The entries below `dir`; folders are walked in parallel (a stat costs a few
/// microseconds in a VM, and a project has thousands of files).
fn walk(dir: &Path, rel: &str, skip: &[String], depth: usize) -> Vec<Entry> {
    // Links can loop; no project nests this deep.
    let Ok(rd) = std::fs::read_dir(dir).map_err(|_| ()).and_then(|rd| if depth > 64 { Err(()) } else { Ok(rd) }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut folders = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || (rel.is_empty() && skip.contains(&name)) {
            continue;
        }
        let path: PathBuf = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        let meta = if ft.is_symlink() { std::fs::metadata(&path) } else { entry.metadata() };
        let Ok(meta) = meta else { continue };
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if meta.is_dir() {
            folders.push((path, child.clone()));
        }
        out.push(stamp(child, &meta));
    }
    use rayon::prelude::*;
    let nested: Vec<Vec<Entry>> = folders.par_iter().map(|(path, child)| walk(path, child, skip, depth + 1)).collect();
    out.extend(nested.into_iter().flatten());
    out
}

/// The connection files the loader may read from `dirs` (profiles, computes, buckets).
pub fn connection_files(dirs: &[PathBuf]) -> Vec<Entry> {
    dirs.iter().flat_map(|d| ["profiles.yml", "computes.yml", "buckets.yml"].map(|f| probe(&d.join(f)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_sees_edits_additions_and_skips_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("models/sub")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("models/sub/a.sql"), "select 1").unwrap();
        std::fs::write(root.join("target/plan.json"), "{}").unwrap();
        let skip = vec!["target".to_string()];
        let before = tree(root, &skip);
        let paths: Vec<&str> = before.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["", "models", "models/sub", "models/sub/a.sql"]);
        assert_eq!(before[3].len, 8);
        std::fs::write(root.join("models/sub/a.sql"), "select 12").unwrap();
        let after = tree(root, &skip);
        assert_ne!(before[3], after[3], "an edit changes the file's stamp");
        assert_eq!(probe(&root.join("nope.yml")).kind, Kind::Absent);
    }

    #[test]
    fn removing_a_file_changes_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("p/models")).unwrap();
        std::fs::write(root.join("p/models/a.sql"), "select 1").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let saved = folders(root);
        assert_eq!(saved.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["", "p", "p/models"]);
        assert!(folders_unchanged(root, &saved));
        std::fs::write(root.join("p/models/a.sql"), "select 2").unwrap();
        assert!(folders_unchanged(root, &saved), "a file rewritten in place leaves its folder alone");
        std::fs::remove_file(root.join("p/models/a.sql")).unwrap();
        assert!(!folders_unchanged(root, &saved));
        std::fs::remove_dir_all(root.join("p")).unwrap();
        assert!(!folders_unchanged(root, &saved));
    }

    #[test]
    fn folders_beside_files_and_below_leaves_are_all_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["p/models/a.yml", "p/models/b", "p/tests"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["p/models/x.sql", "p/models/a.yml/t1.sql", "p/models/a.yml/t2.sql", "p/tests/s.sql"] {
            std::fs::write(root.join(f), "select 1").unwrap();
        }
        let paths = |saved: &[Entry]| saved.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
        let saved = folders(root);
        assert_eq!(paths(&saved), ["", "p", "p/models", "p/models/a.yml", "p/models/b", "p/tests"]);
        // A folder made inside a leaf changes the leaf's stamp, and is found next time.
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::create_dir(root.join("p/models/a.yml/deeper")).unwrap();
        assert!(!folders_unchanged(root, &saved));
        assert_eq!(paths(&folders(root)), ["", "p", "p/models", "p/models/a.yml", "p/models/a.yml/deeper", "p/models/b", "p/tests"]);
    }

    #[test]
    fn env_values_are_recorded_as_digests() {
        let d = value_digest("DB_PASSWORD", Some("hunter2"));
        assert_eq!(d.len(), 64);
        assert!(!d.contains("hunter2"));
        assert_ne!(d, value_digest("DB_PASSWORD", Some("hunter3")));
        assert_eq!(value_digest("X", None), "-");
    }
}
