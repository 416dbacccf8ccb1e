//! Every user error: a stable code, a message, a file:line, exit code 2, no panic.

use crate::support::*;

fn parse_err(files: &[(&str, &str)]) -> Run {
    let dir = base_project(files);
    let r = dvtc(dir.path(), &["parse"]);
    assert_eq!(r.code, 2, "expected a usage/project error, got {}: {} {}", r.code, r.stdout, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r
}

#[test]
fn source_without_connection_is_an_error_with_fix() {
    let yml = "version: 2\nsources:\n  - name: raw\n    schema: s\n    tables:\n      - name: t\n";
    let r = parse_err(&[("models/src.yml", yml)]);
    assert!(r.stderr.contains("error[DVT110] models/src.yml:3:"), "{}", r.stderr);
    assert!(r.stderr.contains("has no `connection:`"), "{}", r.stderr);
    assert!(r.stderr.contains("require_source_connection: false"), "{}", r.stderr);
    // The documented escape hatches load the same project.
    let dir = base_project(&[("models/src.yml", yml)]);
    let r = dvtc_env(dir.path(), &["parse"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dir = project(&[
        ("dbt_project.yml", "name: proj\nprofile: proj\nflags:\n  require_source_connection: false\n"),
        (BASE[1].0, BASE[1].1),
        ("models/src.yml", yml),
    ]);
    assert_eq!(dvtc(dir.path(), &["parse"]).code, 0);
}

#[test]
fn unknown_connection_names_the_outputs() {
    let yml = "version: 2\nsources:\n  - name: raw\n    connection: snowflake_prod\n    tables:\n      - name: t\n";
    let r = parse_err(&[("models/src.yml", yml)]);
    assert!(r.stderr.contains("error[DVT111] models/src.yml:4:"), "{}", r.stderr);
    assert!(r.stderr.contains("use one of: duck, pg"), "{}", r.stderr);
}

#[test]
fn cycle_prints_the_cycle() {
    let r = parse_err(&[
        ("models/a.sql", "select * from {{ ref('b') }}"),
        ("models/b.sql", "select * from {{ ref('c') }}"),
        ("models/c.sql", "select * from {{ ref('a') }}"),
    ]);
    assert!(r.stderr.contains("DVT133"), "{}", r.stderr);
    assert!(r.stderr.contains("model.proj.a -> model.proj.b -> model.proj.c -> model.proj.a"), "{}", r.stderr);
}

#[test]
fn missing_ref_names_file_and_line() {
    let r = parse_err(&[("models/a.sql", "select 1\nunion all\nselect * from {{ ref('nope') }}\n")]);
    assert!(r.stderr.contains("error[DVT130] models/a.sql:3:"), "{}", r.stderr);
    assert!(r.stderr.contains("ref('nope')"), "{}", r.stderr);
}

#[test]
fn ref_to_disabled_node_is_its_own_error() {
    let r =
        parse_err(&[("models/a.sql", "{{ config(enabled=false) }}\nselect 1 as x"), ("models/b.sql", "\nselect * from {{ ref('a') }}")]);
    assert!(r.stderr.contains("error[DVT131] models/b.sql:2:"), "{}", r.stderr);
    assert!(r.stderr.contains("disabled"), "{}", r.stderr);
}

#[test]
fn missing_source_names_file_and_line() {
    let r = parse_err(&[("models/a.sql", "select * from {{ source('raw', 'nope') }}")]);
    assert!(r.stderr.contains("error[DVT132] models/a.sql:1:"), "{}", r.stderr);
}

#[test]
fn bad_yaml_has_line_and_column() {
    let r = parse_err(&[("models/schema.yml", "version: 2\nmodels:\n  - name: a\n    columns: [\n")]);
    assert!(r.stderr.contains("error[DVT101] models/schema.yml:"), "{}", r.stderr);
}

#[test]
fn bad_jinja_has_line() {
    let r = parse_err(&[("models/a.sql", "select 1\n{% if x %}\nselect 2\n")]);
    assert!(r.stderr.contains("error[DVT120] models/a.sql:"), "{}", r.stderr);
    let r = parse_err(&[("macros/m.sql", "{% macro m() %}\n{{ 1 + }}\n{% endmacro %}\n")]);
    assert!(r.stderr.contains("error[DVT120] macros/m.sql:2"), "{}", r.stderr);
}

#[test]
fn raise_compiler_error_is_reported_with_its_message() {
    let r = parse_err(&[("models/a.sql", "select 1\n{{ exceptions.raise_compiler_error('bad input: x') }}\n")]);
    assert!(r.stderr.contains("error[DVT122] models/a.sql:2"), "{}", r.stderr);
    assert!(r.stderr.contains("bad input: x"), "{}", r.stderr);
}

#[test]
fn unknown_target_lists_outputs() {
    let dir = base_project(&[]);
    let r = dvtc(dir.path(), &["--target", "prod", "parse"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT104") && r.stderr.contains("outputs: duck, pg"), "{}", r.stderr);
}

#[test]
fn missing_project_and_profile() {
    let dir = tempfile::tempdir().unwrap();
    let r = dvtc(dir.path(), &["parse"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT100"), "{}", r.stderr);
    let dir = project(&[("dbt_project.yml", "name: p\nprofile: nope\n")]);
    let r = dvtc(dir.path(), &["parse"]);
    assert!(r.stderr.contains("DVT103"), "{}", r.stderr);
}

#[test]
fn duplicate_model_names_are_rejected() {
    let r = parse_err(&[("models/a/x.sql", "select 1"), ("models/b/x.sql", "select 2")]);
    assert!(r.stderr.contains("DVT107"), "{}", r.stderr);
}

#[test]
fn bad_selector_and_vars() {
    let dir = base_project(&[("models/a.sql", "select 1")]);
    let r = dvtc(dir.path(), &["ls", "-s", "nosuchmethod:x"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT140"), "{}", r.stderr);
    let r = dvtc(dir.path(), &["--vars", "[1, 2]", "ls"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("DVT142"), "{}", r.stderr);
    let r = dvtc(dir.path(), &["ls", "--resource-type", "widget"]);
    assert!(r.stderr.contains("DVT141"), "{}", r.stderr);
}

#[test]
fn json_log_format_errors_are_machine_readable() {
    let dir = base_project(&[("models/a.sql", "select * from {{ ref('nope') }}")]);
    let r = dvtc(dir.path(), &["--log-format", "json", "parse"]);
    let v: serde_json::Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(v["code"], "DVT130");
    assert_eq!(v["file"], "models/a.sql");
    assert_eq!(v["line"], 1);
}

#[test]
fn vars_and_env_vars_render() {
    let dir = base_project(&[
        ("models/a.sql", "select {{ var('x') }} as x, '{{ env_var('DVT_TEST_ENV', 'd') }}' as e"),
        ("models/b.sql", "select * from {{ ref('a') }} where {{ var('missing') }} = 1"),
    ]);
    // As dbt: a missing var is None while parsing (the node may be disabled), an error when
    // the node compiles.
    let r = dvtc(dir.path(), &["--vars", "{x: 1}", "ls", "-s", "a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = dvtc(dir.path(), &["--vars", "{x: 1}", "compile", "-s", "b"]);
    assert!(r.stderr.contains("required var `missing`"), "{}", r.stderr);
    assert!(r.stderr.contains("models/b.sql:1"), "{}", r.stderr);
    let r = dvtc(dir.path(), &["--vars", "{x: 1, missing: 2}", "ls", "-s", "a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn federated_remainder_with_a_dialect_function_is_refused_at_compile_time() {
    // orders lives on DuckDB, the model targets PostgreSQL: the remainder runs in DataFusion,
    // which has no numeric to_char patterns and divides decimals with another scale.
    let src = "version: 2\nsources:\n  - name: raw\n    connection: duck\n    tables:\n      - name: orders\n";
    let model = "select to_char(o.amount, 'FM999990.00') as amount, o.amount / o.qty as unit\nfrom {{ source('raw', 'orders') }} o";
    let dir = base_project(&[("models/src.yml", src), ("models/monthly.sql", model)]);
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("error[DVT163] models/monthly.sql"), "{}", r.stderr);
    assert!(r.stderr.contains("function `to_char`") && r.stderr.contains("`/` (division)"), "{}", r.stderr);
    assert!(r.stderr.contains("in a CTE or model over a single source"), "{}", r.stderr);
    // The same expressions over a single source, pushed there whole, compile.
    let pushed = "with m as (select to_char(o.amount, 'FM999990.00') as amount, o.amount / o.qty as unit from {{ source('raw', 'orders') }} o)\nselect * from m";
    let dir = project(&[
        ("dbt_project.yml", BASE[0].1),
        ("profiles.yml", &BASE[1].1.replace("type: duckdb", "type: postgres\n      dbname: other\n      schema: s")),
        ("models/src.yml", src),
        ("models/monthly.sql", pushed),
    ]);
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
}

#[test]
fn project_paths_and_symlinks_cannot_reach_outside_the_project() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.sql"), "select 'outside' as s").unwrap();
    for (key, value) in [
        ("model-paths", "['../outside']"),
        ("macro-paths", format!("['{}']", outside.path().display()).as_str()),
        ("target-path", "'/tmp'"),
        ("clean-targets", "['target', '..']"),
        ("packages-install-path", "'.'"),
    ] {
        let dir = project(&[("dbt_project.yml", &format!("name: proj\nprofile: proj\n{key}: {value}\n")), (BASE[1].0, BASE[1].1)]);
        let r = dvtc(dir.path(), &["parse"]);
        assert_eq!(r.code, 2, "{key}: {}", r.stderr);
        assert!(r.stderr.contains("error[DVT") && r.stderr.contains("dbt_project.yml:3"), "{key}: {}", r.stderr);
        assert!(r.stderr.contains("is not a folder inside the project"), "{key}: {}", r.stderr);
        // `clean` removes nothing when its targets are refused.
        let r = dvtc(dir.path(), &["clean"]);
        assert_eq!(r.code, 2, "{key}: {}", r.stderr);
        assert!(dir.path().join("dbt_project.yml").exists());
    }
    // A model that is a symbolic link out of the project is an error; one inside it is fine.
    let dir = base_project(&[("models/a.sql", "select 1 as a"), ("shared/b.sql", "select 2 as b")]);
    std::os::unix::fs::symlink(dir.path().join("shared/b.sql"), dir.path().join("models/b.sql")).unwrap();
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::os::unix::fs::symlink(outside.path().join("secret.sql"), dir.path().join("models/evil.sql")).unwrap();
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("evil.sql is a symbolic link to") && r.stderr.contains("outside the project"), "{}", r.stderr);
    assert!(!dir.path().join("target/compiled/proj/models/evil.sql").exists());
}
