//! `dvtr sync`: prepares what a run of the project needs and says what it did
//! — every output the plan writes to has a connector in this `dvtr` and
//! answers, every schema a node writes into exists (created if missing),
//! every bucket is reachable (a probe object written, read and deleted; a
//! `file` bucket's folder is created). Running it again changes nothing.

use std::collections::BTreeSet;

use dvt_compiler::dialect::Dialect;
use dvt_schema::plan::Plan;

use dvt_compiler::loader::BUCKET_OUTPUT;

use crate::debug::Check;
use crate::write::Env;

/// Output types this `dvtr` connects to.
const CONNECTORS: [&str; 6] = ["postgres", "postgresql", "mysql", "mariadb", "sqlite", "duckdb"];

/// Syncs what `plan` needs; one row per output, schema and bucket.
pub fn sync(plan: &Plan, env: &Env) -> Vec<Check> {
    let mut out = Vec::new();
    for t in plan.targets.values().filter(|t| t.kind != BUCKET_OUTPUT) {
        let item = format!("output {} ({})", t.name, t.kind);
        if !CONNECTORS.contains(&t.kind.as_str()) {
            out.push(check(item, Err(format!("no `{}` connector in this dvtr: its SQL is generated, not run", t.kind))));
            continue;
        }
        out.push(check(
            item,
            env.pool.get(&t.name).map(|mut c| {
                c.release();
                "connector built in, connected".to_string()
            }),
        ));
    }
    for (target, database, schema) in node_schemas(plan, plan.nodes.values().map(|n| &**n)) {
        out.push(check(format!("schema {schema} on {target}"), ensure_schema(env, plan, &target, database.as_deref(), &schema)));
    }
    for b in plan.buckets.values() {
        let result = env.buckets.get(&b.name, Some(b)).and_then(|bucket| bucket.probe()).map(|()| "reachable: write, read, delete".into());
        out.push(check(format!("bucket {} ({})", b.name, b.kind), result));
    }
    out
}

fn check(item: String, result: Result<String, String>) -> Check {
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    Check { item, ok, detail }
}

/// Schemas `nodes` write into, per output of a built-in connector (a node's own
/// schema, e.g. `analytics_staging`): (output, database, schema).
pub(crate) fn node_schemas<'p>(
    plan: &Plan,
    nodes: impl Iterator<Item = &'p dvt_schema::plan::PlanNode>,
) -> BTreeSet<(String, Option<String>, String)> {
    nodes
        .filter(|n| matches!(n.resource_type.as_str(), "model" | "seed" | "snapshot") && n.materialization.effective != "ephemeral")
        .filter_map(|n| n.relation.as_ref())
        .filter(|r| plan.targets.get(&r.target).is_some_and(|t| t.kind != BUCKET_OUTPUT && CONNECTORS.contains(&t.kind.as_str())))
        .filter_map(|r| r.schema.clone().map(|s| (r.target.clone(), r.database.clone(), s)))
        .collect()
}

/// Creates `schema` on `target` unless it exists; says which.
pub(crate) fn ensure_schema(env: &Env, plan: &Plan, target: &str, database: Option<&str>, schema: &str) -> Result<String, String> {
    // A bucket target has no schema to create (and is not an output).
    let kind = &plan.targets.get(target).ok_or_else(|| format!("`{target}` is not an output of the plan"))?.kind;
    let dialect = Dialect::from_adapter(kind).ok_or_else(|| format!("unknown output type `{kind}`"))?;
    if dialect == Dialect::Sqlite {
        // A SQLite file has one schema, `main` (others are attached files).
        return if schema == "main" { Ok("exists (SQLite's main)".into()) } else { Err(format!("SQLite has no schema `{schema}`")) };
    }
    let mut conn = env.pool.get(target)?;
    let lookup = format!("select 1 from information_schema.schemata where schema_name = '{}'", schema.replace('\'', "''"));
    let exists = !conn.query(&lookup)?.rows.is_empty();
    let done = if exists {
        "exists".to_string()
    } else {
        let sql = dialect.sql().create_schema(database, schema).ok_or_else(|| format!("{kind} cannot create schemas"))?;
        conn.execute(&sql)?;
        "created".to_string()
    };
    conn.release();
    Ok(done)
}
