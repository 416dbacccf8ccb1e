//! The per-dialect differential suite of issue 19 (SPEC §3): for each model
//! dialect (PostgreSQL, MariaDB, DuckDB, SQLite as the target) and each
//! function, operator and cast of the catalog below, a federated model — the
//! values on another engine, joined with a table on the target, so the
//! expression is evaluated in the compute's remainder — must give the same rows,
//! value by value and type family by type family, as the same SQL pushed down on
//! co-located data. What the compiler cannot prove is refused at compile time
//! (DVT163); the refused set is part of the expectation, so the README's table
//! stays true.
//!
//! The values include NULLs, boundaries, fractional seconds, the leap day,
//! the epoch, empty strings, trailing spaces, mixed case and non-ASCII text.

use std::collections::BTreeMap;

use dvt_runtime::connectors::{self, Connection};
use dvt_runtime::credentials::Credentials;

use crate::support::*;

/// One expression over `v` (the values) and what each dialect does with it, in the
/// order PostgreSQL, MariaDB, DuckDB, SQLite: `=` evaluated in the remainder and
/// equal, `t` translated and equal, `x` refused at compile time, `r` refused when
/// the node runs (the meaning depends on the values' types, known once the
/// fragments are read: the node fails with DVT163 and writes nothing), `-` not SQL
/// of that dialect (not tried).
struct Case {
    name: &'static str,
    sql: &'static str,
    expect: &'static str,
    shape: Shape,
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// One row per value row.
    Row,
    /// Grouped by `v.g`.
    Agg,
}

use Shape::*;

const fn case(name: &'static str, sql: &'static str, expect: &'static str) -> Case {
    Case { name, sql, expect, shape: Row }
}

const fn agg(name: &'static str, sql: &'static str, expect: &'static str) -> Case {
    Case { name, sql, expect, shape: Agg }
}

/// The catalog (README "Expressions in a federated remainder").
const CASES: &[Case] = &[
    // Arithmetic and comparison.
    case("add_int", "v.i + 1", "===="),
    case("sub_mul_int", "v.g * 3 - v.id", "===="),
    case("add_dec", "v.n + v.n * 2", "===="),
    case("mul_float", "v.f * 2 + 1", "===="),
    case("neg", "-v.i", "===="),
    case("div", "v.i / 2", "xxxx"),
    case("div_dec", "v.n / 3", "xxxx"),
    case("mod", "v.i % 3", "xxxx"),
    case("spaceship", "v.i <=> 7", "-t--"),
    case("gt_int", "v.i >= 7", "===="),
    case("eq_str_lit", "v.s = 'abc'", "=x=="),
    case("lt_str_lit", "v.s < 'b'", "=x=="),
    case("between", "v.i between 0 and 10", "===="),
    case("in_list", "v.i in (1, 7, -1)", "===="),
    case("like", "v.s like 'a%'", "=x=t"),
    case("is_null", "v.s is null", "===="),
    case("distinct_from", "v.i is distinct from 7", "=-=="),
    case("case_when", "case when v.i > 0 then 'pos' when v.i < 0 then 'neg' else 'zero' end", "===="),
    case("bool_and_or", "(v.i > 0 and v.b) or v.s is null", "===="),
    // Functions.
    case("coalesce", "coalesce(v.s, 'none')", "===="),
    case("nullif", "nullif(v.i, 0)", "===="),
    case("abs_int", "abs(v.i)", "===="),
    case("abs_dec", "abs(v.n)", "===="),
    case("upper", "upper(v.s)", "tttt"),
    case("lower", "lower(v.s)", "tttt"),
    case("length", "length(v.s)", "=x=="),
    case("concat", "concat(v.s, '-', v.i)", "=t=="),
    case("concat_float", "concat(v.s, v.f)", "=r=="),
    case("concat_ts", "v.s || cast(v.ts as varchar(30))", "=x=="),
    case("concat_ws", "concat_ws('|', v.s, v.i)", "===t"),
    case("pipes", "v.s || 'x'", "=x=="),
    case("greatest", "greatest(v.i, 3)", "=t=-"),
    case("least", "least(v.n, 1)", "=t=-"),
    case("date_trunc", "date_trunc('month', v.ts)", "=-=-"),
    case("round", "round(v.n)", "xxxx"),
    case("to_char_ts", "to_char(v.ts, 'YYYY-MM-DD HH24:MI:SS')", "t---"),
    case("to_char_num", "to_char(v.n, 'FM999990.00')", "x---"),
    case("ifnull", "ifnull(v.s, 'none')", "-ttt"),
    case("if", "if(v.i > 0, 'pos', 'other')", "-t--"),
    case("date_format", "date_format(v.ts, '%Y-%m')", "-x--"),
    // Casts.
    case("cast_int_text", "cast(v.i as varchar(20))", "===="),
    case("cast_dec_text", "cast(v.n as varchar(20))", "===="),
    case("cast_float_text", "cast(v.f as varchar(30))", "=r=="),
    case("cast_date_text", "cast(v.d as varchar(20))", "===="),
    case("cast_ts_text", "cast(v.ts as varchar(30))", "=r=="),
    case("cast_ts_date", "cast(v.ts as date)", "===x"),
    case("cast_date_ts", "cast(v.d as timestamp)", "t-tx"),
    case("cast_int_float", "cast(v.i as double precision)", "=-=-"),
    case("cast_dec_float", "cast(v.n as double precision)", "=-=-"),
    case("cast_dec_int", "cast(v.n as integer)", "x-xx"),
    // Aggregates (grouped by v.g).
    agg("count", "count(*)", "===="),
    agg("count_col", "count(v.s)", "===="),
    agg("count_distinct", "count(distinct v.i)", "===="),
    agg("sum_int", "sum(v.i)", "===="),
    agg("sum_dec", "sum(v.n)", "===="),
    agg("min_str", "min(v.s)", "=r=="),
    agg("max_ts", "max(v.ts)", "===="),
    agg("avg", "avg(v.i)", "xxxx"),
    // Window functions.
    case("row_number", "row_number() over (order by v.id)", "===="),
    case("rank", "rank() over (partition by v.g order by v.i)", "=t=t"),
    case("lag", "lag(v.i) over (order by v.id)", "===="),
    case("rank_desc", "rank() over (order by v.i desc)", "=tt="),
    case("str_join", "v.s = k.s", "=r=="),
];

/// The value rows (SQL literals, the same text in every engine).
const ROWS: &[&str] = &[
    "1, 1, 0, 220.50, 0.1, 'abc', '2025-01-05', '2025-01-05 08:05:09', true",
    "2, 1, 1, 19.99, -2.5, 'ABC ', '2024-02-29', '2024-12-31 23:59:59.123456', false",
    "3, 1, -1, -0.01, 1e300, 'ünïcødé', '1970-01-01', '1970-01-01 00:00:00', true",
    "4, 2, 7, 0.00, 0.3333333333333333, '', '1999-12-31', '2000-02-29 12:00:00', false",
    "5, 2, 2147483000, 9999999999.99, 123456789.125, 'straße', '2038-01-19', '2038-01-19 03:14:08', null",
    "6, 2, -2147483647, null, null, null, null, null, true",
    "7, 3, null, 1.00, 1e15, 'O''Brien', '1000-01-01', '1969-12-31 23:59:59.5', null",
    "8, 3, 42, 3.33, -0.000001, 'a%b_c', '2000-01-01', '2000-01-01 00:00:00.000001', false",
];

/// Per engine: the column types of `id, g, i, n, f, s, d, ts, b`.
fn ddl(engine: &str) -> &'static str {
    match engine {
        "pg" => "id integer, g integer, i integer, n numeric(12,2), f double precision, s varchar(20), d date, ts timestamp(6), b boolean",
        "maria" => "id integer, g integer, i integer, n decimal(12,2), f double, s varchar(20), d date, ts datetime(6), b boolean",
        "duck" => "id integer, g integer, i integer, n decimal(12,2), f double, s varchar, d date, ts timestamp, b boolean",
        _ => "id integer, g integer, i integer, n numeric, f real, s text, d date, ts timestamp, b boolean",
    }
}

struct Suite {
    db: ServiceProject,
    target: &'static str,
}

impl Suite {
    fn creds(&self, engine: &str) -> Credentials {
        let env: BTreeMap<_, _> = self.db.env.iter().cloned().collect();
        let set = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        match engine {
            "pg" => {
                Credentials::new("pg", "postgres", set(&[("port", &env["DVT_TEST_PG_PORT"]), ("dbname", "dvt")]), self.db.project.clone())
            }
            "maria" => Credentials::new("maria", "mysql", set(&[("port", &env["DVT_TEST_MARIA_PORT"])]), self.db.project.clone()),
            "lite" => Credentials::new("lite", "sqlite", set(&[("path", &env["DVT_TEST_SQLITE"])]), self.db.project.clone()),
            _ => Credentials::new("duck", "duckdb", set(&[("path", &env["DVT_TEST_DUCKDB"])]), self.db.project.clone()),
        }
    }

    fn connect(&self, engine: &str) -> Box<dyn Connection> {
        connectors::connect(&self.creds(engine)).unwrap_or_else(|e| panic!("{engine}: {e}"))
    }

    /// The schema of relations on `engine` (and its quoted form).
    fn schema(&self, engine: &str) -> String {
        if matches!(engine, "pg" | "maria") { self.db.schema.clone() } else { "main".into() }
    }

    fn rel(&self, engine: &str, table: &str) -> String {
        match engine {
            "maria" => format!("`{}`.`{table}`", self.db.schema),
            "pg" => format!("\"{}\".\"{table}\"", self.db.schema),
            _ => format!("\"{table}\""),
        }
    }

    fn create(&self, conn: &mut dyn Connection, engine: &str, table: &str, ddl: &str, rows: &[String]) {
        let rel = self.rel(engine, table);
        conn.execute(&format!("drop table if exists {rel}")).unwrap();
        conn.execute(&format!("create table {rel} ({ddl})")).unwrap();
        let values: Vec<String> = rows.iter().map(|r| format!("({r})")).collect();
        conn.execute(&format!("insert into {rel} values {}", values.join(", "))).unwrap_or_else(|e| panic!("{engine}: {e}"));
    }

    /// The type family of a column on the target: integers of any width are one family
    /// (a wider integer cannot change a value), as are text types.
    fn type_family(&self, conn: &mut dyn Connection, table: &str) -> String {
        let sql = match self.target {
            "pg" => format!(
                "select format_type(a.atttypid, a.atttypmod) from pg_attribute a join pg_class c on c.oid = a.attrelid \
                 join pg_namespace n on n.oid = c.relnamespace where n.nspname = '{}' and c.relname = '{table}' and a.attname = 'x'",
                self.db.schema
            ),
            "maria" => format!(
                "select column_type from information_schema.columns where table_schema = '{}' and table_name = '{table}' and column_name = 'x'",
                self.db.schema
            ),
            "duck" => format!("select data_type from information_schema.columns where table_name = '{table}' and column_name = 'x'"),
            // SQLite: the storage class of each value is compared with the values.
            _ => return String::new(),
        };
        let t = conn.query(&sql).unwrap().rows[0][0].clone().unwrap_or_default().to_ascii_lowercase();
        family(&t)
    }

    fn values(&self, conn: &mut dyn Connection, table: &str) -> Vec<Vec<Option<String>>> {
        let rel = self.rel(self.target, table);
        let typeof_ = if self.target == "lite" { ", typeof(x)" } else { "" };
        conn.query(&format!("select id, x{typeof_} from {rel} order by id")).unwrap().rows
    }
}

fn family(t: &str) -> String {
    let base = t.split('(').next().unwrap_or(t).trim();
    let f = match base {
        "smallint" | "integer" | "int" | "bigint" | "int4" | "int8" | "int2" | "hugeint" | "mediumint" => "integer",
        // MySQL's BOOLEAN is TINYINT(1), and its comparisons give integers.
        "tinyint" => "integer",
        "boolean" | "bool" => "boolean",
        "numeric" | "decimal" => "decimal",
        "double precision" | "double" | "float" | "real" | "float8" => "float",
        "text" | "varchar" | "character varying" | "longtext" | "mediumtext" | "char" | "character" => "text",
        "timestamp without time zone" | "timestamp" | "datetime" => "timestamp",
        "timestamp with time zone" | "timestamptz" | "timestamp with time zone " => "timestamptz",
        other => other,
    };
    f.to_string()
}

fn run_suite(target: &'static str, source: &'static str, column: usize) {
    let mut suite = Suite { db: ServiceProject::new(&format!("dia_{target}")), target };
    suite.db.env.push(("DVT_TRACE".into(), "1".into()));
    let rows: Vec<String> = ROWS.iter().map(|r| r.to_string()).collect();
    let keys: Vec<String> = (1..=ROWS.len()).map(|i| format!("{i}, 'ABC'")).collect();
    {
        let mut src = suite.connect(source);
        if source == "pg" {
            src.execute(&format!("create schema if not exists \"{}\"", suite.db.schema)).unwrap();
        }
        if source == "maria" {
            src.execute(&format!("create database if not exists `{}`", suite.db.schema)).unwrap();
        }
        suite.create(src.as_mut(), source, "vals", ddl(source), &rows);
    }
    {
        let mut tgt = suite.connect(target);
        if target == "pg" {
            tgt.execute(&format!("create schema if not exists \"{}\"", suite.db.schema)).unwrap();
        }
        if target == "maria" {
            tgt.execute(&format!("create database if not exists `{}`", suite.db.schema)).unwrap();
        }
        suite.create(tgt.as_mut(), target, "vals_here", ddl(target), &rows);
        suite.create(tgt.as_mut(), target, "keys_here", "id integer, s varchar(20)", &keys);
    }
    // dvtr opens the embedded files next.
    connectors::release_embedded();
    let p = &suite.db.project;
    std::fs::write(
        p.join("models/dia_sources.yml"),
        format!(
            "version: 2\nsources:\n  - name: far\n    connection: {source}\n    schema: {}\n    tables: [{{name: vals}}]\n  \
             - name: near\n    connection: {target}\n    schema: {}\n    tables: [{{name: vals_here}}, {{name: keys_here}}]\n",
            suite.schema(source),
            suite.schema(target)
        ),
    )
    .unwrap();
    // Which expressions this dialect is expected to run, translate or refuse.
    let mut expected_refused = Vec::new();
    let mut tried = Vec::new();
    for c in CASES {
        let e = c.expect.as_bytes()[column] as char;
        match e {
            '-' => continue,
            'x' => expected_refused.push(c.name),
            _ => {}
        }
        tried.push(c);
        let body = |vals: &str| match c.shape {
            Row => format!("select v.id, {} as x from {vals} v join {{{{ source('near', 'keys_here') }}}} k on k.id = v.id", c.sql),
            Agg => {
                format!(
                    "select v.g as id, {} as x from {vals} v join {{{{ source('near', 'keys_here') }}}} k on k.id = v.id group by v.g",
                    c.sql
                )
            }
        };
        let head = format!("{{{{ config(target='{target}', materialized='table', tags=['dia']) }}}}\n");
        std::fs::write(p.join(format!("models/fed_{}.sql", c.name)), format!("{head}{}", body("{{ source('far', 'vals') }}"))).unwrap();
        std::fs::write(p.join(format!("models/ref_{}.sql", c.name)), format!("{head}{}", body("{{ source('near', 'vals_here') }}")))
            .unwrap();
    }
    // Compile: each refusal names its model (DVT163); refused models are taken out and the
    // compile repeated until the rest compiles.
    let mut refused = Vec::new();
    loop {
        let r = suite.db.dvtc(&["compile", "-s", "tag:dia"]);
        if r.code == 0 {
            assert!(r.stdout.contains("federation"), "{}", r.stdout);
            break;
        }
        let name = r
            .stderr
            .split("error[DVT163] models/fed_")
            .nth(1)
            .and_then(|s| s.split(".sql").next())
            .unwrap_or_else(|| panic!("compile failed for another reason:\n{}", r.stderr))
            .to_string();
        std::fs::remove_file(p.join(format!("models/fed_{name}.sql"))).unwrap();
        std::fs::remove_file(p.join(format!("models/ref_{name}.sql"))).unwrap();
        refused.push(CASES.iter().find(|c| c.name == name).unwrap().name);
    }
    refused.sort();
    expected_refused.sort();
    let mut problems = Vec::new();
    if refused != expected_refused {
        problems.push(format!("refused at compile time: {refused:?}, expected {expected_refused:?}"));
    }
    let r = suite.db.dvtr(&["run", "-s", "tag:dia"]);
    // Federated results reach PostgreSQL as binary COPY (every type the suite produces has an encoder).
    assert!(target != "pg" || !r.stderr.contains("text COPY of Arrow batches"), "{}", r.stderr);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("target/run_results.json")).expect("run_results.json")).unwrap();
    let status = |model: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["unique_id"] == format!("model.rt.{model}"))
            .map(|x| (x["status"].as_str().unwrap_or("").to_string(), x["message"].as_str().unwrap_or("").to_string()))
            .unwrap_or_default()
    };
    let mut conn = suite.connect(target);
    let (mut compared, mut refused_at_run_time) = (0, 0);
    for c in tried.iter().filter(|c| !refused.contains(&c.name)) {
        let (fed, reference) = (format!("fed_{}", c.name), format!("ref_{}", c.name));
        let (fs, fm) = status(&fed);
        let (rs, rm) = status(&reference);
        if rs != "success" {
            problems.push(format!("{}: the reference failed on {target}: {rm}", c.name));
            continue;
        }
        let at_run_time = c.expect.as_bytes()[column] == b'r';
        match (fs.as_str(), at_run_time) {
            ("success", false) => {}
            (_, true) => {
                if fs == "success" || !fm.contains("DVT163") {
                    problems.push(format!("{}: `{}` should fail at run time with DVT163: {fs} {fm}", c.name, c.sql));
                }
                refused_at_run_time += 1;
                continue;
            }
            _ => {
                problems.push(format!("{}: `{}` federated failed: {fm}", c.name, c.sql));
                continue;
            }
        }
        let (gt, wt) = (suite.type_family(conn.as_mut(), &fed), suite.type_family(conn.as_mut(), &reference));
        if gt != wt {
            problems.push(format!("{}: `{}` type differs: federated {gt}, co-located {wt}", c.name, c.sql));
        }
        let (mut got, mut want) = (suite.values(conn.as_mut(), &fed), suite.values(conn.as_mut(), &reference));
        if wt == "decimal" {
            // PostgreSQL's unconstrained numeric keeps each value's own display scale (`1`
            // next to `1.00`); Arrow's decimals have one scale per column. Decimals are
            // compared as numbers — a lost digit still differs.
            for v in got.iter_mut().chain(want.iter_mut()).flat_map(|r| r.get_mut(1)) {
                if let Some(t) = v.as_mut().filter(|t| t.contains('.')) {
                    *t = t.trim_end_matches('0').trim_end_matches('.').to_string();
                }
            }
        }
        if got != want {
            problems.push(format!("{}: `{}` values differ\n   federated: {got:?}\n   co-located: {want:?}", c.name, c.sql));
        }
        compared += 1;
    }
    assert!(problems.is_empty(), "{target} ({} compared, run exit {}):\n{}\n{}", compared, r.code, problems.join("\n"), r.stdout);
    assert!(compared >= 30, "only {compared} expressions compared on {target}");
    eprintln!(
        "{target}: {compared} expressions equal to co-located, {} refused at compile time, {refused_at_run_time} when the node runs",
        refused.len()
    );
}

#[test]
fn postgres_model_remainders_equal_postgres() {
    run_suite("pg", "duck", 0);
}

#[test]
fn mariadb_model_remainders_equal_mariadb() {
    run_suite("maria", "pg", 1);
}

#[test]
fn duckdb_model_remainders_equal_duckdb() {
    run_suite("duck", "pg", 2);
}

#[test]
fn sqlite_model_remainders_equal_sqlite() {
    run_suite("lite", "duck", 3);
}

/// What the target database says about text decides the meaning: with `LC_CTYPE`
/// `C`, PostgreSQL's `upper` maps ASCII only (the federated model equals it); under
/// an ICU collation strings do not sort by bytes, so `min` of strings and a string
/// `<` fail the node with DVT163 instead of giving DataFusion's byte order.
#[test]
fn postgres_target_collation_and_ctype_are_respected() {
    let suite = Suite { db: ServiceProject::new("dia_loc"), target: "pg" };
    let env: BTreeMap<_, _> = suite.db.env.iter().cloned().collect();
    let (port, schema) = (env["DVT_TEST_PG_PORT"].clone(), suite.db.schema.clone());
    let (c_db, icu_db) = (format!("{schema}_c"), format!("{schema}_icu"));
    let pg_on = |db: &str| {
        let set = [("port".to_string(), port.clone()), ("dbname".to_string(), db.to_string())];
        connectors::connect(&Credentials::new("pg", "postgres", set.into_iter().collect(), suite.db.project.clone())).unwrap()
    };
    {
        let mut admin = pg_on("postgres");
        for (db, how) in [(&c_db, "locale 'C'"), (&icu_db, "locale_provider icu icu_locale 'en-US' locale 'C.UTF-8'")] {
            admin.execute(&format!("drop database if exists \"{db}\"")).unwrap();
            admin.execute(&format!("create database \"{db}\" template template0 {how}")).unwrap();
        }
    }
    let rows: Vec<String> = ROWS.iter().map(|r| r.to_string()).collect();
    let keys: Vec<String> = (1..=ROWS.len()).map(|i| format!("{i}, 'ABC'")).collect();
    for db in [&c_db, &icu_db] {
        let mut c = pg_on(db);
        c.execute(&format!("create schema \"{schema}\"")).unwrap();
        suite.create(c.as_mut(), "pg", "vals_here", ddl("pg"), &rows);
        suite.create(c.as_mut(), "pg", "keys_here", "id integer, s varchar(20)", &keys);
    }
    {
        let mut duck = suite.connect("duck");
        suite.create(duck.as_mut(), "duck", "vals", ddl("duck"), &rows);
    }
    connectors::release_embedded();
    let p = &suite.db.project;
    let mut profiles = std::fs::read_to_string(p.join("profiles.yml")).unwrap();
    for (name, db) in [("pg_c", &c_db), ("pg_icu", &icu_db)] {
        profiles.push_str(&format!(
            "    {name}:\n      type: postgres\n      host: 127.0.0.1\n      port: \"{port}\"\n      user: postgres\n      dbname: {db}\n      schema: {schema}\n"
        ));
    }
    std::fs::write(p.join("profiles.yml"), profiles).unwrap();
    let mut sources =
        "version: 2\nsources:\n  - name: far\n    connection: duck\n    schema: main\n    tables: [{name: vals}]\n".to_string();
    for out in ["pg_c", "pg_icu"] {
        sources.push_str(&format!(
            "  - name: {out}\n    connection: {out}\n    schema: {schema}\n    tables: [{{name: vals_here}}, {{name: keys_here}}]\n"
        ));
    }
    std::fs::write(p.join("models/dia_sources.yml"), sources).unwrap();
    let model = |target: &str, vals: &str, select: &str, group: bool| {
        format!(
            "{{{{ config(target='{target}', materialized='table', tags=['loc']) }}}}\nselect {select} from {vals} v \
             join {{{{ source('{target}', 'keys_here') }}}} k on k.id = v.id{}",
            if group { " group by v.g" } else { "" }
        )
    };
    let far = "{{ source('far', 'vals') }}";
    let files = [
        ("fed_upper_c", model("pg_c", far, "v.id, upper(v.s) as x, lower(v.s) as y", false)),
        ("ref_upper_c", model("pg_c", "{{ source('pg_c', 'vals_here') }}", "v.id, upper(v.s) as x, lower(v.s) as y", false)),
        ("fed_min_icu", model("pg_icu", far, "v.g as id, min(v.s) as x", true)),
        ("fed_lt_icu", model("pg_icu", far, "v.id, v.s < k.s as x", false)),
        ("fed_eq_icu", model("pg_icu", far, "v.id, v.s = k.s as x", false)),
    ];
    for (name, sql) in &files {
        std::fs::write(p.join(format!("models/{name}.sql")), sql).unwrap();
    }
    let r = suite.db.dvtr(&["run", "-s", "tag:loc"]);
    let out = format!("{}\n{}", r.stdout, r.stderr);
    for ok in ["fed_upper_c", "ref_upper_c", "fed_eq_icu"] {
        assert!(out.contains(&format!("OK    model {ok} ")), "{ok}:\n{out}");
    }
    for refused in ["fed_min_icu", "fed_lt_icu"] {
        let line = out.lines().find(|l| l.contains(&format!("model {refused} "))).unwrap_or_else(|| panic!("{refused}:\n{out}"));
        assert!(line.contains("ERROR") && line.contains("DVT163") && line.contains("collation is not byte order"), "{line}");
    }
    let mut c = pg_on(&c_db);
    let read = |c: &mut Box<dyn Connection>, t: &str| c.query(&format!("select id, x, y from \"{schema}\".{t} order by id")).unwrap().rows;
    let (fed, reference) = (read(&mut c, "fed_upper_c"), read(&mut c, "ref_upper_c"));
    assert_eq!(fed, reference);
    assert!(fed.iter().any(|r| r[1].as_deref() == Some("üNïCøDé")), "{fed:?}");
    drop(c);
    let mut admin = pg_on("postgres");
    for db in [&c_db, &icu_db] {
        admin.execute(&format!("drop database if exists \"{db}\" with (force)")).unwrap();
    }
}
