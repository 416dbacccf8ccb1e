//! A compile that reuses the last whole compile's state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::inputs::{self, Entry, Kind};
use super::spans;
use super::store::{Saved, Stamp};
use super::{SNAPSHOTS, STATE, Snapshot, SnapshotOf, key, now_ns, outputs, write_state};
use crate::artifact_write::Shared;
use crate::compile::CompileOptions;
use crate::config::ConfigExt;
use crate::graph::Graph;
use crate::loader::LoadOptions;
use crate::nodes::{Node, Project, Source};

/// File times are coarse (a clock tick, seconds on some file systems): a file
/// modified this close to its stamping may have changed again since without
/// its time changing, so it counts as changed (git's "racily clean" entries).
const RACY_NS: u64 = 2_000_000_000;

/// The most changed files a compile reuses the rest for.
const MOST_CHANGED: usize = 32;

/// What a compile that reused the saved state prints.
pub struct Reused {
    pub plan_path: PathBuf,
    pub load_warnings: Vec<String>,
    pub plan_warnings: Vec<(String, String)>,
    pub summary: String,
    pub counts: [u64; 3],
    /// Models compiled again.
    pub recompiled: usize,
}

/// Compiles by reusing the last whole compile's state, when nothing but model
/// SQL changed in ways that stay inside the model (see the module docs).
/// `Err`: why a whole compile is needed.
pub fn reuse(lo: &LoadOptions, opts: &CompileOptions) -> Result<Reused, String> {
    let project_dir = std::fs::canonicalize(&lo.project_dir).why("no project folder")?;
    let file = crate::project::load_project_file(&project_dir, "").why("no project file")?.file;
    let target_dir = project_dir.join(file.target_path());
    let state_path = target_dir.join(STATE);
    let saved = Saved::decode(&std::fs::read(&state_path).why("no saved state")?).why("the saved state is another version's")?;
    if saved.key != key(lo, opts, &project_dir) {
        return Err("another binary or other options".into());
    }
    if saved.env.iter().any(|(k, d)| inputs::value_digest(k, std::env::var(k).ok().as_deref()) != *d) {
        return Err("an environment variable changed".into());
    }
    crate::timing::phase("partial: state read");
    let (plan_path, manifest_path, snapshots_path) =
        (target_dir.join("plan.json"), target_dir.join("manifest.json"), target_dir.join(SNAPSHOTS));
    if Stamp::of(&plan_path) != Some(saved.plan)
        || Stamp::of(&manifest_path) != Some(saved.manifest)
        || Stamp::of(&snapshots_path) != Some(saved.nodes_file)
        || Stamp::of(&target_dir.join("semantic_manifest.json")) != Some(saved.semantic_manifest)
    {
        return Err("the artifacts are not the ones the state describes".into());
    }
    let racy = |e: &Entry| e.mtime_ns.saturating_add(RACY_NS) >= saved.stamped_at_ns;
    let dirs = crate::profiles::search_dirs(lo.profiles_dir.as_deref(), &project_dir);
    if inputs::connection_files(&dirs) != saved.connection_files || saved.connection_files.iter().any(racy) {
        return Err("a connection file changed".into());
    }
    let stamped_at_ns = now_ns();
    // Compiled SQL files removed or renamed since: a whole compile writes them again.
    // (What this compile writes there replaces files in place: the folders keep their times.)
    if !inputs::folders_unchanged(&target_dir.join("compiled"), &saved.compiled_folders) {
        return Err("files under target/compiled/ were removed or renamed".into());
    }
    let tree = inputs::tree(&project_dir, &outputs(&file));
    // The same entries (folders' times change with editors' temporary files: only their names count).
    if tree.len() != saved.tree.len() {
        return Err("files were added or removed".into());
    }
    let mut changed = Vec::new();
    for (now, then) in tree.iter().zip(&saved.tree) {
        if now.path != then.path || now.kind != then.kind {
            return Err(format!("`{}` was added or removed", (&now.path).min(&then.path)));
        }
        if now.kind == Kind::File && ((now.len, now.mtime_ns) != (then.len, then.mtime_ns) || racy(then)) {
            changed.push(now.path.as_str());
        }
    }
    crate::timing::phase("partial: files compared");
    // Beyond a few files, a whole compile is as fast and simpler.
    if changed.len() > MOST_CHANGED {
        return Err(format!("{} files changed", changed.len()));
    }
    let step =
        if changed.is_empty() { Ok(Step::default()) } else { Step::recompile(&saved, &changed, lo, opts, &project_dir, &target_dir) }?;
    let mut saved = saved;
    let metadata = metadata_entry(&manifest_path, saved.metadata).why("the manifest's metadata")?;
    let step = Step { manifest_edits: [(saved.metadata, metadata)].into_iter().chain(step.manifest_edits).collect(), ..step };
    crate::timing::phase("partial: models compiled");
    (saved.plan_shared, saved.manifest_shared) = step.apply(&target_dir, &saved).why("writing the artifacts")?;
    crate::timing::phase("partial: artifacts written");
    // Saved as this compile left things: any failure from here on drops the state.
    saved.stamped_at_ns = stamped_at_ns;
    if step.update(&mut saved, tree, &plan_path, &manifest_path, &snapshots_path).and_then(|()| write_state(&state_path, &saved)).is_err() {
        let _ = std::fs::remove_file(&state_path);
    }
    Ok(Reused {
        plan_path,
        load_warnings: saved.load_warnings.clone(),
        plan_warnings: saved.plan_warnings.iter().map(|(_, c, m)| (c.clone(), m.clone())).collect(),
        summary: saved.summary.clone(),
        counts: saved.counts,
        recompiled: step.recompiled.len(),
    })
}

/// What a reusing compile writes.
#[derive(Default)]
struct Step {
    /// Entries of `plan.json` and `manifest.json` replaced: (old span, new bytes), sorted.
    plan_edits: Vec<(spans::Span, Vec<u8>)>,
    manifest_edits: Vec<(spans::Span, Vec<u8>)>,
    /// `target/compiled/` files: (path, SQL).
    files: Vec<(String, String)>,
    /// Recompiled models' new snapshots.
    recompiled: Vec<(String, Vec<u8>)>,
}

impl Step {
    /// Some model files changed: compile those models alone.
    fn recompile(
        saved: &Saved,
        changed: &[&str],
        lo: &LoadOptions,
        opts: &CompileOptions,
        project_dir: &Path,
        target_dir: &Path,
    ) -> Result<Step, String> {
        let by_uid = |uid: &str| saved.nodes.binary_search_by(|n| n.uid.as_str().cmp(uid)).ok().map(|i| &saved.nodes[i]);
        let snapshots = std::fs::File::open(target_dir.join(SNAPSHOTS)).why("no snapshots")?;
        let plan_file = std::fs::File::open(target_dir.join("plan.json")).why("no plan")?;
        let snapshot = |uid: &str| -> Option<Snapshot> { serde_json::from_slice(&read_at(&snapshots, by_uid(uid)?.blob)?).ok() };
        let mut globals = crate::loader::load_globals(lo, true).why("loading the project file, connections and macros")?;
        crate::loader::add_bucket_outputs(&mut globals.profile, &globals.buckets);
        crate::timing::phase("partial: project file, connections and macros loaded");
        // Each changed file is one model whose render observes what it observed before.
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut compile_ids = BTreeSet::new();
        let mut models = Vec::new();
        for path in changed {
            let rec = saved.nodes.iter().find(|n| n.file == *path).why(&format!("`{path}` changed, which is no model's file"))?;
            let snap = snapshot(&rec.uid).why("a snapshot does not read")?;
            if let Some(why) = snap.whole {
                return Err(format!("{} changed ({why})", rec.uid));
            }
            let text = crate::loader::files::read(&project_dir.join(path), path).why("reading the file")?;
            let (raw, raw_line) = crate::loader::sql_text(&text);
            let old = snap.node;
            let mut before = old.clone();
            before.raw = raw.clone();
            before.raw_line = raw_line;
            if let Some(c) = before.config_before_render.take() {
                before.config = c;
            }
            before.refs.clear();
            before.source_calls.clear();
            before.macros.clear();
            before.runtime_only = None;
            let new = crate::loader::rerender(&globals, before).why(&format!("{} does not render", rec.uid))?;
            let same = new.config == old.config
                && new.refs == old.refs
                && new.source_calls == old.source_calls
                && new.macros == old.macros
                && new.runtime_only.is_none();
            if !same {
                return Err(format!("{}'s config(), refs, sources or macros changed", rec.uid));
            }
            let node = Node { raw, raw_line, config_before_render: new.config_before_render, ..old };
            compile_ids.insert(node.unique_id.clone());
            compile_ids.extend(snap.units.iter().cloned());
            models.push((node.unique_id.clone(), snap.units));
            nodes.insert(node.unique_id.clone(), node);
        }
        // What compiling them reads: upstreams (through ephemerals, which are inlined)
        // and unit tests (compiled with them).
        let mut todo: Vec<String> = Vec::new();
        for (uid, units) in &models {
            todo.extend(nodes[uid].depends_on.iter().cloned());
            todo.extend(units.iter().cloned());
        }
        while let Some(uid) = todo.pop() {
            if nodes.contains_key(&uid) || by_uid(&uid).is_none() {
                continue;
            }
            let n = snapshot(&uid).why("a snapshot does not read")?.node;
            if n.config.str("materialized") == Some("ephemeral") || n.unit.is_some() {
                todo.extend(n.depends_on.iter().cloned());
            }
            nodes.insert(uid, n);
        }
        let sources = read_at(&snapshots, saved.sources).why("no sources snapshot")?;
        let sources: BTreeMap<String, Source> = serde_json::from_slice(&sources).why("the sources snapshot")?;
        let g = globals;
        let project = Project {
            root: g.project_dir,
            name: g.packages[0].name.clone(),
            packages: g.packages,
            profile: g.profile,
            active_target: g.active_target,
            target_from_cli: lo.target.is_some(),
            computes: g.computes,
            buckets: g.buckets,
            nodes,
            disabled: BTreeMap::new(),
            sources,
            docs: g.docs,
            macros: g.macro_defs,
            vars: g.vars,
            selectors: BTreeMap::new(),
            semantic: Default::default(),
            warnings: vec![],
        };
        let graph = Graph::build(&project).why("the graph")?;
        let only = CompileOptions { only: Some(compile_ids.clone()), ..opts.clone() };
        let compiled = crate::compile::compile(&project, &g.jinja, &graph, &only).why("compiling")?;
        if !compiled.plan.warnings.is_empty() || !compiled.node_errors.is_empty() || compiled.plan.nodes.len() != compile_ids.len() {
            return Err("the models compile with warnings".into());
        }
        let mut step = Step::default();
        let mut compiled = compiled;
        for (uid, new) in compiled.plan.nodes.iter_mut() {
            let rec = by_uid(uid).why("a node the state does not know")?;
            let old_bytes = read_at(&plan_file, (rec.plan.0, rec.plan.1.saturating_sub(rec.plan.0))).why("reading the plan")?;
            let value_at = old_bytes.iter().position(|b| *b == b':').why("the plan's entry")? + 1;
            let old: dvt_schema::plan::PlanNode = serde_json::from_slice(&old_bytes[value_at..]).why("the plan's entry")?;
            // Its tests are declared in properties files, unchanged.
            new.tests = old.tests;
            // What other parts of the plan derive from a node must not move.
            let same = old.target == new.target
                && old.relation == new.relation
                && old.upstreams == new.upstreams
                && old.compute == new.compute
                && old.bucket == new.bucket
                && old.path == new.path
                && old.depends_on == new.depends_on
                && old.materialization == new.materialization
                && old.render_at_runtime == new.render_at_runtime
                && new.federation.is_none();
            if !same {
                return Err(format!("{uid}'s place in the plan changed"));
            }
            step.plan_edits.push((rec.plan, spans::entry(uid, &**new, true, 2).why("serializing")?));
        }
        // dbt's manifest: the models' entries (unit tests have theirs in `unit_tests`, unchanged).
        let target_path = project.root_package().file.target_path();
        let paths: BTreeMap<&str, &str> = compiled.files.iter().map(|(p, id)| (id.as_str(), p.as_str())).collect();
        for (uid, units) in models {
            let rec = by_uid(&uid).filter(|r| r.manifest != (0, 0)).why("no manifest entry")?;
            let node = &project.nodes[&uid];
            let code = compiled.plan.nodes.get(&uid).and_then(|p| p.compiled_sql.as_deref());
            let entry = crate::manifest_dbt::compiled_node_entry(
                &project,
                &g.jinja,
                &graph,
                &compiled.index.placements,
                node,
                code.map(|c| (c, paths.get(uid.as_str()).copied())),
                &target_path,
            )
            .why("serializing")?;
            step.manifest_edits.push((rec.manifest, entry));
            let snap = SnapshotOf { node, units: &units, whole: None };
            step.recompiled.push((uid, serde_json::to_vec(&snap).why("serializing")?));
        }
        step.plan_edits.sort_by_key(|(span, _)| span.0);
        step.manifest_edits.sort_by_key(|(span, _)| span.0);
        step.files =
            compiled.files.iter().map(|(p, uid)| (p.clone(), compiled.plan.compiled_sql(uid).unwrap_or_default().to_string())).collect();
        Ok(step)
    }

    /// Writes the artifacts: each replaced whole and atomically, as a whole compile replaces them.
    /// Returns what the kept previous copies of the plan and the manifest hold now.
    fn apply(&self, target_dir: &Path, saved: &Saved) -> std::io::Result<(Option<Shared>, Option<Shared>)> {
        let splice = |name: &str, edits: &[(spans::Span, Vec<u8>)], shared: &Option<Shared>| -> std::io::Result<Option<Shared>> {
            if edits.is_empty() {
                return Ok(shared.clone());
            }
            let e: Vec<(u64, u64, &[u8])> = edits.iter().map(|(s, b)| (s.0, s.1, b.as_slice())).collect();
            crate::artifact_write::splice(&target_dir.join(name), true, &e, shared.as_ref()).map(|(_, shared)| Some(shared))
        };
        // On two cores at once: both are mostly copies the kernel makes.
        let shared = std::thread::scope(|scope| {
            let plan = scope.spawn(|| splice("plan.json", &self.plan_edits, &saved.plan_shared));
            let manifest = splice("manifest.json", &self.manifest_edits, &saved.manifest_shared)?;
            let plan = plan.join().unwrap_or_else(|_| Err(std::io::Error::other("the plan writer panicked")))?;
            Ok::<_, std::io::Error>((plan, manifest))
        })?;
        let files: Vec<(&str, &str)> = self.files.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
        crate::compiled_files::update(target_dir, &files).map_err(|e| std::io::Error::other(e.message))?;
        Ok(shared)
    }

    /// Brings `saved` up to date with what this compile wrote.
    fn update(&self, saved: &mut Saved, tree: Vec<Entry>, plan: &Path, manifest: &Path, snapshots: &Path) -> std::io::Result<()> {
        // Appended snapshots replace the old ones (the next whole compile rewrites the file).
        if !self.recompiled.is_empty() {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(snapshots)?;
            let mut at = f.metadata()?.len();
            for (uid, blob) in &self.recompiled {
                f.write_all(blob)?;
                let i = saved.nodes.binary_search_by(|n| n.uid.as_str().cmp(uid)).map_err(|_| std::io::Error::other("unknown node"))?;
                saved.nodes[i].blob = (at, blob.len() as u64);
                at += blob.len() as u64;
            }
        }
        let lengths = |edits: &[(spans::Span, Vec<u8>)]| edits.iter().map(|(s, b)| (*s, b.len() as u64)).collect::<Vec<_>>();
        let (plan_edits, manifest_edits) = (lengths(&self.plan_edits), lengths(&self.manifest_edits));
        for n in &mut saved.nodes {
            n.plan = moved(n.plan, &plan_edits);
            n.manifest = moved(n.manifest, &manifest_edits);
        }
        saved.metadata = moved(saved.metadata, &manifest_edits);
        saved.tree = tree;
        // Variables the recompiled models read for the first time (the others were checked unchanged).
        let mut env: BTreeMap<String, String> = saved.env.drain(..).collect();
        env.extend(inputs::env_reads());
        saved.env = env.into_iter().collect();
        let stamp = |p: &Path| Stamp::of(p).ok_or_else(|| std::io::Error::other("an artifact disappeared"));
        saved.plan = stamp(plan)?;
        saved.manifest = stamp(manifest)?;
        saved.nodes_file = stamp(snapshots)?;
        Ok(())
    }
}

/// A reason for a whole compile, from a failed step.
trait Why<T> {
    fn why(self, reason: &str) -> Result<T, String>;
}

impl<T> Why<T> for Option<T> {
    fn why(self, reason: &str) -> Result<T, String> {
        self.ok_or_else(|| reason.to_string())
    }
}

impl<T, E: std::fmt::Display> Why<T> for Result<T, E> {
    fn why(self, reason: &str) -> Result<T, String> {
        self.map_err(|e| format!("{reason}: {e}"))
    }
}

/// `len` bytes of `f` from `offset`: (offset, len).
fn read_at(f: &std::fs::File, (offset, len): (u64, u64)) -> Option<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).ok()?];
    std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, offset).ok()?;
    Some(buf)
}

/// Where `span` is after `edits` (sorted: old span, new length) were applied.
fn moved(span: spans::Span, edits: &[(spans::Span, u64)]) -> spans::Span {
    if span == (0, 0) {
        return span;
    }
    let mut shift: i64 = 0;
    for ((start, end), len) in edits {
        if *start == span.0 && *end == span.1 {
            let s = span.0.saturating_add_signed(shift);
            return (s, s + len);
        }
        if *end <= span.0 {
            shift += *len as i64 - (*end - *start) as i64;
        }
    }
    (span.0.saturating_add_signed(shift), span.1.saturating_add_signed(shift))
}

/// The manifest's `"metadata":{…}` entry as it is, stamped now (as a whole compile stamps it).
fn metadata_entry(manifest: &Path, span: spans::Span) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(manifest)?;
    let old = read_at(&f, (span.0, span.1.saturating_sub(span.0))).ok_or_else(|| std::io::Error::other("no metadata"))?;
    let value_at = old.iter().position(|b| *b == b':').ok_or_else(|| std::io::Error::other("no metadata"))? + 1;
    let mut value: serde_json::Value = serde_json::from_slice(&old[value_at..]).map_err(std::io::Error::other)?;
    let now = crate::manifest_dbt::now();
    for k in ["generated_at", "invocation_started_at"] {
        value[k] = serde_json::Value::String(now.clone());
    }
    value["invocation_id"] = serde_json::Value::from(crate::manifest_dbt::invocation_id());
    spans::entry("metadata", &value, false, 1)
}
