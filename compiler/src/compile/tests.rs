//! Test queries: generic tests call their `test_<name>` macro with the tested
//! relation; every test is wrapped in dbt's failure-count query.

use serde_json::Value as Json;

use crate::config::ConfigExt;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, Project};

/// A JSON value as a Jinja literal.
fn literal(v: &Json) -> String {
    match v {
        Json::Null => "none".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Json::Array(a) => format!("[{}]", a.iter().map(literal).collect::<Vec<_>>().join(", ")),
        Json::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", serde_json::to_string(k).unwrap_or_default(), literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn is_relation_expr(s: &str) -> bool {
    let t = s.trim();
    (t.starts_with("ref(") || t.starts_with("source(")) && t.ends_with(')')
}

/// The Jinja that renders a generic test's query.
pub fn generic_test_template(project: &Project, jinja: &crate::jinja::Jinja, node: &Node) -> Result<String> {
    let t = node.test.as_ref().expect("generic test");
    let macro_name = format!("test_{}", t.name);
    let callee = match &t.namespace {
        Some(ns) => {
            if jinja.index.get(ns, &macro_name).is_none() {
                return Err(not_found(node, &format!("{ns}.{}", t.name)));
            }
            format!("{ns}.{macro_name}")
        }
        None => {
            if jinja.index.lookup(&node.package, &macro_name).is_none() {
                return Err(not_found(node, &t.name));
            }
            macro_name
        }
    };
    let model = if let Some(s) = project.sources.get(&t.attached_node) {
        format!("source({}, {})", literal(&Json::from(s.source_name.clone())), literal(&Json::from(s.name.clone())))
    } else {
        let n = &project.nodes[&t.attached_node];
        format!("ref({}, {})", literal(&Json::from(n.package.clone())), literal(&Json::from(n.name.clone())))
    };
    let model = match node.config.str("where") {
        Some(cond) => format!("__dvt_where({model}, {})", literal(&Json::from(cond))),
        None => model,
    };
    let mut args = vec![format!("model={model}")];
    for (k, v) in &t.kwargs {
        if k == "model" {
            continue;
        }
        let val = match v {
            Json::String(s) if is_relation_expr(s) => s.trim().to_string(),
            other => literal(other),
        };
        args.push(format!("{k}={val}"));
    }
    Ok(format!("{{{{ {callee}({}) }}}}", args.join(", ")))
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
