//! dbt behaviours that public packages rely on, checked byte for byte against
//! what dbt-core 1.11 compiles for the same project (`fixtures/dbt_compat/expected`).

use crate::support::*;

#[test]
fn datetime_quoting_and_jinja_in_test_arguments_compile_as_dbt_does() {
    let (_tmp, dir) = scratch_copy(&fixture("dbt_compat"));
    let r = dvtc_env(&dir, &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let compiled = dir.join("target/compiled/compat_proj/models");
    let expected = fixture("dbt_compat").join("expected");
    for (ours, theirs) in [
        ("dates.sql", "dates.sql"),
        ("schema.yml/accepted_values_dates_id__False___1_2_.sql", "accepted_values_dates_id__False___1_2_.sql"),
        ("schema.yml/expr_true_dates_id_var_min_id_.sql", "expr_true_dates_id_var_min_id_.sql"),
    ] {
        let got = std::fs::read_to_string(compiled.join(ours)).unwrap_or_else(|e| panic!("{ours}: {e}"));
        let want = std::fs::read_to_string(expected.join(theirs)).unwrap();
        assert_eq!(got, want, "{ours} differs from dbt's");
    }
    // The severity was rendered from Jinja at parse time: a warning on DuckDB.
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/plan.json")).unwrap()).unwrap();
    let test = plan["nodes"].as_object().unwrap().values().find(|n| n["name"] == "expr_true_dates_id_var_min_id_").expect("test node");
    assert_eq!(test["test"]["severity"], "WARN", "{test}");
}

#[test]
fn bad_datetime_use_is_a_located_error() {
    let (_tmp, dir) = scratch_copy(&fixture("dbt_compat"));
    std::fs::write(dir.join("models/bad.sql"), "\n{{ modules.datetime.date(2023, 2, 29) }}\n").unwrap();
    let r = dvtc_env(&dir, &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("models/bad.sql:2") && r.stderr.contains("day is out of range for month"), "{}", r.stderr);
}

/// dbt scopes `var()` by the node being rendered, also inside another package's
/// macro (dbt-core 1.11 compiles `a.sql` to `'MISSING'` and the package's own
/// `b.sql` to `'|'` here), and `none` is a valid default.
#[test]
fn vars_are_scoped_by_the_node_being_rendered() {
    let dir = project(&[
        ("dbt_project.yml", "name: vt\nprofile: vt\nversion: '1.0'\nvars:\n  pkg:\n    sep: '|'\n"),
        ("packages.yml", "packages:\n  - local: pkg\n"),
        ("profiles.yml", "vt:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: dev.duckdb\n      schema: main\n"),
        ("pkg/dbt_project.yml", "name: pkg\nversion: '1.0'\n"),
        (
            "pkg/macros/m.sql",
            "{% macro s() %}{{ var('sep', 'MISSING') }}{% endmacro %}\n{% macro n() %}{{ var('nothing', none) is none }}{% endmacro %}\n",
        ),
        ("models/a.sql", "select '{{ pkg.s() }}' as x, {{ pkg.n() }} as n\n"),
        ("pkg/models/b.sql", "select '{{ pkg.s() }}' as y\n"),
    ]);
    let r = dvtc_env(dir.path(), &["compile"], &[("DVT_REQUIRE_SOURCE_CONNECTION", "false")]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let read = |p: &str| std::fs::read_to_string(dir.path().join("target/compiled").join(p)).unwrap();
    assert_eq!(read("vt/models/a.sql"), "select 'MISSING' as x, True as n");
    assert_eq!(read("pkg/models/b.sql"), "select '|' as y");
}
