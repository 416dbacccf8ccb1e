//! `dvtc parse` and `dvtc ls` on the example projects.

use crate::support::*;

fn ls(dir: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["ls"];
    all.extend_from_slice(args);
    let r = dvtc(dir, &all);
    assert_eq!(r.code, 0, "ls {args:?} failed: {}", r.stderr);
    lines(&r.stdout).into_iter().map(str::to_string).collect()
}

#[test]
fn multi_db_parse_counts_and_manifest() {
    let dir = example("multi_db");
    let r = dvtc_env(&dir, &["parse"], &[("DVT_PG_PASSWORD", "sup3r-s3cret-pw")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Found 24 models, 20 seeds, 5 data tests, 16 sources, 1 snapshot, 1 analysis"),
        "unexpected counts: {}",
        r.stdout
    );
    let manifest = std::fs::read_to_string(dir.join("target/dvt_manifest.json")).unwrap();
    assert!(!manifest.contains("sup3r-s3cret-pw"), "a secret reached the manifest");
    let dbt_manifest = std::fs::read_to_string(dir.join("target/manifest.json")).unwrap();
    assert!(!dbt_manifest.contains("sup3r-s3cret-pw"), "a secret reached dbt's manifest");
    let m: dvt_schema::Manifest = serde_json::from_str(&manifest).unwrap();
    assert_eq!(m.counts["model"], 24);
    let src = &m.sources["source.multi_db.erp.countries"];
    assert_eq!((src.connection.as_str(), src.connection_level.as_str()), ("maria", "config"));
    let fact = &m.nodes["model.multi_db.fact_transactions"];
    assert_eq!(fact.depends_on.nodes, vec!["model.multi_db.dim_customers", "model.multi_db.stg_fact_transactions"]);
    // The manifest validates against its committed JSON Schema.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("schema/manifest.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let value: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "manifest does not match its schema: {errors:?}");
}

#[test]
fn multi_db_ls_by_resource_type() {
    let dir = example("multi_db");
    assert_eq!(ls(&dir, &["--resource-type", "model"]).len(), 24);
    assert_eq!(ls(&dir, &["--resource-type", "seed"]).len(), 20);
    assert_eq!(ls(&dir, &["--resource-type", "source"]).len(), 16);
    assert_eq!(ls(&dir, &["--resource-type", "test"]).len(), 5);
    // dbt's fqn of a snapshot holds its file name (here the snapshot's own name too).
    assert_eq!(ls(&dir, &["--resource-type", "snapshot"]), vec!["multi_db.employees_snapshot.employees_snapshot"]);
}

#[test]
fn multi_db_selection_grammar() {
    let dir = example("multi_db");
    assert_eq!(ls(&dir, &["-s", "tag:STG", "--output", "name"]), vec!["customer_1", "customer_2", "packs_db"]);
    assert_eq!(ls(&dir, &["-s", "tag:TRGT", "--resource-type", "model"]).len(), 5);
    assert_eq!(ls(&dir, &["--selector", "federation_matrix"]).len(), 7);
    // Graph operators.
    assert_eq!(
        ls(&dir, &["-s", "+d_b_dim_officers", "--resource-type", "model", "--output", "name"]),
        vec!["a_officers", "b_officers", "bv_dept_officers", "c_officers", "d_b_dim_officers"]
    );
    assert_eq!(
        ls(&dir, &["-s", "1+d_b_dim_officers", "--resource-type", "model", "--output", "name"]),
        vec!["c_officers", "d_b_dim_officers"]
    );
    assert_eq!(ls(&dir, &["-s", "a_officers+1", "--output", "name"]), vec!["a_officers", "b_officers"]);
    assert_eq!(
        ls(&dir, &["-s", "@b_officers", "--resource-type", "model", "--output", "name"]),
        vec!["a_officers", "b_officers", "bv_dept_officers", "c_officers", "d_b_dim_officers"]
    );
    // Intersection, union, exclusion, methods.
    assert_eq!(
        ls(&dir, &["-s", "tag:TRGT,config.materialized:incremental", "--resource-type", "model", "--output", "name"]),
        vec!["dim_employees"]
    );
    assert_eq!(ls(&dir, &["-s", "customer_1", "customer_2", "--output", "name"]), vec!["customer_1", "customer_2"]);
    assert_eq!(ls(&dir, &["-s", "tag:STG", "--exclude", "packs_db", "--output", "name"]), vec!["customer_1", "customer_2"]);
    assert_eq!(ls(&dir, &["-s", "source:erp", "--output", "name"]).len(), 4);
    assert_eq!(ls(&dir, &["-s", "source:crm.packs"]), vec!["source:multi_db.crm.packs"]);
    assert_eq!(ls(&dir, &["-s", "path:models/federation", "--output", "path"]).len(), 7);
    assert_eq!(ls(&dir, &["-s", "models/erp/a_officers.sql", "--output", "name"]), vec!["a_officers"]);
    assert_eq!(ls(&dir, &["-s", "multi_db.crm.*", "--resource-type", "model"]).len(), 6);
    assert_eq!(ls(&dir, &["-s", "transactions_*", "--resource-type", "model"]).len(), 3);
    assert_eq!(ls(&dir, &["-s", "config.target:duck", "--output", "name"]).len(), 6);
    // Eager indirect selection picks up the tests of a selected model.
    assert_eq!(
        ls(&dir, &["-s", "dim_customers", "--output", "name"]),
        vec!["dim_customers", "not_null_dim_customers_customer_id", "unique_dim_customers_customer_id"]
    );
    assert_eq!(ls(&dir, &["-s", "dim_customers", "--indirect-selection", "empty", "--output", "name"]), vec!["dim_customers"]);
    assert_eq!(ls(&dir, &["-s", "test_type:singular", "--output", "name"]), vec!["assert_fact_amounts_positive"]);
    assert_eq!(ls(&dir, &["-s", "test_name:unique", "--output", "name"]), vec!["unique_dim_customers_customer_id"]);
    assert_eq!(ls(&dir, &["--selector", "gold", "--resource-type", "model"]).len(), 16);
}

#[test]
fn empty_selection_says_so() {
    let r = dvtc(&example("multi_db"), &["ls", "-s", "nonexistent_model"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.trim().is_empty());
    assert!(r.stderr.contains("does not match any enabled nodes"), "{}", r.stderr);
}

#[test]
fn ls_json_snapshot() {
    let dir = example("multi_db");
    let out = ls(&dir, &["--output", "json", "-s", "dim_employees", "source:erp.countries", "cross_pg_duck"]);
    let values: Vec<serde_json::Value> = out.iter().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    insta::assert_json_snapshot!("multi_db_ls_json", values);
}

#[test]
fn quickstart_parses() {
    let r = dvtc(&example("quickstart"), &["parse"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Found 6 models, 3 seeds, 11 data tests, 0 sources, 1 snapshot, 1 analysis"), "{}", r.stdout);
}

#[test]
fn plain_dbt_project_with_package_parses_unchanged() {
    let dir = fixture("jaffle_plain");
    let r = dvtc(&dir, &["parse"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Found 6 models, 3 seeds, 5 data tests, 1 source"), "{}", r.stdout);
    assert!(r.stdout.contains("1 package"), "{}", r.stdout);
    let m: dvt_schema::Manifest = serde_json::from_str(&std::fs::read_to_string(dir.join("target/dvt_manifest.json")).unwrap()).unwrap();
    // Sources without `connection:` follow the active target, as in dbt.
    let src = &m.sources["source.jaffle_plain.jaffle_raw.raw_customers"];
    assert_eq!((src.connection.as_str(), src.connection_level.as_str(), src.schema.as_str()), ("dev", "default", "dev_schema"));
    let r = dvtc(&dir, &["--target", "prod", "parse"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m: dvt_schema::Manifest = serde_json::from_str(&std::fs::read_to_string(dir.join("target/dvt_manifest.json")).unwrap()).unwrap();
    let src = &m.sources["source.jaffle_plain.jaffle_raw.raw_customers"];
    assert_eq!((src.connection.as_str(), src.schema.as_str()), ("prod", "analytics"));
    // Package macros are recorded as dependencies; a run_query model renders at run time.
    assert!(m.nodes["model.jaffle_plain.stg_customers"].depends_on.macros.contains(&"macro.mini_utils.generate_surrogate_key".to_string()));
    assert!(m.nodes["model.jaffle_plain.payment_values"].render_at_runtime);
    assert!(!m.nodes["model.jaffle_plain.customers"].render_at_runtime);
    let test = m.nodes.values().find(|n| n.name.starts_with("relationships_orders")).unwrap();
    assert_eq!(test.config["severity"], "WARN");
    assert_eq!(test.depends_on.nodes, vec!["model.jaffle_plain.customers", "model.jaffle_plain.orders"]);
    assert!(m.nodes.keys().any(|k| k.starts_with("test.jaffle_plain.mini_utils_source_at_least_one_jaffle_raw_raw_customers_id.")));
}

#[test]
fn generated_project_parses() {
    let out = tempfile::tempdir().unwrap();
    let proj = out.path().join("synth");
    let generator = workspace().join("../shared/bench/gen_project.py");
    let status = std::process::Command::new("python3")
        .arg(&generator)
        .args(["--out", proj.to_str().unwrap(), "--models", "300"])
        .status()
        .expect("python3 runs the generator");
    assert!(status.success());
    let r = dvtc(&proj, &["parse"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Found 303 models, 3 seeds"), "{}", r.stdout);
    assert_eq!(lines(&dvtc(&proj, &["ls", "-s", "tag:incr", "--resource-type", "model"]).stdout).len(), {
        let n = std::fs::read_dir(proj.join("models"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|d| d.is_dir())
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .filter(|f| std::fs::read_to_string(f.as_ref().unwrap().path()).unwrap().contains("tags=['incr']"))
            .count();
        assert!(n > 0);
        n
    });
}
