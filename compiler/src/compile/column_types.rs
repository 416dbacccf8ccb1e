//! Column types known offline, for fragments' Arrow types: declared in YAML,
//! the plan's seed types (inferred from the file or `column_types`; also for a
//! source whose relation a seed of the project loads), or traced
//! through a model's SQL — plain columns, casts, `count`, `min`/`max` — back
//! to those. Anything else stays unknown in the plan and is typed from the
//! source's catalog at run time: a type claimed here is used to convert the
//! source's values strictly, so it is only claimed when it is certain.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dvt_schema::plan::{PlanNode, Upstream};
use sqlparser::ast::{
    CastKind, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectName, ObjectNamePart, Query, Select, SelectItem, SetExpr,
    TableFactor,
};

use super::{arrow_type, declared_types, fragment_name};
use crate::dialect::Dialect;
use crate::nodes::Project;

/// Known column types of a relation: lower-case name → SQL type.
type Known = BTreeMap<String, String>;

/// Fills the Arrow types of federated nodes' fragment columns that YAML does not declare.
pub(super) fn fill_fragment_types(project: &Project, nodes: &mut BTreeMap<String, Box<PlanNode>>) {
    let mut found: Vec<(String, usize, Known, Dialect)> = Vec::new();
    {
        let nodes: &BTreeMap<String, Box<PlanNode>> = nodes;
        let mut types = Types { project, nodes, memo: HashMap::new(), visiting: BTreeSet::new() };
        for (uid, node) in nodes {
            let Some(fed) = &node.federation else { continue };
            for (i, f) in fed.fragments.iter().enumerate().filter(|(_, f)| f.columns.iter().any(|c| c.arrow_type.is_none())) {
                let dialect = Dialect::from_adapter(&f.dialect).unwrap_or(Dialect::Postgres);
                let known = if f.reads.is_empty() {
                    types.of(&f.upstream)
                } else {
                    // A pushed sub-query names its upstreams by their relations.
                    types.of_sql(&f.sql, dialect, &|name| by_relation(&node.upstreams, name)).unwrap_or_default()
                };
                found.push((uid.clone(), i, known, dialect));
            }
        }
    }
    for (uid, i, known, dialect) in found {
        let f = &mut nodes.get_mut(&uid).and_then(|n| n.federation.as_mut()).expect("federated above").fragments[i];
        for c in f.columns.iter_mut().filter(|c| c.arrow_type.is_none()) {
            c.arrow_type = known.get(&c.name.to_ascii_lowercase()).and_then(|t| arrow_type_on(t, dialect));
        }
    }
}

/// The Arrow type a column of SQL type `t` reads as from `dialect` (SQLite's integers are all 64-bit).
fn arrow_type_on(t: &str, dialect: Dialect) -> Option<String> {
    let a = arrow_type(t)?;
    Some(if dialect == Dialect::Sqlite && matches!(a.as_str(), "Int16" | "Int32") { "Int64".into() } else { a })
}

/// The upstream whose rendered relation is `name` (normalized).
fn by_relation(upstreams: &[Upstream], name: &str) -> Option<String> {
    upstreams.iter().find(|u| u.relation.as_ref().is_some_and(|r| normalized(&r.rendered) == name)).map(|u| u.unique_id.clone())
}

/// A relation name without quotes, lower case: how rendered names are matched.
fn normalized(name: &str) -> String {
    name.replace(['"', '`'], "").to_ascii_lowercase()
}

/// The SQL being read: its dialect, and how its relation names map to upstreams.
struct SqlOf<'r> {
    dialect: Dialect,
    /// A normalized relation name → the upstream's unique id.
    resolve: &'r dyn Fn(&str) -> Option<String>,
}

struct Types<'a> {
    project: &'a Project,
    nodes: &'a BTreeMap<String, Box<PlanNode>>,
    memo: HashMap<String, Known>,
    visiting: BTreeSet<String>,
}

impl Types<'_> {
    /// Known column types of an upstream (source, seed or model).
    fn of(&mut self, uid: &str) -> Known {
        if let Some(k) = self.memo.get(uid) {
            return k.clone();
        }
        if !self.visiting.insert(uid.to_string()) {
            return Known::new();
        }
        let mut known = Known::new();
        // A source this project loads itself (a seed or model writes its relation) has that node's types.
        let backing = self.project.sources.get(uid).and_then(|s| {
            let o = self.project.profile.outputs.get(&s.connection)?;
            let rendered =
                normalized(&super::resolve::relation_ref(o, s.database.clone(), Some(s.schema.clone()), s.identifier.clone()).rendered);
            self.nodes
                .values()
                .find(|n| n.relation.as_ref().is_some_and(|r| r.target == s.connection && normalized(&r.rendered) == rendered))
                .map(|n| n.unique_id.clone())
        });
        if let Some(b) = backing {
            known.extend(self.of(&b));
        }
        if let Some(node) = self.nodes.get(uid) {
            if let Some(seed) = &node.seed {
                known.extend(seed.column_types.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
            } else if let Some(sql) = node.compiled_sql.clone() {
                let dialect = Dialect::from_adapter(self.project.profile.outputs.get(&node.target.value).map_or("", |o| o.kind.as_str()))
                    .unwrap_or(Dialect::Postgres);
                let upstreams = node.upstreams.clone();
                let federated = node.federation.is_some();
                let project = self.project;
                // Pushdown SQL names upstreams by their relations; a federated remainder by fragment names.
                let resolve = move |name: &str| {
                    if federated {
                        upstreams.iter().find(|u| normalized(&fragment_name(project, &u.unique_id)) == name).map(|u| u.unique_id.clone())
                    } else {
                        by_relation(&upstreams, name)
                    }
                };
                known.extend(self.of_sql(&sql, dialect, &resolve).unwrap_or_default());
            }
        }
        known.extend(declared_types(self.project, uid));
        self.visiting.remove(uid);
        self.memo.insert(uid.to_string(), known.clone());
        known
    }

    /// Known output column types of a query; `resolve` maps a normalized relation name to an upstream.
    fn of_sql(&mut self, sql: &str, dialect: Dialect, resolve: &dyn Fn(&str) -> Option<String>) -> Option<Known> {
        let stmts = crate::federate::precedence::parse(sql, dialect).ok()?;
        let [sqlparser::ast::Statement::Query(q)] = stmts.as_slice() else { return None };
        Some(self.query(q, &SqlOf { dialect, resolve }, &BTreeMap::new()))
    }

    fn query(&mut self, q: &Query, sql: &SqlOf<'_>, outer: &BTreeMap<String, Known>) -> Known {
        let mut ctes = outer.clone();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let k = self.query(&cte.query, sql, &ctes);
                ctes.insert(cte.alias.name.value.to_ascii_lowercase(), k);
            }
        }
        self.set_expr(&q.body, sql, &ctes)
    }

    fn set_expr(&mut self, s: &SetExpr, sql: &SqlOf<'_>, ctes: &BTreeMap<String, Known>) -> Known {
        match s {
            SetExpr::Select(sel) => self.select(sel, sql, ctes),
            SetExpr::Query(q) => self.query(q, sql, ctes),
            // Branches' types may widen each other: only names typed alike on both sides are known.
            SetExpr::SetOperation { .. } => Known::new(),
            _ => Known::new(),
        }
    }

    fn relation(&mut self, f: &TableFactor, sql: &SqlOf<'_>, ctes: &BTreeMap<String, Known>) -> (String, Known) {
        match f {
            TableFactor::Table { name, alias, args: None, .. } => {
                let full = object_name(name);
                let known = match (name.0.as_slice(), ctes.get(&full)) {
                    ([_], Some(k)) => k.clone(),
                    _ => (sql.resolve)(&full).map(|uid| self.of(&uid)).unwrap_or_default(),
                };
                let last = name.0.last().and_then(|p| p.as_ident()).map_or_else(String::new, |i| i.value.to_ascii_lowercase());
                (alias.as_ref().map_or(last, |a| a.name.value.to_ascii_lowercase()), known)
            }
            TableFactor::Derived { subquery, alias, .. } => {
                let k = self.query(subquery, sql, ctes);
                let renamed = alias.as_ref().is_some_and(|a| !a.columns.is_empty());
                (alias.as_ref().map_or_else(String::new, |a| a.name.value.to_ascii_lowercase()), if renamed { Known::new() } else { k })
            }
            _ => (String::new(), Known::new()),
        }
    }

    fn select(&mut self, sel: &Select, sql: &SqlOf<'_>, ctes: &BTreeMap<String, Known>) -> Known {
        let mut scope: Vec<(String, Known)> = Vec::new();
        for twj in &sel.from {
            scope.push(self.relation(&twj.relation, sql, ctes));
            for j in &twj.joins {
                scope.push(self.relation(&j.relation, sql, ctes));
            }
        }
        let mut out = Known::new();
        let mut ambiguous = BTreeSet::new();
        let mut add = |name: String, t: Option<String>| {
            if out.contains_key(&name) || ambiguous.contains(&name) {
                out.remove(&name);
                ambiguous.insert(name);
            } else if let Some(t) = t {
                out.insert(name, t);
            } else {
                ambiguous.insert(name);
            }
        };
        for item in &sel.projection {
            match item {
                SelectItem::ExprWithAlias { expr, alias } => add(alias.value.to_ascii_lowercase(), type_of(expr, &scope, sql.dialect)),
                SelectItem::UnnamedExpr(e @ Expr::Identifier(i)) => add(i.value.to_ascii_lowercase(), type_of(e, &scope, sql.dialect)),
                SelectItem::UnnamedExpr(e @ Expr::CompoundIdentifier(v)) => {
                    if let Some(i) = v.last() {
                        add(i.value.to_ascii_lowercase(), type_of(e, &scope, sql.dialect));
                    }
                }
                SelectItem::Wildcard(_) => {
                    for (_, k) in &scope {
                        for (n, t) in k {
                            add(n.clone(), Some(t.clone()));
                        }
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let text = kind.to_string();
                    let q = normalized(text.strip_suffix(".*").unwrap_or(&text));
                    let q = q.rsplit('.').next().unwrap_or(&q).to_string();
                    for (_, k) in scope.iter().filter(|(a, _)| *a == q) {
                        for (n, t) in k {
                            add(n.clone(), Some(t.clone()));
                        }
                    }
                }
                // Engine-generated names cannot be looked up.
                _ => {}
            }
        }
        out
    }
}

/// A relation name as written, normalized.
fn object_name(name: &ObjectName) -> String {
    normalized(&name.to_string())
}

/// The type of an expression, when it is certain in every engine.
fn type_of(e: &Expr, scope: &[(String, Known)], dialect: Dialect) -> Option<String> {
    match e {
        Expr::Nested(x) => type_of(x, scope, dialect),
        Expr::Identifier(c) => {
            let c = c.value.to_ascii_lowercase();
            // Unqualified: only when a single relation is in scope (another could hold an untyped column of that name).
            match scope {
                [(_, k)] => k.get(&c).cloned(),
                _ => None,
            }
        }
        Expr::CompoundIdentifier(v) if v.len() >= 2 => {
            let q = v[v.len() - 2].value.to_ascii_lowercase();
            let c = v[v.len() - 1].value.to_ascii_lowercase();
            let mut hits = scope.iter().filter(|(a, _)| *a == q);
            match (hits.next(), hits.next()) {
                (Some((_, k)), None) => k.get(&c).cloned(),
                _ => None,
            }
        }
        // SQLite's CAST follows type affinity (`CAST('2024-01-01' AS DATE)` is 2024): not trusted there.
        Expr::Cast { kind: CastKind::Cast | CastKind::DoubleColon, data_type, .. } if dialect != Dialect::Sqlite => {
            let t = data_type.to_string();
            arrow_type(&t).map(|_| t)
        }
        Expr::Function(f) => {
            let name = match f.name.0.as_slice() {
                [ObjectNamePart::Identifier(i)] => i.value.to_ascii_lowercase(),
                _ => return None,
            };
            let FunctionArguments::List(list) = &f.args else { return None };
            let arg = match list.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] => Some(x),
                _ => None,
            };
            match name.as_str() {
                "count" => Some("bigint".into()),
                "min" | "max" => arg.and_then(|x| type_of(x, scope, dialect)),
                _ => None,
            }
        }
        _ => None,
    }
}
