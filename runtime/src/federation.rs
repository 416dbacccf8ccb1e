//! Federated nodes (SPEC §2.6, §4): each fragment is read from its own
//! database into Arrow, the remainder runs in DataFusion over them, and the
//! result is bulk-loaded into a staging table on the target and swapped in
//! (or merged, for incremental models), so a failure leaves the target as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::MemTable;
use datafusion::common::TableReference;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::SessionContext;
use dvt_compiler::compile::materialize;
use dvt_compiler::dialect::{Dialect, LogicalType};
use dvt_compiler::federate::{self, FragmentInput};
use dvt_schema::plan::{FederationPlan, Fragment, PlanNode, RelationRef};
use futures::StreamExt;
use sqlparser::ast::{Expr, SetExpr, TableFactor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::arrow_rows;
use crate::connectors::{self, Connection, RelationKind};
use crate::executor::{self, Env};

/// The compute's async runtime, shared by every worker thread of a run.
static COMPUTE: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("dvt-compute").build().expect("tokio runtime")
});

/// Arrow types the runtime's callers (and tests) handle.
pub use datafusion::arrow::array::RecordBatch as Batch;
pub use datafusion::arrow::datatypes::SchemaRef;

/// Batches of one schema as one batch.
pub fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, String> {
    datafusion::arrow::compute::concat_batches(schema, batches).map_err(|e| e.to_string())
}

/// The name the remainder uses for the incremental model's own table.
const THIS: &str = "__this";

/// What a federated node did.
pub struct Written {
    pub rendering: &'static str,
    pub rows: u64,
    /// Predicates pushed into fragments at run time (`{{ this }}` values bound as literals).
    pub pushed: Vec<String>,
}

/// A DataFusion session for one remainder. The physical FilterPushdown rules
/// are left out: in DataFusion 55 they push a filter into the wrong input of a
/// join that JoinSelection swapped (a right join with `IS NULL` on its
/// null-supplying side returned no rows; see the test below). Logical filter
/// pushdown still applies.
fn session() -> SessionContext {
    let rules = PhysicalOptimizer::new().rules.into_iter().filter(|r| !r.name().starts_with("FilterPushdown")).collect();
    let state = SessionStateBuilder::new().with_default_features().with_physical_optimizer_rules(rules).build();
    SessionContext::new_with_state(state)
}

/// A fragment's rows in Arrow: its schema and one batch per chunk read.
#[derive(Debug, Clone)]
pub struct Table {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Table {
    /// All rows as one batch (tests, inspection).
    pub fn concat(&self) -> Result<RecordBatch, String> {
        concat(&self.schema, &self.batches)
    }
}

/// A session with `inputs` registered by name.
fn session_over(inputs: Vec<(String, Table)>) -> Result<SessionContext, String> {
    let ctx = session();
    for (name, t) in inputs {
        let table = MemTable::try_new(t.schema, vec![t.batches]).map_err(|e| e.to_string())?;
        ctx.register_table(TableReference::bare(name), Arc::new(table)).map_err(|e| e.to_string())?;
    }
    Ok(ctx)
}

/// Runs `remainder` over `inputs` (fragment name → rows) in DataFusion; the whole result.
pub fn run_remainder(remainder: &str, inputs: Vec<(String, Table)>) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let (schema, mut stream) = remainder_stream(remainder, inputs)?;
    let mut batches = Vec::new();
    while let Some(b) = next_batch(&mut stream)? {
        batches.push(b);
    }
    Ok((schema, batches))
}

/// Runs `remainder` over `inputs`; its result batch by batch, as the compute produces it.
fn remainder_stream(remainder: &str, inputs: Vec<(String, Table)>) -> Result<(SchemaRef, SendableRecordBatchStream), String> {
    let ctx = session_over(inputs)?;
    COMPUTE.block_on(async {
        let df = ctx.sql(remainder).await.map_err(|e| format!("the compute rejected the remainder: {e}"))?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await.map_err(|e| format!("the compute failed: {e}"))?;
        Ok((schema, stream))
    })
}

/// The next batch of a compute result.
fn next_batch(stream: &mut SendableRecordBatchStream) -> Result<Option<RecordBatch>, String> {
    COMPUTE.block_on(stream.next()).transpose().map_err(|e| format!("the compute failed: {e}"))
}

/// Reads one fragment into Arrow, chunk by chunk, with the types the plan declares.
pub fn read_fragment(conn: &mut dyn Connection, f: &Fragment) -> Result<Table, String> {
    let declared: BTreeMap<String, DataType> = f
        .columns
        .iter()
        .filter_map(|c| {
            c.arrow_type
                .as_deref()
                .and_then(|t| DataType::from_str(t).ok())
                .map(|t| (c.name.to_ascii_lowercase(), arrow_rows::compute_type(t)))
        })
        .collect();
    let place = |e: String| format!("fragment `{}` on `{}`: {e}", f.name, f.target);
    if let Some(result) = conn.query_arrow(&f.sql) {
        // Already Arrow: declared types, or the compute's reading of the engine's (integers as Int64, zones as UTC).
        let (schema, batches) = result.map_err(place)?;
        let to: BTreeMap<String, DataType> = schema
            .fields()
            .iter()
            .map(|c| {
                let name = c.name().to_ascii_lowercase();
                let t = declared.get(&name).cloned().unwrap_or_else(|| arrow_rows::compute_type(c.data_type().clone()));
                (name, t)
            })
            .collect();
        let cast = arrow_rows::Cast::new(&schema, &to);
        let batches = batches.into_iter().map(|b| cast.batch(b)).collect::<Result<Vec<_>, _>>().map_err(place)?;
        return Ok(Table { schema: cast.schema.clone(), batches });
    }
    let mut builder = arrow_rows::BatchBuilder::new(declared);
    conn.query_into(&f.sql, &mut builder).map_err(place)?;
    let (schema, batches) = builder.finish().map_err(place)?;
    Ok(Table { schema, batches })
}

/// Tables a query reads, by name (the fragments a remainder uses).
pub fn tables_of(sql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(stmts) = Parser::parse_sql(&GenericDialect {}, sql) {
        let _ = sqlparser::ast::visit_relations(&stmts, |r| {
            if let Some(i) = r.0.last().and_then(|p| p.as_ident()) {
                out.insert(i.value.clone());
            }
            ControlFlow::<()>::Continue(())
        });
    }
    out
}

/// A comparable form of a `{{ this }}` subquery: the relation named `__this`,
/// no quotes, lower case.
fn subquery_key(sql: &str, relation: &str, quoted_this: &str) -> String {
    sql.replace(relation, THIS).replace(quoted_this, THIS).replace(['"', '`'], "").to_ascii_lowercase()
}

/// A value read from the target as a literal of the compute's SQL.
fn literal(value: Option<&str>, engine_type: &str) -> String {
    let Some(v) = value else { return "NULL".into() };
    let quoted = format!("'{}'", v.replace('\'', "''"));
    match arrow_rows::arrow_type(engine_type, &[Some(v)]) {
        DataType::Int64 | DataType::Float64 | DataType::Decimal128(..) => v.to_string(),
        DataType::Boolean => (matches!(v, "t" | "true" | "1")).to_string(),
        DataType::Date32 => format!("DATE {quoted}"),
        // A zoned value stays a string: the compute coerces it exactly, and it is not pushed
        // (a TIMESTAMP literal would drop the zone on some sources).
        DataType::Timestamp(_, None) => format!("TIMESTAMP {quoted}"),
        _ => quoted,
    }
}

/// The incremental remainder with each `{{ this }}` subquery replaced by its
/// value, evaluated on the target now.
fn bind_this(target: &mut dyn Connection, remainder: &str, subqueries: &[String], r: &RelationRef) -> Result<String, String> {
    let mut values = BTreeMap::new();
    for sq in subqueries {
        let (types, rows) = target.query_typed(sq).map_err(|e| format!("evaluating `{sq}` on the target: {e}"))?;
        let v = rows.rows.first().and_then(|row| row.first().cloned().flatten());
        values.insert(subquery_key(sq, &r.rendered, THIS), literal(v.as_deref(), types.first().map_or("", String::as_str)));
    }
    let Ok(mut stmts) = Parser::parse_sql(&GenericDialect {}, remainder) else { return Ok(remainder.to_string()) };
    let quoted_this = Dialect::DataFusion.quote(THIS);
    let _ = sqlparser::ast::visit_expressions_mut(&mut stmts, |e| {
        if let Expr::Subquery(q) = e
            && let SetExpr::Select(sel) = q.body.as_ref()
            && sel.from.len() == 1
            && matches!(&sel.from[0].relation, TableFactor::Table { name, .. } if name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| i.value == THIS))
            && let Some(lit) = values.get(&subquery_key(&q.to_string(), &r.rendered, &quoted_this))
            && let Ok(x) = Parser::new(&GenericDialect {}).try_with_sql(lit).and_then(|mut p| p.parse_expr())
        {
            *e = x;
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(stmts.iter().map(ToString::to_string).collect::<Vec<_>>().join(";\n"))
}

/// Fragments re-split over a remainder whose `{{ this }}` values are now
/// literals, so conjuncts like `updated_at > TIMESTAMP '…'` reach the sources.
fn repush(remainder: &str, fragments: &[Fragment]) -> (Vec<Fragment>, Vec<String>) {
    let inputs: Vec<FragmentInput> = fragments
        .iter()
        .filter_map(|f| {
            Dialect::from_adapter(&f.dialect).map(|d| FragmentInput {
                name: f.name.clone(),
                dialect: d,
                relation: format!("(\n{}\n) dvt_fragment", f.sql),
                // Wrapped fragments are not joined at the source again.
                location: f.name.clone(),
            })
        })
        .collect();
    if inputs.len() != fragments.len() {
        return (fragments.to_vec(), vec![]);
    }
    let split = federate::split(&[remainder], &inputs, Dialect::DataFusion);
    let pushed = split.predicates.iter().filter_map(|p| p.pushed_to.as_ref().map(|to| format!("{} -> {to}", p.predicate))).collect();
    let out = fragments
        .iter()
        .map(|f| match split.fragments.get(&f.name) {
            Some(o) => Fragment { sql: o.sql.clone(), ..f.clone() },
            None => f.clone(),
        })
        .collect();
    (out, pushed)
}

/// The compute's result cast for the target, pulled batch by batch.
struct ResultBatches<'a> {
    stream: SendableRecordBatchStream,
    cast: &'a arrow_rows::Cast,
    failed: bool,
}

impl Iterator for ResultBatches<'_> {
    type Item = Result<RecordBatch, String>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match next_batch(&mut self.stream).and_then(|b| b.map(|b| self.cast.batch(b)).transpose()) {
            Ok(b) => b.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The rows of a federated query (a test, `show`), at most `limit`: fragments
/// read, remainder run, nothing written.
pub fn query(pool: &crate::connectors::Pool, fed: &FederationPlan, limit: Option<u64>) -> Result<crate::connectors::Rows, String> {
    let used = tables_of(&fed.remainder);
    let mut inputs = Vec::new();
    for f in fed.fragments.iter().filter(|f| used.contains(&f.name)) {
        let mut c = pool.get(&f.target)?;
        inputs.push((f.name.clone(), read_fragment(&mut *c, f)?));
        c.release();
    }
    let sql = match limit {
        Some(n) => format!("select * from ({}) dvt_limited limit {n}", fed.remainder),
        None => fed.remainder.clone(),
    };
    let (schema, batches) = run_remainder(&sql, inputs)?;
    let rows = arrow_rows::text_rows(&batches, &schema, Dialect::DataFusion)?.collect::<Result<Vec<_>, _>>()?;
    Ok(crate::connectors::Rows { columns: schema.fields().iter().map(|f| f.name().clone()).collect(), rows })
}

/// Runs one federated node.
pub fn run(env: &Env, node: &PlanNode, fed: &FederationPlan, full_refresh: bool) -> Result<Written, String> {
    let creds = env.pool.creds().get(&node.target.value).ok_or_else(|| format!("output `{}` is not in profiles.yml", node.target.value))?;
    let dialect =
        Dialect::from_adapter(&creds.kind).ok_or_else(|| format!("output `{}` has an unknown type `{}`", creds.name, creds.kind))?;
    let r = node.relation.as_ref().ok_or("a federated node needs a target relation")?;
    let mut target = env.pool.get(&node.target.value)?;
    let (schema_name, ident) = connectors::parts(r);
    let existing = target.relation_kind(schema_name, ident)?;
    let write = node.write.as_ref();
    let incremental = node.materialization.effective == "incremental" && existing == Some(RelationKind::Table) && !full_refresh;
    let (remainder, fragments, pushed) = match (&fed.remainder_incremental, incremental) {
        (Some(sql), true) => {
            let bound = bind_this(&mut *target, sql, write.map_or(&[][..], |w| &w.this_subqueries), r)?;
            let (fragments, pushed) = repush(&bound, &fed.fragments);
            (bound, fragments, pushed)
        }
        _ => (fed.remainder.clone(), fed.fragments.clone(), vec![]),
    };
    let used = tables_of(&remainder);
    let mut inputs = Vec::new();
    for f in fragments.iter().filter(|f| used.contains(&f.name)) {
        let batch = if f.target == node.target.value {
            read_fragment(&mut *target, f)?
        } else {
            let mut c = env.pool.get(&f.target)?;
            let b = read_fragment(&mut *c, f)?;
            c.release();
            b
        };
        inputs.push((f.name.clone(), batch));
    }
    let (schema, stream) = remainder_stream(&remainder, inputs)?;
    let cast = arrow_rows::Cast::new(&schema, &arrow_rows::declared_types(fed.casts.iter().map(|c| (&c.column, &c.to))));
    let schema = cast.schema.clone();
    let columns: Vec<(String, LogicalType)> =
        schema.fields().iter().map(|f| (f.name().clone(), arrow_rows::logical_type(f.data_type()))).collect();
    let rendered = materialize::seed(dialect, r, &columns);
    let (rendering, stmts) = if incremental {
        let (stage, _) = materialize::sibling(dialect, r, "__dvt_tmp");
        let load_at = rendered.full_refresh.iter().position(|s| s.kind == "bulk_load").map_or(0, |i| i + 1);
        let mut stmts = rendered.full_refresh[..load_at].to_vec();
        stmts.push(dvt_schema::plan::Statement {
            kind: "check_columns".into(),
            sql: format!("-- dvtr compares the columns of {stage} with {}", r.rendered),
        });
        let w = write.ok_or("an incremental node without a write strategy")?;
        stmts.extend(materialize::apply_staged(dialect, r, &stage, &w.strategy, &w.unique_key)?);
        stmts.push(dvt_schema::plan::Statement { kind: "drop_staging".into(), sql: dialect.sql().drop_table(&stage) });
        ("incremental", stmts)
    } else if existing == Some(RelationKind::Table) && !full_refresh {
        ("replace", rendered.replace.unwrap_or_default())
    } else {
        ("full_refresh", rendered.full_refresh)
    };
    let ncols = columns.len();
    // The result goes into the staging table as the compute produces it, one batch at a time.
    let rows = executor::run_loading(&mut *target, node, &stmts, existing, dialect, |conn, stage| {
        let mut batches = ResultBatches { stream, cast: &cast, failed: false };
        // Arrow straight into engines that take it; text rows through the bulk path otherwise.
        if let Some(loaded) = conn.load_arrow(stage, &mut batches) {
            return loaded;
        }
        let mut rows = arrow_rows::TextRows::new(batches, cast.schema.clone(), dialect);
        conn.load(stage, ncols, &mut rows)
    })?;
    target.release();
    Ok(Written { rendering, rows, pushed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::Rows;

    fn batch(rows: &[[Option<&str>; 3]]) -> RecordBatch {
        let rows = Rows {
            columns: vec!["id".into(), "k".into(), "s".into()],
            rows: rows.iter().map(|r| r.iter().map(|v| v.map(str::to_string)).collect()).collect(),
        };
        arrow_rows::to_batch(rows, &["bigint".into(), "bigint".into(), "text".into()], &[]).unwrap()
    }

    #[test]
    /// DataFusion 55's physical FilterPushdown moves `x0.k IS NULL` to the wrong
    /// input once JoinSelection has swapped the right join (found by the
    /// differential harness); the compute runs without that rule.
    fn right_join_with_null_test_on_the_null_supplying_side() {
        for sql in [
            "select x1.id from t3 x0 right join t2 x1 on x1.k = x0.k where x1.k = 4 and x0.k is null",
            "select * from (select x0.id as x0_id, x1.id as x1_id from t3 x0 right join t2 x1 on x1.k = x0.k where x1.k = 4 and x0.k is null) d",
        ] {
            let t3 = batch(&[[Some("0"), Some("0"), Some("a")], [Some("1"), None, Some("a ")], [Some("2"), Some("3"), Some("a")]]);
            let t2 = batch(&[[Some("6"), Some("4"), Some("a ")]]);
            let table = |b: RecordBatch| Table { schema: b.schema(), batches: vec![b] };
            let (schema, out) = run_remainder(sql, vec![("t3".into(), table(t3)), ("t2".into(), table(t2))]).unwrap();
            let rows: Vec<_> = arrow_rows::text_rows(&out, &schema, Dialect::Postgres).unwrap().map(Result::unwrap).collect();
            assert_eq!(rows.len(), 1, "{sql}");
        }
    }
}
