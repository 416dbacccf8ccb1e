//! Buckets and bounded memory (issue 14) on the real servers of `make test`:
//! fragments spilled to a `file` bucket and to an S3 bucket (a local moto
//! server speaking S3's HTTP API) give exactly the rows kept in memory, on
//! every target engine; an unwritable bucket fails the node and leaves the
//! target as it was; a source connection killed mid-read is retried.

use std::time::{Duration, Instant};

use dvt_runtime::connectors::{self, Connection};
use dvt_runtime::credentials::Credentials;

use crate::support::*;

const TARGETS: [&str; 4] = ["pg", "maria", "duck", "lite"];
const KEY: &str = "AKIADVTSPILLKEY7Q2";
const SECRET: &str = "dvt-s3-secret-9f3c1e0xC0FFEE";

fn pg(db: &ServiceProject) -> Box<dyn Connection> {
    let settings = [("port".to_string(), db.env[0].1.clone()), ("dbname".to_string(), "dvt".to_string())];
    connectors::connect(&Credentials::new("pg", "postgres", settings.into_iter().collect(), db.project.clone())).unwrap()
}

fn maria(db: &ServiceProject) -> Box<dyn Connection> {
    let settings =
        [("port".to_string(), db.env[1].1.clone()), ("user".to_string(), "root".to_string()), ("schema".to_string(), db.schema.clone())];
    connectors::connect(&Credentials::new("maria", "mysql", settings.into_iter().collect(), db.project.clone())).unwrap()
}

fn s3_port() -> String {
    std::env::var("DVT_TEST_S3_PORT").expect("DVT_TEST_S3_PORT is not set: run `make test`, which starts the S3 server")
}

/// A PostgreSQL table of every type a fragment carries (9,000 rows: two chunks, an unbounded
/// numeric whose scale grows in the second), a MariaDB lookup table, and one federated model
/// per target engine joining them.
fn typed_project(tag: &str) -> ServiceProject {
    let db = ServiceProject::new(tag);
    let s = &db.schema;
    pg(&db)
        .execute(&format!(
            "create schema if not exists {s};
             create table {s}.typed as select g::bigint as id, g % 3 as k,
               (g * 0.37)::numeric(12, 2) as amt,
               case when g <= 8192 then round(g::numeric / 10, 1) else round(g::numeric / 7, 6) end as n,
               timestamp '2024-02-29 23:59:59.123456' + g * interval '1 second 7 microseconds' as ts,
               timestamptz '2024-03-31 01:30:00.000001+02' + g * interval '1 minute' as tz,
               date '1999-12-31' + g as d,
               case when g % 11 = 0 then null when g % 5 = 0 then 'çà ü 日本 ' || g || E'\\tx' else 'r' || g end as txt,
               case when g % 3 = 0 then null else g % 2 = 0 end as b,
               case when g % 13 = 0 then null else g / 3.0::float8 + 1e-300 end as f
             from generate_series(1, 9000) g"
        ))
        .unwrap();
    let mut m = maria(&db);
    m.execute(&format!("create database if not exists `{s}`")).unwrap();
    m.execute(&format!("create table `{s}`.lk (k int, label varchar(20))")).unwrap();
    m.execute(&format!("insert into `{s}`.lk values (0, 'zero'), (1, 'one ü'), (2, null)")).unwrap();
    std::fs::write(
        db.project.join("models/spill_sources.yml"),
        "version: 2\nsources:\n  - name: typed_src\n    connection: pg\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables: [{name: typed}]\n  - name: lk_src\n    connection: maria\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables: [{name: lk}]\n",
    )
    .unwrap();
    for t in TARGETS {
        std::fs::write(
            db.project.join(format!("models/spill_{t}.sql")),
            format!(
                "{{{{ config(target='{t}', materialized='table') }}}}\nselect t.id, t.amt, t.n, t.ts, t.tz, t.d, t.txt, t.b, t.f, l.label\nfrom {{{{ source('typed_src', 'typed') }}}} t left join {{{{ source('lk_src', 'lk') }}}} l on l.k = t.k\n"
            ),
        )
        .unwrap();
    }
    db
}

fn run_spill_models(db: &ServiceProject) -> Run {
    let mut args = vec!["run", "--full-refresh", "-s"];
    let names: Vec<String> = TARGETS.iter().map(|t| format!("spill_{t}")).collect();
    args.extend(names.iter().map(String::as_str));
    let r = db.dvtr(&args);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    r
}

/// Every row each target holds now, as `dvtr show` prints it (values and their text form).
fn target_rows(db: &ServiceProject) -> Vec<Vec<String>> {
    TARGETS
        .iter()
        .map(|t| {
            let rel = match *t {
                "pg" | "maria" => format!("{}.spill_{t}", db.schema),
                _ => format!("spill_{t}"),
            };
            let r = db.dvtr(&["--target", t, "show", "--limit", "20000", "--inline", &format!("select * from {rel} order by id")]);
            assert_eq!(r.code, 0, "{t}: {}\n{}", r.stdout, r.stderr);
            let mut rows: Vec<String> = r.stdout.lines().filter(|l| l.starts_with("| ")).map(str::to_string).collect();
            assert_eq!(rows.len(), 9001, "{t}: header and 9,000 rows");
            // MariaDB drops ORDER BY inside show's derived table: compare as multisets.
            rows[1..].sort();
            rows
        })
        .collect()
}

/// Panics at the first row that differs, naming the target (not printing 36,000 rows).
fn assert_same(got: &[Vec<String>], want: &[Vec<String>], what: &str) {
    for (t, (g, w)) in TARGETS.iter().zip(got.iter().zip(want)) {
        if let Some((a, b)) = g.iter().zip(w).find(|(a, b)| a != b) {
            panic!("{what}: target {t} differs:\n  got  {a}\n  want {b}");
        }
    }
}

fn budget(db: &ServiceProject, bytes: &str) {
    std::fs::write(
        db.project.join("computes.yml"),
        format!("rt:\n  target: df\n  computes:\n    df:\n      type: datafusion\n      memory_budget: {bytes}\n"),
    )
    .unwrap();
}

fn s3_buckets(db: &ServiceProject, endpoint_port: &str) {
    std::fs::write(
        db.project.join("buckets.yml"),
        format!(
            "rt:\n  target: s3\n  buckets:\n    s3:\n      type: s3\n      bucket: dvt-test\n      region: us-east-1\n      prefix: \"{}/\"\n      endpoint: \"http://127.0.0.1:{endpoint_port}\"\n      access_key_id: \"{{{{ env_var('DVT_ENV_SECRET_S3_KEY') }}}}\"\n      secret_access_key: \"{{{{ env_var('DVT_ENV_SECRET_S3_SECRET') }}}}\"\n",
            db.schema
        ),
    )
    .unwrap();
}

/// Object keys under `prefix` in the test bucket (S3 ListObjectsV2 over HTTP).
fn s3_keys(prefix: &str) -> Vec<String> {
    let url = format!("http://127.0.0.1:{}/dvt-test?list-type=2&prefix={prefix}", s3_port());
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=30).read().decode())", &url])
        .output()
        .unwrap();
    let xml = String::from_utf8_lossy(&out.stdout).to_string();
    xml.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_string).collect()
}

#[test]
fn spilled_fragments_give_the_rows_kept_in_memory_on_every_target_file_and_s3() {
    let mut db = typed_project("spill");
    db.env.push(("DVT_ENV_SECRET_S3_KEY".into(), KEY.into()));
    db.env.push(("DVT_ENV_SECRET_S3_SECRET".into(), SECRET.into()));
    // In memory (the default budget: 256 MiB).
    let r = run_spill_models(&db);
    assert!(!r.stdout.contains("spilled"), "{}", r.stdout);
    let in_memory = target_rows(&db);

    // A 1-byte budget: every fragment goes to the implicit `file` bucket under .dvt/.
    budget(&db, "1");
    let r = run_spill_models(&db);
    assert_eq!(r.stdout.matches("spilled to bucket `local`").count(), 8, "two fragments per node: {}", r.stdout);
    assert_same(&target_rows(&db), &in_memory, "file spill");
    let left: Vec<_> = walk(&db.project.join(".dvt/staging/_dvt_spill")).into_iter().filter(|p| p.ends_with(".parquet")).collect();
    assert!(left.is_empty(), "spill files left behind: {left:?}");

    // The same through S3 (credentials from env_var, rendered by dvtr only).
    s3_buckets(&db, &s3_port());
    assert!(debug_line(&db, "bucket s3 (s3)").contains("  OK  "));
    let r = run_spill_models(&db);
    assert_eq!(r.stdout.matches("spilled to bucket `s3`").count(), 8, "{}", r.stdout);
    assert_same(&target_rows(&db), &in_memory, "s3 spill");
    assert_eq!(s3_keys(&format!("{}/", db.schema)), Vec::<String>::new(), "spill objects left in the bucket");

    // A 64 KiB budget: the first fragment stays in memory until it passes it, then spills.
    budget(&db, "64KiB");
    let r = run_spill_models(&db);
    assert!(r.stdout.contains("spilled to bucket `s3`"), "{}", r.stdout);
    assert_same(&target_rows(&db), &in_memory, "partial spill");

    // No credential in any artifact or output of these runs.
    let c = db.dvtr(&["compile", "-s", "spill_pg", "spill_maria", "spill_duck", "spill_lite"]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    for text in [r.stdout.clone(), r.stderr.clone(), c.stdout, c.stderr] {
        assert!(!text.contains(KEY) && !text.contains(SECRET));
    }
    for p in walk(&db.project.join("target")) {
        let bytes = std::fs::read(&p).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY) && !text.contains(SECRET), "a credential in {p}");
    }
}

/// `dvtr debug`'s row for `item`.
fn debug_line(db: &ServiceProject, item: &str) -> String {
    let r = db.dvtr(&["debug"]);
    assert!(!r.stdout.contains(SECRET) && !r.stdout.contains(KEY));
    r.stdout.lines().find(|l| l.starts_with(item)).unwrap_or_else(|| panic!("no `{item}` row:\n{}", r.stdout)).to_string()
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn an_unwritable_bucket_fails_the_node_and_leaves_its_target_as_it_was() {
    let mut db = typed_project("spillfail");
    db.env.push(("DVT_ENV_SECRET_S3_KEY".into(), KEY.into()));
    db.env.push(("DVT_ENV_SECRET_S3_SECRET".into(), SECRET.into()));
    run_spill_models(&db);
    let before = target_rows(&db);
    budget(&db, "1");
    // The S3 server is unreachable (nothing listens on the port) ...
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    s3_buckets(&db, &closed);
    assert!(debug_line(&db, "bucket s3 (s3)").contains("FAIL"));
    let r = db.dvtr(&["run", "--full-refresh", "-s", "spill_pg", "spill_duck"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ERROR=2") && r.stdout.contains("bucket `s3` (s3)"), "{}", r.stdout);
    assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    // ... and a `file` bucket whose folder cannot be created (a file is in the way).
    std::fs::write(db.project.join("blocked"), "not a folder").unwrap();
    std::fs::write(db.project.join("buckets.yml"), "rt:\n  target: f\n  buckets:\n    f:\n      type: file\n      root: blocked/staging\n")
        .unwrap();
    let r = db.dvtr(&["run", "--full-refresh", "-s", "spill_maria", "spill_lite"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ERROR=2") && r.stdout.contains("bucket `f` (file)"), "{}", r.stdout);
    assert_same(&target_rows(&db), &before, "after the failed runs");
    // The next run, with a working bucket, succeeds.
    s3_buckets(&db, &s3_port());
    let r = run_spill_models(&db);
    assert_eq!(r.stdout.matches("spilled to bucket `s3`").count(), 8, "{}", r.stdout);
    assert_same(&target_rows(&db), &before, "after the next run");
}

/// A thread polling `kill_once` every 50 ms until it says it killed (true) or 30 s passed (false).
fn killer(mut kill_once: impl FnMut() -> bool + Send + 'static) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if kill_once() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })
}

/// Copies source `slow.<view>` (on output `connection`, 50 rows, slow to answer) into
/// DuckDB while `kill_once` (polled until it says it killed the read, at most 30 s)
/// ends the reading connection; the read must be retried and every row written once.
fn copy_with_a_killed_read(db: &ServiceProject, connection: &str, view: &str, kill_once: impl FnMut() -> bool + Send + 'static) {
    let yml = format!(
        "version: 2\nsources:\n  - name: slow\n    connection: {connection}\n    schema: \"{{{{ env_var('DVT_TEST_SCHEMA') }}}}\"\n    tables: [{{name: {view}}}]\n"
    );
    std::fs::write(db.project.join("models/slow_src.yml"), yml).unwrap();
    let model = format!("{{{{ config(target='duck', materialized='table') }}}}\nselect id, v from {{{{ source('slow', '{view}') }}}}\n");
    std::fs::write(db.project.join("models/slow_copy.sql"), model).unwrap();
    let killer = killer(kill_once);
    let r = db.dvtr(&["run", "-s", "slow_copy"]);
    assert!(killer.join().unwrap(), "the read was never seen");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("retrying fragment") && r.stderr.contains("attempt 2 of 4"), "{}", r.stderr);
    assert!(r.stdout.contains("50 rows"), "{}", r.stdout);
    let out = db.dvtr(&["--target", "duck", "show", "--inline", "select count(*) as c, count(distinct v) as d from slow_copy"]);
    assert!(out.stdout.contains("| 50 | 50 |"), "{}", out.stdout);
}

#[test]
fn a_source_connection_killed_during_a_read_is_retried_and_the_node_succeeds() {
    let db = ServiceProject::new("killread");
    let s = db.schema.clone();
    // A source that takes 1.5 s to answer, so the read can be interrupted.
    pg(&db)
        .execute(&format!(
            "create schema if not exists {s};
             create function {s}.slow_rows() returns table(id int, v text) language plpgsql as $$
               begin perform pg_sleep(1.5); return query select g, 'v' || g from generate_series(1, 50) g; end $$;
             create view {s}.slow_marker_view as select * from {s}.slow_rows()"
        ))
        .unwrap();
    // The server terminates the first backend seen reading the view.
    let mut conn = pg(&db);
    copy_with_a_killed_read(&db, "pg", "slow_marker_view", move || {
        let sql = "select pg_terminate_backend(pid) from pg_stat_activity where query like '%slow_marker_view%' and pid <> pg_backend_pid() and state = 'active'";
        !conn.query(sql).unwrap().rows.is_empty()
    });
}

/// A streamed fragment whose connection dies after rows already reached the
/// compute (and the target's staging load): the node starts over and writes
/// every row exactly once.
#[test]
fn a_streamed_fragment_killed_mid_stream_restarts_its_node() {
    let db = ServiceProject::new("killstream");
    let s = db.schema.clone();
    // 12,000 rows at once (more than one 8,192-row chunk), then 1 ms a row.
    pg(&db)
        .execute(&format!(
            "create schema if not exists {s};
             create view {s}.stream_marker_view as
               select g as id, 'v' || g as v from generate_series(1, 16000) g
               where g <= 12000 or pg_sleep(0.001)::text = ''"
        ))
        .unwrap();
    std::fs::write(
        db.project.join("models/slow_src.yml"),
        "version: 2\nsources:\n  - name: slow\n    connection: pg\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables: [{name: stream_marker_view}]\n",
    )
    .unwrap();
    std::fs::write(
        db.project.join("models/stream_copy.sql"),
        "{{ config(target='duck', materialized='table') }}\nselect id, v from {{ source('slow', 'stream_marker_view') }}\n",
    )
    .unwrap();
    let mut conn = pg(&db);
    let reading =
        "select pid from pg_stat_activity where query like '%stream_marker_view%' and pid <> pg_backend_pid() and state = 'active'";
    let mut seen: Option<Instant> = None;
    let killer = killer(move || {
        let Some(pid) = conn.query(reading).unwrap().rows.first().and_then(|r| r[0].clone()) else { return false };
        // Killed 2 s into the read: the fast rows are in the compute by then.
        if seen.get_or_insert_with(Instant::now).elapsed() < Duration::from_secs(2) {
            return false;
        }
        conn.execute(&format!("select pg_terminate_backend({pid})")).unwrap();
        true
    });
    let r = db.dvtr(&["run", "-s", "stream_copy"]);
    assert!(killer.join().unwrap(), "the read was never seen");
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("(streamed: its node starts over)") && r.stderr.contains("attempt 2 of 4"), "{}", r.stderr);
    assert!(r.stdout.contains("16000 rows") && r.stdout.contains("bytes streamed"), "{}", r.stdout);
    let out =
        db.dvtr(&["--target", "duck", "show", "--inline", "select count(*) as c, count(distinct id) as d, sum(id) as s from stream_copy"]);
    assert!(out.stdout.contains("| 16000 | 16000 | 128008000 |"), "{}", out.stdout);
}

/// The same on MariaDB: the server ends the fragment's connection (`KILL`).
#[test]
fn a_mariadb_source_connection_killed_during_a_read_is_retried() {
    let db = ServiceProject::new("killmaria");
    let s = db.schema.clone();
    let mut admin = db.connect("maria");
    admin.execute(&format!("create database if not exists `{s}`")).unwrap();
    admin.execute(&format!("create table `{s}`.slow_base (id int, v varchar(10))")).unwrap();
    admin.execute(&format!("insert into `{s}`.slow_base select seq, concat('v', seq) from `{s}`.seq_1_to_50")).unwrap();
    // 30 ms a row: 1.5 s to answer.
    admin.execute(&format!("create view `{s}`.slow_maria_view as select id, v from `{s}`.slow_base where sleep(0.03) = 0")).unwrap();
    copy_with_a_killed_read(&db, "maria", "slow_maria_view", move || {
        let reading = "select id from information_schema.processlist where info like '%slow_maria_view%' and info not like '%processlist%' and id <> connection_id()";
        match admin.query(reading).unwrap().rows.first().and_then(|r| r[0].clone()) {
            Some(id) => admin.execute(&format!("kill {id}")).is_ok(),
            None => false,
        }
    });
}

/// Files for the bucket-source test, written by DuckDB (Python package of `make test`):
/// events in two Parquet files, labels as a `;`-separated CSV, notes as JSON lines.
fn write_lake(dir: &std::path::Path) {
    let py = std::env::var("DVT_TEST_PYTHON").expect("DVT_TEST_PYTHON is not set: run `make test`");
    std::fs::create_dir_all(dir.join("raw/events")).unwrap();
    let script = format!(
        "import duckdb\nc = duckdb.connect()\nd = {dir:?}\n\
         ev = \"select i as id, i % 7 + 1 as customer_id, i % 4 as k, (i * 0.25)::decimal(10,2) as amount, timestamp '2024-01-01 00:00:00.123456' + i * interval 1 second as ts, 'ñ ' || i as note from range({{}}, {{}}) t(i)\"\n\
         c.execute(f\"copy ({{ev.format(1, 2501)}}) to '{{d}}/raw/events/part-0.parquet' (format parquet)\")\n\
         c.execute(f\"copy ({{ev.format(2501, 5001)}}) to '{{d}}/raw/events/part-1.parquet' (format parquet)\")\n\
         c.execute(f\"copy (select i as k, 'label ' || i as label from range(0, 3) t(i)) to '{{d}}/raw/labels.csv' (header, delimiter ';')\")\n\
         c.execute(f\"copy (select i as customer_id, 'vip' as tier from range(1, 4) t(i)) to '{{d}}/raw/tiers.jsonl' (format json)\")\n",
        dir = dir.display().to_string()
    );
    let out = std::process::Command::new(py).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Uploads every file under `dir` to the test S3 bucket under `prefix` (S3 PutObject over HTTP).
fn upload(dir: &std::path::Path, prefix: &str) {
    for p in walk(dir) {
        let key = format!("{prefix}{}", p.strip_prefix(&format!("{}/", dir.display())).unwrap());
        let url = format!("http://127.0.0.1:{}/dvt-test/{key}", s3_port());
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=open(sys.argv[2], 'rb').read(), method='PUT', headers={'Content-Type': 'application/octet-stream'}), timeout=30)", &url, &p])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Seeds whose files are in a bucket (`external:`), on a folder and on S3: the
/// CSV typed at load time exactly as the same file in `seeds/` is at compile
/// time, Parquet and JSON lines with their files' types; a missing file fails
/// the seed and leaves its table as it was.
#[test]
fn seeds_load_from_a_bucket_path_on_a_folder_and_on_s3() {
    let db = ServiceProject::new("bseed");
    let s = db.schema.clone();
    let csv = "id,name,amount,joined,active,code,with space\n1,Ann,1.50,2024-01-02,true,007,x\n2,Bö ñ,,2024-02-03,false,+5,\n3,\"Cy, Jr\",12.25,,true,12%,z\n";
    std::fs::write(db.project.join("seeds/pg_seeds/local_people.csv"), csv).unwrap();
    let lake = db.project.join("lake");
    write_lake(&lake);
    std::fs::create_dir_all(lake.join("seeds")).unwrap();
    std::fs::write(lake.join("seeds/people.csv"), csv).unwrap();
    upload(&lake, &format!("{s}/"));
    std::fs::write(
        db.project.join("buckets.yml"),
        format!(
            "rt:\n  buckets:\n    lake: {{type: file, root: lake}}\n    s3lake: {{type: s3, bucket: dvt-test, prefix: \"{s}/\", region: us-east-1, endpoint: \"http://127.0.0.1:{}\", access_key_id: k, secret_access_key: \"{SECRET}\"}}\n",
            s3_port()
        ),
    )
    .unwrap();
    let seeds_yml = |bucket: &str, people: &str| {
        format!(
            "version: 2\nseeds:\n  - name: lake_people\n    config: {{bucket: {bucket}, external: {{location: {people}}}}}\n  \
             - name: lake_events\n    config: {{bucket: {bucket}, external: {{location: raw/events/part-1.parquet}}}}\n  \
             - name: lake_tiers\n    config: {{bucket: {bucket}, external: {{location: raw/tiers.jsonl}}, column_types: {{customer_id: integer}}}}\n"
        )
    };
    let show = |sql: &str| {
        let r = db.dvtr(&["--target", "pg", "show", "--limit", "100", "--inline", sql]);
        assert_eq!(r.code, 0, "{sql}: {}", r.stderr);
        r.stdout
    };
    let select = ["seed", "-s", "lake_people", "lake_events", "lake_tiers", "local_people"];
    for bucket in ["lake", "s3lake"] {
        std::fs::write(db.project.join("seeds/pg_seeds/lake_seeds.yml"), seeds_yml(bucket, "seeds/people.csv")).unwrap();
        let c = db.dvtc(&["compile", "-s", "lake_people", "-o", "seed_plan.json"]);
        assert_eq!(c.code, 0, "{}", c.stderr);
        let plan = std::fs::read_to_string(db.project.join("seed_plan.json")).unwrap();
        assert!(
            plan.contains(&format!("\"bucket\": \"{bucket}\""))
                && plan.contains("\"file\": \"seeds/people.csv\"")
                && !plan.contains(SECRET),
            "{plan}"
        );
        let r = db.dvtr(&select);
        assert_eq!(r.code, 0, "{bucket}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("2500 rows loaded") && !r.stdout.contains(SECRET) && !r.stderr.contains(SECRET), "{}", r.stdout);
        // Same types and values as the file loaded from seeds/.
        let columns = |t: &str| {
            show(&format!(
                "select column_name, data_type from information_schema.columns where table_schema = '{s}' and table_name = '{t}' order by ordinal_position"
            ))
        };
        assert_eq!(columns("lake_people"), columns("local_people"), "{bucket}");
        assert!(columns("lake_people").contains("numeric") && columns("lake_people").contains("| code "), "{}", columns("lake_people"));
        let rows = |t: &str| show(&format!("select * from {s}.{t} order by id"));
        assert_eq!(rows("lake_people"), rows("local_people"), "{bucket}");
        assert!(rows("lake_people").contains("Cy, Jr") && rows("lake_people").contains("007"), "{}", rows("lake_people"));
        let events = show(&format!("select count(*) as n, sum(amount) as s, min(note) as f from {s}.lake_events"));
        assert!(events.contains("| 2500 | 2344062.50 | ñ 2501 |"), "{events}");
        assert!(columns("lake_tiers").contains("| customer_id | integer "), "{}", columns("lake_tiers"));
    }
    // A missing file: the seed fails, naming the file and bucket; its table stays.
    std::fs::write(db.project.join("seeds/pg_seeds/lake_seeds.yml"), seeds_yml("s3lake", "seeds/missing.csv")).unwrap();
    let r = db.dvtr(&["seed", "-s", "lake_people"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("seeds/missing.csv") && r.stdout.contains("s3lake") && !r.stdout.contains(SECRET), "{}", r.stdout);
    assert!(show(&format!("select count(*) as n from {s}.lake_people")).contains("| 3 |"));
    // `external` without a file path is refused at compile time, at its line.
    std::fs::write(db.project.join("seeds/pg_seeds/lake_seeds.yml"), seeds_yml("lake", "raw/")).unwrap();
    let c = db.dvtc(&["compile", "-s", "lake_people"]);
    assert_eq!(c.code, 2, "{}", c.stderr);
    assert!(c.stderr.contains("lake_seeds.yml:3") && c.stderr.contains("external"), "{}", c.stderr);
}

const LAKE_SOURCES: &str = "version: 2\nsources:\n  - name: raw\n    connection: BUCKET\n    tables:\n      - name: events\n      - name: labels\n        external: {location: raw/labels.csv, format: csv, delimiter: ';'}\n      - name: tiers\n        external: {location: raw/tiers.jsonl, format: json}\n";

const LAKE_QUERY: &str = "select c.name, l.label, t.tier, count(*) as n, sum(e.amount) as total, max(e.ts) as last_ts, min(e.note) as first_note \
     from EVENTS e join CUSTOMERS c on c.id = e.customer_id left join LABELS l on l.k = e.k left join TIERS t on t.customer_id = e.customer_id \
     group by c.name, l.label, t.tier";

#[test]
fn bucket_sources_in_parquet_csv_and_json_join_a_database_table_from_a_folder_and_from_s3() {
    let db = ServiceProject::new("lake");
    let s = db.schema.clone();
    write_lake(&db.project.join("lake"));
    // The same rows in PostgreSQL, for the same query run co-located there.
    pg(&db)
        .execute(&format!(
            "create schema if not exists {s};
             create table {s}.customers as select g as id, 'customer ' || g as name from generate_series(1, 7) g;
             create table {s}.events as select i::bigint as id, i % 7 + 1 as customer_id, i % 4 as k, (i * 0.25)::numeric(10,2) as amount,
               timestamp '2024-01-01 00:00:00.123456' + i * interval '1 second' as ts, 'ñ ' || i as note from generate_series(1, 5000) i;
             create table {s}.labels as select i::bigint as k, 'label ' || i as label from generate_series(0, 2) i;
             create table {s}.tiers as select i::bigint as customer_id, 'vip' as tier from generate_series(1, 3) i"
        ))
        .unwrap();
    let colocated = LAKE_QUERY
        .replace("EVENTS", &format!("{s}.events"))
        .replace("CUSTOMERS", &format!("{s}.customers"))
        .replace("LABELS", &format!("{s}.labels"))
        .replace("TIERS", &format!("{s}.tiers"));
    let sorted = |out: String| {
        let mut rows: Vec<String> = out.lines().filter(|l| l.starts_with("| ")).skip(1).map(str::to_string).collect();
        rows.sort();
        rows
    };
    let r = db.dvtr(&["--target", "pg", "show", "--limit", "1000", "--inline", &colocated]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = sorted(r.stdout);
    assert_eq!(want.len(), 7 * 4, "7 customers x 4 label values");

    std::fs::write(
        db.project.join("models/pg_customers.yml"),
        "version: 2\nsources:\n  - name: app\n    connection: pg\n    schema: \"{{ env_var('DVT_TEST_SCHEMA') }}\"\n    tables: [{name: customers}]\n",
    )
    .unwrap();
    let model = LAKE_QUERY
        .replace("EVENTS", "{{ source('raw', 'events') }}")
        .replace("CUSTOMERS", "{{ source('app', 'customers') }}")
        .replace("LABELS", "{{ source('raw', 'labels') }}")
        .replace("TIERS", "{{ source('raw', 'tiers') }}");
    std::fs::write(db.project.join("models/lake_report.sql"), format!("{{{{ config(target='pg', materialized='table') }}}}\n{model}\n"))
        .unwrap();
    upload(&db.project.join("lake"), &format!("{s}/"));
    std::fs::write(
        db.project.join("buckets.yml"),
        format!(
            "rt:\n  buckets:\n    lake: {{type: file, root: lake}}\n    s3lake: {{type: s3, bucket: dvt-test, prefix: \"{s}/\", region: us-east-1, endpoint: \"http://127.0.0.1:{}\", access_key_id: k, secret_access_key: \"{SECRET}\"}}\n",
            s3_port()
        ),
    )
    .unwrap();
    for bucket in ["lake", "s3lake"] {
        std::fs::write(db.project.join("models/lake_sources.yml"), LAKE_SOURCES.replace("BUCKET", bucket)).unwrap();
        let c = dvtc_env(&db.project, &["compile", "-s", "lake_report", "-o", "lake_plan.json"], &[("DVT_TEST_SCHEMA", &s)]);
        assert_eq!(c.code, 0, "{}", c.stderr);
        let plan = std::fs::read_to_string(db.project.join("lake_plan.json")).unwrap();
        assert!(plan.contains("\"external\"") && plan.contains("\"type\": \"bucket\"") && !plan.contains(SECRET), "{plan}");
        let r = db.dvtr(&["run", "-s", "lake_report"]);
        assert_eq!(r.code, 0, "{bucket}: {}\n{}", r.stdout, r.stderr);
        let got = db.dvtr(&["--target", "pg", "show", "--limit", "1000", "--inline", &format!("select * from {s}.lake_report")]);
        assert_eq!(sorted(got.stdout), want, "{bucket}: the federated rows differ from PostgreSQL's on co-located data");
        // `show -s` computes the same rows without writing.
        let shown = db.dvtr(&["show", "-s", "lake_report", "--limit", "1000"]);
        assert_eq!(sorted(shown.stdout).len(), want.len(), "{}", shown.stderr);
        assert!(!r.stdout.contains(SECRET) && !r.stderr.contains(SECRET));
    }
    // A model written to a bucket (a view there is coerced to files), read back by a model on PostgreSQL.
    for bucket in ["lake", "s3lake"] {
        std::fs::write(
            db.project.join("models/to_lake.sql"),
            format!("{{{{ config(target='{bucket}', schema='marts') }}}}\nselect * from {{{{ ref('lake_report') }}}}\n"),
        )
        .unwrap();
        std::fs::write(
            db.project.join("models/from_lake.sql"),
            "{{ config(target='pg', materialized='table') }}\nselect * from {{ ref('to_lake') }}\n",
        )
        .unwrap();
        let r = db.dvtr(&["run", "-s", "to_lake", "from_lake"]);
        assert_eq!(r.code, 0, "{bucket}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(&format!("28 rows into bucket `{bucket}` at main_marts/to_lake/part-0.parquet")), "{}", r.stdout);
        let got = db.dvtr(&["--target", "pg", "show", "--limit", "1000", "--inline", &format!("select * from {s}.from_lake")]);
        assert_eq!(sorted(got.stdout), want, "{bucket}: rows changed on their way through the bucket");
    }
    assert_eq!(s3_keys(&format!("{s}/main_marts/")), [format!("{s}/main_marts/to_lake/part-0.parquet")]);
    // The S3 server unreachable: the node fails and the model's file stays as it was.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let yml = std::fs::read_to_string(db.project.join("buckets.yml")).unwrap();
    std::fs::write(db.project.join("buckets.yml"), yml.replace(&format!("127.0.0.1:{}", s3_port()), &format!("127.0.0.1:{closed}")))
        .unwrap();
    let r = db.dvtr(&["run", "-s", "to_lake"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    std::fs::write(db.project.join("buckets.yml"), yml).unwrap();
    let r = db.dvtr(&["run", "-s", "from_lake"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let got = db.dvtr(&["--target", "pg", "show", "--limit", "1000", "--inline", &format!("select * from {s}.from_lake")]);
    assert_eq!(sorted(got.stdout), want);
    // Incremental models and seeds are not written to buckets: clear errors at compile time.
    std::fs::write(db.project.join("models/to_lake.sql"), "{{ config(target='lake', materialized='incremental') }}\nselect 1 as x\n")
        .unwrap();
    let r = db.dvtr(&["run", "-s", "to_lake"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("models/to_lake.sql") && r.stderr.contains("rewritten whole"), "{}", r.stderr);
    std::fs::remove_file(db.project.join("models/to_lake.sql")).unwrap();
    std::fs::remove_file(db.project.join("models/from_lake.sql")).unwrap();
    // A bad format names the file and line.
    std::fs::write(
        db.project.join("models/lake_sources.yml"),
        LAKE_SOURCES.replace("BUCKET", "lake").replace("format: csv", "format: xlsx"),
    )
    .unwrap();
    let r = db.dvtr(&["run", "-s", "lake_report"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("models/lake_sources.yml:") && r.stderr.contains("xlsx"), "{}", r.stderr);
}
