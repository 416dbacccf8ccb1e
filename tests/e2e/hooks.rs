//! Hooks on real PostgreSQL and MariaDB: a hook that queries the database
//! (`run_query` through a macro) is rendered when its node runs, as dbt does —
//! never dropped, never run against the database at compile time — on models,
//! seeds and federated models, in order with the hooks that render offline.

use crate::support::*;

const AUDIT_MACRO: &str = "{% macro audit_rows(rel, label) %}
  {%- if execute -%}
    {%- set n = run_query('select count(*) from ' ~ rel).columns[0].values()[0] -%}
    {%- do run_query(\"insert into \" ~ target.schema ~ \".hook_audit values ('\" ~ label ~ \"', \" ~ n ~ \")\") -%}
  {%- endif -%}
{% endmacro %}
";

const HOOKED: &str = "{{ config(target='pg', materialized='table',
    pre_hook=\"create table if not exists {{ target.schema }}.hook_audit (label text, n int)\",
    post_hook=[\"{{ audit_rows(this, 'model') }}\", \"insert into {{ target.schema }}.hook_audit values ('static', -1)\"]) }}
select id, name from {{ ref('customers_pg') }}
";

/// Federated (PostgreSQL and MariaDB rows), written to PostgreSQL.
const FED_HOOKED: &str = "{{ config(target='pg', materialized='table', post_hook=\"{{ audit_rows(this, 'federated') }}\") }}
-- depends_on: {{ ref('hooked') }}
select p.id, m.name from {{ ref('customers_pg') }} p join {{ ref('customers_maria') }} m on p.id = m.id where p.id <= 2
";

const SEED_HOOK: &str = "seeds:
  - name: customers_pg
    config:
      post_hook: \"{{ audit_rows(this, 'seed') if execute and adapter.get_relation(this.database, this.schema, 'hook_audit') else '' }}\"
";

fn audit(db: &ServiceProject) -> Vec<String> {
    let mut conn = db.connect("pg");
    let rows = conn.query(&format!("select label, n from {}.hook_audit order by label, n", db.schema)).expect("hook_audit exists");
    rows.rows.iter().map(|r| format!("{}={}", r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default())).collect()
}

#[test]
fn hooks_that_query_the_database_render_when_their_node_runs() {
    let db = ServiceProject::new("hooks");
    let p = &db.project;
    std::fs::create_dir_all(p.join("macros")).unwrap();
    std::fs::write(p.join("macros/audit.sql"), AUDIT_MACRO).unwrap();
    std::fs::write(p.join("models/hooked.sql"), HOOKED).unwrap();
    std::fs::write(p.join("models/fed_hooked.sql"), FED_HOOKED).unwrap();
    std::fs::write(p.join("seeds/pg_seeds/hooks.yml"), SEED_HOOK).unwrap();

    // Offline: the hooks are kept as Jinja with the reason, in order; nothing is dropped.
    let c = db.dvtc(&["compile", "-o", "plan.json"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("plan.json")).unwrap()).unwrap();
    let hooked = &plan["nodes"]["model.rt.hooked"];
    assert_eq!(hooked["pre_hooks"], serde_json::json!([]), "{hooked}");
    let rh = &hooked["runtime_hooks"];
    assert!(rh["reason"].as_str().unwrap().contains("audit_rows"), "{rh}");
    assert_eq!(rh["pre"].as_array().unwrap().len(), 1, "{rh}");
    assert_eq!(rh["post"][0], "{{ audit_rows(this, 'model') }}", "{rh}");
    assert!(rh["post"][1].as_str().unwrap().starts_with("insert into {{ target.schema }}"), "{rh}");
    assert!(plan["nodes"]["seed.rt.customers_pg"]["runtime_hooks"]["post"][0].as_str().unwrap().contains("audit_rows(this, 'seed')"));
    assert_eq!(plan["nodes"]["model.rt.fed_hooked"]["path"], "federation");
    // A hook that renders offline stays rendered in the plan.
    let fed_incr = &plan["nodes"]["model.rt.fed_incr"];
    assert!(fed_incr["runtime_hooks"].is_null(), "{fed_incr}");

    // Run: pre-hook creates the audit table, post-hooks render after the node built
    // its relation (the counts are of the new rows), federated nodes run theirs too.
    let r = db.dvtr(&["build", "-s", "+hooked", "+fed_hooked", "--indirect-selection", "cautious"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // The seed ran before `hooked` created the audit table: its hook rendered to nothing.
    assert_eq!(audit(&db), ["federated=2", "model=3", "static=-1"]);

    // A second seed load now finds the table: its hook renders live and inserts.
    let r = db.dvtr(&["seed", "-s", "customers_pg"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(audit(&db), ["federated=2", "model=3", "seed=3", "static=-1"]);

    // `dvtr compile` talks to the databases as `dbt compile` does, but never renders
    // hooks that write: the audit table is unchanged.
    let r = db.dvtr(&["compile"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(audit(&db), ["federated=2", "model=3", "seed=3", "static=-1"]);

    // A plan whose hooks render at run time needs the project: a clear usage error elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(p.join("plan.json"), elsewhere.path().join("plan.json")).unwrap();
    std::fs::copy(p.join("profiles.yml"), elsewhere.path().join("profiles.yml")).unwrap();
    let mut cmd = db.command(&bin("dvtr"));
    let out = cmd.current_dir(elsewhere.path()).args(["execute", "plan.json"]).output().unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("DVT141"), "{}", r.stderr);
}

const RUN_HOOKS: &str = r#"
on-run-start:
  - "create table if not exists {{ target.schema }}.run_log (step text, detail text)"
  - "insert into {{ target.schema }}.run_log values ('start', '{{ flags.WHICH }}')"
  - "{{ 'select * from no_such_table' if var('fail_start', false) else '' }}"
on-run-end:
  - "{% for r in results %}insert into {{ target.schema }}.run_log values ('{{ r.status }}', '{{ r.node.name }}');{% endfor %}"
  - "insert into {{ target.schema }}.run_log values ('schemas', '{{ schemas | join(',') }}')"
  - "insert into {{ target.schema }}.run_log values ('selected', '{{ selected_resources | join(',') }}')"
"#;

fn run_log(db: &ServiceProject) -> Vec<String> {
    let mut conn = db.connect("pg");
    let rows = conn.query(&format!("select step, detail from {}.run_log", db.schema)).expect("run_log exists");
    let mut out: Vec<String> =
        rows.rows.iter().map(|r| format!("{}:{}", r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default())).collect();
    out.sort();
    out
}

#[test]
fn on_run_start_and_on_run_end_hooks_run_around_the_nodes_with_their_results() {
    let db = ServiceProject::new("runhooks");
    let p = &db.project;
    let mut project = std::fs::read_to_string(p.join("dbt_project.yml")).unwrap();
    project.push_str(RUN_HOOKS);
    std::fs::write(p.join("dbt_project.yml"), project).unwrap();

    // Compiled as dbt compiles them: files under hooks/, operation nodes in the manifest.
    let c = db.dvtc(&["compile"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let hook0 = p.join("target/compiled/rt/dbt_project.yml/hooks/rt-on-run-start-0.sql");
    let text = std::fs::read_to_string(&hook0).unwrap_or_else(|e| panic!("{}: {e}", hook0.display()));
    assert_eq!(text, format!("create table if not exists {}.run_log (step text, detail text)", db.schema));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("target/manifest.json")).unwrap()).unwrap();
    let op = &m["nodes"]["operation.rt.rt-on-run-end-1"];
    assert_eq!(op["resource_type"], "operation", "{op}");
    assert_eq!(op["tags"], serde_json::json!(["on-run-end"]));
    assert_eq!(op["index"], 1);
    // Rendered at compile time with the compile's selection.
    let end2 = std::fs::read_to_string(p.join("target/compiled/rt/dbt_project.yml/hooks/rt-on-run-end-2.sql")).unwrap();
    assert!(end2.contains("model.rt.pg_table,") && end2.contains("seed.rt.customers_pg"), "{end2}");

    // `seed`, then `run`: start hooks, the nodes, end hooks with `results` and `schemas`.
    let r = db.dvtr(&["seed", "-s", "customers_pg"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("OK    hook rt-on-run-start-0"), "{}", r.stdout);
    let schemas = format!("schemas:{}", db.schema);
    let seed = "selected:seed.rt.customers_pg".to_string();
    assert_eq!(run_log(&db), [schemas.clone(), seed.clone(), "start:seed".into(), "success:customers_pg".into()]);
    let r = db.dvtr(&["run", "-s", "pg_table"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let want =
        [&schemas, &schemas, "selected:model.rt.pg_table", &seed, "start:run", "start:seed", "success:customers_pg", "success:pg_table"];
    assert_eq!(run_log(&db), want);
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("target/run_results.json")).unwrap()).unwrap();
    let ids: Vec<&str> = results["results"].as_array().unwrap().iter().map(|r| r["unique_id"].as_str().unwrap()).collect();
    assert_eq!(ids.first(), Some(&"operation.rt.rt-on-run-start-0"));
    assert_eq!(ids.last(), Some(&"operation.rt.rt-on-run-end-2"));

    // A failing on-run-start hook: every node is skipped, end hooks still run, exit 1.
    let r = db.dvtr(&["seed", "-s", "customers_pg", "--vars", "{fail_start: true}"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ERROR hook rt-on-run-start-2"), "{}", r.stdout);
    let log = run_log(&db);
    assert!(log.contains(&"start:seed".to_string()) && log.contains(&"skipped:customers_pg".to_string()), "{log:?}");
}
