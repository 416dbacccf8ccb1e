//! `dvtr clone --state <dir>`: the selected models, seeds and snapshots of the
//! state's run made available in the current target, as dbt's `clone` does —
//! as a view over the state's relation when both outputs reach the same
//! database (same engine, server and database, or file), and (DVT's addition)
//! copied as a table through the compute when the state's relation is in
//! another database, where no view can reach it.

use dvt_compiler::compile::materialize;
use dvt_compiler::dialect::Dialect;
use dvt_schema::Plan;
use dvt_schema::plan::{
    ExecutionPath, FederationPlan, Fragment, Materialization, PlanNode, PushdownPlan, RelationRef, Upstream, WriteStrategy,
};

use crate::connectors;
use crate::write::Env;

/// What to do for one node.
pub enum Clone {
    /// Ready to run: a view over the state's relation, or a copy into a table.
    Node(Box<PlanNode>),
    /// Nothing to do (the reason is printed).
    Skip(String),
}

/// The clone of `current` (this run's node) from `previous` (the state's node).
pub fn plan_clone(env: &Env, current: &PlanNode, previous: &PlanNode, full_refresh: bool) -> Result<Clone, String> {
    let (Some(to), Some(from)) = (&current.relation, &previous.relation) else {
        return Ok(Clone::Skip("no relation (ephemeral)".into()));
    };
    if current.target.value == previous.target.value && to.rendered == from.rendered {
        return Ok(Clone::Skip("the state's relation is this relation".into()));
    }
    let creds =
        env.pool.creds().get(&current.target.value).ok_or_else(|| format!("output `{}` is not in profiles.yml", current.target.value))?;
    if !env.pool.creds().contains_key(&previous.target.value) {
        return Err(format!(
            "the state's relation {} is on output `{}`, which profiles.yml does not define",
            from.rendered, previous.target.value
        ));
    }
    let dialect =
        Dialect::from_adapter(&creds.kind).ok_or_else(|| format!("output `{}` has an unknown type `{}`", creds.name, creds.kind))?;
    let mut conn = env.pool.get(&current.target.value)?;
    let (schema, ident) = connectors::parts(to);
    let exists = conn.relation_kind(schema, ident)?.is_some();
    conn.release();
    if exists && !full_refresh {
        return Ok(Clone::Skip(format!("{} already exists (--full-refresh replaces it)", to.rendered)));
    }
    let mut node = Box::new(PlanNode {
        depends_on: vec![],
        upstreams: vec![Upstream {
            unique_id: previous.unique_id.clone(),
            target: previous.target.value.clone(),
            relation: Some(from.clone()),
            deferred: true,
        }],
        render_at_runtime: None,
        tests: vec![],
        seed: None,
        test: None,
        pre_hooks: vec![],
        post_hooks: vec![],
        runtime_hooks: None,
        microbatch: None,
        contract: None,
        unit: None,
        ..current.clone()
    });
    let select = format!("select * from {}", from.rendered);
    let same_database = env.pool.creds().get(&previous.target.value).is_some_and(|p| p.same_database(creds));
    if same_database {
        let s = materialize::view(dialect, to, &select, None);
        node.materialization = Materialization { requested: "clone".into(), effective: "view".into(), coercion: None };
        node.path = ExecutionPath::Pushdown;
        node.compiled_sql = Some(select);
        node.pushdown =
            Some(PushdownPlan { dialect: dialect.name().into(), full_refresh: s.full_refresh, incremental: None, replace: s.replace });
        node.federation = None;
        node.write = s.write;
    } else {
        let source_kind = env.pool.creds().get(&previous.target.value).map(|c| c.kind.clone()).unwrap_or_default();
        let source_dialect =
            Dialect::from_adapter(&source_kind).ok_or_else(|| format!("output `{}` has an unknown type", previous.target.value))?;
        node.materialization = Materialization { requested: "clone".into(), effective: "table".into(), coercion: None };
        node.path = ExecutionPath::Federation;
        node.pushdown = None;
        node.compiled_sql = Some(select);
        node.federation = Some(Box::new(copy_plan(previous, from, source_dialect)));
        node.write = Some(WriteStrategy {
            strategy: "replace".into(),
            unique_key: vec![],
            on_schema_change: "fail".into(),
            this_subqueries: vec![],
        });
    }
    Ok(Clone::Node(node))
}

/// Reads the whole state relation from its output and writes it as it is.
fn copy_plan(previous: &PlanNode, from: &RelationRef, source_dialect: Dialect) -> FederationPlan {
    let name = "dvt_clone_source".to_string();
    FederationPlan {
        compute_dialect: "datafusion".into(),
        fragments: vec![Fragment {
            name: name.clone(),
            upstream: previous.unique_id.clone(),
            reads: vec![],
            target: previous.target.value.clone(),
            dialect: source_dialect.name().into(),
            sql: format!("select * from {}", from.rendered),
            columns: vec![],
            files: vec![],
            partitions: None,
        }],
        remainder: format!("select * from \"{name}\""),
        remainder_incremental: None,
        casts: vec![],
        predicates: vec![],
        fallbacks: vec![],
    }
}

/// A plan of clones, runnable by the executor: the current plan's outputs, computes and
/// buckets, plus the state's outputs the copies read.
pub fn clone_plan(current: &Plan, state: &Plan, nodes: Vec<Box<PlanNode>>) -> Plan {
    let mut plan = current.clone();
    for (k, t) in &state.targets {
        plan.targets.entry(k.clone()).or_insert_with(|| t.clone());
    }
    plan.order = nodes.iter().map(|n| n.unique_id.clone()).collect();
    plan.nodes = nodes.into_iter().map(|n| (n.unique_id.clone(), n)).collect();
    plan
}
