//! dbt 1.8 unit tests: fixtures for every input as CTEs on the model's own
//! target (DuckDB, PostgreSQL, and a federated model whose inputs live on
//! PostgreSQL and MariaDB), typed from the input relations, compared with the
//! expected rows; failures show the row diff and keep `build` from building
//! the model.

use std::path::Path;

use crate::support::*;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn results(root: &Path) -> Vec<(String, String)> {
    let rr: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("target/run_results.json")).unwrap()).unwrap();
    rr["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["unique_id"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
        .collect()
}

const QUICKSTART_UNIT: &str = "unit_tests:
  - name: customers_sum_payments
    model: customers
    given:
      - input: ref('stg_customers')
        rows:
          - {customer_id: 1, first_name: Ann}
          - {customer_id: 2, first_name: Bob}
      - input: ref('stg_orders')
        format: csv
        rows: |
          order_id,customer_id,order_date
          10,1,2024-01-05
          11,1,2024-02-01
      - input: ref('stg_payments')
        format: sql
        rows: |
          select 10 as order_id, 12.5 as amount union all select 11, 7.5
    expect:
      rows:
        - {customer_id: 1, number_of_orders: 2, lifetime_value: 20, first_order: 2024-01-05}
        - {customer_id: 2, number_of_orders: 0, lifetime_value: 0, first_order: null}
";

#[test]
fn unit_tests_on_duckdb_pass_fail_and_gate_the_model() {
    let (dir, root) = scratch_copy(&example("quickstart"));
    write(&root, "models/marts/_unit.yml", QUICKSTART_UNIT);
    let dvtr = |args: &[&str]| -> Run {
        let mut a = args.to_vec();
        a.extend(["--profiles-dir", "."]);
        let mut cmd = std::process::Command::new(bin("dvtr"));
        cmd.current_dir(&root).args(&a).env("HOME", &root).env("QUICKSTART_DIR", dir.path().join("quickstart"));
        cmd.output().unwrap().into()
    };
    // Selection methods.
    for sel in ["test_type:unit", "unit_test:customers_sum_payments", "resource_type:unit_test"] {
        let r = dvtr(&["ls", "-s", sel]);
        assert_eq!(lines(&r.stdout), ["quickstart.marts.customers.customers_sum_payments"], "{sel}: {}", r.stderr);
    }
    let r = dvtr(&["ls", "-s", "test_type:data", "--resource-type", "unit_test"]);
    assert!(lines(&r.stdout).is_empty(), "{}", r.stdout);
    let r = dvtr(&["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let res = results(&root);
    assert!(res.contains(&("unit_test.quickstart.customers.customers_sum_payments".into(), "pass".into())), "{res:?}");
    // dbt's order: the unit test runs before the model it tests.
    let at = |needle: &str| r.stdout.find(needle).unwrap_or_else(|| panic!("{needle}: {}", r.stdout));
    assert!(at("unit_test customers_sum_payments") < at("model customers "), "{}", r.stdout);

    // A wrong expectation fails with the row diff, and `build` does not build the model.
    write(&root, "models/marts/_unit.yml", &QUICKSTART_UNIT.replace("lifetime_value: 20,", "lifetime_value: 21,"));
    let r = dvtr(&["build", "-s", "+customers"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("- expected: 1 | 2 | 21 | 2024-01-05"), "{}", r.stdout);
    assert!(r.stdout.contains("+ actual:   1 | 2 | 20"), "{}", r.stdout);
    let res = results(&root);
    assert!(res.contains(&("unit_test.quickstart.customers.customers_sum_payments".into(), "fail".into())), "{res:?}");
    assert!(res.contains(&("model.quickstart.customers".into(), "skipped".into())), "{res:?}");
    // `test` runs unit tests too; `run` does not.
    let r = dvtr(&["test", "-s", "customers"]);
    assert_eq!(r.code, 1);
    let r = dvtr(&["run", "-s", "customers"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("unit_test"), "{}", r.stdout);
}

#[test]
fn unit_tests_on_postgres_typed_fixtures_overrides_and_a_federated_model() {
    let db = ServiceProject::new("unit");
    let root = db.project.clone();
    for d in ["models", "seeds"] {
        let _ = std::fs::remove_dir_all(root.join(d));
    }
    write(&root, "seeds/pg_seeds/orders_pg.csv", "id,customer_id,ordered_on,amount\n1,1,2024-01-31,10.50\n");
    write(&root, "seeds/maria_seeds/customers_m.csv", "id,name\n1,ann\n");
    write(
        &root,
        "models/next_day.sql",
        "{{ config(materialized='table') }}\nselect id, ordered_on + 1 as next_day, amount * {{ var('rate', 1) }} as scaled, '{{ env_var('DVT_UNIT_REGION', 'eu') }}' as region, {{ today() }} as today\nfrom {{ ref('orders_pg') }}\n{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}\n",
    );
    write(&root, "macros/today.sql", "{% macro today() %}current_date{% endmacro %}\n");
    write(
        &root,
        "models/named.sql",
        "{{ config(materialized='table') }}\nselect o.id, upper(c.name) as name, o.amount from {{ ref('orders_pg') }} o join {{ ref('customers_m') }} c on c.id = o.customer_id\n",
    );
    write(
        &root,
        "models/unit.yml",
        "unit_tests:
  - name: next_day_typed
    model: next_day
    given:
      - input: ref('orders_pg')
        rows:
          - {id: 1, ordered_on: '2024-02-28', amount: '2.50'}
          - {id: 2, ordered_on: '2023-12-31', amount: 1}
    expect:
      rows:
        - {id: 1, next_day: '2024-02-29', scaled: 2.5, region: eu}
        - {id: 2, next_day: '2024-01-01', scaled: 1, region: eu}
  - name: next_day_overrides
    model: next_day
    overrides:
      vars: {rate: 2}
      env_vars: {DVT_UNIT_REGION: us}
      macros: {is_incremental: true, today: \"'2000-01-01'\"}
    given:
      - input: ref('orders_pg')
        rows:
          - {id: 1, ordered_on: '2024-02-28', amount: 3}
          - {id: 5, ordered_on: '2024-02-28', amount: 4}
      - input: this
        rows:
          - {id: 4}
    expect:
      rows:
        - {id: 5, scaled: 8, region: us, today: '2000-01-01'}
  - name: named_federated
    model: named
    given:
      - input: ref('orders_pg')
        rows: [{id: 7, customer_id: 3, amount: 1.25}]
      - input: ref('customers_m')
        format: csv
        rows: |
          id,name
          3,zoë
    expect:
      format: csv
      rows: |
        id,name,amount
        7,ZOË,1.25
",
    );
    let r = db.dvtr(&["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let res = results(&root);
    for t in ["next_day_typed", "next_day_overrides"] {
        assert!(res.contains(&(format!("unit_test.rt.next_day.{t}"), "pass".into())), "{t}: {res:?}");
    }
    assert!(res.contains(&("unit_test.rt.named.named_federated".into(), "pass".into())), "{res:?}");
    // The model under test is federated; its unit test ran on its PostgreSQL target.
    let c = db.dvtr(&["compile", "-s", "named", "-o", "p.json"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(root.join("p.json")).unwrap()).unwrap();
    assert_eq!(plan.nodes["model.rt.named"].path, dvt_schema::plan::ExecutionPath::Federation);
    assert_eq!(plan.nodes["unit_test.rt.named.named_federated"].target.value, "pg");

    // Typed fixtures: without the input's types, `'2024-02-28' + 1` would not be a date.
    write(
        &root,
        "models/unit.yml",
        &std::fs::read_to_string(root.join("models/unit.yml")).unwrap().replace("'2024-02-29'", "'2024-03-01'"),
    );
    let r = db.dvtr(&["test", "-s", "unit_test:next_day_typed"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("- expected: 1 | 2024-03-01 | 2.5 | eu"), "{}", r.stdout);
    assert!(r.stdout.contains("+ actual:   1 | 2024-02-29 | 2.50 | eu"), "{}", r.stdout);
}

#[test]
fn unit_test_declarations_are_checked() {
    let base = [("models/a.sql", "select 1 as id"), ("models/b.sql", "select id from {{ ref('a') }}")];
    let case = |yml: &str| {
        let mut files = base.to_vec();
        files.push(("models/u.yml", yml));
        let dir = base_project(&files);
        dvtc(dir.path(), &["parse"])
    };
    let r = case("unit_tests:\n  - name: t\n    model: nope\n    given: []\n    expect: {rows: []}\n");
    assert!(
        r.stderr.contains("DVT135") && r.stderr.contains("model `nope`, which was not found") && r.stderr.contains("models/u.yml:2"),
        "{}",
        r.stderr
    );
    let r = case("unit_tests:\n  - name: t\n    model: b\n    given: []\n    expect: {rows: []}\n");
    assert!(r.stderr.contains("gives no rows for these inputs of model `b`: ref('a')"), "{}", r.stderr);
    let r = case("unit_tests:\n  - name: t\n    model: a\n    given: [{input: ref('b'), rows: []}]\n    expect: {rows: []}\n");
    assert!(r.stderr.contains("`ref('b')` is not an input of model `a`"), "{}", r.stderr);
    let r = case("unit_tests:\n  - name: t\n    model: b\n    given: [{input: ref('a'), format: xml, rows: []}]\n    expect: {rows: []}\n");
    assert!(r.stderr.contains("unknown fixture format `xml`"), "{}", r.stderr);
    let r =
        case("unit_tests:\n  - name: t\n    model: b\n    given: [{input: ref('a'), rows: [{id: 1}]}]\n    expect: {rows: [{id: 1}]}\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("1 unit test"), "{}", r.stdout);
}
