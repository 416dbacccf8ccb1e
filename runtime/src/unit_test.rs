//! Unit test verdicts: the model's rows over its fixtures against the expected
//! rows, compared as multisets, value by value (numbers by value, booleans and
//! timestamps in any of the engines' spellings), with the difference shown.

use dvt_schema::plan::{PlanNode, UnitTestPlan};
use serde_json::Value as Json;

use crate::connectors::{Connection, Rows};

/// Whether an expected value (as written in YAML or CSV) equals a value the engine returned.
pub fn same(expected: &Json, actual: Option<&str>) -> bool {
    let Some(a) = actual else { return expected.is_null() };
    match expected {
        Json::Null => false,
        Json::Bool(b) => bool_eq(*b, a),
        Json::Number(n) => num_eq(&n.to_string(), a),
        Json::String(e) => e == a || bool_of(e).is_some_and(|b| bool_eq(b, a)) || num_eq(e, a) || time_eq(e, a),
        // Lists and mappings compare as their JSON text.
        other => serde_json::to_string(other).is_ok_and(|s| s == a),
    }
}

/// Engines without a boolean type (MySQL, SQLite) return 1 and 0.
fn bool_eq(b: bool, a: &str) -> bool {
    bool_of(a).or(match a {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }) == Some(b)
}

fn bool_of(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" => Some(true),
        "false" | "f" => Some(false),
        _ => None,
    }
}

/// Decimal texts equal by value (`2.5` = `2.50` = `2.500000`); floats by their shortest round trip.
fn num_eq(e: &str, a: &str) -> bool {
    let norm = |s: &str| -> Option<String> {
        let s = s.trim();
        let (sign, digits) = s.strip_prefix('-').map_or(("", s), |d| ("-", d));
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') || digits.matches('.').count() > 1 {
            return None;
        }
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let v = format!("{}{}{}", if int.is_empty() { "0" } else { int }, if frac.is_empty() { "" } else { "." }, frac);
        Some(if v == "0" { v } else { format!("{sign}{v}") })
    };
    match (norm(e), norm(a)) {
        (Some(x), Some(y)) => x == y,
        _ => match (e.trim().parse::<f64>(), a.trim().parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()),
            _ => false,
        },
    }
}

/// Dates and timestamps equal as instants (`2024-01-01` = `2024-01-01 00:00:00`).
fn time_eq(e: &str, a: &str) -> bool {
    fn parse(s: &str) -> Option<chrono::NaiveDateTime> {
        let s = s.trim().trim_end_matches('Z').replace('T', " ");
        let s = s.strip_suffix("+00").or_else(|| s.strip_suffix("+00:00")).unwrap_or(&s).to_string();
        chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .or_else(|| chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
    }
    matches!((parse(e), parse(a)), (Some(x), Some(y)) if x == y)
}

fn show(row: &[Option<String>]) -> String {
    row.iter().map(|v| v.as_deref().unwrap_or("null")).collect::<Vec<_>>().join(" | ")
}

fn show_expected(row: &[Json]) -> String {
    row.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect::<Vec<_>>().join(" | ")
}

/// Runs the unit test on `conn`: ("pass" | "fail", message, number of differing rows).
pub fn run(conn: &mut dyn Connection, node: &PlanNode, unit: &UnitTestPlan, sql: &str) -> Result<(&'static str, String, u64), String> {
    let actual = conn.query(sql)?;
    let (columns, expected): (Vec<String>, Vec<Vec<Json>>) = match &unit.expected_sql {
        Some(q) => {
            let e = conn.query(q)?;
            let rows = e.rows.iter().map(|r| r.iter().map(|v| v.clone().map_or(Json::Null, Json::String)).collect()).collect();
            (e.columns, rows)
        }
        None => (unit.columns.clone(), unit.rows.clone()),
    };
    let actual = reorder(actual, &columns)?;
    // Multiset difference: each expected row consumes one equal actual row.
    let mut unmatched: Vec<&Vec<Option<String>>> = actual.rows.iter().collect();
    let mut missing: Vec<&Vec<Json>> = Vec::new();
    for e in &expected {
        match unmatched.iter().position(|a| a.len() == e.len() && e.iter().zip(a.iter()).all(|(x, y)| same(x, y.as_deref()))) {
            Some(i) => {
                unmatched.swap_remove(i);
            }
            None => missing.push(e),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return Ok(("pass", String::new(), 0));
    }
    let mut msg = format!(
        "unit test `{}` of `{}`: actual differs from expected ({} expected rows not found, {} unexpected rows)\n  columns: {}",
        node.name,
        unit.model,
        missing.len(),
        unmatched.len(),
        columns.join(" | ")
    );
    for e in missing.iter().take(20) {
        msg.push_str(&format!("\n  - expected: {}", show_expected(e)));
    }
    for a in unmatched.iter().take(20) {
        msg.push_str(&format!("\n  + actual:   {}", show(a)));
    }
    Ok(("fail", msg, (missing.len() + unmatched.len()) as u64))
}

/// The actual rows with their columns in the expectation's order (engines may fold case).
fn reorder(actual: Rows, columns: &[String]) -> Result<Rows, String> {
    if columns.is_empty() {
        return Ok(actual);
    }
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            actual
                .columns
                .iter()
                .position(|a| a.eq_ignore_ascii_case(c))
                .ok_or_else(|| format!("the model's result has no column `{c}` (it has: {})", actual.columns.join(", ")))
        })
        .collect::<Result<_, _>>()?;
    let rows = actual.rows.into_iter().map(|r| idx.iter().map(|&i| r.get(i).cloned().flatten()).collect()).collect();
    Ok(Rows { columns: columns.to_vec(), rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_compare_by_meaning() {
        assert!(same(&json!(2.5), Some("2.50")));
        assert!(same(&json!("2.5"), Some("2.5000000000000000")));
        assert!(!same(&json!(2.5), Some("2.51")));
        assert!(same(&json!(true), Some("t")));
        assert!(same(&json!("true"), Some("1")));
        assert!(!same(&json!(false), Some("1")));
        assert!(same(&json!(null), None));
        assert!(!same(&json!(null), Some("")));
        assert!(same(&json!("2024-01-01"), Some("2024-01-01 00:00:00")));
        assert!(same(&json!("-0.0"), Some("0")));
        assert!(!same(&json!("abc"), Some("ABC")));
        assert!(same(&json!(10), Some("10")));
        assert!(!same(&json!(10), Some("100")));
    }
}
