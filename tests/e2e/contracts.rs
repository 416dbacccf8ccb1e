//! Model contracts on real PostgreSQL and MariaDB: enforced contracts create
//! typed columns with their constraints (pushed down and federated), a
//! mismatch between the SQL and the declared columns fails at compile time
//! when the SQL names its columns and before any write when it selects `*`.

use std::path::Path;

use crate::support::*;

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const PROPS: &str = "version: 2
models:
  - name: typed_pg
    config: {contract: {enforced: true}}
    columns:
      - name: id
        data_type: integer
        constraints: [{type: not_null}, {type: primary_key}]
      - name: amount
        data_type: numeric(10,2)
        constraints: [{type: check, expression: \"amount >= 0\"}]
      - name: label
        data_type: varchar(20)
  - name: typed_maria
    config: {contract: {enforced: true}, target: maria}
    constraints: [{type: primary_key, columns: [id]}]
    columns:
      - name: id
        data_type: int
        constraints: [{type: not_null}]
      - name: amount
        data_type: decimal(10,2)
      - name: label
        data_type: varchar(20)
  - name: typed_fed
    config: {contract: {enforced: true}}
    columns:
      - name: id
        data_type: bigint
        constraints: [{type: not_null}]
      - name: label
        data_type: varchar(30)
  - name: star
    config: {contract: {enforced: true}}
    columns:
      - name: id
        data_type: integer
      - name: amount
        data_type: numeric(10,2)
";

fn setup(db: &ServiceProject) {
    let root = &db.project;
    let _ = std::fs::remove_dir_all(root.join("models"));
    let _ = std::fs::remove_dir_all(root.join("seeds"));
    write(root, "models/props.yml", PROPS);
    write(
        root,
        "models/typed_pg.sql",
        "{{ config(materialized='table') }}\nselect 1 as id, 2.5 as amount, 'a' as label\nunion all select 2, 3, 'b'\n",
    );
    write(root, "models/typed_maria.sql", "{{ config(materialized='table') }}\nselect 1 as id, 2.5 as amount, 'm' as label\n");
    write(
        root,
        "models/typed_fed.sql",
        "{{ config(materialized='table') }}\nselect p.id, m.label from {{ ref('typed_pg') }} p join {{ ref('typed_maria') }} m on m.id = p.id\n",
    );
    write(root, "models/star.sql", "{{ config(materialized='table') }}\nselect * from {{ ref('typed_pg') }}\n");
}

fn pg(db: &ServiceProject) -> Box<dyn dvt_runtime::connectors::Connection> {
    let settings = [("port".to_string(), db.env[0].1.clone()), ("dbname".to_string(), "dvt".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("pg", "postgres", settings.into_iter().collect(), db.project.clone());
    dvt_runtime::connectors::connect(&creds).unwrap()
}

fn maria(db: &ServiceProject) -> Box<dyn dvt_runtime::connectors::Connection> {
    let settings = [("port".to_string(), db.env[1].1.clone()), ("user".to_string(), "root".to_string())];
    let creds = dvt_runtime::credentials::Credentials::new("maria", "mysql", settings.into_iter().collect(), db.project.clone());
    dvt_runtime::connectors::connect(&creds).unwrap()
}

#[test]
fn enforced_contracts_create_typed_constrained_tables() {
    let db = ServiceProject::new("contract");
    setup(&db);
    let r = db.dvtr(&["run", "-s", "typed_pg", "typed_maria", "typed_fed"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let s = &db.schema;
    let mut pg = pg(&db);
    let cols = |pg: &mut Box<dyn dvt_runtime::connectors::Connection>, t: &str| {
        pg.query(&format!(
            "select column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '') || coalesce('(' || numeric_precision || ',' || numeric_scale || ')', '') || ' ' || is_nullable
             from information_schema.columns where table_schema = '{s}' and table_name = '{t}' order by ordinal_position"
        ))
        .unwrap()
        .rows
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect::<Vec<_>>()
    };
    assert_eq!(cols(&mut pg, "typed_pg"), ["id integer(32,0) NO", "amount numeric(10,2) YES", "label character varying(20) YES"]);
    // Federated: the staging table the compute's rows go into has the declared types too.
    assert_eq!(cols(&mut pg, "typed_fed"), ["id bigint(64,0) NO", "label character varying(30) YES"]);
    let constraints = pg
        .query(&format!(
            "select string_agg(constraint_type, ',' order by constraint_type) from information_schema.table_constraints
             where table_schema = '{s}' and table_name = 'typed_pg' and constraint_type in ('PRIMARY KEY', 'CHECK') and constraint_name not like '%not_null%'"
        ))
        .unwrap()
        .rows;
    assert_eq!(constraints[0][0].as_deref(), Some("CHECK,PRIMARY KEY"));
    assert!(pg.execute(&format!("insert into {s}.typed_pg values (3, -1, 'x')")).is_err(), "the check constraint is enforced");
    let mut m = maria(&db);
    let mcols = m
        .query(&format!(
            "select concat(column_name, ' ', column_type, ' ', is_nullable, ' ', column_key) from information_schema.columns
             where table_schema = '{s}' and table_name = 'typed_maria' order by ordinal_position"
        ))
        .unwrap()
        .rows;
    let mcols: Vec<String> = mcols.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(mcols, ["id int(11) NO PRI", "amount decimal(10,2) YES ", "label varchar(20) YES "]);

    // `select *` with a column the contract does not declare: refused before any write.
    let before = pg
        .query(&format!("select count(*) from information_schema.tables where table_schema = '{s}' and table_name = 'star'"))
        .unwrap()
        .rows;
    let r = db.dvtr(&["run", "-s", "star"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("do not match its contract: selected but not declared: label"), "{}", r.stdout);
    let after = pg
        .query(&format!("select count(*) from information_schema.tables where table_schema = '{s}' and table_name = 'star'"))
        .unwrap()
        .rows;
    assert_eq!(before, after);
}

#[test]
fn a_contract_mismatch_fails_at_compile_time() {
    let dir = base_project(&[
        ("models/m.sql", "{{ config(materialized='table') }}\nselect 1 as id, 'x' as name\n"),
        (
            "models/m.yml",
            "version: 2\nmodels:\n  - name: m\n    config: {contract: {enforced: true}}\n    columns:\n      - {name: id, data_type: int}\n      - {name: label, data_type: text}\n",
        ),
        ("models/untyped.sql", "select 1 as id\n"),
        (
            "models/untyped.yml",
            "version: 2\nmodels:\n  - name: untyped\n    config: {contract: {enforced: true}}\n    columns:\n      - {name: id}\n",
        ),
    ]);
    let r = dvtc(dir.path(), &["compile", "-s", "m"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("DVT164"), "{}", r.stderr);
    assert!(r.stderr.contains("declared but not selected: label; selected but not declared: name"), "{}", r.stderr);
    assert!(r.stderr.contains("models/m.sql"), "{}", r.stderr);
    let r = dvtc(dir.path(), &["compile", "-s", "untyped"]);
    assert!(r.stderr.contains("DVT164") && r.stderr.contains("no data_type: id"), "{}", r.stderr);
    // Matching columns compile, and the plan carries the contract.
    std::fs::write(dir.path().join("models/m.sql"), "{{ config(materialized='table') }}\nselect 1 as id, 'x' as label\n").unwrap();
    let r = dvtc(dir.path(), &["compile", "-s", "m"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/plan.json")).unwrap()).unwrap();
    let node = &plan.nodes["model.proj.m"];
    assert_eq!(node.contract.as_ref().unwrap().columns.iter().map(|c| c.data_type.as_str()).collect::<Vec<_>>(), ["int", "text"]);
    let kinds: Vec<&str> = node.pushdown.as_ref().unwrap().full_refresh.iter().map(|s| s.kind.as_str()).collect();
    assert!(kinds.contains(&"check_contract") && kinds.contains(&"insert_staging"), "{kinds:?}");
}
