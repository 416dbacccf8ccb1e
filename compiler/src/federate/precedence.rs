//! Parsing with sqlparser 0.62 (DataFusion 55's), corrected where its tree is
//! wrong: the right operand of `IS [NOT] DISTINCT FROM` is parsed at the lowest
//! precedence, so `a IS DISTINCT FROM b AND c` reads as `a IS DISTINCT FROM
//! (b AND c)` (datafusion-sqlparser-rs #2436, DataFusion #23692). The compiler's
//! analysis sees the corrected tree, and SQL handed to DataFusion (which parses
//! with the same version) carries explicit parentheses, so it reads the same.
//!
//! The other operators with a right operand (`BETWEEN … AND`, `LIKE … ESCAPE`,
//! `IN (…)`, `IS [NOT] TRUE`, `AT TIME ZONE`, `COLLATE`) parse correctly in 0.62;
//! the tests below pin that down on the tree.

use std::ops::ControlFlow;

use sqlparser::ast::{BinaryOperator, Expr, Statement};
use sqlparser::parser::{Parser, ParserError};

use crate::dialect::Dialect;

/// Parses `sql` written for `dialect`, with the corrections above applied.
pub fn parse(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, ParserError> {
    let parser = super::parser_dialect(dialect);
    let mut stmts = Parser::parse_sql(parser.as_ref(), sql)?;
    fix(&mut stmts);
    Ok(stmts)
}

/// Regroups every mis-parsed `IS [NOT] DISTINCT FROM` in `node`.
///
/// A chain of unparenthesized AND/OR/XOR/NOT and `IS [NOT] DISTINCT FROM` keeps
/// its tokens in order in the wrong tree; it is flattened in that order and
/// rebuilt with PostgreSQL's precedence (IS > NOT > AND > XOR > OR). Children are
/// visited first, and every rebuild keeps the order, so the rebuild at the root
/// of each chain gives the right tree.
pub fn fix<T: sqlparser::ast::VisitMut>(node: &mut T) {
    let _ = sqlparser::ast::visit_expressions_mut(node, |e| {
        if chain_has_distinct_from(e) {
            let mut items = Vec::new();
            flatten(std::mem::replace(e, Expr::Value(sqlparser::ast::Value::Null.into())), &mut items);
            *e = rebuild(&mut items.into_iter().peekable(), 0);
        }
        ControlFlow::<()>::Continue(())
    });
}

enum Item {
    Operand(Box<Expr>),
    Not,
    /// AND/OR/XOR, or `IS [NOT] DISTINCT FROM` (`Some(negated)`).
    Op(Option<BinaryOperator>, bool),
}

/// Whether the unparenthesized AND/OR/XOR/NOT chain at `e` holds a distinct-from.
fn chain_has_distinct_from(e: &Expr) -> bool {
    match e {
        Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..) => true,
        Expr::BinaryOp { left, op: BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor, right } => {
            chain_has_distinct_from(left) || chain_has_distinct_from(right)
        }
        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Not, expr } => chain_has_distinct_from(expr),
        _ => false,
    }
}

/// Flattens the chain at `e` in token order.
fn flatten(e: Expr, out: &mut Vec<Item>) {
    match e {
        Expr::BinaryOp { left, op: op @ (BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor), right } => {
            flatten(*left, out);
            out.push(Item::Op(Some(op), false));
            flatten(*right, out);
        }
        Expr::IsDistinctFrom(l, r) => {
            out.push(Item::Operand(l));
            out.push(Item::Op(None, false));
            flatten(*r, out);
        }
        Expr::IsNotDistinctFrom(l, r) => {
            out.push(Item::Operand(l));
            out.push(Item::Op(None, true));
            flatten(*r, out);
        }
        Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Not, expr } => {
            out.push(Item::Not);
            flatten(*expr, out);
        }
        other => out.push(Item::Operand(Box::new(other))),
    }
}

fn precedence(op: &Option<BinaryOperator>) -> u8 {
    match op {
        Some(BinaryOperator::Or) => 1,
        Some(BinaryOperator::Xor) => 2,
        Some(_) => 3,
        None => 5,
    }
}
const NOT_PRECEDENCE: u8 = 4;

/// Precedence climbing over the flattened chain (all binary operators left-associative).
fn rebuild(it: &mut std::iter::Peekable<std::vec::IntoIter<Item>>, min: u8) -> Expr {
    let mut lhs = match it.next() {
        Some(Item::Not) => Expr::UnaryOp { op: sqlparser::ast::UnaryOperator::Not, expr: Box::new(rebuild(it, NOT_PRECEDENCE)) },
        Some(Item::Operand(x)) => *x,
        // The chain came from a valid tree, so it alternates operands and operators.
        _ => Expr::Value(sqlparser::ast::Value::Null.into()),
    };
    while let Some(Item::Op(op, _)) = it.peek() {
        let p = precedence(op);
        if p < min {
            break;
        }
        let Some(Item::Op(op, negated)) = it.next() else { break };
        let rhs = Box::new(rebuild(it, p + 1));
        lhs = match op {
            Some(op) => Expr::BinaryOp { left: Box::new(lhs), op, right: rhs },
            None if negated => Expr::IsNotDistinctFrom(Box::new(lhs), rhs),
            None => Expr::IsDistinctFrom(Box::new(lhs), rhs),
        };
    }
    lhs
}

/// Whether `node` has an `IS [NOT] DISTINCT FROM` (its text must then be
/// re-emitted with [`parenthesized`] before DataFusion reads it).
pub fn has_distinct_from<T: sqlparser::ast::Visit>(node: &T) -> bool {
    sqlparser::ast::visit_expressions(node, |e| {
        if matches!(e, Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..)) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .is_break()
}

/// `node` printed with each `IS [NOT] DISTINCT FROM` in parentheses, so a parser
/// with the precedence bug reads the same tree.
pub fn parenthesized<T: sqlparser::ast::VisitMut + Clone + std::fmt::Display>(node: &T) -> String {
    let mut n = node.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut n, |e| {
        if matches!(e, Expr::IsDistinctFrom(..) | Expr::IsNotDistinctFrom(..)) {
            let inner = std::mem::replace(e, Expr::Value(sqlparser::ast::Value::Null.into()));
            *e = Expr::Nested(Box::new(inner));
        }
        ControlFlow::<()>::Continue(())
    });
    format!("{n:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{SelectItem, SetExpr};

    fn expr(sql: &str) -> Expr {
        let stmts = parse(&format!("select {sql}"), Dialect::Postgres).unwrap();
        let Statement::Query(q) = &stmts[0] else { panic!("query") };
        let SetExpr::Select(s) = q.body.as_ref() else { panic!("select") };
        let SelectItem::UnnamedExpr(e) = &s.projection[0] else { panic!("expr") };
        e.clone()
    }

    /// The top operator and its left operand's kind, as text.
    fn shape(e: &Expr) -> String {
        match e {
            Expr::BinaryOp { left, op, right } => format!("({} {op} {})", shape(left), shape(right)),
            Expr::IsDistinctFrom(l, r) => format!("({} IDF {})", shape(l), shape(r)),
            Expr::IsNotDistinctFrom(l, r) => format!("({} INDF {})", shape(l), shape(r)),
            Expr::Nested(x) => format!("[{}]", shape(x)),
            Expr::Between { expr, low, high, .. } => format!("({} BETWEEN {} {})", shape(expr), shape(low), shape(high)),
            Expr::Like { expr, pattern, .. } => format!("({} LIKE {})", shape(expr), shape(pattern)),
            Expr::InList { expr, .. } => format!("({} IN ..)", shape(expr)),
            Expr::IsTrue(x) => format!("({} IS TRUE)", shape(x)),
            Expr::IsNull(x) => format!("({} IS NULL)", shape(x)),
            Expr::AtTimeZone { timestamp, .. } => format!("({} AT TZ)", shape(timestamp)),
            Expr::Collate { expr, .. } => format!("({} COLLATE)", shape(expr)),
            Expr::UnaryOp { op, expr } => format!("({op} {})", shape(expr)),
            other => other.to_string(),
        }
    }

    #[test]
    fn distinct_from_binds_tighter_than_and_or() {
        assert_eq!(shape(&expr("a is distinct from 'x' and b > 10")), "((a IDF 'x') AND (b > 10))");
        assert_eq!(shape(&expr("a is not distinct from b or c and d")), "((a INDF b) OR (c AND d))");
        assert_eq!(shape(&expr("a is distinct from b and c or d")), "(((a IDF b) AND c) OR d)");
        assert_eq!(shape(&expr("x and a is distinct from null and y")), "((x AND (a IDF NULL)) AND y)");
        assert_eq!(shape(&expr("x and a is distinct from b or y")), "((x AND (a IDF b)) OR y)");
        assert_eq!(shape(&expr("not a is distinct from b and c")), "((NOT (a IDF b)) AND c)");
        assert_eq!(shape(&expr("a is not distinct from b or not c and d")), "((a INDF b) OR ((NOT c) AND d))");
        // Written parentheses and tighter operators keep their meaning.
        assert_eq!(shape(&expr("a is distinct from (b and c)")), "(a IDF [(b AND c)])");
        assert_eq!(shape(&expr("a is distinct from b + 1 and c")), "((a IDF (b + 1)) AND c)");
    }

    #[test]
    fn other_right_operands_do_not_swallow_and() {
        assert_eq!(shape(&expr("a between 1 and 2 and b")), "((a BETWEEN 1 2) AND b)");
        assert_eq!(shape(&expr("a like 'x!%' escape '!' and b")), "((a LIKE 'x!%') AND b)");
        assert_eq!(shape(&expr("a in (1, 2) and b")), "((a IN ..) AND b)");
        assert_eq!(shape(&expr("a is true and b")), "((a IS TRUE) AND b)");
        assert_eq!(shape(&expr("a at time zone 'UTC' = b and c")), "(((a AT TZ) = b) AND c)");
        assert_eq!(shape(&expr("a collate \"C\" = b and c")), "(((a COLLATE) = b) AND c)");
    }

    #[test]
    fn parenthesized_text_reads_back_as_the_same_tree_with_the_buggy_parser() {
        let stmts = parse("select 1 from t where a is distinct from 'x' and b > 10", Dialect::Postgres).unwrap();
        let text = parenthesized(&stmts[0]);
        assert!(text.contains("(a IS DISTINCT FROM 'x') AND b > 10"), "{text}");
        let reparsed = Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, &text).unwrap();
        let Statement::Query(q) = &reparsed[0] else { panic!() };
        let SetExpr::Select(s) = q.body.as_ref() else { panic!() };
        assert_eq!(shape(s.selection.as_ref().unwrap()), "([(a IDF 'x')] AND (b > 10))");
    }
}
