//! `dvtc init`: the scaffolded project builds as created, on the embedded
//! databases, with its federated model.

use crate::support::*;

#[test]
fn init_scaffolds_a_project_that_dvtr_builds_unchanged() {
    let parent = tempfile::tempdir().unwrap();
    let r = dvtc(parent.path(), &["init", "shop"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let dir = parent.path().join("shop");
    for f in ["dbt_project.yml", "profiles.yml", "computes.yml", "buckets.yml", "models/marts/customer_orders.sql"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let dvtr = |args: &[&str]| dvtr_in(&dir, args);
    let r = dvtr(&["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(dvtc(&dir, &["compile"]).code, 0);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/plan.json")).unwrap()).unwrap();
    assert_eq!(plan["nodes"]["model.shop.customer_orders"]["path"], "federation");
    let r = dvtr(&[
        "show",
        "--limit",
        "10",
        "--inline",
        "select customer_id, order_count, total_amount from main.customer_orders order by customer_id",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let rows: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("| ")).skip(1).collect();
    assert_eq!(rows.len(), 4, "{}", r.stdout);
    assert!(rows[0].contains("| 1 ") && rows[0].contains("| 2 ") && rows[0].contains("45"), "{}", r.stdout);
    assert!(rows[3].contains("| 4 ") && rows[3].contains("| 0 "), "{}", r.stdout);
    // A second init of the same name never overwrites.
    let r = dvtc(parent.path(), &["init", "shop"]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("DVT141") && r.stderr.contains("not empty"), "{}", r.stderr);
}

#[test]
fn debug_checks_every_output_compute_and_bucket_without_printing_secrets() {
    let parent = tempfile::tempdir().unwrap();
    assert_eq!(dvtc(parent.path(), &["init", "dbg"]).code, 0);
    let dir = parent.path().join("dbg");
    let dvtr = |args: &[&str]| dvtr_in(&dir, args);
    let r = dvtr(&["debug"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for item in [
        "profiles.yml",
        "project dbg",
        "output warehouse (duckdb)",
        "output reporting (sqlite)",
        "compute local (datafusion)",
        "bucket local (file)",
    ] {
        let line = r.stdout.lines().find(|l| l.starts_with(item)).unwrap_or_else(|| panic!("no `{item}` row:\n{}", r.stdout));
        assert!(line.contains("  OK  "), "{line}");
    }
    assert!(r.stdout.contains("DuckDB v") && r.stdout.contains("SQLite 3."), "{}", r.stdout);
    // An output that cannot be reached fails the check (exit 1); its password is never printed.
    let profiles = std::fs::read_to_string(dir.join("profiles.yml")).unwrap().replace(
        "    # postgres:",
        "    broken:\n      type: postgres\n      host: 127.0.0.1\n      port: 9\n      user: u\n      password: s3cr3t-debug-XYZ\n      dbname: d\n      schema: s\n    # postgres:",
    );
    std::fs::write(dir.join("profiles.yml"), profiles).unwrap();
    let r = dvtr(&["debug"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.stdout.lines().find(|l| l.starts_with("output broken (postgres)")).expect("broken row");
    assert!(line.contains("FAIL"), "{line}");
    assert!(!r.stdout.contains("s3cr3t-debug-XYZ") && !r.stderr.contains("s3cr3t-debug-XYZ"), "secret printed:\n{}{}", r.stdout, r.stderr);
}

/// `gcs` and `azure` buckets are built in but cannot be reached here: their
/// configuration errors and unreachable endpoints are clear FAIL rows.
#[test]
fn debug_reports_gcs_and_azure_buckets_that_cannot_work() {
    let parent = tempfile::tempdir().unwrap();
    assert_eq!(dvtc(parent.path(), &["init", "clouds"]).code, 0);
    let dir = parent.path().join("clouds");
    std::fs::write(
        dir.join("buckets.yml"),
        "clouds:\n  target: local\n  buckets:\n    local: {type: file, root: .dvt/staging}\n    g: {type: gcs}\n    az: {type: azure, container: c, account_name: devstoreaccount1, account_key: \"{{ env_var('DVT_ENV_SECRET_AZ', 'a2V5LXNlY3JldC1YWVo=') }}\", endpoint: \"http://127.0.0.1:9/devstoreaccount1\"}\n",
    )
    .unwrap();
    let r = dvtr_in(&dir, &["debug"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let row =
        |item: &str| r.stdout.lines().find(|l| l.starts_with(item)).unwrap_or_else(|| panic!("no `{item}` row:\n{}", r.stdout)).to_string();
    assert!(row("bucket local (file)").contains("  OK  "));
    let g = row("bucket g (gcs)");
    assert!(g.contains("FAIL") && g.contains("needs `bucket:`"), "{g}");
    let az = row("bucket az (azure)");
    assert!(az.contains("FAIL") && az.contains("bucket `az` (azure): write failed"), "{az}");
    assert!(!r.stdout.contains("a2V5LXNlY3JldC1YWVo="), "{}", r.stdout);
}

/// The dbt commands that need no database also work through `dvtr`, as through `dvtc`.
#[test]
fn dvtr_offers_init_parse_deps_and_clean() {
    let parent = tempfile::tempdir().unwrap();
    let r = dvtr_in(parent.path(), &["init", "daily"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let dir = parent.path().join("daily");
    assert!(dir.join("dbt_project.yml").is_file());
    let r = dvtr_in(&dir, &["deps"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let r = dvtr_in(&dir, &["parse"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Found") && dir.join("target/manifest.json").is_file(), "{}", r.stdout);
    let r = dvtr_in(&dir, &["clean"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(!dir.join("target").exists(), "clean removes target/");
    assert!(dvtr_in(&dir, &["ls"]).stdout.contains("customer_orders"));
}
