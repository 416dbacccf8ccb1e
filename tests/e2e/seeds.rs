//! Seeds in every format into all four engines, read back and compared value
//! by value with what the files say: nasty CSV (BOM, CRLF, quoted newlines,
//! commas and quotes, leading zeros, percent signs, unicode, header names with
//! spaces), Parquet and JSON lines; `--full-refresh` vs not.

use std::collections::BTreeMap;
use std::sync::Arc;

use dvt_compiler::dialect::Dialect;
use dvt_runtime::arrow::array::{
    BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use dvt_runtime::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use dvt_runtime::connectors::{self, Connection};
use dvt_runtime::credentials::Credentials;
use dvt_runtime::{arrow_rows, federation};
use dvt_schema::plan::Fragment;

use crate::support::*;

const ENGINES: [&str; 4] = ["pg", "maria", "lite", "duck"];

type Db = ServiceProject;

fn setup() -> Db {
    ServiceProject::new("seeds")
}

fn dvtr(db: &Db, args: &[&str]) -> Run {
    db.dvtr(args)
}

fn connect(db: &Db, engine: &str) -> Box<dyn Connection> {
    let s = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
    let c = match engine {
        "pg" => Credentials::new("pg", "postgres", s(&[("port", &db.env[0].1), ("dbname", "dvt")]), db.project.clone()),
        "maria" => Credentials::new("maria", "mysql", s(&[("port", &db.env[1].1)]), db.project.clone()),
        "lite" => Credentials::new("lite", "sqlite", s(&[("path", &db.env[3].1)]), db.project.clone()),
        _ => Credentials::new("duck", "duckdb", s(&[("path", &db.env[4].1)]), db.project.clone()),
    };
    connectors::connect(&c).unwrap()
}

fn relation(db: &Db, engine: &str, table: &str) -> String {
    match engine {
        "pg" => format!("\"dvt\".\"{}\".\"{table}\"", db.schema),
        "maria" => format!("`{}`.`{table}`", db.schema),
        _ => format!("\"{table}\""),
    }
}

/// What `engine` stored in `table`: column names and rows as canonical text.
fn stored(db: &Db, engine: &str, table: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let mut conn = connect(db, engine);
    let f = Fragment {
        name: table.into(),
        upstream: String::new(),
        reads: vec![],
        files: vec![],
        partitions: None,
        target: engine.into(),
        dialect: String::new(),
        sql: format!("select * from {} order by 1", relation(db, engine, table)),
        columns: vec![],
    };
    let b = federation::read_fragment(conn.as_mut(), &f).and_then(|t| t.concat()).unwrap_or_else(|e| panic!("{engine}: {e}"));
    drop(conn);
    // Let the next dvtr process open the DuckDB file.
    connectors::release_embedded();
    let names = b.schema().fields().iter().map(|f| f.name().clone()).collect();
    let rows = arrow_rows::text_rows(std::slice::from_ref(&b), &b.schema(), Dialect::Postgres).unwrap().map(Result::unwrap).collect();
    (names, rows)
}

/// Booleans as engines without a boolean type store them.
fn canonical(engine: &str, column: &str, v: Option<String>) -> Option<String> {
    match (engine, column, v.as_deref()) {
        ("lite", "flag" | "ok", Some("1")) => Some("true".into()),
        ("lite", "flag" | "ok", Some("0")) => Some("false".into()),
        _ => v,
    }
}

fn check(db: &Db, engine: &str, table: &str, names: &[&str], expected: &[Vec<Option<&str>>]) {
    let (got_names, rows) = stored(db, engine, table);
    assert_eq!(got_names, names, "{engine}.{table}: column names");
    let got: Vec<Vec<Option<String>>> =
        rows.into_iter().map(|r| r.into_iter().zip(names).map(|(v, n)| canonical(engine, n, v)).collect()).collect();
    let want: Vec<Vec<Option<String>>> = expected.iter().map(|r| r.iter().map(|v| v.map(str::to_string)).collect()).collect();
    assert_eq!(got, want, "{engine}.{table}: values");
}

const NASTY: &str = "\u{feff}id, Unit Price,name,code,pct,note,flag,day,ts\r\n\
1,12.50,\"Smith, John\",007,12%,\"line1\nline2\",true,2024-01-31,2024-01-31 10:00:00\r\n\
2,0.05,\"She said \"\"hi\"\"\",010,5%,,false,2024-02-29,2024-02-29 23:59:59\r\n\
3,100.00,Zoë ü 日本,,,\"\",true,,\r\n";

fn nasty_expected() -> Vec<Vec<Option<&'static str>>> {
    vec![
        vec![
            Some("1"),
            Some("12.50"),
            Some("Smith, John"),
            Some("007"),
            Some("12%"),
            Some("line1\nline2"),
            Some("true"),
            Some("2024-01-31"),
            Some("2024-01-31 10:00:00"),
        ],
        vec![
            Some("2"),
            Some("0.05"),
            Some("She said \"hi\""),
            Some("010"),
            Some("5%"),
            None,
            Some("false"),
            Some("2024-02-29"),
            Some("2024-02-29 23:59:59"),
        ],
        vec![Some("3"), Some("100.00"), Some("Zoë ü 日本"), None, None, None, Some("true"), None, None],
    ]
}

const NASTY_NAMES: [&str; 9] = ["id", " Unit Price", "name", "code", "pct", "note", "flag", "day", "ts"];

fn write_parquet(path: &std::path::Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Decimal128Array::from(vec![Some(1250), Some(-5), None]).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(Date32Array::from(vec![Some(19753), None, Some(0)])),
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_706_695_200_000_000), Some(1_500_000), None])),
            Arc::new(StringArray::from(vec![Some("Zoë"), None, Some("a,b \"c\"")])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn every_format_round_trips_into_all_four_engines() {
    let db = setup();
    let dir = db.project.join("seeds/formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nasty.csv"), NASTY).unwrap();
    write_parquet(&dir.join("typed.parquet"));
    std::fs::write(
        dir.join("lines.jsonl"),
        "{\"id\": 1, \"name\": \"a\\\"b\", \"score\": 1.5, \"ok\": true, \"note\": null}\n{\"id\": 2, \"name\": \"ü\", \"score\": -2.25, \"ok\": false, \"note\": \"x\"}\n",
    )
    .unwrap();
    for engine in ENGINES {
        let r = dvtr(&db, &["seed", "-s", "nasty", "typed", "lines", "--target", engine]);
        assert_eq!(r.code, 0, "{engine}: {}\n{}", r.stdout, r.stderr);
        check(&db, engine, "nasty", &NASTY_NAMES, &nasty_expected());
        check(
            &db,
            engine,
            "typed",
            &["id", "amount", "day", "ts", "name", "flag"],
            &[
                vec![Some("1"), Some("12.50"), Some("2024-01-31"), Some("2024-01-31 10:00:00"), Some("Zoë"), Some("true")],
                vec![Some("2"), Some("-0.05"), None, Some("1970-01-01 00:00:01.500"), None, Some("false")],
                vec![Some("3"), None, Some("1970-01-01"), None, Some("a,b \"c\""), None],
            ],
        );
        check(
            &db,
            engine,
            "lines",
            &["id", "name", "score", "ok", "note"],
            &[
                vec![Some("1"), Some("a\"b"), Some("1.5"), Some("true"), None],
                vec![Some("2"), Some("ü"), Some("-2.25"), Some("false"), Some("x")],
            ],
        );
    }
}

#[test]
fn header_names_keep_their_spaces_where_the_engine_allows_it() {
    let db = setup();
    let dir = db.project.join("seeds/formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("spaced.csv"), "id,\" Price \"\n1,2.5\n").unwrap();
    for engine in ["pg", "lite", "duck"] {
        let r = dvtr(&db, &["seed", "-s", "spaced", "--target", engine]);
        assert_eq!(r.code, 0, "{engine}: {}\n{}", r.stdout, r.stderr);
        check(&db, engine, "spaced", &["id", " Price "], &[vec![Some("1"), Some("2.5")]]);
    }
    // MariaDB refuses column names that end with a space: a clear error, nothing created.
    let r = dvtr(&db, &["seed", "-s", "spaced", "--target", "maria"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("Incorrect column name ' Price '"), "{}", r.stdout);
}

#[test]
fn full_refresh_vs_not() {
    let db = setup();
    let dir = db.project.join("seeds/formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("grow.csv"), "id,name\n1,a\n").unwrap();
    for engine in ENGINES {
        assert_eq!(dvtr(&db, &["seed", "-s", "grow", "--target", engine]).code, 0);
    }
    // Same columns: rows replaced in place.
    std::fs::write(dir.join("grow.csv"), "id,name\n1,a\n2,b\n").unwrap();
    for engine in ENGINES {
        let r = dvtr(&db, &["seed", "-s", "grow", "--target", engine]);
        assert_eq!(r.code, 0, "{engine}: {}", r.stdout);
        assert!(std::fs::read_to_string(db.project.join("target/run_results.json")).unwrap().contains("\"replace\""), "{engine}");
        check(&db, engine, "grow", &["id", "name"], &[vec![Some("1"), Some("a")], vec![Some("2"), Some("b")]]);
    }
    // A new column: refused without --full-refresh, the old table intact; rebuilt with it.
    std::fs::write(dir.join("grow.csv"), "id,name,extra\n1,a,x\n").unwrap();
    for engine in ENGINES {
        let r = dvtr(&db, &["seed", "-s", "grow", "--target", engine]);
        assert_eq!(r.code, 1, "{engine}: {}", r.stdout);
        assert!(r.stdout.contains("--full-refresh"), "{engine}: {}", r.stdout);
        check(&db, engine, "grow", &["id", "name"], &[vec![Some("1"), Some("a")], vec![Some("2"), Some("b")]]);
        let r = dvtr(&db, &["seed", "-s", "grow", "--target", engine, "--full-refresh"]);
        assert_eq!(r.code, 0, "{engine}: {}", r.stdout);
        check(&db, engine, "grow", &["id", "name", "extra"], &[vec![Some("1"), Some("a"), Some("x")]]);
    }
}

#[test]
fn a_bad_row_halfway_through_a_large_file_names_its_line_and_column_and_keeps_the_old_table() {
    let db = setup();
    let dir = db.project.join("seeds/formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("props.yml"),
        "version: 2\nseeds:\n  - name: big\n    config:\n      column_types: {amount: 'numeric(10,2)'}\n",
    )
    .unwrap();
    let rows = 100_000;
    let csv = |bad_at: Option<usize>| {
        let mut s = String::from("id,amount,note\n");
        for i in 1..=rows {
            if Some(i) == bad_at {
                s.push_str(&format!("{i},12%,x\n"));
            } else {
                s.push_str(&format!("{i},{}.{:02},row {i}\n", i % 1000, i % 100));
            }
        }
        s
    };
    std::fs::write(dir.join("big.csv"), csv(None)).unwrap();
    for engine in ENGINES {
        let r = dvtr(&db, &["seed", "-s", "big", "--target", engine]);
        assert_eq!(r.code, 0, "{engine}: {}", r.stdout);
    }
    std::fs::write(dir.join("big.csv"), csv(Some(rows / 2))).unwrap();
    for engine in ENGINES {
        let r = dvtr(&db, &["seed", "-s", "big", "--target", engine]);
        assert_eq!(r.code, 1, "{engine}: {}", r.stdout);
        let results = std::fs::read_to_string(db.project.join("target/run_results.json")).unwrap();
        // Line 50,001 of the file (the header is line 1), column `amount`.
        assert!(results.contains("50001") && results.contains("amount"), "{engine}: {results}");
        let mut conn = connect(&db, engine);
        let n = conn.query(&format!("select count(*) from {}", relation(&db, engine, "big"))).unwrap();
        drop(conn);
        connectors::release_embedded();
        assert_eq!(n.rows[0][0].as_deref(), Some("100000"), "{engine}: the old table is intact");
    }
}

#[test]
fn quote_columns_false_lets_the_engine_fold_plain_names() {
    let db = setup();
    let dir = db.project.join("seeds/formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("props.yml"), "version: 2\nseeds:\n  - name: folded\n    config:\n      quote_columns: false\n").unwrap();
    std::fs::write(dir.join("folded.csv"), "Id,Price,Mixed Case\n1,2.5,x\n").unwrap();
    std::fs::write(dir.join("kept.csv"), "Id,Price,Mixed Case\n1,2.5,x\n").unwrap();
    for engine in ["pg", "duck"] {
        let r = dvtr(&db, &["seed", "-s", "folded", "kept", "--target", engine]);
        assert_eq!(r.code, 0, "{engine}: {}", r.stdout);
    }
    // PostgreSQL folds unquoted names to lower case; a name with a space keeps its quotes.
    assert_eq!(stored(&db, "pg", "folded").0, ["id", "price", "Mixed Case"]);
    assert_eq!(stored(&db, "pg", "kept").0, ["Id", "Price", "Mixed Case"]);
    // DuckDB keeps the case of unquoted names.
    assert_eq!(stored(&db, "duck", "folded").0, ["Id", "Price", "Mixed Case"]);
}

#[test]
fn blank_lines_are_skipped_and_kept_inside_quoted_values() {
    let db = setup();
    let dir = db.project.join("seeds/formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gaps.csv"), "id,note\n1,a\n\n2,\"x\n\ny\"\n\n").unwrap();
    for engine in ENGINES {
        let r = dvtr(&db, &["seed", "-s", "gaps", "--target", engine]);
        assert_eq!(r.code, 0, "{engine}: {}", r.stdout);
        check(&db, engine, "gaps", &["id", "note"], &[vec![Some("1"), Some("a")], vec![Some("2"), Some("x\n\ny")]]);
    }
}

#[test]
fn mariadb_bulk_load_is_strict_and_exact() {
    let db = setup();
    let mut conn = connect(&db, "maria");
    let rel = format!("`{}`.`strict_load`", db.schema);
    conn.execute(&format!("create database if not exists `{}`", db.schema)).unwrap();
    conn.execute(&format!("drop table if exists {rel}")).unwrap();
    conn.execute(&format!("create table {rel} (n int, s text)")).unwrap();
    let rows = |vals: &[(&str, Option<&str>)]| -> Vec<Result<Vec<Option<String>>, String>> {
        vals.iter().map(|(n, s)| Ok(vec![Some(n.to_string()), s.map(str::to_string)])).collect()
    };
    // LOAD DATA LOCAL turns a bad value into a warning; DVT turns the warning into an error.
    let e = conn.load(&rel, 2, &mut rows(&[("1", Some("a")), ("not a number", Some("b"))]).into_iter()).unwrap_err();
    assert!(e.contains("did not load exactly"), "{e}");
    // Tabs, newlines, backslashes and NULL arrive as they were.
    conn.execute(&format!("delete from {rel}")).unwrap();
    let n = conn.load(&rel, 2, &mut rows(&[("1", Some("a\tb\nc\\d")), ("2", None), ("3", Some("\\N"))]).into_iter()).unwrap();
    assert_eq!(n, 3);
    let got = conn.query(&format!("select s from {rel} order by n")).unwrap().rows;
    assert_eq!(got, vec![vec![Some("a\tb\nc\\d".to_string())], vec![None], vec![Some("\\N".to_string())]]);
    conn.execute(&format!("drop table {rel}")).unwrap();
}

/// Seeds reach PostgreSQL as binary COPY, encoded here from the column types: the
/// table must hold exactly what the server's own CSV parser (`psql \copy`) stores
/// from the same file — boundaries, rounding to the column's scale, quotes,
/// newlines, unicode, NULLs. A value with no certain binary form (a date in
/// another style) sends the whole file down the text path, with the same result.
#[test]
fn postgres_binary_copy_stores_what_psql_copy_stores() {
    let mut db = setup();
    db.env.push(("DVT_TRACE".into(), "1".into()));
    let types = "{i: integer, b: bigint, s: smallint, n: 'numeric(12,3)', f: double precision, r: real, d: date, ts: timestamp, \
                 t: text, v: 'varchar(10)', flag: boolean}";
    let header = "i,b,s,n,f,r,d,ts,t,v,flag\n";
    let good = format!(
        "{header}-2147483648,9223372036854775807,-32768,-0.0005,1e300,3.4e38,0001-01-01,2000-01-01 00:00:00.000001,\"a \"\"quoted\"\" value\",abcdefghij,TRUE\n\
         2147483647,-9223372036854775808,32767,123456789.9995,5e-324,1e-45,9999-12-31,1999-12-31T23:59:59.999999,\"line1\nline2\",ünï,f\n\
         ,,,,,,,,,,\n\
         0, 12 ,+7,0.0001,-2.5,0.1,2024-02-29,1970-01-01 00:00:00,\"\",x,yes\n\
         1,2,3,-99.9,0,-0,2000-01-01,2038-01-19 03:14:08.5,\"semi;colon, comma\",\" pad \",0\n"
    );
    let odd = format!("{header}1,2,3,4.5,1.5,2.5,Jan 5 2024,2024-01-05 10:00:00,x,y,t\n");
    for (name, csv) in [("bin_good_pg", &good), ("bin_odd_pg", &odd)] {
        std::fs::write(db.project.join(format!("seeds/pg_seeds/{name}.csv")), csv).unwrap();
    }
    std::fs::write(
        db.project.join("seeds/pg_seeds/bin.yml"),
        format!(
            "version: 2\nseeds:\n  - name: bin_good_pg\n    config:\n      column_types: {types}\n  - name: bin_odd_pg\n    config:\n      column_types: {types}\n"
        ),
    )
    .unwrap();
    let r = dvtr(&db, &["seed", "-s", "bin_good_pg", "bin_odd_pg"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("bin_good_pg.csv: text COPY"), "the binary path declined: {}", r.stderr);
    assert!(r.stderr.contains("bin_odd_pg.csv: text COPY (date `Jan 5 2024`)"), "{}", r.stderr);
    let mut pg = connect(&db, "pg");
    let s = &db.schema;
    for name in ["bin_good_pg", "bin_odd_pg"] {
        pg.execute(&format!("drop table if exists {s}.{name}_ref; create table {s}.{name}_ref (like {s}.{name})")).unwrap();
        let file = db.project.join(format!("seeds/pg_seeds/{name}.csv"));
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &db.env[0].1, "-U", "postgres", "-d", "dvt", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!(
                "\\copy {s}.{name}_ref from '{}' with (format csv, header true, force_null (i, b, s, n, f, r, d, ts, t, v, flag))",
                file.display()
            ))
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut diff = |a: &str, b: &str| {
            pg.query(&format!("select count(*) from (select * from {s}.{a} except all select * from {s}.{b}) x")).unwrap().rows[0][0]
                .clone()
        };
        assert_eq!(diff(name, &format!("{name}_ref")), Some("0".into()), "{name}: rows only DVT stored");
        assert_eq!(diff(&format!("{name}_ref"), name), Some("0".into()), "{name}: rows only \\copy stored");
        let n = pg.query(&format!("select count(*), count(distinct n), max(length(t)) from {s}.{name}")).unwrap().rows;
        assert!(n[0][0].as_deref() == Some(if name == "bin_good_pg" { "5" } else { "1" }), "{n:?}");
    }
    // Rounded to the column's scale, as the server rounds text.
    let rows = pg.query(&format!("select x.n::text as v from {s}.bin_good_pg x where x.n is not null order by x.n")).unwrap().rows;
    let got: Vec<_> = rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(got, ["-99.900", "-0.001", "0.000", "123456790.000"]);
}
