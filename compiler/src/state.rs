//! `--state`: a previous plan (with the `run_results.json` and `sources.json`
//! beside it), what `state:`, `result:` and `source_status:` select, and what
//! `--defer` reads from it.
//!
//! Modified-ness is dbt's (the file, the configs, the macros a node reaches,
//! its relation, persisted descriptions, the contract) plus DVT's own: a node
//! whose target output, execution path, compute or bucket changed is modified.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dvt_schema::Plan;
use dvt_schema::plan::{ExecutionPath, Level, NodeChecksum, PlanNode, Resolved};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::error::{DvtError, ErrorCode, Result};
use crate::nodes::Node;

/// The previous run's artifacts.
#[derive(Debug)]
pub struct State {
    /// Where they were read from (a folder, or the plan file's folder).
    pub dir: PathBuf,
    pub plan: Plan,
    /// unique id → status in the state's `run_results.json`.
    pub results: BTreeMap<String, String>,
    /// unique id → `max_loaded_at` in the state's `sources.json`.
    pub freshness: BTreeMap<String, String>,
}

impl State {
    /// Reads `path`: a plan file, or a folder with `plan.json` (and optionally
    /// `run_results.json`, `sources.json`).
    pub fn load(path: &Path) -> Result<Self> {
        let (dir, plan_path) = if path.is_dir() {
            (path.to_path_buf(), path.join("plan.json"))
        } else {
            (path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf(), path.to_path_buf())
        };
        let text = std::fs::read_to_string(&plan_path).map_err(|e| {
            DvtError::new(ErrorCode::Usage, format!("--state: cannot read {}: {e}", plan_path.display()))
                .hint("point --state at the plan of the run to compare with (`dvtc compile -o prod-plan.json`), or at its folder")
        })?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("--state: {} is not a DVT plan: {e}", plan_path.display())))?;
        let results = read_results(&dir.join("run_results.json"), "status")?;
        let freshness = read_results(&dir.join("sources.json"), "max_loaded_at")?;
        Ok(State { dir, plan, results, freshness })
    }

    /// The state's node or source with this id is known.
    pub fn has(&self, id: &str) -> bool {
        self.plan.nodes.contains_key(id) || self.plan.sources.contains_key(id)
    }
}

/// `unique_id → results[i][field]` of a dbt-shaped results file; empty when the file is absent.
pub fn read_results(path: &Path, field: &str) -> Result<BTreeMap<String, String>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(BTreeMap::new()) };
    let v: Json = serde_json::from_str(&text)
        .map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{} is not valid JSON: {e}", path.display())))?;
    Ok(v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["unique_id"].as_str()?.to_string(), r[field].as_str()?.to_string())))
        .collect())
}

/// What the current project says about a node, for comparison with the state.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub checksum: NodeChecksum,
    pub target: Resolved<String>,
    pub path: ExecutionPath,
    pub compute: Option<Resolved<String>>,
    pub bucket: Option<Resolved<String>>,
}

/// A value the node's own config chose; values from `--target`, `--compute` or
/// defaults follow the environment (prod vs CI) and are not the node's changes.
fn configured(r: Option<&Resolved<String>>) -> Option<&str> {
    r.filter(|r| r.level == Level::Config).map(|r| r.value.as_str())
}

/// Current facts of a source: its output and rendered relation.
#[derive(Debug, Clone)]
pub struct SourceFacts {
    pub connection: String,
    pub relation: String,
}

/// SHA-256 of a string, in hex.
pub fn sha256(text: &str) -> String {
    crate::hex::encode(&Sha256::digest(text.as_bytes()))
}

/// JSON with every object's keys sorted, so that equal values hash equally.
fn canonical(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let sorted: BTreeMap<&String, Json> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Json::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Json::Array(a) => Json::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// SHA-256 of each macro's source, computed the first time a node reaches the macro (a
/// compile that renders one node hashes only that node's macros).
pub struct MacroHashes<'a> {
    sources: HashMap<String, &'a str>,
    done: std::sync::Mutex<HashMap<String, String>>,
}

impl<'a> MacroHashes<'a> {
    pub fn new(macros: &'a [crate::jinja::MacroDef]) -> Self {
        MacroHashes { sources: macros.iter().map(|m| (m.unique_id(), m.source.as_str())).collect(), done: Default::default() }
    }

    fn get(&self, id: &str) -> String {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        done.entry(id.to_string()).or_insert_with(|| self.sources.get(id).map_or_else(String::new, |s| sha256(s))).clone()
    }
}

/// The node's fingerprints; `seed_sha` is the data file's for seeds.
pub fn checksum(node: &Node, macro_hashes: &MacroHashes<'_>, seed_sha: Option<String>) -> NodeChecksum {
    let body = match (&seed_sha, &node.test) {
        (Some(sha), _) => sha.clone(),
        (None, Some(t)) if node.raw.is_empty() || node.file.ends_with(".yml") || node.file.ends_with(".yaml") => {
            sha256(&format!("{}\u{0}{}", node.name, canonical(&serde_json::to_value(&t.kwargs).unwrap_or_default())))
        }
        _ => sha256(&node.raw),
    };
    let configs = sha256(&canonical(&serde_json::to_value(&node.config).unwrap_or_default()).to_string());
    let mut macros: Vec<&String> = node.macros.iter().collect();
    macros.sort();
    macros.dedup();
    let macros = sha256(&macros.iter().map(|m| format!("{m}={}", macro_hashes.get(m))).collect::<Vec<_>>().join("\n"));
    let mut desc = node.description.clone();
    for (name, c) in &node.columns {
        desc.push_str(&format!("\n{name}: {}", c.description));
    }
    let persist = node.config.get("persist_docs").is_some_and(|p| {
        p.get("relation").and_then(Json::as_bool).unwrap_or(false) || p.get("columns").and_then(Json::as_bool).unwrap_or(false)
    });
    let contract = contract_enforced(node).then(|| {
        let cols: Vec<Json> = node.columns.values().map(|c| serde_json::json!([c.name, c.data_type, c.constraints])).collect();
        sha256(&serde_json::json!([cols, node.config.get("constraints")]).to_string())
    });
    // As dbt: the relation as configured (database, schema, alias), not as rendered for one environment.
    let relation = sha256(&serde_json::json!(["database", "schema", "alias"].map(|k| node.config.get(k))).to_string());
    NodeChecksum { body, configs, macros, relation, descriptions: sha256(&desc), persist_docs: persist, contract }
}

/// `contract: {enforced: true}` in the node's config.
pub fn contract_enforced(node: &Node) -> bool {
    node.config.get("contract").and_then(|c| c.get("enforced")).and_then(Json::as_bool).unwrap_or(false)
}

/// Sub-selectors of `state:modified` (`state:modified.<sub>`): dbt's and DVT's own.
pub const MODIFIED_PARTS: [&str; 10] =
    ["body", "configs", "relation", "persisted_descriptions", "contract", "macros", "target", "path", "compute", "bucket"];

/// Whether `part` (or, with `None`, anything) changed between the state's node and now.
pub fn modified(prev: &PlanNode, cur: &NodeFacts, part: Option<&str>) -> bool {
    match part {
        Some(p) => part_changed(prev, cur, p),
        None => MODIFIED_PARTS.iter().any(|p| part_changed(prev, cur, p)),
    }
}

fn part_changed(prev: &PlanNode, cur: &NodeFacts, part: &str) -> bool {
    let sum = prev.checksum.as_ref();
    let c = &cur.checksum;
    match part {
        // A plan without fingerprints (before 1.3) cannot show a node unchanged.
        "body" => sum.is_none_or(|s| s.body != c.body),
        "configs" => sum.is_none_or(|s| s.configs != c.configs),
        "macros" => sum.is_none_or(|s| s.macros != c.macros),
        "contract" => sum.is_none_or(|s| s.contract != c.contract),
        "persisted_descriptions" => {
            (c.persist_docs || sum.is_some_and(|s| s.persist_docs)) && sum.is_none_or(|s| s.descriptions != c.descriptions)
        }
        "relation" => sum.is_none_or(|s| s.relation != c.relation),
        "target" => configured(Some(&prev.target)) != configured(Some(&cur.target)),
        "path" => prev.path != cur.path,
        "compute" => configured(prev.compute.as_ref()) != configured(cur.compute.as_ref()),
        "bucket" => configured(prev.bucket.as_ref()) != configured(cur.bucket.as_ref()),
        _ => false,
    }
}

/// The current project's facts for every node and source, and its own
/// `sources.json` (for `source_status:`).
#[derive(Debug, Default)]
pub struct Facts {
    pub nodes: BTreeMap<String, NodeFacts>,
    pub sources: BTreeMap<String, SourceFacts>,
    /// unique id → `max_loaded_at` in the project's current `target/sources.json`.
    pub freshness: BTreeMap<String, String>,
}

impl Facts {
    /// `state:<value>` for the node or source `id`.
    pub fn state_matches(&self, state: &State, id: &str, value: &str) -> Result<bool> {
        let (head, part) = match value.split_once('.') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        };
        if part.is_some_and(|p| head != "modified" || !MODIFIED_PARTS.contains(&p)) {
            return Err(unknown_state(value));
        }
        let known = state.has(id);
        Ok(match head {
            "new" => !known,
            "old" => known,
            "modified" => !known || self.changed(state, id, part),
            "unmodified" => known && !self.changed(state, id, None),
            _ => return Err(unknown_state(value)),
        })
    }

    fn changed(&self, state: &State, id: &str, part: Option<&str>) -> bool {
        if let (Some(prev), Some(cur)) = (state.plan.nodes.get(id), self.nodes.get(id)) {
            return modified(prev, cur, part);
        }
        if let (Some(prev), Some(cur)) = (state.plan.sources.get(id), self.sources.get(id)) {
            return match part {
                None | Some("relation" | "configs" | "body") => {
                    prev.relation.rendered != cur.relation || prev.connection.value != cur.connection
                }
                Some("target") => prev.connection.value != cur.connection,
                _ => false,
            };
        }
        // Known to the state but not compiled there (e.g. a source no node read).
        false
    }

    /// The source's newest row is newer now than in the state's `sources.json`.
    pub fn fresher(&self, state: &State, id: &str) -> bool {
        let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_micros());
        match (self.freshness.get(id).and_then(|s| parse(s)), state.freshness.get(id)) {
            (Some(now), Some(before)) => parse(before).is_none_or(|b| now > b),
            (Some(_), None) => true,
            _ => false,
        }
    }
}

fn unknown_state(value: &str) -> DvtError {
    DvtError::new(ErrorCode::SelectorInvalid, format!("unknown `state:{value}`"))
        .hint(format!("use state:new, state:old, state:modified, state:unmodified, or state:modified.<{}>", MODIFIED_PARTS.join("|")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with_freshness(at: &str) -> State {
        let plan: Plan = serde_json::from_value(serde_json::json!({
            "plan_version": "1.3.0", "project_name": "p",
            "invocation": {"target": null, "compute": null, "bucket": null, "full_refresh": false, "select": [], "exclude": [], "selector": null, "var_names": []},
            "targets": {}, "computes": {}, "buckets": {}, "sources": {}, "nodes": {}, "order": [], "warnings": []
        }))
        .unwrap();
        State { dir: PathBuf::new(), plan, results: BTreeMap::new(), freshness: BTreeMap::from([("source.p.s.t".into(), at.into())]) }
    }

    #[test]
    fn fresher_compares_instants() {
        let state = state_with_freshness("2024-01-01T10:00:00+00:00");
        let facts = |at: &str| Facts { freshness: BTreeMap::from([("source.p.s.t".to_string(), at.to_string())]), ..Default::default() };
        assert!(facts("2024-01-01T10:00:01+00:00").fresher(&state, "source.p.s.t"));
        assert!(!facts("2024-01-01T10:00:00Z").fresher(&state, "source.p.s.t"));
        // 11:00+02:00 is 09:00 UTC: older.
        assert!(!facts("2024-01-01T11:00:00+02:00").fresher(&state, "source.p.s.t"));
        // A source the state never checked is fresher; one never checked now is not.
        assert!(!facts("2024-01-01T00:00:00Z").fresher(&state, "source.p.s.other"));
        let f =
            Facts { freshness: BTreeMap::from([("source.p.s.new".to_string(), "2024-01-01T00:00:00Z".to_string())]), ..Default::default() };
        assert!(f.fresher(&state, "source.p.s.new"));
    }

    #[test]
    fn unknown_state_values_are_errors() {
        let state = state_with_freshness("2024-01-01T00:00:00Z");
        let f = Facts::default();
        assert!(f.state_matches(&state, "model.p.m", "new").unwrap());
        assert!(f.state_matches(&state, "model.p.m", "modified").unwrap());
        assert!(!f.state_matches(&state, "model.p.m", "old").unwrap());
        assert!(f.state_matches(&state, "model.p.m", "modified.sql").is_err());
        assert!(f.state_matches(&state, "model.p.m", "changed").is_err());
    }
}
