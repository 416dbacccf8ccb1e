//! The model dialect's meaning in the compute (SPEC §3, issue 19). `dvtc`
//! refuses or translates, at compile time, every construct whose meaning it
//! can see in the SQL; what depends on the types of the values — known only
//! once the fragments are read — is settled here, on DataFusion's typed
//! logical plan after its own type coercion:
//!
//! - a number, timestamp or boolean converted to text (explicitly, or by
//!   `concat`/`||` coercion) is printed as the model's database prints it
//!   (PostgreSQL's shortest `1e+15`, DuckDB's `1000000000000000.0`, SQLite's
//!   `%!.15g` and its NUMERIC affinity, MySQL's `1`/`0` booleans) — or the node
//!   fails with the reason where no exact printer exists (MariaDB's doubles and
//!   datetimes, whose text depends on the column's declared precision; zoned
//!   timestamps);
//! - MariaDB compares, groups and joins strings by collation (case-, accent-
//!   and trailing-space-insensitive): a string comparison, grouping, join or
//!   min/max in the remainder of a MariaDB model fails the node instead of
//!   comparing bytes;
//! - MariaDB's `sum` of integers is a decimal;
//! - the unsigned counters of window functions are written as signed integers.
//!
//! The scalar functions `dvtc` translates to (`dvt_upper_simple`,
//! `dvt_ascii_lower`, …) are registered here too.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::logical_expr::expr::{AggregateFunction, Cast, TryCast};
use datafusion::logical_expr::{BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarUDF, Volatility, create_udf};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use dvt_compiler::dialect::Dialect;

/// The model's dialect and what its target database says about text: whether
/// it orders strings byte by byte (PostgreSQL's `C`/`POSIX`/`C.UTF-8`
/// collations; not ICU or a language's collation) and whether it maps case for
/// ASCII only (PostgreSQL with `LC_CTYPE` `C`).
#[derive(Debug, Clone, Copy)]
pub struct Semantics {
    pub dialect: Dialect,
    pub byte_order: bool,
    pub ascii_case: bool,
}

impl Semantics {
    /// The dialect's rules with the default settings of its databases.
    pub fn of(dialect: Dialect) -> Self {
        Semantics { dialect, byte_order: true, ascii_case: dialect == Dialect::Sqlite }
    }

    /// The rules of the database behind `conn` (one catalog query on PostgreSQL).
    pub fn probe(conn: &mut dyn crate::connectors::Connection, dialect: Dialect) -> Result<Self, String> {
        let mut s = Semantics::of(dialect);
        if dialect != Dialect::Postgres {
            return Ok(s);
        }
        let q = "select datcollate, datctype, datlocprovider::text from pg_database where datname = current_database()";
        let rows = conn
            .query(q)
            .or_else(|_| conn.query("select datcollate, datctype, 'c' from pg_database where datname = current_database()"))
            .map_err(|e| format!("reading the target's collation: {e}"))?;
        if let Some([collate, ctype, provider]) = rows.rows.first().map(|r| [0, 1, 2].map(|i| r[i].clone().unwrap_or_default())) {
            let c_like = |l: &str| matches!(l.to_ascii_lowercase().as_str(), "c" | "posix" | "c.utf-8" | "c.utf8" | "ucs_basic");
            s.byte_order = provider == "c" && c_like(&collate);
            s.ascii_case = provider == "c" && matches!(ctype.as_str(), "C" | "POSIX");
        }
        Ok(s)
    }
}

/// Registers the translation functions and the typed rules of `semantics`.
pub fn install(ctx: &SessionContext, semantics: Semantics) {
    for udf in functions() {
        ctx.register_udf(udf);
    }
    if matches!(semantics.dialect, Dialect::Postgres | Dialect::Mysql | Dialect::Duckdb | Dialect::Sqlite) {
        ctx.add_analyzer_rule(Arc::new(DialectRule { semantics }));
    }
}

fn string_fn(name: &str, f: fn(&str) -> String) -> ScalarUDF {
    create_udf(
        name,
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let a = arrays[0].as_string::<i32>();
            let out: StringArray = a.iter().map(|v| v.map(f)).collect();
            let out: ArrayRef = Arc::new(out);
            Ok(if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
            } else {
                ColumnarValue::Array(out)
            })
        }),
    )
}

/// A text printer of one Arrow type.
fn printer(name: &str, input: DataType, f: fn(&dyn Array, usize) -> Option<String>) -> ScalarUDF {
    create_udf(
        name,
        vec![input],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let a = arrays[0].as_ref();
            let out: StringArray = (0..a.len()).map(|i| if a.is_null(i) { None } else { f(a, i) }).collect();
            let out: ArrayRef = Arc::new(out);
            Ok(if matches!(args[0], ColumnarValue::Scalar(_)) {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&out, 0)?)
            } else {
                ColumnarValue::Array(out)
            })
        }),
    )
}

fn functions() -> Vec<ScalarUDF> {
    vec![
        string_fn("dvt_upper_simple", |s| s.chars().map(|c| simple(c, true)).collect()),
        string_fn("dvt_lower_simple", |s| s.chars().map(|c| simple(c, false)).collect()),
        string_fn("dvt_duckdb_upper", |s| s.chars().map(|c| if c == 'ß' { 'ẞ' } else { simple(c, true) }).collect()),
        string_fn("dvt_ascii_upper", |s| s.to_ascii_uppercase()),
        string_fn("dvt_ascii_lower", |s| s.to_ascii_lowercase()),
        printer("dvt_text_float_postgres", DataType::Float64, |a, i| {
            Some(float_text(a.as_primitive::<Float64Type>().value(i), Style::Postgres))
        }),
        printer("dvt_text_float_duckdb", DataType::Float64, |a, i| {
            Some(float_text(a.as_primitive::<Float64Type>().value(i), Style::Python))
        }),
        printer("dvt_text_float_sqlite", DataType::Float64, |a, i| Some(sqlite_real(a.as_primitive::<Float64Type>().value(i)))),
        printer("dvt_text_timestamp", DataType::Timestamp(TimeUnit::Microsecond, None), |a, i| {
            timestamp_text(a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>().value(i))
        }),
        printer("dvt_text_bool_digit", DataType::Boolean, |a, i| Some(if a.as_boolean().value(i) { "1" } else { "0" }.into())),
        printer("dvt_text_sqlite_numeric", DataType::Utf8, |a, i| Some(sqlite_numeric(a.as_string::<i32>().value(i)))),
    ]
}

/// A character's simple (one-to-one) case mapping, as C's `towupper`/`towlower`
/// and MariaDB's case tables do it: a character whose full mapping is several
/// characters (`ß` → `SS`) stays as it is; `İ` lowers to `i`.
fn simple(c: char, upper: bool) -> char {
    if !upper && c == 'İ' {
        return 'i';
    }
    let mut m: Box<dyn Iterator<Item = char>> = if upper { Box::new(c.to_uppercase()) } else { Box::new(c.to_lowercase()) };
    match (m.next(), m.next()) {
        (Some(one), None) => one,
        _ => c,
    }
}

#[derive(Clone, Copy)]
enum Style {
    /// PostgreSQL's `float8out`: shortest digits, exponent form below 1e-4 and from 1e15.
    Postgres,
    /// DuckDB (Python's `repr`): shortest digits, exponent form below 1e-4 and from
    /// 1e16, integral values with `.0`.
    Python,
}

/// Shortest round-trip digits and the decimal exponent of the first digit.
fn shortest(v: f64) -> (String, i32) {
    let e = format!("{:e}", v.abs());
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    (mantissa.replace('.', ""), exp.parse().expect("exponent"))
}

fn float_text(v: f64, style: Style) -> String {
    if v.is_nan() {
        return match style {
            Style::Postgres => "NaN",
            Style::Python => "nan",
        }
        .into();
    }
    if v.is_infinite() {
        let s = match style {
            Style::Postgres => "Infinity",
            Style::Python => "inf",
        };
        return if v < 0.0 { format!("-{s}") } else { s.into() };
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!(
            "{sign}{}",
            match style {
                Style::Postgres => "0",
                Style::Python => "0.0",
            }
        );
    }
    let (digits, exp) = shortest(v);
    let upper = match style {
        Style::Postgres => 15,
        Style::Python => 16,
    };
    if exp < -4 || exp >= upper {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        return format!("{sign}{first}{frac}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let fixed = fixed(&digits, exp);
    match style {
        Style::Python if !fixed.contains('.') => format!("{sign}{fixed}.0"),
        _ => format!("{sign}{fixed}"),
    }
}

/// Digits `d1d2d3…` × 10^(exp) in positional notation.
fn fixed(digits: &str, exp: i32) -> String {
    if exp < 0 {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else if (exp as usize) + 1 >= digits.len() {
        format!("{digits}{}", "0".repeat(exp as usize + 1 - digits.len()))
    } else {
        let (a, b) = digits.split_at(exp as usize + 1);
        format!("{a}.{b}")
    }
}

/// SQLite's text of a REAL: `printf('%!.15g')` — 15 significant digits, trailing
/// zeros dropped but a `.0` kept, exponent form below 1e-4 and from 1e15.
fn sqlite_real(v: f64) -> String {
    if v.is_infinite() {
        return if v < 0.0 { "-Inf" } else { "Inf" }.into();
    }
    if v == 0.0 {
        return "0.0".into();
    }
    let e = format!("{:.14e}", v.abs());
    let (mantissa, exp) = e.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    let digits = mantissa.replace('.', "");
    let digits = digits.trim_end_matches('0');
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..15).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        return format!("{sign}{first}.{rest}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let f = fixed(digits, exp);
    if f.contains('.') { format!("{sign}{f}") } else { format!("{sign}{f}.0") }
}

/// A decimal as SQLite holds it under NUMERIC affinity: an integer when it is
/// integral, otherwise a REAL.
fn sqlite_numeric(text: &str) -> String {
    let t = text.trim();
    if let Some((int, frac)) = t.split_once('.')
        && frac.bytes().all(|b| b == b'0')
        && let Ok(i) = int.parse::<i64>()
    {
        return i.to_string();
    }
    match t.parse::<i64>() {
        Ok(i) => i.to_string(),
        Err(_) => t.parse::<f64>().map(sqlite_real).unwrap_or_else(|_| t.to_string()),
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped,
/// as PostgreSQL, DuckDB and DVT's SQLite writer print timestamps.
fn timestamp_text(micros: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let base = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = micros.rem_euclid(1_000_000);
    Some(if frac == 0 { base } else { format!("{base}.{}", format!("{frac:06}").trim_end_matches('0')) })
}

#[derive(Debug)]
struct DialectRule {
    semantics: Semantics,
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn refuse(what: &str, dialect: Dialect) -> DataFusionError {
    DataFusionError::Plan(format!(
        "error[DVT163] {what} in the remainder of a {} model has no exact equivalent in the compute; \
         compute it where the data lives (a CTE or model over a single source) or write it portably",
        dialect.name()
    ))
}

impl DialectRule {
    fn call(&self, name: &str, arg: Expr) -> Expr {
        let udf = functions().into_iter().find(|f| f.name() == name).expect("registered");
        Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(Arc::new(udf), vec![arg]))
    }

    /// A conversion of `inner` (of type `from`) to text, printed as the model's database prints it.
    fn to_text(&self, inner: Expr, from: &DataType) -> Result<Option<Expr>> {
        let d = self.semantics.dialect;
        let cast = |e: Expr, t: DataType| Expr::Cast(Cast::new(Box::new(e), t));
        Ok(Some(match (from, d) {
            (DataType::Float16 | DataType::Float32 | DataType::Float64, Dialect::Mysql) => {
                return Err(refuse("a floating-point number converted to text (MariaDB prints doubles its own way)", d));
            }
            (DataType::Float16 | DataType::Float32 | DataType::Float64, _) => {
                let name = match d {
                    Dialect::Postgres => "dvt_text_float_postgres",
                    Dialect::Duckdb => "dvt_text_float_duckdb",
                    _ => "dvt_text_float_sqlite",
                };
                self.call(name, cast(inner, DataType::Float64))
            }
            (DataType::Timestamp(_, Some(_)), _) => {
                return Err(refuse("a timestamp with time zone converted to text (printed in the session's zone)", d));
            }
            (DataType::Timestamp(_, None), Dialect::Mysql) => {
                return Err(refuse("a datetime converted to text (MariaDB prints as many fractional digits as the column declares)", d));
            }
            (DataType::Timestamp(_, None), _) => {
                self.call("dvt_text_timestamp", cast(inner, DataType::Timestamp(TimeUnit::Microsecond, None)))
            }
            (DataType::Boolean, Dialect::Mysql | Dialect::Sqlite) => self.call("dvt_text_bool_digit", inner),
            (DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..), Dialect::Sqlite) => {
                self.call("dvt_text_sqlite_numeric", cast(inner, DataType::Utf8))
            }
            _ => return Ok(None),
        }))
    }

    fn rewrite(&self, e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
        let (inner, to, try_) = match &e {
            Expr::Cast(Cast { expr, field }) => (expr.as_ref().clone(), field.data_type().clone(), false),
            Expr::TryCast(TryCast { expr, field }) => (expr.as_ref().clone(), field.data_type().clone(), true),
            Expr::ScalarFunction(f) if self.semantics.ascii_case && matches!(f.name(), "dvt_upper_simple" | "dvt_lower_simple") => {
                // LC_CTYPE C: PostgreSQL maps the case of ASCII letters only.
                let name = if f.name() == "dvt_upper_simple" { "dvt_ascii_upper" } else { "dvt_ascii_lower" };
                return Ok(Transformed::yes(self.call(name, f.args[0].clone())));
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right })
                if self.semantics.dialect == Dialect::Postgres
                    && !self.semantics.byte_order
                    && matches!(op, Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) =>
            {
                if is_string(&left.get_type(schema)?) && is_string(&right.get_type(schema)?) {
                    return Err(refuse(
                        &format!("the string ordering `{e}` (the target database's collation is not byte order)"),
                        self.semantics.dialect,
                    ));
                }
                return Ok(Transformed::no(e));
            }
            Expr::AggregateFunction(AggregateFunction { func, params })
                if self.semantics.dialect == Dialect::Postgres
                    && !self.semantics.byte_order
                    && matches!(func.name(), "min" | "max")
                    && params.args.first().map(|a| a.get_type(schema)).transpose()?.is_some_and(|t| is_string(&t)) =>
            {
                return Err(refuse(
                    &format!("`{}` of strings (the target database's collation is not byte order)", func.name()),
                    self.semantics.dialect,
                ));
            }
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if self.semantics.dialect == Dialect::Mysql && op_compares(op) => {
                if is_string(&left.get_type(schema)?) && is_string(&right.get_type(schema)?) {
                    return Err(refuse(
                        &format!("the string comparison `{e}` (MariaDB collations ignore case, accents and trailing spaces)"),
                        self.semantics.dialect,
                    ));
                }
                return Ok(Transformed::no(e));
            }
            Expr::AggregateFunction(AggregateFunction { func, params }) if self.semantics.dialect == Dialect::Mysql => {
                let name = func.name();
                if let Some(arg) = params.args.first() {
                    let t = arg.get_type(schema)?;
                    if matches!(name, "min" | "max") && is_string(&t) {
                        return Err(refuse(&format!("`{name}` of strings (MariaDB orders strings by collation)"), self.semantics.dialect));
                    }
                    if name == "sum" && t.is_integer() {
                        // MariaDB sums integers exactly, as a decimal.
                        let mut f = AggregateFunction { func: func.clone(), params: params.clone() };
                        f.params.args[0] = Expr::Cast(Cast::new(Box::new(arg.clone()), DataType::Decimal128(22, 0)));
                        return Ok(Transformed::yes(Expr::AggregateFunction(f)));
                    }
                }
                return Ok(Transformed::no(e));
            }
            _ => return Ok(Transformed::no(e)),
        };
        if !is_string(&to) {
            return Ok(Transformed::no(e));
        }
        let from = inner.get_type(schema)?;
        match self.to_text(inner, &from)? {
            Some(text) if try_ => Ok(Transformed::yes(Expr::TryCast(TryCast::new(Box::new(text), to)))),
            Some(text) => Ok(Transformed::yes(Expr::Cast(Cast::new(Box::new(text), to)))),
            None => Ok(Transformed::no(e)),
        }
    }

    /// Grouping and joining by strings in a MariaDB model; ordering strings where
    /// the order is not the bytes'.
    fn check_node(&self, node: &LogicalPlan) -> Result<()> {
        if self.semantics.dialect == Dialect::Postgres && !self.semantics.byte_order {
            let by_strings = |exprs: &mut dyn Iterator<Item = &Expr>, schema: &DFSchema| -> Result<bool> {
                for e in exprs {
                    if is_string(&e.get_type(schema)?) {
                        return Ok(true);
                    }
                }
                Ok(false)
            };
            let ordered = match node {
                // A final ORDER BY does not change a table's rows; with a LIMIT it picks them.
                LogicalPlan::Sort(s) if s.fetch.is_some() => by_strings(&mut s.expr.iter().map(|x| &x.expr), s.input.schema())?,
                LogicalPlan::Window(w) => {
                    let mut keys = Vec::new();
                    for e in &w.window_expr {
                        if let Expr::WindowFunction(f) = e.clone().unalias() {
                            keys.extend(f.params.order_by.iter().map(|s| s.expr.clone()));
                        }
                    }
                    by_strings(&mut keys.iter(), w.input.schema())?
                }
                _ => false,
            };
            if ordered {
                return Err(refuse("ordering by strings (the target database's collation is not byte order)", self.semantics.dialect));
            }
        }
        if self.semantics.dialect != Dialect::Mysql {
            return Ok(());
        }
        let string_keys = |exprs: &[&Expr], schema: &DFSchema| -> Result<bool> {
            for e in exprs {
                if is_string(&e.get_type(schema)?) {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        match node {
            LogicalPlan::Aggregate(a) => {
                let keys: Vec<&Expr> = a.group_expr.iter().collect();
                if string_keys(&keys, a.input.schema())? {
                    return Err(refuse("grouping by strings (MariaDB groups strings by collation)", self.semantics.dialect));
                }
            }
            LogicalPlan::Join(j) => {
                let left: Vec<&Expr> = j.on.iter().map(|(l, _)| l).collect();
                if string_keys(&left, j.left.schema())? {
                    return Err(refuse("a join on strings (MariaDB compares strings by collation)", self.semantics.dialect));
                }
            }
            LogicalPlan::Distinct(d) if d.input().schema().fields().iter().any(|f| is_string(f.data_type())) => {
                return Err(refuse("DISTINCT over strings (MariaDB compares strings by collation)", self.semantics.dialect));
            }
            _ => {}
        }
        Ok(())
    }
}

fn op_compares(op: &Operator) -> bool {
    matches!(op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq)
}

/// The columns a node's expressions see: a join's both sides, otherwise its
/// (first) input's. Nodes with several inputs and no expressions (unions) see none.
fn input_schema(node: &LogicalPlan) -> Result<DFSchema> {
    match node {
        LogicalPlan::Join(j) => j.left.schema().join(j.right.schema()),
        LogicalPlan::Union(_) => Ok(DFSchema::empty()),
        _ => Ok(node.inputs().first().map(|i| i.schema().as_ref().clone()).unwrap_or_else(DFSchema::empty)),
    }
}

impl AnalyzerRule for DialectRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            self.check_node(&node)?;
            if matches!(node, LogicalPlan::TableScan(_) | LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_)) {
                return Ok(Transformed::no(node));
            }
            let schema = input_schema(&node)?;
            let t = node.map_expressions(|e| e.transform_up(|e| self.rewrite(e, &schema)))?;
            // A rewritten input may have changed a type this node passes on.
            Ok(Transformed::new(t.data.recompute_schema()?, t.transformed, t.tnr))
        })
        .data()
    }

    fn name(&self) -> &str {
        "dvt_dialect_semantics"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_each_database_prints_them() {
        for (v, pg, duck, lite) in [
            (0.1, "0.1", "0.1", "0.1"),
            (1e15, "1e+15", "1000000000000000.0", "1.0e+15"),
            (1e300, "1e+300", "1e+300", "1.0e+300"),
            (-0.000001, "-1e-06", "-1e-06", "-1.0e-06"),
            (0.0001, "0.0001", "0.0001", "0.0001"),
            (1.0 / 3.0, "0.3333333333333333", "0.3333333333333333", "0.333333333333333"),
            (123456789.125, "123456789.125", "123456789.125", "123456789.125"),
            (-2.5, "-2.5", "-2.5", "-2.5"),
            (2.0, "2", "2.0", "2.0"),
            (1e16, "1e+16", "1e+16", "1.0e+16"),
            (f64::INFINITY, "Infinity", "inf", "Inf"),
        ] {
            assert_eq!(float_text(v, Style::Postgres), pg, "{v}");
            assert_eq!(float_text(v, Style::Python), duck, "{v}");
            assert_eq!(sqlite_real(v), lite, "{v}");
        }
        assert_eq!(sqlite_numeric("220.50"), "220.5");
        assert_eq!(sqlite_numeric("0.00"), "0");
        assert_eq!(sqlite_numeric("-3.00"), "-3");
    }

    #[test]
    fn case_mappings_are_one_to_one() {
        let up = |s: &str| s.chars().map(|c| simple(c, true)).collect::<String>();
        assert_eq!(up("straße ünï"), "STRAßE ÜNÏ");
        assert_eq!("İ".chars().map(|c| simple(c, false)).collect::<String>(), "i");
        assert_eq!(timestamp_text(-500_000).unwrap(), "1969-12-31 23:59:59.5");
        assert_eq!(timestamp_text(1).unwrap(), "1970-01-01 00:00:00.000001");
    }
}
