//! Generic tests declared in properties YAML (`data_tests:` / `tests:`),
//! turned into test nodes named the way dbt names them.

use serde_json::Value as Json;

use crate::config::{self, Config};
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, ResourceType, TestInfo};
use crate::sorted_map::SortedMap;

/// Keys of a test entry that configure the test rather than pass arguments.
const CONFIG_KEYS: [&str; 14] = [
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
    "schema",
];

/// Renders a config string that holds Jinja (`None`: it holds none).
pub type ConfigRenderFn<'a> = dyn Fn(&str, &Location) -> Result<Option<Json>> + Sync + 'a;

/// What the test is attached to.
pub struct TestTarget<'a> {
    /// Unique id of the tested model/seed/snapshot/source.
    pub unique_id: &'a str,
    /// Name used in the test's name (`orders`, `raw_orders` for source `raw`, table `orders`).
    pub label: String,
    /// The `model` argument as dbt writes it: `ref('orders')`, `source('raw', 'orders')`.
    pub model_call: &'a str,
    /// Folders of the properties file below its path root (the test's fqn).
    pub folders: &'a [String],
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

/// Python's `str()` of a YAML value, as dbt prints test arguments into names.
fn py_str(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// Python's `repr()` of a YAML value (`True`, `None`, `['a', 1]`, `{'k': 'v'}`).
fn py_repr(v: &Json) -> String {
    crate::jinja::pyrepr::repr(&crate::jinja::to_value(v))
}

/// dbt's `get_hashable_md` as Python prints it, appended to `out`: dicts with
/// sorted keys, lists, everything else `str()`.
fn hashable_repr(out: &mut String, v: &Json) {
    match v {
        Json::Object(m) => {
            let mut entries: Vec<(&str, &Json)> = m.iter().map(|(k, v)| (k.as_str(), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            hashable_dict(out, &entries);
        }
        Json::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                hashable_repr(out, x);
            }
            out.push(']');
        }
        Json::String(s) => crate::jinja::pyrepr::str_repr_into(out, s),
        other => crate::jinja::pyrepr::str_repr_into(out, &py_repr(other)),
    }
}

/// A dict of [`hashable_repr`] whose entries are already sorted by key.
fn hashable_dict(out: &mut String, sorted: &[(&str, &Json)]) {
    out.push('{');
    for (i, (k, v)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        crate::jinja::pyrepr::str_repr_into(out, k);
        out.push_str(": ");
        hashable_repr(out, v);
    }
    out.push('}');
}

/// dbt's `synthesize_generic_test_names`: (file name and alias, full name).
fn synthesize_names(test_type: &str, target_name: &str, kwargs: &SortedMap<String, Json>) -> (String, String) {
    let mut flat: Vec<String> = Vec::new();
    for (k, v) in kwargs {
        if k == "model" {
            continue;
        }
        match v {
            Json::Object(m) => flat.extend(m.values().map(|x| sanitize(&py_str(x)))),
            Json::Array(a) => flat.extend(a.iter().map(|x| sanitize(&py_str(x)))),
            other => flat.push(sanitize(&py_str(other))),
        }
    }
    let identifier = format!("{test_type}_{target_name}");
    let full = format!("{identifier}_{}", flat.join("__"));
    if full.len() >= 64 {
        let head: String = identifier.chars().take(30).collect();
        (format!("{head}_{}", md5_hex(&full)), full)
    } else {
        (full.clone(), full)
    }
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    crate::hex::encode(&Md5::digest(s.as_bytes()))
}

/// Builds the test node for one entry of a `data_tests:` list.
pub fn build(
    entry: &Json,
    target: &TestTarget<'_>,
    column: Option<&str>,
    column_tags: &[String],
    project_tests: Option<&Json>,
    render_config: &ConfigRenderFn<'_>,
) -> Result<Node> {
    let at = || Location::new(target.file, target.line, 0);
    // dbt renders the test's config values (strings only, at parse time): `severity: "{{ … }}"`.
    let rendered = |v: &Json| -> Result<Json> {
        match v {
            Json::String(s) => Ok(render_config(s, &at())?.unwrap_or_else(|| v.clone())),
            _ => Ok(v.clone()),
        }
    };
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
    let mut kwargs: SortedMap<String, Json> = SortedMap::new();
    let mut custom_name: Option<String> = None;
    let mut native_args = false;
    let mut test_config: Option<serde_json::Map<String, Json>> = None;
    for (k, v) in &body {
        match k.as_str() {
            "config" => {
                test_config = match v.as_object() {
                    Some(m) => Some(m.iter().map(|(k, x)| Ok((k.clone(), rendered(x)?))).collect::<Result<_>>()?),
                    None => None,
                }
            }
            "name" => custom_name = v.as_str().map(str::to_string),
            "arguments" => {
                native_args = true;
                for (ak, av) in v.as_object().into_iter().flatten() {
                    kwargs.insert(ak.clone(), av.clone());
                }
            }
            "description" => {}
            k if CONFIG_KEYS.contains(&k) => config::apply(&mut cfg, k, &rendered(v)?),
            _ => {
                kwargs.insert(k.clone(), v.clone());
            }
        }
    }
    let column_name = kwargs.get("column_name").and_then(Json::as_str).map(str::to_string).or_else(|| column.map(str::to_string));
    if let Some(c) = &column_name {
        kwargs.entry_or_insert_with("column_name".into(), || Json::from(c.clone()));
    }
    let mut test_type = if target.model_call.starts_with("source(") { format!("source_{test_name}") } else { test_name.clone() };
    if let Some(ns) = &namespace {
        test_type = format!("{ns}_{test_type}");
    }
    let (short_name, name) = match custom_name {
        Some(n) => (n.clone(), n),
        None => synthesize_names(&test_type, &target.label, &kwargs),
    };
    if short_name != name && !cfg.contains_key("alias") {
        cfg.insert("alias".into(), Json::from(short_name));
    }
    // Project-level `data_tests:` config, then column tags, then the entry's own config.
    let mut fqn = vec![target.package.to_string()];
    fqn.extend(target.folders.iter().cloned());
    fqn.push(name.clone());
    let fqn_path = fqn.clone();
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
    // dbt's unique id: md5 of the name and the test's metadata, as Python prints it.
    // `{'kwargs': {…, 'model': …}, 'name': …, 'namespace': …}`, keys sorted, written in place.
    let model = Json::from(format!("{{{{ get_where_subquery({}) }}}}", target.model_call));
    let mut hashed_kwargs: Vec<(&str, &Json)> = kwargs.iter().filter(|(k, _)| *k != "model").map(|(k, v)| (k.as_str(), v)).collect();
    hashed_kwargs.push(("model", &model));
    hashed_kwargs.sort_by(|a, b| a.0.cmp(b.0));
    let mut hashed = name.clone();
    hashed.push_str("{'kwargs': ");
    hashable_dict(&mut hashed, &hashed_kwargs);
    hashed.push_str(", 'name': ");
    crate::jinja::pyrepr::str_repr_into(&mut hashed, &test_name);
    hashed.push_str(", 'namespace': ");
    match &namespace {
        Some(ns) => crate::jinja::pyrepr::str_repr_into(&mut hashed, ns),
        None => crate::jinja::pyrepr::str_repr_into(&mut hashed, "None"),
    }
    hashed.push('}');
    let hash = md5_hex(&hashed);
    let unique_id = format!("test.{}.{}.{}", target.package, name, &hash[hash.len() - 10..]);
    Ok(Node {
        unique_id,
        resource_type: ResourceType::Test,
        package: target.package.to_string(),
        name,
        fqn,
        file: target.file.to_string(),
        raw_line: target.line,
        config: cfg,
        test: Some(Box::new(TestInfo {
            name: test_name,
            namespace,
            kwargs,
            native_args,
            attached_node: target.unique_id.to_string(),
            column_name,
        })),
        ..Default::default()
    })
}

/// `ref(...)`/`source(...)` calls inside test arguments (e.g. `to: ref('customers')`).
pub fn kwarg_dependencies(kwargs: &SortedMap<String, Json>) -> (Vec<crate::jinja::RefCall>, Vec<(String, String)>) {
    let mut refs = Vec::new();
    let mut sources = Vec::new();
    for (k, v) in kwargs {
        if k == "column_name" {
            continue;
        }
        let Some(s) = v.as_str() else { continue };
        let (r, src) = crate::semantic::calls_in(s);
        refs.extend(r);
        sources.extend(src);
    }
    (refs, sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_jinja(_: &str, _: &Location) -> Result<Option<Json>> {
        Ok(None)
    }

    #[test]
    fn config_values_with_jinja_are_rendered_as_dbt_does() {
        let render = |s: &str, _: &Location| -> Result<Option<Json>> { Ok(s.contains("{{").then(|| json!("warn"))) };
        let entry =
            json!({"not_null": {"severity": "{{ 'warn' if target.type == 'spark' else 'error' }}", "config": {"where": "{{ x }}"}}});
        let n = build(&entry, &target(), Some("id"), &[], None, &render).unwrap();
        assert_eq!(n.config["severity"], json!("WARN"));
        assert_eq!(n.config["where"], json!("warn"));
    }

    fn target() -> TestTarget<'static> {
        TestTarget {
            unique_id: "model.p.orders",
            label: "orders".into(),
            model_call: "ref('orders')",
            folders: &[],
            package: "p",
            file: "models/m.yml",
            line: 3,
        }
    }

    #[test]
    fn names_follow_dbt() {
        let n = build(&json!("unique"), &target(), Some("id"), &[], None, &no_jinja).unwrap();
        assert_eq!(n.name, "unique_orders_id");
        let n = build(
            &json!({"accepted_values": {"values": ["a", "b"], "config": {"severity": "warn"}}}),
            &target(),
            Some("status"),
            &[],
            None,
            &no_jinja,
        )
        .unwrap();
        assert_eq!(n.name, "accepted_values_orders_status__a__b");
        // dbt 1.11 gives this id for the same test (md5 of the name and Python's repr of its metadata).
        assert_eq!(n.unique_id.len(), "test.p.accepted_values_orders_status__a__b.".len() + 10);
        assert_eq!(n.config["severity"], json!("WARN"));
        let n = build(
            &json!({"relationships": {"arguments": {"to": "ref('customers')", "field": "id"}}}),
            &target(),
            Some("cid"),
            &[],
            None,
            &no_jinja,
        )
        .unwrap();
        assert_eq!(n.name, "relationships_orders_cid__id__ref_customers_");
        let (refs, _) = kwarg_dependencies(&n.test.unwrap().kwargs);
        assert_eq!(refs[0].name, "customers");
    }

    #[test]
    fn long_names_keep_the_full_name_and_hash_the_file_name_as_dbt_does() {
        // From dbt-core 1.11 on jaffle_shop: `accepted_values` on orders.status.
        let values = json!(["placed", "shipped", "completed", "return_pending", "returned"]);
        let n = build(&json!({"accepted_values": {"values": values}}), &target(), Some("status"), &[], None, &no_jinja).unwrap();
        assert_eq!(n.name, "accepted_values_orders_status__placed__shipped__completed__return_pending__returned");
        assert_eq!(n.config["alias"], json!("accepted_values_orders_1ce6ab157c285f7cd2ac656013faf758"));
        assert_eq!(n.unique_id, "test.p.accepted_values_orders_status__placed__shipped__completed__return_pending__returned.be6b5b5ec3");
        // Tests on sources: `source_` before the test, `<source>_<table>` as the target; Python's `False`/`None`.
        let src = TestTarget { label: "raw_orders".into(), model_call: "source('raw', 'orders')", ..target() };
        let n = build(&json!({"accepted_values": {"values": [false, null], "quote": false}}), &src, Some("flag"), &[], None, &no_jinja)
            .unwrap();
        assert_eq!(n.name, "source_accepted_values_raw_orders_flag__False__False__None");
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        assert!(build(&json!(3), &target(), None, &[], None, &no_jinja).is_err());
        assert!(build(&json!({"a": 1, "b": 2}), &target(), None, &[], None, &no_jinja).is_err());
        assert!(build(&json!({"unique": [1]}), &target(), None, &[], None, &no_jinja).is_err());
    }
}
