//! Connection settings read at run time from `profiles.yml` (same lookup as
//! the compiler). Secrets live only in memory here: they are never logged,
//! printed or written to an artifact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dvt_compiler::error::{DvtError, ErrorCode, Location, Result};
use serde_json::Value as Json;

/// Everything needed to open one output.
#[derive(Clone)]
pub struct Credentials {
    pub name: String,
    pub kind: String,
    /// Rendered settings (host, port, user, password, dbname, path, …).
    settings: BTreeMap<String, String>,
    /// Directory relative file paths resolve against.
    pub base_dir: PathBuf,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print settings: they hold passwords.
        write!(f, "Credentials({} {})", self.name, self.kind)
    }
}

impl Credentials {
    /// Credentials from explicit settings (tests, embedding).
    pub fn new(name: &str, kind: &str, settings: BTreeMap<String, String>, base_dir: PathBuf) -> Self {
        Credentials { name: name.to_string(), kind: kind.to_string(), settings, base_dir }
    }

    /// A setting, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }
    /// A setting or a default.
    /// Whether `other` reaches the same database (same engine, server and database, or the
    /// same file): one can then name the other's relations in a query.
    pub fn same_database(&self, other: &Credentials) -> bool {
        if self.kind != other.kind {
            return false;
        }
        let key = |c: &Credentials| -> Vec<String> {
            match c.kind.as_str() {
                "duckdb" | "sqlite" => vec![c.base_dir.join(c.get_or("path", "")).display().to_string()],
                _ => ["host", "port", "dbname", "database", "user"].iter().map(|k| c.get(k).unwrap_or_default().to_string()).collect(),
            }
        };
        key(self) == key(other)
    }

    pub fn get_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }
    /// A file path setting, resolved against the project directory.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(|p| {
            let p = Path::new(p);
            if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
        })
    }
}

/// All outputs of the profile `profile`.
pub fn load(profiles_dir: Option<&Path>, project_dir: &Path, profile: &str) -> Result<BTreeMap<String, Credentials>> {
    let dirs = dvt_compiler::profiles::search_dirs(profiles_dir, project_dir);
    let path = dirs.iter().map(|d| d.join("profiles.yml")).find(|p| p.is_file()).ok_or_else(|| {
        DvtError::new(ErrorCode::ProfileNotFound, format!("no profiles.yml found for profile `{profile}`")).hint("pass --profiles-dir")
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
    let doc: BTreeMap<String, Json> = dvt_compiler::yaml::parse(&text, "profiles.yml")?;
    let outputs = doc.get(profile).and_then(|p| p.get("outputs")).and_then(Json::as_object).ok_or_else(|| {
        DvtError::new(ErrorCode::ProfileNotFound, format!("profile `{profile}` has no outputs")).at(Location::file("profiles.yml"))
    })?;
    let mut out = BTreeMap::new();
    for (name, o) in outputs {
        let settings = render_settings(o, &format!("output `{name}`"), "profiles.yml")?;
        let kind = settings.get("type").cloned().unwrap_or_default();
        out.insert(name.clone(), Credentials { name: name.clone(), kind, settings, base_dir: project_dir.to_path_buf() });
    }
    Ok(out)
}

/// The settings of one entry of a connection file (`what` names it in
/// messages), `{{ env_var(...) }}` rendered. A message names the key, never the value.
pub(crate) fn render_settings(o: &Json, what: &str, file: &str) -> Result<BTreeMap<String, String>> {
    let mut settings = BTreeMap::new();
    for (k, v) in o.as_object().into_iter().flatten() {
        let raw = match v {
            Json::String(s) => s.clone(),
            Json::Null => continue,
            other => other.to_string(),
        };
        let rendered = if raw.contains("{{") {
            dvt_compiler::jinja::render_config_string(&raw).map_err(|e| {
                DvtError::new(ErrorCode::ConfigInvalid, format!("{what}: cannot render `{k}`: {e}")).at(Location::file(file))
            })?
        } else {
            raw
        };
        settings.insert(k.clone(), rendered);
    }
    Ok(settings)
}
