//! Golden plans (checked by insta; `make golden` reviews changes), plan schema
//! validation, determinism, and the compile-time errors of SPEC §2.

use std::path::Path;

use crate::support::*;

/// (golden name, project, extra args)
const GOLDEN: &[(&str, &str, &[&str])] = &[
    ("quickstart", "examples/quickstart", &[]),
    ("multi_db", "examples/multi_db", &[]),
    ("jaffle_plain", "tests/fixtures/jaffle_plain", &[]),
    ("rules_resolution", "tests/fixtures/rules/resolution", &[]),
    ("rules_resolution_cli", "tests/fixtures/rules/resolution", &["--target", "duck", "--compute", "small", "--bucket", "s3_stage"]),
    ("rules_coercion", "tests/fixtures/rules/coercion", &[]),
    ("rules_incremental", "tests/fixtures/rules/incremental", &[]),
    ("rules_incremental_full_refresh", "tests/fixtures/rules/incremental", &["--full-refresh", "-s", "pg_delete_insert"]),
    ("rules_quoting", "tests/fixtures/rules/quoting", &[]),
    ("rules_snapshots", "tests/fixtures/rules/snapshots", &[]),
    ("rules_tests_hooks", "tests/fixtures/rules/tests_hooks", &[]),
    ("rules_federation", "tests/fixtures/rules/federation", &[]),
];

fn compile_to_string(project: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tempfile::tempdir().unwrap();
    let plan = out.path().join("plan.json");
    let mut all = vec!["compile", "-o", plan.to_str().unwrap()];
    all.extend_from_slice(args);
    let r = dvtc_env(project, &all, env);
    assert_eq!(r.code, 0, "compile {} {args:?} failed: {}", project.display(), r.stderr);
    std::fs::read_to_string(plan).unwrap()
}

fn plan_validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join("schema/plan.schema.json")).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[test]
fn golden_plans() {
    let validator = plan_validator();
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(workspace().join("golden"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    for (name, dir, args) in GOLDEN {
        let (_tmp, project) = scratch_copy(&workspace().join(dir));
        let text = compile_to_string(&project, args, &[]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{name}: plan does not match plan.schema.json: {errors:?}");
        // dvtr's reader accepts it (every reference resolves).
        if let Err(e) = dvt_compiler::plan_file::parse(&text, name) {
            panic!("{name}: {}", e.message);
        }
        settings.bind(|| insta::assert_snapshot!(*name, text));
    }
}

#[test]
fn plans_are_deterministic_and_location_free() {
    let (_a, p1) = scratch_copy(&example("multi_db"));
    let (_b, p2) = scratch_copy(&example("multi_db"));
    let first = compile_to_string(&p1, &[], &[]);
    assert_eq!(first, compile_to_string(&p1, &[], &[]), "two compiles differ");
    assert_eq!(first, compile_to_string(&p2, &[], &[]), "the plan depends on where the project lives");
    // From another working directory with --project-dir.
    let other = tempfile::tempdir().unwrap();
    let plan = other.path().join("p.json");
    let r = dvtc(other.path(), &["--project-dir", p1.to_str().unwrap(), "compile", "-o", plan.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(first, std::fs::read_to_string(plan).unwrap());
    assert!(!first.contains(p1.to_str().unwrap()) && !first.contains("/tmp/"), "absolute paths in the plan");
    // Secrets never reach the plan, even when set.
    let (_c, p3) = scratch_copy(&workspace().join("tests/fixtures/rules/resolution"));
    let with_secrets = compile_to_string(
        &p3,
        &[],
        &[("NEVER_SET_PG_PASSWORD", "pg-s3cr3t"), ("AWS_KEY", "AKIA-s3cr3t"), ("DATABRICKS_TOKEN", "dapi-s3cr3t")],
    );
    assert!(!with_secrets.contains("s3cr3t"), "a secret reached the plan");
}

#[test]
fn compile_writes_compiled_sql_and_summary() {
    let (_t, p) = scratch_copy(&example("multi_db"));
    let r = dvtc(&p, &["compile", "-s", "fact_transactions", "maria_to_pg"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The singular test on fact_transactions comes along (eager indirect selection).
    assert!(r.stdout.contains("3 nodes: 2 pushdown, 1 federation, 1 coerced"), "{}", r.stdout);
    assert!(r.stderr.contains("DVTW201"), "{}", r.stderr);
    let sql = std::fs::read_to_string(p.join("target/compiled/multi_db/models/target/fact_transactions.sql")).unwrap();
    assert!(sql.contains("\"dvt\".\"public\".\"stg_fact_transactions\""), "{sql}");
    assert!(sql.contains("amount >= 0"), "vars are rendered: {sql}");
    let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(p.join("target/plan.json")).unwrap()).unwrap();
    let n = &plan.nodes["model.multi_db.maria_to_pg"];
    assert_eq!(n.materialization.effective, "table");
    // Only the columns the model reads.
    assert_eq!(n.federation.as_ref().unwrap().fragments[0].sql, "select country_code, country_name, region_id from `erp`.`countries`");
    // Topological, ties broken by id.
    assert_eq!(
        plan.order,
        vec!["model.multi_db.fact_transactions", "model.multi_db.maria_to_pg", "test.multi_db.assert_fact_amounts_positive"]
    );
}

#[test]
fn explain_prints_the_decomposition() {
    let (_t, p) = scratch_copy(&example("multi_db"));
    let r = dvtc(&p, &["compile", "--explain", "three_way_to_duck"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in [
        "path: federation",
        "compute: local [config]",
        "fragment erp__countries on maria (mysql)",
        "fragment hr__employees on pg (postgres)",
        "remainder (datafusion)",
    ] {
        assert!(r.stdout.contains(needle), "missing `{needle}` in:\n{}", r.stdout);
    }
}

fn compile_err(files: &[(&str, &str)], args: &[&str]) -> Run {
    let dir = base_project(files);
    let mut all = vec!["compile"];
    all.extend_from_slice(args);
    let r = dvtc(dir.path(), &all);
    assert_eq!(r.code, 2, "expected an error: {} {}", r.stdout, r.stderr);
    r
}

const SRC: (&str, &str) = ("models/src.yml", "version: 2\nsources:\n  - name: lake\n    connection: duck\n    tables: [{name: events}]\n");

#[test]
fn coercion_errors() {
    let r =
        compile_err(&[SRC, ("models/e.sql", "{{ config(materialized='ephemeral') }}\nselect * from {{ source('lake', 'events') }}")], &[]);
    assert!(r.stderr.contains("error[DVT161] models/e.sql") && r.stderr.contains("materialize it as a table"), "{}", r.stderr);
    let r = compile_err(
        &[
            SRC,
            (
                "snapshots/s.sql",
                "{% snapshot s %}\n{{ config(unique_key='id', strategy='timestamp', updated_at='u') }}\nselect * from {{ source('lake', 'events') }}\n{% endsnapshot %}",
            ),
        ],
        &[],
    );
    assert!(r.stderr.contains("DVT162"), "{}", r.stderr);
    let r = compile_err(&[("models/m.sql", "{{ config(materialized='materialized_cube') }}\nselect 1")], &[]);
    assert!(r.stderr.contains("DVT160") && r.stderr.contains("materialized_cube"), "{}", r.stderr);
    let r = compile_err(
        &[("models/m.sql", "{{ config(materialized='incremental', incremental_strategy='insert_overwrite') }}\nselect 1")],
        &[],
    );
    assert!(r.stderr.contains("DVT160") && r.stderr.contains("not supported on postgres"), "{}", r.stderr);
    let r = compile_err(&[("models/m.sql", "{{ config(target='nowhere') }}\nselect 1")], &[]);
    assert!(r.stderr.contains("DVT104") && r.stderr.contains("models/m.sql"), "{}", r.stderr);
    let r = compile_err(
        &[SRC, ("models/m.sql", "{{ config(materialized='table') }}\nselect * from {{ source('lake', 'events') }}")],
        &["--compute", "gpu_cluster"],
    );
    assert!(r.stderr.contains("DVT102") && r.stderr.contains("gpu_cluster"), "{}", r.stderr);
    let r = compile_err(&[("models/m.sql", "{{ config(materialized='incremental', incremental_strategy='merge') }}\nselect 1")], &[]);
    assert!(r.stderr.contains("needs a `unique_key`"), "{}", r.stderr);
}

#[test]
fn ephemeral_on_pushdown_is_inlined_and_resolution_levels_are_recorded() {
    let (_t, p) = scratch_copy(&workspace().join("tests/fixtures/rules/coercion"));
    let text = compile_to_string(&p, &[], &[]);
    let plan: dvt_schema::Plan = serde_json::from_str(&text).unwrap();
    let sql = plan.nodes["model.coercion.uses_ephemerals"].compiled_sql.clone().unwrap();
    let inner = sql.find("__dbt__cte__eph_inner as").expect("inner CTE");
    let outer = sql.find("__dbt__cte__eph_outer as").expect("outer CTE");
    assert!(inner < outer, "inner ephemeral must come first:\n{sql}");
    assert_eq!(sql.matches("__dbt__cte__eph_inner as").count(), 1, "{sql}");
    let fed = &plan.nodes["model.coercion.fed_incremental"];
    let f = fed.federation.as_ref().unwrap();
    assert!(f.remainder_incremental.as_ref().unwrap().contains("from \"__this\""), "{f:?}");
    assert!(f.fragments.iter().any(|fr| fr.name == "__this" && fr.target == "duck"), "{f:?}");
    // The `{{ this }}` subquery is recorded for evaluation on the target at run time.
    assert_eq!(
        fed.write.as_ref().unwrap().this_subqueries,
        vec!["SELECT max(updated_at) FROM \"lake\".\"main\".\"fed_incremental\"".to_string()]
    );
    let (_t2, p2) = scratch_copy(&workspace().join("tests/fixtures/rules/resolution"));
    let plan: dvt_schema::Plan = serde_json::from_str(&compile_to_string(&p2, &[], &[])).unwrap();
    let lvl = |id: &str| {
        let n = &plan.nodes[id];
        (
            n.target.value.clone(),
            serde_json::to_value(n.target.level).unwrap(),
            n.compute.as_ref().map(|c| (c.value.clone(), serde_json::to_value(c.level).unwrap())),
        )
    };
    assert_eq!(lvl("model.resolution.default_target"), ("pg".into(), "default".into(), None));
    assert_eq!(lvl("model.resolution.config_target"), ("duck".into(), "config".into(), None));
    assert_eq!(lvl("model.resolution.config_compute"), ("duck".into(), "config".into(), Some(("big".into(), "config".into()))));
    assert_eq!(lvl("model.resolution.default_compute"), ("pg".into(), "default".into(), Some(("small".into(), "default".into()))));
    let plan: dvt_schema::Plan = serde_json::from_str(&compile_to_string(&p2, &["--target", "duck", "--compute", "small"], &[])).unwrap();
    let n = &plan.nodes["model.resolution.config_compute"];
    assert_eq!((n.target.value.as_str(), n.compute.as_ref().unwrap().value.as_str()), ("duck", "small"));
    assert_eq!(serde_json::to_value(n.target.level).unwrap(), "cli");
    // With everything on duck, a duck-only model is pushed down.
    assert_eq!(plan.nodes["model.resolution.config_target"].path, dvt_schema::plan::ExecutionPath::Pushdown);
}

#[test]
fn diff_explains_a_change_and_exits_1() {
    let (_t, p) = scratch_copy(&example("multi_db"));
    let old = compile_to_string(&p, &[], &[]);
    std::fs::write(
        p.join("models/target/dim_packs.sql"),
        "{{ config(target='duck') }}\nselect pack_id, pack_name from {{ ref('packs_db') }}\n",
    )
    .unwrap();
    std::fs::remove_file(p.join("models/legacy/legacy_audit.sql")).unwrap();
    std::fs::write(p.join("models/target/new_model.sql"), "select 1 as one\n").unwrap();
    let new = compile_to_string(&p, &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("old.json"), dir.path().join("new.json"));
    std::fs::write(&a, &old).unwrap();
    std::fs::write(&b, &new).unwrap();
    let r = dvtc(dir.path(), &["diff", "old.json", "new.json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    for needle in [
        "nodes added (1):\n  model.multi_db.new_model",
        "nodes removed (1):\n  model.multi_db.legacy_audit",
        "model.multi_db.dim_packs: pg \"dvt\".\"public\".\"dim_packs\" -> duck \"warehouse\".\"main\".\"dim_packs\"",
        "model.multi_db.dim_packs: pushdown -> federation",
        "--- old/model.multi_db.dim_packs",
        "-select pack_id, pack_name, category_id",
    ] {
        assert!(r.stdout.contains(needle), "missing `{needle}` in:\n{}", r.stdout);
    }
    let r = dvtc(dir.path(), &["diff", "old.json", "old.json"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("plans are equal"));
    std::fs::write(&b, "{\"nope\": 1}").unwrap();
    let r = dvtc(dir.path(), &["diff", "old.json", "new.json"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT170"), "{}", r.stderr);
}

/// Deterministic random projects (xorshift): the compiler either compiles them
/// or reports a coded error — it never panics.
#[test]
fn random_projects_never_panic() {
    use dvt_compiler::{cli::ProjectArgs, compile::CompileOptions, loader};
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mats = ["view", "table", "incremental", "ephemeral", "bogus"];
    let targets = ["", "pg", "duck", "nowhere"];
    let (mut ok, mut err) = (0, 0);
    for case in 0..60 {
        let mut files: Vec<(String, String)> = vec![(SRC.0.into(), SRC.1.into())];
        let n = 1 + rnd(8) as usize;
        for i in 0..n {
            let mut cfg = format!("materialized='{}'", mats[rnd(mats.len() as u64) as usize]);
            let t = targets[rnd(targets.len() as u64) as usize];
            if !t.is_empty() {
                cfg.push_str(&format!(", target='{t}'"));
            }
            if rnd(3) == 0 {
                cfg.push_str(", unique_key='id'");
            }
            let from = match (i, rnd(3)) {
                (0, _) | (_, 0) => "{{ source('lake', 'events') }}".to_string(),
                _ => format!("{{{{ ref('m{}') }}}}", rnd(i as u64 + 1)),
            };
            let body = if rnd(5) == 0 { "{% if is_incremental() %}".to_string() } else { format!("select id from {from}") };
            files.push((format!("models/m{i}.sql"), format!("{{{{ config({cfg}) }}}}\n{body}\n")));
        }
        let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let dir = base_project(&refs);
        let args = ProjectArgs { project_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let result = loader::load(&args.load_options()).and_then(|(project, jinja, graph)| {
            dvt_compiler::compile::compile(&project, &jinja, &graph, &CompileOptions::default()).map(|_| ())
        });
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                assert!(e.code.as_str().starts_with("DVT1"), "case {case}: uncoded error {e}");
                err += 1;
            }
        }
    }
    assert!(ok > 0 && err > 0, "both outcomes expected: {ok} ok, {err} errors");
}

/// Arrow type of `column` in fragment `fragment` of `node`, from a compiled plan.
fn fragment_type(plan: &serde_json::Value, node: &str, fragment: &str, column: &str) -> Option<String> {
    let frags = plan["nodes"][node]["federation"]["fragments"].as_array().unwrap_or_else(|| panic!("{node} is not federated"));
    let f = frags.iter().find(|f| f["name"] == fragment).unwrap_or_else(|| panic!("{node} has no fragment {fragment}: {frags:#?}"));
    let c = f["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == column)
        .unwrap_or_else(|| panic!("{fragment} has no {column}: {f:#}"));
    c["arrow_type"].as_str().map(str::to_string)
}

#[test]
fn fragment_types_are_traced_offline_through_seeds_models_and_sources() {
    let dir = project(&[
        ("dbt_project.yml", "name: proj\nversion: '1.0'\nprofile: proj\nseeds:\n  proj:\n    people_lite:\n      +target: lite\n"),
        (
            "profiles.yml",
            "proj:\n  target: pg\n  outputs:\n    pg: {type: postgres, dbname: db, schema: public}\n    duck: {type: duckdb, path: w.duckdb}\n    lite: {type: sqlite, path: l.sqlite}\n",
        ),
        ("seeds/people.csv", "id,name,amount,joined\n1,Ana,10.50,2024-01-01\n2,Bo,3.25,2024-02-01\n"),
        ("seeds/people_lite.csv", "id,amount\n1,10.50\n"),
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    connection: pg\n    schema: public\n    tables: [{name: people}]\n",
        ),
        (
            "models/staged.sql",
            "{{ config(materialized='table') }}\nselect p.id, p.name, cast(p.amount as numeric(12,2)) as amt, upper(p.name) as shout, p.joined from {{ ref('people') }} p",
        ),
        (
            "models/counts.sql",
            "{{ config(materialized='table') }}\nselect name, count(*) as n, max(joined) as last from {{ ref('staged') }} group by name",
        ),
        (
            "models/lite_copy.sql",
            "{{ config(materialized='table', target='lite') }}\nselect id, cast(amount as decimal(5,2)) as a from {{ ref('people_lite') }}",
        ),
        (
            "models/fed.sql",
            "{{ config(materialized='table', target='duck') }}\nselect s.id, s.amt, s.shout, s.joined, c.n, c.last, l.a\nfrom {{ ref('staged') }} s join {{ ref('counts') }} c on c.name = s.name join {{ ref('lite_copy') }} l on l.id = s.id",
        ),
        (
            "models/fed_source.sql",
            "{{ config(materialized='table', target='duck') }}\nselect r.id, r.amount from {{ source('raw', 'people') }} r join {{ ref('lite_copy') }} l on l.id = r.id",
        ),
        (
            "models/fed_pushed.sql",
            "{{ config(materialized='table') }}\nwith agg as (select s.name, count(*) as n, min(s.amt) as lo from {{ ref('staged') }} s join {{ ref('counts') }} c on c.name = s.name group by s.name)\nselect agg.name, agg.n, agg.lo, l.a from agg join {{ ref('lite_copy') }} l on l.id = agg.n",
        ),
    ]);
    let r = dvtc(dir.path(), &["compile", "-o", "plan.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap()).unwrap();
    let t = |node: &str, frag: &str, col: &str| fragment_type(&plan, &format!("model.proj.{node}"), frag, col);
    // Seed types pass through plain columns; casts, count and max keep theirs; functions stay unknown.
    assert_eq!(t("fed", "staged", "id").as_deref(), Some("Int32"));
    assert_eq!(t("fed", "staged", "amt").as_deref(), Some("Decimal128(12, 2)"));
    assert_eq!(t("fed", "staged", "joined").as_deref(), Some("Date32"));
    assert_eq!(t("fed", "staged", "name").as_deref(), Some("Utf8"));
    assert_eq!(t("fed", "staged", "shout"), None);
    assert_eq!(t("fed", "counts", "n").as_deref(), Some("Int64"));
    assert_eq!(t("fed", "counts", "last").as_deref(), Some("Date32"));
    // SQLite: integers are 64-bit, and CAST follows affinity (not trusted).
    assert_eq!(t("fed", "lite_copy", "id").as_deref(), Some("Int64"));
    assert_eq!(t("fed", "lite_copy", "a"), None);
    // A source whose relation the project's seed loads has the seed's types.
    assert_eq!(t("fed_source", "raw__people", "amount").as_deref(), Some("Decimal128(4, 2)"));
    // A sub-query pushed whole to pg: its columns traced through its own SQL.
    assert_eq!(t("fed_pushed", "dvt_q1", "n").as_deref(), Some("Int64"));
    assert_eq!(t("fed_pushed", "dvt_q1", "lo").as_deref(), Some("Decimal128(12, 2)"));
    assert_eq!(t("fed_pushed", "dvt_q1", "name").as_deref(), Some("Utf8"));
}
