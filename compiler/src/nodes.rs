//! The loaded project: nodes, sources and the packages they come from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::Value as Json;

use crate::config::Config;
use crate::jinja::RefCall;
use crate::profiles::{Bucket, Compute, Profile, Registry};
use crate::project::ProjectFile;

/// The kinds of node a project defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub enum ResourceType {
    #[default]
    Model,
    Seed,
    Snapshot,
    Test,
    Analysis,
    Source,
    /// A dbt 1.8 unit test (`unit_tests:` in properties YAML).
    UnitTest,
}

impl ResourceType {
    /// All types, in the order counts are printed.
    pub const ALL: [ResourceType; 7] = [
        ResourceType::Model,
        ResourceType::Seed,
        ResourceType::Snapshot,
        ResourceType::Test,
        ResourceType::Analysis,
        ResourceType::Source,
        ResourceType::UnitTest,
    ];

    /// Name as used in unique ids and `--resource-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Model => "model",
            ResourceType::Seed => "seed",
            ResourceType::Snapshot => "snapshot",
            ResourceType::Test => "test",
            ResourceType::Analysis => "analysis",
            ResourceType::Source => "source",
            ResourceType::UnitTest => "unit_test",
        }
    }

    /// Parses a `--resource-type` value.
    pub fn parse(s: &str) -> Option<ResourceType> {
        Some(match s {
            "model" | "models" => ResourceType::Model,
            "seed" | "seeds" => ResourceType::Seed,
            "snapshot" | "snapshots" => ResourceType::Snapshot,
            "test" | "tests" | "data_test" | "data_tests" => ResourceType::Test,
            "unit_test" | "unit_tests" => ResourceType::UnitTest,
            "analysis" | "analyses" => ResourceType::Analysis,
            "source" | "sources" => ResourceType::Source,
            _ => return None,
        })
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A documented column.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    pub description: String,
    pub data_type: Option<String>,
    pub tags: Vec<String>,
    /// Constraints as written in YAML (`{type: not_null}`, …), for contracts.
    pub constraints: Vec<Json>,
    /// Order of declaration in the properties file.
    pub position: usize,
    /// `meta:` and `config: {meta:}` merged (the latter wins), as dbt merges them.
    pub meta: serde_json::Map<String, Json>,
    /// A time spine column's `granularity:` (MetricFlow).
    pub granularity: Option<String>,
    /// Docs blocks its description calls (`doc_blocks` in dbt's manifest).
    #[serde(default)]
    pub doc_blocks: Vec<String>,
}

/// Nodes `ref()` can name, by (package, name) and version: an unversioned `ref`
/// names a versioned model's latest version.
#[derive(Debug, Clone, Default)]
pub struct RefIndex {
    /// package → name → the latest (or only) version's unique id.
    latest: FastMap<String, FastMap<String, String>>,
    /// package → (name, version) → unique id.
    versions: FastMap<String, FastMap<(String, String), String>>,
}

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

impl RefIndex {
    /// Indexes the ref-able nodes (models, seeds, snapshots) among `nodes`.
    pub fn new<'a>(nodes: impl Iterator<Item = &'a Node>) -> Self {
        let mut ix = RefIndex::default();
        for n in nodes.filter(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed | ResourceType::Snapshot)) {
            let latest = ix.latest.entry(n.package.clone()).or_default();
            if let Some(v) = &n.version {
                ix.versions.entry(n.package.clone()).or_default().insert((n.name.clone(), v.clone()), n.unique_id.clone());
                if n.latest_version.as_ref() == Some(v) {
                    latest.insert(n.name.clone(), n.unique_id.clone());
                }
            } else {
                latest.entry(n.name.clone()).or_insert_with(|| n.unique_id.clone());
            }
        }
        ix
    }

    /// The node `ref()` names in `package`: a version when given, else the latest (or only) one.
    pub fn get(&self, package: &str, name: &str, version: Option<&str>) -> Option<&String> {
        match version {
            Some(v) => self.versions.get(package)?.get(&(name.to_string(), v.trim_matches(|c| c == '"' || c == '\'').to_string())),
            None => self.latest.get(package)?.get(name),
        }
    }

    /// Resolves a call from a node of package `from`: its own package, the root, then the others in order.
    pub fn find(&self, from: &str, root: &str, order: &[String], call: &RefCall) -> Option<&String> {
        let v = call.version.as_deref();
        match &call.package {
            Some(p) => self.get(p, &call.name, v),
            None => self
                .get(from, &call.name, v)
                .or_else(|| self.get(root, &call.name, v))
                .or_else(|| order.iter().find_map(|p| self.get(p, &call.name, v))),
        }
    }
}

/// A unit test as declared (dbt 1.8 `unit_tests:`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UnitTest {
    /// Unique id of the model under test.
    pub model: String,
    /// Fixtures: (unique id of the input, or `this`; format; rows as written).
    pub given: Vec<(String, String, Json)>,
    /// Expected rows: (format, rows as written).
    pub expect: (String, Json),
    /// `overrides:` (`macros`, `vars`, `env_vars`).
    pub overrides: Json,
    /// Line of the test's `name:` in its properties file.
    pub line: u32,
}

/// A generic test's origin.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TestInfo {
    /// Test name without `test_` (e.g. `unique`).
    pub name: String,
    /// `dbt_utils` in `dbt_utils.expression_is_true`.
    pub namespace: Option<String>,
    /// Arguments as written (without `config`/`name`).
    pub kwargs: crate::sorted_map::SortedMap<String, Json>,
    /// Declared under `arguments:` (dbt 1.10), whose Jinja strings render to native
    /// values (`"{{ var('types') }}"` is the list); top-level arguments render to text.
    pub native_args: bool,
    /// Tested model/seed/snapshot/source.
    pub attached_node: String,
    pub column_name: Option<String>,
}

/// A model, seed, snapshot, test or analysis.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub unique_id: String,
    pub resource_type: ResourceType,
    pub package: String,
    pub name: String,
    pub fqn: Vec<String>,
    /// File, relative to the root project, `/`-separated.
    pub file: String,
    /// Jinja-SQL as written (snapshot: the block body; generic test: empty).
    pub raw: String,
    /// Line where `raw` starts in `file` (snapshot blocks start later).
    pub raw_line: u32,
    pub config: Config,
    pub description: String,
    pub columns: crate::sorted_map::SortedMap<String, Column>,
    /// `ref()` calls with the line they appear on.
    pub refs: Vec<(RefCall, u32)>,
    /// `source()` calls with their line.
    pub source_calls: Vec<(String, String, u32)>,
    /// Resolved upstream unique ids, sorted.
    pub depends_on: Vec<String>,
    /// Macros called, sorted.
    pub macros: Vec<String>,
    /// Set when rendering needs a live database, with the reason.
    pub runtime_only: Option<String>,
    /// Boxed, as the other parts most nodes lack: nodes stay small to move and to hold by the 10,000.
    pub test: Option<Box<TestInfo>>,
    /// For seeds: absolute path of the data file (never written to artifacts).
    pub seed_path: Option<PathBuf>,
    /// For Python models (`.py`): what the file declares (`raw` is the Python source).
    pub python: Option<Box<crate::loader::python::PythonModel>>,
    /// For unit tests: the model, its fixtures and the expected rows.
    pub unit: Option<Box<UnitTest>>,
    /// A versioned model's version (`versions: [{v: 2}]`), and its model's latest version.
    pub version: Option<String>,
    pub latest_version: Option<String>,
    /// A model's `time_spine:` (MetricFlow), as its properties declare it.
    pub time_spine: Option<Box<Json>>,
    /// `config` before the file's own `config()` calls were applied, when it has some.
    #[serde(default)]
    pub config_before_render: Option<Config>,
    /// The properties file that describes the node, as dbt writes `patch_path`
    /// (`<package>://models/_models.yml`).
    #[serde(default)]
    pub patch_path: Option<String>,
    /// Docs blocks its description calls (`doc_blocks` in dbt's manifest).
    #[serde(default)]
    pub doc_blocks: Vec<String>,
    /// A model's key as its tests imply it (see `manifest_dbt`'s `primary_key`).
    #[serde(default)]
    pub test_key: Vec<String>,
}

/// One table of a source group.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Source {
    pub unique_id: String,
    pub package: String,
    pub source_name: String,
    pub name: String,
    pub identifier: String,
    pub database: Option<String>,
    pub schema: String,
    /// Output the source lives on.
    pub connection: String,
    /// `config` when declared, `default` when it follows the active target.
    pub connection_level: dvt_schema::plan::Level,
    pub fqn: Vec<String>,
    pub file: String,
    pub line: u32,
    pub description: String,
    pub columns: crate::sorted_map::SortedMap<String, Column>,
    pub tags: Vec<String>,
    pub config: Config,
    /// Quoting of its name: the source's `quoting:`, then the table's.
    pub quote: crate::dialect::QuotePolicy,
    /// The files of a source whose `connection:` is a bucket.
    pub external: Option<dvt_schema::plan::ExternalFiles>,
    /// The source group's description (rendered) and `loader:`, as dbt lists them.
    #[serde(default)]
    pub source_description: String,
    #[serde(default)]
    pub loader: String,
}

/// A package (the root project or a dependency).
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub root: PathBuf,
    /// Path prefix from the root project to this package (`""` for the root).
    pub rel: String,
    pub file: ProjectFile,
}

/// Everything `dvtc parse` loads.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub name: String,
    /// Root first, then dependencies by name.
    pub packages: Vec<Package>,
    pub profile: Profile,
    /// Output the run targets by default (CLI `--target` or the profile default).
    pub active_target: String,
    /// Whether `--target` was given.
    pub target_from_cli: bool,
    pub computes: Registry<Compute>,
    pub buckets: Registry<Bucket>,
    /// Enabled nodes by unique id.
    pub nodes: BTreeMap<String, Node>,
    /// Disabled nodes by unique id (kept to explain refs to them).
    pub disabled: BTreeMap<String, Node>,
    pub sources: BTreeMap<String, Source>,
    /// Docs blocks by `(package, name)`.
    pub docs: BTreeMap<(String, String), String>,
    pub macros: Vec<crate::jinja::MacroDef>,
    pub vars: std::sync::Arc<crate::jinja::Vars>,
    /// `selectors.yml` definitions by name.
    pub selectors: BTreeMap<String, Json>,
    /// Exposures, groups, semantic models, metrics and saved queries.
    pub semantic: crate::semantic::Semantic,
    /// Non-fatal problems found while loading.
    pub warnings: Vec<String>,
}

impl Project {
    /// The root package.
    pub fn root_package(&self) -> &Package {
        &self.packages[0]
    }

    /// A node or source's fqn, tags and file, for selection.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }
}
