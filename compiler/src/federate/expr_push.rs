//! Expressions evaluated where their meaning is known (issue 19, SPEC §3): a
//! row-level expression that reads one relation only, living in a database
//! that speaks the model's own dialect, is computed in that relation's
//! fragment — `to_char(o.ordered_at, 'YYYY-MM')` in a PostgreSQL model over a
//! PostgreSQL source runs in PostgreSQL — and the remainder reads the result
//! as a column. Only expressions the remainder could not evaluate with the
//! dialect's meaning ([`super::semantics`]) move; the rest stays as written.
//!
//! Candidates in WHERE move the same way; a conjunct the splitter pushes into
//! the fragment has the expression spelled out there.
//!
//! Row-level means: column references of that one relation, no aggregate or
//! window function, no sub-query. Such an expression has the same value per
//! source row before or after the joins and filters of the query, so computing
//! it in the fragment changes nothing but where it runs — except on the
//! null-supplying side of an outer join, whose padded rows never reach the
//! fragment, so those relations are left out. Candidates are the
//! aliased SELECT items (and the same expressions in GROUP BY, HAVING and
//! ORDER BY) of every SELECT whose relations are known by name.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, GroupByExpr, Ident, JoinOperator, Query, Select, SelectItem, SetExpr, TableFactor,
    UnaryOperator, Visit, VisitMut, Visitor, VisitorMut,
};

use super::FragmentInput;
use crate::dialect::Dialect;

/// A column computed in a fragment: `sql AS name`, `sql` with bare column names
/// in the source's dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    pub input: String,
    pub name: String,
    pub sql: String,
    /// The expression as the model wrote it (for `--explain` and the plan).
    pub original: String,
}

/// Aggregate functions of PostgreSQL, MySQL/MariaDB, DuckDB and SQLite: never
/// row-level, whatever their arguments.
const AGGREGATES: &[&str] = &[
    "any_value",
    "approx_count_distinct",
    "approx_quantile",
    "arbitrary",
    "arg_max",
    "arg_min",
    "argmax",
    "argmin",
    "array_agg",
    "avg",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "count",
    "count_if",
    "corr",
    "covar_pop",
    "covar_samp",
    "every",
    "first",
    "fsum",
    "group_concat",
    "histogram",
    "json_agg",
    "json_arrayagg",
    "json_group_array",
    "json_group_object",
    "json_object_agg",
    "json_objectagg",
    "jsonb_agg",
    "jsonb_object_agg",
    "kurtosis",
    "last",
    "list",
    "listagg",
    "mad",
    "max",
    "max_by",
    "median",
    "min",
    "min_by",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "product",
    "quantile",
    "quantile_cont",
    "quantile_disc",
    "range_agg",
    "range_intersect_agg",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "reservoir_quantile",
    "sem",
    "skewness",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "sum",
    "total",
    "var_pop",
    "var_samp",
    "variance",
    "xmlagg",
];

/// Which relations of a SELECT can take computed columns, by the name the SELECT uses.
struct Scope<'a> {
    /// alias (lower case) → input name, for relations in the model's dialect.
    eligible: BTreeMap<String, &'a FragmentInput>,
    /// The only relation of the SELECT, when there is exactly one and it is eligible
    /// and the SELECT cannot see outer columns (unqualified names are its own).
    single: Option<String>,
}

/// Rewrites `q` in place; adds the columns the fragments must compute to `out`
/// (shared by the queries of one model, so one expression is computed once);
/// true if anything moved.
pub fn push(q: &mut Query, inputs: &BTreeMap<String, FragmentInput>, dialect: Dialect, out: &mut Vec<Computed>) -> bool {
    let before = out.len();
    let mut p = Pusher { inputs, dialect, out: std::mem::take(out), reused: false };
    p.query(q, false);
    let moved = p.out.len() > before || p.reused;
    *out = p.out;
    moved
}

struct Pusher<'a> {
    inputs: &'a BTreeMap<String, FragmentInput>,
    dialect: Dialect,
    out: Vec<Computed>,
    /// An expression moved to a column computed for an earlier query.
    reused: bool,
}

impl<'a> Pusher<'a> {
    /// `correlated`: the query may see outer columns (an expression sub-query).
    fn query(&mut self, q: &mut Query, correlated: bool) {
        if let Some(with) = &mut q.with {
            for cte in &mut with.cte_tables {
                self.query(&mut cte.query, false);
            }
        }
        let mut replaced = Vec::new();
        self.set_expr(&mut q.body, correlated, &mut replaced);
        // ORDER BY of a single SELECT may repeat a moved expression.
        if let (Some(order), false) = (&mut q.order_by, replaced.is_empty())
            && let sqlparser::ast::OrderByKind::Expressions(exprs) = &mut order.kind
        {
            for o in exprs {
                substitute(&mut o.expr, &replaced);
            }
        }
    }

    fn set_expr(&mut self, body: &mut SetExpr, correlated: bool, replaced: &mut Vec<(Expr, Expr)>) {
        match body {
            SetExpr::Select(s) => *replaced = self.select(s, correlated),
            SetExpr::Query(q) => self.query(q, correlated),
            SetExpr::SetOperation { left, right, .. } => {
                let mut ignored = Vec::new();
                self.set_expr(left, correlated, &mut ignored);
                self.set_expr(right, correlated, &mut ignored);
            }
            _ => {}
        }
    }

    fn select(&mut self, s: &mut Select, correlated: bool) -> Vec<(Expr, Expr)> {
        // Derived tables first: their own scopes.
        let mut relations = 0;
        let mut eligible = BTreeMap::new();
        let mut null_supplying: Vec<String> = Vec::new();
        for twj in &mut s.from {
            // Relations an outer join pads with NULL rows: an expression over them can differ
            // from NULL on those rows (`CASE WHEN x IS NULL …`), so it never moves.
            let ops: Vec<(bool, bool)> = std::iter::once(None)
                .chain(twj.joins.iter().map(|j| Some(&j.join_operator)))
                .map(|op| match op {
                    None
                    | Some(JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) | JoinOperator::StraightJoin(_)) => {
                        (false, false)
                    }
                    Some(JoinOperator::Right(_) | JoinOperator::RightOuter(_)) => (false, true),
                    Some(JoinOperator::FullOuter(_)) => (true, true),
                    Some(_) => (true, false),
                })
                .collect();
            let mut seen: Vec<String> = Vec::new();
            for (factor, (self_nullable, earlier_nullable)) in
                std::iter::once(&mut twj.relation).chain(twj.joins.iter_mut().map(|j| &mut j.relation)).zip(ops)
            {
                relations += 1;
                if earlier_nullable {
                    null_supplying.append(&mut seen);
                }
                let alias = match factor {
                    TableFactor::Table { name, alias, .. } => alias
                        .as_ref()
                        .map(|a| a.name.value.clone())
                        .or_else(|| name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone())),
                    TableFactor::Derived { alias, .. } => alias.as_ref().map(|a| a.name.value.clone()),
                    _ => None,
                };
                if let Some(a) = alias.map(|a| a.to_ascii_lowercase()) {
                    if self_nullable {
                        null_supplying.push(a.clone());
                    }
                    seen.push(a);
                }
                match factor {
                    TableFactor::Table { name, alias, args: None, .. } => {
                        let Some(table) = name.0.as_slice().last().and_then(|p| p.as_ident()).filter(|_| name.0.len() == 1) else {
                            continue;
                        };
                        let Some(input) = self.inputs.get(&table.value).filter(|i| i.dialect == self.dialect) else { continue };
                        let alias = alias.as_ref().map_or_else(|| table.value.clone(), |a| a.name.value.clone());
                        eligible.insert(alias.to_ascii_lowercase(), input);
                    }
                    TableFactor::Derived { subquery, lateral, .. } => self.query(subquery, *lateral || correlated),
                    _ => {}
                }
            }
        }
        for a in &null_supplying {
            eligible.remove(a);
        }
        let single = (relations == 1 && !correlated).then(|| eligible.keys().next().cloned()).flatten();
        let scope = Scope { eligible, single };
        // Expression sub-queries anywhere in the SELECT: their own (correlated) scopes.
        let mut nested = NestedQueriesMut { pusher: self, depth: 0 };
        let _ = VisitMut::visit(&mut s.projection, &mut nested);
        let _ = VisitMut::visit(&mut s.selection, &mut nested);
        let _ = VisitMut::visit(&mut s.having, &mut nested);

        let mut replaced: Vec<(Expr, Expr)> = Vec::new();
        for item in &mut s.projection {
            if let SelectItem::ExprWithAlias { expr, .. } = item {
                let mut v = Candidates { pusher: self, scope: &scope, replaced: &mut replaced, depth: 0, predicates: false };
                let _ = VisitMut::visit(expr, &mut v);
            }
        }
        // WHERE: the same; a conjunct pushed into the fragment spells the expression out ([`expand`]).
        if let Some(w) = &mut s.selection {
            substitute(w, &replaced);
            // Comparisons stay in place around the moved operands, so they can still filter the fragment.
            let mut v = Candidates { pusher: self, scope: &scope, replaced: &mut replaced, depth: 0, predicates: true };
            let _ = VisitMut::visit(w, &mut v);
        }
        if !replaced.is_empty() {
            if let GroupByExpr::Expressions(exprs, _) = &mut s.group_by {
                for e in exprs {
                    substitute(e, &replaced);
                }
            }
            if let Some(h) = &mut s.having {
                substitute(h, &replaced);
            }
        }
        replaced
    }

    /// The computed column for `e`, if `e` moves to a fragment.
    fn candidate(&mut self, e: &Expr, scope: &Scope<'_>) -> Option<Expr> {
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Value(_) | Expr::Nested(_)) {
            return None;
        }
        let mut refs = RowLevel { aliases: Vec::new(), unqualified: false, ok: true };
        let _ = Visit::visit(e, &mut refs);
        if !refs.ok {
            return None;
        }
        let alias = match (refs.aliases.as_slice(), refs.unqualified) {
            ([a, rest @ ..], false) if rest.iter().all(|r| r == a) => a.clone(),
            ([], true) => scope.single.clone()?,
            ([a, rest @ ..], true) if rest.iter().all(|r| r == a) && scope.single.as_deref() == Some(a) => a.clone(),
            _ => return None,
        };
        let input = scope.eligible.get(&alias)?;
        // Only what the remainder could not evaluate with the dialect's meaning moves.
        let mut probe = e.clone();
        let checked = super::semantics::check(&mut probe, self.dialect);
        if checked.refused.is_empty() && checked.translated.is_empty() {
            return None;
        }
        let original = e.to_string();
        let name = match self.out.iter().find(|c| c.input == input.name && c.original == original) {
            Some(c) => {
                self.reused = true;
                c.name.clone()
            }
            None => {
                let name = format!("__dvt_expr_{}", self.out.len() + 1);
                self.out.push(Computed {
                    input: input.name.clone(),
                    name: name.clone(),
                    sql: super::to_source(e, input.dialect),
                    original,
                });
                name
            }
        };
        // The relation's own alias: a self-join's aliases share one fragment but not their rows.
        Some(Expr::CompoundIdentifier(vec![Ident::new(alias), Ident::new(name)]))
    }
}

/// A fragment filter with computed columns spelled out (a WHERE cannot name a
/// SELECT alias): `__dvt_expr_1 = 'x'` → `(to_char(…)) = 'x'`.
pub fn expand(sql: &str, computed: &[&Computed]) -> String {
    static NAME: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\b__dvt_expr_\d+\b").expect("valid regex"));
    if computed.is_empty() {
        return sql.to_string();
    }
    NAME.replace_all(sql, |c: &regex::Captures<'_>| {
        computed.iter().find(|m| m.name == c[0]).map_or_else(|| c[0].to_string(), |m| format!("({})", m.sql))
    })
    .into_owned()
}

/// Replaces every occurrence of a moved expression by its column.
fn substitute(e: &mut Expr, replaced: &[(Expr, Expr)]) {
    let _ = sqlparser::ast::visit_expressions_mut(e, |x| {
        if let Some((_, col)) = replaced.iter().find(|(orig, _)| orig == x) {
            *x = col.clone();
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Top-down over one SELECT item: the largest movable expressions move.
struct Candidates<'p, 'a, 's> {
    pusher: &'p mut Pusher<'a>,
    scope: &'s Scope<'s>,
    replaced: &'s mut Vec<(Expr, Expr)>,
    depth: usize,
    /// In WHERE: comparisons and boolean operators are not moved themselves.
    predicates: bool,
}

impl VisitorMut for Candidates<'_, '_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let predicate = matches!(
            e,
            Expr::BinaryOp {
                op: BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::And
                    | BinaryOperator::Or,
                ..
            } | Expr::UnaryOp { op: UnaryOperator::Not, .. }
                | Expr::IsNull(_)
                | Expr::IsNotNull(_)
                | Expr::InList { .. }
                | Expr::Between { .. }
                | Expr::Like { .. }
                | Expr::ILike { .. }
                | Expr::IsDistinctFrom(..)
                | Expr::IsNotDistinctFrom(..)
                | Expr::Nested(_)
        );
        if self.depth == 0
            && !(self.predicates && predicate)
            && let Some(col) = self.pusher.candidate(e, self.scope)
        {
            self.replaced.push((e.clone(), col.clone()));
            *e = col;
        }
        ControlFlow::Continue(())
    }
}

/// Column references of an expression; `ok` false when it is not row-level.
struct RowLevel {
    aliases: Vec<String>,
    unqualified: bool,
    ok: bool,
}

impl Visitor for RowLevel {
    type Break = ();

    fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.ok = false;
        ControlFlow::Break(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Identifier(_) => self.unqualified = true,
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => self.aliases.push(parts[0].value.to_ascii_lowercase()),
            Expr::CompoundIdentifier(_) | Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => self.ok = false,
            Expr::Function(f) => {
                let name = f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).unwrap_or_default();
                let clauses = match &f.args {
                    FunctionArguments::List(l) => l.duplicate_treatment.is_some() || !l.clauses.is_empty(),
                    _ => false,
                };
                if AGGREGATES.contains(&name.as_str()) || f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() || clauses {
                    self.ok = false;
                }
            }
            _ => {}
        }
        if self.ok { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    }
}

/// Runs the pusher on expression sub-queries (correlated scopes).
struct NestedQueriesMut<'p, 'a> {
    pusher: &'p mut Pusher<'a>,
    depth: usize,
}

impl VisitorMut for NestedQueriesMut<'_, '_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.pusher.query(q, true);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
