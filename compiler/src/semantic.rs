//! Resources of properties files that DVT lists but does not run: exposures,
//! groups and dbt's semantic layer (semantic models, metrics, saved queries).
//! `manifest.json` carries them in dbt-core 1.11's shapes, with their edges in
//! `parent_map`/`child_map`, and dbt's `graph` variable holds them, so docs,
//! lineage and MetricFlow-based tools read a DVT project as they read dbt's.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use crate::compile::resolve::Placements;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::jinja::RefCall;
use crate::nodes::{Project, RefIndex};

/// What a properties file declares besides nodes and sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Exposure,
    Group,
    SemanticModel,
    Metric,
    SavedQuery,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Exposure, Kind::Group, Kind::SemanticModel, Kind::Metric, Kind::SavedQuery];

    /// `resource_type`, and the first part of the unique id.
    pub fn resource_type(self) -> &'static str {
        match self {
            Kind::Exposure => "exposure",
            Kind::Group => "group",
            Kind::SemanticModel => "semantic_model",
            Kind::Metric => "metric",
            Kind::SavedQuery => "saved_query",
        }
    }

    /// The key of the properties file, the manifest section and the `graph` entry.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Exposure => "exposures",
            Kind::Group => "groups",
            Kind::SemanticModel => "semantic_models",
            Kind::Metric => "metrics",
            Kind::SavedQuery => "saved_queries",
        }
    }
}

/// Marks the metric dbt makes of a measure with `create_metric: true`.
const MEASURE_METRIC: &str = "__dvt_measure_metric";

/// One entry of a properties file, as written (descriptions already rendered).
#[derive(Debug, Clone)]
pub struct Declared {
    pub kind: Kind,
    pub package: String,
    /// The properties file as displayed (from the root project).
    pub file: String,
    /// The file inside its package (`models/marts/orders.yml`).
    pub original_file_path: String,
    /// The file below its resource folder (`marts/orders.yml`).
    pub path: String,
    /// Folders between the resource folder and the file, for the fqn.
    pub folders: Vec<String>,
    pub line: u32,
    pub value: Json,
}

/// A resolved resource: its manifest entry and the nodes it depends on.
#[derive(Debug, Clone)]
pub struct Resource {
    pub unique_id: String,
    pub kind: Kind,
    /// dbt's manifest entry, less what depends on the compile (`node_relation`).
    pub entry: Map<String, Json>,
    /// `depends_on.nodes`, in dbt's order.
    pub depends_on: Vec<String>,
    /// A semantic model's model.
    pub model: Option<String>,
    /// Order of declaration (files in load order, entries in file order).
    pub position: usize,
}

/// The project's exposures, groups, semantic models, metrics and saved queries by unique id.
#[derive(Debug, Clone, Default)]
pub struct Semantic {
    pub resources: BTreeMap<String, Resource>,
    /// Declared with `config: {enabled: false}`: listed under the manifest's `disabled`, nowhere else.
    pub disabled: BTreeMap<String, Resource>,
}

impl Semantic {
    /// For each node, source or resource that resources depend on: those resources, sorted.
    pub fn children(&self) -> BTreeMap<&str, Vec<String>> {
        let mut m: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in self.resources.values() {
            for d in &r.depends_on {
                m.entry(d.as_str()).or_default().push(r.unique_id.clone());
            }
        }
        m
    }

    /// The manifest section of `kind` (`node_relation` of semantic models from `placements`).
    pub fn section(&self, kind: Kind, project: &Project, placements: &Placements) -> Map<String, Json> {
        self.resources
            .values()
            .filter(|r| r.kind == kind)
            .map(|r| (r.unique_id.clone(), Json::Object(self.entry(r, project, placements))))
            .collect()
    }

    /// `group_map`: each group's name and the nodes configured into it.
    pub fn group_map(&self, project: &Project) -> Map<String, Json> {
        use crate::config::ConfigExt;
        self.resources
            .values()
            .filter(|r| r.kind == Kind::Group)
            .filter_map(|r| {
                let name = r.entry.get("name")?.as_str()?;
                let members: Vec<&String> =
                    project.nodes.values().filter(|n| n.config.str("group") == Some(name)).map(|n| &n.unique_id).collect();
                Some((name.to_string(), json!(members)))
            })
            .collect()
    }

    /// dbt's `semantic_manifest.json` (what MetricFlow reads): the semantic models,
    /// metrics and saved queries in dbt-semantic-interfaces' shapes, and the time spines.
    pub fn semantic_manifest(&self, project: &Project, placements: &Placements) -> Json {
        let pick = |e: &Map<String, Json>, keys: &[&str]| -> Json {
            Json::Object(keys.iter().map(|k| (k.to_string(), e.get(*k).cloned().unwrap_or(Json::Null))).collect())
        };
        let items = |e: &Map<String, Json>, list: &str, keys: &[&str]| -> Json {
            let objects = e.get(list).and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_object);
            Json::Array(objects.map(|x| pick(x, keys)).collect())
        };
        let meta_only = |e: &Map<String, Json>| json!({"meta": e.get("config").and_then(|c| c.get("meta")).cloned().unwrap_or(json!({}))});
        let of_kind = |kind: Kind| {
            let mut rs: Vec<&Resource> = self.resources.values().filter(|r| r.kind == kind).collect();
            rs.sort_by_key(|r| r.position);
            rs
        };
        let semantic_models: Vec<Json> = of_kind(Kind::SemanticModel)
            .into_iter()
            .map(|r| {
                let e = self.entry(r, project, placements);
                let mut m = pick(&e, &["name", "defaults", "description", "node_relation", "primary_entity"]);
                m["entities"] = items(&e, "entities", &["name", "description", "type", "role", "expr", "metadata", "label", "config"]);
                m["measures"] = items(
                    &e,
                    "measures",
                    &[
                        "name",
                        "agg",
                        "description",
                        "create_metric",
                        "expr",
                        "agg_params",
                        "metadata",
                        "non_additive_dimension",
                        "agg_time_dimension",
                        "label",
                        "config",
                    ],
                );
                m["dimensions"] = items(
                    &e,
                    "dimensions",
                    &["name", "description", "type", "is_partition", "type_params", "expr", "metadata", "label", "config"],
                );
                m["label"] = e.get("label").cloned().unwrap_or(Json::Null);
                m["metadata"] = Json::Null;
                m["config"] = meta_only(&e);
                m
            })
            .collect();
        let metrics: Vec<Json> = of_kind(Kind::Metric)
            .into_iter()
            .map(|r| {
                let e = &r.entry;
                let mut m = pick(e, &["name", "description", "type"]);
                let tp = e.get("type_params").and_then(Json::as_object).cloned().unwrap_or_default();
                let mut type_params = pick(
                    &tp,
                    &[
                        "measure",
                        "numerator",
                        "denominator",
                        "expr",
                        "window",
                        "grain_to_date",
                        "metrics",
                        "conversion_type_params",
                        "cumulative_type_params",
                        "input_measures",
                    ],
                );
                if let Some(c) = type_params["cumulative_type_params"].as_object_mut() {
                    c.remove("metric");
                }
                m["type_params"] = type_params;
                for k in ["filter", "metadata", "label"] {
                    m[k] = e.get(k).cloned().unwrap_or(Json::Null);
                }
                m["config"] = meta_only(e);
                m["time_granularity"] = e.get("time_granularity").cloned().unwrap_or(Json::Null);
                m
            })
            .collect();
        let saved_queries: Vec<Json> = of_kind(Kind::SavedQuery)
            .into_iter()
            .map(|r| {
                let e = &r.entry;
                let q = e.get("query_params").and_then(Json::as_object).cloned().unwrap_or_default();
                let exports: Vec<Json> = e
                    .get("exports")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        let c = x.get("config").and_then(Json::as_object).cloned().unwrap_or_default();
                        json!({"name": x.get("name"), "config": pick(&c, &["export_as", "schema_name", "alias"])})
                    })
                    .collect();
                let mut m = pick(e, &["name"]);
                m["query_params"] = pick(&q, &["metrics", "group_by", "order_by", "limit", "where"]);
                for k in ["description", "metadata", "label"] {
                    m[k] = e.get(k).cloned().unwrap_or(Json::Null);
                }
                m["exports"] = json!(exports);
                m["tags"] = e.get("tags").cloned().unwrap_or(json!([]));
                m
            })
            .collect();
        json!({
            "semantic_models": semantic_models,
            "metrics": metrics,
            "project_configuration": time_spines(project, placements),
            "saved_queries": saved_queries,
        })
    }

    fn entry(&self, r: &Resource, project: &Project, placements: &Placements) -> Map<String, Json> {
        let mut e = r.entry.clone();
        if let Some(relation) = r.model.as_ref().map(|m| node_relation(project, placements, m))
            && let Some(slot) = e.get_mut("node_relation")
        {
            *slot = relation;
        }
        e
    }
}

/// MetricFlow's project configuration: models with `time_spine:` (and their primary
/// column's granularity), or dbt's legacy `metricflow_time_spine` model.
fn time_spines(project: &Project, placements: &Placements) -> Json {
    let models = || project.nodes.values().filter(|n| n.resource_type == crate::nodes::ResourceType::Model);
    let spines: Vec<Json> = models()
        .filter_map(|n| {
            let column = n.time_spine.as_ref()?.get("standard_granularity_column")?.as_str()?.to_string();
            let granularity = n.columns.get(&column).and_then(|c| c.granularity.clone());
            Some(json!({
                "node_relation": node_relation(project, placements, &n.unique_id),
                "primary_column": {"name": column, "time_granularity": granularity},
                "custom_granularities": [],
            }))
        })
        .collect();
    let legacy: Vec<Json> = models()
        .filter(|n| n.name == "metricflow_time_spine" && n.time_spine.is_none())
        .filter_map(|n| placements.get(&n.unique_id)?.relation.as_ref())
        .map(|r| json!({"location": r.rendered, "column_name": "date_day", "grain": "day"}))
        .collect();
    json!({
        "time_spine_table_configurations": legacy,
        "metadata": null,
        "dsi_package_version": {"major_version": "0", "minor_version": "9", "patch_version": "0"},
        "time_spines": spines,
    })
}

/// dbt's `node_relation` of a semantic model: where its model is built.
fn node_relation(project: &Project, placements: &Placements, model: &str) -> Json {
    let Some(r) = placements.get(model).and_then(|p| p.relation.as_ref()) else { return Json::Null };
    // dbt's shape always has a schema (a model's relation has one anyway).
    let schema = r.schema.clone().or_else(|| project.profile.outputs.get(&project.active_target).map(|o| o.schema.clone()));
    json!({"alias": r.identifier, "schema_name": schema, "database": r.database, "relation_name": r.rendered})
}

/// `ref('x')`, `ref('pkg', 'x')` and `source('s', 't')` calls in a string.
pub fn calls_in(s: &str) -> (Vec<RefCall>, Vec<(String, String)>) {
    use std::sync::LazyLock;
    static CALL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"\b(ref|source)\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"]\s*)?\)"#).expect("valid regex")
    });
    let mut refs = Vec::new();
    let mut sources = Vec::new();
    // Most arguments are names: no call, and no regex captures to set up.
    if !s.contains("ref(") && !s.contains("source(") {
        return (refs, sources);
    }
    for c in CALL.captures_iter(s) {
        let a = c[2].to_string();
        let b = c.get(3).map(|m| m.as_str().to_string());
        match (&c[1], b) {
            ("ref", None) => refs.push(RefCall { package: None, name: a, version: None }),
            ("ref", Some(b)) => refs.push(RefCall { package: Some(a), name: b, version: None }),
            ("source", Some(b)) => sources.push((a, b)),
            _ => {}
        }
    }
    (refs, sources)
}

fn ref_json(r: &RefCall) -> Json {
    json!({"name": r.name, "package": r.package, "version": r.version})
}

/// `config:` as written (dbt's `unrendered_config`).
fn written_config(v: &Json) -> Json {
    v.get("config").filter(|c| c.is_object()).cloned().unwrap_or_else(|| json!({}))
}

/// A YAML scalar as dbt keeps it in a string field (`expr: 1` is `"1"`).
fn text(v: Option<&Json>) -> Json {
    match v {
        None | Some(Json::Null) => Json::Null,
        Some(Json::String(s)) => json!(s),
        Some(Json::Bool(b)) => json!(if *b { "True" } else { "False" }),
        Some(other) => json!(other.to_string()),
    }
}

fn get_or(v: &Json, key: &str, default: Json) -> Json {
    v.get(key).filter(|x| !x.is_null()).cloned().unwrap_or(default)
}

/// `filter:`/`where:` as one string or a list: dbt's `WhereFilterIntersection`.
fn where_filters(v: Option<&Json>) -> Json {
    let one = |s: &Json| json!({"where_sql_template": s.as_str().map_or_else(|| s.to_string(), str::to_string)});
    match v {
        None | Some(Json::Null) => Json::Null,
        Some(Json::Array(a)) => json!({"where_filters": a.iter().map(one).collect::<Vec<_>>()}),
        Some(s) => json!({"where_filters": [one(s)]}),
    }
}

/// `7 days`, `1 month`: dbt's `MetricTimeWindow`.
fn time_window(v: Option<&Json>) -> Json {
    const GRAINS: [&str; 8] = ["second", "minute", "hour", "day", "week", "month", "quarter", "year"];
    let Some(s) = v.and_then(Json::as_str) else { return Json::Null };
    let mut parts = s.split_whitespace();
    let (Some(count), Some(unit)) = (parts.next().and_then(|c| c.parse::<i64>().ok()), parts.next()) else {
        return json!({"count": null, "granularity": s});
    };
    // `7 days` is a `day` window; anything else is kept as written.
    let lower = unit.to_ascii_lowercase();
    let granularity = lower.strip_suffix('s').filter(|u| GRAINS.contains(u)).unwrap_or(unit);
    json!({"count": count, "granularity": granularity})
}

fn config_with(v: &Json, base: Json) -> Json {
    let mut c = base;
    if let (Some(m), Some(given)) = (c.as_object_mut(), v.get("config").and_then(Json::as_object)) {
        for (k, x) in given {
            m.insert(k.clone(), x.clone());
        }
    }
    c
}

/// What every resource entry starts with.
fn head(d: &Declared, name: &str) -> (String, Map<String, Json>) {
    let unique_id = format!("{}.{}.{name}", d.kind.resource_type(), d.package);
    let mut fqn = vec![d.package.clone()];
    fqn.extend(d.folders.iter().cloned());
    fqn.push(name.to_string());
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("resource_type".into(), json!(d.kind.resource_type()));
    m.insert("package_name".into(), json!(d.package));
    m.insert("path".into(), json!(d.path));
    m.insert("original_file_path".into(), json!(d.original_file_path));
    m.insert("unique_id".into(), json!(unique_id));
    if d.kind != Kind::Group {
        m.insert("fqn".into(), json!(fqn));
    }
    (unique_id, m)
}

fn invalid(d: &Declared, msg: String, hint: &str) -> DvtError {
    DvtError::new(ErrorCode::ConfigInvalid, msg).at(Location::new(&d.file, d.line, 0)).hint(hint.to_string())
}

/// Resolves the declarations of a loaded project (its nodes and sources are final).
pub fn build(project: &Project, declared: Vec<Declared>) -> Result<Semantic> {
    let refs = RefIndex::new(project.nodes.values());
    let order: Vec<String> = project.packages.iter().map(|p| p.name.clone()).collect();
    let resolve_ref = |d: &Declared, call: &RefCall, what: &str| -> Result<String> {
        refs.find(&d.package, &project.name, &order, call).cloned().ok_or_else(|| {
            DvtError::new(
                ErrorCode::RefNotFound,
                format!("{what} refers to `{}`, which is not an enabled model, seed or snapshot", call.name),
            )
            .at(Location::new(&d.file, d.line, 0))
            .hint("check the name in ref(), or enable the node")
        })
    };
    let source_id = |s: &str, t: &str| project.sources.values().find(|x| x.source_name == s && x.name == t).map(|x| x.unique_id.clone());
    let mut out = Semantic::default();
    let mut by_kind: BTreeMap<Kind, Vec<Declared>> = BTreeMap::new();
    for d in declared {
        by_kind.entry(d.kind).or_default().push(d);
    }
    let take = |by_kind: &mut BTreeMap<Kind, Vec<Declared>>, k: Kind| by_kind.remove(&k).unwrap_or_default();
    let name_of = |d: &Declared| -> Result<String> {
        d.value
            .get("name")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| invalid(d, format!("an entry of `{}:` has no `name`", d.kind.section()), "give every entry a `name:`"))
    };
    let insert = |out: &mut Semantic, d: &Declared, mut r: Resource| -> Result<()> {
        if out.resources.contains_key(&r.unique_id) || out.disabled.contains_key(&r.unique_id) {
            return Err(invalid(d, format!("`{}` is declared twice", r.unique_id), "give each one a unique name"));
        }
        r.position = out.resources.len();
        let enabled = r.entry.get("config").and_then(|c| c.get("enabled")) != Some(&Json::Bool(false));
        if !enabled {
            // As dbt: a disabled resource is listed unresolved.
            if let Some(Json::Object(dep)) = r.entry.get_mut("depends_on") {
                dep.insert("nodes".into(), json!([]));
            }
            if let Some(Json::Object(tp)) = r.entry.get_mut("type_params") {
                tp.insert("input_measures".into(), json!([]));
            }
            r.depends_on.clear();
            out.disabled.insert(r.unique_id.clone(), r);
            return Ok(());
        }
        out.resources.insert(r.unique_id.clone(), r);
        Ok(())
    };

    for d in take(&mut by_kind, Kind::Group) {
        let name = name_of(&d)?;
        let (unique_id, mut m) = head(&d, &name);
        let owner = d.value.get("owner").cloned().unwrap_or(json!({}));
        m.insert("owner".into(), json!({"email": owner.get("email"), "name": owner.get("name")}));
        m.insert("description".into(), get_or(&d.value, "description", Json::Null));
        m.insert("config".into(), config_with(&d.value, json!({"meta": {}})));
        insert(&mut out, &d, Resource { unique_id, kind: Kind::Group, entry: m, depends_on: vec![], model: None, position: 0 })?;
    }

    // Semantic models, and the measures they define (metrics name measures).
    let mut measures: BTreeMap<String, String> = BTreeMap::new();
    let mut measure_metrics = Vec::new();
    for d in take(&mut by_kind, Kind::SemanticModel) {
        let name = name_of(&d)?;
        let (unique_id, mut m) = head(&d, &name);
        let model_text = d.value.get("model").and_then(Json::as_str).unwrap_or_default().to_string();
        let (calls, _) = calls_in(&model_text);
        let Some(call) = calls.first() else {
            return Err(invalid(
                &d,
                format!("semantic model `{name}` has `model: {model_text}`"),
                "name its model with `model: ref('<model>')`",
            ));
        };
        let model = resolve_ref(&d, call, &format!("semantic model `{name}`"))?;
        let meta = || json!({"meta": {}});
        let entities: Vec<Json> = list(&d.value, "entities")
            .map(|e| {
                json!({"name": e.get("name"), "type": e.get("type"), "description": e.get("description"), "label": e.get("label"),
                       "role": e.get("role"), "expr": text(e.get("expr")), "config": config_with(e, meta())})
            })
            .collect();
        let measure_list: Vec<Json> = list(&d.value, "measures")
            .map(|x| {
                json!({"name": x.get("name"), "agg": x.get("agg"), "description": x.get("description"), "label": x.get("label"),
                       "create_metric": false, "expr": text(x.get("expr")),
                       "agg_params": agg_params(x.get("agg_params")), "non_additive_dimension": non_additive(x.get("non_additive_dimension")),
                       "agg_time_dimension": x.get("agg_time_dimension"), "config": config_with(x, meta())})
            })
            .collect();
        let dimensions: Vec<Json> = list(&d.value, "dimensions")
            .map(|x| {
                let type_params = x
                    .get("type_params")
                    .filter(|t| !t.is_null())
                    .map(|t| json!({"time_granularity": t.get("time_granularity"), "validity_params": t.get("validity_params")}));
                json!({"name": x.get("name"), "type": x.get("type"), "description": x.get("description"), "label": x.get("label"),
                       "is_partition": get_or(x, "is_partition", json!(false)), "type_params": type_params,
                       "expr": text(x.get("expr")), "metadata": null, "config": config_with(x, meta())})
            })
            .collect();
        for (x, written) in measure_list.iter().zip(list(&d.value, "measures")) {
            if let Some(mn) = x["name"].as_str() {
                measures.entry(mn.to_string()).or_insert_with(|| unique_id.clone());
                // dbt makes the metric and lists the measure with `create_metric: false`.
                if written.get("create_metric") == Some(&json!(true)) {
                    measure_metrics.push((d.clone(), x.clone()));
                }
            }
        }
        for (k, v) in [
            ("model", json!(model_text)),
            ("node_relation", Json::Null),
            ("description", get_or(&d.value, "description", Json::Null)),
            ("label", get_or(&d.value, "label", Json::Null)),
            ("defaults", get_or(&d.value, "defaults", Json::Null)),
            ("entities", json!(entities)),
            ("measures", json!(measure_list)),
            ("dimensions", json!(dimensions)),
            ("metadata", Json::Null),
            ("depends_on", json!({"macros": [], "nodes": [model]})),
            ("refs", json!([ref_json(call)])),
            ("created_at", json!(0.0)),
            ("config", config_with(&d.value, json!({"enabled": true, "group": null, "meta": {}}))),
            ("unrendered_config", json!({})),
            ("primary_entity", get_or(&d.value, "primary_entity", Json::Null)),
            ("group", get_or(&d.value, "group", Json::Null)),
        ] {
            m.insert(k.into(), v);
        }
        let r =
            Resource { unique_id, kind: Kind::SemanticModel, entry: m, depends_on: vec![model.clone()], model: Some(model), position: 0 };
        insert(&mut out, &d, r)?;
    }

    // Metrics: declared ones, then one per measure with `create_metric: true`.
    let mut metric_decls: Vec<(Declared, Json)> = take(&mut by_kind, Kind::Metric).into_iter().map(|d| (d.clone(), d.value)).collect();
    for (mut d, x) in measure_metrics {
        d.kind = Kind::Metric;
        let name = x["name"].clone();
        let label = if x["label"].is_null() { name.clone() } else { x["label"].clone() };
        let description = match &x["description"] {
            Json::Null => json!(format!("Metric created from measure {}", name.as_str().unwrap_or_default())),
            given => given.clone(),
        };
        metric_decls.push((
            d,
            json!({"name": name, "label": label, "description": description, "type": "simple",
                   "type_params": {"measure": name, "expr": x["expr"]}, MEASURE_METRIC: true}),
        ));
    }
    // Metrics other metrics can name: the enabled ones.
    let metric_defs: BTreeMap<String, Json> = metric_decls
        .iter()
        .filter(|(_, v)| v.get("config").and_then(|c| c.get("enabled")) != Some(&Json::Bool(false)))
        .filter_map(|(_, v)| Some((v.get("name")?.as_str()?.to_string(), v.clone())))
        .collect();
    for (d, v) in &metric_decls {
        let d = Declared { value: v.clone(), ..d.clone() };
        let name = name_of(&d)?;
        let (unique_id, mut m) = head(&d, &name);
        let tp = v.get("type_params").cloned().unwrap_or(json!({}));
        let kind = v.get("type").and_then(Json::as_str).unwrap_or("simple").to_ascii_lowercase();
        let mut seen = BTreeSet::new();
        let inputs = input_measures(&d, &name, v, &metric_defs, &mut seen)?;
        let mut depends_on: Vec<String> = Vec::new();
        let mut push = |id: String| {
            if !depends_on.contains(&id) {
                depends_on.push(id);
            }
        };
        let metric_id = |n: &str| format!("metric.{}.{n}", d.package);
        let metric_inputs = |key: &str| list(&tp, key).map(metric_input).collect::<Vec<_>>();
        match kind.as_str() {
            "ratio" => {
                for k in ["numerator", "denominator"] {
                    if let Some(n) = tp.get(k).map(metric_input).and_then(|i| i["name"].as_str().map(str::to_string)) {
                        push(metric_id(&n));
                    }
                }
            }
            "derived" => {
                for i in metric_inputs("metrics") {
                    if let Some(n) = i["name"].as_str() {
                        push(metric_id(n));
                    }
                }
            }
            _ => {
                for n in inputs.iter().filter_map(|i| i["name"].as_str()) {
                    let Some(sm) = measures.get(n) else {
                        return Err(invalid(
                            &d,
                            format!("metric `{name}` uses measure `{n}`, which no semantic model defines"),
                            "define the measure under a semantic model's `measures:`",
                        ));
                    };
                    push(sm.clone());
                }
            }
        }
        let cumulative = (kind == "cumulative").then(|| {
            let c = tp.get("cumulative_type_params").cloned().unwrap_or(json!({}));
            json!({"window": time_window(c.get("window").or(tp.get("window"))),
                   "grain_to_date": c.get("grain_to_date").or(tp.get("grain_to_date")),
                   "period_agg": get_or(&c, "period_agg", json!("first")), "metric": null})
        });
        let conversion = tp.get("conversion_type_params").filter(|c| !c.is_null()).map(|c| {
            json!({"base_measure": measure_input(c.get("base_measure").unwrap_or(&Json::Null)),
                   "conversion_measure": measure_input(c.get("conversion_measure").unwrap_or(&Json::Null)),
                   "entity": c.get("entity"), "calculation": get_or(c, "calculation", json!("conversion_rate")),
                   "window": time_window(c.get("window")), "constant_properties": c.get("constant_properties")})
        });
        let type_params = json!({
            "measure": tp.get("measure").filter(|x| !x.is_null()).map(measure_input),
            "input_measures": inputs,
            "numerator": tp.get("numerator").filter(|x| !x.is_null()).map(metric_input),
            "denominator": tp.get("denominator").filter(|x| !x.is_null()).map(metric_input),
            "expr": text(tp.get("expr")),
            "window": time_window(tp.get("window")),
            "grain_to_date": tp.get("grain_to_date"),
            "metrics": metric_inputs("metrics"),
            "conversion_type_params": conversion,
            "cumulative_type_params": cumulative,
            "metric_aggregation_params": null,
        });
        let tags = tags_of(v.get("tags").or_else(|| v.get("config").and_then(|c| c.get("tags"))));
        for (k, x) in [
            ("description", get_or(v, "description", json!(""))),
            ("label", get_or(v, "label", Json::Null)),
            ("type", json!(kind)),
            ("type_params", type_params),
            ("filter", where_filters(v.get("filter"))),
            ("metadata", Json::Null),
            ("time_granularity", get_or(v, "time_granularity", Json::Null)),
            ("meta", get_or(v, "meta", json!({}))),
            ("tags", json!(tags)),
            ("config", config_with(v, json!({"enabled": true, "group": null, "meta": {}}))),
            ("unrendered_config", if v.get(MEASURE_METRIC).is_some() { json!({"enabled": true, "meta": {}}) } else { written_config(v) }),
            ("sources", json!([])),
            ("depends_on", json!({"macros": [], "nodes": depends_on})),
            ("refs", json!([])),
            ("metrics", json!([])),
            ("created_at", json!(0.0)),
            ("group", get_or(v, "group", Json::Null)),
        ] {
            m.insert(k.into(), x);
        }
        insert(&mut out, &d, Resource { unique_id, kind: Kind::Metric, entry: m, depends_on, model: None, position: 0 })?;
    }

    let target = project.profile.outputs.get(&project.active_target);
    for d in take(&mut by_kind, Kind::SavedQuery) {
        let name = name_of(&d)?;
        let (unique_id, mut m) = head(&d, &name);
        let q = d.value.get("query_params").cloned().unwrap_or(json!({}));
        let metrics: Vec<String> = list(&q, "metrics").filter_map(|x| x.as_str().map(str::to_string)).collect();
        let mut depends_on = Vec::new();
        for mname in &metrics {
            let id = format!("metric.{}.{mname}", d.package);
            if !out.resources.contains_key(&id) {
                return Err(invalid(
                    &d,
                    format!("saved query `{name}` uses metric `{mname}`, which is not defined"),
                    "define the metric under `metrics:`",
                ));
            }
            if !depends_on.contains(&id) {
                depends_on.push(id);
            }
        }
        let exports: Vec<Json> = list(&d.value, "exports")
            .map(|e| {
                let c = e.get("config").cloned().unwrap_or(json!({}));
                json!({"name": e.get("name"),
                       "config": {"export_as": c.get("export_as"),
                                  "schema_name": c.get("schema").cloned().unwrap_or_else(|| json!(target.map(|o| o.schema.clone()))),
                                  "alias": c.get("alias").or(e.get("name")),
                                  "database": target.and_then(|o| o.database.clone())},
                       "unrendered_config": c})
            })
            .collect();
        let query_params = json!({
            "metrics": metrics, "group_by": get_or(&q, "group_by", json!([])), "where": where_filters(q.get("where")),
            "order_by": get_or(&q, "order_by", json!([])), "limit": get_or(&q, "limit", Json::Null),
        });
        let config = config_with(
            &d.value,
            json!({"enabled": true, "group": null, "meta": {}, "export_as": null, "schema": null, "cache": {"enabled": false}}),
        );
        let tags = tags_of(d.value.get("tags"));
        for (k, x) in [
            ("query_params", query_params),
            ("exports", json!(exports)),
            ("description", get_or(&d.value, "description", Json::Null)),
            ("label", get_or(&d.value, "label", Json::Null)),
            ("metadata", Json::Null),
            ("config", config),
            ("unrendered_config", json!({})),
            ("group", get_or(&d.value, "group", Json::Null)),
            ("depends_on", json!({"macros": [], "nodes": depends_on})),
            ("created_at", json!(0.0)),
            ("refs", json!([])),
            ("tags", json!(tags)),
        ] {
            m.insert(k.into(), x);
        }
        insert(&mut out, &d, Resource { unique_id, kind: Kind::SavedQuery, entry: m, depends_on, model: None, position: 0 })?;
    }

    for d in take(&mut by_kind, Kind::Exposure) {
        let name = name_of(&d)?;
        let (unique_id, mut m) = head(&d, &name);
        let mut ref_calls = Vec::new();
        let mut source_calls = Vec::new();
        for dep in list(&d.value, "depends_on").filter_map(Json::as_str) {
            let (r, s) = calls_in(dep);
            ref_calls.extend(r);
            source_calls.extend(s);
        }
        let mut depends_on = Vec::new();
        for (s, t) in &source_calls {
            let id = source_id(s, t).ok_or_else(|| {
                DvtError::new(ErrorCode::RefNotFound, format!("exposure `{name}` depends on source `{s}.{t}`, which is not defined"))
                    .at(Location::new(&d.file, d.line, 0))
                    .hint("declare the source under `sources:`")
            })?;
            if !depends_on.contains(&id) {
                depends_on.push(id);
            }
        }
        for call in &ref_calls {
            let id = resolve_ref(&d, call, &format!("exposure `{name}`"))?;
            if !depends_on.contains(&id) {
                depends_on.push(id);
            }
        }
        let given_tags = d.value.get("tags").or_else(|| d.value.get("config").and_then(|c| c.get("tags")));
        let tags = tags_of(given_tags);
        let owner = d.value.get("owner").cloned().unwrap_or(json!({}));
        let meta = d.value.get("meta").or_else(|| d.value.get("config").and_then(|c| c.get("meta"))).cloned().unwrap_or(json!({}));
        let mut config = config_with(&d.value, json!({"enabled": true, "tags": [], "meta": {}}));
        config["tags"] = json!(tags);
        config["meta"] = meta.clone();
        let mut unrendered = d.value.get("config").and_then(Json::as_object).cloned().unwrap_or_default();
        if given_tags.is_some() {
            unrendered.insert("tags".into(), json!(tags));
        }
        for (k, x) in [
            ("type", d.value.get("type").cloned().unwrap_or(Json::Null)),
            ("owner", json!({"email": owner.get("email"), "name": owner.get("name")})),
            ("description", get_or(&d.value, "description", json!(""))),
            ("label", get_or(&d.value, "label", Json::Null)),
            ("maturity", get_or(&d.value, "maturity", Json::Null)),
            ("meta", meta),
            ("tags", json!(tags)),
            ("config", config),
            ("unrendered_config", Json::Object(unrendered)),
            ("url", get_or(&d.value, "url", Json::Null)),
            ("depends_on", json!({"macros": [], "nodes": depends_on})),
            ("refs", json!(ref_calls.iter().map(ref_json).collect::<Vec<_>>())),
            ("sources", json!(source_calls.iter().map(|(s, t)| json!([s, t])).collect::<Vec<_>>())),
            ("metrics", json!([])),
            ("created_at", json!(0.0)),
        ] {
            m.insert(k.into(), x);
        }
        insert(&mut out, &d, Resource { unique_id, kind: Kind::Exposure, entry: m, depends_on, model: None, position: 0 })?;
    }
    Ok(out)
}

/// Tags given as a string or a list.
fn tags_of(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) => a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

fn list<'a>(v: &'a Json, key: &str) -> impl Iterator<Item = &'a Json> {
    v.get(key).and_then(Json::as_array).into_iter().flatten()
}

/// A measure named by a metric (`measure: x` or `{name: x, filter: …}`): dbt's `MetricInputMeasure`.
fn measure_input(v: &Json) -> Json {
    match v {
        Json::Object(m) => json!({
            "name": m.get("name"), "filter": where_filters(m.get("filter")), "alias": m.get("alias"),
            "join_to_timespine": m.get("join_to_timespine").cloned().unwrap_or(json!(false)),
            "fill_nulls_with": m.get("fill_nulls_with"),
        }),
        other => json!({"name": other.as_str(), "filter": null, "alias": null, "join_to_timespine": false, "fill_nulls_with": null}),
    }
}

/// A metric named by a ratio or derived metric: dbt's `MetricInput`.
fn metric_input(v: &Json) -> Json {
    match v {
        Json::Object(m) => json!({
            "name": m.get("name"), "filter": where_filters(m.get("filter")), "alias": m.get("alias"),
            "offset_window": time_window(m.get("offset_window")), "offset_to_grain": m.get("offset_to_grain"),
        }),
        other => json!({"name": other.as_str(), "filter": null, "alias": null, "offset_window": null, "offset_to_grain": null}),
    }
}

fn agg_params(v: Option<&Json>) -> Json {
    match v {
        Some(p @ Json::Object(_)) => json!({
            "percentile": p.get("percentile"),
            "use_discrete_percentile": get_or(p, "use_discrete_percentile", json!(false)),
            "use_approximate_percentile": get_or(p, "use_approximate_percentile", json!(false)),
        }),
        _ => Json::Null,
    }
}

fn non_additive(v: Option<&Json>) -> Json {
    match v {
        Some(n @ Json::Object(_)) => json!({
            "name": n.get("name"), "window_choice": get_or(n, "window_choice", json!("min")),
            "window_groupings": get_or(n, "window_groupings", json!([])),
        }),
        _ => Json::Null,
    }
}

/// The measures a metric reads, through the metrics it is made of, each once.
fn input_measures(d: &Declared, name: &str, v: &Json, defs: &BTreeMap<String, Json>, seen: &mut BTreeSet<String>) -> Result<Vec<Json>> {
    if !seen.insert(name.to_string()) {
        return Err(invalid(d, format!("metric `{name}` is defined in terms of itself"), "remove the cycle between the metrics"));
    }
    let tp = v.get("type_params").cloned().unwrap_or(json!({}));
    let mut out: Vec<Json> = Vec::new();
    let mut add = |m: Json| {
        if !out.contains(&m) {
            out.push(m);
        }
    };
    let kind = v.get("type").and_then(Json::as_str).unwrap_or("simple").to_ascii_lowercase();
    match kind.as_str() {
        "ratio" | "derived" => {
            let names: Vec<String> = ["numerator", "denominator"]
                .iter()
                .filter_map(|k| tp.get(*k))
                .chain(list(&tp, "metrics"))
                .filter_map(|x| metric_input(x)["name"].as_str().map(str::to_string))
                .collect();
            for n in names {
                let Some(def) = defs.get(&n) else {
                    return Err(invalid(
                        d,
                        format!("metric `{name}` uses metric `{n}`, which is not defined or is disabled"),
                        "define it under `metrics:`",
                    ));
                };
                for m in input_measures(d, &n, def, defs, seen)? {
                    add(m);
                }
            }
        }
        "conversion" => {
            let c = tp.get("conversion_type_params").cloned().unwrap_or(json!({}));
            for k in ["base_measure", "conversion_measure"] {
                if let Some(x) = c.get(k) {
                    add(measure_input(x));
                }
            }
        }
        _ => {
            if let Some(x) = tp.get("measure") {
                add(measure_input(x));
            }
        }
    }
    seen.remove(name);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_filters_take_dbt_shapes() {
        assert_eq!(time_window(Some(&json!("1 month"))), json!({"count": 1, "granularity": "month"}));
        assert_eq!(time_window(Some(&json!("30 days"))), json!({"count": 30, "granularity": "day"}));
        assert_eq!(time_window(None), Json::Null);
        assert_eq!(where_filters(Some(&json!("x > 1"))), json!({"where_filters": [{"where_sql_template": "x > 1"}]}));
        assert_eq!(where_filters(Some(&json!(["a", "b"])))["where_filters"].as_array().map(Vec::len), Some(2));
        assert_eq!(text(Some(&json!(1))), json!("1"));
    }
}
