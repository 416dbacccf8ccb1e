//! The write path every node kind shares (SPEC §4): the run environment,
//! running a rendering's statements, bulk-loading a staging relation, and
//! checking columns before rows move into an existing table. Seeds, pushdown
//! models and federated models all write through here; none calls another.

use dvt_schema::plan::{PlanNode, Statement};

use crate::connectors::{self, Connection, RelationKind};
use dvt_compiler::dialect::Dialect;

/// Where the runtime finds what a plan refers to.
pub struct Env {
    /// Connections to the outputs of profiles.yml, reused across nodes.
    pub pool: connectors::Pool,
    pub project_dir: std::path::PathBuf,
    /// Buckets federated nodes spill to (credentials from buckets.yml, read at run time).
    pub buckets: crate::buckets::Buckets,
    /// Renders what waits for the run (nodes marked "render at run time", hooks
    /// that query the database) against the live databases, at the node's turn
    /// (so `run_query` sees what upstream nodes built). None without the project.
    pub live_render: Option<Box<dyn LiveRender>>,
}

/// See [`Env::live_render`].
pub trait LiveRender: Send + Sync {
    /// The node's plan, rendered live.
    fn node(&self, id: &str) -> Result<Box<PlanNode>, String>;
    /// One hook template of the node, rendered live in `dialect`.
    fn hook(&self, id: &str, dialect: Dialect, template: &str) -> Result<String, String>;
    /// An `on-run-start`/`on-run-end` hook, rendered live with `context` added
    /// (`results`, `schemas`, `database_schemas`, `flags`).
    fn run_hook(&self, hook: &dvt_schema::plan::RunHook, context: &serde_json::Value) -> Result<String, String>;
}

/// Runs the statements of one rendering; returns an error after cleaning up.
pub(crate) fn run_statements(
    conn: &mut dyn Connection,
    node: &PlanNode,
    stmts: &[Statement],
    existing: Option<RelationKind>,
) -> Result<(), String> {
    let mut in_tx = false;
    for st in stmts {
        let skip = match st.kind.as_str() {
            "drop_target_table" => existing != Some(RelationKind::Table),
            "drop_target_view" => existing != Some(RelationKind::View),
            "check_columns" | "bulk_load" => true,
            _ => false,
        };
        if skip {
            continue;
        }
        if st.kind == "check_contract" {
            check_contract(conn, node, &st.sql).inspect_err(|_| cleanup(conn, stmts))?;
            continue;
        }
        if st.kind == "begin" {
            in_tx = true;
        }
        let mut result = conn.execute(&st.sql);
        if result.is_err() && st.kind == "create_schema" {
            // Two nodes creating one schema at once race in PostgreSQL's catalog even with
            // IF NOT EXISTS; the second attempt sees the schema.
            result = conn.execute(&st.sql);
        }
        if let Err(e) = result {
            if in_tx {
                let _ = conn.execute("rollback");
            }
            cleanup(conn, stmts);
            return Err(format!("{} failed: {e}", st.kind));
        }
        if st.kind == "commit" {
            in_tx = false;
        }
        if st.kind == "create_staging" {
            check_columns(conn, node, stmts, existing).inspect_err(|_| cleanup(conn, stmts))?;
        }
    }
    Ok(())
}

/// An enforced contract: the model's query (run for no rows) must return the declared columns.
fn check_contract(conn: &mut dyn Connection, node: &PlanNode, probe: &str) -> Result<(), String> {
    let Some(contract) = &node.contract else { return Ok(()) };
    let columns = conn.query(probe).map_err(|e| format!("check_contract failed: {e}"))?.columns;
    dvt_compiler::compile::contract::check(&node.name, contract, &columns)
}

/// Drops the staging relations of a rendering (best effort).
fn cleanup(conn: &mut dyn Connection, stmts: &[Statement]) {
    for st in stmts.iter().filter(|s| s.kind == "drop_staging") {
        let _ = conn.execute(&st.sql);
    }
}

/// Before rows move into an existing table, its columns must match the staging table's.
pub(crate) fn check_columns(
    conn: &mut dyn Connection,
    node: &PlanNode,
    stmts: &[Statement],
    existing: Option<RelationKind>,
) -> Result<(), String> {
    if existing != Some(RelationKind::Table) || !stmts.iter().any(|s| s.kind == "check_columns") {
        return Ok(());
    }
    let Some(r) = &node.relation else { return Ok(()) };
    let stage_ident = stmts
        .iter()
        .find(|s| s.kind == "create_staging")
        .and_then(|s| {
            ["__dvt_tmp", "__dvt_incr", "__dvt_changes"].iter().find(|suf| s.sql.contains(*suf)).map(|suf| format!("{}{suf}", r.identifier))
        })
        .unwrap_or_default();
    let (schema, ident) = connectors::parts(r);
    let target = conn.columns(schema, ident)?;
    let stage = conn.columns(schema, &stage_ident)?;
    let norm = |v: &[(String, String)]| v.iter().map(|(c, _)| c.to_ascii_lowercase()).collect::<Vec<_>>();
    let extra_ok = node.write.as_ref().is_some_and(|w| w.strategy.starts_with("snapshot"));
    if norm(&target) != norm(&stage) && !(extra_ok && norm(&stage).iter().all(|c| norm(&target).contains(c))) {
        return Err(format!(
            "the columns of {} changed ({} -> {}); rerun with --full-refresh to rebuild it",
            r.rendered,
            target.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", "),
            stage.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

/// Runs a rendering that bulk-loads its staging table (`<identifier>__dvt_tmp`):
/// the statements before the `bulk_load` marker, then `load`, then the rest.
/// On failure the staging table is dropped and the target is left as it was.
pub fn run_loading(
    conn: &mut dyn Connection,
    node: &PlanNode,
    stmts: &[Statement],
    existing: Option<RelationKind>,
    dialect: Dialect,
    load: impl FnOnce(&mut dyn Connection, &str) -> Result<u64, String>,
) -> Result<u64, String> {
    let r = node.relation.as_ref().ok_or("nothing to load into: the node has no relation")?;
    let split = stmts.iter().position(|s| s.kind == "bulk_load").unwrap_or(stmts.len());
    run_statements(conn, node, &stmts[..split], existing)?;
    // The column check belongs to the whole rendering (its marker follows the load).
    if stmts[..split].iter().any(|s| s.kind == "create_staging") {
        check_columns(conn, node, stmts, existing).inspect_err(|_| cleanup(conn, stmts))?;
    }
    let (stage, _) = dvt_compiler::compile::materialize::sibling(dialect, r, "__dvt_tmp");
    let n = load(conn, &stage).inspect_err(|_| cleanup(conn, stmts))?;
    run_statements(conn, node, &stmts[split..], existing)?;
    Ok(n)
}
