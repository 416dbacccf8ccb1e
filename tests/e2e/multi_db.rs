//! The multi-database example end to end on real PostgreSQL, MariaDB, DuckDB
//! and SQLite: seeds in every format, the 7-case federation matrix, second
//! runs and full refreshes. Every federated model is checked against the same
//! remainder run over the *whole* upstream relations (no pushdown), so a
//! pushed filter that changed a result would show here.

use std::process::Command;

use dvt_compiler::dialect::Dialect;
use dvt_runtime::connectors::{self, Connection};
use dvt_runtime::credentials;
use dvt_runtime::{arrow_rows, federation};
use dvt_schema::plan::{ExecutionPath, Fragment, Plan};

use crate::support::*;

struct Project {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

fn project() -> Project {
    let pg = std::env::var("DVT_TEST_PG_PORT").expect("DVT_TEST_PG_PORT is not set: run `make test`, which starts PostgreSQL and MariaDB");
    let maria = std::env::var("DVT_TEST_MARIA_PORT").expect("DVT_TEST_MARIA_PORT is not set: run `make test`");
    let (dir, path) = scratch_copy(&example("multi_db"));
    let data = dir.path().join("data").display().to_string();
    let env = vec![("DVT_PG_PORT", pg.clone()), ("DVT_MARIA_PORT", maria), ("DVT_DATA_DIR", data)];
    // The example's PostgreSQL database.
    let c = credentials::Credentials::new("setup", "postgres", [("port".to_string(), pg)].into_iter().collect(), path.clone());
    let mut admin = connectors::connect(&c).expect("PostgreSQL is up");
    if admin.query("select 1 from pg_database where datname = 'dvt'").unwrap().rows.is_empty() {
        admin.execute("create database dvt").unwrap();
    }
    Project { _dir: dir, path, env }
}

fn dvt(bin_name: &str, p: &Project, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin(bin_name));
    cmd.current_dir(&p.path).args(args).arg("--profiles-dir").arg(&p.path).env("HOME", &p.path).env_remove("DVT_PROFILES_DIR");
    for (k, v) in &p.env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs").into()
}

/// Rows as sorted text, through one formatter whatever engine they came from.
fn rows_of(batch: &dvt_runtime::federation::Batch) -> Vec<String> {
    let mut v: Vec<String> = arrow_rows::text_rows(std::slice::from_ref(batch), &batch.schema(), Dialect::Postgres)
        .unwrap()
        .map(|r| format!("{:?}", r.unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn multi_db_seeds_and_the_federation_matrix_on_four_engines() {
    let p = project();
    // Environment variables are read by profiles.yml when dvtr loads it.
    for (k, v) in &p.env {
        // SAFETY: set before any thread of this test reads the environment; other tests pass
        // their settings to child processes explicitly.
        unsafe { std::env::set_var(k, v) };
    }
    // (Not --full-refresh: on PostgreSQL that would refuse to drop seeds other
    // runs' views depend on, which is the safe behaviour.)
    let r = dvt("dvtr", &p, &["seed"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PASS=20 WARN=0 ERROR=0 SKIP=0 TOTAL=20"), "{}", r.stdout);
    let r = dvt("dvtr", &p, &["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ERROR=0 SKIP=0"), "{}", r.stdout);
    // A second run replaces rows in place; federated tables take the `replace` path.
    let r = dvt("dvtr", &p, &["run"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path.join("target/run_results.json")).unwrap()).unwrap();
    let fed_replace = results["results"].as_array().unwrap().iter().filter(|x| x["adapter_response"]["rendering"] == "replace").count();
    assert!(fed_replace >= 6, "{results:#}");
    // One catalog across four engines, each relation read from its own database.
    let r = dvt("dvtr", &p, &["docs", "generate"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let catalog: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.path.join("target/catalog.json")).unwrap()).unwrap();
    assert_eq!(dvt("dvtc", &p, &["compile"]).code, 0);
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(p.path.join("target/plan.json")).unwrap()).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for (id, e) in catalog["nodes"].as_object().unwrap() {
        assert!(!e["columns"].as_object().unwrap().is_empty(), "{id} has no columns");
        if let Some(n) = plan.nodes.get(id) {
            kinds.insert(plan.targets[&n.target.value].kind.clone());
        }
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["duckdb", "mysql", "postgres", "sqlite"]);
    // dbt's tooling reads the artifacts of this federated run; counts and statuses are DVT's.
    let py = std::env::var("DVT_TEST_PYTHON").expect("DVT_TEST_PYTHON is not set: run `make test`");
    let t = p.path.join("target");
    let code = format!(
        "import json\nfrom dbt_artifacts_parser.parser import parse_catalog, parse_manifest, parse_run_results\n\
         c = parse_catalog(json.load(open('{0}/catalog.json')))\nm = parse_manifest(json.load(open('{0}/manifest.json')))\n\
         r = parse_run_results(json.load(open('{0}/run_results.json')))\n\
         print(len(c.nodes), len(m.nodes), len(r.results), sum(1 for x in r.results if x.status.value == 'success'))",
        t.display()
    );
    let out = Command::new(py).args(["-c", &code]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(t.join("run_results.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(t.join("manifest.json")).unwrap()).unwrap();
    let all = results["results"].as_array().unwrap();
    let ok = all.iter().filter(|x| x["status"] == "success").count();
    let expected =
        format!("{} {} {} {ok}", catalog["nodes"].as_object().unwrap().len(), manifest["nodes"].as_object().unwrap().len(), all.len());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);

    let r = dvt("dvtc", &p, &["compile", "-o", "target/check_plan.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(p.path.join("target/check_plan.json")).unwrap()).unwrap();
    let creds = credentials::load(Some(&p.path), &p.path, &plan.project_name).unwrap();
    let mut conns: std::collections::BTreeMap<String, Box<dyn Connection>> =
        creds.iter().map(|(k, c)| (k.clone(), connectors::connect(c).unwrap())).collect();
    let mut checked = Vec::new();
    for node in plan.nodes.values().filter(|n| n.path == ExecutionPath::Federation && n.resource_type == "model") {
        let rel = node.relation.as_ref().unwrap();
        // Expected: the model's own query (before any splitting) over whole upstream relations.
        let mut inputs = Vec::new();
        for up in &node.upstreams {
            let rel = up.relation.clone().unwrap();
            let parts: Vec<&str> = up.unique_id.split('.').collect();
            let name = if parts[0] == "source" { format!("{}__{}", parts[2], parts[3]) } else { parts[2].to_string() };
            let whole = Fragment {
                name: name.clone(),
                upstream: up.unique_id.clone(),
                reads: vec![],
                files: vec![],
                partitions: None,
                target: up.target.clone(),
                dialect: String::new(),
                sql: format!("select * from {}", rel.rendered),
                columns: vec![],
            };
            inputs.push((name, federation::read_fragment(conns.get_mut(&up.target).unwrap().as_mut(), &whole).unwrap()));
        }
        let dialect = Dialect::from_adapter(&creds[&node.target.value].kind).unwrap();
        let model_sql = dvt_compiler::federate::to_compute_sql(node.compiled_sql.as_ref().unwrap(), dialect);
        let (schema, expected) = federation::run_remainder(
            &model_sql,
            inputs,
            dvt_runtime::dialect_semantics::Semantics::of(dvt_compiler::dialect::Dialect::Postgres),
        )
        .unwrap();
        let expected = datafusion_concat(&schema, &expected);
        // Actual: what dvtr wrote into the target.
        let target = Fragment {
            name: node.name.clone(),
            upstream: node.unique_id.clone(),
            reads: vec![],
            files: vec![],
            partitions: None,
            target: node.target.value.clone(),
            dialect: String::new(),
            sql: format!("select * from {}", rel.rendered),
            columns: vec![],
        };
        let actual =
            federation::read_fragment(conns.get_mut(&node.target.value).unwrap().as_mut(), &target).and_then(|t| t.concat()).unwrap();
        assert!(expected.num_rows() > 0, "{}: the check needs rows", node.name);
        assert_eq!(
            rows_of(&expected),
            rows_of(&actual),
            "{}: federated result differs from the model's query over whole relations",
            node.name
        );
        checked.push(node.name.clone());
    }
    checked.sort();
    assert_eq!(checked, ["bv_dept_officers", "cross_pg_duck", "maria_to_duck", "maria_to_pg", "pg_to_duck", "three_way_to_duck"]);
}

fn datafusion_concat(
    schema: &dvt_runtime::federation::SchemaRef,
    batches: &[dvt_runtime::federation::Batch],
) -> dvt_runtime::federation::Batch {
    dvt_runtime::federation::concat(schema, batches).unwrap()
}
