//! Whole sub-queries pushed to one database: the query, a CTE or a FROM
//! sub-query whose every relation lives at one location that speaks the
//! model's own dialect runs there as a single fragment — joins, aggregates,
//! windows and all — and the remainder reads its result by name.
//!
//! In the model's own dialect the source runs exactly the SQL the author
//! wrote, with the meaning it has when everything is co-located (the
//! reference of SPEC §3). Another engine gets a sub-query only when it means
//! the same there as in the compute: PostgreSQL or DuckDB (exact string
//! equality), one SELECT over inner/left equi-joins of plain relations,
//! portable WHERE conjuncts, plain columns, GROUP BY/DISTINCT on plain
//! columns and `count` — no arithmetic, functions, sums, string ordering or
//! LIMIT, whose results or types differ between engines.
//! Only uncorrelated queries qualify, and they are so by construction: the
//! top-level query, CTE bodies and non-LATERAL derived tables cannot see
//! outer columns.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Distinct, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident,
    JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, TableAlias, TableFactor, Visit, VisitMut,
    Visitor, VisitorMut,
};
use sqlparser::dialect::Dialect as ParserDialect;
use sqlparser::parser::Parser;

use super::FragmentInput;
use crate::dialect::Dialect;

/// A sub-query that runs whole at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct PushedQuery {
    /// Name the remainder reads it by.
    pub name: String,
    /// Where it runs (the output's name).
    pub location: String,
    /// Dialect of the database it runs on.
    pub dialect: Dialect,
    pub sql: String,
    /// The fragment inputs it reads, by name.
    pub reads: BTreeSet<String>,
    /// Its output column names, when the projection names them all (typed
    /// after compilation, from what is known of the relations it reads).
    pub columns: Option<Vec<String>>,
}

/// Rewrites queries, replacing pushable sub-queries with references.
pub(super) struct Pusher<'a> {
    inputs: &'a BTreeMap<String, FragmentInput>,
    dialect: Dialect,
    parser: &'a dyn ParserDialect,
    pub pushed: Vec<PushedQuery>,
    /// Sub-queries replaced by a reference so far.
    replaced: usize,
    /// Names in the SQL (relations, CTEs, aliases; lower case) a pushed sub-query must not take.
    taken: BTreeSet<String>,
}

/// Relations and constructs inside a query.
#[derive(Default)]
struct Tables {
    names: Vec<Vec<String>>,
    ctes: BTreeSet<String>,
    aliases: BTreeSet<String>,
    unusual_factor: bool,
}

impl Visitor for Tables {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if let Some(w) = &q.with {
            self.ctes.extend(w.cte_tables.iter().map(|c| c.alias.name.value.clone()));
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
        self.names.push(r.0.iter().map(|p| p.as_ident().map_or_else(|| p.to_string(), |i| i.value.clone())).collect());
        ControlFlow::Continue(())
    }
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        let plain = match f {
            TableFactor::Table { args, .. } => args.is_none(),
            TableFactor::Derived { lateral, .. } => !lateral,
            TableFactor::NestedJoin { .. } => true,
            _ => false,
        };
        self.unusual_factor |= !plain;
        if let TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } = f {
            self.aliases.insert(a.name.value.clone());
        }
        ControlFlow::Continue(())
    }
}

/// Gives each fragment input its source relation, aliased by its name in the model.
struct ToSource<'a> {
    inputs: &'a BTreeMap<String, FragmentInput>,
}

impl VisitorMut for ToSource<'_> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = f
            && let [ObjectNamePart::Identifier(id)] = name.0.as_slice()
            && let Some(input) = self.inputs.get(&id.value)
        {
            let id = id.clone();
            // The relation text is already quoted for the source; an unquoted identifier prints it as is.
            *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(input.relation.clone()))]);
            if alias.is_none() {
                *alias = Some(TableAlias { explicit: true, name: id, columns: vec![], at: None });
            }
        }
        ControlFlow::Continue(())
    }
}

impl<'a> Pusher<'a> {
    pub(super) fn new(inputs: &'a BTreeMap<String, FragmentInput>, dialect: Dialect, parser: &'a dyn ParserDialect) -> Self {
        Pusher { inputs, dialect, parser, pushed: Vec::new(), replaced: 0, taken: BTreeSet::new() }
    }

    /// Reserves the names used in `stmts`.
    pub(super) fn reserve<V: Visit>(&mut self, stmts: &V) {
        let mut t = Tables::default();
        let _ = stmts.visit(&mut t);
        let all = t.names.into_iter().flatten().chain(t.ctes).chain(t.aliases);
        self.taken.extend(all.map(|n| n.to_ascii_lowercase()));
    }

    /// Rewrites a top-level query; true if anything was pushed.
    pub(super) fn statement(&mut self, q: &mut Query) -> bool {
        let before = self.replaced;
        self.query(q, &BTreeSet::new(), true);
        self.replaced > before
    }

    fn query(&mut self, q: &mut Query, outer_ctes: &BTreeSet<String>, top: bool) {
        if top && let Some(name) = self.try_push(q, outer_ctes) {
            *q = self.reference_query(&name);
            self.replaced += 1;
            return;
        }
        let mut ctes = outer_ctes.clone();
        if let Some(with) = &mut q.with {
            let recursive = with.recursive;
            for cte in &mut with.cte_tables {
                match (!recursive).then(|| self.try_push(&cte.query, &ctes)).flatten() {
                    Some(name) => {
                        *cte.query = self.reference_query(&name);
                        self.replaced += 1;
                    }
                    None => self.query(&mut cte.query, &ctes, false),
                }
                ctes.insert(cte.alias.name.value.clone());
            }
        }
        self.set_expr(&mut q.body, &ctes);
    }

    fn set_expr(&mut self, s: &mut SetExpr, ctes: &BTreeSet<String>) {
        match s {
            SetExpr::Select(sel) => {
                for twj in &mut sel.from {
                    self.factor(&mut twj.relation, ctes);
                    for j in &mut twj.joins {
                        self.factor(&mut j.relation, ctes);
                    }
                }
            }
            SetExpr::Query(q) => self.query(q, ctes, false),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, ctes);
                self.set_expr(right, ctes);
            }
            _ => {}
        }
    }

    fn factor(&mut self, f: &mut TableFactor, ctes: &BTreeSet<String>) {
        match f {
            TableFactor::Derived { lateral: false, subquery, alias, .. } => match self.try_push(subquery, ctes) {
                Some(name) => {
                    let alias = alias.clone();
                    *f = self.reference_factor(&name, alias);
                    self.replaced += 1;
                }
                None => self.query(subquery, ctes, false),
            },
            TableFactor::NestedJoin { table_with_joins, .. } => {
                self.factor(&mut table_with_joins.relation, ctes);
                for j in &mut table_with_joins.joins {
                    self.factor(&mut j.relation, ctes);
                }
            }
            _ => {}
        }
    }

    /// Pushes `q` if every relation it reads is a fragment input at one
    /// location in the model's dialect; returns the name to read it by.
    fn try_push(&mut self, q: &Query, outer_ctes: &BTreeSet<String>) -> Option<String> {
        let mut t = Tables::default();
        let _ = q.visit(&mut t);
        if t.unusual_factor || t.names.is_empty() || simple_scan(q) {
            return None;
        }
        // A CTE inside that shadows an input would make names ambiguous: not pushed.
        if t.ctes.iter().any(|c| self.inputs.contains_key(c)) {
            return None;
        }
        let mut location: Option<(&str, Dialect)> = None;
        let mut reads = BTreeSet::new();
        for n in &t.names {
            let [n] = n.as_slice() else { return None };
            if t.ctes.contains(n) {
                continue;
            }
            let input = self.inputs.get(n).filter(|_| !outer_ctes.contains(n))?;
            if location.is_some_and(|(l, _)| l != input.location) {
                return None;
            }
            location = Some((&input.location, input.dialect));
            reads.insert(n.clone());
        }
        let (location, source_dialect) = location?;
        let double_quoted = matches!(self.dialect, Dialect::Postgres | Dialect::Duckdb | Dialect::Snowflake);
        let means_the_same = source_dialect == self.dialect
            || (double_quoted && matches!(source_dialect, Dialect::Postgres | Dialect::Duckdb) && portable_query(q, source_dialect));
        if !means_the_same {
            return None;
        }
        let location = location.to_string();
        let mut source = q.clone();
        let _ = VisitMut::visit(&mut source, &mut ToSource { inputs: self.inputs });
        let sql = format!("{source:#}");
        if let Some(p) = self.pushed.iter().find(|p| p.sql == sql && p.location == location) {
            return Some(p.name.clone());
        }
        let name = (1..)
            .map(|i| format!("dvt_q{i}"))
            .find(|n| !self.inputs.contains_key(n) && !self.taken.contains(n) && self.pushed.iter().all(|p| &p.name != n))?;
        self.pushed.push(PushedQuery { name: name.clone(), location, dialect: source_dialect, sql, reads, columns: output_columns(q) });
        Some(name)
    }

    fn reference_query(&self, name: &str) -> Query {
        let sql = format!("select * from {}", self.dialect.quote(name));
        let parsed = Parser::new(self.parser).try_with_sql(&sql).and_then(|mut p| p.parse_query());
        *parsed.expect("a plain SELECT of a quoted name parses")
    }

    fn reference_factor(&self, name: &str, alias: Option<TableAlias>) -> TableFactor {
        let q = self.reference_query(name);
        let SetExpr::Select(sel) = *q.body else { unreachable!("reference_query builds a SELECT") };
        let mut f = sel.from.into_iter().next().expect("reference_query has a FROM").relation;
        if let TableFactor::Table { alias: a, .. } = &mut f {
            *a = alias;
        }
        f
    }
}

/// Output column names of a query whose SELECT names every column.
fn output_columns(q: &Query) -> Option<Vec<String>> {
    let mut body = q.body.as_ref();
    // A set operation takes its names from its first branch.
    while let SetExpr::SetOperation { left, .. } = body {
        body = left.as_ref();
    }
    let SetExpr::Select(sel) = body else { return None };
    sel.projection
        .iter()
        .map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(v)) => v.last().map(|i| i.value.clone()),
            _ => None,
        })
        .collect()
}

/// A filter and projection of one relation: the per-relation rules already
/// push all of it (and keep declared types and predicate records), so it is
/// not worth a sub-query of its own.
fn simple_scan(q: &Query) -> bool {
    let SetExpr::Select(sel) = q.body.as_ref() else { return false };
    let refs = super::refs_of(sel.as_ref());
    q.with.is_none()
        && q.limit_clause.is_none()
        && q.fetch.is_none()
        && sel.from.len() == 1
        && sel.from[0].joins.is_empty()
        && matches!(sel.from[0].relation, TableFactor::Table { .. })
        && matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
        && sel.having.is_none()
        && sel.distinct.is_none()
        && sel.qualify.is_none()
        && !refs.has_function
        && refs.nested.is_empty()
}

/// Whether `q` is in the subset that means the same on `source` as in the
/// compute (see the module docs).
fn portable_query(q: &Query, source: Dialect) -> bool {
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || !q.locks.is_empty() {
        return false;
    }
    let SetExpr::Select(sel) = q.body.as_ref() else { return false };
    let [from] = sel.from.as_slice() else { return false };
    let plain = matches!(sel.distinct, None | Some(Distinct::Distinct))
        && sel.top.is_none()
        && sel.into.is_none()
        && sel.exclude.is_none()
        && sel.select_modifiers.is_none()
        && sel.lateral_views.is_empty()
        && sel.prewhere.is_none()
        && sel.connect_by.is_empty()
        && sel.cluster_by.is_empty()
        && sel.distribute_by.is_empty()
        && sel.sort_by.is_empty()
        && sel.having.is_none()
        && sel.named_window.is_empty()
        && sel.qualify.is_none()
        && sel.value_table_mode.is_none();
    let groups = matches!(&sel.group_by, GroupByExpr::Expressions(g, m) if m.is_empty() && g.iter().all(is_column));
    let table = |f: &TableFactor| {
        matches!(f, TableFactor::Table { args: None, with_hints, alias, .. }
            if with_hints.is_empty() && alias.as_ref().is_none_or(|a| a.columns.is_empty()))
    };
    let joins = from.joins.iter().all(|j| {
        let on = match &j.join_operator {
            JoinOperator::Join(JoinConstraint::On(e))
            | JoinOperator::Inner(JoinConstraint::On(e))
            | JoinOperator::Left(JoinConstraint::On(e))
            | JoinOperator::LeftOuter(JoinConstraint::On(e)) => e,
            _ => return false,
        };
        let mut cs = Vec::new();
        super::conjuncts(on, &mut cs);
        table(&j.relation)
            && cs.iter().all(|c| {
                matches!(c, Expr::BinaryOp { left, op: BinaryOperator::Eq, right } if is_column(left) && is_column(right))
                    || super::portable(c, source)
            })
    });
    let filter = sel.selection.as_ref().is_none_or(|w| super::portable(w, source));
    let items = sel.projection.iter().all(|i| match i {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => is_column(e) || is_count(e),
        // Joined relations' `*` could repeat a name.
        SelectItem::Wildcard(_) => from.joins.is_empty(),
        _ => false,
    });
    plain && groups && table(&from.relation) && joins && filter && items
}

fn is_column(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
}

/// `count(*)`, `count(col)` or `count(distinct col)`: a BIGINT in every engine.
fn is_count(e: &Expr) -> bool {
    let Expr::Function(f) = e else { return false };
    let FunctionArguments::List(list) = &f.args else { return false };
    let name_is_count =
        matches!(f.name.0.as_slice(), [ObjectNamePart::Identifier(i)] if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("count"));
    let arg = match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => list.duplicate_treatment.is_none(),
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] => is_column(x),
        _ => false,
    };
    name_is_count
        && arg
        && !matches!(list.duplicate_treatment, Some(DuplicateTreatment::All))
        && list.clauses.is_empty()
        && f.filter.is_none()
        && f.over.is_none()
        && f.null_treatment.is_none()
        && f.within_group.is_empty()
        && matches!(f.parameters, FunctionArguments::None)
}
