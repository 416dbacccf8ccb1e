//! `target/run_results.json`, written by every `dvtr` command that runs nodes,
//! in dbt's run results v6 shape (`https://schemas.getdbt.com/dbt/run-results/v6.json`)
//! so dbt tooling reads it. DVT's own facts about a node (which rendering ran,
//! rows written) go in `adapter_response`, which dbt leaves open.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The dbt schema this file follows.
pub const RUN_RESULTS_SCHEMA: &str = "https://schemas.getdbt.com/dbt/run-results/v6.json";

/// What happened to each node of a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RunResults {
    pub metadata: RunResultsMetadata,
    pub results: Vec<NodeResult>,
    /// Seconds the whole run took.
    pub elapsed_time: f64,
    /// How the run was invoked (`which`: the command).
    pub args: BTreeMap<String, serde_json::Value>,
}

/// dbt's artifact metadata.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RunResultsMetadata {
    pub dbt_schema_version: String,
    /// The dbt version whose artifact shapes DVT writes (as in `manifest.json`).
    pub dbt_version: String,
    /// RFC 3339, UTC.
    pub generated_at: String,
    pub invocation_id: String,
    pub env: BTreeMap<String, String>,
}

/// The outcome of one node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct NodeResult {
    /// `success`, `error`, `skipped`, `pass`, `warn`, `fail`.
    pub status: String,
    /// `compile` and `execute` phases with their start and end (RFC 3339, UTC).
    pub timing: Vec<Timing>,
    /// The worker that ran it (`Thread-1` …).
    pub thread_id: String,
    pub execution_time: f64,
    /// `_message`, and DVT's `rendering` (`full_refresh`, `incremental`, `replace`, `test`).
    pub adapter_response: BTreeMap<String, serde_json::Value>,
    pub message: Option<String>,
    /// Failing rows, for tests.
    pub failures: Option<u64>,
    pub unique_id: String,
    #[serde(default)]
    pub compiled: Option<bool>,
    #[serde(default)]
    pub compiled_code: Option<String>,
    #[serde(default)]
    pub relation_name: Option<String>,
}

/// One phase of a node's run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Timing {
    pub name: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
}

impl NodeResult {
    /// The rendering that ran, if any (DVT's, in `adapter_response`).
    pub fn rendering(&self) -> Option<&str> {
        self.adapter_response.get("rendering").and_then(|v| v.as_str())
    }
}
