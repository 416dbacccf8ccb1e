//! What a run reports while it runs: dbt's text lines (`  3 of 12  OK  model
//! orders [0.12s] …`), or with `--log-format json` one JSON object per line on
//! standard output in dbt's structured-log shape (`{"info": {"name":
//! "NodeFinished", "code": "Q025", "level", "msg", "ts", "thread"}, "data":
//! {"node_info": …, "run_result": …}}`), so tools that follow dbt's JSON logs
//! follow DVT's. On a terminal (text format) a progress bar of the run's nodes,
//! naming what runs now, stays below the finished lines.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

use dvt_compiler::cli::{LogFormat, event as emit};
use dvt_schema::plan::PlanNode;
use dvt_schema::run_results::NodeResult;

fn node_info(node: &PlanNode, status: &str) -> serde_json::Value {
    serde_json::json!({
        "unique_id": node.unique_id,
        "resource_type": node.resource_type,
        "node_name": node.name,
        "materialized": node.materialization.effective,
        "node_status": status,
        "node_relation": node.relation.as_ref().map(|r| serde_json::json!({
            "database": r.database,
            "schema": r.schema,
            "alias": r.identifier,
            "relation_name": r.rendered,
        })),
        "target": node.target.value,
        "path": format!("{:?}", node.path).to_ascii_lowercase(),
    })
}

/// A line of information (`name` is the event's name in JSON).
pub fn note(format: LogFormat, name: &str, msg: &str) {
    dvt_compiler::cli::say(format, name, msg, serde_json::json!({}));
}

/// An `on-run-start`/`on-run-end` hook ran (`status` as in run results).
pub fn hook_finished(format: LogFormat, name: &str, status: &str, message: &str) {
    let shown = if status == "success" { "OK" } else { "ERROR" };
    let line = format!("{shown:<5} hook {name} {message}");
    match format {
        LogFormat::Text => println!("{line}"),
        LogFormat::Json => {
            let level = if status == "success" { "info" } else { "error" };
            emit("HookFinished", Some("Q033"), level, line.trim(), "main", serde_json::json!({"hook": name, "status": status}))
        }
    }
}

/// The run is about to start `n` nodes.
pub fn run_started(format: LogFormat, n: usize, threads: usize) {
    let msg = format!("Running {n} nodes with {threads} threads");
    match format {
        LogFormat::Text => println!("{msg}"),
        LogFormat::Json => emit(
            "ConcurrencyLine",
            Some("Q026"),
            "info",
            &msg,
            "MainThread",
            serde_json::json!({ "num_threads": threads, "node_count": n }),
        ),
    }
}

/// Rows read from files and fragments in this process (for the progress bar).
static ROWS: AtomicU64 = AtomicU64::new(0);

/// Counts rows read (seed files, fragments) toward the progress bar.
pub fn rows_read(n: u64) {
    ROWS.fetch_add(n, Ordering::Relaxed);
}

/// A progress bar over `total` nodes when the text log goes to a terminal.
pub fn bar(format: LogFormat, total: usize) -> Option<ProgressBar> {
    if format != LogFormat::Text || !std::io::stdout().is_terminal() || total == 0 {
        return None;
    }
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} nodes, {rows} rows read [{elapsed}] {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rows", |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}", ROWS.load(Ordering::Relaxed));
        });
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

/// A worker took `node`: the bar names it; JSON gets a `NodeStart` event (dbt's
/// text log shows only the finish line).
pub fn node_started(format: LogFormat, bar: Option<&ProgressBar>, node: &PlanNode, thread: &str) {
    if let Some(b) = bar {
        b.set_message(format!("{} {}", node.resource_type, node.name));
    }
    if format == LogFormat::Json {
        let msg = format!("START {} {}", node.resource_type, node.name);
        emit("NodeStart", Some("Q024"), "info", &msg, thread, serde_json::json!({ "node_info": node_info(node, "started") }));
    }
}

/// `node` finished (the `i`-th of `n`) with `r`.
pub fn node_finished(format: LogFormat, bar: Option<&ProgressBar>, i: usize, n: usize, node: &PlanNode, r: &NodeResult) {
    let status = match r.status.as_str() {
        "success" => "OK",
        "pass" => "PASS",
        "warn" => "WARN",
        "fail" => "FAIL",
        "skipped" => "SKIP",
        _ => "ERROR",
    };
    let message = r.message.as_deref().unwrap_or("");
    let line = format!("{i:>4} of {n:<4} {status:<5} {} {} [{:.2}s] {message}", node.resource_type, node.name, r.execution_time);
    match (format, bar) {
        (LogFormat::Text, Some(b)) => {
            b.println(&line);
            b.inc(1);
        }
        (LogFormat::Text, None) => println!("{line}"),
        (LogFormat::Json, _) => {
            let level = if matches!(status, "ERROR" | "FAIL") {
                "error"
            } else if status == "WARN" {
                "warn"
            } else {
                "info"
            };
            emit(
                "NodeFinished",
                Some("Q025"),
                level,
                line.trim(),
                &r.thread_id,
                serde_json::json!({
                    "node_info": node_info(node, &r.status),
                    "run_result": {
                        "status": r.status,
                        "message": r.message,
                        "execution_time": r.execution_time,
                        "num_failures": r.failures,
                        "adapter_response": r.adapter_response,
                        "thread": r.thread_id,
                        "index": i,
                        "total": n,
                    },
                }),
            );
        }
    }
}

/// The run ended; returns the exit code (0 ok, 1 node failures).
pub fn run_finished(format: LogFormat, results: &[NodeResult], elapsed: f64) -> i32 {
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    let pass = count("success") + count("pass");
    let (warn, error, skip) = (count("warn"), count("error") + count("fail"), count("skipped"));
    let stats = format!("Done. PASS={pass} WARN={warn} ERROR={error} SKIP={skip} TOTAL={}", results.len());
    match format {
        LogFormat::Text => {
            println!("\nFinished {} nodes in {elapsed:.2}s.", results.len());
            println!("{stats}");
            for r in results.iter().filter(|r| r.status == "error" || r.status == "fail") {
                println!("  {}: {}", r.unique_id, r.message.as_deref().unwrap_or(""));
            }
        }
        LogFormat::Json => {
            emit(
                "FinishedRunningStats",
                None,
                "info",
                &format!("Finished {} nodes in {elapsed:.2}s.", results.len()),
                "MainThread",
                serde_json::json!({ "node_count": results.len(), "execution_time": elapsed }),
            );
            emit(
                "StatsLine",
                Some("Z023"),
                if error > 0 { "error" } else { "info" },
                &stats,
                "MainThread",
                serde_json::json!({ "stats": { "pass": pass, "warn": warn, "error": error, "skip": skip, "total": results.len() } }),
            );
        }
    }
    i32::from(error > 0)
}
