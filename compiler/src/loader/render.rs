//! Parse-time rendering: models, snapshots, analyses and singular tests are
//! rendered with `execute = false` to learn their refs, sources and `config()`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use minijinja::Value;
use rayon::prelude::*;
use serde_json::json;

use super::PendingNode;
use crate::config::{self, Config, ConfigExt};
use crate::dialect::Dialect;
use crate::error::Result;
use crate::jinja::{Jinja, NodeCtx, RefCall, Relation, Rendered, Resolver, Vars};
use crate::nodes::ResourceType;
use crate::profiles::Output;

/// Resolves names to placeholders while parsing; dependencies are checked afterwards.
pub struct ParseResolver {
    docs: BTreeMap<(String, String), String>,
    dialect: Dialect,
    /// The root project, searched first for a `doc()` without a package.
    root: String,
}

impl ParseResolver {
    pub fn new(docs: BTreeMap<(String, String), String>, adapter: String, root: String) -> Self {
        ParseResolver { docs, dialect: Dialect::from_adapter(&adapter).unwrap_or(Dialect::Postgres), root }
    }
}

impl Resolver for ParseResolver {
    fn resolve_ref(&self, _from: &str, call: &RefCall) -> std::result::Result<Relation, String> {
        Ok(Relation::new(None, None, call.name.clone(), self.dialect))
    }
    fn resolve_source(&self, source: &str, table: &str) -> std::result::Result<Relation, String> {
        Ok(Relation::new(None, Some(source.to_string()), table.to_string(), self.dialect))
    }
    fn doc(&self, package: Option<&str>, name: &str, node_package: &str) -> Option<(String, String)> {
        crate::jinja::find_doc(&self.docs, package, name, &self.root, node_package).map(|(p, t)| (p.to_string(), t.to_string()))
    }
}

/// The render state of `node` (not executing, not incremental, no `this`);
/// callers override what differs with struct update syntax.
pub fn node_ctx(node: &crate::nodes::Node, dialect: Dialect, resolver: Arc<dyn Resolver>, vars: Arc<Vars>, target: Value) -> NodeCtx {
    NodeCtx {
        package: node.package.clone(),
        name: node.name.clone(),
        unique_id: node.unique_id.clone(),
        resource_type: node.resource_type.as_str().into(),
        execute: false,
        incremental: false,
        dialect,
        this: None,
        resolver,
        vars,
        config: node.config.clone(),
        target,
        recorder: Mutex::new(Default::default()),
        live: None,
        overrides: None,
    }
}

/// The `target` variable for an output.
pub fn target_value(profile: &str, o: &Output) -> Value {
    crate::jinja::to_value(json!({
        "name": o.name,
        "target_name": o.name,
        "type": o.kind,
        "schema": o.schema,
        "database": o.database.clone().unwrap_or_default(),
        "dbname": o.database.clone().unwrap_or_default(),
        "profile_name": profile,
        "threads": o.threads.unwrap_or(4),
    }))
}

/// The `model` variable for a node: dbt's node dict, keys in dbt's order. Built
/// for every render, so serialized straight into a Jinja value (no JSON tree).
pub fn model_value(n: &crate::nodes::Node) -> Value {
    #[derive(serde::Serialize)]
    struct RefView<'a> {
        name: &'a str,
        package: &'a Option<String>,
        version: &'a Option<String>,
    }
    #[derive(serde::Serialize)]
    struct ModelView<'a> {
        language: &'static str,
        refs: Vec<RefView<'a>>,
        // Lists (an array would be a tuple to Jinja).
        sources: Vec<Vec<&'a str>>,
        name: &'a str,
        unique_id: &'a str,
        resource_type: &'static str,
        package_name: &'a str,
        fqn: &'a [String],
        original_file_path: &'a str,
        config: std::borrow::Cow<'a, Config>,
        tags: Vec<String>,
        alias: &'a str,
        description: &'a str,
        raw_code: &'a str,
        version: &'a Option<String>,
        latest_version: &'a Option<String>,
    }
    let mut config = std::borrow::Cow::Borrowed(&n.config);
    // What py_script_postfix reads (dbt's `config_keys_used` of `dbt.config.get`).
    if let Some(py) = &n.python {
        let c = config.to_mut();
        c.insert("config_keys_used".into(), json!(py.config_keys_used.iter().map(|(k, _)| k).collect::<Vec<_>>()));
        c.insert("config_keys_defaults".into(), json!(py.config_keys_used.iter().map(|(_, d)| d).collect::<Vec<_>>()));
        c.insert("meta_keys_used".into(), json!([]));
    }
    crate::jinja::to_value(ModelView {
        language: if n.python.is_some() { "python" } else { "sql" },
        refs: n.refs.iter().map(|(r, _)| RefView { name: &r.name, package: &r.package, version: &r.version }).collect(),
        sources: n.source_calls.iter().map(|(s, t, _)| vec![s.as_str(), t.as_str()]).collect(),
        name: &n.name,
        unique_id: &n.unique_id,
        resource_type: n.resource_type.as_str(),
        package_name: &n.package,
        fqn: &n.fqn,
        original_file_path: &n.file,
        config,
        tags: n.config.tags(),
        alias: n.config.str("alias").unwrap_or(&n.name),
        description: &n.description,
        raw_code: &n.raw,
        version: &n.version,
        latest_version: &n.latest_version,
    })
}

fn flags_value(execute: bool) -> Value {
    crate::jinja::to_value(json!({"FULL_REFRESH": false, "WHICH": if execute { "compile" } else { "parse" }, "STORE_FAILURES": false}))
}

/// The template context of a node render.
pub fn context_value(node: &crate::nodes::Node, this: &Relation, target: &Value, execute: bool, project_name: &str) -> Value {
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("this", Value::from_object(this.clone()));
    m.insert("model", model_value(node));
    m.insert("target", target.clone());
    m.insert("execute", Value::from(execute));
    m.insert("project_name", Value::from(project_name));
    m.insert("flags", flags_value(execute));
    // As in dbt's parse: the graph exists, and is empty until the project is parsed.
    m.insert(
        "graph",
        crate::jinja::mutable::from_json(
            &json!({"nodes": {}, "sources": {}, "exposures": {}, "groups": {}, "metrics": {}, "semantic_models": {}, "saved_queries": {}}),
        ),
    );
    Value::from(m)
}

/// Renders short Jinja strings of properties files (descriptions, source schemas).
pub struct TextRenderer<'a> {
    pub jinja: &'a Jinja,
    pub resolver: Arc<dyn Resolver>,
    pub vars: Arc<Vars>,
    pub target: Value,
    pub dialect_kind: String,
    /// Rendered strings by (package, text): descriptions repeat a lot.
    pub cache: HashMap<(String, String), String>,
    /// [`TextRenderer::doc_blocks`] by (package, text), for the same reason.
    pub doc_blocks_cache: HashMap<(String, String), Vec<String>>,
}

impl TextRenderer<'_> {
    /// dbt's `doc_blocks` of a description as written: the docs blocks its
    /// top-level `{{ doc(...) }}` calls name, resolved from `package`.
    pub fn doc_blocks(&mut self, text: &str, package: &str) -> Vec<String> {
        use std::sync::LazyLock;
        static CALL: LazyLock<regex::Regex> = LazyLock::new(|| {
            regex::Regex::new(r#"\{\{-?\s*doc\(\s*(?:'([^']*)'|"([^"]*)")\s*(?:,\s*(?:'([^']*)'|"([^"]*)")\s*)?\)\s*-?\}\}"#)
                .expect("valid regex")
        });
        if !text.contains("doc(") {
            return Vec::new();
        }
        let key = (package.to_string(), text.to_string());
        if let Some(hit) = self.doc_blocks_cache.get(&key) {
            return hit.clone();
        }
        let found: Vec<String> = CALL
            .captures_iter(text)
            .filter_map(|c| {
                let first = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
                let (pkg, name) = match c.get(3).or(c.get(4)) {
                    Some(second) => (Some(first), second.as_str()),
                    None => (None, first),
                };
                self.resolver.doc(pkg, name, package).map(|(p, _)| format!("doc.{p}.{name}"))
            })
            .collect();
        self.doc_blocks_cache.insert(key, found.clone());
        found
    }

    pub fn render(&mut self, text: &str, package: &str, file: &str, line: u32) -> Result<String> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        let key = (package.to_string(), text.to_string());
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit.clone());
        }
        let out = self.render_uncached(text, package, file, line)?;
        self.cache.insert(key, out.clone());
        Ok(out)
    }

    fn render_uncached(&mut self, text: &str, package: &str, file: &str, line: u32) -> Result<String> {
        crate::partial::note_rendered(text);
        let dialect = Dialect::from_adapter(&self.dialect_kind).unwrap_or(Dialect::Postgres);
        let node = Arc::new(NodeCtx {
            package: package.to_string(),
            name: String::new(),
            unique_id: String::new(),
            resource_type: "properties".into(),
            execute: false,
            incremental: false,
            dialect,
            this: None,
            resolver: self.resolver.clone(),
            vars: self.vars.clone(),
            config: Config::new(),
            target: self.target.clone(),
            recorder: Mutex::new(Default::default()),
            live: None,
            overrides: None,
        });
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        ctx.insert("target", self.target.clone());
        ctx.insert("execute", Value::from(false));
        match self.jinja.render(node, Value::from(ctx), file, text) {
            Ok(Rendered::Sql(s)) => Ok(s),
            Ok(Rendered::RuntimeOnly(_)) => Ok(text.to_string()),
            Err(mut e) => {
                // Properties strings live inside YAML: point at the entry.
                if let Some(l) = e.location.as_mut() {
                    l.line = line + l.line.saturating_sub(1);
                }
                Err(e)
            }
        }
    }
}

/// Renders every SQL node in parallel and folds what it observed into the node.
pub fn render_all(
    jinja: &Jinja,
    pending: &mut [PendingNode],
    resolver: Arc<dyn Resolver>,
    vars: Arc<Vars>,
    target: &Value,
    adapter: &str,
) -> Result<()> {
    let dialect = Dialect::from_adapter(adapter).unwrap_or(Dialect::Postgres);
    let root = jinja.index.root.clone();
    let results: Vec<Result<()>> = pending
        .par_iter_mut()
        .filter(|p| p.node.resource_type != ResourceType::Seed && p.node.test.is_none() && p.node.python.is_none())
        .map(|p| {
            let node = &mut p.node;
            let this = Relation::new(None, None, node.config.str("alias").unwrap_or(&node.name).to_string(), dialect);
            let ctx_val = context_value(node, &this, target, false, &root);
            let ctx = Arc::new(NodeCtx { this: Some(this), ..node_ctx(node, dialect, resolver.clone(), vars.clone(), target.clone()) });
            // Snapshot bodies start mid-file: pad so minijinja's lines are file lines.
            let padded;
            let src = if node.raw_line > 1 {
                padded = format!("{}{}", "\n".repeat(node.raw_line as usize - 1), node.raw);
                padded.as_str()
            } else {
                node.raw.as_str()
            };
            let rendered = jinja.render(ctx.clone(), ctx_val, &node.file, src)?;
            let rec = std::mem::take(&mut *ctx.recorder.lock().unwrap_or_else(|p| p.into_inner()));
            if !rec.configs.is_empty() {
                // What a re-render of this file alone starts from (see `crate::partial`).
                node.config_before_render = Some(node.config.clone());
            }
            for (k, v) in &rec.configs {
                config::apply(&mut node.config, k, v);
            }
            node.refs = rec.refs.into_iter().map(|r| (r, node.raw_line)).collect();
            node.source_calls = rec.sources.into_iter().map(|(a, b)| (a, b, node.raw_line)).collect();
            node.macros = rec.macros.into_iter().collect();
            // `-- depends_on: {{ ref('x') }}` comments are already captured by rendering.
            if let Rendered::RuntimeOnly(reason) = rendered {
                node.runtime_only = Some(reason);
            }
            Ok(())
        })
        .collect();
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `model` as it was built before (a JSON tree converted to a Jinja value): the
    /// direct serialization must give templates the same dict, keys in the same order.
    #[test]
    fn the_model_variable_is_dbts_node_dict() {
        let mut n = crate::nodes::Node {
            unique_id: "model.p.orders".into(),
            name: "orders".into(),
            package: "p".into(),
            fqn: vec!["p".into(), "orders".into()],
            file: "models/orders.sql".into(),
            raw: "select * from {{ ref('a') }}".into(),
            description: "Orders".into(),
            version: Some("2".into()),
            ..Default::default()
        };
        n.config.insert("materialized".into(), json!("table"));
        n.config.insert("tags".into(), json!(["x"]));
        n.refs = vec![(RefCall { package: Some("q".into()), name: "a".into(), version: None }, 1)];
        n.source_calls = vec![("raw".into(), "events".into(), 1)];
        let expected = crate::jinja::to_value(json!({
            "language": "sql",
            "refs": [{"name": "a", "package": "q", "version": null}],
            "sources": [["raw", "events"]],
            "name": "orders", "unique_id": "model.p.orders", "resource_type": "model", "package_name": "p",
            "fqn": ["p", "orders"], "original_file_path": "models/orders.sql", "config": n.config,
            "tags": ["x"], "alias": "orders", "description": "Orders", "raw_code": n.raw,
            "version": "2", "latest_version": null,
        }));
        let got = model_value(&n);
        assert_eq!(got, expected);
        let env = minijinja::Environment::new();
        let show = |v: &Value| {
            env.render_str("{{ m }}|{% for k, v in m | items %}{{ k }}={{ v }};{% endfor %}", minijinja::context! { m => v }).unwrap()
        };
        assert_eq!(show(&got), show(&expected));
    }
}
