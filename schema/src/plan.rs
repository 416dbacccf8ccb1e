//! The execution plan written by `dvtc compile`: for every node, where it
//! runs, how, and the exact SQL. This is DVT's contract with `dvtr` and with
//! external tools; see `schema/README.md` for the compatibility policy.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the plan format (semver). Readers accept the same major version.
pub const PLAN_VERSION: &str = "1.4.0";

/// A compiled project.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Plan {
    /// Format version, see [`PLAN_VERSION`].
    pub plan_version: String,
    /// Root project name.
    pub project_name: String,
    /// How the plan was asked for (flags that change its content).
    pub invocation: Invocation,
    /// Outputs of `profiles.yml` the plan touches, without credentials.
    pub targets: BTreeMap<String, PlanTarget>,
    /// Compute engines used by federated nodes.
    pub computes: BTreeMap<String, PlanCompute>,
    /// Staging buckets used by federated nodes and seeds.
    pub buckets: BTreeMap<String, PlanBucket>,
    /// Sources read by selected nodes.
    pub sources: BTreeMap<String, PlanSource>,
    /// Selected nodes by unique id (boxed: plans of 20k nodes move them around cheaply).
    pub nodes: BTreeMap<String, Box<PlanNode>>,
    /// Unique ids in execution order (upstream first).
    pub order: Vec<String>,
    /// Warnings raised while compiling (coercions, fallbacks).
    pub warnings: Vec<PlanWarning>,
    /// The project's files, with `dvtc compile --bundle`: `dvtr execute` renders
    /// nodes that need the database and applies selection flags without the
    /// project folder. Since 1.4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Bundle>,
    /// `on-run-start` hooks of the project and its packages, in the order they
    /// run (packages by name, the root project last, as dbt). Since 1.5.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_run_start: Vec<RunHook>,
    /// `on-run-end` hooks, in the same order; rendered with `results` and `schemas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_run_end: Vec<RunHook>,
}

impl Plan {
    /// The plan with no nodes (written around them when they are streamed in).
    pub fn without_nodes(&self) -> Plan {
        // Every field named (no `..`): a field added to the plan must be added here.
        let Plan {
            plan_version,
            project_name,
            invocation,
            targets,
            computes,
            buckets,
            sources,
            nodes: _,
            order,
            warnings,
            bundle,
            on_run_start,
            on_run_end,
        } = self;
        Plan {
            plan_version: plan_version.clone(),
            project_name: project_name.clone(),
            invocation: invocation.clone(),
            targets: targets.clone(),
            computes: computes.clone(),
            buckets: buckets.clone(),
            sources: sources.clone(),
            nodes: BTreeMap::new(),
            order: order.clone(),
            warnings: warnings.clone(),
            bundle: bundle.clone(),
            on_run_start: on_run_start.clone(),
            on_run_end: on_run_end.clone(),
        }
    }

    /// The compiled SQL of a node or run hook by unique id.
    pub fn compiled_sql(&self, id: &str) -> Option<&str> {
        match self.nodes.get(id) {
            Some(n) => n.compiled_sql.as_deref(),
            None => self.on_run_start.iter().chain(&self.on_run_end).find(|h| h.unique_id == id)?.compiled_sql.as_deref(),
        }
    }
}

/// One `on-run-start`/`on-run-end` hook. `dvtr` renders it when it runs (on the
/// active target, with the run's `results` for `on-run-end`); without the
/// project, the plan's `compiled_sql` runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct RunHook {
    /// `operation.<package>.<package>-on-run-start-<index>`, as in dbt's manifest.
    pub unique_id: String,
    pub package_name: String,
    /// Position in the package's list.
    pub index: usize,
    /// The output it runs on (the active target).
    pub target: String,
    /// The hook as written (Jinja).
    pub template: String,
    /// Rendered at compile time, when it renders without the database.
    pub compiled_sql: Option<String>,
}

/// Project files by content hash. Connection files (`profiles.yml`,
/// `computes.yml`, `buckets.yml`) are never included: credentials stay where
/// the plan runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Bundle {
    /// Path relative to the project (`/`-separated) → SHA-256 of its content.
    pub files: BTreeMap<String, String>,
    /// SHA-256 (hex) → UTF-8 content.
    pub blobs: BTreeMap<String, String>,
}

/// Flags that shaped the plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Invocation {
    /// `--target`, if given.
    pub target: Option<String>,
    /// `--compute`, if given.
    pub compute: Option<String>,
    /// `--bucket`, if given.
    pub bucket: Option<String>,
    /// `--full-refresh`.
    pub full_refresh: bool,
    /// `--select` expressions.
    pub select: Vec<String>,
    /// `--exclude` expressions.
    pub exclude: Vec<String>,
    /// `--selector`, if given.
    pub selector: Option<String>,
    /// Names of `--vars` keys (values may be sensitive and are not recorded).
    pub var_names: Vec<String>,
}

/// An output (database connection) without credentials.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PlanTarget {
    /// Output name in `profiles.yml`.
    pub name: String,
    /// Adapter type (`postgres`, `mysql`, `sqlite`, `duckdb`, `snowflake`, `databricks`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Database (catalog), if the engine has one.
    pub database: Option<String>,
    /// Default schema.
    pub schema: String,
}

/// A compute engine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PlanCompute {
    pub name: String,
    /// `datafusion` or `ballista`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Bytes a federated node may hold in memory before it spills to its bucket
    /// (`memory_budget:` in computes.yml; absent: the runtime's default, 256 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget: Option<u64>,
}

/// A staging bucket (no credentials).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PlanBucket {
    pub name: String,
    /// `file`, `s3`, `gcs`, `azure`, or `local` for the implicit folder.
    #[serde(rename = "type")]
    pub kind: String,
    /// Location settings (bucket, prefix, region, endpoint, root, path).
    pub settings: BTreeMap<String, String>,
}

/// A source table and where it lives.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PlanSource {
    pub unique_id: String,
    pub source_name: String,
    pub name: String,
    /// Output the source lives on, and why.
    pub connection: Resolved<String>,
    /// The physical relation.
    pub relation: RelationRef,
    /// For a source in a bucket: the files that hold its rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalFiles>,
}

/// Files in a bucket read as one table (a source whose `connection:` is a bucket).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct ExternalFiles {
    /// A folder (every file under it) or one file, relative to the bucket's root.
    pub location: String,
    /// `parquet`, `csv` or `json` (newline-delimited).
    pub format: String,
    /// CSV: the field delimiter (default `,`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV: whether the first line names the columns (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
}

/// Which rule produced a resolved value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A command-line flag.
    Cli,
    /// The node's config (SQL `config()`, properties YAML or project file).
    Config,
    /// A default (profile default output, computes.yml/buckets.yml default, built-in).
    Default,
}

/// A resolved value and the level that won (SPEC §2).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Resolved<T> {
    pub value: T,
    pub level: Level,
}

/// A table or view in a database.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord)]
pub struct RelationRef {
    /// Output the relation lives on.
    pub target: String,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub identifier: String,
    /// The name as rendered in the target's dialect (quoted).
    pub rendered: String,
}

/// The execution path of a node (SPEC §2.6).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionPath {
    /// All upstreams live on the node's target: SQL runs there.
    Pushdown,
    /// Upstreams span databases: fragments are read and joined in the compute.
    Federation,
}

/// Requested vs effective materialization.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Materialization {
    /// As configured.
    pub requested: String,
    /// As executed.
    pub effective: String,
    /// Why they differ, if they do.
    pub coercion: Option<Coercion>,
}

/// A materialization change with its warning code.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Coercion {
    /// Stable warning code, e.g. `DVTW201`.
    pub code: String,
    pub reason: String,
}

/// One node of the plan.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PlanNode {
    pub unique_id: String,
    /// `model`, `seed`, `snapshot`, `test`, `analysis`.
    pub resource_type: String,
    pub name: String,
    pub package_name: String,
    pub fqn: Vec<String>,
    /// Defining file, relative to the project.
    pub file: String,
    /// Upstream unique ids.
    pub depends_on: Vec<String>,
    /// Where the node writes (tests and analyses: where they run), and why.
    pub target: Resolved<String>,
    /// The relation the node materializes into (none for tests, analyses, ephemerals).
    pub relation: Option<RelationRef>,
    /// Compute engine, for federated nodes.
    pub compute: Option<Resolved<String>>,
    /// Staging bucket, for federated nodes and seeds.
    pub bucket: Option<Resolved<String>>,
    pub materialization: Materialization,
    pub path: ExecutionPath,
    /// Where every upstream lives.
    pub upstreams: Vec<Upstream>,
    /// Set when the node needs a live database to render (reason); `dvtr` renders it then.
    pub render_at_runtime: Option<String>,
    /// `python` for Python models (their `compiled_sql` is the compiled Python); absent for SQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The node's rendered SELECT (ephemerals inlined), in the target's dialect.
    pub compiled_sql: Option<String>,
    /// Statements to run on the pushdown path.
    pub pushdown: Option<PushdownPlan>,
    /// Fragments and remainder on the federation path.
    pub federation: Option<Box<FederationPlan>>,
    /// How rows are written (incremental strategy, keys, schema changes).
    pub write: Option<WriteStrategy>,
    /// Tests attached to this node.
    pub tests: Vec<String>,
    /// For seeds: the data file.
    pub seed: Option<Box<SeedPlan>>,
    /// For tests: how failures count.
    pub test: Option<TestPlan>,
    /// Hooks run before/after the node, in order.
    pub pre_hooks: Vec<String>,
    pub post_hooks: Vec<String>,
    /// Hooks that may query the database while they render (they call `run_query`,
    /// `statement`, … directly or through macros): kept as Jinja and rendered by
    /// `dvtr` when the node runs, as dbt renders hooks. `pre_hooks`/`post_hooks`
    /// are then empty, so the hooks keep their order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_hooks: Option<Box<RuntimeHooks>>,
    /// An incremental model with `incremental_strategy: microbatch`: its
    /// statements hold [`MICROBATCH_START`]/[`MICROBATCH_END`] where the
    /// window's bounds go, which `dvtr` computes from these settings when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microbatch: Option<Box<MicrobatchPlan>>,
    /// Grants: privilege → grantees.
    pub grants: BTreeMap<String, Vec<String>>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// What `--state` comparisons look at (absent in plans before 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<NodeChecksum>,
    /// An enforced model contract: the declared columns, in order, with types and constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
    /// For unit tests: what the rows of `compiled_sql` must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Box<UnitTestPlan>>,
}

/// Where a microbatch window's start goes in a node's SQL (a string literal's content).
pub const MICROBATCH_START: &str = "__dvt_microbatch_start__";
/// Where a microbatch window's end (exclusive) goes.
pub const MICROBATCH_END: &str = "__dvt_microbatch_end__";

/// A microbatch model's settings (dbt's `event_time`, `batch_size`, `begin`, `lookback`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct MicrobatchPlan {
    /// The model's own event-time column: the window's rows are replaced.
    pub event_time: String,
    /// `hour`, `day`, `month` or `year`.
    pub batch_size: String,
    /// The first batch a full build covers (`YYYY-MM-DD[ HH:MM:SS]`, UTC).
    pub begin: String,
    /// Batches before the current one an incremental run rebuilds.
    pub lookback: u32,
}

/// Hook templates rendered at run time (see [`PlanNode::runtime_hooks`]).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct RuntimeHooks {
    /// Why they wait (the first database call found).
    pub reason: String,
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// A unit test's expectation. `compiled_sql` is the model's SQL over fixture CTEs
/// (on the model's target), selecting the expected columns; `dvtr` compares its
/// rows with these, as a multiset, value by value.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct UnitTestPlan {
    /// Unique id of the model under test.
    pub model: String,
    /// The compared columns (those the expectation names).
    pub columns: Vec<String>,
    /// Expected rows, one value per column, as written in YAML (CSV values as strings).
    pub rows: Vec<Vec<serde_json::Value>>,
    /// `expect: {format: sql}`: the query that gives the expected rows instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sql: Option<String>,
}

/// Fingerprints of a node's definition, compared by `state:modified` and its
/// sub-selectors. Each is the lowercase hex SHA-256 of the part named.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct NodeChecksum {
    /// The file's contents (dbt's `checksum`); for seeds the data file, for generic tests
    /// the test's name and arguments.
    pub body: String,
    /// The effective configuration (keys sorted at every level).
    pub configs: String,
    /// The source of every macro the node calls, directly or not.
    pub macros: String,
    /// The relation as configured (`database`, `schema`, `alias`), not as rendered.
    pub relation: String,
    /// The node's and its columns' descriptions.
    pub descriptions: String,
    /// Whether descriptions are persisted to the database (`persist_docs`).
    #[serde(default)]
    pub persist_docs: bool,
    /// The enforced contract (absent when not enforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// An enforced model contract (`contract: {enforced: true}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Contract {
    pub columns: Vec<ContractColumn>,
    /// Model-level constraints as SQL (`primary key (a, b)`, `check (…)`), in the target's dialect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

/// One declared column of a contract.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct ContractColumn {
    pub name: String,
    /// The declared type, as written (the target's own type name).
    pub data_type: String,
    /// Column constraints as SQL (`not null`, `primary key`, `check (…)`), those the target enforces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

/// Where an upstream lives.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Upstream {
    pub unique_id: String,
    /// Output it lives on.
    pub target: String,
    /// Its relation (none for ephemerals, which are inlined).
    pub relation: Option<RelationRef>,
    /// Read from the `--state` plan's relation (`--defer`): the upstream was not selected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
}

/// A SQL statement with what it is for.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct Statement {
    /// What the statement does (`create_schema`, `create_staging`, `swap`, `insert`, `merge`, …).
    pub kind: String,
    pub sql: String,
}

/// Pushdown statements, in the target's dialect. Both renderings are kept;
/// `dvtr` picks one at run time from the target's real state (SPEC §4).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PushdownPlan {
    pub dialect: String,
    /// Build from scratch (first run, `--full-refresh`, non-incremental nodes).
    pub full_refresh: Vec<Statement>,
    /// Incremental run over an existing relation (incremental models, snapshots).
    pub incremental: Option<Vec<Statement>>,
    /// Replace the rows of an existing table in one transaction, keeping grants and dependent views.
    pub replace: Option<Vec<Statement>>,
}

/// A federated node: fragments read per source, remainder run in the compute.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FederationPlan {
    /// Dialect of the remainder (`datafusion`).
    pub compute_dialect: String,
    /// One per source relation (or alias).
    pub fragments: Vec<Fragment>,
    /// Query over the fragments (by their `name`), first run / full refresh.
    pub remainder: String,
    /// Query over the fragments for an incremental run (incremental models only).
    pub remainder_incremental: Option<String>,
    /// Casts needed to write into the target.
    pub casts: Vec<ColumnCast>,
    /// Predicates pushed into fragments or kept in the remainder, with why.
    pub predicates: Vec<PredicateDecision>,
    /// Constructs that forced a conservative (whole-relation) read.
    pub fallbacks: Vec<String>,
}

/// SQL read from one upstream relation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Fragment {
    /// Name the remainder uses for this fragment.
    pub name: String,
    /// Unique id of the upstream (source or node); empty for a pushed sub-query.
    pub upstream: String,
    /// For a sub-query pushed whole to one database (joins, aggregates and
    /// all): the unique ids of every upstream it reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// Output the fragment runs on.
    pub target: String,
    /// Dialect of `sql`.
    pub dialect: String,
    pub sql: String,
    /// Output columns and their Arrow types (empty when not known offline).
    pub columns: Vec<FragmentColumn>,
    /// For a fragment on a bucket: the tables its SQL reads and the files behind each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<BucketTable>,
    /// Read in parallel ranges of one column (`read_partitions:` of the upstream's config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<ReadPartitions>,
}

/// A fragment read as `count` ranges of a numeric or date column, each on its own connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct ReadPartitions {
    pub column: String,
    /// 2 to 64; 0: chosen when the node runs, one range per 250,000 rows of the fragment (at most 16).
    pub count: u32,
}

/// A table the compute reads from files in a bucket (a bucket source, or a model written there).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct BucketTable {
    /// The schema and name the fragment's SQL uses.
    pub schema: String,
    pub identifier: String,
    pub files: ExternalFiles,
}

/// A fragment column.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct FragmentColumn {
    pub name: String,
    /// Arrow type name, e.g. `Int64`, `Decimal128(12, 2)`, `Utf8`.
    pub arrow_type: Option<String>,
}

/// A cast applied when writing a federated result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct ColumnCast {
    pub column: String,
    pub to: String,
    pub reason: String,
}

/// Where a WHERE conjunct went.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PredicateDecision {
    pub predicate: String,
    /// Fragment name it was pushed into, or none when kept in the remainder.
    pub pushed_to: Option<String>,
    pub reason: String,
}

/// How a node writes its rows.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct WriteStrategy {
    /// `replace`, `append`, `merge`, `delete+insert`, `insert_overwrite`, `snapshot`, `seed`.
    pub strategy: String,
    pub unique_key: Vec<String>,
    /// `ignore`, `fail`, `append_new_columns`, `sync_all_columns`.
    pub on_schema_change: String,
    /// For incremental federated models: the `{{ this }}` subqueries to evaluate on the target at run time.
    pub this_subqueries: Vec<String>,
}

/// A seed's data file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct SeedPlan {
    /// Project-relative path; for a seed in a bucket, its path inside the bucket.
    pub file: String,
    /// The bucket the file is read from at run time (seed config `external:`);
    /// such a file is not read at compile time: its types are inferred when it
    /// loads, and `sha256` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// `csv`, `parquet`, `jsonl`.
    pub format: String,
    /// SHA-256 of the file; `dvtr` refuses a file that no longer matches.
    pub sha256: String,
    /// Each column's type as a portable SQL name (`integer`, `numeric(5, 2)`, `boolean`,
    /// `timestamp`, …): `column_types` overrides, the rest inferred from the file.
    /// Parquet and JSON-lines seeds list only the overrides (their files carry types).
    pub column_types: BTreeMap<String, String>,
    pub delimiter: String,
    pub quote_columns: bool,
    /// Empty CSV fields load as NULL (`empty_as_null: true`, the default) or as empty text.
    pub empty_as_null: bool,
}

/// A test's pass/fail rules.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct TestPlan {
    /// `ERROR` or `WARN`.
    pub severity: String,
    /// Tested node or source.
    pub attached_node: Option<String>,
    pub column_name: Option<String>,
    /// e.g. `!= 0`.
    pub warn_if: String,
    pub error_if: String,
}

/// A compile warning.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlanWarning {
    pub code: String,
    pub node: String,
    pub message: String,
}
