//! Properties YAML (`models:`, `sources:`, `seeds:`, `snapshots:`, …) as written.

use crate::yaml::Lined;
use serde::Deserialize;
use serde_json::Value as Json;

/// One properties file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PropertiesFile {
    pub version: Option<Json>,
    pub models: Vec<NodePatch>,
    pub seeds: Vec<NodePatch>,
    pub snapshots: Vec<NodePatch>,
    pub analyses: Vec<NodePatch>,
    pub sources: Vec<SourceGroup>,
    pub macros: Vec<Json>,
    pub exposures: Vec<Json>,
    pub metrics: Vec<Json>,
    pub semantic_models: Vec<Json>,
    pub saved_queries: Vec<Json>,
    pub groups: Vec<Json>,
    pub unit_tests: Vec<Json>,
}

/// Properties of a model, seed, snapshot or analysis.
#[derive(Debug, Deserialize)]
pub struct NodePatch {
    pub name: Lined<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    pub columns: Vec<ColumnProps>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub meta: Option<Json>,
    #[serde(default)]
    pub tags: Option<Json>,
    #[serde(default)]
    pub docs: Option<Json>,
    /// Model-level constraints (`- type: primary_key, columns: [a, b]`), for contracts.
    #[serde(default)]
    pub constraints: Option<Json>,
    /// Model versions (`- v: 2`, with `defined_in`, `config`, `columns`, `tests`).
    #[serde(default)]
    pub versions: Option<Vec<Json>>,
    #[serde(default)]
    pub latest_version: Option<Json>,
    /// MetricFlow's `time_spine: {standard_granularity_column: …}`.
    #[serde(default)]
    pub time_spine: Option<Json>,
    /// `private`, `protected` (default) or `public`.
    #[serde(default)]
    pub access: Option<Json>,
    #[serde(default)]
    pub group: Option<Json>,
}

/// A documented column.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnProps {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub data_type: Option<String>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub tags: Option<Json>,
    /// Column constraints (`- type: not_null`, `- type: check, expression: …`), for contracts.
    #[serde(default)]
    pub constraints: Vec<Json>,
    #[serde(default)]
    pub meta: Option<serde_json::Map<String, Json>>,
    /// `config: {meta: …, tags: …}` (dbt 1.10+ spelling of the same).
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Json>>,
    /// A time spine column's granularity (MetricFlow).
    #[serde(default)]
    pub granularity: Option<String>,
}

/// A source group.
#[derive(Debug, Deserialize)]
pub struct SourceGroup {
    pub name: Lined<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// What loads the source's tables (`fivetran`, …), informational.
    #[serde(default)]
    pub loader: Option<String>,
    #[serde(default)]
    pub connection: Option<Lined<String>>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default, alias = "catalog")]
    pub schema: Option<String>,
    #[serde(default)]
    pub tags: Option<Json>,
    #[serde(default)]
    pub meta: Option<Json>,
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    pub freshness: Option<Json>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    #[serde(default)]
    pub quoting: Option<Json>,
    #[serde(default)]
    pub tables: Vec<SourceTable>,
}

/// A table of a source group.
#[derive(Debug, Deserialize)]
pub struct SourceTable {
    pub name: Lined<String>,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub columns: Vec<ColumnProps>,
    #[serde(default, alias = "data_tests")]
    pub tests: Vec<Json>,
    #[serde(default)]
    pub tags: Option<Json>,
    #[serde(default)]
    pub meta: Option<Json>,
    #[serde(default)]
    pub config: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    pub freshness: Option<Json>,
    #[serde(default)]
    pub loaded_at_field: Option<String>,
    #[serde(default)]
    pub quoting: Option<Json>,
    /// Files in a bucket (`location`, `format`), for sources whose `connection:` is a bucket.
    #[serde(default)]
    pub external: Option<Json>,
}

/// Tags given as a string or a list.
pub fn tag_list(v: &Option<Json>) -> Vec<String> {
    match v {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) => a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}
