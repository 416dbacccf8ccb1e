//! `dvtc init <name>`: a runnable starter project — a seed per embedded
//! database, a staging model, a federated model joining DuckDB with SQLite,
//! generic and singular tests — plus `profiles.yml`, `computes.yml` and
//! `buckets.yml` with every supported type shown (commented). `dvtr build` runs
//! it as created, with no server (DuckDB + SQLite files in the project).

use std::path::{Path, PathBuf};

use crate::error::{DvtError, ErrorCode, Result};

/// (path in the project, template text with `__NAME__` for the project name).
const FILES: &[(&str, &str)] = &[
    ("dbt_project.yml", include_str!("init_template/dbt_project.yml")),
    ("profiles.yml", include_str!("init_template/profiles.yml")),
    ("computes.yml", include_str!("init_template/computes.yml")),
    ("buckets.yml", include_str!("init_template/buckets.yml")),
    ("README.md", include_str!("init_template/README.md")),
    (".gitignore", include_str!("init_template/.gitignore")),
    ("seeds/raw_customers.csv", include_str!("init_template/seeds/raw_customers.csv")),
    ("seeds/raw_orders.csv", include_str!("init_template/seeds/raw_orders.csv")),
    ("models/staging/stg_customers.sql", include_str!("init_template/models/staging/stg_customers.sql")),
    ("models/marts/customer_orders.sql", include_str!("init_template/models/marts/customer_orders.sql")),
    ("models/schema.yml", include_str!("init_template/models/schema.yml")),
    ("tests/assert_totals_are_positive.sql", include_str!("init_template/tests/assert_totals_are_positive.sql")),
    ("macros/.gitkeep", ""),
    ("snapshots/.gitkeep", ""),
    ("analyses/.gitkeep", ""),
];

/// Connection files, written only where none exists yet (`--profiles-dir`, else the project).
const CONNECTION_FILES: [&str; 3] = ["profiles.yml", "computes.yml", "buckets.yml"];

/// Creates project `name` in `parent`; connection files go to `profiles_dir`
/// (default: the project) unless they are already there. Returns the files written.
pub fn init(parent: &Path, name: &str, profiles_dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(DvtError::new(ErrorCode::Usage, format!("`{name}` is not a valid project name"))
            .hint("use lower-case letters, digits and underscores, starting with a letter (e.g. `my_project`)"));
    }
    let dir = parent.join(name);
    if dir.exists() && std::fs::read_dir(&dir).map_err(|e| DvtError::io(&dir, e))?.next().is_some() {
        return Err(DvtError::new(ErrorCode::Usage, format!("{} already exists and is not empty", dir.display()))
            .hint("choose another name, or remove the folder"));
    }
    let mut written = Vec::new();
    for (rel, text) in FILES {
        let is_connection = CONNECTION_FILES.contains(rel);
        let path = match (is_connection, profiles_dir) {
            (true, Some(p)) => p.join(rel),
            _ => dir.join(rel),
        };
        if is_connection && path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DvtError::io(parent, e))?;
        }
        std::fs::write(&path, text.replace("__NAME__", name)).map_err(|e| DvtError::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_checked_and_existing_folders_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::init(dir.path(), "Bad-Name", None).is_err());
        let files = super::init(dir.path(), "shop", None).unwrap();
        assert!(files.iter().any(|f| f.ends_with("models/marts/customer_orders.sql")));
        let project = std::fs::read_to_string(dir.path().join("shop/dbt_project.yml")).unwrap();
        assert!(project.contains("name: shop") && !project.contains("__NAME__"));
        assert!(super::init(dir.path(), "shop", None).is_err(), "a non-empty folder is never overwritten");
    }
}
