//! Whole sub-queries pushed to one database: the query, a CTE or a FROM
//! sub-query whose every relation lives at one location that speaks the
//! model's own dialect runs there as a single fragment — joins, aggregates,
//! windows and all — and the remainder reads its result by name.
//!
//! Why only in the model's dialect: the source then runs exactly the SQL the
//! author wrote, with the meaning it has when everything is co-located (the
//! reference of SPEC §3). In another engine functions, division, collations
//! and NULL ordering differ, so there only filters and columns are pushed.
//! Only uncorrelated queries qualify, and they are so by construction: the
//! top-level query, CTE bodies and non-LATERAL derived tables cannot see
//! outer columns.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, TableAlias, TableFactor, Visit, VisitMut, Visitor, VisitorMut,
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
    /// Dialect of `sql` (the model's).
    pub dialect: Dialect,
    pub sql: String,
    /// The fragment inputs it reads, by name.
    pub reads: BTreeSet<String>,
    /// Its output column names, when the projection names them all.
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
}

/// Relations and constructs inside a query.
#[derive(Default)]
struct Tables {
    names: Vec<Vec<String>>,
    ctes: BTreeSet<String>,
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
        Pusher { inputs, dialect, parser, pushed: Vec::new(), replaced: 0 }
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
        if t.unusual_factor || t.names.is_empty() {
            return None;
        }
        // A CTE inside that shadows an input would make names ambiguous: not pushed.
        if t.ctes.iter().any(|c| self.inputs.contains_key(c)) {
            return None;
        }
        let mut location: Option<&str> = None;
        let mut reads = BTreeSet::new();
        for n in &t.names {
            let [n] = n.as_slice() else { return None };
            if t.ctes.contains(n) {
                continue;
            }
            let input = self.inputs.get(n).filter(|_| !outer_ctes.contains(n))?;
            if input.dialect != self.dialect || location.is_some_and(|l| l != input.location) {
                return None;
            }
            location = Some(&input.location);
            reads.insert(n.clone());
        }
        let location = location?.to_string();
        let mut source = q.clone();
        let _ = VisitMut::visit(&mut source, &mut ToSource { inputs: self.inputs });
        let sql = format!("{source:#}");
        if let Some(p) = self.pushed.iter().find(|p| p.sql == sql && p.location == location) {
            return Some(p.name.clone());
        }
        let name = (1..).map(|i| format!("dvt_q{i}")).find(|n| !self.inputs.contains_key(n) && self.pushed.iter().all(|p| &p.name != n))?;
        self.pushed.push(PushedQuery { name: name.clone(), location, dialect: self.dialect, sql, reads, columns: output_columns(q) });
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
