//! Loads a project: project files, packages, connection files, macros,
//! models, seeds, snapshots, tests, analyses, sources and properties YAML.
//! Models are rendered (in parallel) to find their `ref`s, `source`s and
//! `config()`; the result is a [`Project`] with resolved dependencies.

pub(crate) mod files;
mod generic_tests;
mod packages;
mod project_config;
pub(crate) mod properties;
pub mod python;
mod render;
mod unit_tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value as Json;

use crate::config::{self, Config, ConfigExt};
use crate::error::{DvtError, ErrorCode, Location, Result, line_col};
use crate::jinja::{self, BlockKind, Jinja, MacroDef, RefCall, Vars};
use crate::nodes::{Column, Node, Package, Project, ResourceType, Source};
use crate::profiles;
use crate::yaml;
use generic_tests::TestTarget;
use properties::{ColumnProps, NodePatch, PropertiesFile, tag_list};

pub use generic_tests::kwarg_dependencies;
pub use render::{ParseResolver, model_value, node_ctx, target_value};

/// What the loader needs from the command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub project_dir: PathBuf,
    pub profiles_dir: Option<PathBuf>,
    /// `--target`.
    pub target: Option<String>,
    /// `--vars` as YAML/JSON text.
    pub vars: Option<String>,
}

/// A file of a package awaiting node creation.
struct PendingNode {
    node: Node,
}

/// What every node of a project is loaded against: its packages, connections,
/// vars, macros and docs, and the Jinja environment built from them.
pub(crate) struct Globals {
    pub project_dir: PathBuf,
    /// Root first.
    pub packages: Vec<Package>,
    /// The profile's outputs (buckets are added as pseudo-outputs by [`add_bucket_outputs`]).
    pub profile: profiles::Profile,
    pub active_target: String,
    pub computes: profiles::Registry<profiles::Compute>,
    pub buckets: profiles::Registry<profiles::Bucket>,
    pub vars: Arc<Vars>,
    pub target_val: minijinja::Value,
    pub macro_defs: Vec<MacroDef>,
    pub docs: BTreeMap<(String, String), String>,
    pub jinja: Jinja,
}

/// Loads the project file, packages, connections, vars, macros and docs
/// (`lazy_macros`: macros are parsed when first called, see [`Jinja::new_lazy`]).
pub(crate) fn load_globals(opts: &LoadOptions, lazy_macros: bool) -> Result<Globals> {
    let project_dir = std::fs::canonicalize(&opts.project_dir).map_err(|e| {
        DvtError::new(ErrorCode::ProjectNotFound, format!("project directory {} does not exist: {e}", opts.project_dir.display()))
    })?;
    let root_file = crate::project::load_project_file(&project_dir, "")?;
    let packages = packages::discover(&project_dir, root_file)?;
    let root = &packages[0];
    let root_name = root.name.clone();

    // Connections.
    let dirs = profiles::search_dirs(opts.profiles_dir.as_deref(), &project_dir);
    let profile_name = root.file.profile.clone().unwrap_or_else(|| root_name.clone());
    let profile = profiles::load_profile(&dirs, &project_dir, &profile_name)?;
    let active_target = opts.target.clone().unwrap_or_else(|| profile.default_target.clone());
    if !profile.outputs.contains_key(&active_target) {
        return Err(DvtError::new(
            ErrorCode::TargetNotFound,
            format!(
                "target `{active_target}` is not an output of profile `{profile_name}` (outputs: {})",
                profile.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .hint("pass --target with one of these outputs, or fix `target:` in profiles.yml"));
    }
    let computes = profiles::load_computes(&dirs, &project_dir, &profile_name)?;
    let buckets = profiles::load_buckets(&dirs, &project_dir, &profile_name)?;

    let vars = Arc::new(build_vars(&packages, opts.vars.as_deref())?);
    let mut packages = packages;
    let target_val = target_value(&profile.name, &profile.outputs[&active_target]);
    for pkg in &mut packages {
        project_config::render(pkg, &vars, &target_val)?;
    }
    let root = &packages[0];

    // Macros and docs of every package, then the environment.
    let mut macro_defs = jinja::builtin_macros();
    let mut docs: BTreeMap<(String, String), String> = BTreeMap::new();
    for pkg in &packages {
        collect_macros_and_docs(pkg, &mut macro_defs, &mut docs)?;
    }
    let dispatch: HashMap<String, Vec<String>> =
        root.file.dispatch.iter().flatten().map(|d| (d.macro_namespace.clone(), d.search_order.clone())).collect();
    let package_names: Vec<String> = packages.iter().map(|p| p.name.clone()).collect();
    let mut jinja = match lazy_macros {
        true => Jinja::new_lazy(macro_defs.clone(), &root_name, &package_names, dispatch)?,
        false => Jinja::new(macro_defs.clone(), &root_name, &package_names, dispatch)?,
    };
    // What dbt's RuntimeConfig tells packages that read `builtins.ref.config`.
    let dependencies: serde_json::Map<String, Json> =
        packages.iter().map(|p| (p.name.clone(), serde_json::json!({"project_name": p.name, "version": p.file.version}))).collect();
    jinja.set_runtime_config(serde_json::json!({
        "project_name": root_name,
        "version": packages[0].file.version,
        "profile_name": profile_name,
        "target_name": active_target,
        "dependencies": dependencies,
        "args": {},
        "vars": {},
    }));
    Ok(Globals { project_dir, packages, profile, active_target, computes, buckets, vars, target_val, macro_defs, docs, jinja })
}

/// Buckets are pseudo-outputs of type `bucket`: sources read from them and models written
/// to them go through the compute. A database output of the same name wins.
pub(crate) fn add_bucket_outputs(profile: &mut profiles::Profile, buckets: &profiles::Registry<profiles::Bucket>) {
    for name in buckets.entries.keys() {
        profile.outputs.entry(name.clone()).or_insert_with(|| profiles::Output {
            name: name.clone(),
            kind: BUCKET_OUTPUT.into(),
            database: None,
            schema: "main".into(),
            threads: None,
        });
    }
}

/// Renders one SQL node again as [`load`] renders it (its file changed): `node`
/// is its state before rendering; it comes back with what the render observed.
pub(crate) fn rerender(g: &Globals, node: Node) -> Result<Node> {
    let kind = g.profile.outputs.get(&g.active_target).map(|o| o.kind.clone()).unwrap_or_default();
    let resolver = Arc::new(ParseResolver::new(g.docs.clone(), kind.clone(), g.packages[0].name.clone()));
    let mut pending = [PendingNode { node }];
    render::render_all(&g.jinja, &mut pending, resolver, g.vars.clone(), &g.target_val, &kind)?;
    let [p] = pending;
    Ok(p.node)
}

/// Loads and parses the project.
pub fn load(opts: &LoadOptions) -> Result<(Project, Jinja, crate::graph::Graph)> {
    let Globals { project_dir, packages, mut profile, active_target, computes, buckets, vars, target_val, macro_defs, docs, jinja } =
        load_globals(opts, false)?;
    let root_name = packages[0].name.clone();
    crate::timing::phase("macros and Jinja environment");

    // Nodes from files.
    let mut pending: Vec<PendingNode> = Vec::new();
    for pkg in &packages {
        collect_nodes(pkg, &packages[0], &mut pending)?;
    }
    crate::timing::phase("files read");
    let mut by_key: HashMap<(String, ResourceType, String), usize> = HashMap::new();
    for (i, p) in pending.iter().enumerate() {
        let key = (p.node.package.clone(), p.node.resource_type, p.node.name.clone());
        if let Some(prev) = by_key.insert(key, i) {
            let other = &pending[prev].node;
            return Err(DvtError::new(
                ErrorCode::DuplicateNode,
                format!(
                    "two {}s are named `{}` in package `{}`: {} and {}",
                    p.node.resource_type, p.node.name, p.node.package, other.file, p.node.file
                ),
            )
            .at(Location::file(&p.node.file))
            .hint("rename one of them (names must be unique per package and resource type)"));
        }
    }

    // Properties YAML: patches, sources, and the tests they declare.
    let target_output = profile.outputs[&active_target].clone();
    let resolver = Arc::new(ParseResolver::new(docs.clone(), target_output.kind.clone(), root_name.clone()));
    let mut warnings = Vec::new();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut test_decls: Vec<TestDecl> = Vec::new();
    let require_connection = require_source_connection(&packages[0]);
    let mut renderer = render::TextRenderer {
        jinja: &jinja,
        resolver: resolver.clone(),
        vars: vars.clone(),
        target: target_val.clone(),
        dialect_kind: target_output.kind.clone(),
        cache: HashMap::new(),
        doc_blocks_cache: HashMap::new(),
    };
    // Read and parse every properties file in parallel, then apply them in file order.
    let mut yml: Vec<(usize, PathBuf, String)> = Vec::new();
    for (i, pkg) in packages.iter().enumerate() {
        yml.extend(properties_files(pkg)?.into_iter().map(|p| (i, p.clone(), format!("{}{}", pkg.rel, files::rel(&p, &pkg.root)))));
    }
    let parsed: Vec<Result<PropertiesFile>> =
        yml.par_iter().map(|(_, path, display)| yaml::parse(&files::read(path, display)?, display)).collect();
    crate::timing::phase("properties YAML parsed");
    let mut unit_decls = Vec::new();
    let mut semantic_decls = Vec::new();
    for ((i, path, display), props) in yml.iter().zip(parsed) {
        let mut props = props?;
        let pkg = &packages[*i];
        if !props.unit_tests.is_empty() {
            let text = files::read(path, display)?;
            let (_, _, folders) = properties_place(pkg, display);
            for value in std::mem::take(&mut props.unit_tests) {
                unit_decls.push(unit_tests::UnitDecl {
                    fixture_dirs: resource_dirs(pkg, &pkg.file.test_paths()).into_iter().map(|d| d.join("fixtures")).collect(),
                    package: pkg.name.clone(),
                    file: display.clone(),
                    folders: folders.clone(),
                    text: text.clone(),
                    value,
                });
            }
        }
        semantic_declarations(pkg, path, display, &mut props, &mut renderer, &mut semantic_decls)?;
        add_bucket_seeds(pkg, &packages[0], &props, display, &mut pending, &mut by_key)?;
        apply_patches(pkg, &props, display, &mut pending, &by_key, &mut renderer, &mut test_decls, &mut warnings)?;
        for group in &props.sources {
            load_source_group(
                pkg,
                group,
                display,
                &profile,
                &buckets,
                &active_target,
                require_connection,
                &mut renderer,
                &mut sources,
                &mut test_decls,
            )?;
        }
    }
    add_bucket_outputs(&mut profile, &buckets);
    crate::timing::phase("properties YAML");
    // Render SQL nodes to learn refs, sources and config().
    render::render_all(&jinja, &mut pending, resolver.clone(), vars.clone(), &target_val, &target_output.kind)?;

    crate::timing::phase("nodes rendered");
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut disabled: BTreeMap<String, Node> = BTreeMap::new();
    for p in pending {
        if p.node.config.enabled() {
            nodes.insert(p.node.unique_id.clone(), p.node);
        } else {
            disabled.insert(p.node.unique_id.clone(), p.node);
        }
    }
    sources.retain(|_, s| s.config.enabled());

    // Generic tests, attached to enabled nodes only (dbt drops the others).
    let project_tests = packages[0].file.tests.clone();
    let renderers: HashMap<&str, project_config::ConfigRenderer> =
        packages.iter().map(|p| (p.name.as_str(), project_config::ConfigRenderer::new(&p.name, &vars, &target_val))).collect();
    // Consume the declarations: their YAML values move into the test nodes.
    let mut built: Vec<BuiltTest> = test_decls
        .into_par_iter()
        .map(|decl| {
            let renderer = &renderers[&*decl.package];
            let render_config = |s: &str, at: &Location| renderer.render_str(s, at);
            let built = build_test(&decl, (&nodes, &disabled), &sources, project_tests.as_ref(), &render_config);
            (decl.file, decl.line, built)
        })
        .collect();
    // The first error in declaration order.
    if let Some(i) = built.iter().position(|(_, _, n)| n.is_err()) {
        std::mem::replace(&mut built[i].2, Ok(None))?;
    }
    // Models' keys as their tests imply them (the tests of disabled nodes imply nothing for enabled ones).
    let test_keys = infer_test_keys(built.iter().filter_map(|(_, _, n)| n.as_ref().ok()?.as_ref()?.test.as_deref()));
    if !disabled.is_empty() {
        for (_, _, slot) in &mut built {
            // A test of a disabled node is kept as dbt keeps it (listed, never run).
            if let Ok(Some(node)) = slot
                && node.test.as_ref().is_some_and(|t| disabled.contains_key(&t.attached_node))
                && let Ok(Some(node)) = std::mem::replace(slot, Ok(None))
            {
                disabled.entry(node.unique_id.clone()).or_insert(node);
            }
        }
    }
    nodes = merge_tests(nodes, &mut built, &mut warnings);
    // Emptied, but 10 MB at 17,000 tests: freed now, for what loading allocates next.
    drop(built);
    for (id, key) in test_keys {
        if let Some(n) = nodes.get_mut(&id).filter(|n| n.resource_type == ResourceType::Model) {
            n.test_key = key;
        }
    }
    crate::timing::phase("generic tests");
    let mut project = Project {
        root: project_dir,
        name: root_name,
        packages,
        profile,
        active_target,
        target_from_cli: opts.target.is_some(),
        computes,
        buckets,
        nodes,
        disabled,
        sources,
        docs,
        macros: macro_defs,
        vars,
        selectors: BTreeMap::new(),
        semantic: Default::default(),
        warnings,
    };
    resolve_dependencies(&mut project)?;
    for u in unit_tests::build(&project, unit_decls)? {
        let into = if u.config.enabled() { &mut project.nodes } else { &mut project.disabled };
        into.insert(u.unique_id.clone(), u);
    }
    // The semantic layer and the DAG both read the final nodes: built side by side.
    let (semantic, graph) = rayon::join(
        || crate::semantic::build(&project, semantic_decls),
        || crate::graph::Graph::build(&project).and_then(|g| g.check_acyclic(&project).map(|()| g)),
    );
    project.semantic = semantic?;
    let graph = graph?;
    crate::timing::phase("dependencies resolved, DAG checked");
    project.selectors = crate::select::load_selectors(&project.root)?;
    Ok((project, jinja, graph))
}

/// A generic test as built from its declaration: file, line and the node
/// (`None`: not built, or already taken).
type BuiltTest = (Arc<str>, u32, Result<Option<Node>>);

/// `nodes` with the generic `tests` (in declaration order; the nodes are taken
/// out) added: a test whose id is taken keeps the node that has it (the first
/// declared), with a warning. One merge of sorted lists, not an insertion per test:
/// each would shift the 544-byte nodes of a tree leaf. Each node moves once on
/// the way (tens of thousands of them: the copies were most of the time).
fn merge_tests(nodes: BTreeMap<String, Node>, tests: &mut [BuiltTest], warnings: &mut Vec<String>) -> BTreeMap<String, Node> {
    // Sorted by id, declaration order among equal ids (the index breaks ties).
    let mut by_id: Vec<(&str, usize)> =
        tests.iter().enumerate().filter_map(|(i, (_, _, n))| Some((n.as_ref().ok()?.as_ref()?.unique_id.as_str(), i))).collect();
    by_id.par_sort_unstable();
    let order: Vec<usize> = by_id.into_iter().map(|(_, i)| i).collect();
    let mut duplicates: Vec<(usize, String)> = Vec::new();
    let mut merged: Vec<(String, Node)> = Vec::with_capacity(nodes.len() + order.len());
    let mut existing = nodes.into_iter().peekable();
    for i in order {
        let (file, line, slot) = &mut tests[i];
        let Ok(Some(node)) = std::mem::replace(slot, Ok(None)) else { continue };
        while let Some(n) = existing.next_if(|(id, _)| *id < node.unique_id) {
            merged.push(n);
        }
        let kept = match existing.peek() {
            Some((id, n)) if *id == node.unique_id => Some(n),
            _ => merged.last().map(|(_, n)| n).filter(|n| n.unique_id == node.unique_id),
        };
        match kept {
            Some(first) => duplicates
                .push((i, format!("{file}:{line}: test `{}` is declared twice; keeping the first (from {})", node.name, first.file))),
            None => merged.push((node.unique_id.clone(), node)),
        }
    }
    merged.extend(existing);
    // Warnings in declaration order.
    duplicates.sort_by_key(|(i, _)| *i);
    warnings.extend(duplicates.into_iter().map(|(_, w)| w));
    // Sorted and unique: built in one pass.
    merged.into_iter().collect()
}

/// Where a properties file is, as dbt names it: inside its package
/// (`models/marts/orders.yml`), below its resource folder (`marts/orders.yml`),
/// and the folders in between (`[marts]`, for fqns).
fn properties_place(pkg: &Package, display: &str) -> (String, String, Vec<String>) {
    let original = display.strip_prefix(&pkg.rel).unwrap_or(display).to_string();
    let parts: Vec<&str> = original.split('/').collect();
    let below = parts[1.min(parts.len())..].join("/");
    let folders = parts[1.min(parts.len())..parts.len().saturating_sub(1)].iter().map(|s| s.to_string()).collect();
    (original, below, folders)
}

/// Takes a properties file's exposures, groups, semantic models, metrics and saved
/// queries out of it, their descriptions rendered (`{{ doc(...) }}`).
fn semantic_declarations(
    pkg: &Package,
    path: &std::path::Path,
    display: &str,
    props: &mut PropertiesFile,
    renderer: &mut render::TextRenderer<'_>,
    out: &mut Vec<crate::semantic::Declared>,
) -> Result<()> {
    use crate::semantic::Kind;
    let lists = [
        (Kind::Exposure, std::mem::take(&mut props.exposures)),
        (Kind::Group, std::mem::take(&mut props.groups)),
        (Kind::SemanticModel, std::mem::take(&mut props.semantic_models)),
        (Kind::Metric, std::mem::take(&mut props.metrics)),
        (Kind::SavedQuery, std::mem::take(&mut props.saved_queries)),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        return Ok(());
    }
    let text = files::read(path, display)?;
    let (original, below, folders) = properties_place(pkg, display);
    for (kind, list) in lists {
        for mut value in list {
            let name = value.get("name").and_then(Json::as_str).unwrap_or_default().to_string();
            let line = unit_tests::line_of(&text, &name);
            let mut render = |v: &mut Json| -> Result<()> {
                if let Some(Json::String(d)) = v.get_mut("description") {
                    *d = renderer.render(d, &pkg.name, display, line)?;
                }
                Ok(())
            };
            render(&mut value)?;
            for key in ["entities", "measures", "dimensions"] {
                for item in value.get_mut(key).and_then(Json::as_array_mut).into_iter().flatten() {
                    render(item)?;
                }
            }
            out.push(crate::semantic::Declared {
                kind,
                package: pkg.name.clone(),
                file: display.to_string(),
                original_file_path: original.clone(),
                path: below.clone(),
                folders: folders.clone(),
                line,
                value,
            });
        }
    }
    Ok(())
}

/// SPEC §2 rule 4: the flag in `flags:` or `DVT_REQUIRE_SOURCE_CONNECTION`.
/// The type of the pseudo-output a bucket source lives on.
pub const BUCKET_OUTPUT: &str = "bucket";

/// The files of a bucket source: `external: {location, format, delimiter, header}`;
/// by default every Parquet file under `<schema>/<identifier>/`.
fn external_files(v: Option<&Json>, schema: &str, identifier: &str, file: &str, line: u32) -> Result<dvt_schema::plan::ExternalFiles> {
    let get = |k: &str| v.and_then(|v| v.get(k));
    let text = |k: &str| get(k).and_then(Json::as_str).map(str::to_string);
    let format = text("format").or(text("file_format")).unwrap_or_else(|| "parquet".into()).to_ascii_lowercase();
    let format = match format.as_str() {
        "parquet" => "parquet",
        "csv" => "csv",
        "json" | "jsonl" | "ndjson" => "json",
        other => {
            return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("source table `{identifier}` has `format: {other}`"))
                .at(Location::new(file, line, 0))
                .hint("bucket sources read parquet, csv or json (newline-delimited) files"));
        }
    };
    let location = text("location").unwrap_or_else(|| format!("{schema}/{identifier}/"));
    if location.contains("://") || location.split('/').any(|p| p == "..") {
        return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("source table `{identifier}` has `location: {location}`"))
            .at(Location::new(file, line, 0))
            .hint("give a path inside the bucket (relative to its root or prefix), e.g. raw/orders/"));
    }
    Ok(dvt_schema::plan::ExternalFiles {
        location: location.trim_start_matches('/').to_string(),
        format: format.into(),
        delimiter: text("delimiter"),
        header: get("header").and_then(Json::as_bool),
    })
}

fn require_source_connection(root: &Package) -> bool {
    if let Ok(v) = std::env::var("DVT_REQUIRE_SOURCE_CONNECTION") {
        return !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no");
    }
    root.file.flag("require_source_connection").unwrap_or(true)
}

fn build_vars(packages: &[Package], cli: Option<&str>) -> Result<Vars> {
    let mut vars = Vars::default();
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    if let Some(text) = cli.filter(|t| !t.trim().is_empty()) {
        let parsed: Json = serde_saphyr::from_str(text).map_err(|e| {
            DvtError::new(ErrorCode::VarsInvalid, format!("--vars is not valid YAML: {}", e.without_snippet()))
                .hint("pass a mapping, e.g. --vars '{start_date: 2024-01-01}'")
        })?;
        match parsed {
            Json::Object(m) => vars.cli = m,
            Json::Null => {}
            other => {
                return Err(DvtError::new(ErrorCode::VarsInvalid, format!("--vars must be a mapping, got {other}"))
                    .hint("pass a mapping, e.g. --vars '{key: value}'"));
            }
        }
    }
    // The root project's vars (global, or scoped to a package) win over a package's own.
    for (i, pkg) in packages.iter().enumerate() {
        for (k, v) in pkg.file.vars.iter().flatten() {
            match (v.as_object(), names.contains(&k.as_str()), i == 0) {
                (Some(scoped), true, true) => vars.by_package.entry(k.clone()).or_default().extend(scoped.clone()),
                (_, _, true) => {
                    vars.global.insert(k.clone(), v.clone());
                }
                (Some(scoped), true, false) => {
                    let entry = vars.own.entry(k.clone()).or_default();
                    for (sk, sv) in scoped {
                        entry.entry(sk.clone()).or_insert_with(|| sv.clone());
                    }
                }
                (_, _, false) => {
                    vars.own.entry(pkg.name.clone()).or_default().entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    Ok(vars)
}

fn resource_dirs(pkg: &Package, paths: &[String]) -> Vec<PathBuf> {
    paths.iter().map(|p| pkg.root.join(p)).filter(|p| p.is_dir()).collect()
}

fn collect_macros_and_docs(pkg: &Package, defs: &mut Vec<MacroDef>, docs: &mut BTreeMap<(String, String), String>) -> Result<()> {
    let f = &pkg.file;
    let mut macro_dirs = resource_dirs(pkg, &f.macro_paths());
    for t in resource_dirs(pkg, &f.test_paths()) {
        let g = t.join("generic");
        if g.is_dir() {
            macro_dirs.push(g);
        }
    }
    for dir in macro_dirs {
        for path in files::walk(&pkg.root, &dir, &["sql", "jinja", "j2"])? {
            let display = format!("{}{}", pkg.rel, files::rel(&path, &pkg.root));
            let text = files::read(&path, &display)?;
            for b in jinja::scan(&text, &display)? {
                match b.kind {
                    BlockKind::Macro | BlockKind::Test => {
                        if let Some(d) = jinja::macro_def(&text, &b, &pkg.name, &display) {
                            defs.push(d);
                        }
                    }
                    BlockKind::Docs => {
                        docs.insert((pkg.name.clone(), b.name.clone()), text[b.body_start..b.body_end].trim().to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    let mut doc_dirs: Vec<String> = f.docs_paths.clone().unwrap_or_default();
    if doc_dirs.is_empty() {
        for p in [f.model_paths(), f.seed_paths(), f.snapshot_paths(), f.analysis_paths(), f.macro_paths(), f.test_paths()] {
            doc_dirs.extend(p);
        }
    }
    doc_dirs.sort();
    doc_dirs.dedup();
    for dir in resource_dirs(pkg, &doc_dirs) {
        for path in files::walk(&pkg.root, &dir, &["md"])? {
            let display = format!("{}{}", pkg.rel, files::rel(&path, &pkg.root));
            let text = files::read(&path, &display)?;
            for b in jinja::scan(&text, &display)? {
                if b.kind == BlockKind::Docs {
                    docs.insert((pkg.name.clone(), b.name.clone()), text[b.body_start..b.body_end].trim().to_string());
                }
            }
        }
    }
    Ok(())
}

/// The resource tree of the project file for a resource type.
fn tree(file: &crate::project::ProjectFile, rt: ResourceType) -> Option<&Json> {
    match rt {
        ResourceType::Model => file.models.as_ref(),
        ResourceType::Seed => file.seeds.as_ref(),
        ResourceType::Snapshot => file.snapshots.as_ref(),
        ResourceType::Test => file.tests.as_ref(),
        ResourceType::Analysis => file.analyses.as_ref(),
        ResourceType::Source => file.sources.as_ref(),
        ResourceType::UnitTest => None,
    }
}

/// Defaults, the package's own project file, then the root project file.
pub(crate) fn base_config(rt: ResourceType, fqn: &[String], pkg: &Package, root: &Package) -> Config {
    let mut cfg = Config::new();
    let materialized = match rt {
        ResourceType::Model => "view",
        ResourceType::Seed => "seed",
        ResourceType::Snapshot => "snapshot",
        ResourceType::Test => "test",
        ResourceType::Analysis => "view",
        ResourceType::Source => "source",
        ResourceType::UnitTest => "unit",
    };
    if rt != ResourceType::Source {
        cfg.insert("materialized".into(), Json::from(materialized));
    }
    cfg.insert("enabled".into(), Json::Bool(true));
    config::apply_project_tree(&mut cfg, tree(&pkg.file, rt), fqn);
    if pkg.name != root.name {
        config::apply_project_tree(&mut cfg, tree(&root.file, rt), fqn);
    }
    cfg
}

/// Where a node comes from in its package.
struct NodeSource {
    name: String,
    folders: Vec<String>,
    file: String,
    raw: String,
    raw_line: u32,
}

fn new_node(rt: ResourceType, pkg: &Package, root: &Package, src: NodeSource) -> Node {
    let NodeSource { name, folders, file, raw, raw_line } = src;
    let mut fqn = vec![pkg.name.clone()];
    fqn.extend(folders);
    fqn.push(name.clone());
    let config = base_config(rt, &fqn, pkg, root);
    Node {
        unique_id: format!("{}.{}.{}", rt.as_str(), pkg.name, name),
        resource_type: rt,
        package: pkg.name.clone(),
        name,
        fqn,
        file,
        raw,
        raw_line,
        config,
        ..Default::default()
    }
}

/// A SQL file's node text and the line it starts on: dbt strips a file's
/// contents; the first kept line stays the file's line.
pub(crate) fn sql_text(text: &str) -> (String, u32) {
    let lead = &text[..text.len() - text.trim_start().len()];
    (text.trim().to_string(), 1 + lead.matches('\n').count() as u32)
}

/// Each model's key as dbt infers it from its tests (`ModelNode.infer_primary_key`):
/// the columns with both a `unique` (or `unique_combination_of_columns`) and a
/// `not_null` test, else those with a unique test. Sorted (dbt's come from a set).
fn infer_test_keys<'t>(tests: impl Iterator<Item = &'t crate::nodes::TestInfo>) -> Vec<(String, Vec<String>)> {
    // Borrowed names while reading; the few keys found are written after.
    let mut tested: HashMap<&str, (Vec<&str>, Vec<&str>), foldhash::fast::RandomState> = HashMap::default();
    for t in tests {
        let unique = match t.name.as_str() {
            "unique" | "unique_combination_of_columns" => true,
            "not_null" => false,
            _ => continue,
        };
        let (column, combination) = match (t.kwargs.get("column_name"), t.kwargs.get("combination_of_columns")) {
            (Some(Json::String(c)), _) => (Some(c.as_str()), None),
            (_, Some(Json::Array(cs))) => (None, Some(cs)),
            _ => continue,
        };
        let sets = tested.entry(t.attached_node.as_str()).or_default();
        let set = if unique { &mut sets.0 } else { &mut sets.1 };
        set.extend(column.into_iter().chain(combination.into_iter().flatten().filter_map(Json::as_str)));
    }
    tested
        .into_iter()
        .map(|(id, (mut unique, mut not_null))| {
            for set in [&mut unique, &mut not_null] {
                set.sort_unstable();
                set.dedup();
            }
            let both: Vec<String> = unique.iter().filter(|c| not_null.binary_search(c).is_ok()).map(|c| c.to_string()).collect();
            (id.to_string(), if both.is_empty() { unique.into_iter().map(str::to_string).collect() } else { both })
        })
        .collect()
}

/// One node per `.sql` file under `paths` (models, analyses).
fn sql_file_nodes(pkg: &Package, root: &Package, paths: &[String], rt: ResourceType, out: &mut Vec<PendingNode>) -> Result<()> {
    // Models may also be Python (`.py`), as in dbt.
    let exts: &[&str] = if rt == ResourceType::Model { &["sql", "py"] } else { &["sql"] };
    let mut files = Vec::new();
    for dir in resource_dirs(pkg, paths) {
        files.extend(files::walk(&pkg.root, &dir, exts)?.into_iter().map(|path| (dir.clone(), path)));
    }
    // Read and set up in parallel (thousands of files), kept in walk order.
    let nodes: Vec<Result<PendingNode>> = files
        .par_iter()
        .map(|(dir, path)| {
            let display = format!("{}{}", pkg.rel, files::rel(path, &pkg.root));
            let (raw, raw_line) = sql_text(&files::read(path, &display)?);
            let is_python = path.extension().is_some_and(|e| e == "py");
            let mut folders = files::folders(path, dir);
            if rt == ResourceType::Analysis {
                // dbt names an analysis by its compiled path, `analysis/<path>`: its fqn has that folder.
                folders.insert(0, "analysis".into());
            }
            let src = NodeSource { name: files::stem(path), folders, file: display, raw, raw_line };
            let mut node = new_node(rt, pkg, root, src);
            if is_python {
                let model = python::parse(&node.raw, &node.file, node.raw_line)?;
                for (k, v) in &model.configs {
                    config::apply(&mut node.config, k, v);
                }
                node.refs = model.refs.clone();
                node.source_calls = model.sources.clone();
                node.python = Some(Box::new(model));
            }
            Ok(PendingNode { node })
        })
        .collect();
    out.reserve(nodes.len());
    for n in nodes {
        out.push(n?);
    }
    Ok(())
}

fn collect_nodes(pkg: &Package, root: &Package, out: &mut Vec<PendingNode>) -> Result<()> {
    let f = &pkg.file;
    sql_file_nodes(pkg, root, &f.model_paths(), ResourceType::Model, out)?;
    for dir in resource_dirs(pkg, &f.seed_paths()) {
        for path in files::walk(&pkg.root, &dir, &crate::seeds::SEED_EXTENSIONS)? {
            let display = format!("{}{}", pkg.rel, files::rel(&path, &pkg.root));
            let mut node = new_node(
                ResourceType::Seed,
                pkg,
                root,
                NodeSource {
                    name: files::stem(&path),
                    folders: files::folders(&path, &dir),
                    file: display,
                    raw: String::new(),
                    raw_line: 1,
                },
            );
            node.seed_path = Some(path.clone());
            out.push(PendingNode { node });
        }
    }
    for dir in resource_dirs(pkg, &f.snapshot_paths()) {
        for path in files::walk(&pkg.root, &dir, &["sql"])? {
            let display = format!("{}{}", pkg.rel, files::rel(&path, &pkg.root));
            let text = files::read(&path, &display)?;
            let mut snapshot_folders = files::folders(&path, &dir);
            snapshot_folders.push(files::stem(&path));
            for b in jinja::scan(&text, &display)? {
                if b.kind != BlockKind::Snapshot {
                    continue;
                }
                let (line, _) = line_col(&text, b.body_start);
                // Keep the text before the body blank so error lines match the file.
                let raw = text[b.body_start..b.body_end].to_string();
                let node = new_node(
                    ResourceType::Snapshot,
                    pkg,
                    root,
                    // dbt: "on snapshots, the fqn includes the filename".
                    NodeSource { name: b.name.clone(), folders: snapshot_folders.clone(), file: display.clone(), raw, raw_line: line },
                );
                out.push(PendingNode { node });
            }
        }
    }
    for dir in resource_dirs(pkg, &f.test_paths()) {
        for path in files::walk(&pkg.root, &dir, &["sql"])? {
            let folders = files::folders(&path, &dir);
            // Generic test definitions are macros; `fixtures/` holds unit test fixture files.
            if folders.first().is_some_and(|f| f == "generic" || f == "fixtures") {
                continue;
            }
            let display = format!("{}{}", pkg.rel, files::rel(&path, &pkg.root));
            // Stripped, as dbt reads every SQL file.
            let (raw, raw_line) = sql_text(&files::read(&path, &display)?);
            let mut node =
                new_node(ResourceType::Test, pkg, root, NodeSource { name: files::stem(&path), folders, file: display, raw, raw_line });
            node.config.entry_or_insert_with("severity".into(), || Json::from("ERROR"));
            out.push(PendingNode { node });
        }
    }
    sql_file_nodes(pkg, root, &f.analysis_paths(), ResourceType::Analysis, out)?;
    Ok(())
}

fn properties_files(pkg: &Package) -> Result<Vec<PathBuf>> {
    let f = &pkg.file;
    let mut dirs: Vec<String> = Vec::new();
    for p in [f.model_paths(), f.seed_paths(), f.snapshot_paths(), f.analysis_paths(), f.macro_paths()] {
        dirs.extend(p);
    }
    dirs.sort();
    dirs.dedup();
    let mut out = Vec::new();
    for d in resource_dirs(pkg, &dirs) {
        out.extend(files::walk(&pkg.root, &d, &["yml", "yaml"])?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A generic test waiting for its attached node to be known enabled.
struct TestDecl {
    entry: Json,
    /// Shared by the tests of one node (thousands of declarations).
    attached: Arc<str>,
    label: Arc<str>,
    model_call: Arc<str>,
    folders: Arc<[String]>,
    package: Arc<str>,
    file: Arc<str>,
    line: u32,
    column: Option<String>,
    column_tags: Vec<String>,
}

fn columns(
    cols: &[ColumnProps],
    renderer: &mut render::TextRenderer<'_>,
    package: &str,
    file: &str,
    line: u32,
) -> Result<crate::sorted_map::SortedMap<String, Column>> {
    let mut out = crate::sorted_map::SortedMap::new();
    for (position, c) in cols.iter().enumerate() {
        let mut meta = c.meta.clone().unwrap_or_default();
        if let Some(Json::Object(m)) = c.config.as_ref().and_then(|cfg| cfg.get("meta")) {
            meta.extend(m.clone());
        }
        let mut tags = tag_list(&c.tags);
        for t in tag_list(&c.config.as_ref().and_then(|cfg| cfg.get("tags")).cloned()) {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        out.insert(
            c.name.clone(),
            Column {
                name: c.name.clone(),
                description: renderer.render(c.description.as_deref().unwrap_or(""), package, file, line)?,
                data_type: c.data_type.clone(),
                tags,
                constraints: c.constraints.clone(),
                position,
                meta,
                granularity: c.granularity.clone(),
                doc_blocks: renderer.doc_blocks(c.description.as_deref().unwrap_or(""), package),
            },
        );
    }
    Ok(out)
}

/// Seeds whose file is in a bucket: a `seeds:` entry with `config: {external:
/// {location}}` and no file of that name declares one (read by `dvtr` from the
/// seed's bucket when it loads). A seed file of the same name wins.
fn add_bucket_seeds(
    pkg: &Package,
    root: &Package,
    props: &PropertiesFile,
    file: &str,
    pending: &mut Vec<PendingNode>,
    by_key: &mut HashMap<(String, ResourceType, String), usize>,
) -> Result<()> {
    for patch in &props.seeds {
        let external = patch.config.as_ref().and_then(|c| c.get("external"));
        let name = &patch.name.value;
        let key = (pkg.name.clone(), ResourceType::Seed, name.clone());
        if external.is_none() || by_key.contains_key(&key) {
            continue;
        }
        let line = patch.name.line;
        let bad = |msg: String| {
            DvtError::new(ErrorCode::ConfigInvalid, msg)
                .at(Location::new(file, line, 0))
                .hint("external: {location: <path of a .csv, .parquet or .jsonl file inside the seed's bucket>}")
        };
        let location = external.and_then(|e| e.get("location")).and_then(Json::as_str).unwrap_or_default();
        if location.is_empty() || location.contains("://") || location.split('/').any(|p| p == "..") || location.ends_with('/') {
            return Err(bad(format!("seed `{name}` has `external` without a file path inside its bucket (`location: {location}`)")));
        }
        // Folders below the seed path the YAML is in (for `seeds:` configs in dbt_project.yml).
        let rel = file.strip_prefix(&pkg.rel).unwrap_or(file);
        let folders: Vec<String> = pkg
            .file
            .seed_paths()
            .iter()
            .find_map(|sp| rel.strip_prefix(&format!("{}/", sp.trim_end_matches('/'))))
            .map(|below| below.split('/').collect::<Vec<_>>())
            .map(|parts| parts[..parts.len().saturating_sub(1)].iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        let node = new_node(
            ResourceType::Seed,
            pkg,
            root,
            NodeSource { name: name.clone(), folders, file: file.to_string(), raw: String::new(), raw_line: line },
        );
        by_key.insert(key, pending.len());
        pending.push(PendingNode { node });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn apply_patches(
    pkg: &Package,
    props: &PropertiesFile,
    file: &str,
    pending: &mut [PendingNode],
    by_key: &HashMap<(String, ResourceType, String), usize>,
    renderer: &mut render::TextRenderer<'_>,
    tests: &mut Vec<TestDecl>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let groups: [(&[NodePatch], ResourceType); 4] = [
        (&props.models, ResourceType::Model),
        (&props.seeds, ResourceType::Seed),
        (&props.snapshots, ResourceType::Snapshot),
        (&props.analyses, ResourceType::Analysis),
    ];
    for (patches, rt) in groups {
        for patch in patches {
            let name = &patch.name.value;
            let line = patch.name.line;
            let versions = model_versions(patch, pkg, rt, by_key, file, line)?;
            if !versions.is_empty() {
                for (idx, v, latest, entry) in versions {
                    let node = &mut pending[idx].node;
                    // dbt: the name without suffix, the version in the id and fqn, `<name>_v<v>` as the default alias.
                    node.name = name.clone();
                    node.unique_id = format!("model.{}.{name}.v{v}", pkg.name);
                    if let Some(last) = node.fqn.last_mut() {
                        *last = name.clone();
                    }
                    node.fqn.push(format!("v{v}"));
                    node.version = Some(v.clone());
                    node.latest_version = Some(latest);
                    apply_patch(node, patch, renderer, pkg, file, line)?;
                    let mut cols = patch.columns.clone();
                    if let Some(c) = entry.get("config").and_then(Json::as_object) {
                        config::apply_all(&mut node.config, c);
                    }
                    if let Some(Json::Array(vcols)) = entry.get("columns") {
                        cols = version_columns(&patch.columns, vcols, file, line)?;
                        node.columns = columns(&cols, renderer, &pkg.name, file, line)?;
                    }
                    let own: Vec<Json> = patch
                        .tests
                        .iter()
                        .chain(entry.get("tests").or(entry.get("data_tests")).and_then(Json::as_array).into_iter().flatten())
                        .cloned()
                        .collect();
                    let target = DeclTarget {
                        unique_id: &node.unique_id,
                        label: format!("{name}_v{}", v.replace('.', "_")),
                        model_call: format!("ref('{name}', v='{v}')"),
                    };
                    declare_tests(tests, &own, &cols, &target, pkg, file, line);
                }
                continue;
            }
            let Some(&idx) = by_key.get(&(pkg.name.clone(), rt, name.clone())) else {
                warnings.push(format!("{file}:{line}: {rt} `{name}` is described here but no such {rt} exists in package `{}`", pkg.name));
                continue;
            };
            let node = &mut pending[idx].node;
            apply_patch(node, patch, renderer, pkg, file, line)?;
            let target = DeclTarget { unique_id: &node.unique_id, label: name.to_string(), model_call: format!("ref('{name}')") };
            declare_tests(tests, &patch.tests, &patch.columns, &target, pkg, file, line);
        }
    }
    Ok(())
}

/// What a properties entry sets on its node: configs, tags, meta, docs, constraints,
/// access and group, the description and the columns.
fn apply_patch(
    node: &mut Node,
    patch: &properties::NodePatch,
    renderer: &mut render::TextRenderer<'_>,
    pkg: &Package,
    file: &str,
    line: u32,
) -> Result<()> {
    node.patch_path = Some(format!("{}://{}", pkg.name, file.strip_prefix(pkg.rel.as_str()).unwrap_or(file)));
    if let Some(cfg) = &patch.config {
        // Jinja in property-file configs renders at parse time, to native values (as dbt).
        let text = serde_json::to_string(cfg).unwrap_or_default();
        if text.contains("{{") || text.contains("{%") {
            let mut tree = Json::Object(cfg.clone());
            project_config::ConfigRenderer::new(&pkg.name, &renderer.vars, &renderer.target)
                .render_tree(&mut tree, &Location::new(file, line, 0))?;
            if let Json::Object(rendered) = tree {
                config::apply_all(&mut node.config, &rendered);
            }
        } else {
            config::apply_all(&mut node.config, cfg);
        }
    }
    if let Some(tags) = &patch.tags {
        config::apply(&mut node.config, "tags", tags);
    }
    if let Some(meta) = &patch.meta {
        config::apply(&mut node.config, "meta", meta);
    }
    if let Some(docs) = &patch.docs {
        config::apply(&mut node.config, "docs", docs);
    }
    if let Some(c) = &patch.constraints {
        config::apply(&mut node.config, "constraints", c);
    }
    if patch.time_spine.is_some() {
        node.time_spine = patch.time_spine.clone().map(Box::new);
    }
    for (key, v) in [("access", &patch.access), ("group", &patch.group)] {
        if let Some(v) = v {
            config::apply(&mut node.config, key, v);
        }
    }
    node.description = renderer.render(patch.description.as_deref().unwrap_or(""), &pkg.name, file, line)?;
    node.doc_blocks = renderer.doc_blocks(patch.description.as_deref().unwrap_or(""), &pkg.name);
    node.columns = columns(&patch.columns, renderer, &pkg.name, file, line)?;
    Ok(())
}

/// A versioned model's entries: (pending index, version, latest version, the `versions:` entry).
/// Version `v` is defined in `defined_in`, else `<name>_v<v>`, else (the latest only) `<name>`.
fn model_versions(
    patch: &properties::NodePatch,
    pkg: &Package,
    rt: ResourceType,
    by_key: &HashMap<(String, ResourceType, String), usize>,
    file: &str,
    line: u32,
) -> Result<Vec<(usize, String, String, Json)>> {
    let Some(list) = patch.versions.as_ref().filter(|_| rt == ResourceType::Model) else { return Ok(vec![]) };
    let name = &patch.name.value;
    let text = |v: &Json| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let vs: Vec<String> = list.iter().map(|e| e.get("v").map(text).unwrap_or_default()).collect();
    if vs.iter().any(String::is_empty) {
        return Err(DvtError::new(ErrorCode::YamlInvalid, format!("a version of model `{name}` has no `v:`"))
            .at(Location::new(file, line, 0))
            .hint("write each version as `- v: 2`"));
    }
    let latest = match &patch.latest_version {
        Some(v) => text(v),
        // dbt: the greatest version.
        None => vs
            .iter()
            .max_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            })
            .cloned()
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for (entry, v) in list.iter().zip(vs) {
        let defined_in =
            entry.get("defined_in").and_then(Json::as_str).map_or_else(|| format!("{name}_v{}", v.replace('.', "_")), str::to_string);
        let key = |n: &str| (pkg.name.clone(), rt, n.to_string());
        let idx = by_key.get(&key(&defined_in)).or_else(|| if v == latest { by_key.get(&key(name)) } else { None });
        let Some(&idx) = idx else {
            return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("version {v} of model `{name}` has no file `{defined_in}.sql`"))
                .at(Location::new(file, line, 0))
                .hint("name the file `<model>_v<version>.sql`, or set `defined_in:` on the version"));
        };
        out.push((idx, v, latest.clone(), entry.clone()));
    }
    Ok(out)
}

/// A version's columns: the model's (all, or as `include`/`exclude` say) with the version's own on top.
fn version_columns(base: &[ColumnProps], entries: &[Json], file: &str, line: u32) -> Result<Vec<ColumnProps>> {
    let mut include_all = true;
    let mut include: Option<Vec<String>> = None;
    let mut exclude: Vec<String> = vec![];
    let mut own: Vec<ColumnProps> = vec![];
    let names = |v: &Json| -> Vec<String> { v.as_array().into_iter().flatten().filter_map(Json::as_str).map(str::to_string).collect() };
    for e in entries {
        if let Some(inc) = e.get("include") {
            include_all = inc.as_str() == Some("all") || inc.as_str() == Some("*");
            if !include_all {
                include = Some(names(inc));
            }
            exclude = e.get("exclude").map(names).unwrap_or_default();
        } else {
            let c: ColumnProps = serde_json::from_value(e.clone()).map_err(|err| {
                DvtError::new(ErrorCode::YamlInvalid, format!("a version column is not valid: {err}")).at(Location::new(file, line, 0))
            })?;
            own.push(c);
        }
    }
    let mut out: Vec<ColumnProps> = base
        .iter()
        .filter(|c| include_all || include.as_ref().is_some_and(|i| i.contains(&c.name)))
        .filter(|c| !exclude.contains(&c.name) && !own.iter().any(|o| o.name == c.name))
        .cloned()
        .collect();
    out.extend(own);
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn load_source_group(
    pkg: &Package,
    group: &properties::SourceGroup,
    file: &str,
    profile: &profiles::Profile,
    buckets: &profiles::Registry<profiles::Bucket>,
    active_target: &str,
    require_connection: bool,
    renderer: &mut render::TextRenderer<'_>,
    sources: &mut BTreeMap<String, Source>,
    tests: &mut Vec<TestDecl>,
) -> Result<()> {
    let sname = &group.name.value;
    let line = group.name.line;
    let (connection, level) = match &group.connection {
        Some(c) => {
            if !profile.outputs.contains_key(&c.value) && !buckets.entries.contains_key(&c.value) {
                return Err(DvtError::new(
                    ErrorCode::SourceConnectionUnknown,
                    format!(
                        "source `{sname}` has `connection: {}`, which is neither an output of profile `{}` nor a bucket of buckets.yml",
                        c.value, profile.name
                    ),
                )
                .at(Location::new(file, c.line, c.column))
                .hint(format!(
                    "use one of: {}",
                    profile.outputs.keys().chain(buckets.entries.keys()).cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            (c.value.clone(), dvt_schema::plan::Level::Config)
        }
        None if require_connection => {
            return Err(DvtError::new(ErrorCode::SourceConnectionMissing, format!("source `{sname}` has no `connection:`"))
                .at(Location::new(file, line, group.name.column))
                .hint(format!(
                    "add `connection: <output>` (one of: {}) to the source, or set `flags: {{require_source_connection: false}}` in the project file to read it from the active target as dbt does",
                    profile.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
        }
        None => (active_target.to_string(), dvt_schema::plan::Level::Default),
    };
    let in_bucket = !profile.outputs.contains_key(&connection);
    let database = match &group.database {
        Some(d) => Some(renderer.render(d, &pkg.name, file, line)?),
        None => profile.outputs.get(&connection).and_then(|o| o.database.clone()),
    };
    let schema = match &group.schema {
        Some(s) => renderer.render(s, &pkg.name, file, line)?,
        None => sname.clone(),
    };
    let group_tags = tag_list(&group.tags);
    let source_description = renderer.render(group.description.as_deref().unwrap_or(""), &pkg.name, file, line)?;
    for table in &group.tables {
        let tname = &table.name.value;
        let tline = table.name.line;
        let unique_id = format!("source.{}.{}.{}", pkg.name, sname, tname);
        let mut cfg = Config::new();
        cfg.insert("enabled".into(), Json::Bool(true));
        // dbt's: the project, the properties file's folders below the model path, the
        // source and the table (`sources:` configs in the project file follow it).
        let mut fqn = vec![pkg.name.clone()];
        fqn.extend(properties_place(pkg, file).2);
        fqn.extend([sname.clone(), tname.clone()]);
        config::apply_project_tree(&mut cfg, pkg.file.sources.as_ref(), &fqn);
        for c in [&group.config, &table.config].into_iter().flatten() {
            config::apply_all(&mut cfg, c);
        }
        for (k, v) in [("freshness", &group.freshness), ("freshness", &table.freshness), ("meta", &group.meta), ("meta", &table.meta)] {
            if let Some(v) = v {
                config::apply(&mut cfg, k, v);
            }
        }
        if let Some(f) = table.loaded_at_field.as_ref().or(group.loaded_at_field.as_ref()) {
            cfg.insert("loaded_at_field".into(), Json::from(f.clone()));
        }
        let mut tags = group_tags.clone();
        tags.extend(tag_list(&table.tags));
        tags.extend(cfg.tags());
        tags.sort();
        tags.dedup();
        let identifier = match &table.identifier {
            Some(i) => renderer.render(i, &pkg.name, file, tline)?,
            None => tname.clone(),
        };
        let description = renderer.render(table.description.as_deref().unwrap_or(""), &pkg.name, file, tline)?;
        let external = if in_bucket { Some(external_files(table.external.as_ref(), &schema, &identifier, file, tline)?) } else { None };
        let cols = columns(&table.columns, renderer, &pkg.name, file, tline)?;
        let target =
            DeclTarget { unique_id: &unique_id, label: format!("{sname}_{tname}"), model_call: format!("source('{sname}', '{tname}')") };
        declare_tests(tests, &table.tests, &table.columns, &target, pkg, file, tline);
        if sources.contains_key(&unique_id) {
            return Err(DvtError::new(ErrorCode::DuplicateNode, format!("source `{sname}.{tname}` is declared twice"))
                .at(Location::new(file, tline, 0)));
        }
        sources.insert(
            unique_id.clone(),
            Source {
                unique_id,
                package: pkg.name.clone(),
                source_name: sname.clone(),
                name: tname.clone(),
                identifier,
                database: database.clone(),
                schema: schema.clone(),
                connection: connection.clone(),
                connection_level: level,
                fqn,
                file: file.to_string(),
                line: tline,
                description,
                columns: cols,
                tags,
                config: cfg,
                // dbt 1.11 quotes source names by default whatever the project's `quoting:` says.
                quote: crate::dialect::QuotePolicy::default().overlay(group.quoting.as_ref()).overlay(table.quoting.as_ref()),
                external,
                source_description: source_description.clone(),
                loader: group.loader.clone().unwrap_or_default(),
            },
        );
    }
    Ok(())
}

/// The node or source that declares tests in properties YAML.
struct DeclTarget<'a> {
    unique_id: &'a str,
    /// dbt's target name: the model's name, or `<source>_<table>`.
    label: String,
    /// How dbt writes the `model` argument: `ref('orders')`, `source('raw', 'orders')`.
    model_call: String,
}

/// Records the tests of a node or source: its own, then each column's.
fn declare_tests(
    out: &mut Vec<TestDecl>,
    own: &[Json],
    cols: &[ColumnProps],
    target: &DeclTarget<'_>,
    pkg: &Package,
    file: &str,
    line: u32,
) {
    // dbt's fqn of a test: the package, the properties file's folders below its path root, the name.
    let in_pkg = file.strip_prefix(pkg.rel.as_str()).unwrap_or(file);
    let parts: Vec<&str> = in_pkg.split('/').collect();
    let folders: Arc<[String]> = parts.iter().skip(1).take(parts.len().saturating_sub(2)).map(|s| s.to_string()).collect();
    let (attached, label, model_call): (Arc<str>, Arc<str>, Arc<str>) =
        (target.unique_id.into(), target.label.as_str().into(), target.model_call.as_str().into());
    let (package, file): (Arc<str>, Arc<str>) = (pkg.name.as_str().into(), file.into());
    let decl = |entry: &Json, column: Option<&ColumnProps>| TestDecl {
        entry: entry.clone(),
        attached: attached.clone(),
        label: label.clone(),
        model_call: model_call.clone(),
        folders: folders.clone(),
        package: package.clone(),
        file: file.clone(),
        line,
        column: column.map(|c| c.name.clone()),
        column_tags: column.map(|c| tag_list(&c.tags)).unwrap_or_default(),
    };
    out.extend(own.iter().map(|e| decl(e, None)));
    for c in cols {
        out.extend(c.tests.iter().map(|e| decl(e, Some(c))));
    }
}

/// Builds one declared generic test; `None` when the test is disabled, or its node
/// is neither enabled nor disabled (a disabled source).
fn build_test(
    decl: &TestDecl,
    (nodes, disabled): (&BTreeMap<String, Node>, &BTreeMap<String, Node>),
    sources: &BTreeMap<String, Source>,
    project_tests: Option<&Json>,
    render_config: &generic_tests::ConfigRenderFn<'_>,
) -> Result<Option<Node>> {
    if ![nodes, disabled].iter().any(|m| m.contains_key(&*decl.attached)) && !sources.contains_key(&*decl.attached) {
        return Ok(None);
    }
    let target = TestTarget {
        unique_id: &decl.attached,
        label: decl.label.to_string(),
        model_call: &decl.model_call,
        folders: &decl.folders,
        package: &decl.package,
        file: &decl.file,
        line: decl.line,
    };
    let mut node = generic_tests::build(&decl.entry, &target, decl.column.as_deref(), &decl.column_tags, project_tests, render_config)?;
    let info = node.test.as_ref().expect("generic test");
    let (refs, srcs) = generic_tests::kwarg_dependencies(&info.kwargs);
    node.refs = refs.into_iter().map(|r| (r, decl.line)).collect();
    node.source_calls = srcs.into_iter().map(|(a, b)| (a, b, decl.line)).collect();
    // dbt keeps every test of a disabled node (listed disabled), whatever its own `enabled`.
    Ok((node.config.enabled() || disabled.contains_key(&*decl.attached)).then_some(node))
}

/// Line in `node.raw` where `needle` first appears (in file coordinates).
fn line_in(node: &Node, needle: &regex::Regex) -> Location {
    match needle.find(&node.raw) {
        Some(m) => {
            let (l, c) = line_col(&node.raw, m.start());
            Location::new(&node.file, node.raw_line + l - 1, c)
        }
        None => Location::new(&node.file, node.raw_line, 0),
    }
}

/// dbt's model access: a `private` model is ref'd only from its own group (`protected`,
/// the default, and `public` models from anywhere in the project and its installed packages).
fn check_access(node: &Node, target: &str, access: Option<&(String, Option<String>)>, line: u32) -> Result<()> {
    let Some((access, group)) = access else { return Ok(()) };
    if matches!(node.resource_type, ResourceType::Test | ResourceType::UnitTest) {
        return Ok(());
    }
    let refused = |why: String, hint: &str| {
        Err(DvtError::new(ErrorCode::RefNotAccessible, why).at(Location::new(&node.file, line, 0)).hint(hint.to_string()))
    };
    match access.as_str() {
        "private" if node.config.str("group") != group.as_deref() => refused(
            format!(
                "{} `{}` refs {target}, which is private to group `{}`",
                node.resource_type,
                node.name,
                group.as_deref().unwrap_or("(none)")
            ),
            "put the referencing node in that group, or make the model `access: protected` or `public`",
        ),
        _ => Ok(()),
    }
}

fn resolve_dependencies(project: &mut Project) -> Result<()> {
    // Name index of ref-able nodes: (package, name[, version]) → unique id.
    let refable = |n: &Node| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed | ResourceType::Snapshot);
    let enabled = crate::nodes::RefIndex::new(project.nodes.values());
    let mut disabled: HashMap<(String, String), String> = HashMap::new();
    for n in project.disabled.values().filter(|n| refable(n)) {
        disabled.insert((n.package.clone(), n.name.clone()), n.file.clone());
    }
    let root = project.name.clone();
    let package_names: Vec<String> = project.packages.iter().map(|p| p.name.clone()).collect();
    let lookup_disabled = |from: &str, call: &RefCall| -> Option<String> {
        match &call.package {
            Some(p) => disabled.get(&(p.clone(), call.name.clone())).cloned(),
            None => disabled
                .get(&(from.to_string(), call.name.clone()))
                .or_else(|| disabled.get(&(root.clone(), call.name.clone())))
                .or_else(|| package_names.iter().find_map(|p| disabled.get(&(p.clone(), call.name.clone()))))
                .cloned(),
        }
    };
    let access: HashMap<String, (String, Option<String>)> = project
        .nodes
        .values()
        .filter(|n| n.resource_type == ResourceType::Model)
        .map(|n| {
            let access = n.config.str("access").unwrap_or("protected").to_string();
            (n.unique_id.clone(), (access, n.config.str("group").map(str::to_string)))
        })
        .collect();
    let source_index: HashMap<(String, String), String> =
        project.sources.values().map(|s| ((s.source_name.clone(), s.name.clone()), s.unique_id.clone())).collect();
    // Each node's parents on all cores; the first error in node order is reported.
    let resolve = |node: &mut Node| -> Result<()> {
        let mut deps: Vec<String> = Vec::new();
        if let Some(t) = &node.test {
            deps.push(t.attached_node.clone());
        }
        for (call, line) in &node.refs {
            match enabled.find(&node.package, &root, &package_names, call).cloned() {
                Some(id) => {
                    check_access(node, &id, access.get(&id), *line)?;
                    deps.push(id)
                }
                None => {
                    let pattern = regex::Regex::new(&format!(r#"ref\(\s*(?:['"][^'"]*['"]\s*,\s*)?['"]{}['"]"#, regex::escape(&call.name)))
                        .expect("escaped");
                    let loc = if node.raw.is_empty() { Location::new(&node.file, *line, 0) } else { line_in(node, &pattern) };
                    let shown = call.package.as_ref().map_or_else(|| format!("'{}'", call.name), |p| format!("'{p}', '{}'", call.name));
                    let shown = match &call.version {
                        Some(v) => format!("{shown}, v={v}"),
                        None => shown,
                    };
                    if let Some(file) = lookup_disabled(&node.package, call) {
                        return Err(DvtError::new(
                            ErrorCode::RefDisabled,
                            format!("{} `{}` depends on ref({shown}), which is disabled ({file})", node.resource_type, node.name),
                        )
                        .at(loc)
                        .hint("enable the referenced node or remove the ref"));
                    }
                    return Err(DvtError::new(
                        ErrorCode::RefNotFound,
                        format!("{} `{}` depends on ref({shown}), which was not found", node.resource_type, node.name),
                    )
                    .at(loc)
                    .hint("check the name; refs resolve to models, seeds and snapshots"));
                }
            }
        }
        for (s, t, line) in &node.source_calls {
            match source_index.get(&(s.clone(), t.clone())) {
                Some(id) => deps.push(id.clone()),
                None => {
                    let pattern =
                        regex::Regex::new(&format!(r#"source\(\s*['"]{}['"]\s*,\s*['"]{}['"]"#, regex::escape(s), regex::escape(t)))
                            .expect("escaped");
                    let loc = if node.raw.is_empty() { Location::new(&node.file, *line, 0) } else { line_in(node, &pattern) };
                    return Err(DvtError::new(
                        ErrorCode::SourceNotFound,
                        format!("{} `{}` depends on source('{s}', '{t}'), which was not found", node.resource_type, node.name),
                    )
                    .at(loc)
                    .hint(format!("declare table `{t}` under source `{s}` in a properties YAML file (with `connection:`)")));
                }
            }
        }
        deps.sort();
        deps.dedup();
        node.depends_on = deps;
        Ok(())
    };
    let mut nodes: Vec<&mut Node> = project.nodes.values_mut().collect();
    nodes.par_iter_mut().map(|n| resolve(n)).collect::<Vec<Result<()>>>().into_iter().collect()
}

#[cfg(test)]
mod generic_test_merge {
    use super::*;

    fn node(id: &str, file: &str) -> Node {
        Node { unique_id: id.into(), name: id.rsplit('.').next().unwrap_or(id).into(), file: file.into(), ..Default::default() }
    }

    #[test]
    fn tests_are_merged_in_id_order_and_the_first_of_an_id_is_kept() {
        let nodes: BTreeMap<String, Node> = [node("model.p.a", "a.sql"), node("test.p.singular", "tests/singular.sql")]
            .into_iter()
            .map(|n| (n.unique_id.clone(), n))
            .collect();
        let decl = |id: &str, file: &str, line| (Arc::<str>::from(file), line, Ok(Some(node(id, file))));
        let mut tests = vec![
            decl("test.p.z", "x.yml", 1),
            decl("test.p.b", "x.yml", 2),
            (Arc::from("w.yml"), 3, Ok(None)),
            decl("test.p.singular", "y.yml", 3),
            decl("test.p.z", "y.yml", 4),
            decl("test.p.b", "z.yml", 5),
        ];
        let mut warnings = vec!["before".to_string()];
        let merged = merge_tests(nodes, &mut tests, &mut warnings);
        assert!(tests.iter().all(|(_, _, n)| matches!(n, Ok(None))), "every node is taken");
        let ids: Vec<&str> = merged.keys().map(String::as_str).collect();
        assert_eq!(ids, ["model.p.a", "test.p.b", "test.p.singular", "test.p.z"]);
        assert_eq!(merged["test.p.b"].file, "x.yml");
        assert_eq!(merged["test.p.z"].file, "x.yml");
        assert_eq!(merged["test.p.singular"].file, "tests/singular.sql", "an existing node keeps its id");
        assert_eq!(
            warnings,
            [
                "before",
                "y.yml:3: test `singular` is declared twice; keeping the first (from tests/singular.sql)",
                "y.yml:4: test `z` is declared twice; keeping the first (from x.yml)",
                "z.yml:5: test `b` is declared twice; keeping the first (from x.yml)",
            ]
        );
    }
}
