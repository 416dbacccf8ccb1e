//! Compile-time rendering: `ref`/`source`/`this` resolve to real relations in
//! the node's dialect (or to fragment names under federation), ephemerals are
//! inlined as CTEs, and incremental models are rendered both ways.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use minijinja::Value;
use serde_json::Value as Json;

use super::resolve::Placements;
use crate::config::ConfigExt;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::jinja::{Jinja, NodeCtx, RefCall, Relation, Rendered, Resolver};
use crate::loader::target_value;
use crate::nodes::{Node, Project};

/// Name lookups shared by every render.
pub struct Index {
    /// (package, name[, version]) → unique id of ref-able nodes.
    pub refs: crate::nodes::RefIndex,
    pub root: String,
    pub package_order: Vec<String>,
    pub placements: Placements,
    /// Source unique id by (source, table).
    pub sources: HashMap<(String, String), String>,
    pub ephemeral: BTreeSet<String>,
    /// The CTE an ephemeral is inlined as: dbt's `__dbt__cte__<alias or name>`.
    pub cte_names: HashMap<String, String>,
    pub docs: BTreeMap<(String, String), String>,
    /// The root project's `quoting:`, for `ref()` and `this`.
    pub quote: crate::dialect::QuotePolicy,
    /// `event_time` of the nodes and sources that declare one (unique id → column):
    /// a microbatch model reads them through its window.
    pub event_times: HashMap<String, String>,
}

impl Index {
    pub fn new(project: &Project, placements: Placements) -> Self {
        let mut ephemeral = BTreeSet::new();
        let mut cte_names = HashMap::new();
        for n in project.nodes.values() {
            if matches!(
                n.resource_type,
                crate::nodes::ResourceType::Model | crate::nodes::ResourceType::Seed | crate::nodes::ResourceType::Snapshot
            ) && n.config.str("materialized") == Some("ephemeral")
            {
                ephemeral.insert(n.unique_id.clone());
                // dbt names the CTE after the identifier: a versioned model's default alias is `<name>_v<v>`.
                let alias = match (n.config.str("alias"), &n.version) {
                    (Some(a), _) => a.to_string(),
                    (None, Some(v)) => format!("{}_v{v}", n.name),
                    (None, None) => n.name.clone(),
                };
                cte_names.insert(n.unique_id.clone(), format!("__dbt__cte__{alias}"));
            }
        }
        let event_times = project
            .nodes
            .values()
            .map(|n| (&n.unique_id, &n.config))
            .chain(project.sources.values().map(|s| (&s.unique_id, &s.config)))
            .filter_map(|(uid, c)| c.str("event_time").map(|e| (uid.clone(), e.to_string())))
            .collect();
        Index {
            event_times,
            refs: crate::nodes::RefIndex::new(project.nodes.values()),
            root: project.name.clone(),
            package_order: project.packages.iter().map(|p| p.name.clone()).collect(),
            placements,
            sources: project.sources.values().map(|s| ((s.source_name.clone(), s.name.clone()), s.unique_id.clone())).collect(),
            ephemeral,
            cte_names,
            docs: project.docs.clone(),
            quote: crate::dialect::QuotePolicy::default().overlay(project.root_package().file.quoting.as_ref()),
        }
    }

    /// The unique id a `ref()` from `from` names (same rules as the loader).
    pub fn find_ref(&self, from: &str, call: &RefCall) -> Option<&String> {
        self.refs.find(from, &self.root, &self.package_order, call)
    }
}

/// The name a fragment gets in a federated remainder.
pub fn fragment_name(project: &Project, uid: &str) -> String {
    if let Some(s) = project.sources.get(uid) {
        return format!("{}__{}", s.source_name, s.name);
    }
    if uid == THIS {
        return "__this".into();
    }
    project.nodes.get(uid).map_or_else(|| uid.to_string(), |n| n.name.clone())
}

/// Pseudo unique id of `{{ this }}` when a federated incremental model reads its target.
pub const THIS: &str = "__this__";

/// Where a source lives: (connection, database, schema, identifier).
type SourceLoc = (String, Option<String>, String, String, crate::dialect::QuotePolicy);

/// The project's vars with a unit test's `overrides: {vars: …}` on top (they win like `--vars`).
fn vars_with(vars: &Arc<crate::jinja::Vars>, overrides: &Json) -> Arc<crate::jinja::Vars> {
    match overrides.get("vars") {
        Some(Json::Object(o)) => {
            let mut v = crate::jinja::Vars {
                cli: vars.cli.clone(),
                global: vars.global.clone(),
                by_package: vars.by_package.clone(),
                own: vars.own.clone(),
            };
            v.cli.extend(o.iter().map(|(k, x)| (k.clone(), x.clone())));
            Arc::new(v)
        }
        _ => vars.clone(),
    }
}

fn overrides_of(overrides: &Json) -> Option<Arc<crate::jinja::RenderOverrides>> {
    let map = |k: &str| overrides.get(k).and_then(Json::as_object).cloned().unwrap_or_default();
    let o = crate::jinja::RenderOverrides { macros: map("macros"), env_vars: map("env_vars") };
    (!o.macros.is_empty() || !o.env_vars.is_empty()).then(|| Arc::new(o))
}

/// How relations render.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Real names in the target's dialect.
    Pushdown(Dialect),
    /// Fragment names, quoted in the target's dialect (the remainder is
    /// requoted for the compute after splitting).
    Federation(Dialect),
    /// Real names, each upstream with an `event_time` read through a microbatch
    /// window as dbt renders it for a batch (`(select * from x where t >= '…' and
    /// t < '…') _dbt_et_filter_subq_x`), the bounds left for `dvtr` to fill in.
    Batch(Dialect),
}

/// `relation` read through a microbatch window on `column`, as dbt renders a
/// filtered `ref()` for a batch; the bounds are the plan's placeholders.
pub fn window_filtered(relation: &str, column: &str, identifier: &str) -> String {
    use dvt_schema::plan::{MICROBATCH_END, MICROBATCH_START};
    format!(
        "(select * from {relation} where {column} >= '{MICROBATCH_START}' and {column} < '{MICROBATCH_END}') _dbt_et_filter_subq_{identifier}"
    )
}

struct NodeResolver {
    index: Arc<Index>,
    project_sources: Arc<BTreeMap<String, SourceLoc>>,
    outputs: Arc<BTreeMap<String, crate::profiles::Output>>,
    fragment_names: Arc<HashMap<String, String>>,
    mode: Mode,
}

impl NodeResolver {
    fn dialect(&self) -> Dialect {
        match self.mode {
            Mode::Pushdown(d) | Mode::Federation(d) | Mode::Batch(d) => d,
        }
    }

    fn as_fragment(&self, uid: &str, mut r: Relation) -> Relation {
        if let Mode::Federation(d) = self.mode {
            let name = self.fragment_names.get(uid).cloned().unwrap_or_else(|| uid.to_string());
            r.cte_name = Some(d.quote(&name));
        }
        if let (Mode::Batch(_), Some(column)) = (self.mode, self.index.event_times.get(uid)) {
            r.cte_name = Some(window_filtered(&r.render(), column, &r.identifier));
        }
        r
    }
}

impl Resolver for NodeResolver {
    fn resolve_ref(&self, from: &str, call: &RefCall) -> std::result::Result<Relation, String> {
        let uid = self.index.find_ref(from, call).ok_or_else(|| format!("ref('{}') was not found", call.name))?;
        if self.index.ephemeral.contains(uid) {
            let mut r = Relation::new(None, None, call.name.clone(), self.dialect());
            r.cte_name = self.index.cte_names.get(uid).cloned();
            r.kind = Some("cte".into());
            return Ok(r);
        }
        let p = self
            .index
            .placements
            .get(uid)
            .and_then(|p| p.relation.clone())
            .ok_or_else(|| format!("ref('{}') has no relation", call.name))?;
        let mut r = Relation::new(p.database, p.schema, p.identifier, self.dialect());
        r.kind = Some("table".into());
        r.quote = self.index.quote;
        Ok(self.as_fragment(uid, r))
    }

    fn resolve_source(&self, source: &str, table: &str) -> std::result::Result<Relation, String> {
        let uid = self
            .index
            .sources
            .get(&(source.to_string(), table.to_string()))
            .ok_or_else(|| format!("source('{source}', '{table}') was not found"))?;
        let (conn, database, schema, identifier, quote) = self.project_sources.get(uid).cloned().ok_or("unknown source")?;
        let three = self.outputs.get(&conn).and_then(|o| Dialect::from_adapter(&o.kind)).is_none_or(Dialect::three_part_names);
        let mut r = Relation::new(if three { database } else { None }, Some(schema), identifier, self.dialect());
        r.quote = quote;
        Ok(self.as_fragment(uid, r))
    }

    fn doc(&self, package: Option<&str>, name: &str, node_package: &str) -> Option<(String, String)> {
        crate::jinja::find_doc(&self.index.docs, package, name, &self.index.root, node_package).map(|(p, t)| (p.to_string(), t.to_string()))
    }
}

/// What rendering one node produced.
#[derive(Debug, Clone)]
pub struct RenderOut {
    /// The rendered SQL, trimmed (what statements are built from).
    pub sql: String,
    /// Exactly what the template rendered (what dbt writes to `target/compiled/`).
    pub text: String,
    /// Ephemeral upstreams inlined (unique ids).
    pub ephemerals: Vec<String>,
    /// `log()` messages, in order.
    pub logs: Vec<String>,
}

/// Renders nodes for compile.
pub struct Renderer<'a> {
    pub project: &'a Project,
    pub jinja: &'a Jinja,
    pub index: Arc<Index>,
    sources: Arc<BTreeMap<String, SourceLoc>>,
    outputs: Arc<BTreeMap<String, crate::profiles::Output>>,
    pub full_refresh: bool,
    live: Option<Arc<dyn crate::jinja::live::LiveDatabase>>,
    /// dbt's `graph` context variable, built on first use.
    graph: Value,
    /// dbt's `selected_resources`: unique ids of the nodes the command selected.
    selected: Value,
    /// The `target` variable of each output, built once.
    targets: BTreeMap<String, Value>,
    /// The `flags` variable (the same for every node of a compile).
    flags: Value,
}

/// dbt's `graph`: `nodes` and `sources` of the project as dicts (what packages such as
/// codegen read), built once, on the first access of a compile.
#[derive(Debug)]
struct GraphObj {
    nodes: serde_json::Value,
    sources: serde_json::Value,
    /// Exposures, groups, semantic models, metrics and saved queries, by section.
    semantic: BTreeMap<&'static str, serde_json::Value>,
    built: std::sync::OnceLock<(Value, Value)>,
    /// Entries packages add (`graph.setdefault("elementary", {})`, a cache shared by the nodes
    /// of one compile, as dbt's graph dict is shared by one invocation).
    extra: std::sync::Mutex<BTreeMap<String, Value>>,
}

impl minijinja::value::Object for GraphObj {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let (nodes, sources) = self.built.get_or_init(|| (graph_entries(&self.nodes), graph_entries(&self.sources)));
        match key.as_str()? {
            "nodes" => Some(nodes.clone()),
            "sources" => Some(sources.clone()),
            section @ ("exposures" | "metrics" | "groups" | "semantic_models" | "saved_queries") => {
                Some(self.semantic.get(section).map_or_else(|| crate::jinja::to_value(serde_json::json!({})), graph_entries))
            }
            other => self.extra.lock().ok()?.get(other).cloned(),
        }
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut minijinja::State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> std::result::Result<Value, minijinja::Error> {
        let key = args.first().map(|k| k.to_string()).unwrap_or_default();
        match method {
            "get" => Ok(self.get_value(&Value::from(key.as_str())).or_else(|| args.get(1).cloned()).unwrap_or_default()),
            "setdefault" => {
                if let Some(v) = self.get_value(&Value::from(key.as_str())) {
                    return Ok(v);
                }
                // What is stored is mutated in place later (`.update(...)`): a Python-like dict.
                let default = args.get(1).cloned().unwrap_or_default();
                let value = if default.kind() == minijinja::value::ValueKind::Map {
                    crate::jinja::mutable::new_dict(Some(default))?
                } else {
                    default
                };
                let mut extra =
                    self.extra.lock().map_err(|_| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "graph cache poisoned"))?;
                Ok(extra.entry(key).or_insert(value).clone())
            }
            _ => Err(minijinja::Error::new(minijinja::ErrorKind::UnknownMethod, format!("graph has no method `{method}`"))),
        }
    }
    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&["nodes", "sources", "exposures", "metrics", "groups", "semantic_models", "saved_queries"])
    }
}

fn graph_of(project: &Project, placements: &Placements) -> Value {
    use serde_json::json;
    let default_output = project.profile.outputs.get(&project.active_target);
    let nodes: serde_json::Map<String, serde_json::Value> = project
        .nodes
        .values()
        .map(|n| {
            let v = json!({
                "unique_id": n.unique_id, "name": n.name, "resource_type": n.resource_type.as_str(), "package_name": n.package,
                // As dbt: inside the node's package, and below its resource folder.
                "original_file_path": crate::manifest_dbt::package_relative(project, &n.package, &n.file),
                "path": crate::manifest_dbt::resource_path(project, n), "fqn": n.fqn, "raw_code": n.raw, "raw_sql": n.raw,
                "language": if n.python.is_some() { "python" } else { "sql" }, "config": n.config, "tags": n.config.tags(),
                "alias": n.config.str("alias").unwrap_or(&n.name), "description": n.description,
                "depends_on": {"nodes": n.depends_on, "macros": n.macros},
                "refs": n.refs.iter().map(|(r, _)| json!({"name": r.name, "package": r.package, "version": r.version})).collect::<Vec<_>>(),
                "sources": n.source_calls.iter().map(|(a, b, _)| json!([a, b])).collect::<Vec<_>>(),
                "columns": graph_columns(&n.columns),
            });
            let mut v = v;
            if n.resource_type == crate::nodes::ResourceType::Model {
                v["time_spine"] = json!(n.time_spine);
                v["version"] = json!(n.version);
                v["latest_version"] = json!(n.latest_version);
            }
            // Where the node lives, as dbt's graph says (tests and analyses: the target's schema).
            match placements.get(&n.unique_id).and_then(|p| p.relation.as_ref()) {
                Some(r) => {
                    v["database"] = json!(r.database);
                    v["schema"] = json!(r.schema);
                    v["alias"] = json!(r.identifier);
                    v["relation_name"] = json!(r.rendered);
                }
                None => {
                    v["database"] = json!(default_output.and_then(|o| o.database.clone()));
                    v["schema"] = json!(default_output.map(|o| o.schema.clone()));
                    v["relation_name"] = serde_json::Value::Null;
                }
            }
            (n.unique_id.clone(), v)
        })
        .collect();
    let sources: serde_json::Map<String, serde_json::Value> = project
        .sources
        .values()
        .map(|s| {
            let v = json!({
                "unique_id": s.unique_id, "name": s.name, "source_name": s.source_name, "resource_type": "source",
                "package_name": s.package, "identifier": s.identifier, "schema": s.schema, "database": s.database,
                "fqn": s.fqn, "description": s.description, "tags": s.tags, "config": s.config,
                "original_file_path": crate::manifest_dbt::package_relative(project, &s.package, &s.file),
                "path": crate::manifest_dbt::package_relative(project, &s.package, &s.file),
                "columns": graph_columns(&s.columns),
            });
            (s.unique_id.clone(), v)
        })
        .collect();
    let semantic = crate::semantic::Kind::ALL
        .into_iter()
        .map(|k| (k.section(), serde_json::Value::Object(project.semantic.section(k, project, placements))))
        .collect();
    Value::from_object(GraphObj {
        nodes: nodes.into(),
        sources: sources.into(),
        semantic,
        built: std::sync::OnceLock::new(),
        extra: Default::default(),
    })
}

/// A template rendered for a node in place of its own SQL.
#[derive(Clone, Copy)]
pub struct Template<'t> {
    pub source: &'t str,
    /// Variables it reads (a generic test's arguments).
    pub args: &'t [(String, Json)],
    /// Compiled once and kept for every node that renders it (see `Jinja::render_shared`).
    pub shared: bool,
}

impl<'t> Template<'t> {
    /// Jinja text compiled for this render only.
    pub fn text(source: &'t str) -> Self {
        Template { source, args: &[], shared: false }
    }
}

impl<'t> From<&'t super::tests::TestTemplate> for Template<'t> {
    fn from(t: &'t super::tests::TestTemplate) -> Self {
        Template { source: &t.source, args: &t.args, shared: t.shared }
    }
}

/// Rendering marked "needs a live database".
pub struct RuntimeOnly(pub String);

impl<'a> Renderer<'a> {
    pub fn new(
        project: &'a Project,
        jinja: &'a Jinja,
        index: Arc<Index>,
        full_refresh: bool,
        live: Option<Arc<dyn crate::jinja::live::LiveDatabase>>,
    ) -> Self {
        let sources = project
            .sources
            .values()
            .map(|s| (s.unique_id.clone(), (s.connection.clone(), s.database.clone(), s.schema.clone(), s.identifier.clone(), s.quote)))
            .collect();
        let graph_index = index.clone();
        Renderer {
            project,
            jinja,
            index,
            sources: Arc::new(sources),
            outputs: Arc::new(project.profile.outputs.clone()),
            full_refresh,
            live,
            // Built only when some macro or node reads it (building it costs a copy of every node).
            graph: if project.macros.iter().any(|m| m.source.contains("graph")) || project.nodes.values().any(|n| n.raw.contains("graph")) {
                graph_of(project, &graph_index.placements)
            } else {
                Value::from_object(GraphObj {
                    nodes: serde_json::json!({}),
                    sources: serde_json::json!({}),
                    semantic: BTreeMap::new(),
                    built: std::sync::OnceLock::new(),
                    extra: Default::default(),
                })
            },
            selected: Value::from(Vec::<Value>::new()),
            targets: project.profile.outputs.iter().map(|(k, o)| (k.clone(), target_value(&project.profile.name, o))).collect(),
            flags: crate::jinja::to_value(serde_json::json!({"FULL_REFRESH": full_refresh, "WHICH": "compile"})),
        }
    }

    /// Sets `selected_resources` for what renders next.
    pub fn set_selected(&mut self, ids: &[String]) {
        self.selected = Value::from(ids.iter().map(|s| Value::from(s.as_str())).collect::<Vec<_>>());
    }

    fn fragment_names(&self, node: &Node) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = node.depends_on.iter().map(|d| (d.clone(), fragment_name(self.project, d))).collect();
        m.insert(THIS.into(), fragment_name(self.project, THIS));
        m
    }

    /// What a relation of generic test `node` renders to in pushdown SQL of
    /// `dialect`, as `ref()`/`source()` give it to the test's template (see
    /// `tests::generic_test_template`). `None` for a relation that is not a plain
    /// name (an ephemeral model's CTE) or that Jinja would fail to find.
    pub fn test_relation(&self, node: &Node, dialect: Dialect, relation: super::builtin_tests::TestRelation<'_>) -> Option<String> {
        use super::builtin_tests::TestRelation;
        let resolver = NodeResolver {
            index: self.index.clone(),
            project_sources: self.sources.clone(),
            outputs: self.outputs.clone(),
            fragment_names: Arc::new(HashMap::new()),
            mode: Mode::Pushdown(dialect),
        };
        let by_ref = |package: Option<&str>, name: &str| {
            let call = RefCall { package: package.map(str::to_string), name: name.to_string(), version: None };
            resolver.resolve_ref(&node.package, &call)
        };
        let resolved = match relation {
            TestRelation::Tested => {
                let t = node.test.as_ref()?;
                match self.project.sources.get(&t.attached_node) {
                    Some(s) => resolver.resolve_source(&s.source_name, &s.name),
                    None => {
                        let n = self.project.nodes.get(&t.attached_node)?;
                        by_ref(Some(&n.package), &n.name)
                    }
                }
            }
            TestRelation::Ref(package, name) => by_ref(package, name),
            TestRelation::Source(source, table) => resolver.resolve_source(source, table),
        };
        resolved.ok().filter(|r| r.cte_name.is_none()).map(|r| r.render())
    }

    /// Renders `node` (its own raw SQL, or `raw` when given) in `mode`.
    /// `Ok(Err(_))` means the node must render at run time.
    pub fn render(
        &self,
        node: &Node,
        raw: Option<&str>,
        mode: Mode,
        incremental: bool,
    ) -> Result<std::result::Result<RenderOut, RuntimeOnly>> {
        self.render_overridden_template(node, raw.map(Template::text), mode, incremental, &Json::Null)
    }

    /// [`Renderer::render`] with a unit test's `overrides:` (`macros`, `vars`, `env_vars`).
    pub fn render_overridden(
        &self,
        node: &Node,
        raw: Option<&str>,
        mode: Mode,
        incremental: bool,
        overrides: &Json,
    ) -> Result<std::result::Result<RenderOut, RuntimeOnly>> {
        self.render_overridden_template(node, raw.map(Template::text), mode, incremental, overrides)
    }

    fn render_overridden_template(
        &self,
        node: &Node,
        raw: Option<Template<'_>>,
        mode: Mode,
        incremental: bool,
        overrides: &Json,
    ) -> Result<std::result::Result<RenderOut, RuntimeOnly>> {
        let target_name =
            self.index.placements.get(&node.unique_id).map_or_else(|| self.project.active_target.clone(), |p| p.target.value.clone());
        let output = &self.project.profile.outputs[&target_name];
        let resolver = Arc::new(NodeResolver {
            index: self.index.clone(),
            project_sources: self.sources.clone(),
            outputs: self.outputs.clone(),
            // Only a federated render names its upstreams' fragments.
            fragment_names: Arc::new(if matches!(mode, Mode::Federation(_)) { self.fragment_names(node) } else { HashMap::new() }),
            mode,
        });
        let dialect = resolver.dialect();
        let this = match self.index.placements.get(&node.unique_id).and_then(|p| p.relation.clone()) {
            Some(r) => {
                let mut rel = Relation::new(r.database, r.schema, r.identifier, dialect);
                rel.quote = self.index.quote;
                if let Mode::Federation(d) = mode {
                    rel.cte_name = Some(d.quote("__this"));
                }
                rel
            }
            None => Relation::new(None, None, node.name.clone(), dialect),
        };
        let target = self.targets.get(&target_name).cloned().unwrap_or_else(|| target_value(&self.project.profile.name, output));
        let adapter_dialect = Dialect::from_adapter(&output.kind).unwrap_or(Dialect::Postgres);
        let ctx_val = {
            let mut m: BTreeMap<&str, Value> = BTreeMap::new();
            m.insert("this", Value::from_object(this.clone()));
            m.insert("model", crate::loader::model_value(node));
            m.insert("target", target.clone());
            m.insert("execute", Value::from(true));
            m.insert("project_name", Value::from(self.project.name.as_str()));
            m.insert("flags", self.flags.clone());
            m.insert("graph", self.graph.clone());
            m.insert("selected_resources", self.selected.clone());
            // A run hook's `results`, `schemas`, … (and the command's `flags`).
            if let Some(Json::Object(extra)) = overrides.get("context") {
                for (k, v) in extra {
                    m.insert(k.as_str(), crate::jinja::to_value(v.clone()));
                }
            }
            // A shared template's arguments, mutable as the list and dict literals they
            // stand for (`{% do group_by_columns.append(c) %}`); fresh for each render.
            for (k, v) in raw.iter().flat_map(|t| t.args) {
                m.insert(k.as_str(), crate::jinja::mutable::from_json(v));
            }
            Value::from(m)
        };
        // Macros dispatch on the target's adapter even when relations render for the compute.
        let ctx = Arc::new(NodeCtx {
            execute: true,
            incremental,
            this: Some(this),
            live: self.live.as_ref().map(|db| Arc::new(crate::jinja::live::LiveSession::new(db.clone(), target_name.clone()))),
            overrides: overrides_of(overrides),
            ..crate::loader::node_ctx(node, adapter_dialect, resolver.clone(), vars_with(&self.project.vars, overrides), target)
        });
        let shared = raw.is_some_and(|t| t.shared);
        let raw = raw.map_or(node.raw.as_str(), |t| t.source);
        let padded;
        let src = if raw.is_empty() || node.raw_line <= 1 || raw.as_ptr() != node.raw.as_ptr() {
            raw
        } else {
            // A Jinja comment keeps error lines at the file's lines and renders nothing.
            padded = format!("{{#{}#}}{}", "\n".repeat(node.raw_line as usize - 1), raw);
            padded.as_str()
        };
        let rendered = match shared {
            true => self.jinja.render_shared(ctx.clone(), ctx_val, &node.file, src)?,
            false => self.jinja.render(ctx.clone(), ctx_val, &node.file, src)?,
        };
        let sql = match rendered {
            Rendered::Sql(s) => s,
            Rendered::RuntimeOnly(r) => return Ok(Err(RuntimeOnly(r))),
        };
        let rec = ctx.recorder.lock().unwrap_or_else(|p| p.into_inner());
        let mut ephemerals = Vec::new();
        for call in &rec.refs {
            if let Some(uid) = self.index.find_ref(&node.package, call)
                && self.index.ephemeral.contains(uid)
                && !ephemerals.contains(uid)
            {
                ephemerals.push(uid.clone());
            }
        }
        Ok(Ok(RenderOut { sql: sql.trim().to_string(), text: sql, ephemerals, logs: rec.logs.clone() }))
    }

    /// Renders `node` and inlines its ephemeral upstreams (recursively) as CTEs.
    /// `raw` replaces the node's own SQL (a generic test's query), as in [`Renderer::render`].
    pub fn render_inlined(
        &self,
        node: &Node,
        raw: Option<Template<'_>>,
        mode: Mode,
        incremental: bool,
    ) -> Result<std::result::Result<String, RuntimeOnly>> {
        let out = match self.render_overridden_template(node, raw, mode, incremental, &Json::Null)? {
            Ok(o) => o,
            Err(r) => return Ok(Err(r)),
        };
        if out.ephemerals.is_empty() {
            return Ok(Ok(out.text));
        }
        // Depth-first: an ephemeral's own ephemerals come first.
        let mut ordered: Vec<(String, String)> = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        for e in &out.ephemerals {
            if let Err(r) = self.collect_ephemeral(e, mode, &mut ordered, &mut stack, node)? {
                return Ok(Err(r));
            }
        }
        let ctes: Vec<String> = ordered.iter().map(|(uid, sql)| format!(" {} as (\n{}\n)", self.index.cte_names[uid], sql)).collect();
        Ok(Ok(inject_ctes(&out.text, &ctes)))
    }

    fn collect_ephemeral(
        &self,
        uid: &str,
        mode: Mode,
        ordered: &mut Vec<(String, String)>,
        stack: &mut Vec<String>,
        consumer: &Node,
    ) -> Result<std::result::Result<(), RuntimeOnly>> {
        if ordered.iter().any(|(u, _)| u == uid) {
            return Ok(Ok(()));
        }
        if stack.iter().any(|u| u == uid) {
            return Err(DvtError::new(
                ErrorCode::Cycle,
                format!("ephemeral models reference each other in a cycle: {}", stack.join(" -> ")),
            )
            .at(Location::file(&consumer.file)));
        }
        let node = &self.project.nodes[uid];
        stack.push(uid.to_string());
        let out = match self.render(node, None, mode, false)? {
            Ok(o) => o,
            Err(r) => return Ok(Err(r)),
        };
        for e in &out.ephemerals {
            if let Err(r) = self.collect_ephemeral(e, mode, ordered, stack, consumer)? {
                return Ok(Err(r));
            }
        }
        stack.pop();
        ordered.push((uid.to_string(), out.text));
        Ok(Ok(()))
    }
}

/// dbt's `inject_ctes_into_sql`, byte for byte: the CTEs (each ` <name> as (\n<sql>\n)`, joined
/// by `, `) go right after a leading `with` (or `with recursive`), followed by `, `; without
/// one, `with`, the CTEs and a space go before the first token (a comment included, as
/// sqlparse's `token_first` finds it).
pub fn inject_ctes(sql: &str, ctes: &[String]) -> String {
    if ctes.is_empty() {
        return sql.to_string();
    }
    let joined = ctes.join(", ");
    let body_start = skip_comments(sql);
    let keyword = |at: usize, word: &str| {
        let rest = &sql[at..];
        rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word)
            && !rest[word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    };
    if keyword(body_start, "with") {
        let mut end = body_start + 4;
        let next = end + (sql[end..].len() - sql[end..].trim_start().len());
        if keyword(next, "recursive") {
            end = next + "recursive".len();
        }
        // As dbt (sqlparse): the whitespace after `with` stays before the CTEs, `, ` after them.
        let rest = end + (sql[end..].len() - sql[end..].trim_start().len());
        format!("{}{}{joined}, {}", &sql[..end], &sql[end..rest], &sql[rest..])
    } else {
        let first = sql.len() - sql.trim_start().len();
        format!("{}with{joined} {}", &sql[..first], &sql[first..])
    }
}

/// Offset of the first byte that is not whitespace or a SQL comment.
fn skip_comments(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = sql[i..].find('\n').map_or(b.len(), |p| i + p + 1);
        } else if b[i..].starts_with(b"/*") {
            i = sql[i..].find("*/").map_or(b.len(), |p| i + p + 2);
        } else {
            return i;
        }
    }
}

/// A node's columns as dbt's `graph` shows them (`meta` also under `config`, as dbt 1.10+ writes).
fn graph_columns(cols: &crate::sorted_map::SortedMap<String, crate::nodes::Column>) -> serde_json::Map<String, serde_json::Value> {
    cols.iter()
        .map(|(k, c)| {
            let col = serde_json::json!({
                "name": c.name, "description": c.description, "data_type": c.data_type, "meta": c.meta, "tags": c.tags,
                "config": {"meta": c.meta, "tags": c.tags}, "constraints": [], "quote": null,
            });
            (k.clone(), col)
        })
        .collect()
}

/// The graph's nodes or sources by id; each node's `columns` are mutable dicts, as
/// packages update their `meta` in place (elementary's `flatten_column`).
fn graph_entries(entries: &serde_json::Value) -> Value {
    let node = |n: &serde_json::Value| match n {
        serde_json::Value::Object(m) => Value::from_object(
            m.iter()
                .map(|(k, x)| {
                    let v = if k == "columns" { crate::jinja::mutable::from_json(x) } else { crate::jinja::to_value(x) };
                    (Value::from(k.as_str()), v)
                })
                .collect::<indexmap::IndexMap<Value, Value>>(),
        ),
        other => crate::jinja::to_value(other),
    };
    match entries {
        serde_json::Value::Object(m) => {
            Value::from_object(m.iter().map(|(id, n)| (Value::from(id.as_str()), node(n))).collect::<indexmap::IndexMap<Value, Value>>())
        }
        other => crate::jinja::to_value(other),
    }
}

#[cfg(test)]
mod tests {
    use super::inject_ctes;

    #[test]
    fn ctes_are_injected_as_dbt_injects_them() {
        let c = vec![" __dbt__cte__e as (\nselect 1\n)".to_string()];
        assert_eq!(
            inject_ctes("-- hi\nwith a as (select 2) select * from a", &c),
            "-- hi\nwith  __dbt__cte__e as (\nselect 1\n), a as (select 2) select * from a"
        );
        assert_eq!(
            inject_ctes("-- lead\nwith\n  a as (select 1) select * from a", &c),
            "-- lead\nwith\n   __dbt__cte__e as (\nselect 1\n), a as (select 1) select * from a"
        );
        assert_eq!(inject_ctes("\n\nselect * from x", &c), "\n\nwith __dbt__cte__e as (\nselect 1\n) select * from x");
        assert_eq!(
            inject_ctes("WITH RECURSIVE r as (select 1) select 1", &c),
            "WITH RECURSIVE  __dbt__cte__e as (\nselect 1\n), r as (select 1) select 1"
        );
        // A leading comment is the first token: `with` goes before it.
        assert_eq!(
            inject_ctes("/* c */\nselect 'without' as w", &c),
            "with __dbt__cte__e as (\nselect 1\n) /* c */\nselect 'without' as w"
        );
        assert_eq!(inject_ctes("select withdrawn from t", &c), "with __dbt__cte__e as (\nselect 1\n) select withdrawn from t");
    }
}
