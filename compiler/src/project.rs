//! `dbt_project.yml` / `dvt_project.yml`: the project file of a package.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::yaml;

/// The project file names DVT accepts, in order of preference.
pub const PROJECT_FILES: [&str; 2] = ["dvt_project.yml", "dbt_project.yml"];

/// A parsed project file. Unknown keys are ignored, as dbt does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProjectFile {
    pub name: String,
    pub version: Option<Json>,
    pub profile: Option<String>,
    #[serde(rename = "model-paths", alias = "source-paths")]
    pub model_paths: Option<Vec<String>>,
    #[serde(rename = "seed-paths", alias = "data-paths")]
    pub seed_paths: Option<Vec<String>>,
    #[serde(rename = "test-paths")]
    pub test_paths: Option<Vec<String>>,
    #[serde(rename = "macro-paths")]
    pub macro_paths: Option<Vec<String>>,
    #[serde(rename = "snapshot-paths")]
    pub snapshot_paths: Option<Vec<String>>,
    #[serde(rename = "analysis-paths")]
    pub analysis_paths: Option<Vec<String>>,
    #[serde(rename = "docs-paths")]
    pub docs_paths: Option<Vec<String>>,
    #[serde(rename = "target-path")]
    pub target_path: Option<String>,
    #[serde(rename = "packages-install-path")]
    pub packages_install_path: Option<String>,
    #[serde(rename = "clean-targets")]
    pub clean_targets: Option<Vec<String>>,
    pub vars: Option<serde_json::Map<String, Json>>,
    pub models: Option<Json>,
    pub seeds: Option<Json>,
    pub snapshots: Option<Json>,
    #[serde(alias = "data_tests")]
    pub tests: Option<Json>,
    pub sources: Option<Json>,
    pub analyses: Option<Json>,
    pub flags: Option<serde_json::Map<String, Json>>,
    pub dispatch: Option<Vec<DispatchConfig>>,
    /// Which relation name parts are quoted (`{database: false, …}`).
    pub quoting: Option<Json>,
    #[serde(rename = "on-run-start")]
    pub on_run_start: Option<Json>,
    #[serde(rename = "on-run-end")]
    pub on_run_end: Option<Json>,
}

/// One `dispatch:` entry: where to look for a namespace's implementations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    pub macro_namespace: String,
    pub search_order: Vec<String>,
}

/// A loaded project file and where it lives.
#[derive(Debug, Clone)]
pub struct ProjectManifestFile {
    /// Directory of the package.
    pub root: PathBuf,
    /// File name that was found (`dbt_project.yml` or `dvt_project.yml`).
    pub file_name: &'static str,
    pub file: ProjectFile,
}

impl ProjectFile {
    fn paths(v: &Option<Vec<String>>, default: &str) -> Vec<String> {
        v.clone().unwrap_or_else(|| vec![default.to_string()])
    }
    pub fn model_paths(&self) -> Vec<String> {
        Self::paths(&self.model_paths, "models")
    }
    pub fn seed_paths(&self) -> Vec<String> {
        Self::paths(&self.seed_paths, "seeds")
    }
    pub fn test_paths(&self) -> Vec<String> {
        Self::paths(&self.test_paths, "tests")
    }
    pub fn macro_paths(&self) -> Vec<String> {
        Self::paths(&self.macro_paths, "macros")
    }
    pub fn snapshot_paths(&self) -> Vec<String> {
        Self::paths(&self.snapshot_paths, "snapshots")
    }
    pub fn analysis_paths(&self) -> Vec<String> {
        Self::paths(&self.analysis_paths, "analyses")
    }
    pub fn target_path(&self) -> String {
        self.target_path.clone().unwrap_or_else(|| "target".into())
    }
    /// Boolean behaviour flag from `flags:`.
    pub fn flag(&self, name: &str) -> Option<bool> {
        self.flags.as_ref()?.get(name)?.as_bool()
    }
}

/// Every folder the project file names stays inside the project: no absolute
/// path, no `..` (reading models or writing and cleaning `target/` never reaches
/// outside it).
fn check_paths(file: &ProjectFile, text: &str, rel: &str) -> Result<()> {
    let lists = [
        ("model-paths", &file.model_paths),
        ("seed-paths", &file.seed_paths),
        ("test-paths", &file.test_paths),
        ("macro-paths", &file.macro_paths),
        ("snapshot-paths", &file.snapshot_paths),
        ("analysis-paths", &file.analysis_paths),
        ("docs-paths", &file.docs_paths),
        ("clean-targets", &file.clean_targets),
    ];
    let singles = [("target-path", &file.target_path), ("packages-install-path", &file.packages_install_path)];
    let all = lists
        .iter()
        .flat_map(|(k, v)| v.iter().flatten().map(move |p| (*k, p)))
        .chain(singles.iter().filter_map(|(k, v)| v.as_ref().map(|p| (*k, p))));
    for (key, p) in all {
        let path = Path::new(p);
        let escapes = p.trim().is_empty()
            || path.is_absolute()
            || path.components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
            // `dvtc clean` removes these, and `target/` is rewritten: never the project itself.
            || (matches!(key, "clean-targets" | "target-path" | "packages-install-path")
                && path.components().all(|c| matches!(c, std::path::Component::CurDir)));
        if escapes {
            let line = text.lines().position(|l| l.contains(key)).map_or(0, |i| i as u32 + 1);
            return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("`{key}` entry `{p}` is not a folder inside the project"))
                .at(Location::new(rel, line, 0))
                .hint("use a relative path below the project folder, without `..`"));
        }
    }
    Ok(())
}

/// Reads the project file of the package at `dir`.
pub fn load_project_file(dir: &Path, rel_prefix: &str) -> Result<ProjectManifestFile> {
    for name in PROJECT_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
        let rel = format!("{rel_prefix}{name}");
        let file: ProjectFile = yaml::parse(&text, &rel)?;
        if file.name.trim().is_empty() {
            return Err(DvtError::new(ErrorCode::ConfigInvalid, "the project file has no `name:`")
                .at(Location::file(rel))
                .hint("add `name: my_project` to the project file"));
        }
        if !file.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(DvtError::new(
                ErrorCode::ConfigInvalid,
                format!("project name `{}` must contain only letters, digits and underscores", file.name),
            )
            .at(Location::file(rel)));
        }
        check_paths(&file, &text, &rel)?;
        return Ok(ProjectManifestFile { root: dir.to_path_buf(), file_name: name, file });
    }
    Err(DvtError::new(ErrorCode::ProjectNotFound, format!("no dbt_project.yml or dvt_project.yml in {}", dir.display()))
        .hint("run the command inside a project, pass --project-dir, or create one with `dvtc init`"))
}
