//! The differential proof through the real runtime path (SPEC §3): random
//! queries run once on PostgreSQL with every table co-located, and once
//! decomposed — each table on a different engine (SQLite, DuckDB, MariaDB,
//! PostgreSQL), fragments read by dvtr's connectors into Arrow, the remainder
//! run in DataFusion. Results must be equal as multisets.

use std::collections::BTreeMap;

use dvt_compiler::dialect::Dialect;
use dvt_compiler::federate::{FragmentInput, split};
use dvt_runtime::connectors::{self, Connection};
use dvt_runtime::credentials::Credentials;
use dvt_runtime::{arrow_rows, federation};
use dvt_schema::plan::Fragment;
use rusqlite::types::Value;

use crate::differential::{Rng, TABLES, query, random_rows};

/// A query whose SELECT and WHERE use PostgreSQL semantics DataFusion does not share
/// (rounding casts, `round` of numerics, numeric `to_char`): federated, they must be
/// computed where the table lives in PostgreSQL, or refused — never evaluated differently.
/// (Numeric division is left out: PostgreSQL picks the result's scale per value, and a
/// fragment's column has one scale, so equal values print with more zeros.)
fn dialect_query(r: &mut Rng) -> String {
    let t = TABLES[r.below(3) as usize];
    let other = TABLES[r.below(3) as usize];
    let join = if r.chance(50) { format!(" join {other} y on y.k = x.k") } else { String::new() };
    let filter = if r.chance(50) { format!(" where (x.v * 1.5)::int <> {}", r.below(6) as i64 - 2) } else { String::new() };
    format!("select x.id, (x.v * 1.5)::int as r, to_char(x.id, 'FM000') as t, round(x.v * 1.25) as q, x.s from {t} x{join}{filter}")
}

const ROUNDS: usize = 40;
const QUERIES_PER_ROUND: usize = 50;

struct Engines {
    _dir: tempfile::TempDir,
    schema: String,
    creds: BTreeMap<&'static str, Credentials>,
}

fn engines() -> Engines {
    let pg = std::env::var("DVT_TEST_PG_PORT").expect("DVT_TEST_PG_PORT is not set: run `make test`, which starts PostgreSQL and MariaDB");
    let maria = std::env::var("DVT_TEST_MARIA_PORT").expect("DVT_TEST_MARIA_PORT is not set: run `make test`");
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("dfdiff_{}", std::process::id());
    let set = |pairs: &[(&str, String)]| pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>();
    let base = dir.path().to_path_buf();
    let mut creds = BTreeMap::new();
    creds.insert("pg", Credentials::new("pg", "postgres", set(&[("port", pg), ("dbname", "postgres".into())]), base.clone()));
    creds.insert("maria", Credentials::new("maria", "mysql", set(&[("port", maria)]), base.clone()));
    creds.insert("lite", Credentials::new("lite", "sqlite", set(&[("path", base.join("d.sqlite").display().to_string())]), base.clone()));
    creds.insert("duck", Credentials::new("duck", "duckdb", set(&[("path", base.join("d.duckdb").display().to_string())]), base.clone()));
    Engines { _dir: dir, schema, creds }
}

fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Text(s) => format!("'{s}'"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Creates `name` with `rows` at `rel` on `conn`.
fn load(conn: &mut dyn Connection, rel: &str, rows: &[[Value; 4]]) {
    conn.execute(&format!("drop table if exists {rel}")).unwrap();
    conn.execute(&format!("create table {rel} (id integer, k integer, v integer, s varchar(10))")).unwrap();
    if !rows.is_empty() {
        let values: Vec<String> = rows.iter().map(|r| format!("({})", r.iter().map(literal).collect::<Vec<_>>().join(", "))).collect();
        conn.execute(&format!("insert into {rel} values {}", values.join(", "))).unwrap();
    }
}

fn multiset(rows: Vec<Vec<Option<String>>>) -> Vec<String> {
    let mut v: Vec<String> = rows.into_iter().map(|r| format!("{r:?}")).collect();
    v.sort();
    v
}

#[test]
fn federated_through_datafusion_equals_colocated_postgres() {
    let e = engines();
    let mut conns: BTreeMap<&str, Box<dyn Connection>> =
        e.creds.iter().map(|(k, c)| (*k, connectors::connect(c).unwrap_or_else(|err| panic!("{k}: {err}")))).collect();
    let s = &e.schema;
    conns.get_mut("pg").unwrap().execute(&format!("drop schema if exists {s} cascade; create schema {s}; set search_path to {s}")).unwrap();
    conns.get_mut("maria").unwrap().execute(&format!("create database if not exists {s}")).unwrap();
    let rel = |engine: &str, t: &str| match engine {
        "pg" => format!("\"{s}\".\"{t}_src\""),
        "maria" => format!("`{s}`.`{t}`"),
        _ => format!("\"{t}\""),
    };
    let placements = ["lite", "duck", "maria", "pg"];
    let mut r = Rng(crate::differential::seed(0x9E37_79B9_7F4A_7C15));
    let (mut compared, mut pushed, mut engines_used) = (0usize, 0usize, std::collections::BTreeSet::new());
    let mut unsupported = Vec::new();
    let (mut refused, mut computed) = (0usize, 0usize);
    let (mut semi_joins, mut in_subqueries, mut whole_joins) = (0usize, 0usize, 0usize);
    let mut whole: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..ROUNDS {
        let data: Vec<Vec<[Value; 4]>> = TABLES.iter().map(|_| random_rows(&mut r)).collect();
        // Co-located reference: every table on PostgreSQL.
        let mut inputs = Vec::new();
        for (i, (t, rows)) in TABLES.iter().zip(&data).enumerate() {
            load(conns.get_mut("pg").unwrap().as_mut(), &format!("\"{s}\".\"{t}\""), rows);
            // Every third round puts all tables on one engine, where inner joins become semi-joins.
            let engine =
                if round % 3 == 0 { placements[(round / 3) % placements.len()] } else { placements[(round + i) % placements.len()] };
            engines_used.insert(engine);
            load(conns.get_mut(engine).unwrap().as_mut(), &rel(engine, t), rows);
            let dialect = Dialect::from_adapter(&e.creds[engine].kind).unwrap();
            inputs.push((engine, FragmentInput { name: t.to_string(), dialect, relation: rel(engine, t), location: engine.to_string() }));
        }
        for q in 0..QUERIES_PER_ROUND {
            let sql = if r.chance(15) { dialect_query(&mut r) } else { query(&mut r) };
            let case = format!("round {round} query {q}");
            let expected = match conns.get_mut("pg").unwrap().query(&sql) {
                Ok(rows) => rows,
                // PostgreSQL cannot run a FULL JOIN on a condition that is not hash- or merge-joinable.
                Err(err) if err.contains("FULL JOIN is only supported") => continue,
                Err(err) => panic!("{case}: reference failed: {err}\n{sql}"),
            };
            let fin: Vec<FragmentInput> = inputs.iter().map(|(_, i)| i.clone()).collect();
            let sp = split(&[&sql], &fin, Dialect::Postgres);
            // Refused at compile time (a dialect expression over a table outside PostgreSQL): never run.
            if !sp.refused.is_empty() {
                assert!(sql.contains("::int"), "{case}: a portable query was refused: {:?}\n{sql}", sp.refused);
                refused += 1;
                continue;
            }
            computed += usize::from(!sp.computed.is_empty());
            let mut batches = Vec::new();
            // Per-relation fragments, and sub-queries pushed whole to the engine holding their tables.
            let reads = inputs
                .iter()
                .filter_map(|(engine, input)| sp.fragments.get(&input.name).map(|out| (*engine, input.name.clone(), out.sql.clone())))
                .chain(sp.pushed.iter().map(|p| (p.location.as_str(), p.name.clone(), p.sql.clone())));
            for (engine, name, fsql) in reads {
                if fsql.contains(" where ") || fsql.contains(" limit ") {
                    pushed += 1;
                }
                if fsql.contains("exists (select 1 from") {
                    semi_joins += 1;
                }
                if fsql.contains(" in (select ") {
                    in_subqueries += 1;
                }
                let f = Fragment {
                    name: name.clone(),
                    upstream: String::new(),
                    reads: vec![],
                    files: vec![],
                    partitions: None,
                    target: engine.to_string(),
                    dialect: e.creds[engine].kind.clone(),
                    sql: fsql,
                    columns: vec![],
                };
                let b = federation::read_fragment(conns.get_mut(engine).unwrap().as_mut(), &f)
                    .unwrap_or_else(|err| panic!("{case}: fragment failed: {err}\n{sql}"));
                batches.push((name, b));
            }
            for p in &sp.pushed {
                *whole.entry(p.location.clone()).or_insert(0usize) += 1;
            }
            whole_joins += sp.pushed.iter().filter(|p| p.reads.len() > 1).count();
            let remainder = dvt_compiler::federate::to_compute_sql(&sp.remainders[0], Dialect::Postgres);
            let inputs_shown: Vec<String> = batches
                .iter()
                .map(|(n, t)| {
                    let rows: Vec<_> =
                        arrow_rows::text_rows(&t.batches, &t.schema, Dialect::Postgres).unwrap().map(Result::unwrap).collect();
                    format!("{n} {:?}: {rows:?}", t.schema.fields().iter().map(|f| f.data_type().to_string()).collect::<Vec<_>>())
                })
                .collect();
            let (schema, got) =
                match federation::run_remainder(&remainder, batches, dvt_runtime::dialect_semantics::Semantics::of(Dialect::Postgres)) {
                    Ok(x) => x,
                    // A construct DataFusion cannot plan is a clear error for the user, never a wrong
                    // result; it is counted, and must stay rare.
                    Err(err) if err.contains("not implemented") || err.contains("not supported") => {
                        unsupported.push(format!("{case}: {err}"));
                        continue;
                    }
                    Err(err) => panic!("{case}: remainder failed: {err}\n{sql}"),
                };
            let got: Vec<Vec<Option<String>>> =
                arrow_rows::text_rows(&got, &schema, Dialect::Postgres).unwrap().map(Result::unwrap).collect();
            assert_eq!(
                multiset(expected.rows),
                multiset(got),
                "{case}: results differ\nquery: {sql}\nremainder: {remainder}\ninputs:\n{}\nfragments: {:#?}\npushed: {:#?}\npredicates: {:#?}",
                inputs_shown.join("\n"),
                sp.fragments,
                sp.pushed,
                sp.predicates
            );
            compared += 1;
        }
    }
    conns.get_mut("pg").unwrap().execute(&format!("drop schema {s} cascade")).unwrap();
    conns.get_mut("maria").unwrap().execute(&format!("drop database {s}")).unwrap();
    assert!(compared + unsupported.len() + refused > ROUNDS * QUERIES_PER_ROUND * 9 / 10);
    assert!(computed > 10 && refused > 20, "dialect queries: {computed} computed at the source, {refused} refused");
    assert!(unsupported.len() * 50 < compared, "too many queries the compute cannot plan:\n{}", unsupported.join("\n"));
    eprintln!(
        "{compared} queries compared, 0 mismatches ({computed} with dialect expressions computed at the source); \
         {refused} refused at compile time; {} not plannable by DataFusion",
        unsupported.len()
    );
    assert_eq!(engines_used.len(), 4, "every engine served fragments");
    assert!(pushed > compared / 2, "only {pushed} fragments had a pushed filter or limit in {compared} queries");
    assert!(semi_joins > 50, "only {semi_joins} fragments were reduced by a semi-join");
    assert!(in_subqueries > 10, "only {in_subqueries} fragments took an IN subquery");
    // PostgreSQL speaks the model's dialect: what lives there alone runs there whole; DuckDB takes
    // the sub-queries that mean the same in every engine.
    assert!(whole.get("pg").is_some_and(|n| *n > 100), "sub-queries pushed whole: {whole:?}");
    assert!(whole.get("duck").is_some_and(|n| *n > 10), "sub-queries pushed whole: {whole:?}");
    assert!(!whole.contains_key("maria") && !whole.contains_key("lite"), "sub-queries pushed whole: {whole:?}");
    assert!(whole_joins > 10, "only {whole_joins} pushed sub-queries joined several relations");
    eprintln!(
        "{pushed} fragments with pushed filters or limits, {semi_joins} reduced by semi-joins, {in_subqueries} by IN subqueries, \
         sub-queries pushed whole {whole:?} ({whole_joins} of them joins)"
    );
}
