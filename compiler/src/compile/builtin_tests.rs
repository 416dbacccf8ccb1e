//! dbt's built-in generic tests `unique`, `not_null`, `accepted_values` and
//! `relationships`, rendered without Jinja where Jinja would render dbt's own macros: byte for
//! byte the text of `{% test unique(model, column_name) %}` dispatching to
//! `default__test_unique` (and the others), whitespace included.
//!
//! They are most of a project's tests (17,000 of a 5,000-model project's 22,000
//! nodes), and rendering each through the macro chain cost ~7 µs of Jinja. Any
//! case outside the plain one renders through Jinja as before: a project or
//! package that defines one of the macros involved (or `ref`/`source`), a
//! `where` config, an argument that is not a plain value, an ephemeral model.

use serde_json::Value as Json;

use crate::jinja::BUILTIN_PACKAGE;
use crate::jinja::MacroDef;
use crate::nodes::{Node, TestInfo};

/// Which built-in tests may render natively in this project.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinTests {
    unique: bool,
    not_null: bool,
    accepted_values: bool,
    relationships: bool,
}

/// A relation a built-in test reads, as its template names it.
pub enum TestRelation<'a> {
    /// The tested model or source (`model`).
    Tested,
    /// `ref('name')` or `ref('package', 'name')` (`relationships`' `to`).
    Ref(Option<&'a str>, &'a str),
    /// `source('source', 'table')`.
    Source(&'a str, &'a str),
}

/// Whether `name` is a macro the rendering of built-in `test` goes through
/// (`test_unique`, `default__test_unique`, `duckdb__test_unique`, …).
fn involved(name: &str, test: &str) -> bool {
    let macro_name = ["test_", test].concat();
    name == macro_name || name.strip_suffix(macro_name.as_str()).is_some_and(|p| p.ends_with("__"))
}

impl BuiltinTests {
    /// The tests whose every macro is dbt's own: none of `macros` outside dbt's
    /// global project overrides them (directly or through `adapter.dispatch`).
    /// `jinja_only`: none (everything renders through Jinja).
    pub fn new(macros: &[MacroDef], jinja_only: bool) -> Self {
        if jinja_only {
            return BuiltinTests::default();
        }
        let user: Vec<&str> = macros.iter().filter(|m| m.package != BUILTIN_PACKAGE).map(|m| m.name.as_str()).collect();
        // Every built-in test reads its model through `ref`/`source`, which a project may override.
        if user.iter().any(|n| matches!(*n, "ref" | "source")) {
            return BuiltinTests::default();
        }
        let free = |test: &str| !user.iter().any(|n| involved(n, test));
        BuiltinTests {
            unique: free("unique"),
            not_null: free("not_null") && !user.contains(&"should_store_failures"),
            accepted_values: free("accepted_values"),
            relationships: free("relationships"),
        }
    }

    /// The text Jinja would render for generic test `node` whose `model` is the
    /// relation `model` (as `ref()`/`source()` render it), or `None` when this
    /// test must render through Jinja.
    /// `relation` renders a relation as `ref()`/`source()` would, `None` where Jinja
    /// must (an ephemeral model's CTE, a relation that does not resolve).
    pub fn render(&self, node: &Node, relation: impl Fn(TestRelation<'_>) -> Option<String>) -> Option<String> {
        let model = || relation(TestRelation::Tested);
        let t = node.test.as_ref()?;
        if t.namespace.is_some() || node.config.get("where").is_some_and(|w| !w.is_null()) {
            return None;
        }
        let column = match t.kwargs.get("column_name")? {
            Json::String(c) => c.as_str(),
            _ => return None,
        };
        // Only the arguments each macro takes: another one is Jinja's error to report.
        let only = |names: &[&str]| t.kwargs.keys().all(|k| k == "model" || names.contains(&k.as_str()));
        match t.name.as_str() {
            "unique" if self.unique && only(&["column_name"]) => Some(unique(&model()?, column)),
            "not_null" if self.not_null && only(&["column_name"]) => {
                // `should_store_failures()`: the config, else `flags.STORE_FAILURES`, which compile leaves unset.
                let columns = match node.config.get("store_failures") {
                    None | Some(Json::Null | Json::Bool(false)) => column,
                    Some(Json::Bool(true)) => "*",
                    Some(_) => return None,
                };
                Some(not_null(&model()?, column, columns))
            }
            "accepted_values" if self.accepted_values && only(&["column_name", "values", "quote"]) => {
                let quote = match t.kwargs.get("quote") {
                    None => true,
                    Some(Json::Bool(q)) => *q,
                    Some(_) => return None,
                };
                let values = accepted_values_list(t, quote)?;
                Some(accepted_values(&model()?, column, &values))
            }
            "relationships" if self.relationships && only(&["column_name", "to", "field"]) => {
                let field = match t.kwargs.get("field")? {
                    f @ Json::String(text) if super::tests::is_literal(f) => text.as_str(),
                    _ => return None,
                };
                let Json::String(to) = t.kwargs.get("to")? else { return None };
                let to = relation(parse_call(to)?)?;
                Some(relationships(&model()?, column, &to, field))
            }
            _ => None,
        }
    }
}

/// `ref('name')`, `ref('package', 'name')` or `source('source', 'table')`, quoted
/// with `'` or `"`; any other expression (a version, a variable) is left to Jinja.
fn parse_call(text: &str) -> Option<TestRelation<'_>> {
    let text = text.trim();
    let (function, rest) = text.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let mut args = Vec::new();
    for arg in inner.split(',') {
        let arg = arg.trim();
        let unquoted = arg.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')).or_else(|| arg.strip_prefix('"')?.strip_suffix('"'))?;
        if unquoted.contains(['\'', '"', '\\']) {
            return None;
        }
        args.push(unquoted);
    }
    match (function.trim_end(), args.as_slice()) {
        ("ref", [name]) => Some(TestRelation::Ref(None, name)),
        ("ref", [package, name]) => Some(TestRelation::Ref(Some(package), name)),
        ("source", [source, table]) => Some(TestRelation::Source(source, table)),
        _ => None,
    }
}

/// `{% test x(...) %}` in dbt's `tests/generic/builtin.sql`: its `{% set macro = … %}`
/// line, then the dispatched macro's text, then the line break before `{% endtest %}`.
fn in_test_block(body: &str) -> String {
    ["\n    \n    ", body, "\n"].concat()
}

/// `default__test_unique`.
fn unique(model: &str, column: &str) -> String {
    in_test_block(&format!(
        "\n\nselect\n    {column} as unique_field,\n    count(*) as n_records\n\nfrom {model}\nwhere {column} is not null\ngroup by {column}\nhaving count(*) > 1\n\n"
    ))
}

/// `default__test_not_null` (`columns`: what `should_store_failures()` selects).
fn not_null(model: &str, column: &str, columns: &str) -> String {
    in_test_block(&format!("\n\n\n\nselect {columns}\nfrom {model}\nwhere {column} is null\n\n"))
}

/// `default__test_accepted_values`, `values` already joined as its loop joins them.
fn accepted_values(model: &str, column: &str, values: &str) -> String {
    in_test_block(&format!(
        "\n\nwith all_values as (\n\n    select\n        {column} as value_field,\n        count(*) as n_records\n\n    from {model}\n    group by {column}\n\n)\n\nselect *\nfrom all_values\nwhere value_field not in (\n    {values}\n)\n\n"
    ))
}

/// `default__test_relationships`.
fn relationships(model: &str, column: &str, to: &str, field: &str) -> String {
    in_test_block(&format!(
        "\n\nwith child as (\n    select {column} as from_field\n    from {model}\n    where {column} is not null\n),\n\nparent as (\n    select {field} as to_field\n    from {to}\n)\n\nselect\n    from_field\n\nfrom child\nleft join parent\n    on child.from_field = parent.to_field\n\nwhere parent.to_field is null\n\n"
    ))
}

/// The values as the macro's loop writes them (`'a','b'`, or `a,b` without
/// `quote`): strings and integers only, whose Jinja text is their own.
fn accepted_values_list(t: &TestInfo, quote: bool) -> Option<String> {
    let Json::Array(values) = t.kwargs.get("values")? else { return None };
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        let text = match v {
            // A string that calls or holds Jinja renders first (see `tests::kwarg_expr`).
            Json::String(s) if super::tests::is_literal(v) => s.clone(),
            Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            _ => return None,
        };
        if i > 0 {
            out.push(',');
        }
        match quote {
            true => out.extend(["'", text.as_str(), "'"]),
            false => out.push_str(&text),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(package: &str, name: &str) -> MacroDef {
        MacroDef { package: package.into(), name: name.into(), file: String::new(), line: 1, source: String::new() }
    }

    #[test]
    fn a_macro_outside_dbt_on_the_way_turns_the_native_rendering_off() {
        let builtins = [def("dbt", "test_unique"), def("dbt", "default__test_unique"), def("dbt", "ref")];
        let all = BuiltinTests::new(&builtins, false);
        assert!(all.unique && all.not_null && all.accepted_values);
        assert!(!BuiltinTests::new(&builtins, true).unique, "Jinja only, as asked");
        for (name, off) in [
            ("test_unique", "unique"),
            ("default__test_unique", "unique"),
            ("duckdb__test_unique", "unique"),
            ("should_store_failures", "not_null"),
            ("postgres__test_accepted_values", "accepted_values"),
            ("ref", "all"),
            ("source", "all"),
        ] {
            let mut macros = builtins.to_vec();
            macros.push(def("my_project", name));
            let b = BuiltinTests::new(&macros, false);
            let got = [("unique", b.unique), ("not_null", b.not_null), ("accepted_values", b.accepted_values)];
            for (test, native) in got {
                assert_eq!(native, !(off == "all" || off == test), "{name} defined: {test}");
            }
        }
        assert!(all.relationships);
        // A name that only ends like one is not one of them.
        assert!(BuiltinTests::new(&[def("p", "my_test_unique")], false).unique);
    }

    #[test]
    fn only_plain_ref_and_source_calls_are_read() {
        let read = |t: &str| match parse_call(t) {
            Some(TestRelation::Ref(p, n)) => format!("ref {p:?} {n}"),
            Some(TestRelation::Source(s, t)) => format!("source {s} {t}"),
            Some(TestRelation::Tested) | None => "jinja".into(),
        };
        assert_eq!(read("ref('customers')"), "ref None customers");
        assert_eq!(read(" ref( \"pkg\" , 'customers' ) "), "ref Some(\"pkg\") customers");
        assert_eq!(read("source('crm', 'customers')"), "source crm customers");
        for other in
            ["ref('a', v=2)", "ref(name)", "ref('a', 'b', 'c')", "source('crm')", "var('x')", "ref('a\\'b')", "ref('a')|lower", "ref('a') "]
        {
            let expected = if other == "ref('a') " { "ref None a" } else { "jinja" };
            assert_eq!(read(other), expected, "{other}");
        }
    }
}
