//! The PR-check workflow on real PostgreSQL and MariaDB: a base commit built
//! into "prod", a PR commit that changes a model body, a config, a macro and a
//! model's target, then `state:modified+` selection and `dvtr build --defer`
//! into "ci", reading the unchanged upstreams from prod (another output, so
//! the reading node federates).

use std::path::Path;

use crate::support::*;

const PROFILE: &str = "st:
  target: prod
  outputs:
    prod:
      type: postgres
      host: 127.0.0.1
      port: \"{{ env_var('DVT_TEST_PG_PORT') }}\"
      user: postgres
      dbname: dvt
      schema: \"{{ env_var('DVT_TEST_SCHEMA') }}_prod\"
    ci:
      type: postgres
      host: 127.0.0.1
      port: \"{{ env_var('DVT_TEST_PG_PORT') }}\"
      user: postgres
      dbname: dvt
      schema: \"{{ env_var('DVT_TEST_SCHEMA') }}_ci\"
    maria:
      type: mysql
      host: 127.0.0.1
      port: \"{{ env_var('DVT_TEST_MARIA_PORT') }}\"
      user: root
      schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"
";

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The base commit.
fn base(root: &Path) {
    for d in ["models", "seeds"] {
        let _ = std::fs::remove_dir_all(root.join(d));
    }
    write(root, "profiles.yml", PROFILE);
    // CI's profile: the same outputs, `ci` by default.
    write(root, "ci/profiles.yml", &PROFILE.replace("target: prod", "target: ci"));
    write(root, "dbt_project.yml", "name: st\nprofile: st\nseeds:\n  st:\n    raw_customers:\n      +target: maria\n");
    write(root, "seeds/raw_orders.csv", "id,customer_id,amount_cents\n1,1,1250\n2,1,800\n3,2,4000\n4,3,150\n");
    write(root, "seeds/raw_customers.csv", "id,name\n1,ann\n2,bob\n3,cy\n");
    write(root, "macros/dollars.sql", "{% macro dollars(c) %}({{ c }} / 100.0){% endmacro %}\n");
    write(root, "models/stg_orders.sql", "select id, customer_id, amount_cents from {{ ref('raw_orders') }}\n");
    write(
        root,
        "models/stg_customers.sql",
        "{{ config(target='maria', materialized='table') }}\nselect id, name from {{ ref('raw_customers') }}\n",
    );
    write(
        root,
        "models/orders_named.sql",
        "{{ config(materialized='table') }}\nselect o.id, c.name from {{ ref('stg_orders') }} o join {{ ref('stg_customers') }} c on c.id = o.customer_id\n",
    );
    write(
        root,
        "models/revenue.sql",
        "{{ config(materialized='table') }}\nselect customer_id, sum({{ dollars('amount_cents') }}) as revenue from {{ ref('stg_orders') }} group by customer_id\n",
    );
    write(root, "models/top.sql", "{{ config(materialized='table') }}\nselect customer_id from {{ ref('revenue') }} where revenue > 10\n");
    write(root, "models/counts.sql", "{{ config(materialized='table') }}\nselect count(*) as n from {{ ref('stg_orders') }}\n");
    write(root, "models/big.sql", "{{ config(materialized='table') }}\nselect id from {{ ref('stg_orders') }} where amount_cents > 1000\n");
    write(root, "models/big_count.sql", "{{ config(materialized='table') }}\nselect count(*) as n from {{ ref('big') }}\n");
    write(root, "models/schema.yml", "version: 2\nmodels:\n  - name: counts\n    columns:\n      - name: n\n        tests: [not_null]\n");
}

/// The PR commit: a body, a config, a macro and a target change.
fn pr(root: &Path) {
    write(
        root,
        "models/orders_named.sql",
        "{{ config(materialized='table') }}\nselect o.id, upper(c.name) as name from {{ ref('stg_orders') }} o join {{ ref('stg_customers') }} c on c.id = o.customer_id\n",
    );
    write(
        root,
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: counts\n    config: {tags: [nightly]}\n    columns:\n      - name: n\n        tests: [not_null]\n  - name: big\n    config: {target: maria}\n",
    );
    write(root, "macros/dollars.sql", "{% macro dollars(c) %}({{ c }} / 100.00){% endmacro %}\n");
}

fn names(stdout: &str) -> Vec<String> {
    let mut v: Vec<String> = stdout.lines().filter(|l| !l.trim().is_empty()).map(|l| l.rsplit('.').next().unwrap().to_string()).collect();
    v.sort();
    v
}

#[test]
fn state_modified_selects_the_changes_and_defer_reads_prod() {
    let db = ServiceProject::new("st");
    let root = db.project.clone();
    base(&root);
    let prod = db.dvtr(&["build", "--threads", "2"]);
    assert_eq!(prod.code, 0, "{}\n{}", prod.stdout, prod.stderr);
    let state_dir = root.join("prod_state");
    let c = db.dvtr(&["compile", "-o", state_dir.join("plan.json").to_str().unwrap()]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    std::fs::copy(root.join("target/run_results.json"), state_dir.join("run_results.json")).unwrap();
    let st = state_dir.to_str().unwrap();

    // Nothing changed yet: nothing is modified, everything is old.
    let ls = |sel: &str| {
        let r = db.dvtr(&["ls", "--resource-type", "model", "--state", st, "-s", sel]);
        assert_eq!(r.code, 0, "{sel}: {}", r.stderr);
        names(&r.stdout)
    };
    assert!(ls("state:modified").is_empty());
    assert_eq!(ls("state:old").len(), 8);

    pr(&root);
    // big_count's SQL is unchanged, but it now reads `big` from MariaDB: its path changed.
    assert_eq!(ls("state:modified"), ["big", "big_count", "counts", "orders_named", "revenue"]);
    assert_eq!(ls("state:modified+"), ["big", "big_count", "counts", "orders_named", "revenue", "top"]);
    assert_eq!(ls("state:modified.body"), ["orders_named"]);
    assert_eq!(ls("state:modified.configs"), ["big", "counts"]);
    assert_eq!(ls("state:modified.macros"), ["revenue"]);
    assert_eq!(ls("state:modified.target"), ["big"]);
    assert_eq!(ls("state:modified.path"), ["big", "big_count"]);
    assert!(ls("state:new").is_empty());
    assert_eq!(ls("state:unmodified"), ["stg_customers", "stg_orders", "top"]);
    assert_eq!(ls("result:success"), ["big", "big_count", "counts", "orders_named", "revenue", "stg_customers", "stg_orders", "top"]);
    // The environment (CI's profile defaults to the `ci` output) is not a change.
    let r = db.dvtr(&["ls", "--profiles-dir", "ci", "--resource-type", "model", "--state", st, "-s", "state:modified"]);
    assert_eq!(names(&r.stdout), ["big", "big_count", "counts", "orders_named", "revenue"], "{}", r.stderr);
    // `--target` moves every node (CLI > config): stg_customers leaves MariaDB, so it is modified.
    let r = db.dvtr(&["ls", "-t", "ci", "--resource-type", "model", "--state", st, "-s", "state:modified.target"]);
    assert_eq!(names(&r.stdout), ["stg_customers"], "{}", r.stderr);

    // The offline compile of the PR defers every unselected upstream to prod.
    let c = db.dvtr(&["compile", "--profiles-dir", "ci", "--state", st, "--defer", "-s", "state:modified+", "-o", "pr.json"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(root.join("pr.json")).unwrap()).unwrap();
    let revenue = plan.nodes.values().find(|n| n.name == "revenue").unwrap();
    let up = &revenue.upstreams[0];
    assert!(up.deferred && up.target == "prod", "{up:?}");
    assert_eq!(revenue.path, dvt_schema::plan::ExecutionPath::Federation);
    let d = dvtc(&root, &["diff", state_dir.join("plan.json").to_str().unwrap(), "pr.json"]);
    assert!(d.stdout.contains("deferred to the state"), "{}", d.stdout);
    assert!(
        d.stdout.contains(&format!("model.st.revenue reads model.st.stg_orders from prod \"dvt\".\"{}_prod\".\"stg_orders\"", db.schema)),
        "{}",
        d.stdout
    );
    let top = plan.nodes.values().find(|n| n.name == "top").unwrap();
    assert!(!top.upstreams[0].deferred, "revenue is selected: top reads the CI build of it");

    // Build only the selection into ci, reading the rest from prod.
    let b = db.dvtr(&["build", "--profiles-dir", "ci", "--state", st, "--defer", "-s", "state:modified+", "--threads", "2"]);
    assert_eq!(b.code, 0, "{}\n{}", b.stdout, b.stderr);
    let rr: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("target/run_results.json")).unwrap()).unwrap();
    let mut built: Vec<String> = rr["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["unique_id"].as_str().unwrap().to_string())
        .filter(|id| id.starts_with("model."))
        .map(|id| id.rsplit('.').next().unwrap().to_string())
        .collect();
    built.sort();
    assert_eq!(built, ["big", "big_count", "counts", "orders_named", "revenue", "top"]);
    assert!(rr["results"].as_array().unwrap().iter().all(|r| r["status"] == "success" || r["status"] == "pass"), "{rr}");

    // Values: CI tables computed from prod's upstreams.
    let mut pg = pg_conn(&db);
    let ci = format!("{}_ci", db.schema);
    let mut q = |sql: &str| -> Vec<Vec<Option<String>>> { pg.query(sql).unwrap().rows };
    assert_eq!(
        q(&format!("select customer_id::text, round(revenue, 2)::text from {ci}.revenue order by 1")),
        [
            vec![Some("1".into()), Some("20.50".into())],
            vec![Some("2".into()), Some("40.00".into())],
            vec![Some("3".into()), Some("1.50".into())]
        ]
    );
    assert_eq!(q(&format!("select count(*)::text from {ci}.orders_named where name = upper(name)")), [vec![Some("4".into())]]);
    // Unselected models were not built in ci.
    let stg = q(&format!("select count(*)::text from information_schema.tables where table_schema = '{ci}' and table_name = 'stg_orders'"));
    assert_eq!(stg, [vec![Some("0".into())]]);
    // `big` moved to MariaDB.
    let mut m = maria_conn(&db);
    assert_eq!(m.query(&format!("select count(*) from `{}`.big", db.schema)).unwrap().rows, [vec![Some("2".to_string())]]);
}

fn pg_conn(db: &ServiceProject) -> Box<dyn dvt_runtime::connectors::Connection> {
    let settings = [("port".to_string(), db.env[0].1.clone()), ("dbname".to_string(), "dvt".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("pg", "postgres", settings.into_iter().collect(), db.project.clone());
    dvt_runtime::connectors::connect(&creds).unwrap()
}

fn maria_conn(db: &ServiceProject) -> Box<dyn dvt_runtime::connectors::Connection> {
    let settings = [("port".to_string(), db.env[1].1.clone()), ("user".to_string(), "root".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("maria", "mysql", settings.into_iter().collect(), db.project.clone());
    dvt_runtime::connectors::connect(&creds).unwrap()
}

/// `dvtr clone --state`: views over prod's relations where the CI output reaches the
/// same database (another schema on the same PostgreSQL), table copies where it does not
/// (a DuckDB file), existing relations kept unless --full-refresh.
#[test]
fn clone_makes_the_state_relations_available_in_ci() {
    let db = ServiceProject::new("clone");
    let root = db.project.clone();
    base(&root);
    let duck_profile = PROFILE.replace("target: prod", "target: duckci")
        + "    duckci:\n      type: duckdb\n      path: \"{{ env_var('DVT_TEST_DUCKDB') }}\"\n      schema: main\n";
    write(&root, "duckci/profiles.yml", &duck_profile);
    let prod = db.dvtr(&["build", "--threads", "2"]);
    assert_eq!(prod.code, 0, "{}\n{}", prod.stdout, prod.stderr);
    let state = root.join("prod_state");
    let c = db.dvtr(&["compile", "-o", state.join("plan.json").to_str().unwrap()]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let st = state.to_str().unwrap();

    let r = db.dvtr(&["clone", "--profiles-dir", "ci", "--state", st, "-s", "stg_orders", "revenue", "stg_customers"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // stg_customers lives on MariaDB in both environments: it is already there.
    assert!(r.stdout.contains("skip model stg_customers: the state's relation is this relation"), "{}", r.stdout);
    let mut pg = pg_conn(&db);
    let ci = format!("{}_ci", db.schema);
    let views = pg.query(&format!("select table_name from information_schema.views where table_schema = '{ci}' order by 1")).unwrap().rows;
    assert_eq!(views, [vec![Some("revenue".to_string())], vec![Some("stg_orders".to_string())]]);
    let rows = pg.query(&format!("select count(*)::text from {ci}.revenue")).unwrap().rows;
    assert_eq!(rows, [vec![Some("3".to_string())]]);
    // Again: kept.
    let r = db.dvtr(&["clone", "--profiles-dir", "ci", "--state", st, "-s", "revenue"]);
    assert!(r.stdout.contains("already exists (--full-refresh replaces it)"), "{}", r.stdout);

    // Into another database: copied through the compute.
    let r = db.dvtr(&["clone", "--profiles-dir", "duckci", "--state", st, "-s", "revenue", "counts"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let show = db.dvtr(&[
        "--profiles-dir",
        "duckci",
        "show",
        "--inline",
        "select customer_id, revenue from main.revenue order by 1",
        "--limit",
        "10",
    ]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(show.stdout.contains("20.5") && show.stdout.contains("40") && show.stdout.contains("1.5"), "{}", show.stdout);
    let kinds = db.dvtr(&[
        "--profiles-dir",
        "duckci",
        "show",
        "--inline",
        "select table_name, table_type from information_schema.tables where table_name in ('revenue', 'counts') order by 1",
    ]);
    assert!(kinds.stdout.contains("BASE TABLE") && !kinds.stdout.contains("VIEW"), "{}", kinds.stdout);
}
