//! DuckDB 2.0 database files, as users' tools make them (the current DuckDB
//! Python package, storage version v2.0.0+), are read and written by dvtr, and
//! what dvtr wrote reads back in DuckDB's own Python package.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn python(script: &str) -> String {
    let py = std::env::var("DVT_TEST_PYTHON")
        .expect("DVT_TEST_PYTHON is not set: run `make test`, which installs DuckDB's Python package (scripts/py_duckdb.sh)");
    let out = Command::new(py).arg("-c").arg(script).output().expect("python runs");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_duckdb_2_file_made_by_the_python_package_is_read_and_written() {
    let dir = project(&[
        ("dbt_project.yml", "name: duckv2\nprofile: duckv2\nversion: '1.0'\n"),
        (
            "profiles.yml",
            "duckv2:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: made_by_python.duckdb\n      schema: main\n",
        ),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    connection: dev\n    schema: main\n    tables:\n      - name: items\n",
        ),
        (
            "models/doubled.sql",
            "{{ config(materialized='table') }}\nselect id, name, amount * 2 as amount2 from {{ source('raw', 'items') }}",
        ),
    ]);
    let file = dir.path().join("made_by_python.duckdb");
    let version = python(&format!(
        "import duckdb\ncon = duckdb.connect()\ncon.execute(\"ATTACH '{}' AS w (STORAGE_VERSION 'latest')\")\n\
         con.execute('create table w.main.items (id integer, name varchar, amount decimal(10,2))')\n\
         con.execute(\"insert into w.main.items values (1, 'a', 1.50), (2, 'ü', null), (3, 'c', 20.25)\")\n\
         print(con.execute(\"select tags['storage_version'] from duckdb_databases() where database_name = 'w'\").fetchone()[0])\ncon.close()",
        file.display()
    ));
    assert!(version.starts_with("v2."), "the fixture is a DuckDB 2 file: {version}");
    let r = dvtr(dir.path(), &["run"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let r = dvtr(dir.path(), &["show", "--inline", "select count(*) as n from main.doubled"]);
    assert!(r.stdout.contains("| 3 |"), "{}", r.stdout);
    // DuckDB 2.0 itself reads what dvtr wrote.
    let rows = python(&format!(
        "import duckdb\ncon = duckdb.connect('{}', read_only=True)\nprint(con.execute('select id, name, amount2 from main.doubled order by id').fetchall())",
        file.display()
    ));
    assert_eq!(rows, "[(1, 'a', Decimal('3.00')), (2, 'ü', None), (3, 'c', Decimal('40.50'))]");
}

fn dvtr(dir: &Path, args: &[&str]) -> Run {
    dvtr_in(dir, args)
}

/// DuckDB's `icu` extension is linked in (DVT cannot download extensions): time zones,
/// `timestamptz` arithmetic and `date_trunc` on it work, as in DuckDB's own releases.
#[test]
fn duckdb_time_zones_work_without_downloading_an_extension() {
    let dir = project(&[
        ("dbt_project.yml", "name: proj\nprofile: proj\n"),
        ("profiles.yml", "proj:\n  target: duck\n  outputs:\n    duck:\n      type: duckdb\n      path: w.duckdb\n"),
    ]);
    let sql = "select timezone('America/New_York', timestamptz '2024-07-01 12:00:00+00') as ny, \
               date_trunc('month', timestamptz '2024-07-15 10:00:00+02')::date as m, \
               (select count(*) from duckdb_extensions() where extension_name = 'icu' and loaded) as icu";
    let r = dvtr(dir.path(), &["--target", "duck", "show", "--inline", sql]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("| 2024-07-01 08:00:00 | 2024-07-01 | 1   |"), "{}", r.stdout);
}
