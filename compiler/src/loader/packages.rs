//! Packages: the root project, `local:` packages from `packages.yml` /
//! `dependencies.yml`, and packages installed under `packages-install-path`
//! (dbt's `dbt_packages/` by default; DVT's `dvt_packages/` too).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::files;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::Package;
use crate::project::{ProjectManifestFile, load_project_file};
use crate::yaml;

/// Where installed packages live, in order of preference.
const INSTALL_DIRS: [&str; 2] = ["dvt_packages", "dbt_packages"];

/// The root package first, then the dependencies sorted by name.
pub fn discover(project_dir: &Path, root: ProjectManifestFile) -> Result<Vec<Package>> {
    let mut deps: BTreeMap<String, Package> = BTreeMap::new();
    let mut declared_remote: Vec<(String, String)> = Vec::new();
    for file_name in ["packages.yml", "dependencies.yml"] {
        let path = project_dir.join(file_name);
        if !path.is_file() {
            continue;
        }
        let text = files::read(&path, file_name)?;
        let doc: BTreeMap<String, Json> = yaml::parse(&text, file_name)?;
        for entry in doc.get("packages").and_then(Json::as_array).into_iter().flatten() {
            if let Some(local) = entry.get("local").and_then(Json::as_str) {
                let dir = project_dir.join(local);
                let rel = format!("{}/", local.trim_end_matches('/'));
                let pf = load_project_file(&dir, &rel).map_err(|e| {
                    if e.code == ErrorCode::ProjectNotFound {
                        DvtError::new(ErrorCode::PackageNotFound, format!("local package `{local}` has no dbt_project.yml"))
                            .at(Location::file(file_name))
                            .hint("check the `local:` path in packages.yml")
                    } else {
                        e
                    }
                })?;
                let name = pf.file.name.clone();
                deps.insert(name.clone(), Package { name, root: pf.root, rel, file: pf.file });
            } else if let Some(p) =
                entry.get("package").or_else(|| entry.get("git")).or_else(|| entry.get("tarball")).and_then(Json::as_str)
            {
                declared_remote.push((p.to_string(), file_name.to_string()));
            }
        }
    }
    let install_dir = root.file.packages_install_path.clone();
    let dirs: Vec<String> = match install_dir {
        Some(d) => vec![d],
        None => INSTALL_DIRS.iter().map(|s| s.to_string()).collect(),
    };
    for d in dirs {
        let base = project_dir.join(&d);
        let Ok(rd) = std::fs::read_dir(&base) else { continue };
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        entries.sort();
        for dir in entries {
            let leaf = files::stem(&dir);
            let rel = format!("{d}/{leaf}/");
            let Ok(pf) = load_project_file(&dir, &rel) else { continue };
            let name = pf.file.name.clone();
            deps.entry(name.clone()).or_insert(Package { name, root: pf.root, rel, file: pf.file });
        }
    }
    // Declared hub/git packages must be installed (we never download at parse time). They
    // are found by the name in their own dbt_project.yml, which a URL or hub name need not
    // contain, so as dbt does: enough installed packages for the declared ones.
    let installed = deps.len();
    let missing: Vec<&(String, String)> = declared_remote
        .iter()
        .filter(|(p, _)| {
            let short = p.rsplit(['/', '.']).find(|s| !s.is_empty() && *s != "git").unwrap_or(p).replace('-', "_");
            !deps.keys().any(|k| short.contains(k.as_str()) || k.contains(short.trim_start_matches("dbt_")))
        })
        .collect();
    if declared_remote.len() > installed
        && let Some((p, file)) = missing.first().copied().or(declared_remote.first())
    {
        return Err(DvtError::new(
            ErrorCode::PackageNotFound,
            format!("package `{p}` is declared but not installed ({} declared, {installed} installed)", declared_remote.len()),
        )
        .at(Location::file(file))
        .hint("install packages with `dvtc deps` (or `dbt deps`; DVT reads them from `packages-install-path`, default dbt_packages/), or use a `local:` package"));
    }
    let root_pkg = Package { name: root.file.name.clone(), root: root.root, rel: String::new(), file: root.file };
    deps.remove(&root_pkg.name);
    let mut out = vec![root_pkg];
    out.extend(deps.into_values());
    Ok(out)
}
