//! `dvtr`: the DVT runtime binary — executes plans, and offers dbt's daily
//! commands (`run`, `build`, `seed`, `test`, `show`, `retry`, …) which compile
//! in-process and execute the same plan.

// Many small allocations on several threads; mimalloc is faster than glibc here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use dvt_compiler::cli::{ListArgs, LogFormat, ProjectArgs, SelectArgs, print_error, say};
use dvt_compiler::compile::CompileOptions;
use dvt_compiler::error::{DvtError, ErrorCode, Result};
use dvt_runtime::executor::{self, Env, RunOptions};
use dvt_schema::run_results::{NodeResult, RUN_RESULTS_SCHEMA, RunResults, RunResultsMetadata};

#[derive(Debug, Parser)]
#[command(name = "dvtr", version, about = "DVT runtime: run dbt-compatible projects across databases.")]
struct Cli {
    #[command(flatten)]
    project: ProjectArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags of the commands that run nodes.
#[derive(Debug, Clone, Args)]
struct RunArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Rebuild incremental models and tables from scratch.
    #[arg(long)]
    full_refresh: bool,
    /// Parallel workers.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Stop at the first failure.
    #[arg(short = 'x', long)]
    fail_fast: bool,
    /// Compute engine for federated nodes.
    #[arg(long)]
    compute: Option<String>,
    /// Staging bucket for federated nodes and seeds.
    #[arg(long)]
    bucket: Option<String>,
    /// After loading, print the first rows of each seed as the database stored them.
    #[arg(long)]
    show: bool,
    /// Microbatch models rebuild the window from this date or timestamp (UTC; with --event-time-end).
    #[arg(long, requires = "event_time_end")]
    event_time_start: Option<String>,
    /// ... up to this one (exclusive).
    #[arg(long, requires = "event_time_start")]
    event_time_end: Option<String>,
}

impl RunArgs {
    /// The microbatch window the flags give, checked.
    fn event_time(&self) -> Result<Option<dvt_runtime::microbatch::Window>> {
        let (Some(a), Some(b)) = (&self.event_time_start, &self.event_time_end) else { return Ok(None) };
        let parse = |v: &str| dvt_runtime::microbatch::parse_bound(v).map_err(|e| DvtError::new(ErrorCode::Usage, e));
        let (a, b) = (parse(a)?, parse(b)?);
        if a >= b {
            return Err(DvtError::new(ErrorCode::Usage, "--event-time-start must be before --event-time-end"));
        }
        Ok(Some((a, b)))
    }
}

#[derive(Debug, Subcommand)]
enum SourceCommand {
    /// How old each source's newest row is, against its `freshness:` rule;
    /// writes target/sources.json (exit 1 when any source errors).
    Freshness {
        /// Sources to check: `source:<name>` or `source:<name>.<table>` (default: all).
        #[arg(short = 's', long = "select", num_args = 1..)]
        select: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DocsCommand {
    /// Write target/catalog.json (dbt's v1, read from each node's own database),
    /// target/manifest.json and the documentation site in target/docs/.
    Generate,
    /// Serve target/docs/ on 127.0.0.1 (run `dvtr docs generate` first).
    Serve {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a plan written by `dvtc compile -o`.
    Execute {
        plan: PathBuf,
        /// Run only these nodes of the plan (needs the project folder, or a plan compiled with `--bundle`).
        #[command(flatten)]
        select: SelectArgs,
        #[arg(long)]
        full_refresh: bool,
        #[arg(long, default_value_t = 4)]
        threads: usize,
        #[arg(short = 'x', long)]
        fail_fast: bool,
    },
    /// Build models (compile and execute).
    Run(RunArgs),
    /// Seeds, models, snapshots and tests in DAG order.
    Build(RunArgs),
    /// Load seeds.
    Seed(RunArgs),
    /// Run tests.
    Test(RunArgs),
    /// Snapshots.
    Snapshot(RunArgs),
    /// Make the selected models, seeds and snapshots of a `--state` run available in the
    /// current target: views over the state's relations on the same output, table
    /// copies across outputs; existing relations are kept unless --full-refresh.
    Clone(RunArgs),
    /// Re-run what failed or was skipped in the last run (target/run_results.json).
    Retry {
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
    /// Compile the project as `dvtc compile` does, rendering nodes that query the
    /// database (`run_query`, `statement`, catalog lookups) against it, as `dbt compile` does.
    Compile(dvt_compiler::cli::CompileArgs),
    /// List nodes (same as `dvtc ls`).
    #[command(alias = "ls")]
    List(ListArgs),
    /// Load the project and write target/manifest.json and target/dvt_manifest.json (same as `dvtc parse`).
    Parse,
    /// Install the packages of packages.yml / dependencies.yml (same as `dvtc deps`).
    Deps,
    /// Remove clean-targets (same as `dvtc clean`).
    Clean,
    /// Create a runnable starter project (same as `dvtc init`).
    Init {
        /// Project name (lower-case letters, digits, underscores).
        name: String,
    },
    /// Check the profile, the project, every output, compute and bucket (exit 1 if any fails).
    Debug,
    /// Prepare what a run needs: connectors, missing schemas created, buckets reachable (idempotent).
    Sync,
    /// Documentation: catalog and static site with lineage across databases.
    Docs {
        #[command(subcommand)]
        command: DocsCommand,
    },
    /// Source commands (`dvtr source freshness`).
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Call a macro against the databases (`run-operation grant_select --args '{role: r}'`).
    RunOperation {
        /// The macro (`name` or `package.name`).
        r#macro: String,
        /// Arguments as a YAML mapping.
        #[arg(long)]
        args: Option<String>,
    },
    /// Run a query on an output and print the rows.
    Show {
        /// SQL to run (otherwise: the compiled SQL of the selected model).
        #[arg(long)]
        inline: Option<String>,
        #[arg(short = 's', long = "select")]
        select: Option<String>,
        /// Rows to print.
        #[arg(long, default_value_t = 5)]
        limit: u64,
    },
}

fn project_dir(args: &ProjectArgs) -> PathBuf {
    let p = args.project_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    std::fs::canonicalize(&p).unwrap_or(p)
}

type Loaded = (dvt_compiler::nodes::Project, dvt_compiler::jinja::Jinja, dvt_compiler::graph::Graph);

/// The run environment: credentials, and live rendering of "render at run
/// time" nodes with the same compile options against the real databases.
fn env_for(args: &ProjectArgs, loaded: Arc<Loaded>, options: CompileOptions) -> Result<Arc<Env>> {
    let root = loaded.0.root.clone();
    env_in(args, loaded, options, &root)
}

/// The run's environment, with connection files and the relative paths in them
/// (embedded databases, bucket folders) resolved in `base` (the project folder,
/// or where a bundled plan runs); seed files are read from the project's files.
fn env_in(args: &ProjectArgs, loaded: Arc<Loaded>, options: CompileOptions, base: &Path) -> Result<Arc<Env>> {
    let project = &loaded.0;
    let creds = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), base, &project.profile.name)?;
    let project_dir = project.root.clone();
    let buckets = dvt_runtime::buckets::Buckets::load(args.profiles_dir.as_deref(), base, &project.profile.name)?;
    let db: Arc<dyn dvt_compiler::jinja::live::LiveDatabase> = Arc::new(dvt_runtime::live::Live::new(creds.clone()));
    let options = CompileOptions { live: Some(db), ..options };
    // The project lives as long as the process: the hook renderer borrows it for good.
    let loaded: &'static Loaded = Box::leak(Box::new(loaded));
    let render = ProjectRender { loaded, hooks: std::sync::OnceLock::new(), options };
    Ok(Arc::new(Env { pool: dvt_runtime::connectors::Pool::new(creds), project_dir, buckets, live_render: Some(Box::new(render)) }))
}

/// Live rendering from the loaded project, with the run's compile options.
struct ProjectRender {
    loaded: &'static Loaded,
    /// Built on the first hook that renders at run time, then shared by all.
    hooks: std::sync::OnceLock<std::result::Result<dvt_compiler::compile::HookRenderer<'static>, String>>,
    options: CompileOptions,
}

impl ProjectRender {
    fn hooks(&self) -> std::result::Result<&dvt_compiler::compile::HookRenderer<'static>, String> {
        let (project, jinja, _) = self.loaded;
        self.hooks
            .get_or_init(|| dvt_compiler::compile::HookRenderer::new(project, jinja, &self.options).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl dvt_runtime::executor::LiveRender for ProjectRender {
    fn node(&self, id: &str) -> std::result::Result<Box<dvt_schema::plan::PlanNode>, String> {
        let opts = CompileOptions { only: Some([id.to_string()].into()), ..self.options.clone() };
        let (project, jinja, graph) = self.loaded;
        let mut compiled = dvt_compiler::compile::compile(project, jinja, graph, &opts).map_err(|e| e.to_string())?;
        compiled.plan.nodes.remove(id).ok_or_else(|| format!("`{id}` is not in the project any more"))
    }

    fn hook(&self, id: &str, dialect: dvt_compiler::dialect::Dialect, template: &str) -> std::result::Result<String, String> {
        self.hooks()?.node_hook(id, dialect, template).map_err(|e| e.to_string())
    }

    fn run_hook(&self, hook: &dvt_schema::plan::RunHook, context: &serde_json::Value) -> std::result::Result<String, String> {
        self.hooks()?.run_hook(hook, context).map_err(|e| e.to_string())
    }
}

fn write_results(dir: &Path, command: &str, results: &[NodeResult], elapsed: f64) -> Result<()> {
    let now = chrono::Utc::now();
    let rr = RunResults {
        metadata: RunResultsMetadata {
            dbt_schema_version: RUN_RESULTS_SCHEMA.into(),
            // The dbt version whose artifacts DVT writes (as in target/manifest.json).
            dbt_version: dvt_compiler::manifest_dbt::DBT_VERSION.into(),
            generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            invocation_id: dvt_compiler::manifest_dbt::invocation_id().to_string(),
            env: BTreeMap::new(),
        },
        results: results.to_vec(),
        elapsed_time: elapsed,
        args: BTreeMap::from([("which".to_string(), serde_json::Value::from(command))]),
    };
    dvt_compiler::cli::write_json(dir, "run_results.json", &rr).map(|_| ())
}

/// `dvtr clone --state <dir>`.
fn clone_cmd(args: &ProjectArgs, ra: &RunArgs) -> Result<i32> {
    let start = Instant::now();
    if ra.select.state.is_none() {
        return Err(DvtError::new(ErrorCode::Usage, "clone needs --state <plan.json|dir>: the run whose relations to clone")
            .hint("e.g. dvtr clone --state prod-artifacts/ -s state:modified+"));
    }
    let loaded: Arc<Loaded> = Arc::new(dvt_compiler::cli::load(args)?);
    let project = &loaded.0;
    let compile_args = dvt_compiler::cli::CompileArgs {
        select: SelectArgs { defer: false, favor_state: false, ..ra.select.clone() },
        compute: ra.compute.clone(),
        bucket: ra.bucket.clone(),
        full_refresh: ra.full_refresh,
        output: None,
        explain: None,
        bundle: false,
        no_partial_parse: false,
    };
    let options = compile_args.options(args)?;
    let state = options.selection.state.clone().expect("--state was given");
    let compiled = dvt_compiler::compile::compile(project, &loaded.1, &loaded.2, &options)?;
    dvt_compiler::cli::report_unmatched(&compiled.unmatched, args.log_format);
    let env = env_for(args, loaded.clone(), options)?;
    let mut nodes = Vec::new();
    for id in &compiled.plan.order {
        let node = &compiled.plan.nodes[id];
        if !matches!(node.resource_type.as_str(), "model" | "seed" | "snapshot") {
            continue;
        }
        let Some(previous) = state.plan.nodes.get(id) else {
            dvt_runtime::events::note(
                args.log_format,
                "CloneSkip",
                &format!("  skip {} {}: not in the state", node.resource_type, node.name),
            );
            continue;
        };
        match dvt_runtime::clone::plan_clone(&env, node, previous, ra.full_refresh).map_err(|e| DvtError::new(ErrorCode::Usage, e))? {
            dvt_runtime::clone::Clone::Node(n) => nodes.push(n),
            dvt_runtime::clone::Clone::Skip(why) => {
                dvt_runtime::events::note(args.log_format, "CloneSkip", &format!("  skip {} {}: {why}", node.resource_type, node.name))
            }
        }
    }
    if nodes.is_empty() {
        dvt_runtime::events::note(args.log_format, "NothingToDo", "Nothing to clone.");
        return Ok(0);
    }
    let plan = dvt_runtime::clone::clone_plan(&compiled.plan, &state.plan, nodes);
    dvt_runtime::events::run_started(args.log_format, plan.nodes.len(), ra.threads);
    let opts = RunOptions {
        event_time: ra.event_time()?,
        threads: ra.threads,
        full_refresh: ra.full_refresh,
        fail_fast: ra.fail_fast,
        resource_types: vec![],
        only: None,
        log_format: args.log_format,
        run_hooks: None,
    };
    let results = executor::run(&plan, env, &opts);
    let elapsed = start.elapsed().as_secs_f64();
    write_results(&project.root.join(project.root_package().file.target_path()), "clone", &results, elapsed)?;
    Ok(dvt_runtime::events::run_finished(args.log_format, &results, elapsed))
}

/// `dvtr docs generate`.
fn docs_generate_cmd(args: &ProjectArgs) -> Result<i32> {
    let start = Instant::now();
    let loaded: Arc<Loaded> = Arc::new(dvt_compiler::cli::load(args)?);
    let (project, jinja, graph) = (&loaded.0, &loaded.1, &loaded.2);
    let options = dvt_compiler::cli::CompileArgs {
        select: SelectArgs { indirect_selection: "eager".into(), ..Default::default() },
        compute: None,
        bucket: None,
        full_refresh: false,
        output: None,
        explain: None,
        bundle: false,
        no_partial_parse: false,
    }
    .options(args)?;
    let compiled = dvt_compiler::compile::compile(project, jinja, graph, &options)?;
    let plan = &compiled.plan;
    let env = env_for(args, loaded.clone(), options.clone())?;
    let nodes: Vec<dvt_runtime::docs::CatalogItem<'_>> = plan
        .nodes
        .values()
        .filter(|n| matches!(n.resource_type.as_str(), "model" | "seed" | "snapshot"))
        .filter_map(|n| {
            Some(dvt_runtime::docs::CatalogItem { unique_id: &n.unique_id, output: &n.target.value, relation: n.relation.as_ref()? })
        })
        .filter(|i| plan.targets.get(i.output).is_some_and(|t| t.kind != dvt_compiler::loader::BUCKET_OUTPUT))
        .collect();
    let sources: Vec<dvt_runtime::docs::CatalogItem<'_>> = plan
        .sources
        .values()
        .filter(|s| s.external.is_none())
        .map(|s| dvt_runtime::docs::CatalogItem { unique_id: &s.unique_id, output: &s.connection.value, relation: &s.relation })
        .collect();
    let now = chrono::Utc::now();
    let metadata = serde_json::json!({
        "dbt_schema_version": dvt_runtime::docs::CATALOG_SCHEMA,
        "dbt_version": dvt_compiler::manifest_dbt::DBT_VERSION,
        "generated_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "invocation_id": dvt_compiler::manifest_dbt::invocation_id(),
        "env": {},
    });
    let catalog = dvt_runtime::docs::catalog(&env, &nodes, &sources, metadata);
    let target = project.root.join(project.root_package().file.target_path());
    dvt_compiler::cli::write_json(&target, "catalog.json", &catalog)?;
    let placements = dvt_compiler::compile::resolve::place_all(project, jinja, &options.overrides)?;
    dvt_compiler::cli::write_json(
        &target,
        "manifest.json",
        &dvt_compiler::manifest_dbt::Manifest::new(project, jinja, graph, &placements),
    )?;
    let site = dvt_runtime::docs::site_html(&dvt_runtime::docs::site_data(project, plan, &catalog));
    let docs = target.join("docs");
    std::fs::create_dir_all(&docs).map_err(|e| DvtError::io(&docs, e))?;
    std::fs::write(docs.join("index.html"), site).map_err(|e| DvtError::io(&docs, e))?;
    let described = catalog["nodes"].as_object().map_or(0, |m| m.len()) + catalog["sources"].as_object().map_or(0, |m| m.len());
    let f = args.log_format;
    let outputs = nodes.iter().chain(&sources).map(|i| i.output).collect::<BTreeSet<_>>().len();
    let msg = format!("Catalog: {described} relations read from {outputs} outputs");
    say(f, "CatalogRead", &msg, serde_json::json!({ "relations": described, "outputs": outputs }));
    for e in catalog["errors"].as_array().into_iter().flatten() {
        let e = e.as_str().unwrap_or_default();
        say(f, "CatalogError", &format!("  could not read: {e}"), serde_json::json!({ "error": e }));
    }
    let written = [target.join("catalog.json"), target.join("manifest.json"), docs.join("index.html")];
    let secs = start.elapsed().as_secs_f64();
    let msg = format!("Wrote {}, {} and {} in {secs:.2}s", written[0].display(), written[1].display(), written[2].display());
    say(f, "ArtifactWritten", &msg, serde_json::json!({ "paths": written, "elapsed": secs }));
    Ok(i32::from(!catalog["errors"].is_null()))
}

/// `dvtr docs serve`.
fn docs_serve_cmd(args: &ProjectArgs, port: u16) -> Result<i32> {
    let dir = project_dir(args);
    let pf = dvt_compiler::project::load_project_file(&dir, "")?;
    let docs = dir.join(pf.file.target_path()).join("docs");
    if !docs.join("index.html").is_file() {
        return Err(DvtError::new(ErrorCode::Usage, format!("{} does not exist", docs.join("index.html").display()))
            .hint("run `dvtr docs generate` first"));
    }
    let f = args.log_format;
    dvt_runtime::docs::serve(&docs, port, |p| {
        let url = format!("http://127.0.0.1:{p}/");
        say(f, "ServingDocs", &format!("Serving {} on {url} (Ctrl-C to stop)", docs.display()), serde_json::json!({ "url": url }))
    })
    .map_err(|e| DvtError::new(ErrorCode::Usage, e))?;
    Ok(0)
}

fn run_cmd(args: &ProjectArgs, ra: &RunArgs, command: &str, types: &[&str]) -> Result<i32> {
    let start = Instant::now();
    let loaded: Arc<Loaded> = Arc::new(dvt_compiler::cli::load(args)?);
    let project = &loaded.0;
    let compile_args = dvt_compiler::cli::CompileArgs {
        select: ra.select.clone(),
        compute: ra.compute.clone(),
        bucket: ra.bucket.clone(),
        full_refresh: ra.full_refresh,
        output: None,
        explain: None,
        bundle: false,
        no_partial_parse: false,
    };
    let mut options = compile_args.options(args)?;
    if let Some(defer) = &mut options.defer {
        // dbt's rule: defer only what the current target lacks (unless --favor-state).
        let creds = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
        defer.live = Some(Arc::new(dvt_runtime::live::Live::new(creds)));
    }
    let compiled = dvt_compiler::compile::compile(project, &loaded.1, &loaded.2, &options)?;
    dvt_compiler::cli::report_unmatched(&compiled.unmatched, args.log_format);
    let env = env_for(args, loaded.clone(), options)?;
    let opts = RunOptions {
        event_time: ra.event_time()?,
        threads: ra.threads,
        full_refresh: ra.full_refresh,
        fail_fast: ra.fail_fast,
        resource_types: types.iter().map(|s| s.to_string()).collect(),
        only: None,
        log_format: args.log_format,
        run_hooks: Some(command.to_string()),
    };
    let n = compiled
        .plan
        .nodes
        .values()
        .filter(|n| n.resource_type != "analysis" && (types.is_empty() || types.contains(&n.resource_type.as_str())))
        .count();
    if n == 0 {
        dvt_runtime::events::note(
            args.log_format,
            "NothingToDo",
            "Nothing to do: the selection does not match any enabled nodes of this kind.",
        );
        return Ok(0);
    }
    dvt_runtime::events::run_started(args.log_format, n, ra.threads);
    let results = executor::run(&compiled.plan, env.clone(), &opts);
    let elapsed = start.elapsed().as_secs_f64();
    write_results(&project.root.join(project.root_package().file.target_path()), command, &results, elapsed)?;
    if ra.show {
        show_seeds(args.log_format, &compiled.plan, &env, &results);
    }
    Ok(dvt_runtime::events::run_finished(args.log_format, &results, elapsed))
}

/// `seed --show`: the first rows of each loaded seed, read back from its database.
fn show_seeds(f: LogFormat, plan: &dvt_schema::Plan, env: &Env, results: &[NodeResult]) {
    for r in results.iter().filter(|r| r.status == "success") {
        let Some(node) = plan.nodes.get(&r.unique_id).filter(|n| n.resource_type == "seed") else { continue };
        let (Some(rel), Some(creds)) = (&node.relation, env.pool.creds().get(&node.target.value)) else { continue };
        let dialect = dvt_compiler::dialect::Dialect::from_adapter(&creds.kind).unwrap_or(dvt_compiler::dialect::Dialect::Postgres);
        let rows = dvt_runtime::connectors::connect(creds)
            .and_then(|mut c| c.query(&dialect.sql().limit(&format!("select * from {}", rel.rendered), 5)));
        say(
            f,
            "ShowSeed",
            &format!("\n{} ({} on {}):", node.name, rel.rendered, node.target.value),
            serde_json::json!({ "node": node.unique_id }),
        );
        match rows {
            Ok(rows) => print_table(f, &rows),
            Err(e) => say(f, "ShowSeedError", &format!("  cannot read it back: {e}"), serde_json::json!({ "error": e })),
        }
    }
}

fn execute_cmd(
    args: &ProjectArgs,
    plan_path: &Path,
    select: &SelectArgs,
    full_refresh: bool,
    threads: usize,
    fail_fast: bool,
) -> Result<i32> {
    let start = Instant::now();
    let plan = dvt_compiler::plan_file::read(plan_path)?;
    let dir = project_dir(args);
    let selecting = !select.select.is_empty() || !select.exclude.is_empty() || select.selector.is_some();
    let live = plan.nodes.values().any(|n| n.render_at_runtime.is_some() || n.runtime_hooks.is_some())
        || plan.on_run_start.iter().chain(&plan.on_run_end).any(|h| h.compiled_sql.is_none());
    let has_folder = ["dbt_project.yml", "dvt_project.yml"].iter().any(|f| dir.join(f).is_file());
    // The project, when rendering or selecting needs it: its folder, else the plan's bundle.
    let bundle_dir = match (&plan.bundle, has_folder, live || selecting) {
        (Some(b), false, true) => {
            let tmp = std::env::temp_dir().join(format!("dvt-bundle-{}-{}", std::process::id(), start.elapsed().as_nanos()));
            dvt_compiler::bundle::materialize(b, &tmp)?;
            Some(tmp)
        }
        _ => None,
    };
    let result = (|| -> Result<i32> {
        let (env, only) = if has_folder || bundle_dir.is_some() {
            let root = bundle_dir.clone().unwrap_or_else(|| dir.clone());
            // A bundle has no connection files: they are looked up where the plan runs.
            let profiles_dir = args.profiles_dir.clone().or_else(|| dir.join("profiles.yml").is_file().then(|| dir.clone()));
            let project_args = ProjectArgs { project_dir: Some(root), profiles_dir, ..args.clone() };
            let loaded: Arc<Loaded> = Arc::new(dvt_compiler::cli::load(&project_args)?);
            let overrides = dvt_compiler::compile::resolve::Overrides {
                target: plan.invocation.target.clone(),
                compute: plan.invocation.compute.clone(),
                bucket: plan.invocation.bucket.clone(),
            };
            let options = CompileOptions { overrides, full_refresh: plan.invocation.full_refresh, ..CompileOptions::default() };
            let only = if selecting {
                let spec = select.spec()?;
                let sel = dvt_compiler::select::select(&loaded.0, &loaded.2, &spec)?;
                dvt_compiler::cli::report_unmatched(&sel.unmatched, args.log_format);
                Some(sel.ids)
            } else {
                None
            };
            // Connection files and their relative paths resolve in the folder the plan runs from.
            (env_in(&project_args, loaded, options, &dir)?, only)
        } else if live {
            return Err(DvtError::new(ErrorCode::Usage, "nodes of this plan render at run time, which needs the project")
                .hint("run from the project folder, or compile the plan with `dvtc compile --bundle`"));
        } else if selecting {
            return Err(DvtError::new(ErrorCode::Usage, "selecting nodes of a plan needs its project")
                .hint("run from the project folder, or compile the plan with `dvtc compile --bundle`"));
        } else {
            let pf = dvt_compiler::project::load_project_file(&dir, "")?;
            let profile = pf.file.profile.clone().unwrap_or(pf.file.name.clone());
            let creds = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &dir, &profile)?;
            let buckets = dvt_runtime::buckets::Buckets::load(args.profiles_dir.as_deref(), &dir, &profile)?;
            (Arc::new(Env { pool: dvt_runtime::connectors::Pool::new(creds), project_dir: dir.clone(), buckets, live_render: None }), None)
        };
        let opts = RunOptions {
            event_time: None,
            threads,
            full_refresh: full_refresh || plan.invocation.full_refresh,
            fail_fast,
            resource_types: vec![],
            only,
            log_format: args.log_format,
            run_hooks: Some("run".into()),
        };
        let results = executor::run(&plan, env, &opts);
        let elapsed = start.elapsed().as_secs_f64();
        let target = match has_folder {
            true => dir.join(dvt_compiler::project::load_project_file(&dir, "")?.file.target_path()),
            false => dir.join("target"),
        };
        write_results(&target, "execute", &results, elapsed)?;
        Ok(dvt_runtime::events::run_finished(args.log_format, &results, elapsed))
    })();
    if let Some(tmp) = bundle_dir {
        let _ = std::fs::remove_dir_all(tmp);
    }
    result
}

fn retry_cmd(args: &ProjectArgs, threads: usize) -> Result<i32> {
    let start = Instant::now();
    let loaded: Arc<Loaded> = Arc::new(dvt_compiler::cli::load(args)?);
    let project = &loaded.0;
    let target = project.root.join(project.root_package().file.target_path());
    let path = target.join("run_results.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        DvtError::new(ErrorCode::Usage, format!("no previous run to retry ({}: {e})", path.display()))
            .hint("run `dvtr run` or `dvtr build` first")
    })?;
    let previous: RunResults =
        serde_json::from_str(&text).map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{} is not valid: {e}", path.display())))?;
    let only: BTreeSet<String> = previous
        .results
        .iter()
        .filter(|r| matches!(r.status.as_str(), "error" | "fail" | "skipped"))
        .map(|r| r.unique_id.clone())
        .collect();
    if only.is_empty() {
        dvt_runtime::events::note(args.log_format, "NothingToDo", "Nothing to retry: the last run had no failures.");
        return Ok(0);
    }
    let compiled = dvt_compiler::compile::compile(project, &loaded.1, &loaded.2, &CompileOptions::default())?;
    let env = env_for(args, loaded.clone(), CompileOptions::default())?;
    let opts = RunOptions {
        event_time: None,
        threads,
        full_refresh: false,
        fail_fast: false,
        resource_types: vec![],
        only: Some(only),
        log_format: args.log_format,
        run_hooks: Some("retry".into()),
    };
    let results = executor::run(&compiled.plan, env, &opts);
    let elapsed = start.elapsed().as_secs_f64();
    write_results(&target, "retry", &results, elapsed)?;
    Ok(dvt_runtime::events::run_finished(args.log_format, &results, elapsed))
}

fn show_cmd(args: &ProjectArgs, inline: Option<&str>, select: Option<&str>, limit: u64) -> Result<i32> {
    let (project, jinja, graph) = dvt_compiler::cli::load(args)?;
    let (sql, target) = match (inline, select) {
        (Some(sql), _) => (sql.to_string(), args.target.clone().unwrap_or(project.profile.default_target.clone())),
        (None, Some(sel)) => {
            let opts = dvt_compiler::compile::CompileOptions {
                selection: dvt_compiler::select::SelectionSpec { select: vec![sel.to_string()], ..Default::default() },
                ..Default::default()
            };
            let compiled = dvt_compiler::compile::compile(&project, &jinja, &graph, &opts)?;
            let node = compiled
                .plan
                .nodes
                .values()
                .find(|n| n.resource_type == "model")
                .ok_or_else(|| DvtError::new(ErrorCode::SelectorInvalid, format!("`{sel}` does not match any enabled nodes")))?;
            if let (dvt_schema::plan::ExecutionPath::Federation, Some(fed)) = (&node.path, &node.federation) {
                // Federated: read the fragments, run the remainder in the compute, print its first rows.
                let creds = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
                let buckets = dvt_runtime::buckets::Buckets::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
                let env =
                    Env { pool: dvt_runtime::connectors::Pool::new(creds), project_dir: project.root.clone(), buckets, live_render: None };
                let rows = dvt_runtime::federation::query(&env, &compiled.plan, node, fed, Some(limit))
                    .map_err(|e| DvtError::new(ErrorCode::Usage, e))?;
                print_table(args.log_format, &rows);
                return Ok(0);
            }
            (node.compiled_sql.clone().unwrap_or_default(), node.target.value.clone())
        }
        (None, None) => return Err(DvtError::new(ErrorCode::Usage, "show needs --inline \"select …\" or -s <model>")),
    };
    let all = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
    let creds =
        all.get(&target).ok_or_else(|| DvtError::new(ErrorCode::TargetNotFound, format!("output `{target}` is not in profiles.yml")))?;
    let mut conn = dvt_runtime::connectors::connect(creds).map_err(|e| DvtError::new(ErrorCode::Usage, e))?;
    let dialect = dvt_compiler::dialect::Dialect::from_adapter(&creds.kind).unwrap_or(dvt_compiler::dialect::Dialect::Postgres);
    let rows = conn
        .query(&dialect.sql().limit(sql.trim().trim_end_matches(';'), limit))
        .map_err(|e| DvtError::new(ErrorCode::Usage, format!("query failed on `{target}`: {e}")))?;
    print_table(args.log_format, &rows);
    Ok(0)
}

fn freshness_cmd(args: &ProjectArgs, select: &[String]) -> Result<i32> {
    let started = Instant::now();
    let (project, _, _) = dvt_compiler::cli::load(args)?;
    let wanted = |s: &dvt_compiler::nodes::Source| {
        select.is_empty()
            || select.iter().any(|sel| {
                let sel = sel.strip_prefix("source:").unwrap_or(sel);
                sel == s.source_name || sel == format!("{}.{}", s.source_name, s.name) || sel == "*"
            })
    };
    let sources: Vec<&dvt_compiler::nodes::Source> =
        project.sources.values().filter(|s| wanted(s) && dvt_runtime::freshness::checked(s)).collect();
    if sources.is_empty() {
        say(args.log_format, "NothingToDo", "No sources with a freshness rule and a loaded_at_field were selected", serde_json::json!({}));
        return Ok(0);
    }
    let creds = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
    let pool = dvt_runtime::connectors::Pool::new(creds);
    let n = sources.len();
    let mut results = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let kind = &project.profile.outputs[&s.connection].kind;
        let dialect = dvt_compiler::dialect::Dialect::from_adapter(kind).unwrap_or(dvt_compiler::dialect::Dialect::Postgres);
        let r = dvt_runtime::freshness::check(&pool, s, dialect);
        let word = match r.status.as_str() {
            "pass" => "PASS",
            "warn" => "WARN",
            "error" => "ERROR STALE",
            _ => "ERROR",
        };
        let detail = r.age_s.map_or_else(|| r.message.clone().unwrap_or_default(), |a| format!("newest row {a:.0} s old"));
        let msg = format!("{} of {n} {word} freshness of {} on {} ({detail}) [{:.2}s]", i + 1, r.label, s.connection, r.execution_time);
        let data = serde_json::json!({ "source": r.label, "connection": s.connection, "status": r.status, "age_s": r.age_s, "index": i + 1, "total": n });
        say(args.log_format, "FreshnessChecked", &msg, data);
        results.push(r);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let target_dir = project.root.join(project.root_package().file.target_path());
    dvt_compiler::cli::write_json(&target_dir, "sources.json", &dvt_runtime::freshness::sources_json(&results, elapsed))?;
    let count = |st: &str| results.iter().filter(|r| r.status == st).count();
    let errors = count("error") + count("runtime error");
    let (pass, warn) = (count("pass"), count("warn"));
    let stats = serde_json::json!({ "stats": { "pass": pass, "warn": warn, "error": errors, "total": n } });
    say(args.log_format, "StatsLine", &format!("\nDone. PASS={pass} WARN={warn} ERROR={errors} TOTAL={n}"), stats);
    Ok(if errors > 0 { 1 } else { 0 })
}

fn debug_cmd(args: &ProjectArgs) -> Result<i32> {
    use dvt_runtime::debug::{Check, check_bucket, check_compute, check_output};
    let mut checks: Vec<Check> = Vec::new();
    let dir = project_dir(args);
    let dirs = dvt_compiler::profiles::search_dirs(args.profiles_dir.as_deref(), &dir);
    let found = dirs.iter().map(|d| d.join("profiles.yml")).find(|p| p.is_file());
    checks.push(Check {
        item: "profiles.yml".into(),
        ok: found.is_some(),
        detail: found.map_or_else(
            || format!("not found in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")),
            |p| p.display().to_string(),
        ),
    });
    match dvt_compiler::cli::load(args) {
        Err(e) => checks.push(Check { item: "project".into(), ok: false, detail: e.to_string() }),
        Ok((project, _, _)) => {
            checks.push(Check {
                item: format!("project {}", project.name),
                ok: true,
                detail: format!("{} nodes, {} sources, profile `{}`", project.nodes.len(), project.sources.len(), project.profile.name),
            });
            match dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name) {
                Err(e) => checks.push(Check { item: "credentials".into(), ok: false, detail: e.to_string() }),
                Ok(creds) => checks.extend(creds.values().map(check_output)),
            }
            for c in project.computes.entries.values() {
                checks.push(check_compute(&c.name, &c.kind, c.endpoint.as_deref()));
            }
            match dvt_runtime::buckets::Buckets::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name) {
                Err(e) => checks.push(Check { item: "buckets.yml".into(), ok: false, detail: e.to_string() }),
                Ok(buckets) if project.buckets.entries.is_empty() => {
                    checks.push(check_bucket(&buckets, dvt_runtime::buckets::LOCAL_BUCKET, "file"))
                }
                Ok(buckets) => checks.extend(project.buckets.entries.values().map(|b| check_bucket(&buckets, &b.name, &b.kind))),
            }
        }
    }
    Ok(print_checks(args.log_format, &checks, "All checks passed!"))
}

/// One row per item (OK/FAIL and the detail); exit code 1 if any failed.
fn print_checks(f: LogFormat, checks: &[dvt_runtime::debug::Check], all_ok: &str) -> i32 {
    let width = checks.iter().map(|c| c.item.chars().count()).max().unwrap_or(0);
    for c in checks {
        let msg = format!("{:<width$}  {}  {}", c.item, if c.ok { "OK  " } else { "FAIL" }, c.detail);
        say(f, "Check", &msg, serde_json::json!({ "item": c.item, "ok": c.ok, "detail": c.detail }));
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    let msg = if failed == 0 { all_ok.to_string() } else { format!("{failed} check(s) failed") };
    say(f, "ChecksDone", &format!("\n{msg}"), serde_json::json!({ "failed": failed }));
    if failed == 0 { 0 } else { 1 }
}

/// `dvtr sync`: what a run of the whole project needs, prepared (idempotent).
fn sync_cmd(args: &ProjectArgs) -> Result<i32> {
    let loaded: Arc<Loaded> = Arc::new(dvt_compiler::cli::load(args)?);
    let compiled = dvt_compiler::compile::compile(&loaded.0, &loaded.1, &loaded.2, &CompileOptions::default())?;
    let env = env_for(args, loaded.clone(), CompileOptions::default())?;
    let checks = dvt_runtime::sync::sync(&compiled.plan, &env);
    Ok(print_checks(args.log_format, &checks, "Ready to run."))
}

fn run_operation_cmd(args: &ProjectArgs, name: &str, macro_args: Option<&str>) -> Result<i32> {
    let (project, jinja, _graph) = dvt_compiler::cli::load(args)?;
    let creds = dvt_runtime::credentials::load(args.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
    let live: Arc<dyn dvt_compiler::jinja::live::LiveDatabase> = Arc::new(dvt_runtime::live::Live::new(creds));
    let out = dvt_compiler::compile::operation::run_operation(&project, &jinja, name, macro_args, live)?;
    for line in &out.logs {
        say(args.log_format, "LogLine", line, serde_json::json!({}));
    }
    Ok(0)
}

fn print_table(f: LogFormat, rows: &dvt_runtime::connectors::Rows) {
    if f == LogFormat::Json {
        let data = serde_json::json!({ "columns": rows.columns, "rows": rows.rows });
        dvt_compiler::cli::event("ShowNode", None, "info", &format!("{} rows", rows.rows.len()), "MainThread", data);
        return;
    }
    let cells: Vec<Vec<String>> =
        rows.rows.iter().map(|r| r.iter().map(|v| v.clone().unwrap_or_else(|| "NULL".into())).collect()).collect();
    let widths: Vec<usize> = rows
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.chars().count()]).max().unwrap_or(0))
        .collect();
    let line = |vals: &[String]| vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join(" | ");
    println!("| {} |", line(&rows.columns));
    println!("|-{}-|", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-|-"));
    for r in &cells {
        println!("| {} |", line(r));
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let a = &cli.project;
    let result = match &cli.command {
        Command::Execute { plan, select, full_refresh, threads, fail_fast } => {
            execute_cmd(a, plan, select, *full_refresh, *threads, *fail_fast)
        }
        Command::Run(r) => run_cmd(a, r, "run", &["model"]),
        Command::Build(r) => run_cmd(a, r, "build", &[]),
        Command::Seed(r) => run_cmd(a, r, "seed", &["seed"]),
        Command::Test(r) => run_cmd(a, r, "test", &["test", "unit_test"]),
        Command::Snapshot(r) => run_cmd(a, r, "snapshot", &["snapshot"]),
        Command::Retry { threads } => retry_cmd(a, *threads),
        Command::Compile(c) => {
            let connect = |project: &dvt_compiler::nodes::Project| -> Result<Arc<dyn dvt_compiler::jinja::live::LiveDatabase>> {
                let creds = dvt_runtime::credentials::load(a.profiles_dir.as_deref(), &project.root, &project.profile.name)?;
                Ok(Arc::new(dvt_runtime::live::Live::new(creds)))
            };
            dvt_compiler::cli::cmd_compile(a, c, Some(&connect))
        }
        Command::List(l) => dvt_compiler::cli::cmd_ls(a, l).map(|()| 0),
        // dbt's everyday commands that need no database: the compiler's own.
        Command::Parse => dvt_compiler::cli::cmd_parse(a).map(|()| 0),
        Command::Deps => dvt_compiler::cli::cmd_deps(a).map(|()| 0),
        Command::Clean => dvt_compiler::cli::cmd_clean(a).map(|()| 0),
        Command::Init { name } => dvt_compiler::cli::cmd_init(a, name).map(|()| 0),
        Command::Debug => debug_cmd(a),
        Command::Clone(r) => clone_cmd(a, r),
        Command::Docs { command: DocsCommand::Generate } => docs_generate_cmd(a),
        Command::Docs { command: DocsCommand::Serve { port } } => docs_serve_cmd(a, *port),
        Command::Sync => sync_cmd(a),
        Command::Source { command: SourceCommand::Freshness { select } } => freshness_cmd(a, select),
        Command::RunOperation { r#macro, args } => run_operation_cmd(a, r#macro, args.as_deref()),
        Command::Show { inline, select, limit } => show_cmd(a, inline.as_deref(), select.as_deref(), *limit),
    };
    let code = match result {
        Ok(c) => c,
        Err(e) => {
            print_error(&e, if a.log_format == LogFormat::Json { LogFormat::Json } else { LogFormat::Text });
            2
        }
    };
    std::process::exit(code);
}
