//! Model versions (`versions:`, `latest_version`, `ref('m', v=1)`) and model
//! access (`access: private` with `group:`), as dbt resolves and enforces them.

use crate::support::*;

const PROPS: &str = "version: 2
groups:
  - name: finance
    owner: {name: fin}
models:
  - name: dim
    latest_version: 2
    columns:
      - name: id
        tests: [unique]
      - name: name
    versions:
      - v: 1
      - v: 2
        columns:
          - include: all
            exclude: [name]
          - name: full_name
      - v: 3
        defined_in: dim_next
  - name: secret
    access: private
    group: finance
  - name: ledger
    config: {group: finance}
";

fn project() -> tempfile::TempDir {
    base_project(&[
        ("models/dim_v1.sql", "select 1 as id, 'a' as name"),
        ("models/dim_v2.sql", "select 1 as id, 'a' as full_name"),
        ("models/dim_next.sql", "select 1 as id"),
        ("models/latest_user.sql", "select * from {{ ref('dim') }}"),
        ("models/old_user.sql", "select * from {{ ref('dim', v=1) }} join {{ ref('dim', version=3) }} using (id)"),
        ("models/secret.sql", "select 1 as x"),
        ("models/ledger.sql", "select * from {{ ref('secret') }}"),
        ("models/props.yml", PROPS),
    ])
}

#[test]
fn versioned_models_resolve_refs_names_and_selection() {
    let dir = project();
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let read = |p: &str| std::fs::read_to_string(dir.path().join("target/compiled/proj/models").join(p)).unwrap();
    // An unversioned ref names the latest version; each version has its own relation.
    assert_eq!(read("latest_user.sql"), "select * from \"db\".\"public\".\"dim_v2\"");
    assert_eq!(read("old_user.sql"), "select * from \"db\".\"public\".\"dim_v1\" join \"db\".\"public\".\"dim_v3\" using (id)");
    let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/plan.json")).unwrap()).unwrap();
    for v in ["v1", "v2", "v3"] {
        let n = &plan.nodes[&format!("model.proj.dim.{v}")];
        assert_eq!(n.name, "dim");
        assert_eq!(n.fqn, ["proj", "dim", v]);
        assert_eq!(n.relation.as_ref().unwrap().identifier, format!("dim_{v}"));
    }
    let ls = |sel: &str| {
        lines(&dvtc(dir.path(), &["ls", "--resource-type", "model", "-s", sel]).stdout).into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(ls("version:latest"), ["proj.dim.v2"]);
    assert_eq!(ls("version:old"), ["proj.dim.v1"]);
    assert_eq!(ls("version:prerelease"), ["proj.dim.v3"]);
    assert_eq!(ls("dim.v1"), ["proj.dim.v1"]);
    assert_eq!(ls("dim"), ["proj.dim.v1", "proj.dim.v2", "proj.dim.v3"]);
    assert_eq!(ls("access:private"), ["proj.secret"]);
    assert_eq!(ls("group:finance"), ["proj.ledger", "proj.secret"]);
    // Tests per version; v2's columns exclude `name` and add `full_name` (dbt's manifest).
    let tests = lines(&dvtc(dir.path(), &["ls", "--resource-type", "test"]).stdout).into_iter().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(tests, ["proj.unique_dim_v1_id", "proj.unique_dim_v2_id", "proj.unique_dim_v3_id"]);
    assert_eq!(dvtc(dir.path(), &["parse"]).code, 0);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("target/manifest.json")).unwrap()).unwrap();
    let v2 = &m["nodes"]["model.proj.dim.v2"];
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["latest_version"], 2);
    let mut cols: Vec<&str> = v2["columns"].as_object().unwrap().keys().map(String::as_str).collect();
    cols.sort();
    assert_eq!(cols, ["full_name", "id"]);
}

#[test]
fn private_models_are_refused_outside_their_group() {
    let dir = project();
    std::fs::write(dir.path().join("models/outsider.sql"), "select * from {{ ref('secret') }}").unwrap();
    let r = dvtc(dir.path(), &["parse"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT136") && r.stderr.contains("models/outsider.sql"), "{}", r.stderr);
    assert!(r.stderr.contains("private to group `finance`"), "{}", r.stderr);
    // A missing version is an error naming the file it looked for.
    std::fs::remove_file(dir.path().join("models/outsider.sql")).unwrap();
    std::fs::remove_file(dir.path().join("models/dim_next.sql")).unwrap();
    let r = dvtc(dir.path(), &["parse"]);
    assert!(r.stderr.contains("version 3 of model `dim` has no file `dim_next.sql`"), "{}", r.stderr);
}
