//! Node configuration: dbt's merge rules across project file, YAML and `config()`.
//!
//! Precedence, lowest first: resource defaults, the package's own project file,
//! the root project file, the properties YAML `config:`, then `config()` in SQL.
//! `tags` accumulate, `meta`-like dictionaries merge, hooks append, everything
//! else is overwritten by the later level.

use serde_json::Value as Json;

/// A node's effective configuration, sorted for deterministic output.
pub type Config = crate::sorted_map::SortedMap<String, Json>;

/// Config keys whose value is a mapping (so a mapping under them in the project
/// file is a value, not a sub-folder).
const DICT_KEYS: [&str; 14] = [
    "meta",
    "column_types",
    "docs",
    "grants",
    "persist_docs",
    "contract",
    "quoting",
    "partition_by",
    "freshness",
    "labels",
    "tblproperties",
    "snapshot_meta_column_names",
    "dispatch",
    "arguments",
];

/// Keys whose dictionaries merge instead of being replaced.
const MERGED_DICTS: [&str; 4] = ["meta", "grants", "docs", "column_types"];

/// Canonical spelling of a config key (`+pre_hook` → `pre-hook`).
pub fn normalize_key(key: &str) -> String {
    let k = key.strip_prefix('+').unwrap_or(key);
    match k {
        "pre_hook" => "pre-hook".into(),
        "post_hook" => "post-hook".into(),
        other => other.to_string(),
    }
}

fn as_list(v: &Json) -> Vec<Json> {
    match v {
        Json::Array(a) => a.clone(),
        Json::Null => vec![],
        other => vec![other.clone()],
    }
}

/// Applies one `key: value` on top of `cfg` with dbt's merge rules.
pub fn apply(cfg: &mut Config, key: &str, value: &Json) {
    let key = normalize_key(key);
    match key.as_str() {
        "tags" => {
            let mut tags: Vec<Json> = cfg.get("tags").map(as_list).unwrap_or_default();
            for t in as_list(value) {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
            cfg.insert(key, Json::Array(tags));
        }
        "pre-hook" | "post-hook" => {
            let mut hooks = cfg.get(&key).map(as_list).unwrap_or_default();
            hooks.extend(as_list(value));
            cfg.insert(key, Json::Array(hooks));
        }
        k if MERGED_DICTS.contains(&k) && value.is_object() => {
            let mut merged = cfg.get(k).and_then(Json::as_object).cloned().unwrap_or_default();
            for (mk, mv) in value.as_object().into_iter().flatten() {
                merged.insert(mk.clone(), mv.clone());
            }
            cfg.insert(key, Json::Object(merged));
        }
        _ => {
            cfg.insert(key, value.clone());
        }
    }
}

/// Applies every entry of a mapping.
pub fn apply_all(cfg: &mut Config, values: &serde_json::Map<String, Json>) {
    for (k, v) in values {
        apply(cfg, k, v);
    }
}

fn is_config_entry(key: &str, value: &Json) -> bool {
    key.starts_with('+') || !value.is_object() || DICT_KEYS.contains(&key)
}

/// Applies the configs of a project-file resource tree (`models:` …) along `path`
/// (package, folders…, node name).
pub fn apply_project_tree(cfg: &mut Config, tree: Option<&Json>, path: &[String]) {
    let Some(mut level) = tree.and_then(Json::as_object) else { return };
    let apply_level = |cfg: &mut Config, level: &serde_json::Map<String, Json>| {
        for (k, v) in level {
            if is_config_entry(k, v) {
                apply(cfg, k, v);
            }
        }
    };
    apply_level(cfg, level);
    for seg in path {
        match level.get(seg.as_str()).and_then(Json::as_object) {
            Some(next) if !DICT_KEYS.contains(&seg.as_str()) => {
                level = next;
                apply_level(cfg, level);
            }
            _ => break,
        }
    }
}

/// The materialization, tags and other typed reads of a config.
pub trait ConfigExt {
    /// A string value.
    fn str(&self, key: &str) -> Option<&str>;
    /// A boolean value (dbt accepts the strings `true`/`false`).
    fn bool(&self, key: &str) -> Option<bool>;
    /// Sorted, de-duplicated tags.
    fn tags(&self) -> Vec<String>;
    /// `enabled`, default true.
    fn enabled(&self) -> bool {
        self.bool("enabled").unwrap_or(true)
    }
}

impl ConfigExt for Config {
    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Json::as_str)
    }
    fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Json::Bool(b) => Some(*b),
            Json::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" => Some(true),
                "false" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }
    fn tags(&self) -> Vec<String> {
        // In the order they were applied (project file, properties, `config()`), as dbt lists a node's tags.
        let mut tags: Vec<String> = Vec::new();
        for t in self.get("tags").map(as_list).unwrap_or_default() {
            if let Some(t) = t.as_str()
                && !tags.iter().any(|x| x == t)
            {
                tags.push(t.to_string());
            }
        }
        tags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tree_configs_apply_by_folder_and_tags_accumulate() {
        let tree = json!({"+tags": ["all"], "proj": {"+materialized": "view", "staging": {"+tags": "stg", "materialized": "table", "meta": {"a": 1}}}});
        let mut cfg = Config::new();
        apply_project_tree(&mut cfg, Some(&tree), &["proj".into(), "staging".into(), "m".into()]);
        assert_eq!(cfg["materialized"], json!("table"));
        assert_eq!(cfg.tags(), vec!["all", "stg"]);
        apply(&mut cfg, "tags", &json!(["b", "all", "a"]));
        assert_eq!(cfg.tags(), vec!["all", "stg", "b", "a"], "in the order applied, each once");
        assert_eq!(cfg["meta"], json!({"a": 1}));
    }

    #[test]
    fn hooks_append_and_meta_merges() {
        let mut cfg = Config::new();
        apply(&mut cfg, "+pre_hook", &json!("a"));
        apply(&mut cfg, "pre-hook", &json!(["b"]));
        apply(&mut cfg, "meta", &json!({"x": 1}));
        apply(&mut cfg, "meta", &json!({"y": 2}));
        assert_eq!(cfg["pre-hook"], json!(["a", "b"]));
        assert_eq!(cfg["meta"], json!({"x": 1, "y": 2}));
    }
}
