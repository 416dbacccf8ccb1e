//! Runs the nodes of a plan in DAG order on `--threads` workers. Each node
//! picks its rendering from the target's real state, runs it, and on failure
//! rolls back and removes its staging relations, so the target is left as it
//! was (SPEC §4). Descendants of a failed node are skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dvt_compiler::dialect::Dialect;
use dvt_schema::plan::{ExecutionPath, Plan, PlanNode};
use dvt_schema::run_results::NodeResult;

use crate::connectors::{self, Connection, RelationKind};
pub use crate::write::{Env, LiveRender};
use crate::write::{run_loading, run_statements};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub threads: usize,
    pub full_refresh: bool,
    pub fail_fast: bool,
    /// Resource types to run (empty: all).
    pub resource_types: Vec<String>,
    /// Only these nodes (None: every node of the plan).
    pub only: Option<BTreeSet<String>>,
    /// Progress as text lines or JSON events.
    pub log_format: dvt_compiler::cli::LogFormat,
    /// The command (`run`, `build`, `seed`, …) when the plan's `on-run-start` and
    /// `on-run-end` hooks run around the nodes, as in dbt (`flags.WHICH`); None: they don't.
    pub run_hooks: Option<String>,
    /// The window microbatch models rebuild (`--event-time-start/--event-time-end`);
    /// None: each model's own (current batch and its lookback, or all from `begin`).
    pub event_time: Option<crate::microbatch::Window>,
}

struct Outcome {
    status: &'static str,
    rendering: Option<String>,
    message: String,
    failures: Option<u64>,
}

fn ok(status: &'static str, rendering: &str, message: String) -> Outcome {
    Outcome { status, rendering: Some(rendering.into()), message, failures: None }
}

fn fail(message: String) -> Outcome {
    Outcome { status: "error", rendering: None, message, failures: None }
}

fn run_node(env: &Env, plan: &Plan, node: &PlanNode, opts: &RunOptions) -> Outcome {
    // Its target is left as it was; descendants are skipped like any failed node's.
    if node.language.as_deref() == Some("python") {
        return fail(format!(
            "`{}` is a Python model: running it needs a Python-capable compute, which DVT does not have yet              (its compiled code is in target/compiled/; SQL models run as usual)",
            node.name
        ));
    }
    // A microbatch model's windows: the full build's and the incremental run's.
    let windows = match node.microbatch.as_ref().map(|mb| crate::microbatch::windows(mb, chrono::Utc::now().naive_utc(), opts.event_time)) {
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => return fail(e),
        None => None,
    };
    if node.path == ExecutionPath::Federation
        && let Some(fed) = &node.federation
    {
        // A test across databases only reads: its query runs in the compute.
        if node.resource_type == "test" {
            return match crate::federation::query(env, plan, node, fed, None) {
                Ok(rows) => test_outcome(node, &rows),
                Err(e) => fail(e),
            };
        }
        let dialect = plan.targets.get(&node.target.value).and_then(|t| Dialect::from_adapter(&t.kind)).unwrap_or(Dialect::Postgres);
        let hooks = |post: bool| -> Result<(), String> {
            if node.pre_hooks.is_empty() && node.post_hooks.is_empty() && node.runtime_hooks.is_none() {
                return Ok(());
            }
            let mut conn = env.pool.get(&node.target.value)?;
            run_hooks(env, node, &mut *conn, dialect, post)?;
            conn.release();
            Ok(())
        };
        if let Err(e) = hooks(false) {
            return fail(e);
        }
        return match crate::federation::run(env, plan, node, fed, opts.full_refresh, windows).and_then(|w| hooks(true).map(|()| w)) {
            Ok(w) => {
                let mut msg = format!("{} {} rows into {}", w.rendering, w.rows, w.into);
                if let Some((full, incremental)) = windows {
                    let window = if w.rendering == "incremental" { incremental } else { full };
                    msg.push_str(&format!(" (microbatch window {})", crate::microbatch::describe(window)));
                }
                if !w.pushed.is_empty() {
                    msg.push_str(&format!(" (pushed at run time: {})", w.pushed.join("; ")));
                }
                msg.push_str(&format!(" [{}]", w.phases));
                ok("success", w.rendering, msg)
            }
            Err(e) => fail(e),
        };
    }
    let rendered;
    let node = match (&node.render_at_runtime, &env.live_render) {
        (None, _) => node,
        (Some(reason), None) => {
            return fail(format!("this node renders at run time ({reason}); run it with `dvtr run`/`build`, which render it live"));
        }
        (Some(_), Some(render)) => match render.node(&node.unique_id) {
            Ok(n) if n.render_at_runtime.is_none() => {
                rendered = n;
                &*rendered
            }
            Ok(n) => return fail(format!("live rendering still needs `{}`", n.render_at_runtime.unwrap_or_default())),
            Err(e) => return fail(format!("live rendering failed: {e}")),
        },
    };
    // A microbatch model's windows, written into its statements.
    let windowed;
    let node = match windows {
        Some((full, incremental)) => {
            windowed = crate::microbatch::bind(node, full, incremental);
            &windowed
        }
        None => node,
    };
    let Some(p) = &node.pushdown else {
        return ok("success", "none", "nothing to run (ephemeral or analysis)".into());
    };
    let mut conn = match env.pool.get(&node.target.value) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    // Another run writing the same relation goes first; a failed node closes its
    // connection, which releases the lock.
    let lock =
        node.relation.as_ref().filter(|_| matches!(node.resource_type.as_str(), "model" | "seed" | "snapshot")).map(|r| r.rendered.clone());
    if let Some(rel) = &lock
        && let Err(e) = conn.lock_relation(rel)
    {
        return fail(e);
    }
    let mut out = run_pushdown(env, plan, node, p, opts, &mut *conn);
    if let (Some((full, incremental)), "success") = (windows, out.status) {
        let w = if out.rendering.as_deref() == Some("incremental") { incremental } else { full };
        out.message.push_str(&format!(" (microbatch window {})", crate::microbatch::describe(w)));
    }
    if out.status != "error" && lock.as_ref().is_none_or(|rel| conn.unlock_relation(rel).is_ok()) {
        conn.release();
    }
    out
}

/// A test's verdict from its one row (`failures`, `should_warn`, `should_error`).
fn test_outcome(node: &PlanNode, rows: &connectors::Rows) -> Outcome {
    let cell = |i: usize| rows.rows.first().and_then(|r| r.get(i).cloned().flatten()).unwrap_or_default();
    let failures: u64 = cell(0).parse().unwrap_or(0);
    let truthy = |s: String| matches!(s.as_str(), "t" | "true" | "1");
    let severity = node.test.as_ref().map_or("ERROR", |t| t.severity.as_str());
    let (status, msg) = if truthy(cell(2)) && severity == "ERROR" {
        ("fail", format!("{failures} failing rows"))
    } else if truthy(cell(1)) {
        ("warn", format!("{failures} failing rows"))
    } else {
        ("pass", String::new())
    };
    Outcome { status, rendering: Some("test".into()), message: msg, failures: Some(failures) }
}

/// A pushdown node on its target's connection.
fn run_pushdown(
    env: &Env,
    plan: &Plan,
    node: &PlanNode,
    p: &dvt_schema::plan::PushdownPlan,
    opts: &RunOptions,
    conn: &mut dyn Connection,
) -> Outcome {
    let dialect = Dialect::from_adapter(&p.dialect).unwrap_or(Dialect::Postgres);
    if let Err(e) = run_hooks(env, node, conn, dialect, false) {
        return fail(e);
    }
    if node.resource_type == "test" {
        return match conn.query(&p.full_refresh[0].sql) {
            Ok(rows) => test_outcome(node, &rows),
            Err(e) => fail(e),
        };
    }
    if let Some(unit) = &node.unit {
        return match crate::unit_test::run(conn, node, unit, &p.full_refresh[0].sql) {
            Ok((status, message, failures)) => Outcome { status, rendering: Some("unit_test".into()), message, failures: Some(failures) },
            Err(e) => fail(e),
        };
    }
    let existing = match &node.relation {
        Some(r) => {
            let (s, i) = connectors::parts(r);
            match conn.relation_kind(s, i) {
                Ok(k) => k,
                Err(e) => return fail(e),
            }
        }
        None => None,
    };
    let effective = node.materialization.effective.as_str();
    let (name, stmts) = match (existing, opts.full_refresh) {
        (Some(RelationKind::Table), false)
            if p.incremental.is_some() && (effective == "incremental" || node.resource_type == "snapshot") =>
        {
            ("incremental", p.incremental.as_ref().expect("checked"))
        }
        (Some(RelationKind::Table), false) if p.replace.is_some() && effective != "view" => {
            ("replace", p.replace.as_ref().expect("checked"))
        }
        (Some(RelationKind::View), false) if effective == "view" && p.replace.is_some() => {
            ("replace", p.replace.as_ref().expect("checked"))
        }
        _ => ("full_refresh", &p.full_refresh),
    };
    let mut loaded = None;
    if node.resource_type == "seed" {
        match run_loading(conn, node, stmts, existing, dialect, |conn, stage| {
            crate::seed_load::load_seed(conn, env, plan, node, stage, stmts, existing)
        }) {
            Ok(n) => loaded = Some(n),
            Err(e) => return fail(e),
        }
    } else if let Err(e) = run_statements(conn, node, stmts, existing) {
        return fail(e);
    }
    if let Err(e) = run_hooks(env, node, conn, dialect, true) {
        return fail(e);
    }
    let what = match loaded {
        Some(n) => format!("{n} rows loaded"),
        None => format!("{} {}", node.materialization.effective, node.relation.as_ref().map_or("", |r| r.rendered.as_str())),
    };
    ok("success", name, what)
}

/// Runs the node's pre- or post-hooks on `conn`: as the plan has them, or
/// rendered now against the live databases when they query it (dbt's timing:
/// post-hooks see what the node built).
fn run_hooks(env: &Env, node: &PlanNode, conn: &mut dyn Connection, dialect: Dialect, post: bool) -> Result<(), String> {
    let which = if post { "post-hook" } else { "pre-hook" };
    let mut run = |sql: &str| if sql.trim().is_empty() { Ok(()) } else { conn.execute(sql).map_err(|e| format!("{which} failed: {e}")) };
    let Some(rh) = &node.runtime_hooks else {
        return (if post { &node.post_hooks } else { &node.pre_hooks }).iter().try_for_each(|h| run(h));
    };
    let render = env
        .live_render
        .as_ref()
        .ok_or_else(|| format!("its hooks render at run time ({}), which needs the project: run it from the project folder", rh.reason))?;
    for t in if post { &rh.post } else { &rh.pre } {
        let sql = render.hook(&node.unique_id, dialect, t).map_err(|e| format!("{which} could not render: {e}"))?;
        run(&sql)?;
    }
    Ok(())
}

/// Now, as run_results.json writes times (RFC 3339, UTC).
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A node's outcome as dbt's run results describe it.
fn node_result(node: &PlanNode, out: Outcome, seconds: f64, executed: Option<(String, String)>, slot: usize) -> NodeResult {
    let mut adapter_response = BTreeMap::from([("_message".to_string(), serde_json::Value::from(out.message.clone()))]);
    if let Some(r) = &out.rendering {
        adapter_response.insert("rendering".into(), r.clone().into());
    }
    let timing = executed
        .map(|(started, completed)| {
            vec![dvt_schema::run_results::Timing { name: "execute".into(), started_at: Some(started), completed_at: Some(completed) }]
        })
        .unwrap_or_default();
    NodeResult {
        status: out.status.into(),
        timing,
        thread_id: if slot == 0 { "main".into() } else { format!("Thread-{slot}") },
        execution_time: seconds,
        adapter_response,
        message: Some(out.message),
        failures: out.failures,
        unique_id: node.unique_id.clone(),
        compiled: Some(node.compiled_sql.is_some()),
        compiled_code: node.compiled_sql.clone(),
        relation_name: node.relation.as_ref().map(|r| r.rendered.clone()),
    }
}

/// Runs the selected nodes of `plan` between its `on-run-start` and `on-run-end`
/// hooks; results in that order (a failed `on-run-start` hook skips every node).
pub fn run(plan: &Plan, env: Arc<Env>, opts: &RunOptions) -> Vec<NodeResult> {
    let mut results = run_project_hooks(&env, plan, opts, None);
    let blocked = results.iter().any(|r| r.status == "error").then_some("skipped: an on-run-start hook failed");
    let nodes = run_nodes(plan, env.clone(), opts, blocked);
    let end = run_project_hooks(&env, plan, opts, Some(&nodes));
    results.extend(nodes);
    results.extend(end);
    results
}

/// Runs the plan's `on-run-start` hooks (`nodes` None) or its `on-run-end` hooks
/// (with the nodes' results), one after another on their target.
fn run_project_hooks(env: &Env, plan: &Plan, opts: &RunOptions, nodes: Option<&[NodeResult]>) -> Vec<NodeResult> {
    let Some(command) = &opts.run_hooks else { return vec![] };
    let hooks = if nodes.is_some() { &plan.on_run_end } else { &plan.on_run_start };
    if hooks.is_empty() {
        return vec![];
    }
    if nodes.is_none() {
        // As dbt: the schemas the selected nodes write to exist before `on-run-start`.
        for (target, database, schema) in crate::sync::node_schemas(plan, selected(plan, opts)) {
            // A failure here is the node's to report.
            let _ = crate::sync::ensure_schema(env, plan, &target, database.as_deref(), &schema);
        }
    }
    let selected_resources: Vec<&str> = selected(plan, opts).map(|n| n.unique_id.as_str()).collect();
    let mut context = hook_context(plan, command, opts.full_refresh, nodes.unwrap_or_default());
    context["selected_resources"] = serde_json::json!(selected_resources);
    let mut out = Vec::new();
    for h in hooks {
        let (t, started) = (Instant::now(), now());
        let outcome = match run_project_hook(env, h, &context) {
            Ok(()) => ok("success", "hook", format!("{} hook", if nodes.is_some() { "on-run-end" } else { "on-run-start" })),
            Err(e) => fail(e),
        };
        let name = h.unique_id.rsplit('.').next().unwrap_or_default();
        crate::events::hook_finished(opts.log_format, name, outcome.status, &outcome.message);
        let mut adapter_response = BTreeMap::from([("_message".to_string(), serde_json::Value::from(outcome.message.clone()))]);
        adapter_response.extend(outcome.rendering.map(|r| ("rendering".to_string(), r.into())));
        out.push(NodeResult {
            status: outcome.status.into(),
            timing: vec![dvt_schema::run_results::Timing { name: "execute".into(), started_at: Some(started), completed_at: Some(now()) }],
            thread_id: "main".into(),
            execution_time: t.elapsed().as_secs_f64(),
            adapter_response,
            message: Some(outcome.message),
            failures: None,
            unique_id: h.unique_id.clone(),
            compiled: Some(h.compiled_sql.is_some()),
            compiled_code: h.compiled_sql.clone(),
            relation_name: None,
        });
    }
    out
}

/// Renders (live when the project is at hand) and runs one run hook.
fn run_project_hook(env: &Env, h: &dvt_schema::plan::RunHook, context: &serde_json::Value) -> Result<(), String> {
    let sql = match &env.live_render {
        Some(render) => render.run_hook(h, context)?,
        None => h.compiled_sql.clone().ok_or("this hook renders at run time, which needs the project folder")?,
    };
    if sql.trim().is_empty() {
        return Ok(());
    }
    let mut conn = env.pool.get(&h.target)?;
    conn.execute(&sql)?;
    conn.release();
    Ok(())
}

/// What dbt adds to an `on-run-end` hook's context: `results` (each with its
/// `node`), the `schemas` and `database_schemas` written to, and `flags`
/// (`selected_resources` is added by the caller).
fn hook_context(plan: &Plan, command: &str, full_refresh: bool, results: &[NodeResult]) -> serde_json::Value {
    let mut schemas = BTreeSet::new();
    let mut database_schemas = BTreeSet::new();
    let results: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(n) = plan.nodes.get(&r.unique_id) {
                let rel = n.relation.as_ref();
                let (database, schema) = (rel.and_then(|r| r.database.clone()), rel.and_then(|r| r.schema.clone()));
                if let Some(s) = &schema {
                    schemas.insert(s.clone());
                    database_schemas.insert((database.clone().unwrap_or_default(), s.clone()));
                }
                v["node"] = serde_json::json!({
                    "unique_id": n.unique_id, "name": n.name, "resource_type": n.resource_type, "package_name": n.package_name,
                    "fqn": n.fqn, "database": database, "schema": schema,
                    "alias": rel.map(|r| r.identifier.clone()), "relation_name": rel.map(|r| r.rendered.clone()),
                    "original_file_path": n.file, "tags": n.tags, "depends_on": {"nodes": n.depends_on},
                    "config": {"materialized": n.materialization.effective, "target": n.target.value},
                });
            }
            v
        })
        .collect();
    serde_json::json!({
        "results": results,
        "schemas": schemas,
        "database_schemas": database_schemas.into_iter().map(|(d, s)| [d, s]).collect::<Vec<_>>(),
        "flags": {"WHICH": command, "FULL_REFRESH": full_refresh},
    })
}

/// The nodes of `plan` the options select, in plan order.
fn selected<'p>(plan: &'p Plan, opts: &'p RunOptions) -> impl Iterator<Item = &'p PlanNode> {
    plan.order
        .iter()
        .filter_map(|id| plan.nodes.get(id).map(|n| n.as_ref()))
        .filter(|n| opts.resource_types.is_empty() || opts.resource_types.contains(&n.resource_type))
        .filter(|n| opts.only.as_ref().is_none_or(|o| o.contains(&n.unique_id)))
        .filter(|n| n.resource_type != "analysis")
}

/// Runs the selected nodes of `plan` (none when `blocked`: all skipped with that reason).
fn run_nodes(plan: &Plan, env: Arc<Env>, opts: &RunOptions, blocked: Option<&str>) -> Vec<NodeResult> {
    let selected: Vec<&PlanNode> = selected(plan, opts).collect();
    let ids: BTreeSet<&str> = selected.iter().map(|n| n.unique_id.as_str()).collect();
    let total = selected.len();
    let mut pending: HashMap<&str, usize> =
        selected.iter().map(|n| (n.unique_id.as_str(), n.depends_on.iter().filter(|d| ids.contains(d.as_str())).count())).collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in &selected {
        for d in n.depends_on.iter().filter(|d| ids.contains(d.as_str())) {
            children.entry(d.as_str()).or_default().push(n.unique_id.as_str());
        }
    }
    let results: Arc<Mutex<BTreeMap<String, NodeResult>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let (tx, rx) = mpsc::channel::<(String, NodeResult, usize)>();
    // Worker slots, for dbt's `thread_id` (`Thread-1` … `Thread-N`).
    let mut free_slots: Vec<usize> = (1..=opts.threads.max(1)).rev().collect();
    let mut ready: Vec<&str> = selected.iter().filter(|n| pending[n.unique_id.as_str()] == 0).map(|n| n.unique_id.as_str()).collect();
    let mut running = 0usize;
    let mut done = 0usize;
    let mut stop = blocked.is_some();
    let bar = crate::events::bar(opts.log_format, total);
    std::thread::scope(|scope| {
        loop {
            while !stop && running < opts.threads.max(1) {
                let Some(id) = ready.pop() else { break };
                let node = plan.nodes[id].clone();
                let tx = tx.clone();
                let env = env.clone();
                let o = opts.clone();
                running += 1;
                let slot = free_slots.pop().unwrap_or(running);
                crate::events::node_started(opts.log_format, bar.as_ref(), &node, &format!("Thread-{slot}"));
                scope.spawn(move || {
                    let (t, started_at) = (Instant::now(), now());
                    let out = run_node(&env, plan, &node, &o);
                    let r = node_result(&node, out, t.elapsed().as_secs_f64(), Some((started_at, now())), slot);
                    let _ = tx.send((node.unique_id, r, slot));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((id, r, slot)) = rx.recv() else { break };
            free_slots.push(slot);
            running -= 1;
            done += 1;
            crate::events::node_finished(opts.log_format, bar.as_ref(), done, total, &plan.nodes[&id], &r);
            let failed = r.status == "error" || r.status == "fail";
            results.lock().expect("results lock").insert(id.clone(), r);
            if failed && opts.fail_fast {
                stop = true;
            }
            // Children run when all their parents succeeded; a failed node's descendants
            // never become ready and are reported as skipped.
            if !failed {
                for child in children.get(id.as_str()).cloned().unwrap_or_default() {
                    let p = pending.get_mut(child).expect("known child");
                    *p -= 1;
                    if *p == 0 {
                        ready.push(child);
                    }
                }
            }
        }
    });
    let mut results = Arc::try_unwrap(results).map(|m| m.into_inner().unwrap_or_default()).unwrap_or_default();
    for n in &selected {
        if !results.contains_key(&n.unique_id) {
            let reason = match (blocked, stop) {
                (Some(b), _) => b,
                (None, true) => "skipped: --fail-fast stopped the run",
                (None, false) => "skipped: an upstream node failed",
            };
            let skipped = Outcome { status: "skipped", rendering: None, message: reason.into(), failures: None };
            let r = node_result(n, skipped, 0.0, None, 0);
            done += 1;
            crate::events::node_finished(opts.log_format, bar.as_ref(), done, total, n, &r);
            results.insert(n.unique_id.clone(), r);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    plan.order.iter().filter_map(|id| results.remove(id)).collect()
}
