//! dbt behaviours that public packages rely on, checked byte for byte against
//! what dbt-core 1.11 compiles for the same project (`fixtures/dbt_compat/expected`).

use crate::support::*;

#[test]
fn datetime_quoting_and_jinja_in_test_arguments_compile_as_dbt_does() {
    let (_tmp, dir) = scratch_copy(&fixture("dbt_compat"));
    let r = dvtc_env(&dir, &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let compiled = dir.join("target/compiled/compat_proj/models");
    let expected = fixture("dbt_compat").join("expected");
    for (ours, theirs) in [
        ("dates.sql", "dates.sql"),
        ("schema.yml/accepted_values_dates_id__False___1_2_.sql", "accepted_values_dates_id__False___1_2_.sql"),
        ("schema.yml/expr_true_dates_id_var_min_id_.sql", "expr_true_dates_id_var_min_id_.sql"),
    ] {
        let got = std::fs::read_to_string(compiled.join(ours)).unwrap_or_else(|e| panic!("{ours}: {e}"));
        let want = std::fs::read_to_string(expected.join(theirs)).unwrap();
        assert_eq!(got, want, "{ours} differs from dbt's");
    }
    // The severity was rendered from Jinja at parse time: a warning on DuckDB.
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/plan.json")).unwrap()).unwrap();
    let test = plan["nodes"].as_object().unwrap().values().find(|n| n["name"] == "expr_true_dates_id_var_min_id_").expect("test node");
    assert_eq!(test["test"]["severity"], "WARN", "{test}");
}

#[test]
fn bad_datetime_use_is_a_located_error() {
    let (_tmp, dir) = scratch_copy(&fixture("dbt_compat"));
    std::fs::write(dir.join("models/bad.sql"), "\n{{ modules.datetime.date(2023, 2, 29) }}\n").unwrap();
    let r = dvtc_env(&dir, &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("models/bad.sql:2") && r.stderr.contains("day is out of range for month"), "{}", r.stderr);
}

/// dbt scopes `var()` by the node being rendered, also inside another package's
/// macro (dbt-core 1.11 compiles `a.sql` to `'MISSING'` and the package's own
/// `b.sql` to `'|'` here), and `none` is a valid default.
#[test]
fn vars_are_scoped_by_the_node_being_rendered() {
    let dir = project(&[
        ("dbt_project.yml", "name: vt\nprofile: vt\nversion: '1.0'\nvars:\n  pkg:\n    sep: '|'\n"),
        ("packages.yml", "packages:\n  - local: pkg\n"),
        ("profiles.yml", "vt:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: dev.duckdb\n      schema: main\n"),
        ("pkg/dbt_project.yml", "name: pkg\nversion: '1.0'\n"),
        (
            "pkg/macros/m.sql",
            "{% macro s() %}{{ var('sep', 'MISSING') }}{% endmacro %}\n{% macro n() %}{{ var('nothing', none) is none }}{% endmacro %}\n",
        ),
        ("models/a.sql", "select '{{ pkg.s() }}' as x, {{ pkg.n() }} as n\n"),
        ("pkg/models/b.sql", "select '{{ pkg.s() }}' as y\n"),
    ]);
    let r = dvtc_env(dir.path(), &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let read = |p: &str| std::fs::read_to_string(dir.path().join("target/compiled").join(p)).unwrap();
    assert_eq!(read("vt/models/a.sql"), "select 'MISSING' as x, True as n");
    assert_eq!(read("pkg/models/b.sql"), "select '|' as y");
}

/// Jinja2 and dbt behaviours large packages (Tuva, elementary) rely on: macros are truthy,
/// `return(none)` returns none, unary plus, `builtins.ref.config`, `graph` as a shared cache,
/// `.copy()`, dispatch to a namespace that is not a package, graph nodes with their
/// relation, Jinja in property-file configs, and missing vars being None while parsing.
#[test]
fn jinja_and_context_behaviours_of_large_packages() {
    let dir = base_project(&[
        (
            "macros/m.sql",
            "{% macro pick() %}{% set m = dbt.type_timestamp or dbt_utils.type_timestamp %}{{ return(m()) }}{% endmacro %}\n\
             {% macro maybe(x) %}{% if x is none %}{{ return(none) }}{% endif %}{{ return('got ' ~ x) }}{% endmacro %}\n\
             {% macro find(n) %}{% if not execute %}{{ return(none) }}{% endif %}{% for g in graph['nodes'].values() %}{% if g.name == n %}{{ return(g) }}{% endif %}{% endfor %}{{ return(none) }}{% endmacro %}\n\
             {% macro cached(k, v) %}{% do graph.setdefault('pkg_cache', {}).update({k: v}) %}{{ return(graph.setdefault('pkg_cache', {}).get(k)) }}{% endmacro %}\n\
             {% macro sub(s) %}{{ return(adapter.dispatch('sub', 'macros')(s)) }}{% endmacro %}\n\
             {% macro default__sub(s) %}substring({{ s }}){% endmacro %}\n\
             {% macro postgres__sub(s) %}substr({{ s }}){% endmacro %}\n",
        ),
        ("models/base.sql", "{{ config(alias='base_tbl') }}select 1 as id"),
        (
            "models/uses.sql",
            "select '{{ pick() }}' as a, '{{ maybe(none) is none }}' as b, {{ +1 }} as c, '{{ builtins.ref.config.dependencies['proj'].version }}' as d, \
             '{{ cached('k', 'v') }}' as e, '{{ {'x': 1}.copy().pop('x') }}' as f, {{ sub('s') }} as g, '{{ find('base').alias }}.{{ find('base').schema }}' as h, '{{ find('base').original_file_path }}|{{ find('base').path }}' as i, \
             '{% if execute %}{% set c = find('base').columns['id'] %}{{ c.config.meta.data_type }}|{{ c.meta.pk }}|{{ c.config.tags }}{% endif %}' as j \
             from {{ ref('base') }}",
        ),
        ("models/off.sql", "{{ config(enabled=false) }}select {{ var('not_set_anywhere') }}"),
        ("models/off2.sql", "select 2 as id"),
        (
            "models/props.yml",
            "version: 2\nmodels:\n  - name: base\n    config:\n      materialized: \"{{ 'table' if target.name == 'pg' else 'view' }}\"\n    columns:\n      - name: id\n        meta: {pk: true}\n        config: {meta: {data_type: int}, tags: [key]}\n  - name: off2\n    config:\n      enabled: |\n        {{ target.name != 'pg' }}\n",
        ),
    ]);
    std::fs::write(dir.path().join("dbt_project.yml"), "name: proj\nversion: '1.2.3'\nprofile: proj\n").unwrap();
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sql = std::fs::read_to_string(dir.path().join("target/compiled/proj/models/uses.sql")).unwrap();
    assert_eq!(
        sql,
        "select 'timestamp' as a, 'True' as b, 1 as c, '1.2.3' as d, 'v' as e, '1' as f, substr(s) as g, 'base_tbl.public' as h, 'models/base.sql|base.sql' as i, 'int|True|['key']' as j from \"db\".\"public\".\"base_tbl\""
    );
    let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/plan.json")).unwrap()).unwrap();
    assert_eq!(plan.nodes["model.proj.base"].materialization.effective, "table");
    assert!(!plan.nodes.contains_key("model.proj.off2"), "disabled by a rendered `enabled:`");
    // Column `meta` and `config: {meta, tags}` reach dbt's manifest as dbt writes them.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/manifest.json")).unwrap()).unwrap();
    let id = &manifest["nodes"]["model.proj.base"]["columns"]["id"];
    assert_eq!(id["meta"], serde_json::json!({"pk": true, "data_type": "int"}));
    assert_eq!(id["config"], serde_json::json!({"meta": {"pk": true, "data_type": "int"}, "tags": ["key"]}));
}

/// A generic test on an ephemeral model reads the model's CTE, injected as dbt injects it
/// (before, the test's query named a CTE it did not define).
#[test]
fn generic_tests_on_ephemeral_models_inline_the_model() {
    let dir = base_project(&[
        ("models/eph.sql", "{{ config(materialized='ephemeral') }}\nselect 1 as id"),
        ("models/eph.yml", "version: 2\nmodels:\n  - name: eph\n    columns:\n      - name: id\n        tests: [not_null]\n"),
    ]);
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sql = std::fs::read_to_string(dir.path().join("target/compiled/proj/models/eph.yml/not_null_eph_id.sql")).unwrap();
    assert!(sql.contains("with __dbt__cte__eph as (\n\nselect 1 as id\n) select id\nfrom __dbt__cte__eph"), "{sql}");
}

/// A generic test may mutate a list it was given (dbt_utils' `at_least_one` appends
/// to `group_by_columns`): each test gets its own mutable copy, as dbt's Python list.
#[test]
fn generic_tests_mutate_their_own_list_arguments() {
    let test = "{% test grouped(model, column_name, group_by_columns=[]) %}\n{% set cols = group_by_columns %}\n\
                {% do cols.append(column_name) %}\nselect {{ cols | join(', ') }} from {{ model }}\n{% endtest %}\n";
    let props = "version: 2\nmodels:\n  - name: m\n    columns:\n      - name: id\n        tests:\n\
                 \x20         - grouped: {group_by_columns: [a]}\n      - name: v\n        tests:\n\
                 \x20         - grouped: {group_by_columns: [a]}\n";
    let dir = base_project(&[("models/m.sql", "select 1 as id, 2 as v, 3 as a"), ("models/m.yml", props), ("macros/grouped.sql", test)]);
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let compiled = dir.path().join("target/compiled/proj/models/m.yml");
    for (file, columns) in [("grouped_m_id__a.sql", "a, id"), ("grouped_m_v__a.sql", "a, v")] {
        let sql = std::fs::read_to_string(compiled.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(sql.contains(&format!("select {columns} from")), "{file}: {sql}");
    }
}

/// dbt's manifest keeps a test of a disabled model in `nodes` (disabled, no parents,
/// never run) and lists the disabled model under `disabled`, as dbt-core 1.11
/// does for Stripe's `stg_stripe__credit_note`.
#[test]
fn tests_of_a_disabled_model_are_listed_disabled_as_dbt_lists_them() {
    let (_tmp, dir) = scratch_copy(&fixture("dbt_compat"));
    std::fs::write(dir.join("models/off.sql"), "{{ config(enabled=var('use_off', false)) }}\nselect 1 as id\n").unwrap();
    let yml = "models:\n  - name: off\n    columns:\n      - name: id\n        tests: [not_null, {unique: {config: {enabled: false}}}]\n";
    std::fs::write(dir.join("models/off.yml"), yml).unwrap();
    let r = dvtc_env(&dir, &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
    let (id, test) =
        m["nodes"].as_object().unwrap().iter().find(|(k, _)| k.starts_with("test.compat_proj.not_null_off_id.")).expect("test");
    assert_eq!(test["config"]["enabled"], false, "{test}");
    assert_eq!(test["depends_on"]["nodes"], serde_json::json!([]));
    assert_eq!(test["attached_node"], "model.compat_proj.off");
    assert_eq!(test["test_metadata"]["kwargs"]["model"], "{{ get_where_subquery(ref('off')) }}");
    assert_eq!(m["disabled"]["model.compat_proj.off"][0]["name"], "off");
    // Also a test disabled by its own config, when its model is disabled (Tuva's case).
    let own = m["nodes"].as_object().unwrap().iter().find(|(k, _)| k.starts_with("test.compat_proj.unique_off_id.")).expect("unique");
    assert_eq!(own.1["config"]["enabled"], false);
    // Not in the plan, nothing compiled for it.
    let plan = std::fs::read_to_string(dir.join("target/plan.json")).unwrap();
    assert!(!plan.contains(id.as_str()) && !plan.contains("model.compat_proj.off"));
    // Enabled with `--vars`, both are ordinary nodes again.
    let r = dvtc_env(&dir, &["compile", "--vars", "{use_off: true}"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["nodes"][id.as_str()]["config"]["enabled"], true);
    assert_eq!(m["nodes"][id.as_str()]["depends_on"]["nodes"], serde_json::json!(["model.compat_proj.off"]));
    assert!(m["disabled"].as_object().unwrap().is_empty());
}

/// What dbt-project-evaluator relies on (each checked against dbt-core 1.11's
/// compile of that package): `set_strict`/`zip_strict`, a model's `time_spine`
/// in `graph`, a test argument that is one `{{ expr }}` keeping its value (a
/// list from `var()`), and a versioned ephemeral model's CTE named after its
/// default alias `<name>_v<v>`.
#[test]
fn graph_and_argument_behaviours_dbt_project_evaluator_relies_on() {
    let (_tmp, dir) = scratch_copy(&fixture("dbt_compat"));
    let files = [
        ("models/spine.sql", "select 1 as date_day\n"),
        ("models/eph.sql", "{{ config(materialized='ephemeral') }}\nselect 1 as id, 'b' as kind\n"),
        (
            "models/uses.sql",
            "{% set spines = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model') | rejectattr('time_spine', 'none') | map(attribute='name') | list %}\n\
             select '{{ spines | join(',') }}' as spines, '{{ set_strict(['a', 'b', 'a']) | join(',') }}' as s, \
             '{{ zip_strict([1, 2], ['x', 'y']) | map('join', ':') | join(',') }}' as z, \
             '{{ 'model.compat_proj.uses' in selected_resources }}/{{ 'model.compat_proj.spine' in selected_resources }}' as sel, * from {{ ref('eph', v=2) }}\n",
        ),
        (
            "models/more.yml",
            "models:\n  - name: spine\n    time_spine: {standard_granularity_column: date_day}\n  - name: eph\n    latest_version: 2\n    versions: [{v: 1}, {v: 2}]\n    columns:\n      - name: kind\n        tests:\n          - accepted_values:\n              arguments:\n                values: \"{{ var('kinds') }}\"\n",
        ),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text).unwrap();
    }
    std::fs::rename(dir.join("models/eph.sql"), dir.join("models/eph_v2.sql")).unwrap();
    std::fs::write(dir.join("models/eph_v1.sql"), "{{ config(materialized='ephemeral') }}\nselect 0 as id, 'a' as kind\n").unwrap();
    let r = dvtc_env(&dir, &["compile", "--vars", "{kinds: [a, b]}"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let compiled = std::fs::read_to_string(dir.join("target/compiled/compat_proj/models/uses.sql")).unwrap();
    assert!(compiled.contains("'spine' as spines"), "{compiled}");
    assert!(compiled.contains("'a,b' as s") && compiled.contains("'1:x,2:y' as z"), "{compiled}");
    assert!(compiled.contains("'True/True' as sel"), "{compiled}");
    // `selected_resources` is what the command selected.
    let r = dvtc_env(&dir, &["compile", "-s", "uses", "--vars", "{kinds: [a, b]}"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let compiled = std::fs::read_to_string(dir.join("target/compiled/compat_proj/models/uses.sql")).unwrap();
    assert!(compiled.contains("'True/False' as sel"), "{compiled}");
    assert!(compiled.contains("with __dbt__cte__eph_v2 as (") && compiled.contains("from __dbt__cte__eph_v2"), "{compiled}");
    let tests = dir.join("target/compiled/compat_proj/models/more.yml");
    let test = std::fs::read_dir(&tests).unwrap().next().expect("the accepted_values test").unwrap().path();
    let sql = std::fs::read_to_string(&test).unwrap();
    assert!(sql.contains("'a','b'"), "the list from var(), not its text: {sql}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["nodes"]["model.compat_proj.spine"]["time_spine"]["standard_granularity_column"], "date_day");
}

/// Fields of dbt's manifest that dbt-core 1.11 fills at parse time and tools read
/// (dbt-project-evaluator finds documented models by `patch_path`; lineage tools
/// read a test's `refs`/`sources`): checked against dbt-core 1.11's manifest of the
/// same shapes.
#[test]
fn manifest_fields_of_patched_nodes_tests_and_seeds_are_dbts() {
    let yml = "version: 2\nsources:\n  - name: raw\n    connection: pg\n    tables:\n      - name: events\n        columns:\n          - name: id\n            tests: [unique]\nmodels:\n  - name: base\n    description: '{{ doc(\"base_doc\") }}'\n    columns:\n      - name: id\n        description: \"Key: {{ doc('proj', 'id_doc') }}\"\n        tests:\n          - not_null\n          - relationships:\n              to: ref('other')\n              field: id\n          - accepted_values:\n              values: [1, 2]\n  - name: other\n    columns:\n      - name: id\n        tests: [unique, not_null]\n";
    let dir = base_project(&[
        ("models/third.sql", "select 1 as id\n"),
        ("models/docs.md", "{% docs base_doc %}The base.{% enddocs %}\n{% docs id_doc %}The key.{% enddocs %}\n"),
        ("models/mixed.sql", "select * from {{ ref('other') }} join {{ source('raw', 'events') }} using (id)\n"),
        ("models/base.sql", "{{ config(tags=['z', 'a', 'z']) }}\nselect 1 as id\n"),
        ("models/other.sql", "select 1 as id\n"),
        ("models/schema.yml", yml),
        ("seeds/codes.csv", "id,name\n1,a\n\n"),
        ("tests/no_rows.sql", "select * from {{ ref('base') }} where id < 0\n\n"),
    ]);
    let r = dvtc(dir.path(), &["parse"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/manifest.json")).unwrap()).unwrap();
    let nodes = m["nodes"].as_object().unwrap();
    assert_eq!(nodes["model.proj.base"]["patch_path"], "proj://models/schema.yml");
    assert_eq!(nodes["model.proj.third"]["patch_path"], serde_json::Value::Null, "no properties entry");
    assert_eq!(nodes["model.proj.base"]["tags"], serde_json::json!(["z", "a"]), "in the order given, each once");
    assert_eq!(nodes["model.proj.base"]["doc_blocks"], serde_json::json!(["doc.proj.base_doc"]));
    assert_eq!(nodes["model.proj.base"]["columns"]["id"]["doc_blocks"], serde_json::json!(["doc.proj.id_doc"]));
    assert_eq!(nodes["model.proj.base"]["columns"]["id"]["description"], "Key: The key.");
    // dbt lists what a node reads sources first, then refs; `parent_map` sorts.
    assert_eq!(nodes["model.proj.mixed"]["depends_on"]["nodes"], serde_json::json!(["source.proj.raw.events", "model.proj.other"]));
    assert_eq!(m["parent_map"]["model.proj.mixed"], serde_json::json!(["model.proj.other", "source.proj.raw.events"]));
    // Inferred from the tests: `unique` and `not_null` make a key, `not_null` alone does not.
    assert_eq!(nodes["model.proj.other"]["primary_key"], serde_json::json!(["id"]));
    assert_eq!(nodes["model.proj.base"]["primary_key"], serde_json::json!([]));
    let test = |prefix: &str| nodes.iter().find(|(k, _)| k.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}")).1;
    let ref_of = |name: &str| serde_json::json!({"name": name, "package": null, "version": null});

    let not_null = test("test.proj.not_null_base_id.");
    assert_eq!(not_null["raw_code"], "{{ test_not_null(**_dbt_generic_test_kwargs) }}");
    assert_eq!(not_null["refs"], serde_json::json!([ref_of("base")]));
    // dbt's parse of not_null renders nothing; its compile reaches get_where_subquery.
    assert_eq!(not_null["depends_on"]["macros"], serde_json::json!(["macro.dbt.test_not_null"]));
    // Other tests render their arguments: the `to:` relation, then the tested one.
    let rel = test("test.proj.relationships_base_id__id__ref_other_.");
    assert_eq!(rel["raw_code"], "{{ test_relationships(**_dbt_generic_test_kwargs) }}");
    assert_eq!(rel["refs"], serde_json::json!([ref_of("other"), ref_of("base")]));
    assert_eq!(rel["depends_on"]["nodes"], serde_json::json!(["model.proj.other", "model.proj.base"]), "in dbt's order, not sorted");
    assert_eq!(rel["depends_on"]["macros"], serde_json::json!(["macro.dbt.test_relationships", "macro.dbt.get_where_subquery"]));
    assert_eq!(test("test.proj.accepted_values_base_id__1__2.")["refs"], serde_json::json!([ref_of("base")]));
    let on_source = test("test.proj.source_unique_raw_events_id.");
    assert_eq!(on_source["refs"], serde_json::json!([]));
    assert_eq!(on_source["sources"], serde_json::json!([["raw", "events"]]));

    // Files are read stripped, as dbt reads them; a seed's checksum is its stripped content's.
    assert_eq!(test("test.proj.no_rows")["raw_code"], "select * from {{ ref('base') }} where id < 0");
    assert_eq!(
        nodes["seed.proj.codes"]["checksum"],
        serde_json::json!({"name": "sha256", "checksum": "8785bd65e2099267252e07a04b3ad2eb72f692775aae46d95ff6a49f0a864e4f"})
    );
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/manifest.json")).unwrap()).unwrap();
    let compiled = m["nodes"].as_object().unwrap().iter().find(|(k, _)| k.starts_with("test.proj.not_null_base_id.")).unwrap().1;
    assert_eq!(compiled["depends_on"]["macros"], serde_json::json!(["macro.dbt.test_not_null", "macro.dbt.get_where_subquery"]));
    assert_eq!(compiled["raw_code"], "{{ test_not_null(**_dbt_generic_test_kwargs) }}");
}

/// dbt's fqn of a source holds the folders of its properties file, a snapshot's its
/// file name, an analysis's `analysis`; the project file's configs follow them.
#[test]
fn sources_and_snapshots_have_dbts_fqn_and_configs_follow_it() {
    let project_file = "name: proj\nversion: '1.0'\nprofile: proj\nsources:\n  proj:\n    staging:\n      +enabled: false\nsnapshots:\n  proj:\n    snaps:\n      s1:\n        +tags: [from_file_path]\n";
    let dir = base_project(&[
        ("dbt_project.yml", project_file),
        (
            "models/top.yml",
            "sources:\n  - name: raw\n    description: Raw events\n    loader: fivetran\n    connection: pg\n    tables: [{name: events}]\n",
        ),
        ("models/staging/legacy.yml", "sources:\n  - name: legacy\n    connection: pg\n    tables: [{name: old}]\n"),
        ("analyses/sub/top.sql", "select 1 as id\n"),
        (
            "snapshots/snaps.sql",
            "{% snapshot s1 %}\n{{ config(target_schema='snap', unique_key='id', strategy='check', check_cols='all') }}\nselect 1 as id\n{% endsnapshot %}\n",
        ),
    ]);
    let r = dvtc(dir.path(), &["parse"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/manifest.json")).unwrap()).unwrap();
    let events = &m["sources"]["source.proj.raw.events"];
    assert_eq!(events["fqn"], serde_json::json!(["proj", "raw", "events"]));
    assert_eq!((events["source_description"].as_str(), events["loader"].as_str()), (Some("Raw events"), Some("fivetran")));
    assert!(m["sources"].get("source.proj.legacy.old").is_none(), "disabled by `sources: proj: staging:`");
    let snap = &m["nodes"]["snapshot.proj.s1"];
    assert_eq!(snap["fqn"], serde_json::json!(["proj", "snaps", "s1"]));
    assert_eq!(snap["tags"], serde_json::json!(["from_file_path"]));
    // An analysis is named by dbt's compiled path for it, `analysis/<path>`.
    let top = &m["nodes"]["analysis.proj.top"];
    assert_eq!(
        (&top["fqn"], &top["path"]),
        (&serde_json::json!(["proj", "analysis", "sub", "top"]), &serde_json::json!("analysis/sub/top.sql"))
    );
    let r = dvtc(dir.path(), &["ls", "--resource-type", "source", "--output", "selector"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(lines(&r.stdout), ["source:proj.raw.events"]);
}
