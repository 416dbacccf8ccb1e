//! `dvtc deps` and `dvtc clean`: installing the packages of `packages.yml` /
//! `dependencies.yml` into `packages-install-path` (where the loader reads
//! them, as dbt does) with a `package-lock.yml`, and removing `clean-targets`.
//!
//! `local:` packages are linked (copied where links are unavailable), `git:`
//! packages are cloned with the system `git` at their `revision` (and
//! `subdirectory`), hub packages (`package: dbt-labs/dbt_utils`) are resolved
//! against hub.getdbt.com with the system `curl` — with a clear error when the
//! hub cannot be reached.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::Value as Json;

use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::project::load_project_file;

/// One installed package, as `package-lock.yml` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub name: String,
    /// The lock entry (`local:` / `git:` + `revision:` / `package:` + `version:`).
    pub lock: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

fn err(code: ErrorCode, file: &str, msg: impl Into<String>) -> DvtError {
    DvtError::new(code, msg).at(Location::file(file))
}

/// The declared packages: `(file, entries)` of `packages.yml` or `dependencies.yml`.
fn declared(project_dir: &Path) -> Result<Option<(&'static str, Vec<Json>)>> {
    for file in ["packages.yml", "dependencies.yml"] {
        let path = project_dir.join(file);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
        let doc: Json = crate::yaml::parse(&text, file)?;
        let entries = match doc.get("packages") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(a)) => a.clone(),
            Some(other) => return Err(err(ErrorCode::YamlInvalid, file, format!("`packages:` must be a list, got {other}"))),
        };
        return Ok(Some((file, entries)));
    }
    Ok(None)
}

/// `dvtc deps`: installs every declared package; returns what was installed.
pub fn install(project_dir: &Path) -> Result<Vec<Installed>> {
    let root = load_project_file(project_dir, "")?;
    let Some((file, entries)) = declared(project_dir)? else { return Ok(Vec::new()) };
    let install_dir = project_dir.join(root.file.packages_install_path.clone().unwrap_or_else(|| "dbt_packages".into()));
    std::fs::create_dir_all(&install_dir).map_err(|e| DvtError::io(&install_dir, e))?;
    let mut out = Vec::new();
    for raw in &entries {
        // Strings may use env_var() — secrets too (`git: "https://{{ env_var('DBT_ENV_SECRET_TOKEN') }}@…"`):
        // rendered for use, never written back (the lock keeps the unrendered text).
        let entry = &render_entry(raw, file)?;
        let get = |k: &str| entry.get(k).and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_f64().map(|f| f.to_string())));
        let installed = if let Some(local) = get("local") {
            install_local(project_dir, &install_dir, &local, file)?
        } else if let Some(url) = get("git") {
            let warn_unpinned = entry.get("warn-unpinned").or_else(|| entry.get("warn_unpinned")).and_then(Json::as_bool).unwrap_or(true);
            let mut i = install_git(&install_dir, &url, get("revision").as_deref(), get("subdirectory").as_deref(), warn_unpinned, file)
                .map_err(scrub)?;
            // The lock records the URL as written, not with a rendered secret in it.
            if let Some(unrendered) = raw.get("git").and_then(Json::as_str) {
                i.lock[0].1 = unrendered.to_string();
            }
            i
        } else if let Some(pkg) = get("package") {
            let versions: Vec<String> = match entry.get("version") {
                Some(Json::Array(a)) => {
                    a.iter().filter_map(|v| v.as_str().map(str::to_string).or_else(|| v.as_f64().map(|f| f.to_string()))).collect()
                }
                Some(v) => v.as_str().map(str::to_string).or_else(|| v.as_f64().map(|f| f.to_string())).into_iter().collect(),
                None => Vec::new(),
            };
            install_hub(&install_dir, &pkg, &versions, file)?
        } else {
            return Err(err(ErrorCode::YamlInvalid, file, format!("a package entry needs `local:`, `git:` or `package:`, got {entry}")));
        };
        out.push(installed);
    }
    write_lock(project_dir, &entries, &out)?;
    Ok(out)
}

/// A package entry with its strings rendered (`env_var()`, secrets included).
fn render_entry(entry: &Json, file: &str) -> Result<Json> {
    match entry {
        Json::String(t) if t.contains("{{") || t.contains("{%") => crate::jinja::render_config_string(t)
            .map(Json::from)
            .map_err(|e| scrub(err(ErrorCode::JinjaRender, file, format!("packages entry: {e}")))),
        Json::Object(m) => Ok(Json::Object(m.iter().map(|(k, v)| Ok((k.clone(), render_entry(v, file)?))).collect::<Result<_>>()?)),
        Json::Array(a) => Ok(Json::Array(a.iter().map(|v| render_entry(v, file)).collect::<Result<_>>()?)),
        other => Ok(other.clone()),
    }
}

/// An error with the values of secret environment variables masked (git echoes URLs).
fn scrub(mut e: DvtError) -> DvtError {
    for (k, v) in std::env::vars() {
        if v.len() >= 4 && crate::jinja::SECRET_ENV_PREFIXES.iter().any(|p| k.starts_with(p)) {
            e.message = e.message.replace(&v, "*****");
        }
    }
    e
}

/// The name a package's own project file gives it.
fn project_name(dir: &Path, file: &str, what: &str) -> Result<String> {
    let pf = load_project_file(dir, "").map_err(|e| {
        if e.code == ErrorCode::ProjectNotFound {
            err(ErrorCode::PackageNotFound, file, format!("{what} has no dbt_project.yml"))
        } else {
            e
        }
    })?;
    Ok(pf.file.name)
}

fn replace_dir(dest: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() || m.is_file() => std::fs::remove_file(dest).map_err(|e| DvtError::io(dest, e)),
        Ok(_) => std::fs::remove_dir_all(dest).map_err(|e| DvtError::io(dest, e)),
        Err(_) => Ok(()),
    }
}

fn install_local(project_dir: &Path, install_dir: &Path, local: &str, file: &str) -> Result<Installed> {
    let src = project_dir.join(local);
    let src = src.canonicalize().map_err(|_| err(ErrorCode::PackageNotFound, file, format!("local package `{local}` does not exist")))?;
    let name = project_name(&src, file, &format!("local package `{local}`"))?;
    let dest = install_dir.join(&name);
    replace_dir(&dest)?;
    #[cfg(unix)]
    let linked = std::os::unix::fs::symlink(&src, &dest).is_ok();
    #[cfg(not(unix))]
    let linked = false;
    if !linked {
        copy_tree(&src, &dest)?;
    }
    Ok(Installed { name, lock: vec![("local".into(), local.to_string())], warnings: Vec::new() })
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| DvtError::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| DvtError::io(from, e))? {
        let entry = entry.map_err(|e| DvtError::io(from, e))?;
        let name = entry.file_name();
        if matches!(name.to_str(), Some(".git" | "target" | "dbt_packages" | "dvt_packages")) {
            continue;
        }
        let (src, dest) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dest)?;
        } else {
            std::fs::copy(&src, &dest).map_err(|e| DvtError::io(&src, e))?;
        }
    }
    Ok(())
}

fn run(cmd: &mut Command, file: &str, what: &str) -> Result<String> {
    let out =
        cmd.output().map_err(|e| err(ErrorCode::PackageNotFound, file, format!("{what}: cannot run {:?}: {e}", cmd.get_program())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(err(ErrorCode::PackageNotFound, file, format!("{what}: {}", stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn install_git(
    install_dir: &Path,
    url: &str,
    revision: Option<&str>,
    subdir: Option<&str>,
    warn_unpinned: bool,
    file: &str,
) -> Result<Installed> {
    let what = format!("git package {url}");
    let tmp = install_dir.join(format!(".dvt-deps-{}", std::process::id()));
    replace_dir(&tmp)?;
    let result = (|| {
        run(Command::new("git").args(["clone", "--quiet"]).arg(url).arg(&tmp), file, &what)?;
        if let Some(rev) = revision {
            run(Command::new("git").arg("-C").arg(&tmp).args(["checkout", "--quiet", rev]), file, &format!("{what} at revision `{rev}`"))?;
        }
        let sha = run(Command::new("git").arg("-C").arg(&tmp).args(["rev-parse", "HEAD"]), file, &what)?;
        let pkg_dir = match subdir {
            Some(s) => tmp.join(s),
            None => tmp.clone(),
        };
        let name = project_name(&pkg_dir, file, &what)?;
        let dest = install_dir.join(&name);
        replace_dir(&dest)?;
        copy_tree(&pkg_dir, &dest)?;
        let mut warnings = Vec::new();
        let pinned = revision.is_some_and(|r| r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()))
            || revision.is_some_and(|r| {
                Command::new("git")
                    .arg("-C")
                    .arg(&tmp)
                    .args(["rev-parse", "--verify", "--quiet", &format!("refs/tags/{r}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        if warn_unpinned && !pinned {
            warnings.push(format!(
                "{what} is not pinned to a tag or commit (revision {}); set `revision:` or `warn-unpinned: false`",
                revision.unwrap_or("HEAD")
            ));
        }
        let mut lock = vec![("git".to_string(), url.to_string()), ("revision".to_string(), sha)];
        if let Some(s) = subdir {
            lock.push(("subdirectory".into(), s.to_string()));
        }
        Ok(Installed { name, lock, warnings })
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `1.2.3` → (1, 2, 3); pre-releases and junk sort as missing.
fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let mut p = v.trim().trim_start_matches('v').split('.').map(|x| x.parse::<u64>().ok());
    Some((p.next()??, p.next().flatten().unwrap_or(0), p.next().flatten().unwrap_or(0)))
}

/// Whether `v` satisfies every comparator (`>=1.0.0`, `<2.0.0`, `1.1.1`).
fn satisfies(v: (u64, u64, u64), ranges: &[String]) -> bool {
    ranges.iter().all(|r| {
        let r = r.trim();
        let (op, ver) = ["<=", ">=", "<", ">", "="].iter().find_map(|op| r.strip_prefix(op).map(|rest| (*op, rest))).unwrap_or(("=", r));
        let Some(b) = semver(ver) else { return false };
        match op {
            "<=" => v <= b,
            ">=" => v >= b,
            "<" => v < b,
            ">" => v > b,
            _ => v == b,
        }
    })
}

fn install_hub(install_dir: &Path, pkg: &str, ranges: &[String], file: &str) -> Result<Installed> {
    let hub = std::env::var("DVT_PACKAGE_HUB_URL").unwrap_or_else(|_| "https://hub.getdbt.com".into());
    let index_url = format!("{}/api/v1/{pkg}.json", hub.trim_end_matches('/'));
    let fetch = |url: &str| -> Result<String> {
        let out = Command::new("curl").args(["-fsSL", "--max-time", "30", url]).output();
        match out {
            Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
            Ok(o) => Err(err(
                ErrorCode::PackageNotFound,
                file,
                format!("package hub {hub} is not reachable for `{pkg}` ({})", String::from_utf8_lossy(&o.stderr).trim()),
            )
            .hint("install it with `git:` (and a `revision:`) or `local:` instead, or retry when the hub is reachable")),
            Err(e) => Err(err(ErrorCode::PackageNotFound, file, format!("hub packages need `curl`, which cannot run: {e}"))
                .hint("install curl, or declare the package with `git:` or `local:`")),
        }
    };
    let index: Json = serde_json::from_str(&fetch(&index_url)?)
        .map_err(|e| err(ErrorCode::PackageNotFound, file, format!("the hub's answer for `{pkg}` is not JSON: {e}")))?;
    let versions = index
        .get("versions")
        .and_then(Json::as_object)
        .ok_or_else(|| err(ErrorCode::PackageNotFound, file, format!("`{pkg}` is not a package on {hub}")))?;
    let best = versions
        .iter()
        .filter_map(|(v, meta)| Some((semver(v)?, v, meta)))
        .filter(|(sv, v, _)| satisfies(*sv, ranges) && !v.contains('-'))
        .max_by_key(|(sv, _, _)| *sv)
        .ok_or_else(|| err(ErrorCode::PackageNotFound, file, format!("no version of `{pkg}` satisfies {ranges:?}")))?;
    let (_, version, meta) = best;
    let tarball = meta
        .pointer("/downloads/tarball")
        .and_then(Json::as_str)
        .ok_or_else(|| err(ErrorCode::PackageNotFound, file, format!("the hub gives no download for `{pkg}` {version}")))?;
    let tmp = install_dir.join(format!(".dvt-hub-{}", std::process::id()));
    replace_dir(&tmp)?;
    std::fs::create_dir_all(&tmp).map_err(|e| DvtError::io(&tmp, e))?;
    let result = (|| {
        let archive = tmp.join("pkg.tar.gz");
        run(
            Command::new("curl").args(["-fsSL", "--max-time", "120", "-o"]).arg(&archive).arg(tarball),
            file,
            &format!("download of `{pkg}`"),
        )?;
        run(Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&tmp), file, &format!("unpacking `{pkg}`"))?;
        let top = std::fs::read_dir(&tmp)
            .map_err(|e| DvtError::io(&tmp, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.is_dir())
            .ok_or_else(|| err(ErrorCode::PackageNotFound, file, format!("the archive of `{pkg}` holds no folder")))?;
        let name = project_name(&top, file, &format!("hub package `{pkg}`"))?;
        let dest = install_dir.join(&name);
        replace_dir(&dest)?;
        copy_tree(&top, &dest)?;
        Ok(Installed { name, lock: vec![("package".into(), pkg.to_string()), ("version".into(), version.clone())], warnings: Vec::new() })
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `package-lock.yml` as dbt writes it: the resolved entries with their names and
/// a SHA-1 of the declared entries (JSON with sorted keys, one per line, sorted).
fn write_lock(project_dir: &Path, declared: &[Json], installed: &[Installed]) -> Result<()> {
    use sha1::Digest;
    let mut text = String::from("packages:\n");
    for i in installed {
        for (n, (k, v)) in i.lock.iter().enumerate() {
            let prefix = if n == 0 { "  - " } else { "    " };
            text.push_str(&format!("{prefix}{k}: {}\n", yaml_scalar(v)));
        }
        text.push_str(&format!("    name: {}\n", yaml_scalar(&i.name)));
    }
    let mut lines: Vec<String> = declared.iter().map(|d| sorted_json(d).to_string()).collect();
    lines.sort();
    let hash = sha1::Sha1::digest(lines.join("\n").as_bytes());
    text.push_str(&format!("sha1_hash: {}\n", crate::hex::encode(&hash)));
    let path = project_dir.join("package-lock.yml");
    std::fs::write(&path, text).map_err(|e| DvtError::io(&path, e))
}

fn sorted_json(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(keys.into_iter().map(|k| (k.clone(), sorted_json(&m[k]))).collect())
        }
        Json::Array(a) => Json::Array(a.iter().map(sorted_json).collect()),
        other => other.clone(),
    }
}

fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._/-:@".contains(c))
        && !s.starts_with(['-', ':', '@'])
        && s.parse::<f64>().is_err();
    if plain { s.to_string() } else { format!("'{}'", s.replace('\'', "''")) }
}

/// `dvtc clean`: removes `clean-targets` (default: the target path,
/// `packages-install-path` and `.dvt/`); a path outside the project is refused.
pub fn clean(project_dir: &Path) -> Result<Vec<(String, bool)>> {
    let root = load_project_file(project_dir, "")?;
    let project = project_dir.canonicalize().map_err(|e| DvtError::io(project_dir, e))?;
    let targets = root.file.clean_targets.clone().unwrap_or_else(|| {
        vec![root.file.target_path(), root.file.packages_install_path.clone().unwrap_or_else(|| "dbt_packages".into()), ".dvt".into()]
    });
    // Every entry is checked before anything is removed.
    let mut paths = Vec::new();
    for t in targets {
        let path = normalize(&project.join(&t));
        if !path.starts_with(&project) || path == project {
            return Err(err(
                ErrorCode::ConfigInvalid,
                "dbt_project.yml",
                format!("clean-targets entry `{t}` is outside the project; refusing to remove it"),
            )
            .hint("list only folders inside the project, e.g. `target` or `dbt_packages`"));
        }
        paths.push((t, path));
    }
    let mut out = Vec::new();
    for (t, path) in paths {
        let existed = std::fs::symlink_metadata(&path).is_ok();
        replace_dir(&path)?;
        out.push((t, existed));
    }
    Ok(out)
}

/// `a/b/../c` → `a/c` without touching the file system (the path may not exist).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ranges_pick_like_dbt() {
        let r = vec![">=1.0.0".to_string(), "<2.0.0".to_string()];
        assert!(satisfies((1, 3, 0), &r) && !satisfies((2, 0, 0), &r) && !satisfies((0, 9, 9), &r));
        assert!(satisfies((1, 1, 1), &["1.1.1".to_string()]));
        assert_eq!(semver("v0.4.9"), Some((0, 4, 9)));
    }

    #[test]
    fn clean_refuses_paths_outside_the_project() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dbt_project.yml"), "name: p\nclean-targets: ['target', '../elsewhere']\n").unwrap();
        std::fs::create_dir_all(dir.path().join("target/x")).unwrap();
        let e = clean(dir.path()).unwrap_err();
        assert_eq!(e.code, ErrorCode::ConfigInvalid);
        assert!(dir.path().join("target/x").exists(), "nothing is removed when an entry is refused");
        std::fs::write(dir.path().join("dbt_project.yml"), "name: p\n").unwrap();
        let done = clean(dir.path()).unwrap();
        assert_eq!(done[0], ("target".to_string(), true));
        assert!(!dir.path().join("target").exists());
    }
}
