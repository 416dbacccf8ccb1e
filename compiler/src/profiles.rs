//! Connection files: `profiles.yml`, `computes.yml`, `buckets.yml`.
//!
//! Only what the compiler needs offline is kept: output names, types,
//! database and schema. Credentials are never rendered nor stored, so they
//! cannot reach a plan or a log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::yaml;

/// The database types DVT knows.
pub const DATABASE_TYPES: [&str; 6] = ["postgres", "mysql", "sqlite", "duckdb", "snowflake", "databricks"];

/// One output (connection) of a profile, without secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub name: String,
    /// Adapter type, e.g. `postgres`.
    pub kind: String,
    pub database: Option<String>,
    pub schema: String,
    pub threads: Option<u32>,
}

/// A profile: its outputs and the default one.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub default_target: String,
    pub outputs: BTreeMap<String, Output>,
    /// File the profile came from (for messages only; never in artifacts).
    pub file: PathBuf,
}

/// A compute engine from `computes.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compute {
    pub name: String,
    pub kind: String,
    /// Ballista's scheduler (`df://host:port`).
    pub endpoint: Option<String>,
    /// Bytes a federated node may hold in memory before it spills (`memory_budget:`).
    pub memory_budget: Option<u64>,
}

/// A staging bucket from `buckets.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    pub kind: String,
    /// Non-secret location settings (bucket, root, prefix, region, endpoint, path).
    pub settings: BTreeMap<String, String>,
}

/// Named engines/buckets with their default, from `computes.yml`/`buckets.yml`.
#[derive(Debug, Clone, Default)]
pub struct Registry<T> {
    pub default: Option<String>,
    pub entries: BTreeMap<String, T>,
}

/// Directories searched for connection files, in order (SPEC §1).
pub fn search_dirs(profiles_dir: Option<&Path>, project_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = profiles_dir {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os("DVT_PROFILES_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(project_dir.to_path_buf());
    if let Some(home) = std::env::var_os("HOME") {
        let home = PathBuf::from(home);
        dirs.push(home.join(".dvt"));
        dirs.push(home.join(".dbt"));
    }
    dirs
}

fn find(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

fn display_name(path: &Path, project_dir: &Path) -> String {
    path.strip_prefix(project_dir).map_or_else(
        |_| path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        |p| p.to_string_lossy().replace('\\', "/"),
    )
}

/// Renders `{{ env_var(...) }}` in one profile value. Other Jinja is left as is.
fn render_value(v: &Json, file: &str) -> Result<Option<String>> {
    let s = match v {
        Json::Null => return Ok(None),
        Json::String(s) => s.clone(),
        other => return Ok(Some(other.to_string().trim_matches('"').to_string())),
    };
    if !s.contains("{{") {
        return Ok(Some(s));
    }
    crate::jinja::render_config_string(&s)
        .map(Some)
        .map_err(|e| DvtError::new(ErrorCode::ConfigInvalid, format!("cannot render `{s}`: {e}")).at(Location::file(file)))
}

/// Loads the profile `name`. `target` overrides the profile's default output.
pub fn load_profile(dirs: &[PathBuf], project_dir: &Path, name: &str) -> Result<Profile> {
    let Some(path) = find(dirs, "profiles.yml") else {
        return Err(DvtError::new(ErrorCode::ProfileNotFound, format!("no profiles.yml found for profile `{name}`"))
            .hint("put profiles.yml in the project, ~/.dvt/ or ~/.dbt/, or pass --profiles-dir"));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
    let file = display_name(&path, project_dir);
    let doc: BTreeMap<String, Json> = yaml::parse(&text, &file)?;
    let Some(profile) = doc.get(name) else {
        let known: Vec<&str> = doc.keys().filter(|k| *k != "config").map(String::as_str).collect();
        return Err(DvtError::new(ErrorCode::ProfileNotFound, format!("profile `{name}` is not in {file} (it has: {})", known.join(", ")))
            .at(Location::file(&file))
            .hint("set `profile:` in the project file to one of these, or add the profile"));
    };
    let outputs_json = profile.get("outputs").and_then(Json::as_object).ok_or_else(|| {
        DvtError::new(ErrorCode::ConfigInvalid, format!("profile `{name}` has no `outputs:` mapping")).at(Location::file(&file))
    })?;
    let mut outputs = BTreeMap::new();
    for (oname, o) in outputs_json {
        let kind = o.get("type").and_then(|v| render_value(v, &file).transpose()).transpose()?.ok_or_else(|| {
            DvtError::new(ErrorCode::ConfigInvalid, format!("output `{oname}` of profile `{name}` has no `type:`"))
                .at(Location::file(&file))
                .hint(format!("one of: {}", DATABASE_TYPES.join(", ")))
        })?;
        let get = |k: &str| -> Result<Option<String>> {
            match o.get(k) {
                Some(v) => render_value(v, &file),
                None => Ok(None),
            }
        };
        let database = match kind.as_str() {
            "postgres" => get("dbname")?.or(get("database")?),
            "duckdb" => Some(get("database")?.unwrap_or_else(|| duckdb_database(get("path").ok().flatten().as_deref()))),
            "sqlite" => Some("main".to_string()),
            "mysql" => None,
            "databricks" => get("catalog")?.or(get("database")?),
            _ => get("database")?,
        };
        let schema = match kind.as_str() {
            "duckdb" | "sqlite" => get("schema")?.unwrap_or_else(|| "main".into()),
            "mysql" => get("schema")?.or(get("database")?).unwrap_or_default(),
            _ => get("schema")?.unwrap_or_else(|| "public".into()),
        };
        let threads = get("threads")?.and_then(|t| t.parse().ok());
        outputs.insert(oname.clone(), Output { name: oname.clone(), kind, database, schema, threads });
    }
    let default_target = profile
        .get("target")
        .and_then(|v| render_value(v, &file).transpose())
        .transpose()?
        .or_else(|| outputs.keys().next().cloned())
        .unwrap_or_default();
    Ok(Profile { name: name.to_string(), default_target, outputs, file: path })
}

/// dbt-duckdb names the database after the file stem.
fn duckdb_database(path: Option<&str>) -> String {
    match path {
        None | Some(":memory:") | Some("") => "memory".into(),
        Some(p) => Path::new(p).file_stem().map_or_else(|| "memory".into(), |s| s.to_string_lossy().into_owned()),
    }
}

const BUCKET_SETTINGS: [&str; 7] = ["bucket", "root", "prefix", "region", "endpoint", "path", "container"];

/// Loads `computes.yml` (or the implicit single `datafusion` compute).
pub fn load_computes(dirs: &[PathBuf], project_dir: &Path, profile: &str) -> Result<Registry<Compute>> {
    let mut reg = load_registry(dirs, project_dir, profile, "computes.yml", "computes", |name, kind, o| {
        let memory_budget = match o.get("memory_budget") {
            None | Some(Json::Null) => None,
            Some(v) => Some(parse_bytes(v).ok_or_else(|| {
                DvtError::new(ErrorCode::ConfigInvalid, format!("compute `{name}`: `memory_budget: {v}` is not a size"))
                    .at(Location::file("computes.yml"))
                    .hint("write a number of bytes or a size such as 64MiB, 256MB, 1GiB")
            })?),
        };
        Ok(Compute {
            name: name.to_string(),
            kind: kind.to_string(),
            endpoint: o.get("endpoint").and_then(Json::as_str).map(str::to_string),
            memory_budget,
        })
    })?;
    if reg.entries.is_empty() {
        reg.entries.insert(
            "datafusion".into(),
            Compute { name: "datafusion".into(), kind: "datafusion".into(), endpoint: None, memory_budget: None },
        );
    }
    Ok(reg)
}

/// Loads `buckets.yml` (or none: a local folder under `.dvt/` is used).
pub fn load_buckets(dirs: &[PathBuf], project_dir: &Path, profile: &str) -> Result<Registry<Bucket>> {
    load_registry(dirs, project_dir, profile, "buckets.yml", "buckets", |name, kind, o| {
        let settings = BUCKET_SETTINGS
            .iter()
            .filter_map(|k| o.get(*k).and_then(Json::as_str).filter(|v| !v.contains("{{")).map(|v| (k.to_string(), v.to_string())))
            .collect();
        Ok(Bucket { name: name.to_string(), kind: kind.to_string(), settings })
    })
}

fn load_registry<T>(
    dirs: &[PathBuf],
    project_dir: &Path,
    profile: &str,
    file_name: &str,
    key: &str,
    make: impl Fn(&str, &str, &Json) -> Result<T>,
) -> Result<Registry<T>> {
    let Some(path) = find(dirs, file_name) else { return Ok(Registry { default: None, entries: BTreeMap::new() }) };
    let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
    let file = display_name(&path, project_dir);
    let doc: BTreeMap<String, Json> = yaml::parse(&text, &file)?;
    // A file with a single profile applies whatever its name, so shared files work.
    let section = doc.get(profile).or_else(|| if doc.len() == 1 { doc.values().next() } else { None });
    let Some(section) = section else { return Ok(Registry { default: None, entries: BTreeMap::new() }) };
    let mut entries = BTreeMap::new();
    if let Some(map) = section.get(key).and_then(Json::as_object) {
        for (name, o) in map {
            let kind = o.get("type").and_then(Json::as_str).ok_or_else(|| {
                DvtError::new(ErrorCode::ConfigInvalid, format!("`{name}` in {file_name} has no `type:`")).at(Location::file(&file))
            })?;
            entries.insert(name.clone(), make(name, kind, o)?);
        }
    }
    let default = section.get("target").and_then(Json::as_str).map(str::to_string);
    if let Some(d) = &default
        && !entries.contains_key(d)
    {
        return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("default `{d}` in {file_name} is not defined under `{key}:`"))
            .at(Location::file(&file)));
    }
    Ok(Registry { default, entries })
}

/// A size: bytes, or a number with `KB`/`MB`/`GB` (powers of 1000) or `KiB`/`MiB`/`GiB` (powers of 1024).
pub fn parse_bytes(v: &Json) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (s[..split].trim().parse::<f64>().ok()?, s[split..].trim().to_ascii_lowercase());
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    Some((num * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn sizes_parse_in_bytes_and_units() {
        let p = |v| super::parse_bytes(&v);
        assert_eq!(p(json!(1)), Some(1));
        assert_eq!(p(json!("64MiB")), Some(64 << 20));
        assert_eq!(p(json!("256 MB")), Some(256_000_000));
        assert_eq!(p(json!("1.5GiB")), Some(3 << 29));
        assert_eq!(p(json!("12 parsecs")), None);
        assert_eq!(p(json!("-1")), None);
        assert_eq!(p(json!(true)), None);
    }
}
