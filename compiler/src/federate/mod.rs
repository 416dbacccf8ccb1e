//! The federation compiler (SPEC §3): splits a federated query into one
//! fragment per source relation that reads only the columns used and the rows
//! that provably matter, and keeps the full query as the remainder.
//!
//! Every rule errs on the side of reading more:
//! - a WHERE conjunct is pushed into a fragment only if it references that one
//!   alias, sits in the SELECT where that alias is in scope, has no subquery,
//!   function, arithmetic or engine-dependent comparison, and the alias is not
//!   on the null-supplying side of an outer join; ON-clause conjuncts on the
//!   null-supplying (or an inner) side are pushed likewise;
//! - pushed conjuncts are also kept in the remainder, so a source that compares
//!   more loosely than the compute (case-insensitive collation) stays correct;
//! - several occurrences of one relation (self-joins, CTEs, UNION branches)
//!   share one fragment whose filter is the OR of theirs (none if one has none);
//! - a column list is pushed only when every column reference to the relation
//!   is attributable; `*`, unqualified names in multi-relation or correlated
//!   scopes, USING/NATURAL joins read all columns;
//! - LIMIT goes down only for a single-relation SELECT with ORDER BY on plain
//!   columns, no aggregation, DISTINCT, window, function or join, and all of
//!   its WHERE pushed;
//! - an inner equi-join between two relations at the same location (neither
//!   null-supplying) is pushed as semi-joins: each fragment keeps only rows with
//!   a partner (`EXISTS` on the other relation), which no inner join result
//!   can miss; the join itself is re-done in the remainder, so a source that
//!   compares more loosely (collations) still gives the exact result;
//! - a query, CTE or FROM sub-query whose relations all live at one location
//!   in the model's own dialect runs there whole (see [`whole`]).
//!
//! Anything the splitter cannot prove safe falls back to reading the whole
//! relation, with a note that names the construct.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use dvt_schema::plan::PredicateDecision;
use sqlparser::ast::{
    BinaryOperator, DataType as SqlType, Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator, LimitClause, OrderByKind, Query, Select,
    SelectItem, SetExpr, TableFactor, UnaryOperator, Value, Visit, Visitor,
};
use sqlparser::dialect::{
    DatabricksDialect, Dialect as ParserDialect, DuckDbDialect, GenericDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect,
    SnowflakeDialect,
};
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::dialect::Dialect;

mod expr_push;
pub mod precedence;
pub mod semantics;
mod whole;
pub use whole::PushedQuery;

/// A relation the remainder reads, by the name it uses for it.
#[derive(Debug, Clone)]
pub struct FragmentInput {
    /// Table name in the remainder (unquoted).
    pub name: String,
    /// Dialect of the database the relation lives in.
    pub dialect: Dialect,
    /// The relation, rendered in that dialect.
    pub relation: String,
    /// Where it lives (the output's name): relations at one location can be
    /// joined there, so inner joins between them reduce each other's fragments.
    pub location: String,
}

/// One fragment's SQL and the columns it reads (None: all).
#[derive(Debug, Clone, PartialEq)]
pub struct FragmentOut {
    pub sql: String,
    pub columns: Option<Vec<String>>,
}

/// The decomposition of one query.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Per input read by the remainder (inputs read only by pushed sub-queries have none).
    pub fragments: BTreeMap<String, FragmentOut>,
    /// Sub-queries that run whole at one location.
    pub pushed: Vec<PushedQuery>,
    /// The queries to run in the compute, one per input SQL: pushed sub-queries
    /// replaced by their names (the input text itself when nothing was pushed).
    pub remainders: Vec<String>,
    pub predicates: Vec<PredicateDecision>,
    pub fallbacks: Vec<String>,
    /// Remainder constructs with no proven equivalent in the compute ([`semantics`]).
    pub refused: Vec<String>,
    /// Translations applied to the remainder ([`semantics`]).
    pub translated: Vec<String>,
    /// Expressions computed in their relation's fragment instead ([`expr_push`]):
    /// (expression as written, fragment input, column).
    pub computed: Vec<(String, String, String)>,
}

/// What one occurrence of a fragment relation needs.
#[derive(Debug, Clone, Default)]
struct Occurrence {
    fragment: String,
    all_columns: bool,
    columns: BTreeSet<String>,
    /// Pushed conjuncts (already rewritten to bare column names), ANDed.
    filters: Vec<Expr>,
    null_supplying: bool,
    limit: Option<(Vec<String>, u64)>,
    /// Semi-join filters: (column of this relation, fragment and column it must match).
    semi: Vec<(Ident, String, Ident)>,
    /// `col IN (subquery)` filters, rendered for the source.
    subqueries: Vec<String>,
}

struct Walker<'a> {
    inputs: &'a BTreeMap<String, FragmentInput>,
    occ: Vec<Occurrence>,
    predicates: Vec<PredicateDecision>,
    fallbacks: BTreeSet<String>,
}

/// Identifier references at the top level of an expression tree (not inside
/// nested queries), plus the nested queries themselves.
#[derive(Default)]
struct Refs {
    depth: usize,
    idents: Vec<Vec<Ident>>,
    nested: Vec<Query>,
    has_function: bool,
}

impl Visitor for Refs {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.nested.push(q.clone());
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            match e {
                Expr::Identifier(i) => self.idents.push(vec![i.clone()]),
                Expr::CompoundIdentifier(v) => self.idents.push(v.clone()),
                Expr::Function(_) => self.has_function = true,
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

fn refs_of<T: Visit>(node: &T) -> Refs {
    let mut r = Refs::default();
    let _ = node.visit(&mut r);
    r
}

fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) if matches!(**inner, Expr::BinaryOp { op: BinaryOperator::And, .. }) => conjuncts(inner, out),
        other => out.push(other.clone()),
    }
}

/// Whether `e` is a predicate every engine evaluates the same way, or more
/// loosely at the source (the remainder re-applies it): column refs, numeric
/// literals, NULL tests, AND/OR; string literals only in (in)equality on
/// engines with exact string equality (never MySQL/MariaDB: its collations
/// ignore case, which NOT would turn into dropped rows); ordering comparisons
/// (<, BETWEEN) only against numbers, since string order depends on collation,
/// or against typed DATE/TIMESTAMP literals on engines with real date types
/// (SQLite compares them as text).
fn portable(e: &Expr, dialect: Dialect) -> bool {
    let strings_ok = dialect != Dialect::Mysql;
    let times_ok = dialect != Dialect::Sqlite;
    let is_col = |x: &Expr| matches!(x, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
    let is_num = |x: &Expr| match x {
        Expr::Value(v) => matches!(v.value, Value::Number(..)),
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => matches!(&**expr, Expr::Value(v) if matches!(v.value, Value::Number(..))),
        _ => false,
    };
    let is_str = |x: &Expr| matches!(x, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)));
    let is_time = |x: &Expr| {
        times_ok
            && matches!(x, Expr::TypedString(t) if matches!(t.data_type, SqlType::Date | SqlType::Timestamp(..) | SqlType::Datetime(_)))
    };
    let scalar_eq = |x: &Expr| is_col(x) || is_num(x) || (strings_ok && is_str(x));
    match e {
        Expr::Nested(x) => portable(x, dialect),
        Expr::IsNull(x) | Expr::IsNotNull(x) => is_col(x),
        Expr::UnaryOp { op: UnaryOperator::Not, expr } => portable(expr, dialect),
        Expr::BinaryOp { left, op: BinaryOperator::And | BinaryOperator::Or, right } => portable(left, dialect) && portable(right, dialect),
        Expr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } => {
            (is_col(left) && scalar_eq(right) && !is_col(right)) || (is_col(right) && scalar_eq(left) && !is_col(left))
        }
        Expr::BinaryOp { left, op: BinaryOperator::Lt | BinaryOperator::LtEq | BinaryOperator::Gt | BinaryOperator::GtEq, right } => {
            (is_col(left) && (is_num(right) || is_time(right))) || ((is_num(left) || is_time(left)) && is_col(right))
        }
        Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right) => {
            (is_col(left) && scalar_eq(right) && !is_col(right)) || (is_col(right) && scalar_eq(left) && !is_col(left))
        }
        Expr::InList { expr, list, .. } => is_col(expr) && !list.is_empty() && list.iter().all(|x| is_num(x) || (strings_ok && is_str(x))),
        Expr::Between { expr, low, high, .. } => is_col(expr) && is_num(low) && is_num(high),
        _ => false,
    }
}

/// Rewrites column references to bare names quoted for the source dialect.
fn to_source(e: &Expr, dialect: Dialect) -> String {
    let mut e = e.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
        let ident = match x {
            Expr::CompoundIdentifier(v) => v.last().cloned(),
            Expr::Identifier(i) => Some(i.clone()),
            _ => None,
        };
        if let Some(i) = ident {
            *x = Expr::Identifier(Ident::new(column_sql(&i, dialect)));
        }
        // Null-safe comparison in the source's own syntax: MariaDB `<=>`, SQLite `IS [NOT]`.
        let distinct = matches!(x, Expr::IsDistinctFrom(..));
        if let Expr::IsDistinctFrom(l, r) | Expr::IsNotDistinctFrom(l, r) = x
            && matches!(dialect, Dialect::Mysql | Dialect::Sqlite)
        {
            let (l, r) = (l.clone(), r.clone());
            *x = match (dialect, distinct) {
                (Dialect::Mysql, false) => Expr::Nested(Box::new(Expr::BinaryOp { left: l, op: BinaryOperator::Spaceship, right: r })),
                (Dialect::Mysql, true) => Expr::UnaryOp {
                    op: UnaryOperator::Not,
                    expr: Box::new(Expr::Nested(Box::new(Expr::BinaryOp { left: l, op: BinaryOperator::Spaceship, right: r }))),
                },
                (_, d) => Expr::Nested(Box::new(Expr::BinaryOp {
                    left: l,
                    op: BinaryOperator::Custom(if d { "IS NOT" } else { "IS" }.into()),
                    right: r,
                })),
            };
        }
        ControlFlow::<()>::Continue(())
    });
    e.to_string()
}

/// A column name for a fragment's SELECT: quoted names keep their case; bare
/// names stay bare, so each engine folds them as the model author expected.
fn column_sql(i: &Ident, dialect: Dialect) -> String {
    if i.quote_style.is_some() { dialect.quote(&i.value) } else { i.value.clone() }
}

/// A relation of a SELECT scope: its alias and, for fragments, the occurrence index.
#[derive(Clone)]
struct ScopeRel {
    alias: String,
    occ: Option<usize>,
}

impl Walker<'_> {
    fn note(&mut self, msg: impl Into<String>) {
        self.fallbacks.insert(msg.into());
    }

    fn query(&mut self, q: &Query, ctes: &BTreeSet<String>, outer: &[ScopeRel]) {
        let mut ctes = ctes.clone();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.query(&cte.query, &ctes, &[]);
                ctes.insert(cte.alias.name.value.clone());
            }
        }
        let scope = self.set_expr(&q.body, &ctes, outer);
        // ORDER BY of a plain SELECT may name its relations' columns, or its output aliases.
        if let (Some(ob), Some(scope), SetExpr::Select(sel)) = (&q.order_by, &scope, q.body.as_ref())
            && let OrderByKind::Expressions(list) = &ob.kind
        {
            let aliases = output_aliases(sel);
            for o in list {
                let r = refs_of(&o.expr);
                self.attribute_with(&r, scope, outer, &aliases);
            }
        }
        // LIMIT: only a single-relation SELECT with ORDER BY on plain columns.
        let limit = match &q.limit_clause {
            Some(LimitClause::LimitOffset { limit: Some(Expr::Value(v)), offset: None, limit_by }) if limit_by.is_empty() => match &v.value
            {
                Value::Number(n, _) => n.parse::<u64>().ok(),
                _ => None,
            },
            _ => None,
        };
        if let (Some(n), Some(scope), SetExpr::Select(sel), Some(ob)) = (limit, &scope, q.body.as_ref(), &q.order_by) {
            let single = scope.len() == 1 && scope[0].occ.is_some();
            let plain = sel.distinct.is_none()
                && matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
                && sel.having.is_none()
                && sel.qualify.is_none()
                && !refs_of(&sel.projection).has_function
                && sel.from.len() == 1
                && sel.from[0].joins.is_empty();
            let keys: Option<Vec<String>> = match &ob.kind {
                OrderByKind::Expressions(list) => list
                    .iter()
                    .map(|o| match (&o.expr, o.options.asc, o.options.nulls_first) {
                        (Expr::Identifier(i), asc, None) => Some((i.clone(), asc)),
                        (Expr::CompoundIdentifier(v), asc, None) if v.len() == 2 => Some((v[1].clone(), asc)),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(|v| {
                        // DataFusion's default NULL placement, spelled out for the source.
                        v.into_iter()
                            .map(
                                |(i, asc)| if asc == Some(false) { format!("{i} desc nulls first") } else { format!("{i} asc nulls last") },
                            )
                            .collect()
                    }),
                OrderByKind::All(_) => None,
            };
            // String order depends on collation: only engines that compare bytes by default take a LIMIT.
            let byte_order = scope
                .first()
                .and_then(|r| r.occ)
                .is_some_and(|i| matches!(self.inputs[&self.occ[i].fragment].dialect, Dialect::Sqlite | Dialect::Duckdb));
            match (single && plain && byte_order, keys) {
                (true, Some(keys)) => {
                    let idx = scope[0].occ.expect("checked");
                    let all_pushed = sel.selection.as_ref().is_none_or(|w| {
                        let mut c = Vec::new();
                        conjuncts(w, &mut c);
                        c.len() == self.occ[idx].filters.len()
                    });
                    // The remainder re-applies ORDER BY and LIMIT over the fragment's top rows.
                    if all_pushed {
                        self.occ[idx].limit = Some((keys, n));
                    } else {
                        self.note("LIMIT kept in the remainder: not every WHERE conjunct could be pushed");
                    }
                }
                _ => self.note("LIMIT kept in the remainder: below a join, aggregate, DISTINCT, window, computed ORDER BY or a collation-dependent source it could change the result"),
            }
        }
    }

    /// Walks a set expression; returns the scope of a plain SELECT.
    fn set_expr(&mut self, s: &SetExpr, ctes: &BTreeSet<String>, outer: &[ScopeRel]) -> Option<Vec<ScopeRel>> {
        match s {
            SetExpr::Select(sel) => Some(self.select(sel, ctes, outer)),
            SetExpr::Query(q) => {
                self.query(q, ctes, outer);
                None
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, ctes, outer);
                self.set_expr(right, ctes, outer);
                None
            }
            _ => None,
        }
    }

    fn factor(&mut self, f: &TableFactor, ctes: &BTreeSet<String>, null_supplying: bool, scope: &mut Vec<ScopeRel>) {
        match f {
            TableFactor::Table { name, alias, args: None, .. } => {
                let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident().map(|i| i.value.clone())).collect();
                let alias_name = alias.as_ref().map_or_else(|| parts.last().cloned().unwrap_or_default(), |a| a.name.value.clone());
                let occ = match parts.as_slice() {
                    [n] if !ctes.contains(n) && self.inputs.contains_key(n) => {
                        if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
                            self.note(format!("`{n}` is aliased with column names: its whole relation is read"));
                        }
                        self.occ.push(Occurrence {
                            fragment: n.clone(),
                            null_supplying,
                            all_columns: alias.as_ref().is_some_and(|a| !a.columns.is_empty()),
                            ..Default::default()
                        });
                        Some(self.occ.len() - 1)
                    }
                    _ => None,
                };
                scope.push(ScopeRel { alias: alias_name, occ });
            }
            TableFactor::Derived { subquery, alias, lateral, .. } => {
                if *lateral {
                    self.note("a LATERAL subquery is not split");
                }
                self.query(subquery, ctes, &[]);
                scope.push(ScopeRel { alias: alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_default(), occ: None });
            }
            TableFactor::NestedJoin { table_with_joins, .. } => {
                // Parenthesised joins: every relation inside is treated as null-supplying (no filter pushdown).
                self.factor(&table_with_joins.relation, ctes, true, scope);
                for j in &table_with_joins.joins {
                    self.factor(&j.relation, ctes, true, scope);
                    if let JoinConstraint::On(e) = constraint(&j.join_operator) {
                        let r = refs_of(e);
                        let s = scope.clone();
                        self.attribute(&r, &s, &[]);
                    }
                }
                self.note("parenthesised joins: no filter pushdown inside them");
            }
            other => {
                let r = refs_of(other);
                for q in &r.nested {
                    self.query(q, ctes, &[]);
                }
                self.note("a table function or unusual FROM item is read as is");
                scope.push(ScopeRel { alias: String::new(), occ: None });
            }
        }
    }

    fn select(&mut self, sel: &Select, ctes: &BTreeSet<String>, outer: &[ScopeRel]) -> Vec<ScopeRel> {
        let mut scope: Vec<ScopeRel> = Vec::new();
        // (join index in scope of the right relation, operator) for ON-clause decisions.
        let mut ons: Vec<(usize, &JoinOperator)> = Vec::new();
        for twj in &sel.from {
            let base = scope.len();
            self.factor(&twj.relation, ctes, false, &mut scope);
            for j in &twj.joins {
                let right_start = scope.len();
                let right_null = matches!(j.join_operator, JoinOperator::Left(_) | JoinOperator::LeftOuter(_) | JoinOperator::FullOuter(_))
                    || !matches!(
                        j.join_operator,
                        JoinOperator::Join(_)
                            | JoinOperator::Inner(_)
                            | JoinOperator::CrossJoin(_)
                            | JoinOperator::Left(_)
                            | JoinOperator::LeftOuter(_)
                            | JoinOperator::Right(_)
                            | JoinOperator::RightOuter(_)
                            | JoinOperator::FullOuter(_)
                    );
                self.factor(&j.relation, ctes, right_null, &mut scope);
                if matches!(j.join_operator, JoinOperator::Right(_) | JoinOperator::RightOuter(_) | JoinOperator::FullOuter(_)) {
                    for r in &scope[base..right_start] {
                        if let Some(i) = r.occ {
                            self.occ[i].null_supplying = true;
                        }
                    }
                }
                match constraint(&j.join_operator) {
                    JoinConstraint::Using(_) | JoinConstraint::Natural => {
                        for r in &scope[base..] {
                            if let Some(i) = r.occ {
                                self.occ[i].all_columns = true;
                            }
                        }
                        self.note("USING/NATURAL joins read all columns of the joined relations");
                    }
                    _ => {}
                }
                ons.push((scope.len() - 1, &j.join_operator));
            }
        }
        // Column usage at this level (FROM subqueries were walked as their own scopes).
        for item in &sel.projection {
            match item {
                SelectItem::Wildcard(_) => {
                    for r in &scope {
                        if let Some(i) = r.occ {
                            self.occ[i].all_columns = true;
                        }
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let name = kind.to_string();
                    let name = name.strip_suffix(".*").unwrap_or(&name);
                    let q = name.rsplit('.').next().unwrap_or(name).trim_matches('"').to_string();
                    for r in scope.iter().filter(|r| r.alias == q) {
                        if let Some(i) = r.occ {
                            self.occ[i].all_columns = true;
                        }
                    }
                }
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    let r = refs_of(e);
                    self.attribute(&r, &scope, outer);
                    self.nested(&r, ctes, &scope, outer);
                }
                other => {
                    let r = refs_of(other);
                    self.attribute(&r, &scope, outer);
                    self.nested(&r, ctes, &scope, outer);
                }
            }
        }
        // GROUP BY and HAVING may name output aliases in several dialects.
        let aliases = output_aliases(sel);
        for r in [refs_of(&sel.group_by), refs_of(&sel.having)] {
            self.attribute_with(&r, &scope, outer, &aliases);
            self.nested(&r, ctes, &scope, outer);
        }
        let mut rest: Vec<Refs> = vec![refs_of(&sel.qualify), refs_of(&sel.named_window)];
        for twj in &sel.from {
            for j in &twj.joins {
                if let JoinConstraint::On(e) = constraint(&j.join_operator) {
                    rest.push(refs_of(e));
                }
            }
        }
        if let Some(w) = &sel.selection {
            rest.push(refs_of(w));
        }
        for r in &rest {
            self.attribute(r, &scope, outer);
            self.nested(r, ctes, &scope, outer);
        }
        // ON-clause conjuncts of outer/inner joins.
        for (idx, op) in &ons {
            if let JoinConstraint::On(e) = constraint(op) {
                let mut cs = Vec::new();
                conjuncts(e, &mut cs);
                for c in cs {
                    let inner = matches!(op, JoinOperator::Join(_) | JoinOperator::Inner(_));
                    let left_outer = matches!(op, JoinOperator::Left(_) | JoinOperator::LeftOuter(_));
                    let target = self.single_alias(&c, &scope, outer.is_empty());
                    match target {
                        Some(t) if t == *idx && left_outer => {
                            self.push(c, &scope, t, "ON conjunct on the null-supplying side of a LEFT JOIN")
                        }
                        Some(t) if inner && scope[t].occ.is_some_and(|i| !self.occ[i].null_supplying) => {
                            self.push(c, &scope, t, "ON conjunct of an inner join")
                        }
                        _ => {}
                    }
                }
            }
        }
        // Equi-joins between relations at one location: semi-join reductions.
        let mut equis = Vec::new();
        for (_, op) in &ons {
            if let JoinOperator::Join(JoinConstraint::On(e)) | JoinOperator::Inner(JoinConstraint::On(e)) = op {
                conjuncts(e, &mut equis);
            }
        }
        if let Some(w) = &sel.selection {
            conjuncts(w, &mut equis);
        }
        for c in &equis {
            self.semi_join(c, &scope);
        }
        // WHERE conjuncts.
        if let Some(w) = &sel.selection {
            let mut cs = Vec::new();
            conjuncts(w, &mut cs);
            for c in cs {
                let r = refs_of(&c);
                if !r.nested.is_empty() {
                    match self.in_subquery(&c, &scope, ctes) {
                        Some((i, sql)) => {
                            let frag = self.occ[i].fragment.clone();
                            self.predicates.push(PredicateDecision {
                                predicate: c.to_string(),
                                pushed_to: Some(frag),
                                reason: "IN over a plain subquery at the same location; also kept in the remainder".into(),
                            });
                            self.occ[i].subqueries.push(sql);
                        }
                        None => self.keep(&c, "contains a subquery"),
                    }
                    continue;
                }
                match self.single_alias(&c, &scope, outer.is_empty()) {
                    Some(t) => match scope[t].occ {
                        Some(i) if self.occ[i].null_supplying => {
                            self.keep(&c, &format!("`{}` is on the null-supplying side of an outer join", scope[t].alias))
                        }
                        Some(_) => self.push(c, &scope, t, "WHERE conjunct on one relation"),
                        None => self.keep(&c, "references a CTE, subquery or non-fragment relation"),
                    },
                    None => self.keep(&c, "references several relations, an outer query, or an ambiguous column"),
                }
            }
        }
        scope
    }

    /// The scope index of the one relation `e` references, if exactly one and attributable.
    fn single_alias(&self, e: &Expr, scope: &[ScopeRel], uncorrelated: bool) -> Option<usize> {
        let r = refs_of(e);
        let mut found: Option<usize> = None;
        for id in &r.idents {
            let idx = match id.as_slice() {
                [q, _] => scope.iter().position(|s| s.alias == q.value)?,
                [_] if scope.len() == 1 && uncorrelated => 0,
                _ => return None,
            };
            if found.is_some_and(|f| f != idx) {
                return None;
            }
            found = Some(idx);
        }
        found
    }

    fn push(&mut self, c: Expr, scope: &[ScopeRel], t: usize, why: &str) {
        let Some(i) = scope[t].occ else { return };
        let frag = self.occ[i].fragment.clone();
        let dialect = self.inputs[&frag].dialect;
        if !portable(&c, dialect) {
            self.keep(&c, &format!("not portable to {dialect} (functions, arithmetic, casts or LIKE are evaluated in the compute)"));
            return;
        }
        self.predicates.push(PredicateDecision {
            predicate: c.to_string(),
            pushed_to: Some(frag),
            reason: format!("{why}; also kept in the remainder"),
        });
        self.occ[i].filters.push(c);
    }

    /// `x.col IN (select c from t where …)` where `x` is an inner relation, `t`
    /// lives at the same location, and the subquery is a plain single-table
    /// SELECT with portable conditions: the occurrence and the subquery as the
    /// source should run it. The source's IN is at least as loose as the
    /// compute's (the remainder re-applies it), so no row that matters is lost.
    fn in_subquery(&self, c: &Expr, scope: &[ScopeRel], ctes: &BTreeSet<String>) -> Option<(usize, String)> {
        let Expr::InSubquery { expr, subquery, negated: false } = c else { return None };
        let Expr::CompoundIdentifier(v) = expr.as_ref() else { return None };
        let i = scope.iter().find(|s| v.len() == 2 && s.alias == v[0].value).and_then(|s| s.occ)?;
        if self.occ[i].null_supplying {
            return None;
        }
        let outer = &self.inputs[&self.occ[i].fragment];
        let d = outer.dialect;
        let SetExpr::Select(sel) = subquery.body.as_ref() else { return None };
        let plain = subquery.with.is_none()
            && subquery.order_by.is_none()
            && subquery.limit_clause.is_none()
            && sel.from.len() == 1
            && sel.from[0].joins.is_empty()
            && matches!(&sel.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
            && sel.having.is_none()
            && sel.qualify.is_none()
            && sel.projection.len() == 1;
        if !plain {
            return None;
        }
        let TableFactor::Table { name, alias, args: None, .. } = &sel.from[0].relation else { return None };
        let [table] = name.0.as_slice() else { return None };
        let table = table.as_ident()?.value.clone();
        // Qualified names must be the subquery's own (bare names resolve the same way in
        // the fragment, whose only outer relation is `x` itself).
        let own = alias.as_ref().map_or(table.clone(), |a| a.name.value.clone());
        if !refs_of(sel.as_ref()).idents.iter().all(|id| id.len() == 1 || (id.len() == 2 && id[0].value == own)) {
            return None;
        }
        let inner = self.inputs.get(&table).filter(|t| !ctes.contains(&table) && t.location == outer.location)?;
        let column = match &sel.projection[0] {
            SelectItem::UnnamedExpr(Expr::Identifier(c)) | SelectItem::ExprWithAlias { expr: Expr::Identifier(c), .. } => c.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(p)) | SelectItem::ExprWithAlias { expr: Expr::CompoundIdentifier(p), .. } => {
                p.last()?.clone()
            }
            _ => return None,
        };
        let mut conds = Vec::new();
        if let Some(w) = &sel.selection {
            conjuncts(w, &mut conds);
        }
        if !conds.iter().all(|x| portable(x, d)) {
            return None;
        }
        let mut sql = format!("{} in (select {} from {}", column_sql(&v[1], d), column_sql(&column, d), inner.relation);
        if !conds.is_empty() {
            let w: Vec<String> = conds.iter().map(|x| format!("({})", to_source(x, d))).collect();
            sql.push_str(&format!(" where {}", w.join(" and ")));
        }
        sql.push(')');
        Some((i, sql))
    }

    /// `a.x = b.y` between two inner relations at one location: each fragment
    /// keeps the rows that have a partner in the other.
    fn semi_join(&mut self, c: &Expr, scope: &[ScopeRel]) {
        let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = c else { return };
        let side = |e: &Expr| match e {
            Expr::CompoundIdentifier(v) if v.len() == 2 => {
                scope.iter().find(|s| s.alias == v[0].value).and_then(|s| s.occ).map(|i| (i, v[1].clone()))
            }
            _ => None,
        };
        let (Some((a, ca)), Some((b, cb))) = (side(left), side(right)) else { return };
        let (fa, fb) = (self.occ[a].fragment.clone(), self.occ[b].fragment.clone());
        if a == b || self.occ[a].null_supplying || self.occ[b].null_supplying || self.inputs[&fa].location != self.inputs[&fb].location {
            return;
        }
        self.predicates.push(PredicateDecision {
            predicate: c.to_string(),
            pushed_to: Some(if fa == fb { fa.clone() } else { format!("{fa}, {fb}") }),
            reason: "inner equi-join at one location: pushed as semi-joins (EXISTS), the join itself stays in the remainder".into(),
        });
        self.occ[a].semi.push((ca.clone(), fb.clone(), cb.clone()));
        self.occ[b].semi.push((cb, fa, ca));
    }

    fn keep(&mut self, c: &Expr, why: &str) {
        self.predicates.push(PredicateDecision { predicate: c.to_string(), pushed_to: None, reason: why.to_string() });
    }

    fn attribute(&mut self, r: &Refs, scope: &[ScopeRel], outer: &[ScopeRel]) {
        self.attribute_with(r, scope, outer, &BTreeSet::new());
    }

    /// Records which columns each occurrence needs. `aliases`: output names an
    /// unqualified reference may mean instead of a column.
    fn attribute_with(&mut self, r: &Refs, scope: &[ScopeRel], outer: &[ScopeRel], aliases: &BTreeSet<String>) {
        for id in &r.idents {
            match id.as_slice() {
                [c] if aliases.contains(&c.value) => {
                    for s in scope.iter().chain(outer) {
                        if let Some(i) = s.occ {
                            self.occ[i].all_columns = true;
                        }
                    }
                }
                [q, c] => {
                    let hit = scope.iter().find(|s| s.alias == q.value).or_else(|| outer.iter().find(|s| s.alias == q.value));
                    if let Some(i) = hit.and_then(|s| s.occ) {
                        self.occ[i].columns.insert(c.value.clone() + &quote_marker(c));
                    }
                }
                [c] if scope.len() == 1 && outer.is_empty() => {
                    if let Some(i) = scope[0].occ {
                        self.occ[i].columns.insert(c.value.clone() + &quote_marker(c));
                    }
                }
                _ => {
                    for s in scope.iter().chain(outer) {
                        if let Some(i) = s.occ {
                            self.occ[i].all_columns = true;
                        }
                    }
                }
            }
        }
    }

    fn nested(&mut self, r: &Refs, ctes: &BTreeSet<String>, scope: &[ScopeRel], outer: &[ScopeRel]) {
        for q in &r.nested {
            let mut chain: Vec<ScopeRel> = scope.to_vec();
            chain.extend(outer.iter().cloned());
            self.query(q, ctes, &chain);
        }
    }
}

/// Names a SELECT gives its output columns.
fn output_aliases(sel: &Select) -> BTreeSet<String> {
    sel.projection
        .iter()
        .filter_map(|i| match i {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
            _ => None,
        })
        .collect()
}

/// Columns remember whether they were quoted (a trailing marker, stripped on output).
fn quote_marker(i: &Ident) -> String {
    if i.quote_style.is_some() { "\u{1}".into() } else { String::new() }
}

fn constraint(op: &JoinOperator) -> &JoinConstraint {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c) => c,
        _ => &JoinConstraint::None,
    }
}

/// The sqlparser dialect that reads SQL written for `d`.
pub(crate) fn parser_dialect(d: Dialect) -> Box<dyn ParserDialect> {
    match d {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::Mysql => Box::new(MySqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
        Dialect::Duckdb => Box::new(DuckDbDialect {}),
        Dialect::Snowflake => Box::new(SnowflakeDialect),
        Dialect::Databricks => Box::new(DatabricksDialect {}),
        Dialect::DataFusion => Box::new(GenericDialect {}),
    }
}

/// Rewrites SQL written for `from` into the compute's (DataFusion) lexical
/// conventions: backtick identifiers become double-quoted, MySQL's
/// double-quoted strings become single-quoted. Tokens are otherwise kept, so
/// the query reads the same. Unreadable SQL is returned unchanged.
pub fn to_compute_sql(sql: &str, from: Dialect) -> String {
    if !matches!(from, Dialect::Mysql | Dialect::Databricks) {
        return sql.to_string();
    }
    let d = parser_dialect(from);
    let Ok(tokens) = Tokenizer::new(d.as_ref(), sql).tokenize() else { return sql.to_string() };
    tokens
        .into_iter()
        .map(|t| match t {
            Token::Word(w) if w.quote_style == Some('`') => Dialect::DataFusion.quote(&w.value),
            Token::DoubleQuotedString(s) => format!("'{}'", s.replace('\'', "''")),
            other => other.to_string(),
        })
        .collect()
}

/// Splits `sqls` (the renderings of one node that share fragments, e.g. full and
/// incremental, written in the target's dialect `dialect`) over `inputs`.
pub fn split(sqls: &[&str], inputs: &[FragmentInput], dialect: Dialect) -> Split {
    let parser = parser_dialect(dialect);
    let by_name: BTreeMap<String, FragmentInput> = inputs.iter().map(|i| (i.name.clone(), i.clone())).collect();
    let mut w = Walker { inputs: &by_name, occ: Vec::new(), predicates: Vec::new(), fallbacks: BTreeSet::new() };
    let mut pusher = whole::Pusher::new(&by_name, dialect, parser.as_ref());
    let parsed: Vec<_> = sqls.iter().map(|sql| precedence::parse(sql, dialect)).collect();
    // Names a pushed sub-query must not take (a CTE of that name would shadow it).
    for stmts in parsed.iter().flatten() {
        pusher.reserve(stmts);
    }
    let mut remainders = Vec::new();
    let (mut refused, mut translated) = (Vec::new(), Vec::new());
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    let mut computed: Vec<expr_push::Computed> = Vec::new();
    let mut failed = false;
    for (sql, result) in sqls.iter().zip(parsed) {
        remainders.push(sql.to_string());
        match result {
            Ok(mut stmts) if stmts.len() == 1 => match &mut stmts[0] {
                sqlparser::ast::Statement::Query(q) => {
                    if pusher.statement(q) {
                        *remainders.last_mut().expect("pushed above") = format!("{q:#}");
                    }
                    // Expressions over one relation in the model's dialect are computed there.
                    let moved = expr_push::push(q, &by_name, dialect, &mut computed);
                    // What stays in the remainder must mean the same in DataFusion.
                    let checked = semantics::check(q.as_mut(), dialect);
                    refused.extend(checked.refused);
                    let reprint = moved || !checked.translated.is_empty();
                    translated.extend(checked.translated);
                    // DataFusion parses `IS [NOT] DISTINCT FROM` with the precedence bug.
                    if reprint || precedence::has_distinct_from(q.as_ref()) {
                        *remainders.last_mut().expect("pushed above") = precedence::parenthesized(q.as_ref());
                    }
                    let _ = sqlparser::ast::visit_relations(q.as_ref(), |r| {
                        if let [n] = r.0.as_slice()
                            && let Some(i) = n.as_ident()
                        {
                            referenced.insert(i.value.clone());
                        }
                        ControlFlow::<()>::Continue(())
                    });
                    w.query(q, &BTreeSet::new(), &[]);
                }
                _ => {
                    failed = true;
                    w.note("the model is not a single SELECT: whole relations are read");
                }
            },
            Ok(_) => {
                failed = true;
                w.note("the model has several statements: whole relations are read");
            }
            Err(e) => {
                failed = true;
                w.note(format!("the SQL could not be parsed for splitting ({e}): whole relations are read"));
            }
        }
    }
    let pushed = if failed { Vec::new() } else { pusher.pushed };
    if failed {
        remainders = sqls.iter().map(|s| s.to_string()).collect();
    }
    refused.sort();
    refused.dedup();
    translated.sort();
    translated.dedup();
    let mut out = Split {
        fragments: BTreeMap::new(),
        pushed,
        remainders,
        predicates: w.predicates,
        fallbacks: w.fallbacks.into_iter().collect(),
        refused,
        translated,
        computed: if failed {
            Vec::new()
        } else {
            computed.iter().map(|c| (c.original.clone(), c.input.clone(), c.name.clone())).collect()
        },
    };
    for input in inputs {
        let occs: Vec<&Occurrence> = w.occ.iter().filter(|o| o.fragment == input.name).collect();
        // Read only inside pushed sub-queries: no fragment of its own.
        if !failed && !referenced.contains(&input.name) && out.pushed.iter().any(|p| p.reads.contains(&input.name)) {
            continue;
        }
        let whole = FragmentOut { sql: format!("select * from {}", input.relation), columns: None };
        if failed || occs.is_empty() {
            if !failed && occs.is_empty() {
                out.fallbacks.push(format!("`{}` is not referenced as a plain table: its whole relation is read", input.name));
            }
            out.fragments.insert(input.name.clone(), whole);
            continue;
        }
        let d = input.dialect;
        let all = occs.iter().any(|o| o.all_columns);
        let mut cols: BTreeSet<String> = BTreeSet::new();
        for o in &occs {
            cols.extend(o.columns.iter().cloned());
        }
        // `"id"` and `id` name one column on every engine (bare names fold to lower
        // case or compare without case): read it once, bare.
        let same: Vec<String> =
            cols.iter().filter(|c| c.strip_suffix('\u{1}').is_some_and(|v| v == v.to_lowercase() && cols.contains(v))).cloned().collect();
        for c in same {
            cols.remove(&c);
        }
        // Filter: OR over occurrences of the AND of each one's conjuncts.
        let semi = |col: &Ident, other: &str, other_col: &Ident| {
            format!(
                "exists (select 1 from {} dvt_semi where dvt_semi.{} = dvt_f.{})",
                by_name[other].relation,
                column_sql(other_col, d),
                column_sql(col, d)
            )
        };
        let aliased = occs.iter().any(|o| !o.semi.is_empty());
        let mine: Vec<&expr_push::Computed> = computed.iter().filter(|c| c.input == input.name).collect();
        let filter = if occs.iter().all(|o| !o.filters.is_empty() || !o.semi.is_empty() || !o.subqueries.is_empty()) {
            let parts: Vec<String> = occs
                .iter()
                .map(|o| {
                    o.filters
                        .iter()
                        .map(|f| format!("({})", expr_push::expand(&to_source(f, d), &mine)))
                        .chain(o.subqueries.iter().map(|q| format!("({q})")))
                        .chain(o.semi.iter().map(|(c, other, oc)| format!("({})", semi(c, other, oc))))
                        .collect::<Vec<_>>()
                        .join(" and ")
                })
                .collect();
            let mut uniq: Vec<String> = parts.clone();
            uniq.sort();
            uniq.dedup();
            Some(if uniq.len() == 1 { uniq[0].clone() } else { uniq.iter().map(|p| format!("({p})")).collect::<Vec<_>>().join(" or ") })
        } else {
            None
        };
        let limit = if occs.len() == 1 { occs[0].limit.clone() } else { None };
        let columns: Option<Vec<String>> = if all || cols.is_empty() {
            None
        } else {
            Some(cols.iter().map(|c| if let Some(bare) = c.strip_suffix('\u{1}') { d.quote(bare) } else { c.clone() }).collect())
        };
        // Semi-joins name this relation `dvt_f` (bare columns still resolve to it).
        let from = if aliased { format!("{} dvt_f", input.relation) } else { input.relation.clone() };
        let select_list = match &columns {
            Some(cols) => cols
                .iter()
                .map(|c| match mine.iter().find(|m| &m.name == c) {
                    Some(m) => format!("{} as {}", m.sql, m.name),
                    None => c.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            None => std::iter::once("*".to_string())
                .chain(mine.iter().map(|m| format!("{} as {}", m.sql, m.name)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut sql = format!("select {select_list} from {from}");
        if let Some(f) = &filter {
            sql.push_str(&format!(" where {f}"));
        }
        if let Some((keys, n)) = &limit {
            sql.push_str(&format!(" order by {} limit {n}", keys.join(", ")));
        }
        out.fragments.insert(input.name.clone(), FragmentOut { sql, columns });
    }
    out
}

#[cfg(test)]
mod tests;

/// Scalar subqueries over the incremental model's own table (`(select max(x)
/// from {{ this }})`), rewritten to run on the target, so the runtime can
/// evaluate them there and use the value as a literal.
pub fn this_subqueries(sql: &str, dialect: Dialect, this_name: &str, target_relation: &str) -> Vec<String> {
    let Ok(stmts) = precedence::parse(sql, dialect) else { return vec![] };
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_expressions(&stmts, |e| {
        if let Expr::Subquery(q) = e
            && let SetExpr::Select(sel) = q.body.as_ref()
        {
            let only_this = sel.from.len() == 1
                && sel.from[0].joins.is_empty()
                && matches!(&sel.from[0].relation, TableFactor::Table { name, .. } if name.0.len() == 1 && name.0[0].as_ident().is_some_and(|i| i.value == this_name));
            if only_this {
                let text = q.to_string().replace(&dialect.quote(this_name), target_relation);
                if !out.contains(&text) {
                    out.push(text);
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    out
}
