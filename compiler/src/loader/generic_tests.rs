//! Generic tests declared in properties YAML (`data_tests:` / `tests:`),
//! turned into test nodes named the way dbt names them.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::config::{self, Config};
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, ResourceType, TestInfo};

/// Keys of a test entry that configure the test rather than pass arguments.
const CONFIG_KEYS: [&str; 13] = [
    "severity",
    "tags",
    "where",
    "limit",
    "enabled",
    "store_failures",
    "store_failures_as",
    "warn_if",
    "error_if",
    "fail_calc",
    "meta",
    "alias",
    "database",
];

/// What the test is attached to.
pub struct TestTarget<'a> {
    /// Unique id of the tested model/seed/snapshot/source.
    pub unique_id: &'a str,
    /// Name used in the test's name (`orders`, `source_raw_orders`).
    pub label: String,
    pub package: &'a str,
    /// Properties file (root-relative).
    pub file: &'a str,
    /// Line of the tested entry's `name:`.
    pub line: u32,
}

/// dbt's `re.sub(r'[^0-9a-zA-Z_]+', '_', s)`: runs of other characters become one `_`.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

fn flat_arg(v: &Json) -> String {
    match v {
        Json::String(s) => sanitize(s),
        Json::Array(a) => a.iter().map(flat_arg).collect::<Vec<_>>().join("__"),
        Json::Object(m) => m.iter().map(|(k, v)| format!("{}_{}", sanitize(k), flat_arg(v))).collect::<Vec<_>>().join("__"),
        other => sanitize(&other.to_string()),
    }
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the test node for one entry of a `data_tests:` list.
pub fn build(
    entry: &Json,
    target: &TestTarget<'_>,
    column: Option<&str>,
    column_tags: &[String],
    project_tests: Option<&Json>,
) -> Result<Node> {
    let at = || Location::new(target.file, target.line, 0);
    let (full_name, body): (String, serde_json::Map<String, Json>) = match entry {
        Json::String(s) => (s.clone(), serde_json::Map::new()),
        Json::Object(m) if m.contains_key("test_name") => {
            let name = m.get("test_name").and_then(Json::as_str).unwrap_or_default().to_string();
            let mut body = m.clone();
            body.remove("test_name");
            (name, body)
        }
        Json::Object(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            let body = match v {
                Json::Object(b) => b.clone(),
                Json::Null => serde_json::Map::new(),
                other => {
                    return Err(
                        DvtError::new(ErrorCode::YamlInvalid, format!("arguments of test `{k}` must be a mapping, got {other}")).at(at())
                    );
                }
            };
            (k.clone(), body)
        }
        other => {
            return Err(DvtError::new(
                ErrorCode::YamlInvalid,
                format!("a test entry must be a name or a mapping with one test, got {other}"),
            )
            .at(at())
            .hint("write `- unique` or `- accepted_values: {values: [a, b]}`"));
        }
    };
    if full_name.is_empty() {
        return Err(DvtError::new(ErrorCode::YamlInvalid, "a test entry has an empty name").at(at()));
    }
    let (namespace, test_name) = match full_name.split_once('.') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (None, full_name.clone()),
    };
    let mut cfg = Config::new();
    config::apply(&mut cfg, "materialized", &Json::from("test"));
    config::apply(&mut cfg, "severity", &Json::from("ERROR"));
    let mut kwargs: BTreeMap<String, Json> = BTreeMap::new();
    let mut custom_name: Option<String> = None;
    let mut test_config: Option<serde_json::Map<String, Json>> = None;
    for (k, v) in &body {
        match k.as_str() {
            "config" => test_config = v.as_object().cloned(),
            "name" => custom_name = v.as_str().map(str::to_string),
            "arguments" => {
                for (ak, av) in v.as_object().into_iter().flatten() {
                    kwargs.insert(ak.clone(), av.clone());
                }
            }
            "description" => {}
            k if CONFIG_KEYS.contains(&k) => config::apply(&mut cfg, k, v),
            _ => {
                kwargs.insert(k.clone(), v.clone());
            }
        }
    }
    let column_name = kwargs.get("column_name").and_then(Json::as_str).map(str::to_string).or_else(|| column.map(str::to_string));
    if let Some(c) = &column_name {
        kwargs.entry("column_name".into()).or_insert_with(|| Json::from(c.clone()));
    }
    let mut name = custom_name.unwrap_or_else(|| {
        let prefix = namespace.as_ref().map_or(String::new(), |ns| format!("{ns}_"));
        let mut n = format!("{prefix}{test_name}_{}", target.label);
        if let Some(c) = &column_name {
            n.push('_');
            n.push_str(&sanitize(c));
        }
        let args: Vec<String> = kwargs.iter().filter(|(k, _)| *k != "column_name" && *k != "model").map(|(_, v)| flat_arg(v)).collect();
        if !args.is_empty() {
            n.push_str("__");
            n.push_str(&args.join("__"));
        }
        n
    });
    if name.len() > 64 {
        let hash = md5_hex(&name);
        name = format!(
            "{}_{}",
            &name[..name.char_indices().take_while(|(i, _)| *i < 30).last().map_or(0, |(i, c)| i + c.len_utf8())],
            &hash[..32]
        );
    }
    // Project-level `data_tests:` config, then column tags, then the entry's own config.
    let fqn_path = vec![target.package.to_string(), name.clone()];
    config::apply_project_tree(&mut cfg, project_tests, &fqn_path);
    if !column_tags.is_empty() {
        config::apply(&mut cfg, "tags", &Json::from(column_tags.to_vec()));
    }
    if let Some(tc) = &test_config {
        config::apply_all(&mut cfg, tc);
    }
    if let Some(sev) = cfg.get("severity").and_then(Json::as_str) {
        let upper = sev.to_ascii_uppercase();
        if upper != "ERROR" && upper != "WARN" {
            return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("test severity must be `error` or `warn`, got `{sev}`")).at(at()));
        }
        cfg.insert("severity".into(), Json::from(upper));
    }
    let hash = md5_hex(&format!("{}:{}:{}", target.unique_id, name, serde_json::to_string(&kwargs).unwrap_or_default()));
    let unique_id = format!("test.{}.{}.{}", target.package, name, &hash[..10]);
    Ok(Node {
        unique_id,
        resource_type: ResourceType::Test,
        package: target.package.to_string(),
        name: name.clone(),
        fqn: vec![target.package.to_string(), name],
        file: target.file.to_string(),
        raw: String::new(),
        raw_line: target.line,
        config: cfg,
        description: String::new(),
        columns: BTreeMap::new(),
        refs: Vec::new(),
        source_calls: Vec::new(),
        depends_on: Vec::new(),
        macros: Vec::new(),
        runtime_only: None,
        test: Some(TestInfo { name: test_name, namespace, kwargs, attached_node: target.unique_id.to_string(), column_name }),
        seed_path: None,
    })
}

/// `ref(...)`/`source(...)` calls inside test arguments (e.g. `to: ref('customers')`).
pub fn kwarg_dependencies(kwargs: &BTreeMap<String, Json>) -> (Vec<crate::jinja::RefCall>, Vec<(String, String)>) {
    use std::sync::LazyLock;
    static REF: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"\b(ref|source)\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"]\s*)?\)"#).expect("valid regex")
    });
    let mut refs = Vec::new();
    let mut sources = Vec::new();
    for (k, v) in kwargs {
        if k == "column_name" {
            continue;
        }
        let Some(s) = v.as_str() else { continue };
        for c in REF.captures_iter(s) {
            let a = c[2].to_string();
            let b = c.get(3).map(|m| m.as_str().to_string());
            match (&c[1], b) {
                ("ref", None) => refs.push(crate::jinja::RefCall { package: None, name: a, version: None }),
                ("ref", Some(b)) => refs.push(crate::jinja::RefCall { package: Some(a), name: b, version: None }),
                ("source", Some(b)) => sources.push((a, b)),
                _ => {}
            }
        }
    }
    (refs, sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> TestTarget<'static> {
        TestTarget { unique_id: "model.p.orders", label: "orders".into(), package: "p", file: "m.yml", line: 3 }
    }

    #[test]
    fn names_follow_dbt() {
        let n = build(&json!("unique"), &target(), Some("id"), &[], None).unwrap();
        assert_eq!(n.name, "unique_orders_id");
        let n = build(
            &json!({"accepted_values": {"values": ["a", "b"], "config": {"severity": "warn"}}}),
            &target(),
            Some("status"),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(n.name, "accepted_values_orders_status__a__b");
        assert_eq!(n.config["severity"], json!("WARN"));
        let n =
            build(&json!({"relationships": {"arguments": {"to": "ref('customers')", "field": "id"}}}), &target(), Some("cid"), &[], None)
                .unwrap();
        assert_eq!(n.name, "relationships_orders_cid__id__ref_customers_");
        let (refs, _) = kwarg_dependencies(&n.test.unwrap().kwargs);
        assert_eq!(refs[0].name, "customers");
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        assert!(build(&json!(3), &target(), None, &[], None).is_err());
        assert!(build(&json!({"a": 1, "b": 2}), &target(), None, &[], None).is_err());
        assert!(build(&json!({"unique": [1]}), &target(), None, &[], None).is_err());
    }
}
