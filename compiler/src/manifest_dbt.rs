//! `target/manifest.json` in dbt's manifest v12 shape, so that dbt's tooling
//! (catalog viewers, coverage reports, CI bots, `dbt-artifacts-parser`) reads a
//! DVT project. Every field a strict reader requires is filled as dbt-core 1.11
//! fills it; DVT's own facts (each node's output, path, compute, bucket) go only
//! into node `config`, where dbt's schema allows extra keys (`config.target`).
//! DVT's own manifest is `target/dvt_manifest.json`.

use std::collections::BTreeMap;

use crate::json_str::CompactObject;
use serde_json::{Map, Value as Json, json};
use sha2::Digest;

use crate::compile::resolve::{Placement, Placements};
use crate::compile::run_hooks::{self, HookKind};
use crate::config::ConfigExt;
use crate::dialect::{Dialect, QuotePolicy};
use crate::graph::Graph;
use crate::jinja::Jinja;
use crate::nodes::{Column, Node, Project, ResourceType, Source};
use crate::semantic::Kind;
use crate::state::sha256;
use petgraph::graph::NodeIndex;

/// dbt's manifest schema this file follows.
pub const DBT_SCHEMA_VERSION: &str = "https://schemas.getdbt.com/dbt/manifest/v12.json";
/// The dbt-core version whose shapes DVT writes.
pub const DBT_VERSION: &str = "1.11.16";

/// dbt's `columns` of a node or source, serialized from the columns as they are.
struct Columns<'a>(&'a crate::sorted_map::SortedMap<String, Column>);

/// One of [`Columns`], keys in dbt's order.
#[derive(serde::Serialize)]
struct ColumnEntry<'a> {
    name: &'a str,
    description: &'a str,
    meta: &'a Map<String, Json>,
    data_type: &'a Option<String>,
    constraints: [(); 0],
    quote: Option<()>,
    config: ColumnConfig<'a>,
    tags: &'a [String],
    granularity: &'a Option<String>,
    doc_blocks: &'a [String],
}

#[derive(serde::Serialize)]
struct ColumnConfig<'a> {
    meta: &'a Map<String, Json>,
    tags: &'a [String],
}

impl serde::Serialize for Columns<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        ser.collect_map(self.0.iter().map(|(k, c)| {
            let entry = ColumnEntry {
                name: &c.name,
                description: &c.description,
                meta: &c.meta,
                data_type: &c.data_type,
                constraints: [],
                quote: None,
                config: ColumnConfig { meta: &c.meta, tags: &c.tags },
                tags: &c.tags,
                granularity: &c.granularity,
                doc_blocks: &c.doc_blocks,
            };
            (k, entry)
        }))
    }
}

/// dbt's config defaults by resource type, in dbt's key order (built once).
fn config_defaults(rt: ResourceType) -> &'static [(String, Json)] {
    use std::sync::LazyLock;
    fn entries(v: Json) -> Vec<(String, Json)> {
        match v {
            Json::Object(m) => m.into_iter().collect(),
            _ => vec![],
        }
    }
    fn with(mut base: Vec<(String, Json)>, extra: &[(&str, Json)]) -> Vec<(String, Json)> {
        for (k, v) in extra {
            match base.iter_mut().find(|(b, _)| b == k) {
                Some(slot) => slot.1 = v.clone(),
                None => base.push((k.to_string(), v.clone())),
            }
        }
        base
    }
    static TEST: LazyLock<Vec<(String, Json)>> = LazyLock::new(|| {
        entries(json!({
            "enabled": true, "alias": null, "schema": "dbt_test__audit", "database": null, "tags": [], "meta": {},
            "group": null, "static_analysis": null, "materialized": "test", "severity": "ERROR", "store_failures": null,
            "store_failures_as": null, "where": null, "limit": null, "fail_calc": "count(*)", "warn_if": "!= 0", "error_if": "!= 0",
        }))
    });
    static NODE: LazyLock<Vec<(String, Json)>> = LazyLock::new(|| {
        entries(json!({
            "enabled": true, "alias": null, "schema": null, "database": null, "tags": [], "meta": {}, "group": null,
            "static_analysis": null, "materialized": "view", "incremental_strategy": null, "batch_size": null, "lookback": 1,
            "begin": null, "persist_docs": {}, "post-hook": [], "pre-hook": [], "quoting": {}, "column_types": {},
            "full_refresh": null, "unique_key": null, "on_schema_change": "ignore", "on_configuration_change": "apply",
            "grants": {}, "packages": [], "docs": {"show": true, "node_color": null},
            "contract": {"enforced": false, "alias_types": true}, "event_time": null, "concurrent_batches": null,
        }))
    });
    static MODEL: LazyLock<Vec<(String, Json)>> =
        LazyLock::new(|| with(NODE.clone(), &[("access", json!("protected")), ("freshness", Json::Null)]));
    static SEED: LazyLock<Vec<(String, Json)>> =
        LazyLock::new(|| with(NODE.clone(), &[("materialized", json!("seed")), ("delimiter", json!(",")), ("quote_columns", Json::Null)]));
    static SNAPSHOT: LazyLock<Vec<(String, Json)>> = LazyLock::new(|| {
        with(
            NODE.clone(),
            &[
                ("materialized", json!("snapshot")),
                ("strategy", Json::Null),
                ("target_schema", Json::Null),
                ("target_database", Json::Null),
                ("updated_at", Json::Null),
                ("check_cols", Json::Null),
                ("snapshot_meta_column_names", json!({})),
                ("dbt_valid_to_current", Json::Null),
            ],
        )
    });
    match rt {
        ResourceType::Test => &TEST,
        ResourceType::Model => &MODEL,
        ResourceType::Seed => &SEED,
        ResourceType::Snapshot => &SNAPSHOT,
        _ => &NODE,
    }
}

/// dbt's node config: its defaults, then what the project set (DVT's keys included),
/// each key once, where it first appears; written without building the map.
struct NodeConfig<'a> {
    node: &'a Node,
    placement: Option<&'a Placement>,
}

impl serde::Serialize for NodeConfig<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        use std::borrow::Cow;
        let node = self.node;
        // (key, value): defaults first, then the node's keys in order; a later value replaces an earlier one in place.
        let mut entries: Vec<(&str, Cow<'_, Json>)> =
            config_defaults(node.resource_type).iter().map(|(k, v)| (k.as_str(), Cow::Borrowed(v))).collect();
        for (k, v) in &node.config {
            let key = match k.as_str() {
                "pre_hook" => "pre-hook",
                "post_hook" => "post-hook",
                other => other,
            };
            // dbt keeps hooks as a list of {sql, transaction, index}.
            let v = if matches!(key, "pre-hook" | "post-hook") {
                let list: Vec<Json> = match v {
                    Json::Array(a) => a.clone(),
                    Json::Null => vec![],
                    other => vec![other.clone()],
                };
                Cow::Owned(
                    list.iter()
                        .enumerate()
                        .map(|(i, h)| json!({"sql": h.as_str().map_or_else(|| h.to_string(), str::to_string), "transaction": true, "index": i}))
                        .collect::<Vec<_>>()
                        .into(),
                )
            } else {
                Cow::Borrowed(v)
            };
            match entries.iter_mut().find(|(e, _)| *e == key) {
                Some(slot) => slot.1 = v,
                None => entries.push((key, v)),
            }
        }
        let mut put = |key: &'static str, v: Json| match entries.iter_mut().find(|(e, _)| *e == key) {
            Some(slot) => slot.1 = Cow::Owned(v),
            None => entries.push((key, Cow::Owned(v))),
        };
        if node.resource_type == ResourceType::Test {
            put("severity", json!(node.config.str("severity").unwrap_or("ERROR").to_ascii_uppercase()));
        }
        if let Some(p) = self.placement {
            put("target", json!(p.target.value));
        }
        let mut m = ser.serialize_map(Some(entries.len()))?;
        for (k, v) in &entries {
            m.serialize_entry(k, v.as_ref())?;
        }
        m.end()
    }
}

/// Calls `f` with a node's config serialized: once per distinct (resource type, target,
/// config) on each thread, as thousands of tests share one and its ~30 default keys
/// are a sixth of the manifest.
fn with_config_json<T, E: serde::ser::Error>(
    config: NodeConfig<'_>,
    f: impl FnOnce(&serde_json::value::RawValue) -> T,
) -> std::result::Result<T, E> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::collections::hash_map::Entry;
    thread_local! {
        static MEMO: RefCell<HashMap<String, Box<serde_json::value::RawValue>>> = RefCell::new(HashMap::new());
    }
    /// Distinct configs kept per thread (most projects have far fewer).
    const CAPACITY: usize = 4096;
    let node = config.node;
    let mut key = format!("{}\0{}\0", node.resource_type.as_str(), config.placement.map_or("", |p| p.target.value.as_str()));
    // The config as JSON, after a NUL that no resource type or target name holds.
    key.push_str(&serde_json::to_string(&node.config).map_err(E::custom)?);
    MEMO.with_borrow_mut(|memo| {
        if memo.len() >= CAPACITY && !memo.contains_key(&key) {
            memo.clear();
        }
        let json = match memo.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(serde_json::value::to_raw_value(&config).map_err(E::custom)?),
        };
        Ok(f(json))
    })
}

/// database, schema, alias and `relation_name` (in the project's `quoting:`) of a node.
fn relation_fields(node: &Node, placement: Option<&Placement>, project: &Project, jinja: &Jinja, fast: bool) -> (Json, Json, String, Json) {
    let output = placement.map_or(&project.active_target, |p| &p.target.value);
    let Some(out) = project.profile.outputs.get(output) else { return (Json::Null, Json::Null, node.name.clone(), Json::Null) };
    let dialect = Dialect::from_adapter(&out.kind).unwrap_or(Dialect::Postgres);
    let quote = QuotePolicy::default().overlay(project.root_package().file.quoting.as_ref());
    match placement.and_then(|p| p.relation.as_ref()) {
        Some(r) => {
            let rendered = dialect.relation_with(r.database.as_deref(), r.schema.as_deref(), &r.identifier, quote);
            (json!(r.database), json!(r.schema), r.identifier.clone(), json!(rendered))
        }
        None => {
            // Tests are named as dbt would store their failures: the `dbt_test__audit` custom schema.
            let alias = node.config.str("alias").unwrap_or(&node.name).to_string();
            let custom =
                if node.resource_type == ResourceType::Test { Some(node.config.str("schema").unwrap_or("dbt_test__audit")) } else { None };
            if fast {
                let schema = match custom.or(node.config.str("schema")) {
                    Some(c) if !c.trim().is_empty() => format!("{}_{}", out.schema, c.trim()),
                    _ => out.schema.clone(),
                };
                let database = node.config.str("database").map(str::to_string).or(out.database.clone());
                return (json!(database), json!(schema), alias, Json::Null);
            }
            let mut named = node.clone();
            if let Some(c) = custom {
                named.config.insert("schema".into(), json!(c));
            }
            match crate::compile::resolve::relation_of(project, jinja, &named, out, false) {
                Ok(r) => (json!(r.database), json!(r.schema), r.identifier, Json::Null),
                Err(_) => (json!(out.database), json!(out.schema), alias, Json::Null),
            }
        }
    }
}

/// A file as dbt names it: relative to its own package's root (`models/x.sql`, also for
/// packages, whose files DVT names from the root project, `dbt_packages/p/models/x.sql`).
pub(crate) fn package_relative<'a>(project: &Project, package: &str, file: &'a str) -> &'a str {
    project.packages.iter().find(|p| p.name == package).and_then(|p| file.strip_prefix(p.rel.as_str())).unwrap_or(file)
}

/// The path of a node below its resource folder (`staging/stg_orders.sql`), as dbt writes `path`.
pub(crate) fn resource_path(project: &Project, node: &Node) -> String {
    match node.resource_type {
        ResourceType::Test if node.test.is_some() => [node.config.str("alias").unwrap_or(&node.name), ".sql"].concat(),
        _ => {
            let file = package_relative(project, &node.package, &node.file);
            let below = file.split_once('/').map_or(file, |(_, rest)| rest);
            // An analysis's is dbt's compiled path for it (`AnalysisParser.get_compiled_path`).
            if node.resource_type == ResourceType::Analysis { format!("analysis/{below}") } else { below.to_string() }
        }
    }
}

fn node_json(project: &Project, jinja: &Jinja, fast: bool, node: &Node, placement: Option<&Placement>, graph: &Graph) -> Json {
    serde_json::to_value(NodeEntry { project, jinja, fast, node, placement, graph, at: None, compiled: None }).unwrap_or(Json::Null)
}

/// A node of dbt's manifest, serialized as it is written (no intermediate JSON tree:
/// the manifest of 5,000 models has ~22,000 of them). Keys in dbt-core's order.
struct NodeEntry<'a> {
    project: &'a Project,
    jinja: &'a Jinja,
    fast: bool,
    node: &'a Node,
    placement: Option<&'a Placement>,
    graph: &'a Graph,
    /// The node's index in `graph` where the caller knows it (else it is looked up by id).
    at: Option<NodeIndex>,
    /// What `dbt compile` adds (see [`mark_compiled`]): code, path under `compiled/`, `target-path`.
    compiled: Option<(&'a str, Option<&'a str>, &'a str)>,
}

/// Small objects of every node entry, serialized as they are (no JSON tree each).
#[derive(serde::Serialize)]
struct NameChecksum<'a> {
    name: &'a str,
    checksum: &'a str,
}

#[derive(serde::Serialize)]
struct TestMetadataEntry<'a> {
    name: &'a str,
    kwargs: KwargsWithModel<'a>,
    namespace: &'a Option<String>,
}

/// A generic test's kwargs with `model` as dbt stores it: in its place when
/// the test names it, else last.
struct KwargsWithModel<'a> {
    kwargs: &'a crate::sorted_map::SortedMap<String, Json>,
    model: &'a str,
}

impl serde::Serialize for KwargsWithModel<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        for (k, v) in self.kwargs {
            match k.as_str() {
                "model" => m.serialize_entry(k, self.model)?,
                _ => m.serialize_entry(k, v)?,
            }
        }
        if !self.kwargs.contains_key("model") {
            m.serialize_entry("model", self.model)?;
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
struct RefEntry<'a> {
    name: &'a str,
    package: &'a Option<String>,
    version: &'a Option<String>,
}

impl serde::Serialize for NodeEntry<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            buf.clear();
            self.write_json(buf).map_err(serde::ser::Error::custom)?;
            // Written from `str`s and serde_json: UTF-8.
            crate::json_str::RawJson(std::str::from_utf8(buf).map_err(serde::ser::Error::custom)?).serialize(ser)
        })
    }
}

impl NodeEntry<'_> {
    /// Appends the entry as serde_json's `to_writer` would write it, keys in dbt-core's order.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let NodeEntry { project, jinja, fast, node, placement, graph, at, compiled } = *self;
        let (database, schema, alias, relation_name) = relation_fields(node, placement, project, jinja, fast);
        let mut m = CompactObject::new(out);
        m.value("database", &database)?;
        m.value("schema", &schema)?;
        m.str("name", &node.name);
        m.str("resource_type", node.resource_type.as_str());
        m.str("package_name", &node.package);
        m.str("path", &resource_path(project, node));
        m.str("original_file_path", package_relative(project, &node.package, &node.file));
        m.str("unique_id", &node.unique_id);
        m.strs("fqn", node.fqn.iter().map(String::as_str));
        m.str("alias", &alias);
        match (node.resource_type, &node.seed_path) {
            (ResourceType::Test, _) if node.test.is_some() => m.raw("checksum", r#"{"name":"none","checksum":""}"#),
            (ResourceType::Seed, Some(path)) => {
                m.value("checksum", &seed_checksum(path, package_relative(project, &node.package, &node.file)))?
            }
            _ => m.value("checksum", &NameChecksum { name: "sha256", checksum: &sha256(&node.raw) })?,
        }
        with_config_json(NodeConfig { node, placement }, |config| m.raw("config", config.get()))?;
        let mut tags = node.config.tags();
        if node.test.is_some() {
            // dbt sorts a generic test's tags (`sorted(set(...))`); other nodes keep their order.
            tags.sort();
        }
        m.strs("tags", tags.iter().map(AsRef::as_ref));
        m.str("description", &node.description);
        m.value("columns", &Columns(&node.columns))?;
        match node.config.get("meta").filter(|v| v.is_object()) {
            Some(meta) => m.value("meta", meta)?,
            None => m.raw("meta", "{}"),
        }
        m.value("group", node.config.get("group").unwrap_or(&Json::Null))?;
        m.raw("docs", r#"{"show":true,"node_color":null}"#);
        m.opt_str("patch_path", node.patch_path.as_deref());
        m.raw("build_path", "null");
        m.raw("unrendered_config", "{}");
        m.raw("created_at", "0.0");
        m.value("relation_name", &relation_name)?;
        m.strs("doc_blocks", node.doc_blocks.iter().map(String::as_str));
        let generic =
            node.test.as_ref().filter(|_| node.raw.is_empty()).map(|t| GenericTest::new(project, jinja, node, t, compiled.is_some()));
        m.str("raw_code", generic.as_ref().map_or(&node.raw, |g| &g.raw_code));
        if node.resource_type == ResourceType::Seed {
            m.str("root_path", &project.root.display().to_string());
            let mut d = m.object("depends_on");
            d.strs("macros", node.macros.iter().map(String::as_str));
            d.end();
            m.end();
            return Ok(());
        }
        let (refs, sources, macros): (Vec<RefEntry<'_>>, Vec<[&str; 2]>, &[String]) = match &generic {
            Some(g) => (
                g.refs.iter().map(|r| RefEntry { name: &r.name, package: &r.package, version: &r.version }).collect(),
                g.sources.iter().map(|(a, b)| [a.as_str(), b.as_str()]).collect(),
                &g.macros,
            ),
            None => (
                node.refs.iter().map(|(r, _)| RefEntry { name: &r.name, package: &r.package, version: &r.version }).collect(),
                node.source_calls.iter().map(|(a, b, _)| [a.as_str(), b.as_str()]).collect(),
                &node.macros,
            ),
        };
        m.str("language", if node.python.is_some() { "python" } else { "sql" });
        m.value("refs", &refs)?;
        m.value("sources", &sources)?;
        m.raw("metrics", "[]");
        m.raw("functions", "[]");
        let parents = at.map_or_else(|| graph.parents(&node.unique_id), |n| graph.parents_at(n));
        let parents = ordered_parents(project, parents, &refs, &sources);
        let mut d = m.object("depends_on");
        d.strs("macros", macros.iter().map(String::as_str));
        d.strs("nodes", parents.iter().copied());
        d.end();
        let compiled_path = compiled.and_then(|(_, path, target_path)| path.map(|p| [target_path, "/compiled/", p].concat()));
        m.opt_str("compiled_path", compiled_path.as_deref());
        m.raw(
            "contract",
            match crate::state::contract_enforced(node) {
                true => r#"{"enforced":true,"alias_types":true,"checksum":null}"#,
                false => r#"{"enforced":false,"alias_types":true,"checksum":null}"#,
            },
        );
        match node.resource_type {
            ResourceType::Model => {
                match node.config.get("access") {
                    Some(a) => m.value("access", a)?,
                    None => m.raw("access", r#""protected""#),
                }
                match node.config.get("constraints") {
                    Some(c) => m.value("constraints", c)?,
                    None => m.raw("constraints", "[]"),
                }
                // As written: a number stays a number.
                m.value("version", &version_json(node.version.as_deref()))?;
                m.value("latest_version", &version_json(node.latest_version.as_deref()))?;
                m.raw("deprecation_date", "null");
                m.strs("primary_key", primary_key(node).iter().map(String::as_str));
                m.value("time_spine", &node.time_spine)?;
            }
            ResourceType::Test => {
                if let Some(t) = &node.test {
                    let model = ["{{ get_where_subquery(", &model_call(project, &t.attached_node), ") }}"].concat();
                    m.opt_str("column_name", t.column_name.as_deref());
                    m.str("file_key_name", &file_key_name(project, &t.attached_node));
                    m.str("attached_node", &t.attached_node);
                    let kwargs = KwargsWithModel { kwargs: &t.kwargs, model: &model };
                    m.value("test_metadata", &TestMetadataEntry { name: &t.name, kwargs, namespace: &t.namespace })?;
                }
            }
            _ => {}
        }
        if let Some((code, _, _)) = compiled {
            m.raw("compiled", "true");
            m.str("compiled_code", code);
            m.raw("extra_ctes_injected", "true");
            m.raw("extra_ctes", "[]");
        }
        m.end();
        Ok(())
    }
}

/// What dbt's parser records of a generic test (`render_test_update`): the call of
/// its macro with the kwargs as `raw_code`, the relations its arguments and the
/// tested node reach, and its macro with `get_where_subquery` (which dbt's
/// `not_null` and `unique` only reach once compiled: their parse renders nothing).
struct GenericTest {
    raw_code: String,
    refs: Vec<crate::jinja::RefCall>,
    sources: Vec<(String, String)>,
    macros: Vec<String>,
}

impl GenericTest {
    fn new(project: &Project, jinja: &Jinja, node: &Node, t: &crate::nodes::TestInfo, compiled: bool) -> Self {
        let (callee, test_macro) = crate::compile::tests::test_macro(jinja, &node.package, t);
        let test_macro = test_macro.map(crate::jinja::MacroDef::unique_id);
        // dbt's own not_null and unique skip rendering their arguments at parse time.
        let builtin = matches!(test_macro.as_deref(), Some("macro.dbt.test_not_null" | "macro.dbt.test_unique"));
        let mut macros: Vec<String> = test_macro.iter().cloned().collect();
        if let Some(w) = jinja.index.lookup(&node.package, "get_where_subquery").map(crate::jinja::MacroDef::unique_id)
            && !macros.contains(&w)
            && (compiled || !builtin)
        {
            macros.push(w);
        }
        let (mut refs, mut sources) = if builtin { Default::default() } else { crate::loader::kwarg_dependencies(&t.kwargs) };
        match (
            project.sources.get(&t.attached_node),
            project.nodes.get(&t.attached_node).or_else(|| project.disabled.get(&t.attached_node)),
        ) {
            (Some(s), _) => sources.push((s.source_name.clone(), s.name.clone())),
            (None, Some(n)) => refs.push(crate::jinja::RefCall { package: None, name: n.name.clone(), version: n.version.clone() }),
            (None, None) => {}
        }
        GenericTest { raw_code: ["{{ ", &callee, "(**_dbt_generic_test_kwargs) }}"].concat(), refs, sources, macros }
    }
}

/// `depends_on.nodes` in dbt's order: the sources the node reads, then what it
/// refs, each in the order of the calls (`parent_map` sorts them; this list does
/// not). Parents found otherwise keep their sorted order, last.
fn ordered_parents<'g>(project: &Project, mut parents: Vec<&'g str>, refs: &[RefEntry<'_>], sources: &[[&str; 2]]) -> Vec<&'g str> {
    let rank = |uid: &&str| -> usize {
        let uid = *uid;
        if let Some(s) = project.sources.get(uid) {
            return sources.iter().position(|[a, b]| *a == s.source_name && *b == s.name).unwrap_or(usize::MAX);
        }
        let Some(n) = project.nodes.get(uid).or_else(|| project.disabled.get(uid)) else { return usize::MAX };
        let same = |r: &RefEntry<'_>| {
            r.name == n.name && r.package.as_ref().is_none_or(|p| *p == n.package) && (r.version.is_none() || *r.version == n.version)
        };
        refs.iter().position(same).map_or(usize::MAX, |i| sources.len() + i)
    };
    // A stable sort: ties keep the graph's sorted order.
    parents.sort_by_cached_key(rank);
    parents
}

/// A model's primary key as dbt infers it (`ModelNode.infer_primary_key`): a
/// model-level `primary_key` constraint, else a column's, else what its tests
/// imply (kept on the node by the loader: a compile that reuses the last one
/// has no test nodes).
fn primary_key(node: &Node) -> Vec<String> {
    let is_pk = |c: &Json| c.get("type").and_then(Json::as_str) == Some("primary_key");
    if let Some(c) = node.config.get("constraints").and_then(Json::as_array).into_iter().flatten().find(|c| is_pk(c)) {
        return c.get("columns").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str).map(str::to_string).collect();
    }
    if let Some((name, _)) = node.columns.iter().find(|(_, c)| c.constraints.iter().any(is_pk)) {
        return vec![name.clone()];
    }
    node.test_key.clone()
}

/// A seed's checksum as dbt computes it: SHA-256 of the stripped file, or its
/// path for files over 1 MiB (which dbt does not read at parse time).
fn seed_checksum(path: &std::path::Path, original_file_path: &str) -> Json {
    const MAXIMUM_SEED_SIZE: u64 = 1 << 20;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAXIMUM_SEED_SIZE) {
        return json!({"name": "path", "checksum": original_file_path});
    }
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            json!({"name": "sha256", "checksum": sha256(text.trim())})
        }
        Err(_) => json!({"name": "sha256", "checksum": sha256("")}),
    }
}

/// An `on-run-start`/`on-run-end` hook as dbt lists it (an operation node).
fn operation_json(project: &Project, n: &Node, kind: HookKind, index: usize) -> Json {
    let output = project.profile.outputs.get(&project.active_target);
    json!({
        "database": output.and_then(|o| o.database.clone()), "schema": output.map(|o| o.schema.clone()), "name": n.name,
        "resource_type": "operation", "package_name": n.package, "path": format!("hooks/{}.sql", n.name),
        "original_file_path": "./dbt_project.yml", "unique_id": n.unique_id, "fqn": n.fqn, "alias": n.name,
        "checksum": {"name": "sha256", "checksum": sha256(&n.raw)},
        "config": {"enabled": true, "materialized": "view", "tags": [], "meta": {}, "post-hook": [], "pre-hook": []},
        "tags": [kind.key()], "description": "", "columns": {}, "meta": {}, "group": null, "docs": {"show": true, "node_color": null},
        "patch_path": null, "build_path": null, "unrendered_config": {}, "created_at": 0.0, "relation_name": null,
        "raw_code": n.raw, "doc_blocks": [], "language": "sql", "refs": [], "sources": [], "metrics": [], "functions": [],
        "depends_on": {"macros": [], "nodes": []}, "compiled_path": null,
        "contract": {"enforced": false, "alias_types": true, "checksum": null}, "index": index,
    })
}

fn model_call(project: &Project, attached: &str) -> String {
    match project.sources.get(attached) {
        Some(s) => ["source('", &s.source_name, "', '", &s.name, "')"].concat(),
        None => ["ref('", node_name(project, attached), "')"].concat(),
    }
}

fn file_key_name(project: &Project, attached: &str) -> String {
    match project.sources.get(attached) {
        Some(s) => ["sources.", &s.source_name].concat(),
        None => ["models.", node_name(project, attached)].concat(),
    }
}

/// The name of a node, enabled or disabled (its id if it has neither).
fn node_name<'a>(project: &'a Project, id: &'a str) -> &'a str {
    project.nodes.get(id).or_else(|| project.disabled.get(id)).map_or(id, |n| n.name.as_str())
}

fn source_json(project: &Project, s: &Source) -> Json {
    let freshness = s.config.get("freshness").cloned().unwrap_or_else(
        || json!({"warn_after": {"count": null, "period": null}, "error_after": {"count": null, "period": null}, "filter": null}),
    );
    let loaded_at = s.config.get("loaded_at_field").cloned().unwrap_or(Json::Null);
    let mut config = json!({
        "enabled": true, "event_time": null, "freshness": freshness, "loaded_at_field": loaded_at, "loaded_at_query": null,
        "meta": {}, "tags": s.tags, "static_analysis": null,
    });
    // DVT's own: the output the source is read from.
    config["connection"] = json!(s.connection);
    let dialect = project.profile.outputs.get(&s.connection).and_then(|o| Dialect::from_adapter(&o.kind)).unwrap_or(Dialect::Postgres);
    let database = if dialect.three_part_names() { s.database.as_deref() } else { None };
    let relation_name = dialect.relation_with(database, Some(&s.schema), &s.identifier, s.quote);
    json!({
        "database": s.database, "schema": s.schema, "name": s.name, "resource_type": "source", "package_name": s.package,
        "path": package_relative(project, &s.package, &s.file), "original_file_path": package_relative(project, &s.package, &s.file), "unique_id": s.unique_id, "fqn": s.fqn, "source_name": s.source_name,
        "source_description": s.source_description, "loader": s.loader, "identifier": s.identifier,
        "quoting": {"database": null, "schema": null, "identifier": null, "column": null},
        "loaded_at_field": loaded_at, "loaded_at_query": null, "freshness": freshness, "external": null,
        "description": s.description, "columns": Columns(&s.columns), "meta": {}, "source_meta": {}, "tags": s.tags,
        "config": config, "patch_path": null, "unrendered_config": {}, "relation_name": relation_name, "created_at": 0.0,
        "unrendered_database": null, "unrendered_schema": s.schema, "doc_blocks": [],
    })
}

fn version_json(v: Option<&str>) -> Json {
    match v {
        None => Json::Null,
        Some(v) => serde_json::from_str::<serde_json::Number>(v).map_or_else(|_| json!(v), Json::Number),
    }
}

/// A unit test in dbt's `UnitTestDefinition` shape.
fn unit_test_json(project: &Project, n: &Node, u: &crate::nodes::UnitTest) -> Json {
    let input = |uid: &str| match (project.sources.get(uid), project.nodes.get(uid)) {
        _ if uid == "this" => "this".to_string(),
        (Some(s), _) => format!("source('{}', '{}')", s.source_name, s.name),
        (_, Some(m)) => format!("ref('{}')", m.name),
        _ => uid.to_string(),
    };
    let model = project.nodes.get(&u.model).map_or(String::new(), |m| m.name.clone());
    json!({
        "model": model, "given": u.given.iter().map(|(uid, format, rows)| json!({"input": input(uid), "rows": rows, "format": format, "fixture": null})).collect::<Vec<_>>(),
        "expect": {"rows": u.expect.1, "format": u.expect.0, "fixture": null},
        "name": n.name, "resource_type": "unit_test", "package_name": n.package,
        "path": package_relative(project, &n.package, &n.file), "original_file_path": package_relative(project, &n.package, &n.file),
        "unique_id": n.unique_id, "fqn": n.fqn, "description": n.description, "overrides": u.overrides,
        "depends_on": {"macros": [], "nodes": [u.model]}, "config": {"tags": n.config.tags(), "meta": {}, "enabled": true},
        "checksum": null, "schema": null, "created_at": 0.0, "versions": null, "version": null,
    })
}

/// What `dbt compile` adds to a node it compiled: `compiled`, `compiled_code`,
/// `compiled_path` and the (already injected) CTEs.
fn mark_compiled(m: &mut Map<String, Json>, code: &str, path: Option<&str>, target_path: &str) {
    m.insert("compiled".into(), Json::Bool(true));
    m.insert("compiled_code".into(), json!(code));
    m.insert("extra_ctes_injected".into(), Json::Bool(true));
    m.insert("extra_ctes".into(), json!([]));
    m.insert("compiled_path".into(), path.map_or(Json::Null, |p| json!(format!("{target_path}/compiled/{p}"))));
}

/// The manifest of `project` in dbt's v12 shape, serialized as it is written: the nodes of the project are
/// turned into JSON a chunk at a time (in parallel within a chunk), so the whole
/// tree never exists at once (it would take ~300 MB for 5,000 models).
pub struct Manifest<'a> {
    project: &'a Project,
    jinja: &'a Jinja,
    graph: &'a Graph,
    placements: &'a Placements,
    /// `dbt compile`'s additions: the plan, compiled paths by unique id, `target-path`.
    compiled: Option<(&'a dvt_schema::Plan, BTreeMap<&'a str, &'a str>, String)>,
    /// Every part but the project's enabled nodes; `nodes` holds the other entries.
    rest: Map<String, Json>,
}

impl<'a> Manifest<'a> {
    pub fn new(project: &'a Project, jinja: &'a Jinja, graph: &'a Graph, placements: &'a Placements) -> Self {
        let rest = match parts(project, jinja, graph, placements) {
            Json::Object(m) => m,
            _ => Map::new(),
        };
        Manifest { project, jinja, graph, placements, compiled: None, rest }
    }

    /// With what `dbt compile` adds to the nodes it compiled (see [`mark_compiled`]).
    pub fn with_compiled(mut self, plan: &'a dvt_schema::Plan, files: &'a [(String, String)], target_path: &str) -> Self {
        let paths = files.iter().map(|(p, id)| (id.as_str(), p.as_str())).collect();
        if let Some(Json::Object(nodes)) = self.rest.get_mut("nodes") {
            let hooks = plan.on_run_start.iter().chain(&plan.on_run_end).map(|h| (&h.unique_id, &h.compiled_sql));
            for (id, code) in hooks {
                if let (Some(code), Some(Json::Object(m))) = (code, nodes.get_mut(id)) {
                    mark_compiled(m, code, files.iter().find(|(_, i)| i == id).map(|(p, _)| p.as_str()), target_path);
                }
            }
        }
        self.compiled = Some((plan, paths, target_path.to_string()));
        self
    }
}

impl serde::Serialize for Manifest<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = ser.serialize_map(Some(self.rest.len()))?;
        for (k, v) in &self.rest {
            if k == "nodes" {
                map.serialize_entry(k, &NodesSer { m: self, extra: v })?;
            } else if k == "parent_map" || k == "child_map" {
                let hooks = self.rest.get("nodes").and_then(Json::as_object).into_iter().flatten().map(|(id, _)| id);
                let hooks: Vec<&String> = hooks.filter(|id| id.starts_with("operation.")).collect();
                map.serialize_entry(k, &Edges { project: self.project, graph: self.graph, hooks, parents: k == "parent_map" })?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// `parent_map` or `child_map`, written as it is computed (two maps of every node
/// would take ~25 MB on 10,000 models): run hooks (no edges), nodes and sources,
/// then exposures, metrics, semantic models and saved queries (groups have no edges).
struct Edges<'a> {
    project: &'a Project,
    graph: &'a Graph,
    hooks: Vec<&'a String>,
    parents: bool,
}

impl serde::Serialize for Edges<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Edges { project, graph, parents, .. } = *self;
        let semantic = &project.semantic;
        let semantic_children = semantic.children();
        let children_of = |id: &str| semantic_children.get(id).cloned().unwrap_or_default();
        let none: [&str; 0] = [];
        let mut map = ser.serialize_map(None)?;
        for id in &self.hooks {
            map.serialize_entry(id, &none)?;
        }
        // Lists of nodes and sources, written on all cores.
        let (nodes, sources) = graph.nodes_then_sources();
        let ids: Vec<(NodeIndex, bool)> = nodes.into_iter().map(|n| (n, true)).chain(sources.into_iter().map(|n| (n, false))).collect();
        let ids: Vec<&(NodeIndex, bool)> = ids.iter().collect();
        crate::manifest::entries_in_parallel(
            &mut map,
            &ids,
            |(n, _)| graph.id(*n),
            |buf, &(n, is_node)| match parents {
                true => serde_json::to_writer(buf, &if is_node { graph.parents_at(n) } else { vec![] }),
                false => {
                    let mut children = graph.children_at(n);
                    let semantic = semantic_children.get(graph.id(n));
                    children.extend(semantic.into_iter().flatten().map(String::as_str));
                    children.sort();
                    serde_json::to_writer(buf, &children)
                }
            },
        )?;
        for r in semantic.resources.values().filter(|r| r.kind != Kind::Group) {
            if parents {
                let mut p = r.depends_on.clone();
                p.sort();
                map.serialize_entry(&r.unique_id, &p)?;
            } else {
                map.serialize_entry(&r.unique_id, &children_of(&r.unique_id))?;
            }
        }
        map.end()
    }
}

/// A compiled node's code and its path under `compiled/` (run hooks have none).
type CompiledCode<'a> = (&'a str, Option<&'a str>);

struct NodesSer<'m, 'a> {
    m: &'m Manifest<'a>,
    extra: &'m Json,
}

impl serde::Serialize for NodesSer<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Manifest { project, jinja, graph, placements, compiled, .. } = self.m;
        let fast = !crate::compile::resolve::naming_overridden(jinja);
        // Each node with its index in the graph, which lists the nodes in the same order.
        let (indices, _) = graph.nodes_then_sources();
        let at = |i: usize| (indices.len() == project.nodes.len()).then(|| indices[i]);
        let all: Vec<(&Node, Option<NodeIndex>)> =
            project.nodes.values().enumerate().filter(|(_, n)| n.unit.is_none()).map(|(i, n)| (n, at(i))).collect();
        debug_assert!(all.iter().all(|(n, at)| at.is_none_or(|i| graph.id(i) == n.unique_id)), "the graph lists the nodes in id order");
        // Each node's compiled code and path, found by walking the sorted maps beside the
        // sorted nodes (22,000 lookups of long, alike ids cost more).
        let ids = || all.iter().map(|(n, _)| n.unique_id.as_str());
        let with_compiled: Vec<(&Node, Option<NodeIndex>, Option<CompiledCode<'_>>)> = match compiled {
            Some((plan, paths, _)) => {
                let codes = aligned(ids(), plan.nodes.iter().map(|(k, v)| (k.as_str(), v.compiled_sql.as_deref())));
                let paths = aligned(ids(), paths.iter().map(|(k, v)| (*k, *v)));
                all.iter()
                    .zip(codes.into_iter().zip(paths))
                    .map(|(&(n, at), (code, path))| (n, at, code.flatten().map(|c| (c, path))))
                    .collect()
            }
            None => all.iter().map(|&(n, at)| (n, at, None)).collect(),
        };
        let rows: Vec<&(&Node, Option<NodeIndex>, Option<CompiledCode<'_>>)> = with_compiled.iter().collect();
        let target_path = compiled.as_ref().map_or("", |(_, _, t)| t.as_str());
        let mut map = ser.serialize_map(None)?;
        crate::manifest::entries_in_parallel(
            &mut map,
            &rows,
            |(n, _, _)| &n.unique_id,
            |buf, &(n, at, code)| {
                let compiled = code.map(|(code, path)| (code, path, target_path));
                NodeEntry { project, jinja, fast, node: n, placement: placements.get(&n.unique_id), graph, at, compiled }.write_json(buf)
            },
        )?;
        for (k, v) in self.extra.as_object().into_iter().flatten() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// For `ids` in sorted order, the value of each in `map`'s entries (sorted by the same
/// key): one pass over both instead of a lookup per id.
fn aligned<'k, V>(ids: impl Iterator<Item = &'k str>, map: impl Iterator<Item = (&'k str, V)>) -> Vec<Option<V>> {
    let mut map = map.peekable();
    ids.map(|id| {
        while map.next_if(|(k, _)| *k < id).is_some() {}
        map.next_if(|(k, _)| *k == id).map(|(_, v)| v)
    })
    .collect()
}

/// The text of dbt's `{% docs __overview__ %}` block (dbt-core's global project, Apache-2.0).
fn dbt_overview() -> &'static str {
    const FILE: &str = include_str!("jinja/dbt/global_project/docs/overview.md");
    let start = FILE.find("__overview__").and_then(|i| FILE[i..].find("%}").map(|j| i + j + 2)).unwrap_or(0);
    let end = FILE.find("{% enddocs %}").unwrap_or(FILE.len());
    FILE[start..end].trim()
}

/// dbt's `invocation_id`: one for everything this process writes (manifest, run
/// results, catalog, sources), so that tools can join the artifacts of one run.
/// A version-4 UUID's layout, from the clock and the process.
pub fn invocation_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut b: [u8; 16] = md5::Md5::digest(format!("{nanos}:{}", std::process::id()).as_bytes()).into();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = crate::hex::encode(&b);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    })
}

/// A manifest timestamp for now.
pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The manifest's `metadata`, stamped now.
fn metadata(project: &Project) -> Json {
    let adapter = project.profile.outputs.get(&project.active_target).map(|o| o.kind.clone());
    let now = now();
    json!({
        "dbt_schema_version": DBT_SCHEMA_VERSION, "dbt_version": DBT_VERSION, "generated_at": now,
        "invocation_id": invocation_id(), "invocation_started_at": now, "env": {}, "project_name": project.name,
        "project_id": format!("{:x}", md5::Md5::digest(project.name.as_bytes())), "user_id": null,
        "send_anonymous_usage_stats": false, "adapter_type": adapter,
        "quoting": {"database": true, "schema": true, "identifier": true, "column": null}, "run_started_at": null,
    })
}

/// A compiled node's `"unique_id":{…}` entry of `nodes`, as [`Manifest`] writes it
/// (`compiled`: its code and path under `compiled/`).
pub(crate) fn compiled_node_entry(
    project: &Project,
    jinja: &Jinja,
    graph: &Graph,
    placements: &Placements,
    node: &Node,
    compiled: Option<(&str, Option<&str>)>,
    target_path: &str,
) -> std::io::Result<Vec<u8>> {
    let entry = NodeEntry {
        project,
        jinja,
        fast: !crate::compile::resolve::naming_overridden(jinja),
        node,
        placement: placements.get(&node.unique_id),
        graph,
        at: None,
        compiled: compiled.map(|(code, path)| (code, path, target_path)),
    };
    crate::partial::spans::entry(&node.unique_id, &entry, false, 2)
}

/// Everything but the project's enabled nodes (`nodes` holds disabled tests and run hooks).
fn parts(project: &Project, jinja: &Jinja, graph: &Graph, placements: &Placements) -> Json {
    let fast = !crate::compile::resolve::naming_overridden(jinja);
    let mut nodes: Map<String, Json> = Map::new();
    // As dbt: a test of a disabled node stays in `nodes`, disabled and with no
    // parents; every other disabled node is listed under `disabled`.
    let mut disabled = Map::new();
    for n in project.disabled.values().filter(|n| n.unit.is_none()) {
        let mut v = node_json(project, jinja, fast, n, None, graph);
        let orphaned_test = n.test.as_ref().is_some_and(|t| project.disabled.contains_key(&t.attached_node));
        if orphaned_test {
            v["config"]["enabled"] = json!(false);
            v["depends_on"]["nodes"] = json!([]);
            nodes.insert(n.unique_id.clone(), v);
        } else {
            disabled.insert(n.unique_id.clone(), json!([v]));
        }
    }
    for r in project.semantic.disabled.values() {
        disabled.insert(r.unique_id.clone(), json!([r.entry]));
    }
    for kind in [HookKind::Start, HookKind::End] {
        for (package, index, template) in run_hooks::declared(project, kind) {
            let n = run_hooks::node(project, kind, &package, index, &template);
            nodes.insert(n.unique_id.clone(), operation_json(project, &n, kind, index));
        }
    }
    let sources: Map<String, Json> = project.sources.values().map(|s| (s.unique_id.clone(), source_json(project, s))).collect();
    let unit_tests: Map<String, Json> =
        project.nodes.values().filter_map(|n| Some((n.unique_id.clone(), unit_test_json(project, n, n.unit.as_ref()?)))).collect();
    let macros: Map<String, Json> = project
        .macros
        .iter()
        .map(|m| {
            let path = if m.file.is_empty() { "<builtins>".to_string() } else { m.file.clone() };
            (
                m.unique_id(),
                json!({
                    "name": m.name, "resource_type": "macro", "package_name": m.package, "path": path,
                    "original_file_path": path, "unique_id": m.unique_id(), "macro_sql": m.source,
                    "depends_on": {"macros": []}, "description": "", "meta": {}, "docs": {"show": true, "node_color": null},
                    "config": {"meta": {}, "docs": {"show": true, "node_color": null}}, "patch_path": null, "arguments": [],
                    "created_at": 0.0, "supported_languages": null,
                }),
            )
        })
        .collect();
    let mut docs: Map<String, Json> = project
        .docs
        .iter()
        .map(|((p, n), text)| {
            let id = format!("doc.{p}.{n}");
            (
                id.clone(),
                json!({"name": n, "resource_type": "doc", "package_name": p, "path": "", "original_file_path": "", "unique_id": id, "block_contents": text}),
            )
        })
        .collect();
    // dbt's own overview page (its `docs/overview.md`), which every manifest lists.
    docs.insert(
        "doc.dbt.__overview__".into(),
        json!({"name": "__overview__", "resource_type": "doc", "package_name": "dbt", "path": "overview.md",
               "original_file_path": "docs/overview.md", "unique_id": "doc.dbt.__overview__", "block_contents": dbt_overview()}),
    );
    let semantic = &project.semantic;
    let section = |k: Kind| Json::Object(semantic.section(k, project, placements));
    let metadata = metadata(project);
    // Assembled by moving the parts in (`json!` would copy each interpolated tree).
    let empty = || Json::Object(Map::new());
    let selectors = project.selectors.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Map<_, _>>();
    let parts: [(&str, Json); 17] = [
        ("metadata", metadata),
        ("nodes", Json::Object(nodes)),
        ("sources", Json::Object(sources)),
        ("macros", Json::Object(macros)),
        ("docs", Json::Object(docs)),
        ("exposures", section(Kind::Exposure)),
        ("metrics", section(Kind::Metric)),
        ("groups", section(Kind::Group)),
        ("selectors", Json::Object(selectors)),
        ("disabled", Json::Object(disabled)),
        // Streamed when written (see `Edges`).
        ("parent_map", Json::Null),
        ("child_map", Json::Null),
        ("group_map", Json::Object(semantic.group_map(project))),
        ("saved_queries", section(Kind::SavedQuery)),
        ("semantic_models", section(Kind::SemanticModel)),
        ("unit_tests", Json::Object(unit_tests)),
        ("functions", empty()),
    ];
    Json::Object(parts.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligned_finds_each_id_in_a_sorted_map_in_one_pass() {
        let map = std::collections::BTreeMap::from([("a", 1), ("c", 3), ("d", 4), ("f", 6)]);
        let ids = ["b", "c", "d", "e", "g"];
        let found = super::aligned(ids.into_iter(), map.iter().map(|(k, v)| (*k, *v)));
        assert_eq!(found, [None, Some(3), Some(4), None, None]);
        assert_eq!(super::aligned(["a"].into_iter(), std::iter::empty::<(&str, i32)>()), [None]);
    }
}
