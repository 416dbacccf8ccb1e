//! The manifest written by `dvtc parse`: every node of the project, as loaded.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the manifest format (semver). Bump the major on a breaking change.
pub const MANIFEST_VERSION: &str = "1.0.0";

/// The parsed project: nodes, sources, macros and the edges between them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Manifest {
    /// Format version, see [`MANIFEST_VERSION`].
    pub manifest_version: String,
    /// Name of the root project.
    pub project_name: String,
    /// Models, seeds, snapshots, tests and analyses by unique id.
    pub nodes: BTreeMap<String, ManifestNode>,
    /// Sources by unique id (`source.<package>.<source>.<table>`).
    pub sources: BTreeMap<String, ManifestSource>,
    /// Macros by unique id (`macro.<package>.<name>`).
    pub macros: BTreeMap<String, ManifestMacro>,
    /// Docs blocks by unique id (`doc.<package>.<name>`).
    pub docs: BTreeMap<String, String>,
    /// Upstream unique ids of every node.
    pub parent_map: BTreeMap<String, Vec<String>>,
    /// Downstream unique ids of every node and source.
    pub child_map: BTreeMap<String, Vec<String>>,
    /// Node counts by resource type, as `dvtc parse` prints them.
    pub counts: BTreeMap<String, usize>,
}

/// One model, seed, snapshot, test or analysis.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ManifestNode {
    /// `<resource_type>.<package>.<name>` (tests get a hash suffix).
    pub unique_id: String,
    /// `model`, `seed`, `snapshot`, `test` or `analysis`.
    pub resource_type: String,
    /// Package that defines the node.
    pub package_name: String,
    /// Node name (file stem, or generated for generic tests).
    pub name: String,
    /// Fully qualified name: package, folders, name.
    pub fqn: Vec<String>,
    /// File that defines the node, relative to the root project, `/`-separated.
    pub original_file_path: String,
    /// Effective configuration after project, YAML and `config()` merging.
    pub config: BTreeMap<String, serde_json::Value>,
    /// Tags (also in `config.tags`), sorted.
    pub tags: Vec<String>,
    /// Description from the properties YAML, with `doc()` rendered.
    pub description: String,
    /// Documented columns.
    pub columns: BTreeMap<String, ManifestColumn>,
    /// Upstream nodes, sources and macros.
    pub depends_on: DependsOn,
    /// The Jinja-SQL as written (empty for seeds and generic tests).
    pub raw_code: String,
    /// True when rendering needs a live database (`run_query`, `statement`, …).
    pub render_at_runtime: bool,
    /// For generic tests: the test macro and its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_metadata: Option<TestMetadata>,
    /// For tests: the node the test is attached to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_node: Option<String>,
    /// For column tests: the tested column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_name: Option<String>,
}

/// Upstream dependencies of a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DependsOn {
    /// Unique ids of upstream nodes and sources, sorted.
    pub nodes: Vec<String>,
    /// Unique ids of macros called while rendering, sorted.
    pub macros: Vec<String>,
}

/// A generic test's macro and arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TestMetadata {
    /// Test name without the `test_` prefix (e.g. `unique`).
    pub name: String,
    /// Package the test macro was asked from, if qualified (`dbt_utils.x`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Arguments as written in YAML.
    pub kwargs: BTreeMap<String, serde_json::Value>,
}

/// A documented column.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ManifestColumn {
    /// Column name as written.
    pub name: String,
    /// Description with `doc()` rendered.
    pub description: String,
    /// Declared data type, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

/// One table of a source group.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ManifestSource {
    /// `source.<package>.<source>.<table>`.
    pub unique_id: String,
    /// Package that declares the source.
    pub package_name: String,
    /// Source group name.
    pub source_name: String,
    /// Table name as referenced in `source()`.
    pub name: String,
    /// Physical identifier (defaults to `name`).
    pub identifier: String,
    /// Database, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Schema (defaults to the source name).
    pub schema: String,
    /// Output of `profiles.yml` the source lives on.
    pub connection: String,
    /// Whether the connection came from the source (`config`) or the active target (`default`).
    pub connection_level: String,
    /// Fully qualified name.
    pub fqn: Vec<String>,
    /// YAML file that declares the source.
    pub original_file_path: String,
    /// Description with `doc()` rendered.
    pub description: String,
    /// Documented columns.
    pub columns: BTreeMap<String, ManifestColumn>,
    /// Tags of the group and the table, sorted.
    pub tags: Vec<String>,
    /// Source config (`enabled`, `meta`, `freshness`, …).
    pub config: BTreeMap<String, serde_json::Value>,
}

/// A macro, by package.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ManifestMacro {
    /// `macro.<package>.<name>`.
    pub unique_id: String,
    /// Package that defines the macro (`dbt` for built-ins).
    pub package_name: String,
    /// Macro name (`test_<name>` for generic tests).
    pub name: String,
    /// File that defines the macro (empty for built-ins).
    pub original_file_path: String,
}
