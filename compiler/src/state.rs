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

/// SHA-256 of the `prefix` parts and `map` as compact JSON with every object's keys
/// sorted (so that equal values hash equally), streamed into the hash: no
/// sorted copy of the value, no text of it.
fn sha256_canonical(prefix: &[&str], map: &crate::sorted_map::SortedMap<String, Json>) -> String {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Hashing(Sha256::new());
    for part in prefix {
        h.0.update(part.as_bytes());
    }
    // A `BTreeMap`'s keys are sorted already. Writing into a hash cannot fail,
    // and JSON values always serialize.
    let _ = serde::Serializer::collect_map(&mut serde_json::Serializer::new(&mut h), map.iter().map(|(k, v)| (k, SortedJson(v))));
    crate::hex::encode(&h.0.finalize())
}

/// A JSON value serialized with the keys of every object in it sorted.
struct SortedJson<'a>(&'a Json);

fn sorted_json<S: serde::Serializer>(v: &Json, s: S) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::{SerializeMap, SerializeSeq};
    match v {
        Json::Object(m) => {
            let mut entries: Vec<(&String, &Json)> = m.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut map = s.serialize_map(Some(entries.len()))?;
            for (k, v) in entries {
                map.serialize_entry(k, &SortedJson(v))?;
            }
            map.end()
        }
        Json::Array(a) => {
            let mut seq = s.serialize_seq(Some(a.len()))?;
            for v in a {
                seq.serialize_element(&SortedJson(v))?;
            }
            seq.end()
        }
        other => serde::Serialize::serialize(other, s),
    }
}

impl serde::Serialize for SortedJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        sorted_json(self.0, s)
    }
}

/// SHA-256 of each macro's source, computed the first time a node reaches the macro (a
/// compile that renders one node hashes only that node's macros).
pub struct MacroHashes<'a> {
    /// unique id → source, and its hash once computed (no lock shared by every node).
    sources: HashMap<String, (&'a str, std::sync::OnceLock<String>)>,
}

impl<'a> MacroHashes<'a> {
    pub fn new(macros: &'a [crate::jinja::MacroDef]) -> Self {
        MacroHashes { sources: macros.iter().map(|m| (m.unique_id(), (m.source.as_str(), Default::default()))).collect() }
    }

    fn get(&self, id: &str) -> &str {
        self.sources.get(id).map_or("", |(source, hash)| hash.get_or_init(|| sha256(source)))
    }
}

/// The node's fingerprints; `seed_sha` is the data file's for seeds.
pub fn checksum(node: &Node, macro_hashes: &MacroHashes<'_>, seed_sha: Option<String>) -> NodeChecksum {
    let body = match (&seed_sha, &node.test) {
        (Some(sha), _) => sha.clone(),
        (None, Some(t)) if node.raw.is_empty() || node.file.ends_with(".yml") || node.file.ends_with(".yaml") => {
            sha256_canonical(&[&node.name, "\u{0}"], &t.kwargs)
        }
        _ => sha256(&node.raw),
    };
    let configs = sha256_canonical(&[], &node.config);
    let mut macros: Vec<&String> = node.macros.iter().collect();
    macros.sort();
    macros.dedup();
    // Most nodes have no macros, descriptions or relation configs: those hashes are the same for all.
    static EMPTY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sha256(""));
    static NO_RELATION_CONFIG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| sha256("[null,null,null]"));
    let macros = match macros.is_empty() {
        true => EMPTY.clone(),
        false => sha256(&macros.iter().map(|m| format!("{m}={}", macro_hashes.get(m))).collect::<Vec<_>>().join("\n")),
    };
    let descriptions = match node.description.is_empty() && node.columns.is_empty() {
        true => EMPTY.clone(),
        false => {
            let mut desc = node.description.clone();
            for (name, c) in &node.columns {
                desc.push_str(&format!("\n{name}: {}", c.description));
            }
            sha256(&desc)
        }
    };
    let persist = node.config.get("persist_docs").is_some_and(|p| {
        p.get("relation").and_then(Json::as_bool).unwrap_or(false) || p.get("columns").and_then(Json::as_bool).unwrap_or(false)
    });
    let contract = contract_enforced(node).then(|| {
        let cols: Vec<Json> = node.columns.values().map(|c| serde_json::json!([c.name, c.data_type, c.constraints])).collect();
        sha256(&serde_json::json!([cols, node.config.get("constraints")]).to_string())
    });
    // As dbt: the relation as configured (database, schema, alias), not as rendered for one environment.
    let relation_config = ["database", "schema", "alias"].map(|k| node.config.get(k));
    let relation = match relation_config.iter().all(Option::is_none) {
        true => NO_RELATION_CONFIG.clone(),
        false => sha256(&serde_json::json!(relation_config).to_string()),
    };
    NodeChecksum { body, configs, macros, relation, descriptions, persist_docs: persist, contract }
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

    #[test]
    fn canonical_hash_sorts_the_keys_of_every_object() {
        let config: crate::config::Config = serde_json::from_value(serde_json::json!({
            "materialized": "table",
            "meta": {"z": [{"b": 1, "a": "x\n\"y\""}], "a": null},
            "tags": ["b", "a"],
            "n": 1.5
        }))
        .unwrap();
        // The same bytes as a sorted copy written out as text.
        let text = r#"{"materialized":"table","meta":{"a":null,"z":[{"a":"x\n\"y\"","b":1}]},"n":1.5,"tags":["b","a"]}"#;
        assert_eq!(sha256_canonical(&["p", "\u{0}"], &config), sha256(&format!("p\u{0}{text}")));
        let mut reordered = config.clone();
        reordered.insert("meta".into(), serde_json::json!({"a": null, "z": [{"a": "x\n\"y\"", "b": 1}]}));
        assert_eq!(sha256_canonical(&[], &config), sha256_canonical(&[], &reordered));
        reordered.insert("tags".into(), serde_json::json!(["a", "b"]));
        assert_ne!(sha256_canonical(&[], &config), sha256_canonical(&[], &reordered), "arrays keep their order");
    }

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
