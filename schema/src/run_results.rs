//! `target/run_results.json`, written by every `dvtr` command that runs nodes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the run results format (semver).
pub const RUN_RESULTS_VERSION: &str = "1.0.0";

/// What happened to each node of a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RunResults {
    pub run_results_version: String,
    /// The command (`run`, `build`, `test`, `seed`, `execute`, `retry`).
    pub command: String,
    /// Seconds the whole run took.
    pub elapsed_time: f64,
    pub results: Vec<NodeResult>,
}

/// The outcome of one node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct NodeResult {
    pub unique_id: String,
    /// `success`, `error`, `skipped`, `pass`, `warn`, `fail`.
    pub status: String,
    /// Which rendering ran: `full_refresh`, `incremental`, `replace`, `test`.
    pub rendering: Option<String>,
    pub message: String,
    /// Failing rows, for tests.
    pub failures: Option<u64>,
    pub execution_time: f64,
}
