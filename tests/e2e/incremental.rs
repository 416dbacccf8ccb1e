//! Incremental compile: after a model file changes, `dvtc compile` compiles that
//! model alone and splices it into the last compile's artifacts; the result must
//! be what a cold compile (`--no-partial-parse`) writes, byte for byte.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::support::*;

const REUSED_ONE: &str = "reused the last compile; 1 model(s) compiled again";
const REUSED: &str = "reused the last compile;";

fn files() -> Vec<(&'static str, &'static str)> {
    let mut f = BASE.to_vec();
    f.extend([
        (
            "models/sources.yml",
            "version: 2\nsources:\n  - name: raw\n    connection: pg\n    tables:\n      - name: orders\n  - name: lake\n    connection: duck\n    tables:\n      - name: events\n",
        ),
        ("models/stg_orders.sql", "select id, amount, status from {{ source('raw', 'orders') }}\n"),
        ("models/eph_paid.sql", "{{ config(materialized='ephemeral') }}\nselect * from {{ ref('stg_orders') }} where status = 'paid'\n"),
        (
            "models/orders.sql",
            "{{ config(materialized='incremental', unique_key='id', tags=['core']) }}\n\nselect id, amount * {{ var('rate', 2) }} as amount\nfrom {{ ref('eph_paid') }}\n{% if is_incremental() %} where id > (select max(id) from {{ this }}) {% endif %}\n",
        ),
        ("models/wide.sql", "select o.id, o.amount, '{{ env_var('INC_COLOR', 'red') }}' as color from {{ ref('orders') }} o\n"),
        ("models/stg_events.sql", "{{ config(target='duck') }}\nselect id, kind from {{ source('lake', 'events') }}\n"),
        // Federated: its upstreams live on two outputs.
        ("models/joined.sql", "select e.id, e.kind, s.amount from {{ ref('stg_events') }} e join {{ ref('stg_orders') }} s on s.id = e.id\n"),
        ("models/last.sql", "select count(*) as n from {{ ref('stg_orders') }}\n"),
        (
            "models/schema.yml",
            "version: 2\nmodels:\n  - name: orders\n    columns:\n      - name: id\n        data_tests: [unique, not_null]\n  - name: wide\n    columns:\n      - name: color\n        data_tests:\n          - accepted_values:\n              values: ['red', 'blue']\nunit_tests:\n  - name: orders_doubles\n    model: orders\n    given:\n      - input: ref('eph_paid')\n        rows:\n          - {id: 1, amount: 3, status: paid}\n    expect:\n      rows:\n        - {id: 1, amount: 6}\n",
        ),
    ]);
    f
}

/// Sets every file's modification time 10 s back: fresh files count as changed
/// (their time is too close to the last stamp to prove anything).
fn age(dir: &Path) {
    let then = SystemTime::now() - Duration::from_secs(10);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_name() == "target" {
            continue;
        }
        if p.is_dir() {
            age(&p);
        } else {
            std::fs::File::options().write(true).open(&p).unwrap().set_modified(then).unwrap();
        }
    }
}

fn compile(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> String {
    let mut args = vec!["compile"];
    args.extend_from_slice(extra);
    let r = dvtc_env(dir, &args, env);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    r.stdout
}

/// Compiles cold and asserts the artifacts are what is on disk now (the
/// manifest's two timestamps and its invocation id aside).
fn assert_same_as_cold(dir: &Path, env: &[(&str, &str)]) {
    let target = dir.join("target");
    let read = |p: &str| std::fs::read(target.join(p)).unwrap();
    let (plan, manifest) = (read("plan.json"), read("manifest.json"));
    let compiled = tree_of(&target.join("compiled"));
    let out = compile(dir, env, &["--no-partial-parse"]);
    assert!(!out.contains("reused"), "{out}");
    assert!(read("plan.json") == plan, "plan.json differs from a cold compile's");
    let stamps = regex::bytes::Regex::new(r#""(generated_at|invocation_started_at|invocation_id)":"[^"]*""#).unwrap();
    let cold = read("manifest.json");
    let (a, b) = (stamps.replace_all(&manifest, &b""[..]), stamps.replace_all(&cold, &b""[..]));
    assert!(a == b, "manifest.json differs from a cold compile's");
    assert_eq!(compiled, tree_of(&target.join("compiled")), "target/compiled differs from a cold compile's");
}

fn tree_of(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree_of(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_changed_model_is_compiled_alone_and_the_artifacts_equal_a_cold_compile() {
    let dir = project(&files());
    let d = dir.path();
    age(d);
    let first = compile(d, &[], &[]);
    assert!(!first.contains("reused"), "{first}");
    assert!(d.join("target/.dvt_partial").is_file(), "a whole compile saves its state");

    // Nothing changed: the artifacts stand (the manifest gets new timestamps).
    let again = compile(d, &[], &[]);
    assert!(again.contains("reused the last compile; 0 model(s) compiled again"), "{again}");
    assert!(again.contains("nodes: "), "the summary is printed: {again}");

    // A model with config(), an inlined ephemeral upstream, tests and a unit test.
    edit(d, "models/orders.sql", "as amount", "as amount, 1 as version");
    let out = compile(d, &[], &[]);
    assert!(out.contains(REUSED_ONE), "{out}");
    let compiled = std::fs::read_to_string(d.join("target/compiled/proj/models/orders.sql")).unwrap();
    assert!(compiled.contains("1 as version") && compiled.contains("__dbt__cte__eph_paid"), "{compiled}");
    // Two more edits, before and after it in the artifacts, before comparing (files
    // modified within 2 s of the last compile are compiled again too: see `RACY_NS`).
    edit(d, "models/last.sql", "count(*)", "count(id)");
    assert!(compile(d, &[], &[]).contains(REUSED));
    edit(d, "models/wide.sql", "o.amount,", "o.amount, o.amount / 2 as half,");
    let out = compile(d, &[], &[]);
    assert!(out.contains(REUSED), "{out}");
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("target/plan.json")).unwrap()).unwrap();
    assert!(plan["nodes"]["model.proj.last"]["compiled_sql"].as_str().unwrap().contains("count(id)"));
    assert_same_as_cold(d, &[]);
}

#[test]
fn changes_that_reach_other_nodes_compile_the_whole_project() {
    let dir = project(&files());
    let d = dir.path();
    let cases: [(&str, &str, &str, &str); 6] = [
        // A new ref changes the DAG.
        ("models/last.sql", "from {{ ref('stg_orders') }}", "from {{ ref('stg_orders') }} join {{ ref('orders') }} using (id)", "a ref"),
        // config() changes the relation, materialization or tags.
        ("models/orders.sql", "tags=['core']", "tags=['core', 'x']", "config()"),
        // Inlined into `orders`.
        ("models/eph_paid.sql", "'paid'", "'settled'", "an ephemeral"),
        // Read by a federated node (whose fragment types trace through its SQL).
        ("models/stg_orders.sql", "amount,", "amount, amount as amount2,", "an upstream of federation"),
        // Federated itself.
        ("models/joined.sql", "e.kind,", "e.kind as event_kind,", "a federated model"),
        // Properties.
        ("models/schema.yml", "[unique, not_null]", "[unique]", "a properties file"),
    ];
    for (file, from, to, what) in cases {
        age(d);
        compile(d, &[], &[]);
        edit(d, file, from, to);
        let out = compile(d, &[], &[]);
        assert!(!out.contains("reused"), "{what}: {out}");
        assert_same_as_cold(d, &[]);
    }
    // A file added or removed.
    age(d);
    compile(d, &[], &[]);
    std::fs::write(d.join("models/extra.sql"), "select 1 as x\n").unwrap();
    let out = compile(d, &[], &[]);
    assert!(!out.contains("reused"), "{out}");
    std::fs::remove_file(d.join("models/extra.sql")).unwrap();
    assert!(!compile(d, &[], &[]).contains("reused"));
    // A compiled SQL file removed behind DVT's back is written again.
    assert!(compile(d, &[], &[]).contains("reused"));
    let compiled = d.join("target/compiled/proj/models/last.sql");
    std::fs::remove_file(&compiled).unwrap();
    assert!(!compile(d, &[], &[]).contains("reused"));
    assert!(compiled.is_file(), "a whole compile writes it again");
    let semantic = d.join("target/semantic_manifest.json");
    std::fs::remove_file(&semantic).unwrap();
    assert!(!compile(d, &[], &[]).contains("reused"));
    assert!(semantic.is_file(), "a whole compile writes it again");
    // Other options.
    assert!(!compile(d, &[], &["--vars", "{rate: 3}"]).contains("reused"));
    assert!(compile(d, &[], &["--vars", "{rate: 3}"]).contains("reused"));
    assert!(!compile(d, &[], &[]).contains("reused"), "the state is keyed by the options");
}

#[test]
fn environment_variables_templates_read_are_part_of_the_state() {
    let dir = project(&files());
    let d = dir.path();
    age(d);
    compile(d, &[("INC_COLOR", "red")], &[]);
    assert!(compile(d, &[("INC_COLOR", "red")], &[]).contains("reused"));
    // A variable a model read changed: everything is compiled again.
    let out = compile(d, &[("INC_COLOR", "navy")], &[]);
    assert!(!out.contains("reused"), "{out}");
    let wide = std::fs::read_to_string(d.join("target/compiled/proj/models/wide.sql")).unwrap();
    assert!(wide.contains("'navy' as color"), "{wide}");
    // A model that starts reading a variable while compiled alone: later changes of it count.
    age(d);
    compile(d, &[("INC_COLOR", "navy")], &[]);
    edit(d, "models/last.sql", "as n", "as n, '{{ env_var('INC_NEW', 'a') }}' as tag");
    assert!(compile(d, &[("INC_COLOR", "navy")], &[]).contains(REUSED_ONE));
    let out = compile(d, &[("INC_COLOR", "navy"), ("INC_NEW", "b")], &[]);
    assert!(!out.contains("reused"), "{out}");
    let last = std::fs::read_to_string(d.join("target/compiled/proj/models/last.sql")).unwrap();
    assert!(last.contains("'b' as tag"), "{last}");
    // Values are stored as digests, never as written.
    let state = std::fs::read(d.join("target/.dvt_partial")).unwrap();
    assert!(!state.windows(4).any(|w| w == b"navy"), "an environment value reached the state file");
}

#[test]
fn templates_that_read_the_time_or_the_graph_are_never_reused() {
    let b = ("models/b.sql", "select * from {{ ref('a') }}");
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![("models/a.sql", "select '{{ run_started_at }}' as at"), b],
        vec![("models/a.sql", "select {{ graph.nodes | length }} as n"), b],
        // Rendered while loading: the value is baked into the node.
        vec![
            ("models/a.sql", "select 1 as id"),
            b,
            ("models/a.yml", "version: 2\nmodels:\n  - name: a\n    description: \"as of {{ run_started_at }}\"\n"),
        ],
        // A generic test whose macro reads the clock (its compiled SQL would go stale).
        vec![
            ("models/a.sql", "select 1 as id"),
            b,
            (
                "macros/recent.sql",
                "{% test recent(model, column_name) %}\nselect * from {{ model }} where {{ column_name }} > '{{ modules.datetime.datetime.now() }}'\n{% endtest %}\n",
            ),
            ("models/a.yml", "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n        data_tests: [recent]\n"),
        ],
    ];
    for files in cases {
        let dir = base_project(&files);
        let d = dir.path();
        age(d);
        compile(d, &[], &[]);
        assert!(!d.join("target/.dvt_partial").exists(), "{files:?}: no state is saved");
        assert!(!compile(d, &[], &[]).contains("reused"), "{files:?}");
    }
}

#[test]
fn a_model_that_breaks_is_reported_by_a_whole_compile_and_the_artifacts_stay() {
    let dir = project(&files());
    let d = dir.path();
    age(d);
    compile(d, &[], &[]);
    let plan = std::fs::read(d.join("target/plan.json")).unwrap();
    edit(d, "models/last.sql", "count(*)", "count(*) {{ oops(");
    let r = dvtc(d, &["compile"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("models/last.sql"), "{}", r.stderr);
    assert!(std::fs::read(d.join("target/plan.json")).unwrap() == plan, "a failed compile leaves the plan as it was");
    edit(d, "models/last.sql", "count(*) {{ oops(", "count(*) + 1");
    assert!(compile(d, &[], &[]).contains(REUSED_ONE));
    assert_same_as_cold(d, &[]);
}
