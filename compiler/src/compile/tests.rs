//! Test queries: generic tests call their `test_<name>` macro with the tested
//! relation; every test is wrapped in dbt's failure-count query.

use serde_json::Value as Json;

use crate::config::ConfigExt;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, Project};

/// A test argument as a Jinja expression, rendered the way dbt renders test
/// kwargs at compile time (`add_rendered_test_kwargs`): `ref(…)`/`source(…)`/
/// `var(…)`/`env_var(…)`/`doc(…)` is called, a string with Jinja renders to
/// text (hoisted into a `{% set %}` block; dbt 1.11 gives text even for one
/// `{{ [1, 2] }}`), anything else is a literal. The top-level `column_name`
/// stays a string.
fn kwarg_expr(v: &Json, native: bool, hoisted: &mut Vec<String>) -> String {
    match v {
        Json::Null => "none".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => string_expr(s, native, hoisted),
        Json::Array(a) => format!("[{}]", a.iter().map(|x| kwarg_expr(x, native, hoisted)).collect::<Vec<_>>().join(", ")),
        Json::Object(m) => {
            format!(
                "{{{}}}",
                m.iter().map(|(k, x)| format!("{}: {}", quoted(k), kwarg_expr(x, native, hoisted))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A call dbt evaluates (`ref(…)`, `var(…)`, …), not text.
fn looks_like_call(s: &str) -> bool {
    use std::sync::LazyLock;
    static LOOKS_LIKE_FUNC: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(?s)^\s*(env_var|ref|var|source|doc)\s*\(.+\)\s*$").expect("valid regex"));
    // Most arguments are plain names and values: no parenthesis, no call.
    s.contains('(') && LOOKS_LIKE_FUNC.is_match(s)
}

fn has_jinja(s: &str) -> bool {
    // Most arguments have no brace at all: one byte search instead of three.
    s.contains('{') && (s.contains("{{") || s.contains("{%") || s.contains("{#"))
}

fn string_expr(s: &str, native: bool, hoisted: &mut Vec<String>) -> String {
    if looks_like_call(s) {
        return format!("({})", s.trim());
    }
    if !has_jinja(s) {
        return quoted(s);
    }
    // Under `arguments:`, one `{{ expr }}` keeps the expression's own value, as dbt
    // renders them (`values: "{{ var('types') }}"` is the list, not its text).
    let t = s.trim();
    if native
        && let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
        && !inner.contains("{{")
        && !inner.contains("}}")
        && !inner.contains("{%")
    {
        return format!("({})", inner.trim().trim_start_matches('-').trim_end_matches('-').trim());
    }
    let name = format!("__dvt_test_arg_{}", hoisted.len());
    hoisted.push(format!("{{% set {name} %}}{s}{{% endset %}}"));
    name
}

/// A generic test's macro: how a template calls it (`test_x`, `ns.test_x`) and
/// its definition, found in the namespace or from the test's package.
pub fn test_macro<'j>(
    jinja: &'j crate::jinja::Jinja,
    package: &str,
    t: &crate::nodes::TestInfo,
) -> (String, Option<&'j crate::jinja::MacroDef>) {
    let macro_name = ["test_", t.name.as_str()].concat();
    match &t.namespace {
        Some(ns) => {
            let def = jinja.index.get(ns, &macro_name);
            (format!("{ns}.{macro_name}"), def)
        }
        None => {
            let def = jinja.index.lookup(package, &macro_name);
            (macro_name, def)
        }
    }
}

/// The Jinja that renders a generic test's query, and the values it reads.
pub struct TestTemplate {
    pub source: String,
    /// Arguments passed as variables (`__dvt_arg_<i>`): literal values, which
    /// would render the same written into the call.
    pub args: Vec<(String, Json)>,
    /// Every argument is a variable: tests of one macro and argument names share
    /// `source`, which is then compiled once (see `Jinja::render_shared`).
    pub shared: bool,
}

/// Appends the name of a new argument variable (`__dvt_arg_<i>`) holding `v`.
fn push_arg(call: &mut String, args: &mut Vec<(String, Json)>, v: Json) {
    const NAMES: [&str; 8] =
        ["__dvt_arg_0", "__dvt_arg_1", "__dvt_arg_2", "__dvt_arg_3", "__dvt_arg_4", "__dvt_arg_5", "__dvt_arg_6", "__dvt_arg_7"];
    let name = NAMES.get(args.len()).map_or_else(|| format!("__dvt_arg_{}", args.len()), |n| (*n).to_string());
    call.push_str(&name);
    args.push((name, v));
}

/// Whether `v` renders to itself: no string in it is a call or holds Jinja.
pub(super) fn is_literal(v: &Json) -> bool {
    match v {
        Json::String(s) => !looks_like_call(s) && !has_jinja(s),
        Json::Array(a) => a.iter().all(is_literal),
        Json::Object(m) => m.values().all(is_literal),
        _ => true,
    }
}

/// The Jinja that renders a generic test's query.
pub fn generic_test_template(project: &Project, jinja: &crate::jinja::Jinja, node: &Node) -> Result<TestTemplate> {
    let t = node.test.as_ref().expect("generic test");
    let (callee, def) = test_macro(jinja, &node.package, t);
    if def.is_none() {
        let name = t.namespace.as_ref().map_or_else(|| t.name.clone(), |ns| format!("{ns}.{}", t.name));
        return Err(not_found(node, &name));
    }
    // The call is built in one string: tens of thousands of tests each take this path.
    let mut args: Vec<(String, Json)> = Vec::new();
    let mut call = String::with_capacity(128);
    call.push_str("model=");
    let where_cond = node.config.str("where");
    if where_cond.is_some() {
        call.push_str("__dvt_where(");
    }
    let (function, first, second) = match project.sources.get(&t.attached_node) {
        Some(s) => ("source(", s.source_name.as_str(), s.name.as_str()),
        None => {
            let n = &project.nodes[&t.attached_node];
            ("ref(", n.package.as_str(), n.name.as_str())
        }
    };
    call.push_str(function);
    push_arg(&mut call, &mut args, Json::from(first));
    call.push_str(", ");
    push_arg(&mut call, &mut args, Json::from(second));
    call.push(')');
    if let Some(cond) = where_cond {
        call.push_str(", ");
        push_arg(&mut call, &mut args, Json::from(cond));
        call.push(')');
    }
    let mut hoisted = Vec::new();
    let mut shared = true;
    for (k, v) in &t.kwargs {
        if k == "model" {
            continue;
        }
        call.push_str(", ");
        call.push_str(k);
        call.push('=');
        match (k.as_str(), v) {
            ("column_name", Json::String(_)) => push_arg(&mut call, &mut args, v.clone()),
            _ if is_literal(v) => push_arg(&mut call, &mut args, v.clone()),
            _ => {
                shared = false;
                call.push_str(&kwarg_expr(v, t.native_args, &mut hoisted));
            }
        }
    }
    let mut source = hoisted.concat();
    for part in ["{{ ", callee.as_str(), "(", call.as_str(), ") }}"] {
        source.push_str(part);
    }
    Ok(TestTemplate { source, args, shared })
}

fn not_found(node: &Node, name: &str) -> DvtError {
    DvtError::new(ErrorCode::TestNotFound, format!("test `{}` uses generic test `{name}`, which no package defines", node.name))
        .at(Location::file(&node.file))
        .hint(format!("define it with `{{% test {name}(model, column_name) %}}` in macros/ or tests/generic/, or install its package"))
}

/// dbt's wrapper: failures, should_warn, should_error.
pub fn wrap(dialect: Dialect, node: &Node, sql: &str) -> String {
    let fail_calc = node.config.str("fail_calc").unwrap_or("count(*)");
    let warn_if = node.config.str("warn_if").unwrap_or("!= 0");
    let error_if = node.config.str("error_if").unwrap_or("!= 0");
    let inner = match node.config.get("limit").and_then(Json::as_u64) {
        Some(n) => dialect.sql().limit(sql, n),
        None => sql.to_string(),
    };
    format!(
        "select\n  {fail_calc} as failures,\n  {fail_calc} {warn_if} as should_warn,\n  {fail_calc} {error_if} as should_error\nfrom (\n{inner}\n) dbt_internal_test"
    )
}

#[cfg(test)]
mod shape_tests {
    use super::*;

    #[test]
    fn only_arguments_that_render_to_themselves_become_shared_variables() {
        for v in [
            serde_json::json!("id"),
            serde_json::json!(["alpha", "beta"]),
            serde_json::json!({"to": "x", "n": 3}),
            serde_json::json!(null),
            serde_json::json!(1.5),
        ] {
            assert!(is_literal(&v), "{v}");
        }
        for v in [
            serde_json::json!("ref('customers')"),
            serde_json::json!(" var('types') "),
            serde_json::json!("{{ var('x') }}"),
            serde_json::json!(["a", "{% if true %}b{% endif %}"]),
            serde_json::json!({"k": "source('s', 't')"}),
        ] {
            assert!(!is_literal(&v), "{v}");
        }
    }
}
