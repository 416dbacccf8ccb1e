//! Saving the state of a whole compile.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use super::inputs;
use super::spans::{self, Spans};
use super::store::{NodeRec, Saved, Stamp};
use super::volatile::volatile;
use super::{Inputs, SNAPSHOTS, STATE, SnapshotOf, key, write_state};
use crate::compile::{CompileOptions, Compiled};
use crate::config::ConfigExt;
use crate::loader::LoadOptions;
use crate::nodes::{Node, Project, ResourceType};

/// Why a change to `node`'s file needs a whole compile, if it does.
fn whole_reason(node: &Node, compiled: &Compiled, warned: &HashSet<&str>, feeds_federation: &HashSet<&str>) -> Option<String> {
    let plan = compiled.plan.nodes.get(&node.unique_id);
    let reason = if node.resource_type != ResourceType::Model || node.python.is_some() {
        "only SQL models are compiled alone"
    } else if node.config.str("materialized") == Some("ephemeral") {
        "ephemeral: inlined into other nodes"
    } else if node.runtime_only.is_some() || plan.is_none_or(|p| p.render_at_runtime.is_some()) {
        "renders at run time"
    } else if plan.is_some_and(|p| p.federation.is_some()) {
        "federated"
    } else if feeds_federation.contains(node.unique_id.as_str()) {
        "a federated node reads it"
    } else if warned.contains(node.unique_id.as_str()) {
        "it has warnings"
    } else {
        return None;
    };
    Some(reason.to_string())
}

/// What a whole compile hands over to be saved.
pub struct Written<'a> {
    pub lo: &'a LoadOptions,
    pub opts: &'a CompileOptions,
    pub inputs: Inputs,
    pub project: &'a Project,
    pub compiled: &'a Compiled,
    pub target_dir: &'a Path,
    pub plan_spans: Spans,
    pub manifest_spans: Spans,
}

/// Saves the state of a whole compile (see the module docs). A project that
/// cannot be reused has its old state removed instead.
pub fn save(w: Written<'_>) -> std::io::Result<()> {
    let state_path = w.target_dir.join(STATE);
    let _ = std::fs::remove_file(&state_path);
    let project = w.project;
    if let Some(why) = volatile(project) {
        crate::timing::phase(&format!("no incremental state: {why}"));
        let _ = std::fs::remove_file(w.target_dir.join(SNAPSHOTS));
        return Ok(());
    }
    if w.plan_spans.entries.is_empty() {
        let _ = std::fs::remove_file(w.target_dir.join(SNAPSHOTS));
        return Ok(());
    }
    crate::timing::phase("state: volatile templates checked");
    let compiled = w.compiled;
    let warned: HashSet<&str> = compiled.plan.warnings.iter().map(|x| x.node.as_str()).collect();
    let feeds_federation = upstream_of_federation(project, compiled);
    let mut units: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for n in project.nodes.values() {
        if let Some(u) = &n.unit {
            units.entry(u.model.as_str()).or_default().push(n.unique_id.clone());
        }
    }
    // Snapshots, one JSON line each, serialized in parallel.
    let sources = serde_json::to_vec(&project.sources).map_err(std::io::Error::other)?;
    // Tests are neither compiled alone nor read by what is: a model's list of its
    // tests comes from properties files, and is taken from the last plan.
    let nodes: Vec<&Node> = project.nodes.values().filter(|n| n.resource_type != ResourceType::Test).collect();
    let blobs: Vec<Vec<u8>> = nodes
        .par_iter()
        .map(|n| {
            let none: &[String] = &[];
            let snap = SnapshotOf {
                node: n,
                units: units.get(n.unique_id.as_str()).map_or(none, Vec::as_slice),
                whole: whole_reason(n, compiled, &warned, &feeds_federation),
            };
            serde_json::to_vec(&snap).unwrap_or_default()
        })
        .collect();
    crate::timing::phase("state: snapshots serialized");
    let snapshots_path = w.target_dir.join(SNAPSHOTS);
    let mut offsets = Vec::with_capacity(blobs.len());
    crate::artifact_write::write(&snapshots_path, true, |out| {
        out.write_all(&sources)?;
        let mut at = sources.len() as u64;
        for b in &blobs {
            out.write_all(b)?;
            offsets.push((at, b.len() as u64));
            at += b.len() as u64;
        }
        Ok(())
    })?;
    crate::timing::phase("state: snapshots written");
    let plan_spans: BTreeMap<&str, spans::Span> = w.plan_spans.entries.iter().map(|(k, s)| (k.as_str(), *s)).collect();
    let manifest_spans: BTreeMap<&str, spans::Span> = w.manifest_spans.entries.iter().map(|(k, s)| (k.as_str(), *s)).collect();
    let records = nodes
        .iter()
        .zip(offsets)
        .map(|(n, blob)| NodeRec {
            uid: n.unique_id.clone(),
            file: if n.resource_type == ResourceType::Model { n.file.clone() } else { String::new() },
            blob,
            plan: plan_spans.get(n.unique_id.as_str()).copied().unwrap_or_default(),
            manifest: manifest_spans.get(n.unique_id.as_str()).copied().unwrap_or_default(),
        })
        .collect();
    let stamp = |name: &str| Stamp::of(&w.target_dir.join(name)).unwrap_or_default();
    let saved = Saved {
        key: key(w.lo, w.opts, &w.inputs.project_dir),
        env: inputs::env_reads(),
        stamped_at_ns: w.inputs.stamped_at_ns,
        tree: w.inputs.tree,
        connection_files: w.inputs.connection_files,
        compiled_folders: inputs::folders(&w.target_dir.join("compiled")),
        plan: stamp("plan.json"),
        manifest: stamp("manifest.json"),
        semantic_manifest: stamp("semantic_manifest.json"),
        nodes_file: stamp(SNAPSHOTS),
        plan_shared: None,
        manifest_shared: None,
        sources: (0, sources.len() as u64),
        metadata: w.manifest_spans.top("metadata").unwrap_or_default(),
        load_warnings: project.warnings.clone(),
        plan_warnings: compiled.plan.warnings.iter().map(|x| (x.node.clone(), x.code.clone(), x.message.clone())).collect(),
        summary: compiled.summary(),
        counts: counts(&compiled.plan),
        nodes: records,
    };
    write_state(&state_path, &saved)
}

/// Nodes, pushdown and federation counts of a plan.
pub fn counts(plan: &dvt_schema::Plan) -> [u64; 3] {
    let n = plan.nodes.len() as u64;
    let p = plan.nodes.values().filter(|x| x.path == dvt_schema::plan::ExecutionPath::Pushdown).count() as u64;
    [n, p, n - p]
}

/// Nodes some federated node reads, directly or through others.
fn upstream_of_federation<'a>(project: &'a Project, compiled: &Compiled) -> HashSet<&'a str> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = compiled
        .plan
        .nodes
        .values()
        .filter(|p| p.federation.is_some())
        .filter_map(|p| project.nodes.get_key_value(&p.unique_id).map(|(k, _)| k.as_str()))
        .collect();
    while let Some(id) = todo.pop() {
        for d in project.nodes.get(id).into_iter().flat_map(|n| &n.depends_on) {
            if let Some((k, _)) = project.nodes.get_key_value(d)
                && seen.insert(k.as_str())
            {
                todo.push(k.as_str());
            }
        }
    }
    seen
}
