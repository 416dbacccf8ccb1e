//! `dvtr` on real PostgreSQL, MariaDB, SQLite and DuckDB: every materialization, second
//! runs, a failure in the middle (target unchanged, descendants skipped,
//! `retry`), changed columns, nasty identifiers, `show --inline`, exit codes.
//! The servers are started by `make test` (scripts/services.sh).

use std::path::Path;
use std::process::Command;

use crate::support::*;

type Db = ServiceProject;

fn setup(tag: &str) -> Db {
    ServiceProject::new(&format!("rt_{tag}"))
}

fn dvtr(db: &Db, args: &[&str]) -> Run {
    db.dvtr(args)
}

fn show(db: &Db, target: &str, sql: &str) -> String {
    let r = dvtr(db, &["--target", target, "show", "--limit", "100", "--inline", sql]);
    assert_eq!(r.code, 0, "show failed: {} {}", r.stdout, r.stderr);
    r.stdout
}

fn results(db: &Db) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(db.project.join("target/run_results.json")).unwrap()).unwrap()
}

fn rendering(v: &serde_json::Value, id: &str) -> (String, String) {
    let r = v["results"].as_array().unwrap().iter().find(|r| r["unique_id"] == id).unwrap_or_else(|| panic!("{id} not in results"));
    (r["status"].as_str().unwrap().to_string(), r["adapter_response"]["rendering"].as_str().unwrap_or("").to_string())
}

/// The data rows of `dvtr show`'s table (not the header).
fn table_rows(out: &str) -> Vec<String> {
    let mut lines = out.lines().filter(|l| l.starts_with("| "));
    lines.next();
    lines.map(str::to_string).collect()
}

/// A connection to the test PostgreSQL server.
fn pg_conn(db: &Db) -> Box<dyn dvt_runtime::connectors::Connection> {
    let settings = [("port".to_string(), db.env[0].1.clone()), ("dbname".to_string(), "dvt".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("pg", "postgres", settings.into_iter().collect(), db.project.clone());
    dvt_runtime::connectors::connect(&creds).unwrap()
}

fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
}

#[test]
fn build_twice_on_four_engines() {
    let db = setup("build");
    let r = dvtr(&db, &["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PASS=28 WARN=0 ERROR=0 SKIP=0 TOTAL=28"), "{}", r.stdout);
    let schema = &db.env[2].1;
    for (target, rel) in [
        ("pg", format!("{schema}.\"pg table \"\"odd\"\" ü\"")),
        ("maria", format!("`{schema}`.`maria table \"odd\" ü`")),
        ("lite", "\"lite table \"\"odd\"\" ü\"".to_string()),
    ] {
        let out = show(&db, target, &format!("select id, name, amount from {rel} order by id"));
        assert!(out.contains("BO, JR."), "{target}: {out}");
        assert!(out.lines().count() == 5, "{target}: {out}");
    }
    // Second run: tables replace their rows, incremental models merge, seeds reload.
    let r = dvtr(&db, &["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let v = results(&db);
    for e in ["pg", "maria", "lite", "duck"] {
        assert_eq!(rendering(&v, &format!("model.rt.{e}_incr")), ("success".into(), "incremental".into()));
        assert_eq!(rendering(&v, &format!("model.rt.{e}_table")), ("success".into(), "replace".into()));
        assert_eq!(rendering(&v, &format!("model.rt.{e}_view")), ("success".into(), "replace".into()));
        assert_eq!(rendering(&v, &format!("seed.rt.customers_{e}")), ("success".into(), "replace".into()));
        // The merge did not duplicate the row it re-read (updated_at >= max).
        let out = show(
            &db,
            e,
            &format!(
                "select count(*) as n from {} where id = 3",
                if e == "maria" {
                    format!("`{schema}`.`{e}_incr`")
                } else if e == "pg" {
                    format!("{schema}.{e}_incr")
                } else {
                    format!("{e}_incr")
                }
            ),
        );
        assert!(out.contains("| 1 |"), "{e}: {out}");
    }
    // --full-refresh rebuilds.
    let r = dvtr(&db, &["run", "--full-refresh", "-s", "pg_incr"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(rendering(&results(&db), "model.rt.pg_incr"), ("success".into(), "full_refresh".into()));
}

#[test]
fn federated_incremental_merges_with_the_this_value_pushed_to_the_source() {
    let db = setup("fedinc");
    let r = dvtr(&db, &["build", "-s", "+fed_incr"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(rendering(&results(&db), "model.rt.fed_incr"), ("success".into(), "full_refresh".into()));
    let out = show(&db, "duck", "select count(*) as n from fed_incr");
    assert!(out.contains("| 3 |"), "{out}");
    // Change the source: one row updated, one added.
    let schema = db.env[2].1.clone();
    let mut pg = pg_conn(&db);
    pg.execute(&format!(
        "update {schema}.customers_pg set amount = 99.25, updated_at = '2030-01-01 00:00:00' where id = 2;
         insert into {schema}.customers_pg values (10, 'Dee', 1.75, true, '2030-01-02 00:00:00')"
    ))
    .unwrap();
    let r = dvtr(&db, &["run", "-s", "fed_incr"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(rendering(&results(&db), "model.rt.fed_incr"), ("success".into(), "incremental".into()));
    // max(updated_at) was read from DuckDB and pushed into the PostgreSQL fragment.
    assert!(r.stdout.contains("pushed at run time") && r.stdout.contains("TIMESTAMP '2024-01-03 10:00:00'"), "{}", r.stdout);
    let out = show(&db, "duck", "select id, amount from fed_incr order by id");
    assert!(out.contains("99.25") && out.contains("| 10 ") && !out.contains("20.00"), "{out}");
    let out = show(&db, "duck", "select count(*) as n, count(distinct id) as d from fed_incr");
    assert!(out.contains("| 4 | 4 |"), "merged without duplicates: {out}");
    // The same merge under a 1-byte budget: the only fragment streams into the
    // compute (never held), its bound `{{ this }}` value still pushed down.
    pg.execute(&format!("insert into {schema}.customers_pg values (11, 'Eve', 2.50, true, '2030-01-03 00:00:00')")).unwrap();
    write(&db.project.join("computes.yml"), "rt:\n  target: df\n  computes:\n    df: {type: datafusion, memory_budget: 1}\n");
    let r = dvtr(&db, &["run", "-s", "fed_incr"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("bytes streamed") && r.stdout.contains("TIMESTAMP '2030-01-02 00:00:00'"), "{}", r.stdout);
    let out = show(&db, "duck", "select count(*) as n, count(distinct id) as d, max(id) as m from fed_incr");
    assert!(out.contains("| 5 | 5 | 11 |"), "merged without duplicates: {out}");
}

#[test]
fn run_query_statement_and_catalog_render_live_at_run_time() {
    let db = setup("live");
    // Offline, the node is marked to render at run time.
    let mut cmd = Command::new(bin("dvtc"));
    cmd.current_dir(&db.project).args(["compile", "-s", "pg_live", "-o", "plan.json"]).env("HOME", &db.project);
    for (k, v) in &db.env {
        cmd.env(k, v);
    }
    assert_eq!(Run::from(cmd.output().unwrap()).code, 0);
    let plan = std::fs::read_to_string(db.project.join("plan.json")).unwrap();
    assert!(plan.contains("\"render_at_runtime\": \"statement\""), "{plan}");
    // dvtr renders it live, after its upstream seed was loaded in the same run.
    let r = dvtr(&db, &["build", "-s", "+pg_live", "--indirect-selection", "cautious"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let schema = &db.env[2].1;
    let out = show(&db, "pg", &format!("select n_rows, second_name, n_cols, third_col, max_id from {schema}.pg_live"));
    assert!(out.contains("| 3      | Bo, Jr.     | 5      | amount:numeric | 3      |"), "{out}");
}

/// `dvtr compile` renders what packages read from the database as dbt's objects do
/// (adapter `Column`s, agate's mapped `columns`, `load_relation`, 4-byte floats as
/// Python widens them), and a node whose query fails is reported while the others compile.
#[test]
fn dvtr_compile_answers_catalog_objects_as_dbt_and_keeps_going_past_a_failing_node() {
    let db = setup("livecompile");
    assert_eq!(dvtr(&db, &["seed", "-s", "customers_pg"]).code, 0);
    write(
        &db.project.join("models/live_cols.sql"),
        r#"{{ config(target='pg') }}
{% set out = {'cols': '', 'agate': '', 'rels': ''} %}
{% if execute %}
{% set cols = adapter.get_columns_in_relation(ref('customers_pg')) %}
{% set t = run_query("select 1 as a, 'x' as b, cast(3.3 as real) as f") %}
{% set d = {} %}{% for k, col in t.columns.items() %}{% do d.update({k: col.values()}) %}{% endfor %}
{% set here = load_relation(ref('customers_pg')) %}
{% set gone = load_relation(api.Relation.create(schema=target.schema, identifier='no_such_relation')) %}
{% set c %}{% for c in cols %}{{ c.name }}:{{ c.is_string() }}:{{ c.is_number() }}:{{ c.data_type }};{% endfor %}{% endset %}
{% set renamed = t.rename({'a': 'A1'}) %}
{% do out.update({'cols': c, 'agate': d["a"][0] ~ '|' ~ d["b"][0] ~ '|' ~ d["f"][0] ~ '|' ~ t.columns["b"].values()[0] ~ '|' ~ renamed.column_names | join(','),
                  'rels': (here is not none) ~ '|' ~ (gone is none)}) %}
{% endif %}
select '{{ out.cols }}' as cols, '{{ out.agate }}' as agate, '{{ out.rels }}' as rels
"#,
    );
    write(
        &db.project.join("models/live_fail.sql"),
        "{{ config(target='pg') }}\n{% set x = run_query('select * from no_such_table') %}\nselect 1 as one\n",
    );
    let r = dvtr(&db, &["compile", "-s", "live_cols", "live_fail"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("model.rt.live_fail") && r.stderr.contains("no_such_table"), "{}", r.stderr);
    let sql = std::fs::read_to_string(db.project.join("target/compiled/rt/models/live_cols.sql")).unwrap();
    assert!(
        sql.contains(
            "id:False:True:integer;name:True:False:character varying(256);amount:False:True:numeric;active:False:False:boolean;updated_at:False:False:timestamp without time zone;"
        ),
        "{sql}"
    );
    assert!(sql.contains("'1|x|3.299999952316284|x|A1,b,f' as agate") && sql.contains("'True|True' as rels"), "{sql}");
    // The failed node stays in the plan, to render when it runs.
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(db.project.join("target/plan.json")).unwrap()).unwrap();
    assert_eq!(plan["nodes"]["model.rt.live_fail"]["render_at_runtime"], "run_query");
    assert!(!db.project.join("target/compiled/rt/models/live_fail.sql").exists());
}

#[test]
fn a_test_across_databases_runs_in_the_compute_and_show_computes_a_federated_model() {
    let db = setup("fedtest");
    let r = dvtr(&db, &["build", "-s", "+fed_incr+"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let test_id = "test.rt.relationships_fed_incr_id__id__ref_customers_pg_";
    let v = results(&db);
    let t = v["results"].as_array().unwrap().iter().find(|r| r["unique_id"].as_str().unwrap().starts_with(test_id)).expect("the test ran");
    assert_eq!(t["status"], "pass", "{v:#}");
    // Remove a parent row on PostgreSQL: the child on DuckDB now has an orphan.
    let settings = [("port".to_string(), db.env[0].1.clone()), ("dbname".to_string(), "dvt".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("pg", "postgres", settings.into_iter().collect(), db.project.clone());
    dvt_runtime::connectors::connect(&creds).unwrap().execute(&format!("delete from {}.customers_pg where id = 1", db.schema)).unwrap();
    let r = dvtr(&db, &["test", "-s", "fed_incr"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("FAIL") && r.stdout.contains("1 failing rows"), "{}", r.stdout);
    // `show -s` of the federated model runs it through the compute, writes nothing.
    let r = dvtr(&db, &["show", "-s", "fed_incr", "--limit", "10"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Bo, Jr.") && !r.stdout.contains("Ana"), "{}", r.stdout);
}

#[test]
fn a_failure_leaves_the_target_unchanged_and_retry_completes() {
    let db = setup("fail");
    assert_eq!(dvtr(&db, &["build"]).code, 0);
    let schema = db.env[2].1.clone();
    let model = db.project.join("models/pg_table.sql");
    let good = std::fs::read_to_string(&model).unwrap();
    write(&model, &good.replace("upper(name)", "upper(no_such_column)"));
    let r = dvtr(&db, &["run"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = results(&db);
    assert_eq!(rendering(&v, "model.rt.pg_table").0, "error");
    assert_eq!(rendering(&v, "model.rt.pg_after").0, "skipped");
    assert_eq!(rendering(&v, "model.rt.maria_table").0, "success");
    // The old rows are still there, untouched.
    let out = show(&db, "pg", &format!("select name from {schema}.\"pg table \"\"odd\"\" ü\" order by id"));
    assert!(out.contains("ANA") && out.contains("CHEN"), "{out}");
    // No staging relation is left behind.
    let out = show(
        &db,
        "pg",
        &format!("select count(*) as n from information_schema.tables where table_schema = '{schema}' and table_name like '%__dvt_%'"),
    );
    assert!(out.contains("| 0 |"), "{out}");
    write(&model, &good);
    let r = dvtr(&db, &["retry"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let v = results(&db);
    let ran: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["unique_id"].as_str().unwrap()).collect();
    assert_eq!(ran, vec!["model.rt.pg_table", "model.rt.pg_after"], "retry runs only what failed or was skipped");
}

#[test]
fn changed_columns_need_full_refresh() {
    let db = setup("cols");
    let r = dvtr(&db, &["build", "-s", "+lite_table"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let model = db.project.join("models/lite_table.sql");
    let text = std::fs::read_to_string(&model).unwrap();
    write(&model, &text.replace("as amount", "as amount, 1 as extra"));
    let r = dvtr(&db, &["run", "-s", "lite_table"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("changed") && r.stdout.contains("--full-refresh"), "{}", r.stdout);
    let out = show(&db, "lite", "select count(*) as n from pragma_table_info('lite table \"odd\" ü')");
    assert!(out.contains("| 3 |"), "the old table is intact: {out}");
    assert_eq!(dvtr(&db, &["run", "-s", "lite_table", "--full-refresh"]).code, 0);
    let out = show(&db, "lite", "select count(*) as n from pragma_table_info('lite table \"odd\" ü')");
    assert!(out.contains("| 4 |"), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    let db = setup("usage");
    let r = dvtr(&db, &["run", "-s", "nosuchmethod:x"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT140"), "{}", r.stderr);
    let r = dvtr(&db, &["execute", "no_such_plan.json"]);
    assert_eq!(r.code, 2);
    let r = dvtr(&db, &["run", "-s", "nothing_like_this"]);
    assert_eq!(r.code, 0);
    assert!(r.stderr.contains("does not match any enabled nodes"), "{}", r.stderr);
}

#[test]
fn execute_runs_a_compiled_plan_and_checks_its_version() {
    let db = setup("exec");
    let plan = db.project.join("plan.json");
    let mut cmd = Command::new(bin("dvtc"));
    cmd.current_dir(&db.project).args(["compile", "-o", plan.to_str().unwrap(), "-s", "lite_seeds+"]).env("HOME", &db.project);
    for (k, v) in &db.env {
        cmd.env(k, v);
    }
    let r: Run = cmd.output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dvtr(&db, &["execute", "plan.json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ERROR=0"), "{}", r.stdout);
    let text = std::fs::read_to_string(&plan).unwrap().replacen("\"plan_version\": \"1.", "\"plan_version\": \"9.", 1);
    write(&plan, &text);
    let r = dvtr(&db, &["execute", "plan.json"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT170") && r.stderr.contains("recompile"), "{}", r.stderr);
}

/// CI compiles, production executes: a plan with a node that renders at run time
/// (`statement`, `run_query`, catalog lookups) carries the project's files, so
/// `dvtr execute` runs it — selection flags included — after the project folder is gone.
#[test]
fn execute_renders_and_selects_from_a_bundled_plan_without_the_project_folder() {
    let db = setup("bundle");
    let mut cmd = Command::new(bin("dvtc"));
    cmd.current_dir(&db.project)
        .args(["compile", "-s", "+pg_live", "--indirect-selection", "cautious", "--bundle", "-o", "plan.json"])
        .env("HOME", &db.project);
    for (k, v) in &db.env {
        cmd.env(k, v);
    }
    let r: Run = cmd.output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(db.project.join("plan.json")).unwrap()).unwrap();
    let files = plan["bundle"]["files"].as_object().expect("a bundle");
    assert!(files.contains_key("models/pg_live.sql") && files.contains_key("dbt_project.yml"), "{files:?}");
    assert!(!files.contains_key("profiles.yml"), "connection files stay out of plans");
    // Production: the plan and a profiles.yml, nothing else.
    let prod = tempfile::tempdir().unwrap();
    std::fs::copy(db.project.join("plan.json"), prod.path().join("plan.json")).unwrap();
    std::fs::copy(db.project.join("profiles.yml"), prod.path().join("profiles.yml")).unwrap();
    std::fs::remove_dir_all(&db.project).unwrap();
    let execute = |args: &[&str]| -> Run {
        let mut cmd = Command::new(bin("dvtr"));
        cmd.current_dir(prod.path()).arg("execute").arg("plan.json").args(args).env("HOME", prod.path()).env_remove("DVT_PROFILES_DIR");
        for (k, v) in &db.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap().into()
    };
    let r = execute(&["-s", "customers_pg", "--indirect-selection", "cautious"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("TOTAL=1") && r.stdout.contains("seed customers_pg"), "{}", r.stdout);
    let r = execute(&[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("model pg_live") && r.stdout.contains("ERROR=0"), "{}", r.stdout);
    assert!(prod.path().join("target/run_results.json").is_file());
    let mut pg = pg_conn(&db);
    let rows = pg.query(&format!("select n_rows, second_name from {}.pg_live", db.schema)).unwrap().rows;
    assert_eq!(rows, vec![vec![Some("3".to_string()), Some("Bo, Jr.".to_string())]]);
    // Without a bundle and without the project, selecting is refused with a way out.
    let text = std::fs::read_to_string(prod.path().join("plan.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("bundle");
    write(&prod.path().join("plan.json"), &v.to_string());
    let r = execute(&["-s", "customers_pg"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("--bundle"), "{}", r.stderr);
    let r = execute(&[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("render at run time") && r.stderr.contains("--bundle"), "{}", r.stderr);
}

#[test]
fn a_bad_seed_row_leaves_the_old_table_and_a_changed_file_is_refused() {
    let db = setup("seed");
    assert_eq!(dvtr(&db, &["seed"]).code, 0);
    let schema = db.env[2].1.clone();
    // Compile a plan now, then change the file: `execute` must refuse it.
    let plan = db.project.join("plan.json");
    let mut cmd = Command::new(bin("dvtc"));
    cmd.current_dir(&db.project).args(["compile", "-o", plan.to_str().unwrap(), "-s", "customers_pg"]).env("HOME", &db.project);
    for (k, v) in &db.env {
        cmd.env(k, v);
    }
    assert_eq!(Run::from(cmd.output().unwrap()).code, 0);
    for e in ["pg", "maria", "lite", "duck"] {
        let csv = db.project.join(format!("seeds/{e}_seeds/customers_{e}.csv"));
        let mut text = std::fs::read_to_string(&csv).unwrap();
        text.push_str("4,Dee,not-a-number,true,2024-01-04 10:00:00\n");
        write(&csv, &text);
    }
    let r = dvtr(&db, &["seed"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let v = results(&db);
    for e in ["pg", "maria", "duck"] {
        assert_eq!(rendering(&v, &format!("seed.rt.customers_{e}")).0, "error", "{e}: {}", r.stdout);
    }
    // The old rows are intact.
    let out = show(&db, "pg", &format!("select count(*) as n from {schema}.customers_pg"));
    assert!(out.contains("| 3 |"), "{out}");
    let out = show(&db, "maria", &format!("select count(*) as n from `{schema}`.customers_maria"));
    assert!(out.contains("| 3 |"), "{out}");
    let out = show(&db, "duck", "select count(*) as n from customers_duck");
    assert!(out.contains("| 3 |"), "{out}");
    let r = dvtr(&db, &["execute", "plan.json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("changed since the plan was compiled"), "{}", r.stdout);
}

#[test]
fn seed_show_prints_what_was_stored_and_empty_strings_are_configurable() {
    let db = setup("show");
    // `amount` of row 3 is empty: NULL by default.
    let r = dvtr(&db, &["seed", "-s", "customers_lite", "--show"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("customers_lite (\"main\".\"customers_lite\" on lite):"), "{}", r.stdout);
    assert!(r.stdout.contains("Bo, Jr.") && r.stdout.contains("NULL"), "{}", r.stdout);
    let project = db.project.join("dbt_project.yml");
    let text = std::fs::read_to_string(&project).unwrap().replace(
        "    lite_seeds:\n      +target: lite\n",
        "    lite_seeds:\n      +target: lite\n      +empty_as_null: false\n      +column_types: {amount: text}\n",
    );
    write(&project, &text);
    let r = dvtr(&db, &["seed", "-s", "customers_lite", "--full-refresh"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let out = show(&db, "lite", "select count(*) as n from customers_lite where amount = ''");
    assert!(out.contains("| 1 |"), "{out}");
}

#[test]
fn a_same_database_join_and_aggregate_runs_whole_at_its_source() {
    let db = setup("fedwhole");
    write(&db.project.join("models/fed_pg_agg.sql"), FED_PG_AGG);
    let mut cmd = Command::new(bin("dvtc"));
    cmd.current_dir(&db.project).args(["compile", "-s", "fed_pg_agg", "--explain", "fed_pg_agg"]).env("HOME", &db.project);
    for (k, v) in &db.env {
        cmd.env(k, v);
    }
    let explain = Run::from(cmd.output().unwrap());
    assert_eq!(explain.code, 0, "{}", explain.stderr);
    // One fragment on PostgreSQL for the CTE (join + aggregate), one on DuckDB; no per-table PostgreSQL reads.
    assert!(explain.stdout.contains("fragment dvt_q1 on pg (postgres, sub-query pushed whole"), "{}", explain.stdout);
    assert!(explain.stdout.contains("GROUP BY\n      c.active"), "{}", explain.stdout);
    assert!(explain.stdout.contains("fragment customers_duck on duck"), "{}", explain.stdout);
    assert!(!explain.stdout.contains("fragment customers_pg") && !explain.stdout.contains("fragment pg_table"), "{}", explain.stdout);
    let r = dvtr(&db, &["build", "-s", "+fed_pg_agg", "--indirect-selection", "cautious"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let schema = &db.env[2].1;
    let out = show(&db, "pg", &format!("select active, n, total, duck_rows from {schema}.fed_pg_agg order by active"));
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.starts_with("| ") && !l.contains("active"))
        .map(|l| l.split('|').map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect())
        .collect();
    assert_eq!(rows, [["f", "1", "20.00", "1"], ["t", "2", "10.50", "2"]], "{out}");
}

const FED_PG_AGG: &str = r#"{{ config(target='pg', materialized='table') }}
-- Federated into PostgreSQL: the join and aggregate over two PostgreSQL relations
-- run there whole (one fragment); DuckDB's customers are read as their own fragment.
with totals as (
    select c.active, count(*) as n, sum(t.amount) as total
    from {{ ref('customers_pg') }} c
    join {{ ref('pg_table') }} t on t.id = c.id
    group by c.active
)
select totals.active, totals.n, totals.total, count(d.id) as duck_rows
from totals
left join {{ ref('customers_duck') }} d on d.active = totals.active
group by totals.active, totals.n, totals.total
"#;

/// The first data row of a `show` table, as cells.
fn first_row(out: &str) -> Vec<String> {
    let line = out.lines().filter(|l| l.starts_with("| ")).nth(1).unwrap_or_else(|| panic!("no rows: {out}"));
    line.split('|').map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect()
}

#[test]
fn a_federated_model_streams_many_chunks_with_exact_values() {
    let db = setup("fedbig");
    let schema = db.env[2].1.clone();
    let mut pg = pg_conn(&db);
    // 20,000 rows (three chunks): text with tabs, newlines and backslashes (COPY escapes them),
    // NULLs, and an unbounded numeric whose scale grows after the first chunk.
    pg.execute(&format!(
        "create schema if not exists {schema};
         create table {schema}.big as select g as id,
           case when g % 1000 = 0 then null else 'row ' || g || case when g % 7 = 0 then E'\\ttab\\nline\\\\back' else '' end end as txt,
           case when g <= 10000 then round(g::numeric / 10, 1) else round(g::numeric / 10000, 4) end as n,
           (g * 0.01)::numeric(12, 2) as amt
         from generate_series(1, 20000) g"
    ))
    .unwrap();
    write(
        &db.project.join("models/big_src.yml"),
        "version: 2\nsources:\n  - name: big_src\n    connection: pg\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables: [{name: big}]\n",
    );
    write(
        &db.project.join("models/big_copy.sql"),
        "{{ config(target='duck', materialized='table') }}\nselect id, txt, n, amt from {{ source('big_src', 'big') }}\n",
    );
    let r = dvtr(&db, &["run", "-s", "big_copy"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("20000 rows"), "{}", r.stdout);
    let stats = "count(*) as c, count(txt) as t, sum(length(txt)) as l, sum(strpos(txt, chr(9))) as tabs, max(n) as mx, min(n) as mn";
    let expected = pg
        .query(&format!("select {stats}, sum(n)::numeric(38, 4) as s from {schema}.big"))
        .unwrap()
        .rows
        .remove(0)
        .into_iter()
        .map(|v| v.unwrap_or_default())
        .collect::<Vec<_>>();
    let got = first_row(&show(&db, "duck", &format!("select {stats}, sum(n) as s from big_copy")));
    // DuckDB's `strpos`/`chr` and PostgreSQL's agree; decimals compare by value.
    let norm = |v: &str| if v.contains('.') { v.trim_end_matches('0').trim_end_matches('.').to_string() } else { v.to_string() };
    assert_eq!(got.iter().map(|v| norm(v)).collect::<Vec<_>>(), expected.iter().map(|v| norm(v)).collect::<Vec<_>>());
    // The unbounded numeric kept one exact scale across chunks; numeric(12,2) kept its type.
    let typed = first_row(&show(&db, "duck", "select any_value(typeof(n)) as t, any_value(typeof(amt)) as a, sum(amt) as s from big_copy"));
    assert_eq!(typed, ["DECIMAL(38,4)", "DECIMAL(12,2)", "2000100.00"]);
}

/// `IS [NOT] DISTINCT FROM` followed by AND/OR in a federated model (MariaDB + PostgreSQL
/// into PostgreSQL): sqlparser 0.62 reads `a IS DISTINCT FROM b AND c` as
/// `a IS DISTINCT FROM (b AND c)`; the compiler regroups it and hands DataFusion
/// parenthesized SQL, so the rows are PostgreSQL's.
#[test]
fn null_safe_comparisons_before_and_or_in_a_federated_model() {
    let db = setup("distinct");
    write(&db.project.join("seeds/maria_seeds/labels_maria.csv"), "id,k,label\n1,1,x\n2,1,y\n3,2,\n4,2,x\n5,3,z\n6,1,w\n7,1,\n");
    write(&db.project.join("seeds/pg_seeds/qty_pg.csv"), "id,qty\n1,20\n2,30\n3,40\n4,5\n5,50\n6,5\n7,11\n");
    write(
        &db.project.join("models/fed_distinct.sql"),
        "select a.k, count(*) as n\nfrom {{ ref('labels_maria') }} a\njoin {{ ref('qty_pg') }} b on b.id = a.id\n\
         where a.label is distinct from 'x' and b.qty > 10\ngroup by a.k",
    );
    write(
        &db.project.join("models/fed_not_distinct.sql"),
        "select a.k, count(*) as n\nfrom {{ ref('labels_maria') }} a\njoin {{ ref('qty_pg') }} b on b.id = a.id\n\
         where a.label is not distinct from null or b.qty > 45 and a.id > 0\ngroup by a.k",
    );
    let r = dvtr(&db, &["build", "-s", "labels_maria", "qty_pg", "fed_distinct", "fed_not_distinct"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let rows = |t: &str| table_rows(&show(&db, "pg", &format!("select k, n from \"{}\".{t} order by k", db.schema)));
    assert_eq!(rows("fed_distinct"), ["| 1 | 2 |", "| 2 | 1 |", "| 3 | 1 |"]);
    assert_eq!(rows("fed_not_distinct"), ["| 1 | 1 |", "| 2 | 1 |", "| 3 | 1 |"]);
}

/// MySQL functions a federated remainder translates (IF, IFNULL, CONCAT with NULL)
/// give what MariaDB itself gives on co-located data (SPEC rule 10).
#[test]
fn mysql_functions_in_a_federated_model_equal_mariadb_on_colocated_data() {
    let db = setup("myfn");
    let orders = "id,qty,note\n1,3,a\n2,,b\n3,12,\n4,7,d\n";
    let labels = "id,label\n1,x\n2,\n3,z\n4,w\n";
    write(&db.project.join("seeds/pg_seeds/orders_pg.csv"), orders);
    write(&db.project.join("seeds/maria_seeds/orders_copy_maria.csv"), orders);
    write(&db.project.join("seeds/maria_seeds/labels_maria.csv"), labels);
    let select = |o: &str, l: &str| {
        format!(
            "select o.id, if(o.qty > 5, 'big', 'small') as size, ifnull(o.qty, 0) as qty0, concat(o.note, '-', l.label) as tag\n\
             from {o} o join {l} l on l.id = o.id"
        )
    };
    write(
        &db.project.join("models/fed_mysql_fns.sql"),
        &format!("{{{{ config(target='maria') }}}}\n{}", select("{{ ref('orders_pg') }}", "{{ ref('labels_maria') }}")),
    );
    let r = dvtr(&db, &["build", "-s", "orders_pg", "orders_copy_maria", "labels_maria", "fed_mysql_fns"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = dvtr(&db, &["compile", "-s", "fed_mysql_fns"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(db.project.join("target/plan.json")).unwrap()).unwrap();
    let node = &plan["nodes"]["model.rt.fed_mysql_fns"];
    assert_eq!(node["path"], "federation");
    assert!(node["federation"]["remainder"].as_str().unwrap().contains("coalesce(o.qty, 0)"), "{node}");
    let s = &db.schema;
    same_rows_as_colocated(
        &db,
        "maria",
        &format!("select id, size, qty0, tag from `{s}`.fed_mysql_fns order by id"),
        &select(&format!("`{s}`.orders_copy_maria"), &format!("`{s}`.labels_maria")),
        4,
    );
}

/// The federated model's rows (`federated`, ordered by id) equal `colocated_query` run on
/// `target` itself; returns the federated output.
fn same_rows_as_colocated(db: &Db, target: &str, federated: &str, colocated_query: &str, n: usize) -> String {
    let federated = show(db, target, federated);
    let colocated = show(db, target, &format!("select * from ({colocated_query}) q order by id"));
    assert_eq!(table_rows(&federated).len(), n, "{federated}");
    assert_eq!(table_rows(&federated), table_rows(&colocated), "federated:\n{federated}\nco-located:\n{colocated}");
    federated
}

/// PostgreSQL `to_char` date/time patterns in a federated model are translated to
/// DataFusion's (chrono) patterns and give what PostgreSQL gives on co-located data.
#[test]
fn postgres_to_char_in_a_federated_model_equals_postgres_on_colocated_data() {
    let db = setup("tochar");
    let events = "id,ts\n1,2025-01-05 08:05:09\n2,2024-12-31 23:59:59\n3,\n4,2025-07-14 00:00:00\n";
    let labels = "id,label\n1,x\n2,y\n3,z\n4,w\n";
    write(&db.project.join("seeds/pg_seeds/events_pg.csv"), events);
    write(&db.project.join("seeds/pg_seeds/labels_copy_pg.csv"), labels);
    write(&db.project.join("seeds/maria_seeds/labels_m.csv"), labels);
    let select = |e: &str, l: &str| {
        format!(
            "select e.id, l.label, to_char(e.ts, 'YYYY-MM') as month, to_char(e.ts, 'FMDD Mon YYYY HH24:MI:SS') as stamp, \
             to_char(e.ts, 'Dy HH12 AM') as clock\nfrom {e} e join {l} l on l.id = e.id"
        )
    };
    write(&db.project.join("models/fed_to_char.sql"), &select("{{ ref('events_pg') }}", "{{ ref('labels_m') }}"));
    let r = dvtr(&db, &["build", "-s", "events_pg", "labels_copy_pg", "labels_m", "fed_to_char"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let s = &db.schema;
    let federated = same_rows_as_colocated(
        &db,
        "pg",
        &format!("select id, label, month, stamp, clock from \"{s}\".fed_to_char order by id"),
        &select(&format!("\"{s}\".events_pg"), &format!("\"{s}\".labels_copy_pg")),
        4,
    );
    assert!(federated.contains("2025-01") && federated.contains("5 Jan 2025 08:05:09"), "{federated}");
}

/// Expressions the compute cannot evaluate with PostgreSQL's meaning (numeric
/// division scale, rounding casts, numeric `to_char`, float division) over a
/// PostgreSQL source in a PostgreSQL model are computed in that source's
/// fragment: the federated model equals PostgreSQL on co-located data.
#[test]
fn postgres_expressions_over_one_source_run_in_its_fragment_and_equal_postgres() {
    let db = setup("pgexpr");
    let orders =
        "id,amount,quantity,ts\n1,220.50,33,2025-01-05 08:05:09\n2,19.99,0,2024-12-31 23:59:59\n3,,7,\n4,1000.005,3,2025-07-14 00:00:00\n";
    let labels = "id,label\n1,x\n2,y\n3,z\n4,w\n";
    write(&db.project.join("seeds/pg_seeds/orders_x_pg.csv"), orders);
    write(&db.project.join("seeds/pg_seeds/labels_x_pg.csv"), labels);
    write(&db.project.join("seeds/maria_seeds/labels_x_m.csv"), labels);
    let select = |o: &str, l: &str| {
        format!(
            "select o.id, l.label, o.amount / nullif(o.quantity, 0) as unit_price, o.amount::int as amount_int, \
             to_char(o.amount, 'FM999990.00') as amount_txt, o.quantity::float / 3 as third, \
             date_part('epoch', o.ts)::bigint as epoch\nfrom {o} o join {l} l on l.id = o.id\n\
             where o.amount::int <> 20 or o.amount is null"
        )
    };
    write(&db.project.join("models/fed_pg_expr.sql"), &select("{{ ref('orders_x_pg') }}", "{{ ref('labels_x_m') }}"));
    let r = dvtr(&db, &["build", "-s", "orders_x_pg", "labels_x_pg", "labels_x_m", "fed_pg_expr"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = dvtr(&db, &["compile", "-s", "fed_pg_expr"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(db.project.join("target/plan.json")).unwrap()).unwrap();
    let fed = &plan["nodes"]["model.rt.fed_pg_expr"]["federation"];
    let orders_fragment = fed["fragments"].as_array().unwrap().iter().find(|f| f["sql"].as_str().unwrap().contains("orders_x_pg")).unwrap();
    assert!(orders_fragment["sql"].as_str().unwrap().contains("to_char(amount, 'FM999990.00') as __dvt_expr_"), "{fed}");
    let s = &db.schema;
    let federated = same_rows_as_colocated(
        &db,
        "pg",
        &format!("select id, label, unit_price, amount_int, amount_txt, third, epoch from \"{s}\".fed_pg_expr order by id"),
        &select(&format!("\"{s}\".orders_x_pg"), &format!("\"{s}\".labels_x_pg")),
        3,
    );
    // 19.99::int is 20 in PostgreSQL (it rounds), so that row is filtered out; truncation would keep it.
    assert!(federated.contains("6.6818181818181818") && federated.contains("221") && !federated.contains("19.99"), "{federated}");
}

/// The same for MariaDB: decimal division, `DIV`, `DATE_FORMAT` over a MariaDB
/// source in a MariaDB model run in MariaDB and equal MariaDB on co-located data.
#[test]
fn mariadb_expressions_over_one_source_run_in_its_fragment_and_equal_mariadb() {
    let db = setup("myexpr");
    let orders = "id,qty,ts\n1,10,2025-01-05 08:05:09\n2,,2024-12-31 23:59:59\n3,3,\n4,7,2025-07-14 00:00:00\n";
    let labels = "id,label\n1,x\n2,y\n3,z\n4,w\n";
    write(&db.project.join("seeds/maria_seeds/orders_y_m.csv"), orders);
    write(&db.project.join("seeds/maria_seeds/labels_y_m.csv"), labels);
    write(&db.project.join("seeds/pg_seeds/labels_y_pg.csv"), labels);
    let select = |o: &str, l: &str| {
        format!(
            "select o.id, l.label, o.qty / 7 as per_week, o.qty div 3 as thirds, date_format(o.ts, '%Y-%m %a') as month\n\
             from {o} o join {l} l on l.id = o.id"
        )
    };
    write(
        &db.project.join("models/fed_my_expr.sql"),
        &format!("{{{{ config(target='maria') }}}}\n{}", select("{{ ref('orders_y_m') }}", "{{ ref('labels_y_pg') }}")),
    );
    let r = dvtr(&db, &["build", "-s", "orders_y_m", "labels_y_m", "labels_y_pg", "fed_my_expr"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let s = &db.schema;
    let federated = same_rows_as_colocated(
        &db,
        "maria",
        &format!("select id, label, per_week, thirds, month from `{s}`.fed_my_expr order by id"),
        &select(&format!("`{s}`.orders_y_m"), &format!("`{s}`.labels_y_m")),
        4,
    );
    assert!(federated.contains("1.4286") && federated.contains("2025-01 Sun"), "{federated}");
}

/// `dvtr run-operation` calls a macro with `--args` against the active target:
/// its `run_query` DDL lands in PostgreSQL and its `log(…, info=True)` is printed.
#[test]
fn run_operation_calls_a_macro_against_the_target() {
    let db = setup("runop");
    std::fs::create_dir_all(db.project.join("macros")).unwrap();
    write(
        &db.project.join("macros/ops.sql"),
        "{% macro make_marker(name, n=1) %}\n\
         {% do run_query('create schema if not exists ' ~ target.schema) %}\n\
         {% do adapter.create_schema(api.Relation.create(database=target.database, schema=target.schema ~ '_made')) %}\n\
         {% do run_query('create table ' ~ target.schema ~ '.' ~ name ~ ' as select ' ~ n ~ ' as n') %}\n\
         {% set r = run_query('select n from ' ~ target.schema ~ '.' ~ name) %}\n\
         {{ log('marker ' ~ name ~ ' holds ' ~ r.rows[0][0], info=True) }}\n\
         {% endmacro %}\n",
    );
    let r = dvtr(&db, &["run-operation", "make_marker", "--args", "{name: op_marker, n: 41}"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("marker op_marker holds 41"), "{}", r.stdout);
    let rows = show(&db, "pg", &format!("select n + 1 as n from \"{}\".op_marker", db.schema));
    assert_eq!(table_rows(&rows), vec!["| 42 |".to_string()], "{rows}");
    // `adapter.create_schema(relation)` made the schema, on PostgreSQL and (below) DuckDB.
    let made = format!("select count(*) as n from information_schema.schemata where schema_name = '{}_made'", db.schema);
    assert_eq!(table_rows(&show(&db, "pg", &made)), vec!["| 1 |".to_string()]);
    // The same statements through DuckDB (whose queries DVT wraps: statements are not).
    let r = dvtr(&db, &["--target", "duck", "run-operation", "make_marker", "--args", "{name: op_marker, n: 7}"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("marker op_marker holds 7"), "{}", r.stdout);
    let made_duck = made.replace(&format!("'{}_made'", db.schema), "'main_made'");
    assert_eq!(table_rows(&show(&db, "duck", &made_duck)), vec!["| 1 |".to_string()]);
    // An unknown macro and bad --args are coded errors.
    let r = dvtr(&db, &["run-operation", "no_such_macro"]);
    assert!(r.code == 2 && r.stderr.contains("DVT123"), "{}", r.stderr);
    let r = dvtr(&db, &["run-operation", "make_marker", "--args", "[1, 2]"]);
    assert!(r.code == 2 && r.stderr.contains("DVT141") && r.stderr.contains("mapping"), "{}", r.stderr);
}

/// `dvtr source freshness`: each source checked on its own database (PostgreSQL,
/// MariaDB), pass / warn / error against its rule, `filter` applied,
/// `target/sources.json` in dbt's v3 shape, exit 1 when a source errors.
#[test]
fn source_freshness_checks_each_source_on_its_own_database() {
    let db = setup("fresh");
    let s = &db.schema;
    std::fs::create_dir_all(db.project.join("macros")).unwrap();
    write(&db.project.join("macros/sql_op.sql"), "{% macro sql_op(sql) %}{% do run_query(sql) %}{% endmacro %}\n");
    let op = |target: &str, sql: String| {
        let args = serde_json::json!({ "sql": sql }).to_string();
        let r = dvtr(&db, &["--target", target, "run-operation", "sql_op", "--args", &args]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    };
    op("pg", format!("create schema if not exists \"{s}\""));
    op(
        "pg",
        format!(
            "create table \"{s}\".fresh_pg as select now() - interval '1 hour' as loaded_at, 'a' as kind union all select now() - interval '40 hour', 'b'"
        ),
    );
    op("pg", format!("create table \"{s}\".stale_pg as select (now() - interval '30 hour')::timestamp as loaded_at"));
    op("maria", format!("create database if not exists `{s}`"));
    op("maria", format!("create table `{s}`.late_m as select utc_timestamp() - interval 13 hour as loaded_at"));
    let rule = "freshness: {warn_after: {count: 12, period: hour}, error_after: {count: 24, period: hour}}";
    write(
        &db.project.join("models/fresh_sources.yml"),
        &format!(
            "version: 2\nsources:\n  - name: pg_raw\n    connection: pg\n    schema: \"{s}\"\n    loaded_at_field: loaded_at\n    {rule}\n    tables:\n      - name: fresh_pg\n        freshness: {{warn_after: {{count: 12, period: hour}}, filter: \"kind = 'a'\"}}\n      - name: stale_pg\n  - name: maria_raw\n    connection: maria\n    schema: \"{s}\"\n    loaded_at_field: loaded_at\n    {rule}\n    tables:\n      - name: late_m\n"
        ),
    );
    let r = dvtr(&db, &["source", "freshness"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PASS freshness of pg_raw.fresh_pg on pg"), "{}", r.stdout);
    assert!(r.stdout.contains("ERROR STALE freshness of pg_raw.stale_pg on pg"), "{}", r.stdout);
    assert!(r.stdout.contains("WARN freshness of maria_raw.late_m on maria"), "{}", r.stdout);
    let sources: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(db.project.join("target/sources.json")).unwrap()).unwrap();
    assert_eq!(sources["metadata"]["dbt_schema_version"], "https://schemas.getdbt.com/dbt/sources/v3.json");
    let result = |id: &str| sources["results"].as_array().unwrap().iter().find(|r| r["unique_id"] == id).cloned().unwrap();
    let fresh = result("source.rt.pg_raw.fresh_pg");
    let age = fresh["max_loaded_at_time_ago_in_s"].as_f64().unwrap();
    assert!((3000.0..4200.0).contains(&age), "the filter keeps only the 1-hour-old row: {fresh}");
    assert_eq!(fresh["criteria"]["filter"], "kind = 'a'");
    assert_eq!(result("source.rt.maria_raw.late_m")["status"], "warn");
    // dbt's own tooling reads it as sources v3.
    let py = std::env::var("DVT_TEST_PYTHON").expect("DVT_TEST_PYTHON is not set: run `make test`");
    let code = format!(
        "import json\nfrom dbt_artifacts_parser.parser import parse_sources\ns = parse_sources(json.load(open({:?})))\nprint(type(s).__name__, len(s.results))",
        db.project.join("target/sources.json").display().to_string()
    );
    let out = std::process::Command::new(py).args(["-c", &code]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SourcesV3 3", "{}", String::from_utf8_lossy(&out.stderr));
    // `source_status:fresher`: after new rows land in one source, only it is fresher than the state.
    let state = db.project.join("prod");
    let env: Vec<(&str, &str)> = db.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let c = dvtc_env(&db.project, &["compile", "-o", state.join("plan.json").to_str().unwrap()], &env);
    assert_eq!(c.code, 0, "{}", c.stderr);
    std::fs::copy(db.project.join("target/sources.json"), state.join("sources.json")).unwrap();
    op("pg", format!("insert into \"{s}\".fresh_pg values (now(), 'a')"));
    // Selecting only the passing source exits 0.
    let r = dvtr(&db, &["source", "freshness", "-s", "source:pg_raw.fresh_pg"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PASS=1 WARN=0 ERROR=0 TOTAL=1"), "{}", r.stdout);
    let r = dvtr(&db, &["ls", "-s", "source_status:fresher", "--state", state.to_str().unwrap()]);
    assert_eq!(r.stdout.trim(), "source:rt.pg_raw.fresh_pg", "{}", r.stderr);
}

#[test]
fn sync_creates_missing_schemas_checks_outputs_and_buckets_and_is_idempotent() {
    let db = setup("sync");
    let schema = db.schema.clone();
    let row = |out: &str, item: &str| -> String {
        out.lines().find(|l| l.starts_with(item)).unwrap_or_else(|| panic!("no `{item}` row:\n{out}")).to_string()
    };
    let r = dvtr(&db, &["sync"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for target in ["pg", "maria"] {
        assert!(row(&r.stdout, &format!("schema {schema} on {target}")).ends_with("created"), "{}", r.stdout);
    }
    for item in ["output pg (postgres)", "output maria (mysql)", "output lite (sqlite)", "output duck (duckdb)"] {
        assert!(row(&r.stdout, item).contains("  OK  "), "{}", r.stdout);
    }
    assert!(row(&r.stdout, "bucket local (file)").contains("reachable"), "{}", r.stdout);
    assert!(r.stdout.contains("Ready to run."));
    // Again: nothing to do.
    let r = dvtr(&db, &["sync"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    for target in ["pg", "maria"] {
        assert!(row(&r.stdout, &format!("schema {schema} on {target}")).ends_with("exists"), "{}", r.stdout);
    }
    // An unreachable output fails the sync (exit 1) and says which.
    let profiles = std::fs::read_to_string(db.project.join("profiles.yml")).unwrap();
    std::fs::write(db.project.join("profiles.yml"), profiles.replace("DVT_TEST_MARIA_PORT', '53306'", "DVT_TEST_NO_PORT', '9'")).unwrap();
    let r = db.dvtr(&["sync"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(row(&r.stdout, "output maria (mysql)").contains("FAIL"), "{}", r.stdout);
}

#[test]
fn a_fragment_with_read_partitions_is_read_in_parallel_ranges_with_every_row_once() {
    let db = setup("parts");
    let schema = db.env[2].1.clone();
    let mut pg = pg_conn(&db);
    // Negative and NULL values of the range column, and a value range not divisible by the count.
    pg.execute(&format!(
        "create schema if not exists {schema};
         create table {schema}.wide as select g as id, case when g % 97 = 0 then null else g - 5003 end as num, 'r' || g as txt
         from generate_series(1, 20011) g"
    ))
    .unwrap();
    write(
        &db.project.join("models/wide_src.yml"),
        "version: 2\nsources:\n  - name: w\n    connection: pg\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables:\n      - name: wide\n        config: {read_partitions: {column: num, count: 4}}\n",
    );
    write(
        &db.project.join("models/wide_copy.sql"),
        "{{ config(target='duck', materialized='table') }}\nselect id, num, txt from {{ source('w', 'wide') }}\n",
    );
    let r = dvtr(&db, &["run", "-s", "wide_copy"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("20011 rows in 4 parallel ranges"), "{}", r.stdout);
    // One row of figures over the source table, as text.
    let figures = |pg: &mut Box<dyn dvt_runtime::connectors::Connection>, sql: String| -> Vec<String> {
        pg.query(&sql).unwrap().rows.remove(0).into_iter().map(|v| v.unwrap_or_default()).collect()
    };
    let stats = "count(*) as c, count(num) as cn, sum(num) as s, count(distinct id) as d, min(num) as lo, max(num) as hi";
    let want = figures(&mut pg, format!("select {stats} from {schema}.wide"));
    assert_eq!(first_row(&show(&db, "duck", &format!("select {stats} from wide_copy"))), want);
    // Ranges spilled to the bucket (a 1-byte budget) give the same rows.
    write(&db.project.join("computes.yml"), "rt:\n  target: df\n  computes:\n    df: {type: datafusion, memory_budget: 1}\n");
    let r = dvtr(&db, &["run", "--full-refresh", "-s", "wide_copy"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("in 4 parallel ranges") && r.stdout.contains("spilled to bucket `local`"), "{}", r.stdout);
    assert_eq!(first_row(&show(&db, "duck", &format!("select {stats} from wide_copy"))), want);
    // A date column, and the count left to dvtr (`auto`: one range per 250,000 rows).
    pg.execute(&format!(
        "create table {schema}.dated as select g as id, case when g % 101 = 0 then null else date '2020-01-01' + (g % 1500) end as d
         from generate_series(1, 600001) g"
    ))
    .unwrap();
    write(
        &db.project.join("models/wide_src.yml"),
        "version: 2\nsources:\n  - name: w\n    connection: pg\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables:\n      - name: wide\n        config: {read_partitions: {column: num, count: 4}}\n      - name: dated\n        config: {read_partitions: {column: d, count: auto}}\n",
    );
    write(
        &db.project.join("models/dated_copy.sql"),
        "{{ config(target='duck', materialized='table') }}\nselect id, d from {{ source('w', 'dated') }}\n",
    );
    std::fs::remove_file(db.project.join("computes.yml")).unwrap();
    let r = dvtr(&db, &["run", "-s", "dated_copy"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("600001 rows in 3 parallel ranges"), "{}", r.stdout);
    let stats = "count(*) as c, count(d) as cd, count(distinct id) as di, min(d) as lo, max(d) as hi, count(distinct d) as dd";
    let want = figures(&mut pg, format!("select {stats} from {schema}.dated"));
    assert_eq!(first_row(&show(&db, "duck", &format!("select {stats} from dated_copy"))), want);
    std::fs::remove_file(db.project.join("models/dated_copy.sql")).unwrap();
    // A bad setting is a compile-time error naming the file.
    write(
        &db.project.join("models/wide_src.yml"),
        "version: 2\nsources:\n  - name: w\n    connection: pg\n    schema: s\n    tables:\n      - name: wide\n        config: {read_partitions: {column: num, count: 1000}}\n",
    );
    let r = dvtr(&db, &["run", "-s", "wide_copy"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("read_partitions") && r.stderr.contains("models/wide_src.yml"), "{}", r.stderr);
}

/// MariaDB ignores ORDER BY inside a derived table: `show` keeps the query's own order.
#[test]
fn show_keeps_the_order_of_a_mariadb_query() {
    let db = setup("mshow");
    let settings = [("port".to_string(), db.env[1].1.clone()), ("user".to_string(), "root".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("maria", "mysql", settings.into_iter().collect(), db.project.clone());
    let mut m = dvt_runtime::connectors::connect(&creds).unwrap();
    m.execute(&format!("create database if not exists `{}`", db.schema)).unwrap();
    m.execute(&format!("create table `{}`.ordered (id int)", db.schema)).unwrap();
    m.execute(&format!("insert into `{0}`.ordered select seq from `{0}`.seq_1_to_50", db.schema)).unwrap();
    let out = show(&db, "maria", &format!("select id from `{}`.ordered order by id desc", db.schema));
    assert_eq!(table_rows(&out)[..3], ["| 50 |", "| 49 |", "| 48 |"], "{out}");
    // A query with its own LIMIT is wrapped and still limited.
    let r = dvtr(
        &db,
        &["--target", "maria", "show", "--limit", "2", "--inline", &format!("select id from `{}`.ordered order by id limit 10", db.schema)],
    );
    assert_eq!(table_rows(&r.stdout).len(), 2, "{}", r.stdout);
}

/// Two `dvtr run` writing the same relations at once serialize on the target's
/// lock (PostgreSQL advisory lock, MariaDB GET_LOCK): the second waits while the
/// first writes — seen on the servers — both succeed, and each table ends as one
/// whole run left it, never a mix.
#[test]
fn two_runs_writing_the_same_relations_serialize() {
    let db = setup("concurrent");
    let slow = |target: &str, sleep: &str| {
        format!("{{{{ config(materialized='table', target='{target}') }}}}\nselect {sleep} as slept, '{{{{ var(\"run\") }}}}' as run_id")
    };
    write(&db.project.join("models/slow_pg.sql"), &slow("pg", "(select 1 from pg_sleep(2))"));
    write(&db.project.join("models/slow_maria.sql"), &slow("maria", "sleep(2)"));
    let start = |run: &str, model: &str| {
        let mut cmd = Command::new(bin("dvtr"));
        cmd.current_dir(&db.project).args(["run", "-s", model, "--vars", &format!("{{run: {run}}}")]).env("HOME", &db.project);
        for (k, v) in &db.env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let mut pg = pg_conn(&db);
    let settings = [("port".to_string(), db.env[1].1.clone())];
    let creds = dvt_runtime::credentials::Credentials::new("maria", "mysql", settings.into_iter().collect(), db.project.clone());
    let mut maria = dvt_runtime::connectors::connect(&creds).unwrap();
    // Polls `sql` (one count) on `conn` until it is positive, for at most 20 s.
    let wait_for = |conn: &mut Box<dyn dvt_runtime::connectors::Connection>, sql: &str| {
        for _ in 0..200 {
            if conn.query(sql).unwrap().rows[0][0].as_deref().is_some_and(|n| n != "0") {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    for (model, conn, held, waiting) in [
        (
            "slow_pg",
            &mut pg,
            // The first run sleeping inside its write (other tests' locks and this poll excluded).
            "select count(*) from pg_stat_activity where pid <> pg_backend_pid() and query like '%slow_pg%' and query like '%pg_sleep(2)%'",
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and wait_event = 'advisory'",
        ),
        (
            "slow_maria",
            &mut maria,
            // The first run sleeping inside its write (the poll itself excluded).
            "select count(*) from information_schema.processlist where state = 'User sleep' and id <> connection_id()",
            "select count(*) from information_schema.processlist where state = 'User lock'",
        ),
    ] {
        let first = start("a", model);
        assert!(wait_for(conn, held), "{model}: the first run never took its lock");
        let second = start("b", model);
        assert!(wait_for(conn, waiting), "{model}: the second run did not wait for the first");
        for (run, child) in [("a", first), ("b", second)] {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{model} run {run}: {}", String::from_utf8_lossy(&out.stdout));
        }
        let rel = if model == "slow_pg" { format!("{}.slow_pg", db.schema) } else { format!("`{}`.slow_maria", db.schema) };
        let rows = conn.query(&format!("select run_id from {rel}")).unwrap().rows;
        assert_eq!(rows, vec![vec![Some("b".to_string())]], "{model}");
    }
}

/// Microbatch models (dbt ≥ 1.9) on every engine: the full build covers
/// `begin` to the end of today's batch, reading upstreams with an `event_time`
/// through that window (others whole); an incremental run replaces only the
/// current batch and its lookback; `--event-time-start/--event-time-end` pick
/// another window. `target/compiled/` holds dbt's unfiltered SQL.
#[test]
fn microbatch_models_rebuild_their_window_on_every_engine_and_federated() {
    let db = setup("mbatch");
    let schema = db.env[2].1.clone();
    let today = chrono::Utc::now().date_naive();
    let day = |n: i64| (today - chrono::Duration::days(n)).format("%Y-%m-%d").to_string();
    let events = |rows: &[(u32, String, u32)]| {
        let mut csv = String::from("id,ts,amount\n");
        for (id, ts, amount) in rows {
            csv.push_str(&format!("{id},{ts},{amount}\n"));
        }
        csv
    };
    let first = [
        (1, "2023-12-31 10:00:00".to_string(), 1), // before `begin`
        (2, format!("{} 10:00:00", day(5)), 2),
        (3, format!("{} 10:00:00", day(1)), 3),
        (4, format!("{} 00:30:00", day(0)), 4),
        (5, "2099-01-01 00:00:00".to_string(), 5), // after the current batch
    ];
    let tomorrow = (today + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    // (model, its target, the events' seed folder, the factor's seed folder): pushed
    // down on each engine, and federated (events on PostgreSQL, model on DuckDB).
    for (model, target, events_dir, factor_dir) in [
        ("pg", "pg", "pg_seeds", "pg_seeds"),
        ("duck", "duck", "duck_seeds", "duck_seeds"),
        ("maria", "maria", "maria_seeds", "maria_seeds"),
        ("lite", "lite", "lite_seeds", "lite_seeds"),
        ("fed", "duck", "pg_seeds", "duck_seeds"),
    ] {
        let seeds = db.project.join("seeds").join(events_dir);
        write(&seeds.join(format!("mb_events_{model}.csv")), &events(&first));
        write(&db.project.join("seeds").join(factor_dir).join(format!("mb_factor_{model}.csv")), "factor\n10\n");
        write(
            &seeds.join(format!("mb_{model}.yml")),
            &format!("version: 2\nseeds:\n  - name: mb_events_{model}\n    config: {{event_time: ts}}\n"),
        );
        write(
            &db.project.join(format!("models/mb_{model}.sql")),
            &format!(
                "{{{{ config(target='{target}', materialized='incremental', incremental_strategy='microbatch', event_time='ts', batch_size='day', begin='2024-01-01', lookback=1) }}}}\n\
                 select id, ts, amount * factor as amount from {{{{ ref('mb_events_{model}') }}}} cross join {{{{ ref('mb_factor_{model}') }}}}\n"
            ),
        );
        let rel = if matches!(target, "pg" | "maria") { format!("{schema}.mb_{model}") } else { format!("mb_{model}") };
        let rows = || show(&db, target, &format!("select id, amount from {rel} order by id"));
        let r = dvtr(&db, &["build", "-s", &format!("+mb_{model}")]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(&format!("(microbatch window [2024-01-01 00:00:00, {tomorrow} 00:00:00))")), "{}", r.stdout);
        let out = rows();
        assert!(out.contains("| 2  | 20 ") && out.contains("| 3  | 30 ") && out.contains("| 4  | 40 "), "{model}: {out}");
        assert!(!out.contains("| 1  |") && !out.contains("| 5  |"), "{model}: outside [begin, tomorrow): {out}");
        // dbt's compiled SQL reads the upstream whole; the plan reads it through the window.
        let c = db.dvtc(&["compile", "-s", &format!("mb_{model}"), "-o", "mb_plan.json"]);
        assert_eq!(c.code, 0, "{}", c.stderr);
        let compiled = std::fs::read_to_string(db.project.join(format!("target/compiled/rt/models/mb_{model}.sql"))).unwrap();
        assert!(!compiled.contains("_dbt_et_filter_subq") && !compiled.contains("__dvt_microbatch"), "{compiled}");
        let plan = std::fs::read_to_string(db.project.join("mb_plan.json")).unwrap();
        assert!(plan.contains("__dvt_microbatch_start__") && !plan.contains(&format!("_dbt_et_filter_subq_mb_factor_{model}")), "{plan}");
        // Source rows change in an old batch and in the lookback window; one is added today.
        let mut second = first.to_vec();
        second[1].2 = 200;
        second[2].2 = 300;
        second.push((6, format!("{} 08:00:00", day(0)), 6));
        write(&seeds.join(format!("mb_events_{model}.csv")), &events(&second));
        assert_eq!(dvtr(&db, &["seed", "-s", &format!("mb_events_{model}")]).code, 0);
        let r = dvtr(&db, &["run", "-s", &format!("mb_{model}")]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(&format!("(microbatch window [{} 00:00:00, {tomorrow} 00:00:00))", day(1))), "{}", r.stdout);
        assert_eq!(rendering(&results(&db), &format!("model.rt.mb_{model}")), ("success".into(), "incremental".into()));
        let out = rows();
        assert!(out.contains("| 2  | 20 ") && out.contains("| 3  | 3000 ") && out.contains("| 6  | 60 "), "{model}: {out}");
        assert!(show(&db, target, &format!("select count(*) as n from {rel}")).contains("| 4 |"), "{model}: no duplicates");
        // An explicit window reaches the old batch.
        let r = dvtr(&db, &["run", "-s", &format!("mb_{model}"), "--event-time-start", &day(5), "--event-time-end", &day(4)]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let out = rows();
        assert!(out.contains("| 2  | 2000 ") && out.contains("| 3  | 3000 "), "{model}: {out}");
        assert!(show(&db, target, &format!("select count(*) as n from {rel}")).contains("| 4 |"), "{model}: no duplicates");
    }
    // dbt's checks at parse time.
    write(
        &db.project.join("models/mb_pg.sql"),
        "{{ config(target='pg', materialized='incremental', incremental_strategy='microbatch', batch_size='day', begin='2024-01-01') }}\nselect 1 as id\n",
    );
    let c = db.dvtc(&["compile", "-s", "mb_pg"]);
    assert_eq!(c.code, 2, "{}", c.stderr);
    assert!(c.stderr.contains("models/mb_pg.sql") && c.stderr.contains("has no `event_time`"), "{}", c.stderr);
    let r = dvtr(&db, &["run", "-s", "mb_duck", "--event-time-start", "2024-02-01"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}
