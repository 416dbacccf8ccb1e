//! dbt's built-in generic tests render without Jinja where they can: the plan and
//! `target/compiled/` are the same as when every test renders through dbt's macros.

use std::path::Path;

use dvt_compiler::compile::{CompileOptions, compile};
use dvt_compiler::loader::{LoadOptions, load};

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

const PROFILES: &str = "p:
  target: pg
  outputs:
    pg: {type: postgres, dbname: analytics, schema: public}
    duck: {type: duckdb, path: lake.duckdb}
    maria: {type: mysql, schema: erp}
";

const SCHEMA: &str = r#"version: 2
sources:
  - name: crm
    connection: pg
    tables:
      - name: customers
        quoting: {identifier: true}
        columns:
          - name: id
            data_tests: [unique, not_null]
models:
  - name: orders
    columns:
      - name: id
        data_tests:
          - unique
          - not_null
          - not_null:
              name: not_null_orders_id_stored
              config: {store_failures: true}
          - not_null:
              name: not_null_orders_id_not_stored
              config: {store_failures: false}
          - unique:
              name: unique_orders_id_where
              config: {where: "id > 0"}
          - unique:
              name: unique_orders_id_limited
              config: {severity: warn, limit: 5, fail_calc: "sum(n_records)"}
      - name: '"Order Status"'
        data_tests:
          - accepted_values:
              values: ["placed", "it's shipped", "o\"k"]
          - accepted_values:
              name: av_unquoted
              arguments:
                values: [1, 2, 30]
                quote: false
          - accepted_values:
              name: av_empty
              values: []
          - accepted_values:
              name: av_from_var
              arguments:
                values: "{{ var('statuses') }}"
          - accepted_values:
              name: av_from_var_as_text
              values: "{{ var('statuses') }}"
          - accepted_values:
              name: av_quote_expression
              values: ['a']
              quote: "{{ true }}"
      - name: customer_id
        data_tests:
          - relationships:
              to: source('crm', 'customers')
              field: id
          - relationships:
              name: rel_to_self
              to: ref("orders")
              field: '"Order Status"'
          - relationships:
              name: rel_with_package
              arguments: {to: " ref('p', 'orders') ", field: id}
          - relationships:
              name: rel_to_ephemeral
              to: ref('eph')
              field: id
          - relationships:
              name: rel_other_database
              to: ref('lake_orders')
              field: id
  - name: lake_orders
    columns:
      - name: id
        data_tests: [unique, not_null]
  - name: maria_orders
    columns:
      - name: id
        data_tests: [unique, not_null, {accepted_values: {values: [a, b]}}]
  - name: eph
    columns:
      - name: id
        data_tests: [unique, not_null]
  - name: cross
    columns:
      - name: id
        data_tests: [unique]
"#;

fn project(root: &Path, extra: &[(&str, &str)]) {
    write(
        root,
        &[
            ("dbt_project.yml", "name: p\nprofile: p\nvars:\n  statuses: ['x', 'y']\n"),
            ("profiles.yml", PROFILES),
            ("models/schema.yml", SCHEMA),
            ("models/orders.sql", "select 1 as id, 'placed' as \"Order Status\", 1 as customer_id"),
            ("models/lake_orders.sql", "{{ config(target='duck', materialized='table') }}\nselect 1 as id"),
            ("models/maria_orders.sql", "{{ config(target='maria') }}\nselect 1 as id"),
            ("models/eph.sql", "{{ config(materialized='ephemeral') }}\nselect 1 as id"),
            // Reads two databases: a federated node, whose tests render with fragment names.
            (
                "models/cross.sql",
                "{{ config(materialized='table') }}\nselect o.id from {{ ref('orders') }} o join {{ ref('lake_orders') }} l on o.id = l.id",
            ),
        ],
    );
    write(root, extra);
}

/// The plan (as JSON) and the compiled files (path → SQL) of the project at `root`.
fn compiled(root: &Path, jinja_only: bool) -> (String, Vec<(String, String)>) {
    let opts = LoadOptions { project_dir: root.to_path_buf(), profiles_dir: Some(root.to_path_buf()), ..Default::default() };
    let (project, jinja, graph) = load(&opts).unwrap_or_else(|e| panic!("{e}"));
    let c = compile(&project, &jinja, &graph, &CompileOptions { jinja_builtin_tests: jinja_only, ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    let files = c.files.iter().map(|(path, id)| (path.clone(), c.plan.compiled_sql(id).unwrap_or_default().to_string())).collect();
    (serde_json::to_string_pretty(&c.plan).unwrap(), files)
}

#[test]
fn built_in_tests_render_natively_as_dbt_macros_render_them() {
    let work = tempfile::tempdir().unwrap();
    project(work.path(), &[]);
    let (native_plan, native_files) = compiled(work.path(), false);
    let (jinja_plan, jinja_files) = compiled(work.path(), true);
    let tests = native_files.iter().filter(|(p, _)| p.contains("schema.yml/")).count();
    assert!(tests >= 20, "{native_files:?}");
    for ((path, native), (_, jinja)) in native_files.iter().zip(&jinja_files) {
        assert_eq!(native, jinja, "{path}");
    }
    assert_eq!(native_files.len(), jinja_files.len());
    similar_asserts(&native_plan, &jinja_plan);
    // The cases Jinja renders differently from the plain ones did come out as dbt renders them.
    let file = |name: &str| &native_files.iter().find(|(p, _)| p.ends_with(&format!("/{name}.sql"))).unwrap().1;
    assert!(file("not_null_orders_id_stored").contains("select *\n"), "{}", file("not_null_orders_id_stored"));
    assert!(file("unique_orders_id_where").contains("where id > 0) dbt_subquery"), "{}", file("unique_orders_id_where"));
    assert!(file("av_unquoted").contains("    1,2,30\n)"), "{}", file("av_unquoted"));
    assert!(file("av_from_var").contains("'x','y'"), "{}", file("av_from_var"));
    assert!(file("rel_to_ephemeral").contains("__dbt__cte__eph"), "{}", file("rel_to_ephemeral"));
    assert!(file("rel_with_package").contains("from \"analytics\".\"public\".\"orders\"\n)"), "{}", file("rel_with_package"));
    let to_source = "relationships_orders_customer_id__id__source_crm_customers_";
    assert!(file(to_source).contains("from \"analytics\".\"crm\".\"customers\"\n)"), "{}", file(to_source));
    // Outside `arguments:`, dbt 1.11 renders the value to text, and the loop goes over its characters.
    assert!(file("av_from_var_as_text").contains("'[',''','x'"), "{}", file("av_from_var_as_text"));
}

#[test]
fn a_project_that_overrides_a_built_in_test_macro_gets_its_own() {
    let work = tempfile::tempdir().unwrap();
    let custom = "{% macro default__test_unique(model, column_name) %}select {{ column_name }} from {{ model }} -- mine{% endmacro %}";
    project(work.path(), &[("macros/unique.sql", custom)]);
    let (_, files) = compiled(work.path(), false);
    let unique = &files.iter().find(|(p, _)| p.ends_with("/unique_orders_id.sql")).unwrap().1;
    assert!(unique.contains("-- mine"), "{unique}");
    assert_eq!(compiled(work.path(), true).1, files);
}

/// Plans compared line by line, so that a difference shows where it is.
fn similar_asserts(a: &str, b: &str) {
    if a != b {
        let first = a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(0);
        let around = |t: &str| t.lines().skip(first.saturating_sub(5)).take(12).collect::<Vec<_>>().join("\n");
        panic!("the plans differ at line {}:\n--- native\n{}\n--- jinja\n{}", first + 1, around(a), around(b));
    }
}
