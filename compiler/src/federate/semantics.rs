//! The remainder of a federated model runs in DataFusion, whose functions,
//! operators and casts are not PostgreSQL's, MySQL's, SQLite's or DuckDB's
//! (SPEC §2 rule 10). Every construct left in the remainder is either known to
//! give the model dialect's value and type in DataFusion, translated to a form
//! that does, or refused at compile time — never a silent difference.
//!
//! Known equal: `count`, `sum`, `min`, `max`, `coalesce`, `nullif`, `abs`,
//! `greatest`, `least`, `date_trunc`, ranking and offset window functions,
//! `concat`/`concat_ws` (PostgreSQL, DuckDB: NULLs skipped, as in DataFusion),
//! `length` (not MySQL: bytes there), comparisons, `+ - *`, CASE,
//! IS [NOT] NULL/DISTINCT FROM, IN, BETWEEN, LIKE (PostgreSQL, DuckDB), casts to
//! text, dates, timestamps, booleans and floats.
//! Translated: `IFNULL(a, b)` → `coalesce(a, b)` (MySQL, DuckDB, SQLite); MySQL
//! `IF(c, a, b)` → CASE, `CONCAT`/`GREATEST`/`LEAST` → NULL when any argument is,
//! `a <=> b` → IS NOT DISTINCT FROM; `upper`/`lower` → one-to-one case mapping
//! functions of the dialect (ASCII only in SQLite, `ß` → `ẞ` in DuckDB); SQLite
//! `LIKE` → ASCII-case-insensitive, `concat_ws` skipping empty strings; PostgreSQL
//! `to_char(ts, 'YYYY-MM')` date/time patterns → chrono patterns; `CAST(… AS
//! TIMESTAMP)` → microseconds; ORDER BY without NULLS → the dialect's NULL order.
//! Refused: everything else — e.g. `/` (integer vs decimal division and numeric
//! scale differ), casts to integers or decimals (rounding vs truncation),
//! `to_char`, `avg`, `round`, `DATE_FORMAT`, `DIV`, MySQL `||` and LIKE, SQLite
//! casts to dates, timestamps and booleans, and comparisons with string literals
//! in MySQL (collations ignore case and trailing spaces).
//! What depends on the values' types (numbers printed as text, MariaDB string
//! comparisons on columns) is settled by `dvtr` on the typed plan
//! (`runtime/src/dialect_semantics.rs`).
//! The fix is always the same: compute the expression where its meaning is
//! known (a CTE or model over one source, which runs there whole), or write it
//! in the portable subset.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Ident, ObjectName, OrderBy, OrderByExpr, OrderByKind, Query, TimezoneInfo, Value, VisitorMut, WindowType,
};

use sqlparser::ast::helpers::attached_token::AttachedToken;

use crate::dialect::Dialect;

/// What the check found in one remainder.
#[derive(Debug, Default)]
pub struct Checked {
    /// Constructs with no proven equivalent, described for the error message.
    pub refused: Vec<String>,
    /// Translations applied (the remainder must be re-printed from the tree).
    pub translated: Vec<String>,
}

const PORTABLE: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "coalesce",
    "nullif",
    "abs",
    "upper",
    "lower",
    "greatest",
    "least",
    "date_trunc",
    "row_number",
    "rank",
    "dense_rank",
    "lag",
    "lead",
    "first_value",
    "last_value",
];

/// Checks (and where a translation is proven, rewrites) every expression of `q`
/// (a query or a single expression).
pub fn check<T: sqlparser::ast::VisitMut>(q: &mut T, dialect: Dialect) -> Checked {
    let mut out = Checked::default();
    let mysql = dialect == Dialect::Mysql;
    let _ = sqlparser::ast::visit_expressions_mut(q, |e| {
        match e {
            Expr::Function(f) => {
                let name = f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).unwrap_or_default();
                let args = plain_args(f);
                match name.as_str() {
                    "ifnull" if dialect != Dialect::Postgres && args.as_ref().is_some_and(|a| a.len() == 2) => {
                        f.name = ObjectName::from(vec![Ident::new("coalesce")]);
                        out.translated.push("IFNULL(a, b) → coalesce(a, b)".into());
                    }
                    "greatest" | "least" if mysql && args.is_some() => {
                        // MySQL: NULL when any argument is (DataFusion skips NULLs, as PostgreSQL does).
                        if let Some(cond) = any_null(&args.expect("checked")) {
                            *e = null_when(cond, e.clone());
                            out.translated.push(format!("{}(a, …) → NULL when any argument is NULL (MySQL)", name.to_ascii_uppercase()));
                        }
                    }
                    "upper" | "lower" if args.as_ref().is_some_and(|a| a.len() == 1) => {
                        // Case mapping one character at a time, as the database does it.
                        let udf = match (dialect, name.as_str()) {
                            (Dialect::Sqlite, "upper") => "dvt_ascii_upper",
                            (Dialect::Sqlite, _) => "dvt_ascii_lower",
                            (Dialect::Duckdb, "upper") => "dvt_duckdb_upper",
                            (_, "upper") => "dvt_upper_simple",
                            _ => "dvt_lower_simple",
                        };
                        f.name = ObjectName::from(vec![Ident::new(udf)]);
                        out.translated.push(format!("{name}(s) → {udf}(s) (one-to-one case mapping of {dialect})"));
                    }
                    "concat_ws" if dialect == Dialect::Sqlite && args.as_ref().is_some_and(|a| a.len() >= 2) => {
                        // SQLite's concat_ws skips empty strings as well as NULLs.
                        if let FunctionArguments::List(list) = &mut f.args {
                            for a in list.args.iter_mut().skip(1) {
                                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = a {
                                    *x = call("nullif", vec![cast_text(x.clone()), string("")]);
                                }
                            }
                        }
                        out.translated.push("concat_ws(sep, a, …) → concat_ws(sep, nullif(a, ''), …) (SQLite skips empty strings)".into());
                    }
                    "if" if mysql && args.as_ref().is_some_and(|a| a.len() == 3) => {
                        let a = args.expect("checked");
                        *e = Expr::Case {
                            case_token: AttachedToken::empty(),
                            end_token: AttachedToken::empty(),
                            operand: None,
                            conditions: vec![CaseWhen { condition: a[0].clone(), result: a[1].clone() }],
                            else_result: Some(Box::new(a[2].clone())),
                        };
                        out.translated.push("IF(c, a, b) → CASE WHEN c THEN a ELSE b END".into());
                    }
                    "concat" if mysql && args.is_some() => {
                        if let Some(cond) = any_null(&args.expect("checked")) {
                            *e = null_when(cond, e.clone());
                            out.translated.push("CONCAT(a, …) → NULL when any argument is NULL (MySQL)".into());
                        }
                    }
                    "to_char" if dialect == Dialect::Postgres => match args.as_deref().and_then(chrono_pattern_arg) {
                        Some((pg, chrono)) => {
                            set_second_arg(f, &chrono);
                            out.translated.push(format!("to_char(…, '{pg}') → to_char(…, '{chrono}')"));
                        }
                        None => out.refused.push(
                            "function `to_char` (only date/time patterns of YYYY YY MM DD DDD HH24 HH12 MI SS MS US AM PM Mon Dy FM…)"
                                .into(),
                        ),
                    },
                    "concat" | "concat_ws" if !mysql || name == "concat_ws" => {}
                    "length" if !mysql => {}
                    n if n.starts_with("dvt_") => {}
                    n if PORTABLE.contains(&n) => {}
                    n => out.refused.push(format!("function `{n}`")),
                }
            }
            Expr::Cast { data_type, .. } if !cast_is_exact(data_type) => out.refused.push(format!("cast to `{data_type}`")),
            Expr::Cast { data_type, .. }
                if dialect == Dialect::Sqlite
                    && matches!(
                        data_type,
                        DataType::Date | DataType::Timestamp(..) | DataType::Datetime(_) | DataType::Boolean | DataType::Bool
                    ) =>
            {
                out.refused.push(format!("cast to `{data_type}` (SQLite has no such type: the cast gives a number)"))
            }
            Expr::Cast { data_type, .. } if matches!(data_type, DataType::Timestamp(None, _) | DataType::Datetime(None)) => {
                // Every database keeps microseconds; DataFusion's default nanoseconds end in 1677.
                let tz = match data_type {
                    DataType::Timestamp(_, tz) => *tz,
                    _ => TimezoneInfo::None,
                };
                *data_type = DataType::Timestamp(Some(6), tz);
                out.translated.push("CAST(… AS TIMESTAMP) → TIMESTAMP(6) (microseconds, as the databases keep them)".into());
            }
            Expr::BinaryOp { left, op: BinaryOperator::Spaceship, right } if mysql => {
                *e = Expr::IsNotDistinctFrom(left.clone(), right.clone());
                out.translated.push("a <=> b → a IS NOT DISTINCT FROM b".into());
            }
            Expr::Like { expr, pattern, escape_char, any: false, .. } => match dialect {
                Dialect::Mysql => out.refused.push("LIKE (MariaDB collations ignore case, accents and trailing spaces)".into()),
                Dialect::Sqlite => match pattern.as_ref() {
                    // SQLite's LIKE ignores ASCII case only, and has no escape character by default.
                    Expr::Value(v) if escape_char.is_none() && matches!(&v.value, Value::SingleQuotedString(p) if !p.contains('\\')) => {
                        **expr = call("dvt_ascii_lower", vec![(**expr).clone()]);
                        **pattern = call("dvt_ascii_lower", vec![(**pattern).clone()]);
                        out.translated.push("a LIKE p → dvt_ascii_lower(a) LIKE dvt_ascii_lower(p) (SQLite ignores ASCII case)".into());
                    }
                    _ => out.refused.push("LIKE with a pattern that is not a literal without `\\` (SQLite)".into()),
                },
                _ => {}
            },
            Expr::BinaryOp { op, left, right } => match op {
                BinaryOperator::Divide => out.refused.push("`/` (division)".into()),
                BinaryOperator::MyIntegerDivide | BinaryOperator::Modulo | BinaryOperator::DuckIntegerDivide => {
                    out.refused.push(format!("operator `{op}`"))
                }
                BinaryOperator::StringConcat if mysql => out.refused.push("`||` (OR in MySQL, concatenation in DataFusion)".into()),
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                    if mysql && (is_string(left) || is_string(right)) =>
                {
                    out.refused.push(format!("string comparison `{e}` (MariaDB collations ignore case and trailing spaces)"))
                }
                _ => {}
            },
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    let _ = q.visit(&mut NullOrder { dialect, changed: &mut out.translated });
    out.refused.sort();
    out.refused.dedup();
    out.translated.dedup();
    out
}

/// Spells out where NULLs sort when the SQL does not say: DataFusion puts them
/// last ascending and first descending (as PostgreSQL); MySQL and SQLite put
/// them first ascending, DuckDB last in both directions.
struct NullOrder<'a> {
    dialect: Dialect,
    changed: &'a mut Vec<String>,
}

impl NullOrder<'_> {
    fn fix(&mut self, o: &mut OrderByExpr) {
        if o.options.nulls_first.is_some() {
            return;
        }
        let asc = o.options.asc.unwrap_or(true);
        let first = match self.dialect {
            Dialect::Mysql | Dialect::Sqlite => asc,
            Dialect::Duckdb => false,
            _ => return,
        };
        // DataFusion's default is NULLS FIRST exactly when descending.
        if first == asc {
            o.options.nulls_first = Some(first);
            self.changed.push(format!("ORDER BY without NULLS → NULLS {} ({})", if first { "FIRST" } else { "LAST" }, self.dialect));
        }
    }
}

impl VisitorMut for NullOrder<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let Some(OrderBy { kind: OrderByKind::Expressions(list), .. }) = &mut q.order_by {
            list.iter_mut().for_each(|o| self.fix(o));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(Function { over: Some(WindowType::WindowSpec(spec)), .. }) = e {
            spec.order_by.iter_mut().for_each(|o| self.fix(o));
        }
        ControlFlow::Continue(())
    }
}

fn any_null(args: &[Expr]) -> Option<Expr> {
    args.iter().map(|x| Expr::IsNull(Box::new(x.clone()))).reduce(|l, r| Expr::BinaryOp {
        left: Box::new(l),
        op: BinaryOperator::Or,
        right: Box::new(r),
    })
}

/// `CASE WHEN cond THEN NULL ELSE e END`.
fn null_when(cond: Expr, e: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition: cond, result: Expr::Value(Value::Null.into()) }],
        else_result: Some(Box::new(e)),
    }
}

fn string(s: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(s.into()).into())
}

fn cast_text(e: Expr) -> Expr {
    Expr::Cast { kind: CastKind::Cast, expr: Box::new(e), data_type: DataType::Varchar(None), array: false, format: None }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// The pattern of `to_char(ts, '<pattern>')` in chrono's syntax, if every part of it
/// has an exact equivalent.
fn chrono_pattern_arg(args: &[Expr]) -> Option<(String, String)> {
    let [_, Expr::Value(v)] = args else { return None };
    let Value::SingleQuotedString(p) = &v.value else { return None };
    Some((p.clone(), pg_to_chrono(p)?))
}

/// PostgreSQL `to_char` date/time pattern → chrono format. Only tokens whose output is
/// the same (no padded month/day names, no upper-case names, no ISO weeks); the
/// literal characters `- : / . , _` and space and `"quoted"` text are copied.
pub fn pg_to_chrono(p: &str) -> Option<String> {
    // Longest tokens first; (PostgreSQL, chrono, chrono with FM = no padding).
    const TOKENS: &[(&str, &str, &str)] = &[
        ("HH24", "%H", "%-H"),
        ("HH12", "%I", "%-I"),
        ("YYYY", "%Y", "%Y"),
        ("DDD", "%j", "%-j"),
        ("Mon", "%b", "%b"),
        ("Dy", "%a", "%a"),
        ("YY", "%y", "%y"),
        ("MM", "%m", "%-m"),
        ("DD", "%d", "%-d"),
        ("HH", "%I", "%-I"),
        ("MI", "%M", "%-M"),
        ("SS", "%S", "%-S"),
        ("MS", "%3f", "%3f"),
        ("US", "%6f", "%6f"),
        ("AM", "%p", "%p"),
        ("PM", "%p", "%p"),
    ];
    let mut out = String::new();
    let mut rest = p;
    while !rest.is_empty() {
        let fm = rest.starts_with("FM");
        let body = if fm { &rest[2..] } else { rest };
        if let Some((tok, plain, unpadded)) = TOKENS.iter().find(|(t, _, _)| body.starts_with(t)) {
            out.push_str(if fm { unpadded } else { plain });
            rest = &body[tok.len()..];
            continue;
        }
        if fm {
            return None;
        }
        let c = rest.chars().next()?;
        if c == '"' {
            let end = rest[1..].find('"')?;
            out.push_str(&rest[1..=end].replace('%', "%%"));
            rest = &rest[end + 2..];
            continue;
        }
        if !"-:/., _".contains(c) {
            return None;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

fn set_second_arg(f: &mut Function, text: &str) {
    if let FunctionArguments::List(list) = &mut f.args
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(e))) = list.args.get_mut(1)
    {
        *e = Expr::Value(Value::SingleQuotedString(text.to_string()).into());
    }
}

fn is_string(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)))
}

/// Positional plain arguments of a call (no named arguments, no `*`).
fn plain_args(f: &Function) -> Option<Vec<Expr>> {
    let FunctionArguments::List(list) = &f.args else { return None };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
            _ => None,
        })
        .collect()
}

/// Casts whose result is the same in DataFusion: text, dates, timestamps,
/// booleans, floats. Integers and decimals round in PostgreSQL/MySQL but
/// truncate (or scale differently) in DataFusion.
fn cast_is_exact(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Text
            | DataType::Varchar(_)
            | DataType::CharacterVarying(_)
            | DataType::String(_)
            | DataType::Date
            | DataType::Timestamp(..)
            | DataType::Datetime(_)
            | DataType::Boolean
            | DataType::Bool
            | DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::Float8
            | DataType::Float64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str, d: Dialect) -> (Checked, String) {
        let mut stmts = crate::federate::precedence::parse(sql, d).unwrap();
        let sqlparser::ast::Statement::Query(q) = &mut stmts[0] else { panic!() };
        let c = check(q, d);
        (c, q.to_string())
    }

    #[test]
    fn portable_expressions_pass_untouched() {
        let (c, _) = run(
            "select a.k, count(*), coalesce(max(b.v), 0), abs(a.s) from a join b on a.k = b.k where a.v + 1 > 2 group by a.k, a.s order by a.k",
            Dialect::Postgres,
        );
        assert!(c.refused.is_empty() && c.translated.is_empty(), "{c:?}");
    }

    #[test]
    fn dialect_functions_with_other_meanings_are_refused() {
        let (c, _) = run("select to_char(o.amount, 'FM999990.00'), o.amount / o.q, o.amount::int, avg(o.q) from o", Dialect::Postgres);
        assert_eq!(c.refused.len(), 4, "{c:?}");
        assert!(c.refused.iter().any(|r| r.starts_with("function `to_char`")), "{c:?}");
        let (c, _) = run("select o.q / 7, date_format(o.t, '%Y'), o.s = 'ABC' from o", Dialect::Mysql);
        assert_eq!(c.refused.len(), 3, "{c:?}");
    }

    #[test]
    fn postgres_to_char_date_patterns_become_chrono_patterns() {
        assert_eq!(pg_to_chrono("YYYY-MM").as_deref(), Some("%Y-%m"));
        assert_eq!(pg_to_chrono("YYYY-MM-DD HH24:MI:SS.MS").as_deref(), Some("%Y-%m-%d %H:%M:%S.%3f"));
        assert_eq!(pg_to_chrono("FMDD Mon YYYY \"at\" HH12 AM").as_deref(), Some("%-d %b %Y at %I %p"));
        // Padded or upper-case names, numeric patterns and unknown letters have no exact form.
        for p in ["Month", "MON", "Day", "999990.00", "FM999", "IYYY", "Q"] {
            assert_eq!(pg_to_chrono(p), None, "{p}");
        }
        let (c, sql) = run("select to_char(o.t, 'YYYY-MM') from o", Dialect::Postgres);
        assert!(c.refused.is_empty(), "{c:?}");
        assert!(sql.contains("to_char(o.t, '%Y-%m')"), "{sql}");
    }

    #[test]
    fn mysql_functions_with_a_proven_form_are_translated() {
        let (c, sql) = run("select ifnull(o.a, 0), if(o.b > 1, 'x', 'y'), concat(o.s, o.t) from o", Dialect::Mysql);
        assert!(c.refused.is_empty(), "{c:?}");
        assert_eq!(c.translated.len(), 3);
        assert!(sql.contains("coalesce(o.a, 0)"), "{sql}");
        assert!(sql.contains("CASE WHEN o.b > 1 THEN 'x' ELSE 'y' END"), "{sql}");
        assert!(sql.contains("CASE WHEN o.s IS NULL OR o.t IS NULL THEN NULL ELSE concat(o.s, o.t) END"), "{sql}");
    }

    #[test]
    fn null_order_case_mapping_and_like_follow_the_dialect() {
        let (c, sql) = run("select o.a, rank() over (order by o.b desc) from o order by o.a", Dialect::Mysql);
        assert!(sql.contains("ORDER BY o.b DESC NULLS LAST") && sql.ends_with("ORDER BY o.a NULLS FIRST"), "{sql}");
        assert!(c.refused.is_empty(), "{c:?}");
        let (_, sql) = run("select rank() over (order by o.b desc) from o order by o.a", Dialect::Duckdb);
        assert!(sql.contains("ORDER BY o.b DESC NULLS LAST") && sql.ends_with("ORDER BY o.a"), "{sql}");
        let (_, sql) = run("select rank() over (order by o.b desc) from o order by o.a", Dialect::Postgres);
        assert!(!sql.contains("NULLS"), "{sql}");
        let (c, sql) = run("select upper(o.s), lower(o.s) from o where o.s like 'a%'", Dialect::Sqlite);
        assert!(c.refused.is_empty(), "{c:?}");
        assert!(sql.contains("dvt_ascii_upper(o.s), dvt_ascii_lower(o.s)"), "{sql}");
        assert!(sql.contains("dvt_ascii_lower(o.s) LIKE dvt_ascii_lower('a%')"), "{sql}");
        let (c, _) = run("select o.s from o where o.s like 'a%'", Dialect::Mysql);
        assert_eq!(c.refused.len(), 1, "{c:?}");
        let (c, sql) = run("select greatest(o.a, 3), o.a <=> 7, cast(o.d as timestamp) from o", Dialect::Mysql);
        assert!(c.refused.is_empty(), "{c:?}");
        assert!(sql.contains("CASE WHEN o.a IS NULL OR 3 IS NULL THEN NULL ELSE greatest(o.a, 3) END"), "{sql}");
        assert!(sql.contains("o.a IS NOT DISTINCT FROM 7") && sql.contains("AS TIMESTAMP(6)"), "{sql}");
        let (c, _) = run("select cast(o.d as date) from o", Dialect::Sqlite);
        assert_eq!(c.refused.len(), 1, "{c:?}");
    }
}
