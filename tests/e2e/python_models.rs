//! Python models: nodes of the DAG, compiled as dbt compiles them (the model
//! plus dbt's `py_script_postfix`, byte for byte from dbt-core 1.11 with the
//! DuckDB adapter), and failed clearly by `dvtr` (no Python compute yet) with
//! their descendants skipped.

use std::process::Command;

use crate::support::*;

const PROFILES: &str =
    "pyproj:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: dev.duckdb\n      schema: main\n      database: dev\n";

const MODEL: &str = "import pandas as pd\n\n\ndef model(dbt, session):\n    dbt.config(materialized=\"table\", tags=[\"py\"])\n    limit = dbt.config.get(\"limit\", 10)\n    df = dbt.ref(\"base\").df()\n    return df\n";

/// dbt-core 1.11.16 / dbt-duckdb 1.11.1 `dbt compile` of MODEL in this project.
const DBT_COMPILED: &str = r#"import pandas as pd


def model(dbt, session):
    dbt.config(materialized="table", tags=["py"])
    limit = dbt.config.get("limit", 10)
    df = dbt.ref("base").df()
    return df


# This part is user provided model code
# you will need to copy the next section to run the code
# COMMAND ----------
# this part is dbt logic for get ref work, do not modify

"#;

fn setup() -> tempfile::TempDir {
    project(&[
        ("dbt_project.yml", "name: pyproj\nprofile: pyproj\nversion: '1.0'\n"),
        ("profiles.yml", PROFILES),
        ("models/base.sql", "select 1 as id\n"),
        ("models/py_model.py", MODEL),
        ("models/after_py.sql", "select * from {{ ref('py_model') }}\n"),
    ])
}

#[test]
fn python_models_are_nodes_compiled_like_dbt() {
    let dir = setup();
    let r = dvtc_env(dir.path(), &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let compiled = std::fs::read_to_string(dir.path().join("target/compiled/pyproj/models/py_model.py")).unwrap();
    assert!(compiled.starts_with(DBT_COMPILED), "{compiled}");
    // The rest is dbt's prelude with the resolved relations and config.
    assert!(compiled.contains(r#"refs = {"base": "\"dev\".\"main\".\"base\""}"#), "{compiled}");
    assert!(compiled.contains("config_dict = {'limit': 10}"), "{compiled}");
    assert!(compiled.contains("self.is_incremental = False"), "{compiled}");
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/plan.json")).unwrap()).unwrap();
    let node = &plan["nodes"]["model.pyproj.py_model"];
    assert_eq!(node["language"], "python");
    assert_eq!(node["depends_on"], serde_json::json!(["model.pyproj.base"]));
    assert_eq!(plan["nodes"]["model.pyproj.after_py"]["depends_on"], serde_json::json!(["model.pyproj.py_model"]));
    // A Python model that does not parse is an error with its file and line.
    std::fs::write(dir.path().join("models/py_model.py"), "\n\ndef model(dbt, session):\n    return dbt.ref(\n").unwrap();
    let r = dvtc_env(dir.path(), &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("error[DVT124] models/py_model.py:"), "{}", r.stderr);
}

#[test]
fn running_a_python_model_fails_it_clearly_and_skips_its_descendants() {
    let dir = setup();
    let out = Command::new(bin("dvtr"))
        .current_dir(dir.path())
        .args(["run"])
        .env("DVT_REQUIRE_SOURCE_CONNECTION", "false")
        .env_remove("DVT_PROFILES_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout} {stderr}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/run_results.json")).unwrap()).unwrap();
    let status = |id: &str| results["results"].as_array().unwrap().iter().find(|r| r["unique_id"] == id).map(|r| r["status"].clone());
    assert_eq!(status("model.pyproj.base"), Some("success".into()));
    assert_eq!(status("model.pyproj.py_model"), Some("error".into()));
    assert_eq!(status("model.pyproj.after_py"), Some("skipped".into()));
    assert!(format!("{stdout}{stderr}").contains("needs a Python-capable compute"), "{stdout} {stderr}");
}
