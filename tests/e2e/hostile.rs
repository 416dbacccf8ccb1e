//! Hostile identifiers and values round-trip on PostgreSQL, MariaDB, DuckDB and
//! SQLite, pushed down and federated: column names with quotes, backticks,
//! semicolons, spaces, dots, unicode, reserved words and mixed case; aliases and
//! schema names with quotes and spaces; values that look like SQL. Every table
//! is read back and compared name by name and value by value.

use std::collections::BTreeMap;

use dvt_runtime::connectors::Connection;
use dvt_schema::plan::Plan;

use crate::support::*;

/// The seed's header, in order.
const COLUMNS: [&str; 9] = ["id", "a\"b", "a`b", "semi;colon", "with space", "dot.ted", "ünï", "select", "Mixed Case"];
/// Row 1's values after `id` (row 2 is all NULL but its id).
const VALUES: [&str; 8] = ["x\"y", "`tick`", "1;drop table t", "O'Brien", "a.b", "ü", "'); drop table x; --", "MC"];
const TARGETS: [&str; 4] = ["pg", "maria", "duck", "lite"];

/// An identifier quoted for the target's dialect.
fn quote(target: &str, name: &str) -> String {
    if target == "maria" { format!("`{}`", name.replace('`', "``")) } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// A CSV field as RFC 4180 writes it.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.to_string() }
}

fn hostile_project() -> ServiceProject {
    let p = ServiceProject::new("hostile");
    for dir in ["models", "seeds/pg_seeds", "seeds/maria_seeds", "seeds/lite_seeds", "seeds/duck_seeds"] {
        let d = p.project.join(dir);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
    }
    // Headers are written as users write them (`a"b` bare, as spreadsheets export it).
    let header: Vec<String> = COLUMNS.iter().map(|c| if c.contains(';') { format!("\"{c}\"") } else { c.to_string() }).collect();
    let row: Vec<String> = VALUES.iter().map(|v| csv_field(v)).collect();
    let csv = format!("{}\n1,{}\n2{}\n", header.join(","), row.join(","), ",".repeat(VALUES.len()));
    for t in TARGETS {
        std::fs::write(p.project.join(format!("seeds/{t}_seeds/hostile_{t}.csv")), &csv).unwrap();
    }
    // Each target federates from another engine: pg <- duck, maria <- pg, duck <- lite, lite <- maria.
    let other = BTreeMap::from([("pg", "duck"), ("maria", "pg"), ("duck", "lite"), ("lite", "maria")]);
    for t in TARGETS {
        let cols = |prefix: &str| COLUMNS.iter().map(|c| format!("{prefix}{}", quote(t, c))).collect::<Vec<_>>().join(", ");
        let ab = quote(t, "a\"b");
        let pushdown = format!(
            "{{{{ config(target='{t}', materialized='table') }}}}\nselect {} from {{{{ ref('hostile_{t}') }}}}\nwhere {} is not null or {} = 2\n",
            cols(""),
            quote(t, "semi;colon"),
            quote(t, "id")
        );
        std::fs::write(p.project.join(format!("models/push_{t}.sql")), pushdown).unwrap();
        let o = other[t];
        let federated = format!(
            "{{{{ config(target='{t}', materialized='table') }}}}\nselect {} from {{{{ ref('hostile_{o}') }}}} o\n\
             join {{{{ ref('hostile_{t}') }}}} s on s.id = o.id\nwhere o.{ab} is not null or o.id = 2\n",
            cols("o.")
        );
        std::fs::write(p.project.join(format!("models/fed_{t}.sql")), federated).unwrap();
    }
    // Aliases and schema names that need quoting, on every materialization path.
    let odd = [
        (
            "odd_pg",
            "{{ config(target='pg', materialized='table', alias='odd \"name\"; x', schema='odd sch-ema') }}\nselect d.id, d.\"a\"\"b\" from {{ ref('hostile_duck') }} d\n",
        ),
        (
            "odd_duck",
            "{{ config(target='duck', materialized='table', alias='odd name.x') }}\nselect d.id, d.\"a\"\"b\" from {{ ref('odd_pg') }} d\n",
        ),
        (
            "odd_maria",
            "{{ config(target='maria', materialized='view', alias='odd `name`', schema='odd sch-ema') }}\nselect id, `a\"b` from {{ ref('hostile_maria') }}\n",
        ),
        (
            "odd_lite",
            "{{ config(target='lite', materialized='incremental', unique_key='id', alias='odd \"lite\" name') }}\nselect id, \"a\"\"b\" from {{ ref('hostile_lite') }}\n",
        ),
    ];
    for (name, sql) in odd {
        std::fs::write(p.project.join(format!("models/{name}.sql")), sql).unwrap();
    }
    p
}

fn sorted(mut rows: Vec<Vec<Option<String>>>) -> Vec<Vec<Option<String>>> {
    rows.sort();
    rows
}

#[test]
fn hostile_identifiers_and_values_round_trip_on_every_engine_pushed_down_and_federated() {
    let p = hostile_project();
    let r = p.dvtr(&["seed", "--profiles-dir", "."]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Twice: the second run replaces (tables), merges (incremental) and re-creates (views).
    for _ in 0..2 {
        let r = p.dvtr(&["run", "--profiles-dir", "."]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("PASS=12 WARN=0 ERROR=0"), "{}", r.stdout);
    }
    let r = p.dvtc(&["compile", "--profiles-dir", "."]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(p.project.join("target/plan.json")).unwrap()).unwrap();
    let mut conns: BTreeMap<String, Box<dyn Connection>> = TARGETS.iter().map(|t| (t.to_string(), p.connect(t))).collect();
    let read = |conns: &mut BTreeMap<String, Box<dyn Connection>>, name: &str| {
        let node = plan.nodes.values().find(|n| n.name == name).unwrap_or_else(|| panic!("{name} is in the plan"));
        let rel = node.relation.as_ref().unwrap();
        conns.get_mut(&node.target.value).unwrap().query(&format!("select * from {}", rel.rendered)).unwrap()
    };
    let mut row1: Vec<Option<String>> = vec![Some("1".into())];
    row1.extend(VALUES.iter().map(|v| Some(v.to_string())));
    let mut row2: Vec<Option<String>> = vec![Some("2".into())];
    row2.extend(VALUES.iter().map(|_| None));
    let expected = sorted(vec![row1, row2]);
    let mut checked = 0;
    for t in TARGETS {
        for name in [format!("hostile_{t}"), format!("push_{t}"), format!("fed_{t}")] {
            let got = read(&mut conns, &name);
            assert_eq!(got.columns, COLUMNS, "{name}: column names");
            assert_eq!(sorted(got.rows), expected, "{name}: values");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
    for name in ["odd_pg", "odd_duck", "odd_maria", "odd_lite"] {
        let got = read(&mut conns, name);
        assert_eq!(got.columns, ["id", "a\"b"], "{name}");
        assert_eq!(sorted(got.rows), vec![vec![Some("1".into()), Some("x\"y".into())], vec![Some("2".into()), None]], "{name}");
    }
    // Nothing was executed from a value: every seed is still there with its two rows.
    for t in TARGETS {
        assert_eq!(read(&mut conns, &format!("hostile_{t}")).rows.len(), 2);
    }
    // `--vars` reaching a schema name is quoted as a name, never run as SQL.
    std::fs::write(
        p.project.join("models/odd_var.sql"),
        "{{ config(target='pg', materialized='table', schema=var('evil', 'x')) }}\nselect 1 as id\n",
    )
    .unwrap();
    let evil = "x\"; drop table hostile_pg; --";
    let vars = format!("{{evil: '{evil}'}}");
    let r = p.dvtr(&["run", "-s", "odd_var", "--vars", &vars, "--profiles-dir", "."]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let pg = conns.get_mut("pg").unwrap();
    let sql =
        format!("select table_schema from information_schema.tables where table_name = 'odd_var' and table_schema like '{}\\_%'", p.schema);
    let schema = pg.query(&sql).unwrap().rows;
    assert_eq!(schema, vec![vec![Some(format!("{}_{evil}", p.schema))]]);
    assert_eq!(read(&mut conns, "hostile_pg").rows.len(), 2);
}
