//! `dvtc compile`: resolution (SPEC §2), coercion, rendering and the
//! execution plan (SPEC §5). The plan is deterministic: same inputs, same bytes.

mod builtin_tests;
mod column_types;
pub mod contract;
pub mod diff;
pub mod materialize;
pub mod operation;
mod render;
pub mod resolve;
pub mod run_hooks;
pub(crate) mod tests;
mod unit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use dvt_schema::plan::{
    Coercion, ColumnCast, ExecutionPath, FederationPlan, Fragment, FragmentColumn, Invocation, Level, Materialization, PLAN_VERSION, Plan,
    PlanBucket, PlanCompute, PlanNode, PlanSource, PlanTarget, PlanWarning, PushdownPlan, RelationRef, Resolved, RuntimeHooks, SeedPlan,
    Statement, TestPlan, Upstream, WriteStrategy,
};
use rayon::prelude::*;
use serde_json::Value as Json;

use crate::config::ConfigExt;
use crate::dialect::{Dialect, LogicalType};
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::graph::Graph;
use crate::jinja::Jinja;
use crate::nodes::{Node, Project, ResourceType};
use crate::select::{self, SelectionSpec};
use render::{Index, Mode, Renderer, THIS, fragment_name};
pub use resolve::Overrides;

/// What `dvtc compile` was asked for.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    pub selection: SelectionSpec,
    pub overrides: Overrides,
    pub full_refresh: bool,
    /// Names of `--vars` keys (values are not recorded).
    pub var_names: Vec<String>,
    /// Compile exactly these nodes (unique ids) instead of a selection.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// A live database: nodes that need one (`run_query`, `statement`, catalog
    /// lookups) render against it instead of being marked "render at run time".
    pub live: Option<Arc<dyn crate::jinja::live::LiveDatabase>>,
    /// `--defer`: refs to unselected nodes read the `--state` plan's relations.
    pub defer: Option<Defer>,
    /// With a live database, a node whose rendering fails (a query it runs fails, say)
    /// is reported and left to render at run time; the others compile (as `dbt compile`).
    pub keep_going: bool,
    /// Render dbt's built-in generic tests through Jinja even where they render
    /// natively (see `builtin_tests`): the tests that prove both give the same text.
    pub jinja_builtin_tests: bool,
}

/// How `--defer` decides which unselected upstreams to read from the state.
#[derive(Clone, Default)]
pub struct Defer {
    /// `--favor-state`: defer even when the relation exists in the current target.
    pub favor_state: bool,
    /// Answers "does this relation exist?" (`dvtr`). Offline (`dvtc`) nothing can be
    /// checked, so every unselected upstream the state knows is deferred.
    pub live: Option<Arc<dyn crate::jinja::live::LiveDatabase>>,
}

impl std::fmt::Debug for Defer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defer").field("favor_state", &self.favor_state).field("live", &self.live.is_some()).finish()
    }
}

/// A compiled plan and the SQL files dbt users expect under `target/compiled/`.
pub struct Compiled {
    pub plan: Plan,
    /// (path under `target/compiled/`, unique id of the node whose `compiled_sql` it holds).
    pub files: Vec<(String, String)>,
    /// Criteria that matched nothing.
    pub unmatched: Vec<String>,
    /// Nodes that failed to render against the live database (with `keep_going`).
    pub node_errors: Vec<DvtError>,
    /// Where every node lives (before `--defer`), for dbt's manifest.
    pub index: Arc<Index>,
}

impl Compiled {
    /// "N nodes: P pushdown, F federation, C coerced".
    pub fn summary(&self) -> String {
        let n = self.plan.nodes.len();
        let p = self.plan.nodes.values().filter(|x| x.path == ExecutionPath::Pushdown).count();
        let c = self.plan.nodes.values().filter(|x| x.materialization.coercion.is_some()).count();
        format!("{n} nodes: {p} pushdown, {} federation, {c} coerced", n - p)
    }
}

const MODEL_MATERIALIZATIONS: [&str; 4] = ["view", "table", "incremental", "ephemeral"];

struct Ctx<'a> {
    project: &'a Project,
    jinja: &'a Jinja,
    renderer: Renderer<'a>,
    index: Arc<Index>,
    opts: &'a CompileOptions,
    tests_of: &'a HashMap<&'a str, Vec<&'a str>>,
    seed_cache: &'a crate::seed_cache::SeedCache,
    /// SHA-256 of every macro's source, for node fingerprints.
    macro_hashes: &'a crate::state::MacroHashes<'a>,
    /// Upstreams read from the `--state` plan's relations (`--defer`).
    deferred: &'a BTreeSet<String>,
    ids: &'a Ids<'a>,
    /// Built-in generic tests that render without Jinja.
    builtin_tests: builtin_tests::BuiltinTests,
}

/// Nodes and sources by unique id, hashed: every node looks up its upstreams,
/// and ids share long prefixes that a sorted map compares again at each level.
struct Ids<'p> {
    nodes: HashMap<&'p str, &'p Node, foldhash::fast::RandomState>,
    sources: HashMap<&'p str, &'p crate::nodes::Source, foldhash::fast::RandomState>,
}

impl<'p> Ids<'p> {
    fn new(project: &'p Project) -> Self {
        Ids {
            nodes: project.nodes.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            sources: project.sources.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        }
    }

    fn node(&self, id: &str) -> Option<&'p Node> {
        self.nodes.get(id).copied()
    }

    fn source(&self, id: &str) -> Option<&'p crate::nodes::Source> {
        self.sources.get(id).copied()
    }
}

impl Ctx<'_> {
    /// Outputs an upstream lives on (ephemerals: wherever their own upstreams live).
    fn locations(&self, uid: &str, depth: usize) -> BTreeSet<String> {
        if let Some(s) = self.ids.source(uid) {
            return BTreeSet::from([s.connection.clone()]);
        }
        if self.index.ephemeral.contains(uid) && depth < 64 {
            let n = self.ids.node(uid).expect("an ephemeral is a node");
            return n.depends_on.iter().flat_map(|d| self.locations(d, depth + 1)).collect();
        }
        self.index.placements.get(uid).map(|p| BTreeSet::from([p.target.value.clone()])).unwrap_or_default()
    }

    /// What `node` reads: the sources and nodes it depends on, tests excepted.
    fn read_ids<'n>(&self, node: &'n Node) -> impl Iterator<Item = &'n String> {
        node.depends_on
            .iter()
            .filter(|d| self.ids.source(d).is_some() || self.ids.node(d).is_some_and(|n| n.resource_type != ResourceType::Test))
    }

    fn upstreams(&self, node: &Node) -> Vec<Upstream> {
        self.read_ids(node)
            .map(|d| {
                let relation = if let Some(s) = self.ids.source(d) {
                    let o = &self.project.profile.outputs[&s.connection];
                    Some(resolve::relation_ref(o, s.database.clone(), Some(s.schema.clone()), s.identifier.clone()))
                } else {
                    self.index.placements.get(d).and_then(|p| p.relation.clone())
                };
                Upstream {
                    unique_id: d.clone(),
                    target: self.locations(d, 0).into_iter().collect::<Vec<_>>().join(","),
                    relation,
                    deferred: self.deferred.contains(d),
                }
            })
            .collect()
    }

    /// The files behind an upstream that lives in a bucket: a source's `external:`,
    /// or the Parquet file a model writes under `<schema>/<identifier>/`.
    fn bucket_table(&self, uid: &str) -> Option<dvt_schema::plan::BucketTable> {
        if let Some(s) = self.project.sources.get(uid) {
            let files = s.external.clone()?;
            return Some(dvt_schema::plan::BucketTable { schema: s.schema.clone(), identifier: s.identifier.clone(), files });
        }
        let r = self.index.placements.get(uid)?.relation.clone()?;
        let schema = r.schema.clone().unwrap_or_else(|| "main".into());
        let files = dvt_schema::plan::ExternalFiles {
            location: format!("{schema}/{}/", r.identifier),
            format: "parquet".into(),
            delimiter: None,
            header: None,
        };
        Some(dvt_schema::plan::BucketTable { schema, identifier: r.identifier, files })
    }

    /// `read_partitions: {column, count}` of a source or model: how federated nodes read it.
    fn read_partitions(&self, uid: &str) -> Result<Option<dvt_schema::plan::ReadPartitions>> {
        let (config, file) = match (self.project.sources.get(uid), self.project.nodes.get(uid)) {
            (Some(s), _) => (&s.config, &s.file),
            (None, Some(n)) => (&n.config, &n.file),
            _ => return Ok(None),
        };
        let Some(v) = config.get("read_partitions") else { return Ok(None) };
        let column = v.get("column").and_then(Json::as_str);
        // `auto` (0 in the plan): dvtr picks the count from the fragment's row count.
        let count = match v.get("count") {
            Some(Json::String(a)) if a == "auto" => Some(0),
            Some(n) => n.as_u64().filter(|n| (2..=64).contains(n)),
            None => Some(0),
        };
        match (column, count) {
            (Some(column), Some(count)) => Ok(Some(dvt_schema::plan::ReadPartitions { column: column.to_string(), count: count as u32 })),
            _ => Err(DvtError::new(ErrorCode::ConfigInvalid, format!("`{uid}` has `read_partitions: {v}`"))
                .at(Location::file(file))
                .hint("write read_partitions: {column: <a numeric or date column>, count: <2 to 64, or auto>}")),
        }
    }

    fn dialect_of(&self, target: &str) -> Dialect {
        Dialect::from_adapter(&self.project.profile.outputs[target].kind).unwrap_or(Dialect::Postgres)
    }

    /// One fragment per upstream relation read by a federated node (whole relation; the
    /// federation compiler narrows them).
    fn fragments(&self, node: &Node, uses_this: Option<&RelationRef>) -> Vec<Fragment> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = node.depends_on.iter().collect();
        while let Some(d) = stack.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            if self.index.ephemeral.contains(d) {
                stack.extend(self.project.nodes[d].depends_on.iter());
                continue;
            }
            let upstream = if let Some(s) = self.project.sources.get(d) {
                let o = &self.project.profile.outputs[&s.connection];
                Some((s.connection.clone(), resolve::relation_ref(o, s.database.clone(), Some(s.schema.clone()), s.identifier.clone())))
            } else {
                self.index.placements.get(d).and_then(|p| p.relation.clone().map(|r| (p.target.value.clone(), r)))
            };
            if let Some((target, rel)) = upstream {
                out.push(Fragment {
                    name: fragment_name(self.project, d),
                    upstream: d.clone(),
                    reads: vec![],
                    files: vec![],
                    partitions: None,
                    dialect: self.dialect_of(&target).name().to_string(),
                    sql: format!("select * from {}", rel.rendered),
                    target,
                    columns: vec![],
                });
            }
        }
        if let Some(this) = uses_this {
            out.push(Fragment {
                name: fragment_name(self.project, THIS),
                upstream: node.unique_id.clone(),
                reads: vec![],
                files: vec![],
                partitions: None,
                dialect: self.dialect_of(&this.target).name().to_string(),
                sql: format!("select * from {}", this.rendered),
                target: this.target.clone(),
                columns: vec![],
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

fn coerce_err(code: ErrorCode, node: &Node, msg: String, hint: &str) -> DvtError {
    DvtError::new(code, msg).at(Location::file(&node.file)).hint(hint.to_string())
}

fn hooks(node: &Node, key: &str) -> Vec<String> {
    hook_list(node.config.get(key))
}

/// Hooks as dbt accepts them: one string, or a list of strings or `{sql: …}` objects.
pub(crate) fn hook_list(value: Option<&Json>) -> Vec<String> {
    match value {
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|h| match h {
                Json::String(s) => Some(s.clone()),
                Json::Object(m) => m.get("sql").and_then(Json::as_str).map(str::to_string),
                _ => None,
            })
            .collect(),
        Some(Json::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

/// Renders a node's hooks into the plan, or keeps them for the run
/// ([`PlanNode::runtime_hooks`]): one that may query the database renders when
/// the node runs, as in dbt, and never against a live database at compile time.
fn plan_hooks(cx: &Ctx, node: &Node, dialect: Dialect, plan: &mut PlanNode) -> Result<()> {
    let (pre, post) = (hooks(node, "pre-hook"), hooks(node, "post-hook"));
    let mut wait = pre
        .iter()
        .chain(&post)
        .find_map(|h| cx.jinja.may_query(h))
        .map(|name| format!("a hook calls `{name}`, which may query the database"));
    let mut rendered = [Vec::new(), Vec::new()];
    for (hooks, into) in [&pre, &post].into_iter().zip(&mut rendered) {
        for h in hooks {
            if wait.is_some() {
                break;
            }
            match cx.renderer.render(node, Some(h), Mode::Pushdown(dialect), false)? {
                Ok(out) => into.push(out.sql),
                Err(render::RuntimeOnly(reason)) => wait = Some(reason),
            }
        }
    }
    match wait {
        Some(reason) => plan.runtime_hooks = Some(Box::new(RuntimeHooks { reason, pre, post })),
        None => [plan.pre_hooks, plan.post_hooks] = rendered,
    }
    Ok(())
}

fn grants_of(node: &Node) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(Json::Object(m)) = node.config.get("grants") {
        for (k, v) in m {
            let list: Vec<String> = match v {
                Json::String(s) => vec![s.clone()],
                Json::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => vec![],
            };
            out.insert(k.clone(), list);
        }
    }
    out
}

/// dbt's path under `target/compiled/`: `<package>/<path in the package>`, and for
/// generic tests `<package>/<properties file>/<test name or its hashed alias>.sql`.
fn compiled_path(project: &Project, node: &Node) -> String {
    let rel = project.packages.iter().find(|p| p.name == node.package).map_or("", |p| p.rel.as_str());
    let file = node.file.strip_prefix(rel).unwrap_or(&node.file);
    if node.test.is_some() {
        format!("{}/{}/{}.sql", node.package, file, node.config.str("alias").unwrap_or(&node.name))
    } else {
        format!("{}/{}", node.package, file)
    }
}

struct NodeOut {
    node: Box<PlanNode>,
    warnings: Vec<PlanWarning>,
    /// Path under `target/compiled/`.
    file: Option<String>,
}

fn seed_plan(
    node: &Node,
    dialect: Dialect,
    cache: &crate::seed_cache::SeedCache,
    bucket: Option<&str>,
) -> Result<(SeedPlan, Vec<(String, LogicalType)>)> {
    let delimiter = node.config.str("delimiter").unwrap_or(",").to_string();
    let d = delimiter.bytes().next().unwrap_or(b',');
    let overrides: BTreeMap<String, String> = match node.config.get("column_types") {
        Some(Json::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect(),
        _ => BTreeMap::new(),
    };
    let quote_columns = node.config.bool("quote_columns").unwrap_or(true);
    let empty_as_null = node.config.bool("empty_as_null").unwrap_or(true);
    let Some(path) = node.seed_path.as_ref() else {
        // In a bucket (`external:`): read, typed and hashed by dvtr when it loads.
        let external = node.config.get("external");
        let location = external.and_then(|e| e.get("location")).and_then(Json::as_str).unwrap_or_default().to_string();
        let format = match external.and_then(|e| e.get("format")).and_then(Json::as_str) {
            Some(f) => match f.to_ascii_lowercase().as_str() {
                "csv" => "csv",
                "parquet" => "parquet",
                "json" | "jsonl" | "ndjson" => "jsonl",
                other => {
                    return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("seed `{}` has `format: {other}`", node.name))
                        .at(Location::file(&node.file))
                        .hint("seeds are csv, parquet or jsonl files"));
                }
            },
            None => crate::seeds::format_of(Path::new(&location)),
        };
        let seed = SeedPlan {
            file: location,
            bucket: bucket.map(str::to_string),
            format: format.to_string(),
            sha256: String::new(),
            column_types: overrides,
            delimiter,
            quote_columns,
            empty_as_null,
        };
        return Ok((seed, vec![]));
    };
    let format = crate::seeds::format_of(path).to_string();
    let mut columns: Vec<(String, LogicalType)> = Vec::new();
    let mut column_types = BTreeMap::new();
    let hash = || crate::seeds::sha256_file(path).map_err(|e| DvtError::io(path, e));
    let sha256;
    if format == "csv" {
        // When column_types names every column, the header is all we need to read.
        let header = crate::seeds::csv_header(path, &node.file, d)?;
        let inferred = if header.iter().all(|h| overrides.contains_key(h)) {
            sha256 = cache.facts(path, d, hash, None)?.0;
            header.into_iter().map(|h| (h, LogicalType::Text)).collect()
        } else {
            let infer = || crate::seeds::infer_csv(path, &node.file, d);
            let (h, columns) = cache.facts(path, d, hash, Some(&infer))?;
            sha256 = h;
            columns.unwrap_or_default()
        };
        let (typed, names) = crate::seeds::typed_columns(inferred, &overrides, dialect, quote_columns).map_err(|m| {
            DvtError::new(ErrorCode::ConfigInvalid, m)
                .at(Location::file(&node.file))
                .hint("use boolean, integer, bigint, numeric(p,s), double, date, timestamp or text")
        })?;
        columns = typed;
        column_types = names;
    } else {
        sha256 = cache.facts(path, d, hash, None)?.0;
        // Parquet and JSON lines carry or reveal their types at load time.
        for (k, v) in &overrides {
            column_types.insert(k.clone(), v.clone());
        }
    }
    Ok((SeedPlan { file: node.file.clone(), bucket: None, format, sha256, column_types, delimiter, quote_columns, empty_as_null }, columns))
}

/// The microbatch settings of an incremental model with `incremental_strategy:
/// microbatch` (dbt ≥ 1.9), checked as dbt checks them at parse time.
fn microbatch_of(node: &Node, effective: &str) -> Result<Option<dvt_schema::plan::MicrobatchPlan>> {
    if effective != "incremental" || node.config.str("incremental_strategy") != Some("microbatch") {
        return Ok(None);
    }
    let bad = |message: String, hint: &str| DvtError::new(ErrorCode::ConfigInvalid, message).at(Location::file(&node.file)).hint(hint);
    let name = &node.name;
    let event_time = node.config.str("event_time").ok_or_else(|| {
        bad(format!("microbatch model `{name}` has no `event_time`"), "set the column that dates each row: config(event_time='created_at')")
    })?;
    let batch_size = node.config.str("batch_size").unwrap_or_default();
    if !["hour", "day", "month", "year"].contains(&batch_size) {
        return Err(bad(format!("microbatch model `{name}` has `batch_size: {batch_size}`"), "batch_size is hour, day, month or year"));
    }
    let begin = match node.config.get("begin") {
        Some(Json::String(s)) => s.trim().to_string(),
        _ => {
            return Err(bad(
                format!("microbatch model `{name}` has no `begin`"),
                "set the first batch's start: config(begin='2024-01-01')",
            ));
        }
    };
    let parsed = chrono::NaiveDateTime::parse_from_str(&begin.replace('T', " "), "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(begin.get(..10).unwrap_or_default(), "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .ok_or_else(|| {
            bad(
                format!("microbatch model `{name}` has `begin: {begin}`"),
                "begin is a date or timestamp: 2024-01-01 or 2024-01-01 06:00:00",
            )
        })?;
    let lookback = match node.config.get("lookback") {
        None | Some(Json::Null) => 1,
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
            bad(
                format!("microbatch model `{name}` has `lookback: {v}`"),
                "lookback is the number of earlier batches to rebuild (0 or more)",
            )
        })?,
    };
    Ok(Some(dvt_schema::plan::MicrobatchPlan {
        event_time: event_time.to_string(),
        batch_size: batch_size.to_string(),
        begin: parsed.format("%Y-%m-%d %H:%M:%S").to_string(),
        lookback,
    }))
}

/// Where a node runs: its target, the outputs its upstreams live on, and the path that follows.
struct Route {
    target: Resolved<String>,
    locations: BTreeSet<String>,
    path: ExecutionPath,
    /// The target is a bucket: what the model writes there is computed (and written) by the compute.
    to_bucket: bool,
}

impl Ctx<'_> {
    fn route(&self, node: &Node) -> Route {
        let project = self.project;
        let locations: BTreeSet<String> = self.read_ids(node).flat_map(|d| self.locations(d, 0)).collect();
        let target: Resolved<String> = match self.index.placements.get(&node.unique_id) {
            Some(p) => p.target.clone(),
            // Tests and analyses run where what they read lives (SPEC §2.9).
            None => match locations.len() {
                1 => Resolved { value: locations.iter().next().expect("one").clone(), level: Level::Default },
                _ => match &self.opts.overrides.target {
                    Some(t) => Resolved { value: t.clone(), level: Level::Cli },
                    None => Resolved { value: project.profile.default_target.clone(), level: Level::Default },
                },
            },
        };
        let to_bucket = project.profile.outputs.get(&target.value).is_some_and(|o| o.kind == crate::loader::BUCKET_OUTPUT);
        let path =
            if locations.iter().all(|l| *l == target.value) && !to_bucket { ExecutionPath::Pushdown } else { ExecutionPath::Federation };
        Route { target, locations, path, to_bucket }
    }

    /// What `--state` compares for a node, as this project defines it now.
    fn facts(&self, node: &Node) -> crate::state::NodeFacts {
        let route = self.route(node);
        let federated = route.path == ExecutionPath::Federation;
        let o = &self.opts.overrides;
        crate::state::NodeFacts {
            checksum: self.checksum(node),
            compute: if federated { resolve::compute_of(self.project, node, o).ok() } else { None },
            bucket: if federated || node.resource_type == ResourceType::Seed {
                resolve::bucket_of(self.project, node, o).ok()
            } else {
                None
            },
            target: route.target,
            path: route.path,
        }
    }

    fn checksum(&self, node: &Node) -> dvt_schema::plan::NodeChecksum {
        let seed_sha = node.seed_path.as_ref().and_then(|path| {
            let d = node.config.str("delimiter").and_then(|d| d.bytes().next()).unwrap_or(b',');
            let hash = || crate::seeds::sha256_file(path);
            self.seed_cache.facts(path, d, hash, None).ok().map(|f| f.0)
        });
        crate::state::checksum(node, self.macro_hashes, seed_sha)
    }
}

fn compile_node(cx: &Ctx<'_>, node: &Node) -> Result<NodeOut> {
    if let Some(u) = &node.unit {
        return unit::compile(cx, node, u);
    }
    let project = cx.project;
    let o = &cx.opts.overrides;
    let mut warnings = Vec::new();
    let upstreams = cx.upstreams(node);
    let Route { target, locations, path, to_bucket } = cx.route(node);
    let placement = cx.index.placements.get(&node.unique_id).cloned();
    let requested = node.config.str("materialized").unwrap_or("view").to_string();
    let mut effective = requested.clone();
    let mut coercion = None;
    match node.resource_type {
        ResourceType::Model => {
            if !MODEL_MATERIALIZATIONS.contains(&requested.as_str()) {
                return Err(coerce_err(
                    ErrorCode::MaterializationInvalid,
                    node,
                    format!("model `{}` has unknown materialization `{requested}`", node.name),
                    "use view, table, incremental or ephemeral",
                ));
            }
            if to_bucket && requested == "incremental" {
                return Err(coerce_err(
                    ErrorCode::MaterializationInvalid,
                    node,
                    format!(
                        "incremental model `{}` has target `{}`, a bucket: models in buckets are rewritten whole",
                        node.name, target.value
                    ),
                    "materialize it as a table, or give it a database output as target",
                ));
            }
            if path == ExecutionPath::Federation {
                match requested.as_str() {
                    "view" if to_bucket => {
                        effective = "table".into();
                        let reason =
                            format!("a bucket holds files, not views: `{}` is written to `{}` as Parquet", node.name, target.value);
                        warnings.push(PlanWarning { code: "DVTW201".into(), node: node.unique_id.clone(), message: reason.clone() });
                        coercion = Some(Coercion { code: "DVTW201".into(), reason });
                    }
                    "view" => {
                        effective = "table".into();
                        let reason = format!(
                            "a view cannot span databases: `{}` reads from {} and is built as a table on `{}`",
                            node.name,
                            locations.iter().cloned().collect::<Vec<_>>().join(", "),
                            target.value
                        );
                        warnings.push(PlanWarning { code: "DVTW201".into(), node: node.unique_id.clone(), message: reason.clone() });
                        coercion = Some(Coercion { code: "DVTW201".into(), reason });
                    }
                    "ephemeral" => {
                        return Err(coerce_err(
                            ErrorCode::EphemeralFederated,
                            node,
                            format!(
                                "ephemeral model `{}` reads from {} but would be inlined into `{}`: it cannot be federated",
                                node.name,
                                locations.iter().cloned().collect::<Vec<_>>().join(", "),
                                target.value
                            ),
                            "materialize it as a table (config(materialized='table')), or give it a target where all its upstreams live",
                        ));
                    }
                    _ => {}
                }
            }
        }
        ResourceType::Snapshot if path == ExecutionPath::Federation => {
            return Err(coerce_err(
                ErrorCode::SnapshotFederated,
                node,
                format!(
                    "snapshot `{}` reads from {} but writes to `{}`: snapshots cannot be federated",
                    node.name,
                    locations.iter().cloned().collect::<Vec<_>>().join(", "),
                    target.value
                ),
                "snapshot a model that lives on the snapshot's target, or set the snapshot's target to where its source lives",
            ));
        }
        _ => {}
    }
    let federated = path == ExecutionPath::Federation;
    let compute = if federated { Some(resolve::compute_of(project, node, o)?) } else { None };
    let bucket = if federated || node.resource_type == ResourceType::Seed { Some(resolve::bucket_of(project, node, o)?) } else { None };
    let dialect = cx.dialect_of(&target.value);
    let mode = if federated { Mode::Federation(dialect) } else { Mode::Pushdown(dialect) };
    let relation = placement.as_ref().and_then(|p| p.relation.clone());
    let mut plan = Box::new(PlanNode {
        unique_id: node.unique_id.clone(),
        resource_type: node.resource_type.as_str().into(),
        name: node.name.clone(),
        package_name: node.package.clone(),
        fqn: node.fqn.clone(),
        file: node.file.clone(),
        depends_on: node.depends_on.clone(),
        target,
        relation: relation.clone(),
        compute,
        bucket,
        materialization: Materialization { requested, effective: effective.clone(), coercion },
        path,
        upstreams,
        // With a live database the node renders now; offline it waits for `dvtr`.
        render_at_runtime: if cx.opts.live.is_some() { None } else { node.runtime_only.clone() },
        language: node.python.as_ref().map(|_| "python".to_string()),
        compiled_sql: None,
        pushdown: None,
        federation: None,
        write: None,
        tests: cx.tests_of.get(node.unique_id.as_str()).map(|t| t.iter().map(|id| id.to_string()).collect()).unwrap_or_default(),
        seed: None,
        test: None,
        pre_hooks: vec![],
        post_hooks: vec![],
        runtime_hooks: None,
        microbatch: microbatch_of(node, &effective)?.map(Box::new),
        grants: grants_of(node),
        tags: node.config.tags(),
        checksum: Some(cx.checksum(node)),
        contract: None,
        unit: None,
    });
    if plan.render_at_runtime.is_some() {
        return Ok(NodeOut { node: plan, warnings, file: None });
    }
    plan_hooks(cx, node, dialect, &mut plan)?;
    // Seeds: no SQL to render.
    if node.resource_type == ResourceType::Seed {
        let (seed, columns) = seed_plan(node, dialect, cx.seed_cache, plan.bucket.as_ref().map(|b| b.value.as_str()))?;
        let r = relation.expect("seeds have a relation");
        let s = materialize::seed(dialect, &r, &columns);
        plan.pushdown =
            Some(PushdownPlan { dialect: dialect.name().into(), full_refresh: s.full_refresh, incremental: None, replace: s.replace });
        plan.write = s.write;
        plan.seed = Some(Box::new(seed));
        return Ok(NodeOut { node: plan, warnings, file: None });
    }
    // Python models: dbt's compiled code is the model as written plus `py_script_postfix`
    // (refs, sources, config and `this` resolved); running them needs a Python compute.
    if node.python.is_some() {
        let postfix = match cx.renderer.render(node, Some("{{ py_script_postfix(model) }}"), mode, false)? {
            Ok(o) => o.text,
            Err(render::RuntimeOnly(reason)) => {
                plan.render_at_runtime = Some(reason);
                return Ok(NodeOut { node: plan, warnings, file: None });
            }
        };
        plan.compiled_sql = Some(format!("{}\n\n{postfix}", node.raw));
        return Ok(NodeOut { node: plan, warnings, file: Some(compiled_path(cx.project, node)) });
    }
    // Tests: render their query, wrap it.
    let raw_template;
    let mut native = None;
    let raw = if node.test.is_some() {
        // dbt's own tests in pushdown SQL render without Jinja (a live render keeps to Jinja).
        if let (Mode::Pushdown(d), None) = (mode, &cx.opts.live) {
            native = cx.builtin_tests.render(node, |r| cx.renderer.test_relation(node, d, r));
        }
        raw_template = match native {
            Some(_) => None,
            None => Some(tests::generic_test_template(project, cx.jinja, node)?),
        };
        raw_template.as_ref().map(render::Template::from)
    } else {
        None
    };
    let render = |incremental: bool| -> Result<std::result::Result<String, render::RuntimeOnly>> {
        // Ephemeral upstreams are inlined as CTEs, in tests too (a test on an ephemeral model).
        cx.renderer.render_inlined(node, raw, mode, incremental)
    };
    let compiled = match native.map_or_else(|| render(false), |text| Ok(Ok(text)))? {
        Ok(s) => s,
        Err(render::RuntimeOnly(reason)) => {
            plan.render_at_runtime = Some(reason);
            return Ok(NodeOut { node: plan, warnings, file: None });
        }
    };
    let sql = compiled.trim().to_string();
    if node.resource_type == ResourceType::Model {
        plan.contract = contract::of(node, dialect)?;
        // Where the SELECT names its columns, a mismatch is caught now; `*` waits for `dvtr`.
        if let Some(c) = &plan.contract
            && let Some(cols) = contract::select_columns(&sql, dialect)
        {
            contract::check(&node.name, c, &cols).map_err(|m| {
                DvtError::new(ErrorCode::ContractViolation, m)
                    .at(Location::file(&node.file))
                    .hint("select the declared columns in the declared order, or change `columns:` in the properties file")
            })?;
        }
    }
    let incremental_sql = if effective == "incremental" { render(true)?.ok().map(|s| s.trim().to_string()) } else { None };
    // A microbatch model rendered with its upstreams read through the window.
    let batch = |incremental: bool| -> Result<String> {
        match cx.renderer.render_inlined(node, raw, Mode::Batch(dialect), incremental)? {
            Ok(s) => Ok(s.trim().to_string()),
            Err(render::RuntimeOnly(reason)) => Err(DvtError::new(
                ErrorCode::MaterializationInvalid,
                format!("microbatch model `{}` needs the database to render ({reason})", node.name),
            )
            .at(Location::file(&node.file))),
        }
    };
    match node.resource_type {
        ResourceType::Test => {
            let wrapped = tests::wrap(dialect, node, &sql);
            plan.test = Some(TestPlan {
                severity: node.config.str("severity").unwrap_or("ERROR").to_ascii_uppercase(),
                attached_node: node.test.as_ref().map(|t| t.attached_node.clone()),
                column_name: node.test.as_ref().and_then(|t| t.column_name.clone()),
                warn_if: node.config.str("warn_if").unwrap_or("!= 0").into(),
                error_if: node.config.str("error_if").unwrap_or("!= 0").into(),
            });
            if federated {
                let (f, w) = federation(cx, node, dialect, wrapped, None, None, false)?;
                plan.federation = Some(Box::new(f));
                warnings.extend(w);
            } else {
                plan.pushdown = Some(PushdownPlan {
                    dialect: dialect.name().into(),
                    full_refresh: vec![Statement { kind: "test".into(), sql: wrapped }],
                    incremental: None,
                    replace: None,
                });
            }
        }
        ResourceType::Analysis => {}
        _ if effective == "ephemeral" => {}
        _ if federated => {
            let this_name = dialect.quote("__this");
            let this = relation.as_ref().filter(|_| incremental_sql.as_deref().is_some_and(|s| s.contains(&this_name)));
            let (f, w) = federation(cx, node, dialect, sql.clone(), incremental_sql.clone(), this, plan.microbatch.is_some())?;
            plan.federation = Some(Box::new(f));
            warnings.extend(w);
            let keys = match node.config.get("unique_key") {
                Some(Json::String(s)) => vec![s.clone()],
                Some(Json::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => vec![],
            };
            plan.write = Some(WriteStrategy {
                strategy: if effective == "incremental" {
                    node.config.str("incremental_strategy").unwrap_or(if keys.is_empty() { "append" } else { "merge" }).into()
                } else {
                    "replace".into()
                },
                unique_key: keys,
                on_schema_change: node
                    .config
                    .str("on_schema_change")
                    .unwrap_or(if effective == "incremental" { "ignore" } else { "fail" })
                    .into(),
                this_subqueries: match (this, &incremental_sql) {
                    (Some(r), Some(inc)) => crate::federate::this_subqueries(inc, dialect, "__this", &r.rendered),
                    _ => vec![],
                },
            });
        }
        _ => {
            let r = relation.clone().expect("writing nodes have a relation");
            let s = match (node.resource_type, effective.as_str()) {
                (ResourceType::Snapshot, _) => materialize::snapshot(dialect, &r, &sql, &node.config, &node.file)?,
                (_, "view") => materialize::view(dialect, &r, &sql, plan.contract.as_ref()),
                (_, "table") => materialize::table(dialect, &r, &sql, plan.contract.as_ref()),
                (_, "incremental") if plan.microbatch.is_some() => {
                    // Both builds read the upstreams through the window dvtr fills in.
                    let (full, incremental) = (batch(false)?, batch(true)?);
                    materialize::incremental(dialect, &r, &full, &incremental, &node.config, &node.file, plan.contract.as_ref())?
                }
                (_, "incremental") => materialize::incremental(
                    dialect,
                    &r,
                    &sql,
                    incremental_sql.as_deref().unwrap_or(&sql),
                    &node.config,
                    &node.file,
                    plan.contract.as_ref(),
                )?,
                (_, other) => unreachable!("materialization {other} was validated"),
            };
            let mut full = s.full_refresh;
            full.extend(materialize::grants(dialect, &r, &plan.grants));
            let mut replace = s.replace;
            if let Some(rep) = replace.as_mut() {
                rep.extend(materialize::grants(dialect, &r, &plan.grants));
            }
            plan.pushdown = Some(PushdownPlan { dialect: dialect.name().into(), full_refresh: full, incremental: s.incremental, replace });
            plan.write = s.write;
        }
    }
    plan.compiled_sql = Some(compiled);
    Ok(NodeOut { node: plan, warnings, file: Some(compiled_path(cx.project, node)) })
}

fn federation(
    cx: &Ctx<'_>,
    node: &Node,
    target_dialect: Dialect,
    remainder: String,
    incremental: Option<String>,
    this: Option<&RelationRef>,
    microbatch: bool,
) -> Result<(FederationPlan, Vec<PlanWarning>)> {
    let mut fragments = cx.fragments(node, this);
    let inputs: Vec<crate::federate::FragmentInput> = fragments
        .iter()
        .map(|f| {
            let relation = f.sql.trim_start_matches("select * from ").to_string();
            // A microbatch model reads each upstream with an `event_time` through its
            // window, at the source: the remainder sees only the window's rows.
            let relation = match cx.renderer.index.event_times.get(&f.upstream).filter(|_| microbatch) {
                Some(column) => render::window_filtered(&relation, column, &f.name),
                None => relation,
            };
            crate::federate::FragmentInput {
                name: f.name.clone(),
                dialect: Dialect::from_adapter(&f.dialect).unwrap_or(Dialect::Postgres),
                relation,
                location: f.target.clone(),
            }
        })
        .collect();
    let mut sqls: Vec<&str> = vec![&remainder];
    if let Some(i) = &incremental {
        sqls.push(i);
    }
    let split = crate::federate::split(&sqls, &inputs, target_dialect);
    if !split.refused.is_empty() {
        return Err(DvtError::new(
            ErrorCode::RemainderSemantics,
            format!(
                "federated model `{}` ({target_dialect} SQL) uses {} in the part DVT's compute runs, where {} would not give {target_dialect}'s value",
                node.name,
                split.refused.join(", "),
                if split.refused.len() == 1 { "it" } else { "they" }
            ),
        )
        .at(Location::file(&node.file))
        .hint("compute it where its meaning is known: in a CTE or model over a single source (pushed to that database whole), or write it portably (see README: federated models)"));
    }
    // Inputs read only inside pushed sub-queries get no fragment of their own.
    let upstream_of: BTreeMap<String, String> = fragments.iter().map(|f| (f.name.clone(), f.upstream.clone())).collect();
    fragments.retain(|f| split.fragments.contains_key(&f.name));
    for f in &mut fragments {
        let out = &split.fragments[&f.name];
        f.sql = out.sql.clone();
        // Typed once every node is compiled (`column_types`).
        f.columns = out
            .columns
            .iter()
            .flatten()
            .map(|c| FragmentColumn { name: c.trim_matches(|ch| ch == '"' || ch == '`').to_string(), arrow_type: None })
            .collect();
    }
    for p in &split.pushed {
        fragments.push(Fragment {
            name: p.name.clone(),
            upstream: String::new(),
            reads: p.reads.iter().filter_map(|r| upstream_of.get(r).cloned()).collect(),
            target: p.location.clone(),
            dialect: p.dialect.name().to_string(),
            sql: p.sql.clone(),
            columns: p.columns.iter().flatten().map(|c| FragmentColumn { name: c.clone(), arrow_type: None }).collect(),
            files: vec![],
            partitions: None,
        });
    }
    for f in
        fragments.iter_mut().filter(|f| cx.project.profile.outputs.get(&f.target).is_some_and(|o| o.kind == crate::loader::BUCKET_OUTPUT))
    {
        f.files = std::iter::once(&f.upstream).chain(&f.reads).filter_map(|uid| cx.bucket_table(uid)).collect();
    }
    let mut unpartitioned = Vec::new();
    for f in fragments.iter_mut().filter(|f| !f.upstream.is_empty() && f.files.is_empty()) {
        let Some(p) = cx.read_partitions(&f.upstream)? else { continue };
        // Ranges filter the fragment's rows, so the column must be one it returns.
        if f.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&p.column)) {
            f.partitions = Some(p);
        } else {
            unpartitioned.push(format!("`{}` does not read `{}`, its `read_partitions` column: read whole", f.name, p.column));
        }
    }
    let mut remainders = split.remainders.iter();
    let remainder = remainders.next().cloned().unwrap_or(remainder);
    let incremental = incremental.and(remainders.next().cloned());
    let mut warnings: Vec<PlanWarning> = split
        .fallbacks
        .iter()
        .map(|f| PlanWarning {
            code: "DVTW301".into(),
            node: node.unique_id.clone(),
            message: format!("federation of `{}`: {f}", node.name),
        })
        .collect();
    warnings.extend(unpartitioned.into_iter().map(|m| PlanWarning {
        code: "DVTW304".into(),
        node: node.unique_id.clone(),
        message: format!("federation of `{}`: {m}", node.name),
    }));
    warnings.extend(split.translated.iter().map(|t| PlanWarning {
        code: "DVTW302".into(),
        node: node.unique_id.clone(),
        message: format!("federation of `{}`: translated for the compute: {t}", node.name),
    }));
    warnings.extend(split.computed.iter().map(|(expr, input, column)| PlanWarning {
        code: "DVTW303".into(),
        node: node.unique_id.clone(),
        message: format!(
            "federation of `{}`: `{expr}` is computed in the fragment of `{input}` (its own dialect) as `{column}`",
            node.name
        ),
    }));
    let plan = FederationPlan {
        compute_dialect: Dialect::DataFusion.name().into(),
        fragments,
        remainder: crate::federate::to_compute_sql(&remainder, target_dialect),
        remainder_incremental: incremental.map(|i| crate::federate::to_compute_sql(&i, target_dialect)),
        casts: node
            .columns
            .values()
            .filter_map(|c| {
                c.data_type.as_ref().map(|t| ColumnCast {
                    column: c.name.clone(),
                    to: t.clone(),
                    reason: "data_type declared in the properties YAML".into(),
                })
            })
            .collect(),
        predicates: split.predicates,
        fallbacks: split.fallbacks,
    };
    Ok((plan, warnings))
}

/// Column types declared in YAML for an upstream (lower-cased names).
fn declared_types(project: &Project, uid: &str) -> BTreeMap<String, String> {
    let cols = project.sources.get(uid).map(|s| &s.columns).or_else(|| project.nodes.get(uid).map(|n| &n.columns));
    cols.into_iter().flatten().filter_map(|(k, c)| c.data_type.clone().map(|t| (k.to_ascii_lowercase(), t))).collect()
}

/// The Arrow type a declared SQL type reads as.
pub fn arrow_type(sql_type: &str) -> Option<String> {
    let t = sql_type.trim().to_ascii_lowercase();
    let (base, args) = t.split_once('(').map_or((t.as_str(), ""), |(b, a)| (b.trim(), a.trim_end_matches(')')));
    Some(match base {
        "smallint" | "int2" => "Int16".into(),
        "int" | "integer" | "int4" => "Int32".into(),
        "bigint" | "int8" => "Int64".into(),
        "real" | "float4" => "Float32".into(),
        "double" | "double precision" | "float" | "float8" => "Float64".into(),
        "numeric" | "decimal" | "number" => {
            let mut it = args.split(',').map(|x| x.trim().parse::<u8>().ok());
            let p = it.next().flatten().unwrap_or(38);
            let s = it.next().flatten().unwrap_or(if args.is_empty() { 10 } else { 0 });
            format!("Decimal128({p}, {s})")
        }
        "text" | "varchar" | "string" | "char" | "character varying" => "Utf8".into(),
        "bool" | "boolean" => "Boolean".into(),
        "date" => "Date32".into(),
        "timestamp" | "datetime" | "timestamp without time zone" | "timestamp_ntz" => "Timestamp(Microsecond, None)".into(),
        "timestamptz" | "timestamp with time zone" | "timestamp_tz" => "Timestamp(Microsecond, Some(\"UTC\"))".into(),
        _ => return None,
    })
}

/// What every node's compilation shares, built once per compile.
struct Shared<'p> {
    tests_of: HashMap<&'p str, Vec<&'p str>>,
    seed_cache: crate::seed_cache::SeedCache,
    macro_hashes: crate::state::MacroHashes<'p>,
    ids: Ids<'p>,
}

impl<'p> Shared<'p> {
    fn new(project: &'p Project) -> Self {
        let mut tests_of: HashMap<&str, Vec<&str>> = HashMap::new();
        for n in project.nodes.values() {
            if let Some(t) = &n.test {
                tests_of.entry(&t.attached_node).or_default().push(&n.unique_id);
            }
        }
        for v in tests_of.values_mut() {
            v.sort();
        }
        Shared {
            tests_of,
            seed_cache: crate::seed_cache::SeedCache::load(&project.root.join(project.root_package().file.target_path())),
            macro_hashes: crate::state::MacroHashes::new(&project.macros),
            ids: Ids::new(project),
        }
    }

    fn ctx<'a>(
        &'a self,
        project: &'a Project,
        jinja: &'a Jinja,
        opts: &'a CompileOptions,
        index: Arc<Index>,
        deferred: &'a BTreeSet<String>,
    ) -> Ctx<'a> {
        Ctx {
            project,
            jinja,
            renderer: Renderer::new(project, jinja, index.clone(), opts.full_refresh, opts.live.clone()),
            index,
            opts,
            tests_of: &self.tests_of,
            seed_cache: &self.seed_cache,
            macro_hashes: &self.macro_hashes,
            deferred,
            ids: &self.ids,
            builtin_tests: builtin_tests::BuiltinTests::new(&project.macros, opts.jinja_builtin_tests),
        }
    }
}

/// Selects nodes as `compile` would (with `--state`, comparing the current project's facts).
pub fn select_nodes(
    project: &Project,
    jinja: &Jinja,
    graph: &Graph,
    spec: &SelectionSpec,
    overrides: &Overrides,
) -> Result<select::Selection> {
    if spec.state.is_none() {
        return select::select(project, graph, spec);
    }
    let opts = CompileOptions { selection: spec.clone(), overrides: overrides.clone(), ..Default::default() };
    let placements = resolve::place_all(project, jinja, &opts.overrides)?;
    let shared = Shared::new(project);
    let none = BTreeSet::new();
    let cx = shared.ctx(project, jinja, &opts, Arc::new(Index::new(project, placements)), &none);
    select::select_with(project, graph, spec, Some(&facts(&cx)))
}

/// The current facts of every node and source, for `state:` selection.
fn facts(cx: &Ctx<'_>) -> crate::state::Facts {
    let project = cx.project;
    let nodes = project.nodes.par_iter().map(|(id, n)| (id.clone(), cx.facts(n))).collect();
    let sources = project
        .sources
        .iter()
        .filter_map(|(id, s)| {
            let o = project.profile.outputs.get(&s.connection)?;
            let relation = resolve::relation_ref(o, s.database.clone(), Some(s.schema.clone()), s.identifier.clone()).rendered;
            Some((id.clone(), crate::state::SourceFacts { connection: s.connection.clone(), relation }))
        })
        .collect();
    let target = project.root.join(project.root_package().file.target_path());
    crate::state::Facts {
        nodes,
        sources,
        freshness: crate::state::read_results(&target.join("sources.json"), "max_loaded_at").unwrap_or_default(),
    }
}

/// `--defer`: placements where unselected upstreams that the state built (and that,
/// unless favoured, do not exist here) point at the state's relations.
fn defer_placements(
    cx: &Ctx<'_>,
    defer: &Defer,
    state: &crate::state::State,
    selected: &BTreeSet<String>,
    warnings: &mut Vec<PlanWarning>,
) -> (resolve::Placements, BTreeSet<String>) {
    let mut placements = cx.index.placements.clone();
    let mut deferred = BTreeSet::new();
    // Only what selected nodes read (through ephemerals, which are inlined) can be deferred.
    let mut needed = BTreeSet::new();
    let mut stack: Vec<&String> = selected.iter().filter_map(|id| cx.project.nodes.get(id)).flat_map(|n| &n.depends_on).collect();
    while let Some(d) = stack.pop() {
        if needed.insert(d.clone()) && cx.index.ephemeral.contains(d) {
            stack.extend(&cx.project.nodes[d].depends_on);
        }
    }
    for (id, prev) in needed.iter().filter_map(|id| state.plan.nodes.get_key_value(id)) {
        if selected.contains(id) || cx.index.ephemeral.contains(id) || !matches!(prev.resource_type.as_str(), "model" | "seed" | "snapshot")
        {
            continue;
        }
        let (Some(rel), Some(cur)) = (&prev.relation, placements.get(id)) else { continue };
        if cur.target.value == prev.target.value && cur.relation.as_ref().is_some_and(|r| r.rendered == rel.rendered) {
            continue;
        }
        if !cx.project.profile.outputs.contains_key(&prev.target.value) {
            warnings.push(PlanWarning {
                code: "DVTW401".into(),
                node: id.clone(),
                message: format!(
                    "not deferred: the state's relation {} is on output `{}`, which profiles.yml does not define",
                    rel.rendered, prev.target.value
                ),
            });
            continue;
        }
        let exists = |live: &Arc<dyn crate::jinja::live::LiveDatabase>, r: &RelationRef| {
            live.columns(&cur.target.value, r.schema.as_deref(), &r.identifier).is_ok_and(|c| !c.is_empty())
        };
        if let (false, Some(live), Some(r)) = (defer.favor_state, &defer.live, &cur.relation)
            && exists(live, r)
        {
            continue;
        }
        placements.insert(id.clone(), resolve::Placement { target: prev.target.clone(), relation: Some(rel.clone()) });
        deferred.insert(id.clone());
    }
    (placements, deferred)
}

/// Compiles the selected nodes of `project`.
pub fn compile(project: &Project, jinja: &Jinja, graph: &Graph, opts: &CompileOptions) -> Result<Compiled> {
    // What every node's compilation shares is set up while the nodes are placed.
    let (placements, shared) = rayon::join(|| resolve::place_all(project, jinja, &opts.overrides), || Shared::new(project));
    let placements = placements?;
    crate::timing::phase("nodes placed");
    let no_deferred = BTreeSet::new();
    let (index, topo) = rayon::join(|| Arc::new(Index::new(project, placements)), || graph.topo_order());
    let mut cx = shared.ctx(project, jinja, opts, index.clone(), &no_deferred);
    let selection = match &opts.only {
        Some(ids) => {
            select::Selection { ids: ids.iter().filter(|id| project.nodes.contains_key(*id)).cloned().collect(), unmatched: vec![] }
        }
        None => match &opts.selection.state {
            Some(_) => select::select_with(project, graph, &opts.selection, Some(&facts(&cx)))?,
            None => select::select(project, graph, &opts.selection)?,
        },
    };
    let mut warnings = Vec::new();
    let deferred;
    if let (Some(defer), Some(state)) = (&opts.defer, &opts.selection.state) {
        let (placements, d) = defer_placements(&cx, defer, state, &selection.ids, &mut warnings);
        deferred = d;
        cx = shared.ctx(project, jinja, opts, Arc::new(Index::new(project, placements)), &deferred);
    }
    let order: Vec<String> = topo.into_iter().filter(|id| cx.ids.node(id).is_some() && selection.ids.contains(id)).collect();
    // The selected set is no longer needed once ordered; keep only what is reported.
    let unmatched = selection.unmatched;
    drop(selection.ids);
    cx.renderer.set_selected(&order);
    let mut outs: Vec<Result<NodeOut>> =
        order.par_iter().map(|id| crate::timing::node(id, || compile_node(&cx, cx.ids.node(id).expect("ordered ids are nodes")))).collect();
    let mut node_errors = Vec::new();
    if opts.keep_going && opts.live.is_some() && outs.iter().any(Result::is_err) {
        // Failed nodes compile as `dvtc` compiles them: marked to render at run time.
        let offline_opts = CompileOptions { live: None, ..opts.clone() };
        let mut offline = shared.ctx(project, jinja, &offline_opts, cx.index.clone(), cx.deferred);
        offline.renderer.set_selected(&order);
        for (id, out) in order.iter().zip(outs.iter_mut()) {
            if out.is_err() {
                let retry = compile_node(&offline, &project.nodes[id]);
                if retry.is_ok() {
                    let mut e = std::mem::replace(out, retry).err().expect("an error");
                    e.message = format!("{id}: {}", e.message);
                    node_errors.push(e);
                }
            }
        }
    }
    shared.seed_cache.save();
    crate::timing::phase("nodes compiled");
    crate::timing::slowest(15);
    let mut nodes = BTreeMap::new();
    let mut files = Vec::new();
    for out in outs {
        let out = out?;
        warnings.extend(out.warnings);
        files.extend(out.file.map(|f| (f, out.node.unique_id.clone())));
        nodes.insert(out.node.unique_id.clone(), out.node);
    }
    warnings.sort();
    // `build`: a model runs after its unit tests pass (as in dbt).
    let units: Vec<(String, String)> =
        nodes.values().filter_map(|n| n.unit.as_ref().map(|u| (u.model.clone(), n.unique_id.clone()))).collect();
    for (model, test) in units {
        if let Some(m) = nodes.get_mut(&model) {
            m.depends_on.push(test);
        }
    }
    column_types::fill_fragment_types(project, &mut nodes);
    // A whole compile carries the run hooks (a live render of one node does not).
    let mut hooks = [Vec::new(), Vec::new()];
    if opts.only.is_none() {
        let dialect = cx.dialect_of(&project.active_target);
        for (kind, into) in [run_hooks::HookKind::Start, run_hooks::HookKind::End].into_iter().zip(&mut hooks) {
            *into = run_hooks::plan(project, &cx.renderer, dialect, kind, &order, &mut warnings);
            files.extend(into.iter().filter(|h| h.compiled_sql.is_some()).map(|h| (run_hooks::compiled_path(h), h.unique_id.clone())));
        }
    }
    let [on_run_start, on_run_end] = hooks;
    crate::timing::phase("plan nodes collected");
    // Everything the plan touches, and nothing else.
    let mut used_targets: BTreeSet<&str> = BTreeSet::new();
    let mut used_sources: BTreeSet<&str> = BTreeSet::new();
    let mut used_computes: BTreeSet<&str> = BTreeSet::new();
    let mut used_buckets: BTreeSet<&str> = BTreeSet::new();
    for n in nodes.values() {
        used_targets.insert(&n.target.value);
        for u in &n.upstreams {
            used_targets.extend(u.target.split(',').filter(|t| !t.is_empty()));
            if let Some(s) = project.sources.get(&u.unique_id) {
                used_sources.insert(&u.unique_id);
                // A bucket a source lives in is described in the plan like a staging bucket.
                if s.external.is_some() {
                    used_buckets.insert(&s.connection);
                }
            }
        }
        used_computes.extend(n.compute.as_ref().map(|c| c.value.as_str()));
        used_buckets.extend(n.bucket.as_ref().map(|b| b.value.as_str()));
    }
    used_targets.extend(on_run_start.iter().chain(&on_run_end).map(|h| h.target.as_str()));
    let targets = used_targets
        .iter()
        .filter_map(|t| project.profile.outputs.get(*t))
        .map(|o| {
            (
                o.name.clone(),
                PlanTarget { name: o.name.clone(), kind: o.kind.clone(), database: o.database.clone(), schema: o.schema.clone() },
            )
        })
        .collect();
    let computes = used_computes
        .iter()
        .filter_map(|c| project.computes.entries.get(*c))
        .map(|c| (c.name.clone(), PlanCompute { name: c.name.clone(), kind: c.kind.clone(), memory_budget: c.memory_budget }))
        .collect();
    let buckets = used_buckets
        .iter()
        .map(|b| match project.buckets.entries.get(*b) {
            Some(x) => (x.name.clone(), PlanBucket { name: x.name.clone(), kind: x.kind.clone(), settings: x.settings.clone() }),
            None => (
                b.to_string(),
                PlanBucket {
                    name: b.to_string(),
                    kind: "file".into(),
                    settings: BTreeMap::from([("root".to_string(), ".dvt/staging".to_string())]),
                },
            ),
        })
        .collect();
    let sources = used_sources
        .iter()
        .map(|id| {
            let s = &project.sources[*id];
            let o = &project.profile.outputs[&s.connection];
            let level = s.connection_level;
            (
                id.to_string(),
                PlanSource {
                    unique_id: id.to_string(),
                    source_name: s.source_name.clone(),
                    name: s.name.clone(),
                    connection: Resolved { value: s.connection.clone(), level },
                    relation: resolve::relation_ref(o, s.database.clone(), Some(s.schema.clone()), s.identifier.clone()),
                    external: s.external.clone(),
                },
            )
        })
        .collect();
    let mut var_names = opts.var_names.clone();
    var_names.sort();
    let plan = Plan {
        plan_version: PLAN_VERSION.into(),
        project_name: project.name.clone(),
        invocation: Invocation {
            target: opts.overrides.target.clone(),
            compute: opts.overrides.compute.clone(),
            bucket: opts.overrides.bucket.clone(),
            full_refresh: opts.full_refresh,
            select: opts.selection.select.clone(),
            exclude: opts.selection.exclude.clone(),
            selector: opts.selection.selector.clone(),
            var_names,
        },
        targets,
        computes,
        buckets,
        sources,
        order: {
            let mut order = order;
            order.retain(|id| nodes.contains_key(id));
            order
        },
        nodes,
        warnings,
        bundle: None,
        on_run_start,
        on_run_end,
    };
    files.sort();
    Ok(Compiled { plan, files, unmatched, node_errors, index })
}

/// Renders what waits for the run (node hooks that query the database, run
/// hooks) against `opts.live`, at the node's turn. Built once per run: placing
/// every node and dbt's `graph` are not redone for each hook.
pub struct HookRenderer<'a> {
    renderer: Renderer<'a>,
}

impl<'a> HookRenderer<'a> {
    pub fn new(project: &'a Project, jinja: &'a Jinja, opts: &CompileOptions) -> Result<Self> {
        let placements = resolve::place_all(project, jinja, &opts.overrides)?;
        let renderer = Renderer::new(project, jinja, Arc::new(Index::new(project, placements)), opts.full_refresh, opts.live.clone());
        Ok(HookRenderer { renderer })
    }

    /// Hook `template` of node `id` (see [`PlanNode::runtime_hooks`]): the `run_query` calls in it run now.
    pub fn node_hook(&self, id: &str, dialect: Dialect, template: &str) -> Result<String> {
        let project = self.renderer.project;
        let node =
            project.nodes.get(id).ok_or_else(|| DvtError::new(ErrorCode::RefNotFound, format!("`{id}` is not in the project any more")))?;
        match self.renderer.render(node, Some(template), Mode::Pushdown(dialect), false)? {
            Ok(out) => Ok(out.sql),
            Err(render::RuntimeOnly(reason)) => {
                Err(DvtError::new(ErrorCode::JinjaRender, format!("a hook of `{id}` still needs `{reason}`"))
                    .at(Location::file(&node.file)))
            }
        }
    }

    /// An `on-run-start`/`on-run-end` hook with `context` (`results`, `schemas`, …) added to dbt's.
    pub fn run_hook(&self, hook: &dvt_schema::plan::RunHook, context: &Json) -> Result<String> {
        run_hooks::render_live(&self.renderer, hook, context)
    }
}

/// `--explain <node>`: a readable account of how a node runs.
pub fn explain(plan: &Plan, name: &str) -> Result<String> {
    use std::fmt::Write;
    let node = plan.nodes.values().find(|n| n.name == name || n.unique_id == name).ok_or_else(|| {
        DvtError::new(ErrorCode::Usage, format!("--explain: `{name}` is not a selected node")).hint("give a node name from `dvtc ls`")
    })?;
    let lvl = |l: Level| serde_json::to_value(l).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut s = String::new();
    let _ = writeln!(s, "{} ({})", node.unique_id, node.file);
    let _ = writeln!(s, "  target: {} [{}]", node.target.value, lvl(node.target.level));
    if let Some(r) = &node.relation {
        let _ = writeln!(s, "  relation: {}", r.rendered);
    }
    let _ = writeln!(
        s,
        "  materialization: {}{}",
        node.materialization.effective,
        node.materialization
            .coercion
            .as_ref()
            .map_or(String::new(), |c| format!(" (requested {}; {}: {})", node.materialization.requested, c.code, c.reason))
    );
    let path = if node.path == ExecutionPath::Pushdown { "pushdown" } else { "federation" };
    let _ = writeln!(s, "  path: {path}");
    for u in &node.upstreams {
        let _ = writeln!(s, "  upstream: {} on {}", u.unique_id, u.target);
    }
    if let Some(c) = &node.compute {
        let _ = writeln!(s, "  compute: {} [{}]", c.value, lvl(c.level));
    }
    if let Some(f) = &node.federation {
        for fr in &f.fragments {
            let whole =
                if fr.reads.is_empty() { String::new() } else { format!(", sub-query pushed whole, reads {}", fr.reads.join(", ")) };
            let _ = writeln!(s, "  fragment {} on {} ({}{whole}):\n    {}", fr.name, fr.target, fr.dialect, fr.sql.replace('\n', "\n    "));
        }
        for p in &f.predicates {
            let _ = writeln!(s, "  predicate {} -> {} ({})", p.predicate, p.pushed_to.as_deref().unwrap_or("kept in remainder"), p.reason);
        }
        for fb in &f.fallbacks {
            let _ = writeln!(s, "  note: {fb}");
        }
        let _ = writeln!(s, "  remainder ({}):\n    {}", f.compute_dialect, f.remainder.replace('\n', "\n    "));
    } else if let Some(sql) = &node.compiled_sql {
        let _ = writeln!(s, "  sql:\n    {}", sql.replace('\n', "\n    "));
    }
    Ok(s)
}
