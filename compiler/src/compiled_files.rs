//! `target/compiled/`: each node's rendered SQL, exactly as dbt writes it.
//!
//! A compile rewrites only the files whose content changed. What it wrote is
//! remembered in `target/.dvt_compiled_index` (path, size, modification time and
//! a 64-bit hash of the content): a file whose size and modification time are
//! those of the index entry holds the indexed content, so checking it costs one
//! `stat` and a hash of the new SQL instead of reading it back. A file changed
//! behind DVT's back has another modification time and is compared byte for byte.

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::io::Write;
use std::path::Path;

use crate::error::{DvtError, ErrorCode, Result};

/// First line of the index: its format and hash function.
const HEADER: &str = "dvt-compiled-index 1 foldhash-quality-0.2";
const INDEX: &str = ".dvt_compiled_index";

/// Size, modification time (ns) and content hash of a file as last written or checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: u128,
    hash: u64,
}

fn content_hash(bytes: &[u8]) -> u64 {
    foldhash::quality::FixedState::with_seed(0).hash_one(bytes)
}

fn stat(p: &Path) -> Option<(u64, u128)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.len(), m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos()))
}

/// [`stat`] of files by their folder's descriptor: the kernel looks up one name
/// instead of walking the whole path again for each of 20,000 files.
#[derive(Default)]
struct FolderStat {
    folder: Option<(String, std::fs::File)>,
}

impl FolderStat {
    /// Size and modification time (ns) of `base/rel` (`rel` `/`-separated).
    fn stat(&mut self, base: &Path, rel: &str) -> Option<(u64, u128)> {
        use std::os::fd::AsRawFd;
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if self.folder.as_ref().is_none_or(|(p, _)| p != parent) {
            self.folder = std::fs::File::open(base.join(parent)).ok().map(|f| (parent.to_string(), f));
        }
        let (_, folder) = self.folder.as_ref()?;
        let name = std::ffi::CString::new(name).ok()?;
        // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: an open descriptor, a NUL-terminated name and a buffer of the type fstatat fills.
        let rc = unsafe { libc::fstatat(folder.as_raw_fd(), name.as_ptr(), &mut st, 0) };
        let (secs, nanos) = (u128::try_from(st.st_mtime).ok()?, u128::try_from(st.st_mtime_nsec).ok()?);
        (rc == 0).then(|| (st.st_size as u64, secs * 1_000_000_000 + nanos))
    }
}

/// The index by path (foldhash: 20,000 lookups of the project's own paths).
type Index = HashMap<String, Stamp, foldhash::fast::RandomState>;

fn read_index(path: &Path) -> Index {
    let Ok(text) = std::fs::read_to_string(path) else { return Index::default() };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Index::default();
    }
    lines
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let hash = u64::from_str_radix(parts.next()?, 16).ok()?;
            let len = parts.next()?.parse().ok()?;
            let mtime_ns = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_string(), Stamp { len, mtime_ns, hash }))
        })
        .collect()
}

fn write_index(path: &Path, entries: &[(&str, Stamp)]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    writeln!(w, "{HEADER}")?;
    for (p, s) in entries {
        writeln!(w, "{:016x} {} {} {p}", s.hash, s.len, s.mtime_ns)?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path)
}

/// Writes `files` (path under `target/compiled/`, SQL) into `target_dir/compiled`,
/// each directory created once, files whose content is unchanged left alone.
/// File creation blocks on the file system rather than the CPU, so more threads
/// than cores help.
pub fn write(target_dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    let dir = target_dir.join("compiled");
    // Each folder once, found from the `/`-separated paths (no path built per file).
    let dirs: BTreeSet<&str> = files.iter().map(|(p, _)| p.rsplit_once('/').map_or("", |(parent, _)| parent)).collect();
    for d in dirs {
        let d = dir.join(d);
        std::fs::create_dir_all(&d).map_err(|e| DvtError::io(&d, e))?;
    }
    let index_path = target_dir.join(INDEX);
    let index = read_index(&index_path);
    const THREADS: usize = 4;
    let chunk = files.len().div_ceil(THREADS).max(1);
    let (dir, index) = (&dir, &index);
    let stamps: Vec<(Stamp, bool)> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<Vec<(Stamp, bool)>> {
                    let mut folders = FolderStat::default();
                    part.iter()
                        .map(|(path, sql)| {
                            let p = || dir.join(path);
                            let hash = content_hash(sql.as_bytes());
                            let len = sql.len() as u64;
                            let on_disk = folders.stat(dir, path);
                            let known = index.get(*path).copied();
                            let unchanged = match (on_disk, known) {
                                (Some((l, m)), Some(k)) if l == k.len && m == k.mtime_ns => k.hash == hash,
                                // Not written by DVT as indexed: compare the bytes.
                                (Some((l, _)), _) if l == len => std::fs::read(p()).is_ok_and(|old| old == sql.as_bytes()),
                                _ => false,
                            };
                            if !unchanged {
                                // Exactly the rendered SQL, as dbt writes it (no added newline).
                                let p = p();
                                std::fs::write(&p, sql.as_bytes()).map_err(|e| DvtError::io(&p, e))?;
                            }
                            let mtime_ns = match (unchanged, on_disk) {
                                (true, Some((_, m))) => m,
                                _ => folders.stat(dir, path).map_or(0, |(_, m)| m),
                            };
                            let stamp = Stamp { len, mtime_ns, hash };
                            Ok((stamp, known != Some(stamp)))
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().try_fold(Vec::with_capacity(files.len()), |mut all, h| {
            all.extend(h.join().unwrap_or_else(|_| Err(DvtError::new(ErrorCode::Io, "a writer thread panicked")))?);
            Ok::<_, DvtError>(all)
        })
    })?;
    // The index follows what this compile wrote; unchanged, it is not rewritten.
    if stamps.iter().any(|(_, new)| *new) || index.len() != files.len() {
        let entries: Vec<(&str, Stamp)> = files.iter().zip(&stamps).map(|((p, _), (s, _))| (*p, *s)).collect();
        // The index only saves time: failing to write it costs the next compile a read per file.
        let _ = write_index(&index_path, &entries);
    }
    Ok(())
}

/// Writes a few files of a compile that reused the rest (see [`crate::partial`]),
/// and notes them at the end of the index, where later lines win.
pub fn update(target_dir: &Path, files: &[(&str, &str)]) -> Result<()> {
    let dir = target_dir.join("compiled");
    let mut lines = String::new();
    for (path, sql) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DvtError::io(parent, e))?;
        }
        std::fs::write(&p, sql.as_bytes()).map_err(|e| DvtError::io(&p, e))?;
        let (len, mtime_ns) = stat(&p).unwrap_or_default();
        lines.push_str(&format!("{:016x} {len} {mtime_ns} {path}\n", content_hash(sql.as_bytes())));
    }
    let index_path = target_dir.join(INDEX);
    // Without an index (or another format's) the next compile compares the files themselves.
    if std::fs::read(&index_path).is_ok_and(|t| t.starts_with(HEADER.as_bytes())) {
        let mut f = std::fs::OpenOptions::new().append(true).open(&index_path).map_err(|e| DvtError::io(&index_path, e))?;
        f.write_all(lines.as_bytes()).map_err(|e| DvtError::io(&index_path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, p: &str) -> String {
        std::fs::read_to_string(dir.join("compiled").join(p)).unwrap()
    }

    #[test]
    fn unchanged_files_are_left_alone_and_edited_ones_restored() {
        let t = tempfile::tempdir().unwrap();
        let files = [("p/models/a.sql", "select 1"), ("p/models/b.sql", "select 2")];
        write(t.path(), &files).unwrap();
        assert_eq!(read(t.path(), "p/models/a.sql"), "select 1");
        let a = t.path().join("compiled/p/models/a.sql");
        let before = stat(&a).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(t.path(), &files).unwrap();
        assert_eq!(stat(&a).unwrap(), before, "an unchanged file is not rewritten");
        let mut folders = FolderStat::default();
        assert_eq!(folders.stat(&t.path().join("compiled"), "p/models/a.sql"), Some(before), "by folder, the same stamp");
        assert_eq!(folders.stat(&t.path().join("compiled"), "p/models/none.sql"), None);

        // Edited behind DVT's back with the same length: its stamp no longer matches, so it is rewritten.
        std::fs::write(&a, "select 9").unwrap();
        write(t.path(), &files).unwrap();
        assert_eq!(read(t.path(), "p/models/a.sql"), "select 1");

        // New content of the same length is written, and the index follows it.
        let changed = [("p/models/a.sql", "select 3"), ("p/models/b.sql", "select 2")];
        write(t.path(), &changed).unwrap();
        assert_eq!(read(t.path(), "p/models/a.sql"), "select 3");
        let index = read_index(&t.path().join(INDEX));
        assert_eq!(index["p/models/a.sql"].hash, content_hash(b"select 3"));
        assert_eq!(index.len(), 2);

        // A deleted file is written again; a damaged index is ignored.
        std::fs::remove_file(t.path().join("compiled/p/models/b.sql")).unwrap();
        std::fs::write(t.path().join(INDEX), "garbage").unwrap();
        write(t.path(), &changed).unwrap();
        assert_eq!(read(t.path(), "p/models/b.sql"), "select 2");
    }
}
