//! Fault injection on real servers and files: `dvtr` SIGKILLed mid-write (seeds,
//! a federated result streaming into PostgreSQL, an incremental merge, tables
//! written into SQLite and DuckDB files), the
//! target's connection killed mid-COPY (PostgreSQL) and mid-LOAD DATA (MariaDB),
//! the file of an SQLite or DuckDB target full, a server down at start. After each
//! fault the target relation is exactly as before (row count and checksum), and
//! the next run (or `dvtr retry`) completes and leaves no staging relation.

use std::io::Write;
use std::time::{Duration, Instant};

use dvt_runtime::connectors::Connection;

use crate::support::*;

/// A seed of `rows` rows whose values depend on `version`, so each load is recognisable.
fn write_seed(p: &ServiceProject, target: &str, name: &str, rows: usize, version: u32) {
    let path = p.project.join(format!("seeds/{target}_seeds/{name}.csv"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "id,v,label").unwrap();
    for i in 0..rows {
        writeln!(f, "{i},{},row {i} of version {version}", i as u64 * u64::from(version)).unwrap();
    }
}

/// Row count and an order-independent checksum of a relation's rows.
fn fingerprint(conn: &mut dyn Connection, rel: &str) -> (String, String) {
    let r = conn.query(&format!("select count(*), sum(id), sum(v), max(label), min(label) from {rel}")).unwrap();
    let row = &r.rows[0];
    (row[0].clone().unwrap_or_default(), format!("{:?}", &row[1..]))
}

/// The same through `dvtr show` in another process (an embedded DuckDB file is
/// locked by the process that opens it, and this one must not hold it).
fn fingerprint_shown(p: &ServiceProject, target: &str, rel: &str) -> (String, String) {
    let sql = format!("select count(*) as n, sum(id) as s, sum(v) as t, max(label) as hi, min(label) as lo from {rel}");
    let r = p.dvtr(&["--target", target, "show", "--inline", &sql]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let row =
        r.stdout.lines().filter(|l| l.starts_with('|') && !l.contains("---")).nth(1).unwrap_or_else(|| panic!("{}", r.stdout)).to_string();
    (row.split('|').nth(1).unwrap_or_default().trim().to_string(), row)
}

/// Staging or backup relations DVT left in a schema.
fn leftovers(conn: &mut dyn Connection, schema_filter: &str) -> Vec<String> {
    let r =
        conn.query(&format!("select table_name from information_schema.tables where {schema_filter} and table_name like '%dvt%'")).unwrap();
    r.rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).collect()
}

/// Waits until `probe` returns something (polling), at most `limit`.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = probe() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

const ROWS: usize = 400_000;

#[test]
fn postgres_seed_survives_sigkill_of_dvtr_and_a_killed_copy_connection() {
    let p = ServiceProject::new("fault_pg");
    let rel = format!("{}.big_pg", p.schema);
    write_seed(&p, "pg", "big_pg", ROWS, 1);
    let r = p.dvtr(&["seed", "-s", "big_pg"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut admin = p.connect("pg");
    let before = fingerprint(admin.as_mut(), &rel);
    assert_eq!(before.0, ROWS.to_string());
    let copying = format!(
        "select pid from pg_stat_activity where query ilike 'copy %{}%' and state = 'active' and pid <> pg_backend_pid()",
        p.schema
    );

    // 1. dvtr is SIGKILLed while its COPY streams the new version.
    write_seed(&p, "pg", "big_pg", ROWS, 2);
    let mut child = p.command(&bin("dvtr")).args(["seed", "-s", "big_pg"]).spawn().unwrap();
    let seen = wait_for(Duration::from_secs(60), || admin.query(&copying).ok().filter(|r| !r.rows.is_empty()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_some(), "the COPY was never seen in flight");
    assert_eq!(fingerprint(admin.as_mut(), &rel), before, "a killed dvtr changed the seed");

    // 2. The server ends the COPY's connection (pg_terminate_backend): the node fails, nothing changes.
    let child = p.command(&bin("dvtr")).args(["seed", "-s", "big_pg"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = wait_for(Duration::from_secs(60), || admin.query(&copying).ok().and_then(|r| r.rows.first().cloned()?.first().cloned()?));
    let pid = pid.expect("the COPY was never seen in flight");
    admin.query(&format!("select pg_terminate_backend({pid})")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("ERROR=1"), "{stdout}");
    assert_eq!(fingerprint(admin.as_mut(), &rel), before, "a failed COPY changed the seed");

    // `dvtr retry` completes the load, and no staging relation is left.
    let r = p.dvtr(&["retry"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let after = fingerprint(admin.as_mut(), &rel);
    assert_eq!(after.0, ROWS.to_string());
    assert_ne!(after, before, "the retry loaded version 2");
    assert_eq!(leftovers(admin.as_mut(), &format!("table_schema = '{}'", p.schema)), Vec::<String>::new());
}

/// A federated model (DuckDB -> PostgreSQL) whose binary COPY of the result is cut
/// by SIGKILL: the PostgreSQL table keeps its rows; the next run replaces them.
#[test]
fn a_federated_write_into_postgres_survives_sigkill_of_dvtr() {
    let p = ServiceProject::new("fault_fed");
    let write_models = |version: u32| {
        std::fs::write(
            p.project.join("models/big_src.sql"),
            format!(
                "{{{{ config(target='duck', materialized='table') }}}}\nselect i as id, i * {version} as v, 'row ' || i || ' of version {version}' as label from range({ROWS}) t(i)\n"
            ),
        )
        .unwrap();
        std::fs::write(
            p.project.join("models/big_fed.sql"),
            "{{ config(target='pg', materialized='table') }}\nselect id, v, label from {{ ref('big_src') }}\n",
        )
        .unwrap();
    };
    write_models(1);
    let r = p.dvtr(&["run", "-s", "big_src", "big_fed"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("big_fed") && r.stdout.contains(&format!("{ROWS} rows")), "{}", r.stdout);
    let rel = format!("{}.big_fed", p.schema);
    let mut admin = p.connect("pg");
    let before = fingerprint(admin.as_mut(), &rel);
    assert_eq!(before.0, ROWS.to_string());
    write_models(2);
    let r = p.dvtr(&["run", "-s", "big_src"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let copying = format!(
        "select pid from pg_stat_activity where query ilike 'copy %{}%' and state = 'active' and pid <> pg_backend_pid()",
        p.schema
    );
    let mut child = p.command(&bin("dvtr")).args(["run", "-s", "big_fed"]).spawn().unwrap();
    let seen = wait_for(Duration::from_secs(60), || admin.query(&copying).ok().filter(|r| !r.rows.is_empty()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_some(), "the COPY of the federated result was never seen in flight");
    assert_eq!(fingerprint(admin.as_mut(), &rel), before, "a killed dvtr changed the federated table");
    let r = p.dvtr(&["run", "-s", "big_fed"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let after = fingerprint(admin.as_mut(), &rel);
    assert_eq!(after.0, ROWS.to_string());
    assert_ne!(after, before);
    assert_eq!(leftovers(admin.as_mut(), &format!("table_schema = '{}'", p.schema)), Vec::<String>::new());
}

#[test]
fn mariadb_seed_survives_a_killed_load_data_connection_and_sigkill() {
    let p = ServiceProject::new("fault_maria");
    let rel = format!("`{}`.big_maria", p.schema);
    write_seed(&p, "maria", "big_maria", ROWS, 1);
    let r = p.dvtr(&["seed", "-s", "big_maria"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let mut admin = p.connect("maria");
    let before = fingerprint(admin.as_mut(), &rel);
    assert_eq!(before.0, ROWS.to_string());
    let loading = "select id from information_schema.processlist where info like 'LOAD DATA%' and id <> connection_id()";

    write_seed(&p, "maria", "big_maria", ROWS, 2);
    let child = p.command(&bin("dvtr")).args(["seed", "-s", "big_maria"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let id = wait_for(Duration::from_secs(60), || admin.query(loading).ok().and_then(|r| r.rows.first().cloned()?.first().cloned()?));
    let id = id.expect("the LOAD DATA was never seen in flight");
    admin.execute(&format!("kill {id}")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(fingerprint(admin.as_mut(), &rel), before, "a killed LOAD DATA changed the seed");

    let mut child = p.command(&bin("dvtr")).args(["seed", "-s", "big_maria"]).spawn().unwrap();
    let seen = wait_for(Duration::from_secs(60), || admin.query(loading).ok().filter(|r| !r.rows.is_empty()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_some(), "the LOAD DATA was never seen in flight");
    assert_eq!(fingerprint(admin.as_mut(), &rel), before, "a killed dvtr changed the seed");

    let r = p.dvtr(&["seed", "-s", "big_maria"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_ne!(fingerprint(admin.as_mut(), &rel), before);
    assert_eq!(leftovers(admin.as_mut(), &format!("table_schema = '{}'", p.schema)), Vec::<String>::new());
}

/// A model on an embedded target whose file cannot grow (RLIMIT_FSIZE, as a full
/// disk: writes fail with EFBIG) fails cleanly; the table is as before; the next
/// run without the limit succeeds.
#[test]
fn a_full_disk_under_sqlite_and_duckdb_targets_leaves_the_table_as_it_was() {
    let p = ServiceProject::new("fault_disk");
    let model = |target: &str, version: u32| {
        let series = if target == "lite" {
            "with recursive c(i) as (select 0 union all select i + 1 from c where i < 199999) select i as id, i * {v} as v, 'row ' || i || ' of version {v}' as label from c"
        } else {
            "select i as id, i * {v} as v, 'row ' || i || ' of version {v}' as label from range(200000) t(i)"
        };
        let sql = format!("{{{{ config(target='{target}', materialized='table') }}}}\n{}\n", series.replace("{v}", &version.to_string()));
        std::fs::write(p.project.join(format!("models/big_{target}.sql")), sql).unwrap();
    };
    for (target, rel) in [("lite", "main.big_lite"), ("duck", "main.big_duck")] {
        model(target, 1);
        let r = p.dvtr(&["run", "-s", &format!("big_{target}")]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let before = fingerprint_shown(&p, target, rel);
        assert_eq!(before.0, "200000");
        let file = p.env.iter().find(|(k, _)| k == if target == "lite" { "DVT_TEST_SQLITE" } else { "DVT_TEST_DUCKDB" }).unwrap().1.clone();
        let size = std::fs::metadata(&file).unwrap().len();
        // The file may not grow by more than 64 KiB (ulimit -f counts 1,024-byte blocks).
        model(target, 2);
        let script = format!("trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"", size / 1024 + 64);
        let out = p
            .command(std::path::Path::new("bash"))
            .args(["-c", &script, bin("dvtr").to_str().unwrap(), "run", "-s", &format!("big_{target}")])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{target}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("ERROR=1"), "{target}: {stdout}");
        assert_eq!(fingerprint_shown(&p, target, rel), before, "{target}: a full disk changed the table");
        let r = p.dvtr(&["retry"]);
        assert_eq!(r.code, 0, "{target}: {}\n{}", r.stdout, r.stderr);
        let after = fingerprint_shown(&p, target, rel);
        assert_eq!(after.0, "200000");
        assert_ne!(after, before, "{target}: the retry wrote version 2");
    }
}

/// A server that is down when the run starts: a clear error naming the output,
/// no panic, nothing else touched.
#[test]
fn a_server_down_at_start_is_a_clear_error() {
    let mut p = ServiceProject::new("fault_down");
    for (k, v) in p.env.iter_mut() {
        if k == "DVT_TEST_PG_PORT" {
            *v = "1".into(); // nothing listens on port 1
        }
    }
    let r = p.dvtr(&["run", "-s", "pg_table"]);
    assert_ne!(r.code, 0);
    assert!(!r.stderr.contains("panicked") && !r.stdout.contains("panicked"), "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("pg") && (all.contains("refused") || all.contains("connect")), "{all}");
}

/// An incremental merge into PostgreSQL (every row changed) cut by SIGKILL while
/// its statements run in the target: the table keeps its rows; the next run merges.
#[test]
fn an_incremental_merge_into_postgres_survives_sigkill_of_dvtr() {
    let p = ServiceProject::new("fault_merge");
    let model = |version: u32| {
        let sql = format!(
            "{{{{ config(target='pg', materialized='incremental', unique_key='id') }}}}\n\
             select i as id, i * {version} as v, 'row ' || i || ' of version {version}' as label from generate_series(0, {}) as t(i)\n",
            ROWS - 1
        );
        std::fs::write(p.project.join("models/big_inc.sql"), sql).unwrap();
    };
    model(1);
    let r = p.dvtr(&["run", "-s", "big_inc"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let rel = format!("{}.big_inc", p.schema);
    let mut admin = p.connect("pg");
    let before = fingerprint(admin.as_mut(), &rel);
    assert_eq!(before.0, ROWS.to_string());
    model(2);
    // The merge's own statements (delete of matched keys, insert of the new rows), not the staging build.
    let merging = format!(
        "select pid from pg_stat_activity where state = 'active' and pid <> pg_backend_pid() \
         and (query ilike 'delete from%{0}%big_inc%' or query ilike 'insert into%{0}%big_inc%' or query ilike 'merge into%{0}%big_inc%') \
         and query not ilike 'create%'",
        p.schema
    );
    let mut child = p.command(&bin("dvtr")).args(["run", "-s", "big_inc"]).spawn().unwrap();
    let seen = wait_for(Duration::from_secs(60), || admin.query(&merging).ok().filter(|r| !r.rows.is_empty()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen.is_some(), "the merge was never seen in flight");
    // The killed client's transaction is rolled back by the server once it notices.
    let settled = wait_for(Duration::from_secs(30), || admin.query(&merging).ok().filter(|r| r.rows.is_empty()));
    assert!(settled.is_some(), "the killed merge kept running");
    assert_eq!(fingerprint(admin.as_mut(), &rel), before, "a killed merge changed the table");
    let r = p.dvtr(&["run", "-s", "big_inc"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let after = fingerprint(admin.as_mut(), &rel);
    assert_eq!(after.0, ROWS.to_string());
    assert_ne!(after, before, "the next run merged version 2");
    assert_eq!(leftovers(admin.as_mut(), &format!("table_schema = '{}'", p.schema)), Vec::<String>::new());
}

/// `dvtr` SIGKILLed while it writes a table into an SQLite or DuckDB file (seen by
/// the file's journal or WAL): the file opens with the table as before; the next
/// run replaces it and leaves no staging table.
#[test]
fn embedded_files_survive_sigkill_of_dvtr_mid_write() {
    let p = ServiceProject::new("fault_embed");
    let model = |target: &str, version: u32| {
        let series = if target == "lite" {
            "with recursive c(i) as (select 0 union all select i + 1 from c where i < 999999) select i as id, i * {v} as v, 'row ' || i || ' of version {v}' as label from c"
        } else {
            "select i as id, i * {v} as v, 'row ' || i || ' of version {v}' as label from range(3000000) t(i)"
        };
        let sql = format!("{{{{ config(target='{target}', materialized='table') }}}}\n{}\n", series.replace("{v}", &version.to_string()));
        std::fs::write(p.project.join(format!("models/kill_{target}.sql")), sql).unwrap();
    };
    for (target, rel, env, journals) in [
        ("lite", "main.kill_lite", "DVT_TEST_SQLITE", ["-journal", "-wal"]),
        ("duck", "main.kill_duck", "DVT_TEST_DUCKDB", [".wal", ".tmp"]),
    ] {
        model(target, 1);
        let r = p.dvtr(&["run", "-s", &format!("kill_{target}")]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let before = fingerprint_shown(&p, target, rel);
        let file = p.env.iter().find(|(k, _)| k == env).unwrap().1.clone();
        model(target, 2);
        let mut child = p.command(&bin("dvtr")).args(["run", "-s", &format!("kill_{target}")]).spawn().unwrap();
        let writing = wait_for(Duration::from_secs(60), || {
            journals.iter().map(|j| format!("{file}{j}")).find(|j| std::fs::metadata(j).is_ok_and(|m| m.len() > 0))
        });
        // Let the write get well under way, then kill.
        std::thread::sleep(Duration::from_millis(50));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(writing.is_some(), "{target}: no journal/WAL was seen while dvtr wrote");
        assert_eq!(fingerprint_shown(&p, target, rel), before, "{target}: a killed write changed the table");
        let r = p.dvtr(&["run", "-s", &format!("kill_{target}")]);
        assert_eq!(r.code, 0, "{target}: {}\n{}", r.stdout, r.stderr);
        let after = fingerprint_shown(&p, target, rel);
        assert_ne!(after, before, "{target}: the next run wrote version 2");
        let catalog = if target == "lite" { "sqlite_master" } else { "information_schema.tables" };
        let column = if target == "lite" { "name" } else { "table_name" };
        let sql = format!("select count(*) as n from {catalog} where {column} like '%dvt%'");
        let left = p.dvtr(&["--target", target, "show", "--inline", &sql]);
        assert!(left.stdout.contains("| 0 "), "{target}: staging left: {}", left.stdout);
    }
}

/// The file of an SQLite or DuckDB target on a read-only mount (a private mount
/// namespace: `unshare -m`, the file bind-mounted read-only onto itself): the node
/// fails with the engine's error, the table is as before, and `dvtr retry` on the
/// writable file completes.
#[test]
fn a_read_only_sqlite_or_duckdb_file_fails_cleanly_and_retry_completes() {
    let p = ServiceProject::new("fault_ro");
    for (target, rel, env) in [("lite", "main.ro_lite", "DVT_TEST_SQLITE"), ("duck", "main.ro_duck", "DVT_TEST_DUCKDB")] {
        let model = |version: u32| {
            let sql = format!(
                "{{{{ config(target='{target}', materialized='table') }}}}\nselect {version} as id, {version} as v, 'version {version}' as label\n"
            );
            std::fs::write(p.project.join(format!("models/ro_{target}.sql")), sql).unwrap();
        };
        model(1);
        let r = p.dvtr(&["run", "-s", &format!("ro_{target}")]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        let before = fingerprint_shown(&p, target, rel);
        let file = p.env.iter().find(|(k, _)| k == env).unwrap().1.clone();
        model(2);
        let script = "mount --bind \"$1\" \"$1\" && mount -o remount,ro,bind \"$1\" && shift && exec \"$@\"";
        let out = p
            .command(std::path::Path::new("unshare"))
            .args(["-m", "sh", "-c", script, "sh", &file, bin("dvtr").to_str().unwrap(), "run", "-s", &format!("ro_{target}")])
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!stderr.contains("mount:"), "{target}: the read-only mount could not be made: {stderr}");
        assert!(!stderr.contains("panicked"), "{target}: {stderr}");
        assert_ne!(out.status.code(), Some(0), "{target}: a read-only file was written: {stdout}");
        assert!(stdout.contains("ERROR") || stderr.contains("error"), "{target}: {stdout}\n{stderr}");
        assert_eq!(fingerprint_shown(&p, target, rel), before, "{target}: the table changed");
        let r = p.dvtr(&["retry"]);
        assert_eq!(r.code, 0, "{target}: {}\n{}", r.stdout, r.stderr);
        assert_ne!(fingerprint_shown(&p, target, rel), before, "{target}: the retry wrote version 2");
    }
}
