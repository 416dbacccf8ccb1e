//! A throwaway project the targets rewrite each run: DuckDB and SQLite outputs
//! (compiling never connects), one source on each, a seed and a macro.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dvt_compiler::compile::{CompileOptions, compile};
use dvt_compiler::loader::{LoadOptions, load};

pub const PROJECT: &str = "name: fz\nprofile: fz\nmodel-paths: [models]\nseed-paths: [seeds]\nmacro-paths: [macros]\n";
pub const PROFILES: &str = "fz:\n  target: duck\n  outputs:\n    duck:\n      type: duckdb\n      path: fz.duckdb\n      schema: main\n    lite:\n      type: sqlite\n      path: fz.sqlite\n      schema: main\n";
pub const SOURCES: &str = "version: 2\nsources:\n  - name: d\n    connection: duck\n    tables: [{name: t}]\n  - name: l\n    connection: lite\n    tables: [{name: u}]\nmodels:\n  - name: m\n    columns:\n      - name: id\n        data_tests: [unique, not_null]\n";
pub const MACRO: &str = "{% macro twice(x) %}({{ x }} * 2){% endmacro %}\n";
pub const SEED: &str = "id,name\n1,a\n2,b\n";

/// The project folder, created once per process.
pub fn project() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder").keep();
        for d in ["models", "seeds", "macros"] {
            std::fs::create_dir_all(dir.join(d)).expect("folders");
        }
        reset(&dir);
        dir
    })
}

/// Writes the valid project back.
pub fn reset(dir: &Path) {
    for (f, text) in [
        ("dbt_project.yml", PROJECT),
        ("profiles.yml", PROFILES),
        ("models/sources.yml", SOURCES),
        ("macros/m.sql", MACRO),
        ("seeds/s.csv", SEED),
        ("models/m.sql", "select 1 as id"),
    ] {
        std::fs::write(dir.join(f), text).expect("writes");
    }
}

/// Loads and compiles the project; every outcome but a panic is fine.
pub fn compile_project(dir: &Path) {
    let opts = LoadOptions { project_dir: dir.to_path_buf(), profiles_dir: Some(dir.to_path_buf()), ..Default::default() };
    if let Ok((project, jinja, graph)) = load(&opts) {
        let _ = compile(&project, &jinja, &graph, &CompileOptions::default());
    }
}
