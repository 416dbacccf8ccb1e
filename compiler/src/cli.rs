//! `dvtc` command line: argument types shared with `dvtr`, and the commands.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{DvtError, ErrorCode, Result};
use crate::graph::Graph;
use crate::loader::{self, LoadOptions};
use crate::nodes::{Project, ResourceType};
use crate::select::{IndirectSelection, SelectionSpec};

/// Options every command that reads a project takes.
#[derive(Debug, Clone, Args, Default)]
pub struct ProjectArgs {
    /// Project directory (default: current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub project_dir: Option<PathBuf>,
    /// Directory with profiles.yml (also computes.yml, buckets.yml).
    #[arg(long, global = true, value_name = "DIR")]
    pub profiles_dir: Option<PathBuf>,
    /// Output of profiles.yml to use as the default target.
    #[arg(short = 't', long, global = true)]
    pub target: Option<String>,
    /// Variables as YAML, e.g. '{start_date: 2024-01-01}'.
    #[arg(long, global = true)]
    pub vars: Option<String>,
    /// Log format of messages and errors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl ProjectArgs {
    /// Loader options from the flags.
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            project_dir: self.project_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
            profiles_dir: self.profiles_dir.clone(),
            target: self.target.clone(),
            vars: self.vars.clone(),
        }
    }
}

/// Text or JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Selection flags (SPEC §6).
#[derive(Debug, Clone, Args, Default)]
pub struct SelectArgs {
    /// Nodes to select (dbt grammar: names, method:value, +, @, commas).
    #[arg(short = 's', long = "select", alias = "models", num_args = 1.., value_name = "SPEC")]
    pub select: Vec<String>,
    /// Nodes to leave out.
    #[arg(long, num_args = 1.., value_name = "SPEC")]
    pub exclude: Vec<String>,
    /// A named selector from selectors.yml.
    #[arg(long)]
    pub selector: Option<String>,
    /// Only these resource types.
    #[arg(long = "resource-type", alias = "resource-types", num_args = 1..)]
    pub resource_type: Vec<String>,
    /// Leave out these resource types.
    #[arg(long = "exclude-resource-type", num_args = 1..)]
    pub exclude_resource_type: Vec<String>,
    /// How tests of selected nodes are picked up: eager, cautious, buildable, empty.
    #[arg(long, default_value = "eager")]
    pub indirect_selection: String,
    /// A previous run's plan, or its folder (with run_results.json, sources.json):
    /// what `state:`, `result:`, `source_status:` and `--defer` compare with.
    #[arg(long, value_name = "PLAN|DIR")]
    pub state: Option<PathBuf>,
    /// Refs to unselected nodes read the `--state` plan's relations (which may be on
    /// another output: the node is then federated for this run).
    #[arg(long, requires = "state")]
    pub defer: bool,
    /// With `--defer`: prefer the state's relation even when the current target has one.
    #[arg(long, requires = "defer")]
    pub favor_state: bool,
}

impl SelectArgs {
    /// Validates the flags into a spec.
    pub fn spec(&self) -> Result<SelectionSpec> {
        let types = |v: &[String]| -> Result<Vec<ResourceType>> {
            v.iter()
                .flat_map(|s| s.split(','))
                .filter(|s| !s.is_empty() && *s != "all" && *s != "default")
                .map(|s| {
                    ResourceType::parse(s).ok_or_else(|| {
                        DvtError::new(ErrorCode::Usage, format!("unknown resource type `{s}`"))
                            .hint("use model, seed, snapshot, test, analysis or source")
                    })
                })
                .collect()
        };
        Ok(SelectionSpec {
            select: self.select.clone(),
            exclude: self.exclude.clone(),
            selector: self.selector.clone(),
            resource_types: types(&self.resource_type)?,
            exclude_resource_types: types(&self.exclude_resource_type)?,
            indirect: IndirectSelection::parse(&self.indirect_selection).ok_or_else(|| {
                DvtError::new(ErrorCode::Usage, format!("unknown --indirect-selection `{}`", self.indirect_selection))
                    .hint("use eager, cautious, buildable or empty")
            })?,
            state: match &self.state {
                Some(p) => Some(std::sync::Arc::new(crate::state::State::load(p)?)),
                None => None,
            },
        })
    }

    /// `--defer` as compile options (without a live database).
    pub fn defer(&self) -> Option<crate::compile::Defer> {
        self.defer.then(|| crate::compile::Defer { favor_state: self.favor_state, live: None })
    }
}

/// `ls --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ListOutput {
    #[default]
    Selector,
    Name,
    Path,
    Json,
}

/// `ls` / `list` arguments.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// What to print per node.
    #[arg(short = 'o', long, value_enum, default_value_t = ListOutput::Selector)]
    pub output: ListOutput,
}

/// `compile` arguments.
#[derive(Debug, Clone, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub select: SelectArgs,
    /// Compute engine for every federated node (overrides config).
    #[arg(long)]
    pub compute: Option<String>,
    /// Staging bucket for every federated node and seed (overrides config).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Plan as for `run --full-refresh` (`flags.FULL_REFRESH` is true while rendering).
    #[arg(long)]
    pub full_refresh: bool,
    /// Where to write the plan (default: target/plan.json).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print how a node is executed: path, target, fragments, SQL.
    #[arg(long, value_name = "NODE")]
    pub explain: Option<String>,
    /// Carry the project's files in the plan, so `dvtr execute` can select and
    /// render nodes without the project folder.
    #[arg(long)]
    pub bundle: bool,
    /// Compile the whole project even when only some model files changed since
    /// the last compile (which then reuses the rest: see README, "Incremental compile").
    #[arg(long)]
    pub no_partial_parse: bool,
}

impl CompileArgs {
    /// Compiler options from the flags.
    pub fn options(&self, project: &ProjectArgs) -> Result<crate::compile::CompileOptions> {
        let var_names = match &project.vars {
            Some(v) => match serde_saphyr::from_str::<serde_json::Value>(v) {
                Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
                _ => vec![],
            },
            None => vec![],
        };
        Ok(crate::compile::CompileOptions {
            selection: self.select.spec()?,
            overrides: crate::compile::Overrides {
                target: project.target.clone(),
                compute: self.compute.clone(),
                bucket: self.bucket.clone(),
            },
            full_refresh: self.full_refresh,
            var_names,
            only: None,
            live: None,
            defer: self.select.defer(),
            keep_going: false,
            jinja_builtin_tests: false,
        })
    }
}

#[derive(Debug, Parser)]
#[command(name = "dvtc", version, about = "DVT compiler: parse, list and compile dbt-compatible projects into execution plans, offline.")]
struct Cli {
    #[command(flatten)]
    project: ProjectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the project, print counts and write target/manifest.json (dbt's v12
    /// shape) and target/dvt_manifest.json (DVT's own).
    Parse,
    /// List selected nodes.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Resolve, render and write the execution plan (and target/compiled/ SQL).
    Compile(CompileArgs),
    /// Create a runnable starter project (DuckDB + SQLite, a federated model, tests)
    /// and, unless they exist, profiles.yml, computes.yml and buckets.yml.
    Init {
        /// Project name (lower-case letters, digits, underscores).
        name: String,
    },
    /// Install the packages of packages.yml / dependencies.yml into
    /// packages-install-path (default dbt_packages/) and write package-lock.yml.
    Deps,
    /// Remove clean-targets (default: target/, dbt_packages/, .dvt/); never outside the project.
    Clean,
    /// What changes between two plans (exit 1 when they differ).
    Diff {
        /// The plan before the change.
        old: PathBuf,
        /// The plan after the change.
        new: PathBuf,
    },
}

/// Prints an error the way `--log-format` asks.
pub fn print_error(e: &DvtError, format: LogFormat) {
    let mut err = std::io::stderr().lock();
    match format {
        LogFormat::Text => {
            let _ = writeln!(err, "{e}");
        }
        LogFormat::Json => {
            let v = serde_json::json!({
                "level": "error",
                "code": e.code.as_str(),
                "message": e.message,
                "file": e.location.as_ref().map(|l| l.file.clone()),
                "line": e.location.as_ref().map(|l| l.line),
                "column": e.location.as_ref().map(|l| l.column),
                "hint": e.hint,
            });
            let _ = writeln!(err, "{v}");
        }
    }
}

/// One structured event on standard output in dbt's log shape
/// (`{"info": {"name", "level", "msg", "ts", "thread", "pid"[, "code"]}, "data"}`).
pub fn event(name: &str, code: Option<&str>, level: &str, msg: &str, thread: &str, data: serde_json::Value) {
    let mut info = serde_json::json!({
        "name": name,
        "level": level,
        "msg": msg,
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "thread": thread,
        "pid": std::process::id(),
    });
    if let Some(c) = code {
        info["code"] = c.into();
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", serde_json::json!({ "info": info, "data": data }));
}

/// A line of a command's output: as text, or as event `name` carrying `data`.
pub fn say(format: LogFormat, name: &str, msg: &str, data: serde_json::Value) {
    match format {
        LogFormat::Text => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{msg}");
        }
        LogFormat::Json => event(name, None, "info", msg.trim(), "MainThread", data),
    }
}

fn warn(msg: &str, format: LogFormat) {
    let mut err = std::io::stderr().lock();
    match format {
        LogFormat::Text => {
            let _ = writeln!(err, "warning: {msg}");
        }
        LogFormat::Json => {
            let _ = writeln!(err, "{}", serde_json::json!({"level": "warn", "message": msg}));
        }
    }
}

/// Loads the project and prints its warnings.
pub fn load(args: &ProjectArgs) -> Result<(Project, crate::jinja::Jinja, Graph)> {
    let (project, jinja, graph) = loader::load(&args.load_options())?;
    for w in &project.warnings {
        warn(w, args.log_format);
    }
    Ok((project, jinja, graph))
}

/// Streams `value` as compact JSON into `dir/name`, atomically (see [`crate::artifact_write`]).
pub fn write_json<T: serde::Serialize>(dir: &std::path::Path, name: &str, value: &T) -> Result<PathBuf> {
    write_serialized(dir, name, value, false, true).map(|(path, _)| path)
}

/// Streams `value` as JSON (pretty or compact, then a newline) into `dir/name`,
/// atomically (`keep_previous`: see [`crate::artifact_write`]), and returns where
/// its entries are (see [`crate::partial`]).
fn write_serialized<T: serde::Serialize + ?Sized>(
    dir: &std::path::Path,
    name: &str,
    value: &T,
    pretty: bool,
    keep_previous: bool,
) -> Result<(PathBuf, crate::partial::spans::Spans)> {
    write_recorded(dir, name, keep_previous, |w| crate::partial::spans::write(w, value, pretty, "nodes"))
}

/// Writes `dir/name` atomically with `fill` (which returns where the entries are), then a newline.
fn write_recorded(
    dir: &std::path::Path,
    name: &str,
    keep_previous: bool,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<crate::partial::spans::Spans>,
) -> Result<(PathBuf, crate::partial::spans::Spans)> {
    std::fs::create_dir_all(dir).map_err(|e| DvtError::io(dir, e))?;
    let path = dir.join(name);
    let mut spans = None;
    crate::artifact_write::write(&path, keep_previous, |w| {
        spans = Some(fill(w)?);
        w.write_all(b"\n")
    })
    .map_err(|e| DvtError::io(&path, e))?;
    Ok((path, spans.unwrap_or_default()))
}

/// Streams a plan like [`write_serialized`] (pretty), its nodes serialized on all cores.
fn write_plan_file(
    dir: &std::path::Path,
    name: &str,
    plan: &dvt_schema::Plan,
    keep_previous: bool,
) -> Result<(PathBuf, crate::partial::spans::Spans)> {
    let skeleton = plan.without_nodes();
    let entries: Vec<(&str, &dvt_schema::plan::PlanNode)> = plan.nodes.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
    write_recorded(dir, name, keep_previous, |w| crate::partial::spans::write_with_entries(w, &skeleton, true, "nodes", &entries))
}

/// Writes an artifact under the project's target path.
pub fn write_artifact(project: &Project, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let dir = project.root.join(project.root_package().file.target_path());
    std::fs::create_dir_all(&dir).map_err(|e| DvtError::io(&dir, e))?;
    let path = dir.join(name);
    // Write-then-rename so a crash never leaves a truncated artifact.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| DvtError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| DvtError::io(&path, e))?;
    Ok(path)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `dvtc parse`.
pub fn cmd_parse(args: &ProjectArgs) -> Result<()> {
    let start = Instant::now();
    let (project, jinja, graph) = load(args)?;
    let packages = project.packages.len() - 1;
    let root = project.root.clone();
    let target_dir = root.join(project.root_package().file.target_path());
    // dbt's manifest.json (v12) for dbt's tools; DVT's own beside it. Placement errors are
    // `compile`'s to report: without them the relations are left out here.
    let placements = crate::compile::resolve::place_all(&project, &jinja, &Default::default()).unwrap_or_default();
    crate::timing::phase("nodes placed");
    let dbt_manifest = crate::manifest_dbt::Manifest::new(&project, &jinja, &graph, &placements);
    crate::timing::phase("dbt manifest built");
    // Both manifests at once: DVT's is built and written while dbt's is written.
    let (written, manifest) = std::thread::scope(|s| {
        let dbt = s.spawn(|| {
            write_json(&target_dir, "semantic_manifest.json", &project.semantic.semantic_manifest(&project, &placements))?;
            write_json(&target_dir, "manifest.json", &dbt_manifest)
        });
        let manifest = crate::manifest::build(&project);
        let streamed = crate::manifest::Streamed { manifest: &manifest, project: &project, graph: &graph };
        let written = write_json(&target_dir, "dvt_manifest.json", &streamed);
        (dbt.join().unwrap_or_else(|_| Err(DvtError::new(ErrorCode::Io, "the manifest writer panicked"))).and(written), manifest)
    });
    let path = written?;
    crate::timing::phase("manifests written");
    let c = &manifest.counts;
    let summary = [
        plural(c["model"], "model", "models"),
        plural(c["seed"], "seed", "seeds"),
        plural(c["test"], "data test", "data tests"),
        plural(c["source"], "source", "sources"),
        plural(c["snapshot"], "snapshot", "snapshots"),
        plural(c["analysis"], "analysis", "analyses"),
        plural(c["unit_test"], "unit test", "unit tests"),
        plural(c["macro"], "macro", "macros"),
        plural(c["doc"], "docs block", "docs blocks"),
        plural(packages, "package", "packages"),
    ];
    // Exposures, metrics, … when the project declares some (as dbt lists them).
    let mut summary = Vec::from(summary);
    for (kind, one, many) in [
        (crate::semantic::Kind::Exposure, "exposure", "exposures"),
        (crate::semantic::Kind::Metric, "metric", "metrics"),
        (crate::semantic::Kind::Group, "group", "groups"),
        (crate::semantic::Kind::SemanticModel, "semantic model", "semantic models"),
        (crate::semantic::Kind::SavedQuery, "saved query", "saved queries"),
    ] {
        let n = project.semantic.resources.values().filter(|r| r.kind == kind).count();
        if n > 0 {
            summary.push(plural(n, one, many));
        }
    }
    // The process ends right after: freeing ~100k small allocations one by one is wasted time.
    std::mem::forget(dbt_manifest);
    std::mem::forget(placements);
    std::mem::forget((manifest, graph, jinja));
    std::mem::forget(project);
    let rel = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
    let f = args.log_format;
    say(f, "ParseFound", &format!("Found {}", summary.join(", ")), serde_json::json!({ "found": summary }));
    let secs = start.elapsed().as_secs_f64();
    say(f, "ArtifactWritten", &format!("Wrote {rel} in {secs:.3}s"), serde_json::json!({ "path": rel, "elapsed": secs }));
    Ok(())
}

/// Prints the criteria that matched nothing.
pub fn report_unmatched(unmatched: &[String], format: LogFormat) {
    for u in unmatched {
        warn(&format!("the selection criterion '{u}' does not match any enabled nodes"), format);
    }
}

/// `dvtc ls`.
pub fn cmd_ls(args: &ProjectArgs, ls: &ListArgs) -> Result<()> {
    let (project, jinja, graph) = load(args)?;
    let overrides = crate::compile::Overrides { target: args.target.clone(), ..Default::default() };
    let selection = crate::compile::select_nodes(&project, &jinja, &graph, &ls.select.spec()?, &overrides)?;
    report_unmatched(&selection.unmatched, args.log_format);
    if selection.ids.is_empty() {
        warn("no nodes selected: the selection does not match any enabled nodes", args.log_format);
        return Ok(());
    }
    // In unique-id order, as `dbt ls` lists.
    let lines: Vec<String> = selection.ids.iter().map(|id| list_line(&project, id, ls.output)).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

fn list_line(project: &Project, id: &str, output: ListOutput) -> String {
    use crate::config::ConfigExt;
    if let Some(s) = project.sources.get(id) {
        return match output {
            // dbt searches sources by package.source.table (their fqn also holds folders).
            ListOutput::Selector => format!("source:{}.{}.{}", s.package, s.source_name, s.name),
            ListOutput::Name => format!("{}.{}", s.source_name, s.name),
            ListOutput::Path => s.file.clone(),
            ListOutput::Json => serde_json::json!({
                "name": s.name,
                "resource_type": "source",
                "package_name": s.package,
                "source_name": s.source_name,
                "original_file_path": s.file,
                "unique_id": s.unique_id,
                "connection": s.connection,
                "config": s.config,
                "tags": s.tags,
            })
            .to_string(),
        };
    }
    if let Some(r) = project.semantic.resources.get(id) {
        let field = |k: &str| r.entry.get(k).and_then(serde_json::Value::as_str).unwrap_or_default();
        return match output {
            ListOutput::Selector => format!("{}:{}.{}", r.kind.resource_type(), field("package_name"), field("name")),
            ListOutput::Name => field("name").to_string(),
            ListOutput::Path => field("original_file_path").to_string(),
            ListOutput::Json => serde_json::json!({
                "name": field("name"),
                "resource_type": r.kind.resource_type(),
                "package_name": field("package_name"),
                "original_file_path": field("original_file_path"),
                "unique_id": r.unique_id,
                "depends_on": {"nodes": r.depends_on},
            })
            .to_string(),
        };
    }
    let n = &project.nodes[id];
    match output {
        ListOutput::Selector => n.fqn.join("."),
        ListOutput::Name => n.name.clone(),
        ListOutput::Path => n.file.clone(),
        ListOutput::Json => serde_json::json!({
            "name": n.name,
            "resource_type": n.resource_type.as_str(),
            "package_name": n.package,
            "original_file_path": n.file,
            "unique_id": n.unique_id,
            "alias": n.config.str("alias").unwrap_or(&n.name),
            "config": n.config,
            "tags": n.config.tags(),
            "depends_on": {"nodes": n.depends_on, "macros": n.macros},
        })
        .to_string(),
    }
}

/// Writes a plan deterministically (pretty JSON, trailing newline), streamed and
/// atomically (see [`crate::artifact_write`]; `in_target`: `dir` is the project's target path).
pub fn write_plan(dir: &std::path::Path, name: &str, plan: &dvt_schema::Plan, in_target: bool) -> Result<PathBuf> {
    write_plan_file(dir, name, plan, in_target).map(|(path, _)| path)
}

/// `dvtc compile`.
/// `compile`: offline from `dvtc` (nodes that query the database are marked
/// "render at run time"); `dvtr compile` passes its `live` databases so that
/// they render now, as `dbt compile` renders them.
/// Returns the exit code: 1 when some nodes failed to render live (the others compiled).
pub fn cmd_compile(args: &ProjectArgs, c: &CompileArgs, live: Option<LiveConnector<'_>>) -> Result<i32> {
    let start = Instant::now();
    let mut options = c.options(args)?;
    let lo = args.load_options();
    // A whole compile into the default plan path saves state; the next one reuses it.
    let partial = live.is_none() && !c.bundle && c.output.is_none() && c.explain.is_none() && crate::partial::eligible(&options);
    let f = args.log_format;
    let reused = match partial && !c.no_partial_parse {
        true => crate::partial::reuse(&lo, &options).map_err(|why| crate::timing::phase(&format!("whole compile: {why}"))).ok(),
        false => None,
    };
    if let Some(r) = reused {
        crate::timing::phase("reused the last compile");
        for w in &r.load_warnings {
            warn(w, f);
        }
        for (code, message) in &r.plan_warnings {
            warn(&format!("[{code}] {message}"), f);
        }
        say(f, "CompileSummary", &r.summary, summary_counts(r.counts));
        let secs = start.elapsed().as_secs_f64();
        let out = &r.plan_path;
        let msg = format!("Wrote {} in {secs:.3}s (reused the last compile; {} model(s) compiled again)", out.display(), r.recompiled);
        say(f, "ArtifactWritten", &msg, serde_json::json!({ "path": out, "elapsed": secs, "recompiled": r.recompiled }));
        return Ok(0);
    }
    // The tree is stamped while the loader reads it: the stamp time comes first, and a
    // file modified after it counts as changed next time anyway (see `partial`).
    let inputs = partial.then(|| {
        let (lo, now) = (lo.clone(), crate::partial::now_ns());
        std::thread::spawn(move || crate::partial::Inputs::stamp(&lo, now))
    });
    let (project, jinja, graph) = load(args)?;
    if let Some(connect) = live {
        options.live = Some(connect(&project)?);
        options.keep_going = true;
    }
    let mut compiled = crate::compile::compile(&project, &jinja, &graph, &options)?;
    report_unmatched(&compiled.unmatched, args.log_format);
    // Only on request: a bundle carries every project file, so plans would grow by the
    // project's size and change with any file (golden diffs of plans stay about the plan).
    if c.bundle {
        let target = project.root.join(project.root_package().file.target_path());
        compiled.plan.bundle = Some(crate::bundle::collect(&project.root, &target)?);
    }
    for w in &compiled.plan.warnings {
        warn(&format!("[{}] {}", w.code, w.message), args.log_format);
    }
    let target_dir = project.root.join(project.root_package().file.target_path());
    let (mut plan_spans, mut manifest_spans) = (None, None);
    let out = std::thread::scope(|scope| -> Result<PathBuf> {
        // dbt's manifest after `dbt compile` (the compiled nodes carry their code and path),
        // built on another core while this one writes the SQL files and the plan.
        let manifest = scope.spawn(|| -> Result<Option<crate::partial::spans::Spans>> {
            let placements = &compiled.index.placements;
            let target_path = project.root_package().file.target_path();
            let manifest = crate::manifest_dbt::Manifest::new(&project, &jinja, &graph, placements).with_compiled(
                &compiled.plan,
                &compiled.files,
                &target_path,
            );
            write_json(&target_dir, "semantic_manifest.json", &project.semantic.semantic_manifest(&project, placements))?;
            let (_, spans) = write_serialized(&target_dir, "manifest.json", &manifest, false, true)?;
            crate::timing::phase("dbt manifest written");
            Ok(partial.then_some(spans))
        });
        let files: Vec<(&str, &str)> =
            compiled.files.iter().map(|(p, uid)| (p.as_str(), compiled.plan.compiled_sql(uid).unwrap_or_default())).collect();
        crate::compiled_files::write(&target_dir, &files)?;
        crate::timing::phase("compiled SQL written");
        let out = match &c.output {
            Some(p) => {
                let p = if p.is_absolute() { p.clone() } else { std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.clone()) };
                let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "plan.json".into());
                write_plan(&dir, &name, &compiled.plan, false)?
            }
            None => {
                let (path, spans) = write_plan_file(&target_dir, "plan.json", &compiled.plan, true)?;
                plan_spans = partial.then_some(spans);
                crate::timing::phase("plan.json written");
                path
            }
        };
        manifest_spans = manifest.join().unwrap_or_else(|_| Err(DvtError::new(ErrorCode::Io, "the manifest writer panicked")))?;
        Ok(out)
    })?;
    let inputs = inputs.and_then(|h| h.join().ok().flatten());
    if let (Some(inputs), Some(plan_spans), Some(manifest_spans)) = (inputs, plan_spans, manifest_spans) {
        let written = crate::partial::Written {
            lo: &lo,
            opts: &options,
            inputs,
            project: &project,
            compiled: &compiled,
            target_dir: &target_dir,
            plan_spans,
            manifest_spans,
        };
        // The state only saves time: a compile that cannot save it still succeeded.
        if let Err(e) = crate::partial::save(written) {
            warn(&format!("could not save the state for the next incremental compile: {e}"), f);
        }
        crate::timing::phase("incremental state saved");
    }
    // The project is no longer needed, and the process ends soon: freeing it piece by piece costs ~0.2 s on 5,000 models.
    std::mem::forget((project, jinja, graph));
    crate::timing::phase("done");
    if let Some(name) = &c.explain {
        let text = crate::compile::explain(&compiled.plan, name)?;
        say(f, "Explain", text.trim_end(), serde_json::json!({ "node": name, "text": text }));
    }
    say(f, "CompileSummary", &compiled.summary(), summary_counts(crate::partial::counts(&compiled.plan)));
    let secs = start.elapsed().as_secs_f64();
    say(f, "ArtifactWritten", &format!("Wrote {} in {secs:.3}s", out.display()), serde_json::json!({ "path": out, "elapsed": secs }));
    let failed = compiled.node_errors.len();
    for e in &compiled.node_errors {
        print_error(e, f);
    }
    if failed > 0 {
        let msg = format!("{failed} node(s) failed to render against the database; they are marked to render at run time in the plan");
        say(f, "CompileNodeErrors", &msg, serde_json::json!({ "failed": failed }));
    }
    // The process ends next; freeing the plan piece by piece is wasted time.
    std::mem::forget(compiled);
    Ok(if failed > 0 { 1 } else { 0 })
}

/// The data of the `CompileSummary` event: nodes, pushdown, federation.
fn summary_counts([nodes, pushdown, federation]: [u64; 3]) -> serde_json::Value {
    serde_json::json!({ "nodes": nodes, "pushdown": pushdown, "federation": federation })
}

fn project_root(args: &ProjectArgs) -> PathBuf {
    args.project_dir.clone().unwrap_or_else(|| PathBuf::from("."))
}

/// `dvtc deps`.
pub fn cmd_deps(args: &ProjectArgs) -> Result<()> {
    let installed = crate::deps::install(&project_root(args))?;
    let f = args.log_format;
    if installed.is_empty() {
        say(f, "DepsNoPackages", "No packages declared in packages.yml or dependencies.yml", serde_json::json!({}));
    }
    for i in &installed {
        for w in &i.warnings {
            warn(w, f);
        }
        let what: Vec<String> = i.lock.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let data = serde_json::json!({ "package": i.name, "lock": i.lock });
        say(f, "DepsInstalled", &format!("Installed {} ({})", i.name, what.join(", ")), data);
    }
    Ok(())
}

/// `dvtc init`: the project is created in `--project-dir` (default: here).
pub fn cmd_init(args: &ProjectArgs, name: &str) -> Result<()> {
    let parent = project_root(args);
    let written = crate::init::init(&parent, name, args.profiles_dir.as_deref())?;
    for f in &written {
        say(args.log_format, "InitCreated", &format!("created {}", f.display()), serde_json::json!({ "path": f }));
    }
    say(args.log_format, "InitNext", &format!("\nNext: cd {name} && dvtr build"), serde_json::json!({ "project": name }));
    Ok(())
}

/// `dvtc clean`.
pub fn cmd_clean(args: &ProjectArgs) -> Result<()> {
    for (t, existed) in crate::deps::clean(&project_root(args))? {
        let msg = format!("{} {t}", if existed { "Removed" } else { "Nothing to remove at" });
        say(args.log_format, "CleanPath", &msg, serde_json::json!({ "path": t, "removed": existed }));
    }
    Ok(())
}

/// Opens the live databases of a loaded project (`dvtr compile`).
pub type LiveConnector<'a> = &'a dyn Fn(&crate::nodes::Project) -> Result<std::sync::Arc<dyn crate::jinja::live::LiveDatabase>>;

/// `dvtc diff`: true when the plans are equal.
pub fn cmd_diff(old: &std::path::Path, new: &std::path::Path) -> Result<bool> {
    let read = |p: &std::path::Path| -> Result<dvt_schema::Plan> {
        let text = std::fs::read_to_string(p).map_err(|e| DvtError::io(p, e))?;
        serde_json::from_str(&text).map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{} is not a DVT plan: {e}", p.display())))
    };
    let d = crate::compile::diff::diff(&read(old)?, &read(new)?);
    print!("{d}");
    Ok(d.is_empty())
}

/// Runs `dvtc` with `argv`; returns the process exit code.
pub fn main_with_args(argv: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match &cli.command {
        Command::Parse => cmd_parse(&cli.project),
        Command::Ls(ls) => cmd_ls(&cli.project, ls),
        Command::Compile(c) => cmd_compile(&cli.project, c, None).map(|_| ()),
        Command::Deps => cmd_deps(&cli.project),
        Command::Init { name } => cmd_init(&cli.project, name),
        Command::Clean => cmd_clean(&cli.project),
        Command::Diff { old, new } => match cmd_diff(old, new) {
            Ok(true) => return 0,
            Ok(false) => return 1,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            print_error(&e, cli.project.log_format);
            2
        }
    }
}
