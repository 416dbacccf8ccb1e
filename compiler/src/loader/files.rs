//! Finding a package's files: sorted, hidden folders skipped, so loading is
//! deterministic on every machine.

use std::path::{Path, PathBuf};

use crate::error::{DvtError, ErrorCode, Result};

/// Files under `dir` whose extension is one of `exts` (lower-case, no dot), sorted.
/// A symbolic link that leads outside `fence` (the package's folder) is an error:
/// project files cannot reach outside the project.
pub fn walk(fence: &Path, dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let fence = fence.canonicalize().unwrap_or_else(|_| fence.to_path_buf());
    let mut out = Vec::new();
    walk_into(&fence, dir, exts, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk_into(fence: &Path, dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in rd.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_symlink() && !path.canonicalize().is_ok_and(|real| real.starts_with(fence)) {
            let to = std::fs::read_link(&path).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(DvtError::new(
                ErrorCode::ConfigInvalid,
                format!("{} is a symbolic link to `{to}`, outside the project ({})", path.display(), fence.display()),
            )
            .hint("copy the file into the project, or install shared code as a package"));
        }
        if ft.is_dir() || (ft.is_symlink() && path.is_dir()) {
            walk_into(fence, &path, exts, out)?;
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e.to_ascii_lowercase().as_str())) {
            out.push(path);
        }
    }
    Ok(())
}

/// `path` relative to `base`, `/`-separated.
pub fn rel(path: &Path, base: &Path) -> String {
    let p = path.strip_prefix(base).unwrap_or(path);
    p.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Folder names between `base` and the file (for fqns).
pub fn folders(path: &Path, base: &Path) -> Vec<String> {
    let p = path.strip_prefix(base).unwrap_or(path);
    let mut parts: Vec<String> = p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    parts.pop();
    parts
}

/// File stem as a string.
pub fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads a file as UTF-8 (a BOM is dropped), with a coded error.
pub fn read(path: &Path, display: &str) -> crate::error::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| crate::error::DvtError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        crate::error::DvtError::new(
            crate::error::ErrorCode::Io,
            format!("{display} is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        )
        .at(crate::error::Location::file(display))
    })?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}
