//! The project's files carried in a plan ([`Bundle`]), so that `dvtr execute
//! plan.json` renders run-time nodes and applies selection flags on a machine
//! that has the plan but not the project (CI compiles, production executes).
//!
//! Every text file of the project and its installed packages is included
//! (models, macros, YAML, seeds, docs), by SHA-256, except the target folder,
//! hidden folders and the connection files (`profiles.yml`, `computes.yml`,
//! `buckets.yml`): credentials stay where the plan runs.

use std::collections::BTreeMap;
use std::path::Path;

use dvt_schema::plan::Bundle;
use sha2::{Digest, Sha256};

use crate::error::{DvtError, ErrorCode, Result};

/// Files never carried: they hold (or point to) credentials.
const CONNECTION_FILES: &[&str] = &["profiles.yml", "computes.yml", "buckets.yml"];
/// Folders of tools, not of the project.
const SKIPPED_DIRS: &[&str] = &["node_modules", "venv", "logs", "__pycache__"];
/// A plan is read whole; a project larger than this is executed from its folder.
const MAX_BYTES: u64 = 256 << 20;

/// The files under `root` (not under `target`).
pub fn collect(root: &Path, target: &Path) -> Result<Bundle> {
    let mut bundle = Bundle::default();
    let mut total = 0u64;
    walk(root, root, target, &mut bundle, &mut total)?;
    Ok(bundle)
}

fn walk(root: &Path, dir: &Path, target: &Path, bundle: &mut Bundle, total: &mut u64) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(|e| DvtError::io(dir, e))?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            if name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_str()) || path == target {
                continue;
            }
            walk(root, &path, target, bundle, total)?;
            continue;
        }
        if !kind.is_file() || name.starts_with('.') || (dir == root && CONNECTION_FILES.contains(&name.as_str())) {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else { continue };
        // Binary files (Parquet seeds, images) stay with the project.
        let Ok(text) = String::from_utf8(bytes) else { continue };
        *total += text.len() as u64;
        if *total > MAX_BYTES {
            return Err(DvtError::new(
                ErrorCode::Io,
                format!("the project's files exceed {} MiB: too large to carry in a plan", MAX_BYTES >> 20),
            )
            .hint("run `dvtr execute` from the project folder instead of `--bundle`"));
        }
        let hash = crate::hex::encode(&Sha256::digest(text.as_bytes()));
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        bundle.files.insert(rel, hash.clone());
        bundle.blobs.entry(hash).or_insert(text);
    }
    Ok(())
}

/// Writes the bundle's files under `dir`; refuses paths that would leave it.
pub fn materialize(bundle: &Bundle, dir: &Path) -> Result<()> {
    let blobs: &BTreeMap<String, String> = &bundle.blobs;
    for (rel, hash) in &bundle.files {
        let safe = Path::new(rel).components().all(|c| matches!(c, std::path::Component::Normal(_)));
        let text = blobs.get(hash);
        let (true, Some(text)) = (safe, text) else {
            return Err(DvtError::new(ErrorCode::PlanInvalid, format!("the plan's bundle has an invalid entry `{rel}`")));
        };
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DvtError::io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| DvtError::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_project_files_but_not_connections_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (p, text) in [
            ("dbt_project.yml", "name: p"),
            ("profiles.yml", "secret"),
            ("models/a.sql", "select 1"),
            ("models/b.sql", "select 1"),
            ("target/plan.json", "{}"),
            (".git/config", "x"),
        ] {
            std::fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
            std::fs::write(root.join(p), text).unwrap();
        }
        let b = collect(root, &root.join("target")).unwrap();
        assert_eq!(b.files.keys().collect::<Vec<_>>(), ["dbt_project.yml", "models/a.sql", "models/b.sql"]);
        assert_eq!(b.blobs.len(), 2, "identical files share a blob");
        let out = tempfile::tempdir().unwrap();
        materialize(&b, out.path()).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("models/b.sql")).unwrap(), "select 1");
        let mut evil = b.clone();
        evil.files.insert("../escape.sql".into(), b.files["models/a.sql"].clone());
        assert!(materialize(&evil, out.path()).is_err());
    }
}
