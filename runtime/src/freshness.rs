//! `dvtr source freshness`: for every source table with a `freshness:` config
//! and a `loaded_at_field`, `max(loaded_at_field)` is read on the source's own
//! database (its `connection:`), its age compared with `warn_after` /
//! `error_after`, and the results written to `target/sources.json` in dbt's
//! v3 shape. As dbt: a naive timestamp is UTC, `warn` still exits 0, `error`
//! and runtime errors exit 1.

use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use dvt_compiler::dialect::Dialect;
use dvt_compiler::nodes::Source;
use serde_json::{Value as Json, json};

use crate::connectors::Pool;

/// The outcome for one source table.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    pub unique_id: String,
    pub label: String,
    /// `pass`, `warn`, `error` or `runtime error`.
    pub status: String,
    pub max_loaded_at: Option<DateTime<Utc>>,
    pub snapshotted_at: DateTime<Utc>,
    pub age_s: Option<f64>,
    pub message: Option<String>,
    pub criteria: Json,
    pub execution_time: f64,
}

/// `{count: 12, period: hour}` in seconds.
fn threshold(v: Option<&Json>) -> Option<f64> {
    let v = v?;
    let count = v.get("count")?.as_f64()?;
    let unit = match v.get("period")?.as_str()? {
        "minute" => 60.0,
        "hour" => 3600.0,
        "day" => 86_400.0,
        _ => return None,
    };
    Some(count * unit)
}

/// A timestamp as a database prints it; naive ones are UTC (as dbt assumes).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, f) {
            return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
        }
    }
    None
}

/// Whether a source is checked: it has a freshness rule and a `loaded_at_field`.
pub fn checked(s: &Source) -> bool {
    let f = s.config.get("freshness");
    s.config.get("loaded_at_field").and_then(Json::as_str).is_some()
        && f.is_some_and(|f| threshold(f.get("warn_after")).is_some() || threshold(f.get("error_after")).is_some())
}

/// Checks one source table on its own database.
pub fn check(pool: &Pool, s: &Source, dialect: Dialect) -> Freshness {
    let started = Instant::now();
    let freshness = s.config.get("freshness").cloned().unwrap_or(Json::Null);
    let field = s.config.get("loaded_at_field").and_then(Json::as_str).unwrap_or_default();
    let filter = freshness.get("filter").and_then(Json::as_str);
    let relation = dialect.relation_with(s.database.as_deref(), Some(&s.schema), &s.identifier, s.quote);
    let sql = format!("select max({field}) as max_loaded_at from {relation}{}", filter.map(|f| format!(" where {f}")).unwrap_or_default());
    let criteria = json!({
        "warn_after": freshness.get("warn_after").cloned().unwrap_or(json!({"count": null, "period": null})),
        "error_after": freshness.get("error_after").cloned().unwrap_or(json!({"count": null, "period": null})),
        "filter": filter,
    });
    let result = pool.get(&s.connection).and_then(|mut c| {
        let rows = c.query(&sql)?;
        c.release();
        Ok(rows)
    });
    let snapshotted_at = Utc::now();
    let mut out = Freshness {
        unique_id: s.unique_id.clone(),
        label: format!("{}.{}", s.source_name, s.name),
        status: "runtime error".into(),
        max_loaded_at: None,
        snapshotted_at,
        age_s: None,
        message: None,
        criteria,
        execution_time: 0.0,
    };
    match result {
        Err(e) => out.message = Some(e),
        Ok(rows) => match rows.rows.first().and_then(|r| r.first().cloned().flatten()) {
            None => out.message = Some(format!("`{relation}` has no rows with a `{field}`")),
            Some(text) => match parse_time(&text) {
                None => out.message = Some(format!("`max({field})` is `{text}`, not a timestamp")),
                Some(t) => {
                    let age = (snapshotted_at - t).num_milliseconds() as f64 / 1000.0;
                    let (warn, error) = (threshold(freshness.get("warn_after")), threshold(freshness.get("error_after")));
                    out.status = if error.is_some_and(|e| age > e) {
                        "error"
                    } else if warn.is_some_and(|w| age > w) {
                        "warn"
                    } else {
                        "pass"
                    }
                    .into();
                    out.max_loaded_at = Some(t);
                    out.age_s = Some(age);
                }
            },
        },
    }
    out.execution_time = started.elapsed().as_secs_f64();
    out
}

/// `target/sources.json` (dbt's sources v3).
pub fn sources_json(results: &[Freshness], elapsed: f64) -> Json {
    let ts = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    json!({
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json",
            "dbt_version": dvt_compiler::manifest_dbt::DBT_VERSION,
            "generated_at": ts(&Utc::now()),
            "invocation_id": dvt_compiler::manifest_dbt::invocation_id(),
            "env": {},
        },
        "results": results.iter().map(|r| {
            let mut v = json!({
                "unique_id": r.unique_id,
                "status": r.status,
                "criteria": r.criteria,
                "adapter_response": {},
                "timing": [],
                "thread_id": "Thread-1",
                "execution_time": r.execution_time,
            });
            if r.status == "runtime error" {
                v["error"] = json!(r.message);
            } else {
                v["max_loaded_at"] = json!(r.max_loaded_at.as_ref().map(ts));
                v["snapshotted_at"] = json!(ts(&r.snapshotted_at));
                v["max_loaded_at_time_ago_in_s"] = json!(r.age_s);
            }
            v
        }).collect::<Vec<_>>(),
        "elapsed_time": elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_thresholds_read_as_dbt_does() {
        assert_eq!(parse_time("2025-01-02 03:04:05").unwrap().to_rfc3339(), "2025-01-02T03:04:05+00:00");
        assert_eq!(parse_time("2025-01-02 03:04:05.5+02").unwrap().to_rfc3339(), "2025-01-02T01:04:05.500+00:00");
        assert_eq!(parse_time("2025-01-02").unwrap().to_rfc3339(), "2025-01-02T00:00:00+00:00");
        assert!(parse_time("yesterday").is_none());
        assert_eq!(threshold(Some(&json!({"count": 12, "period": "hour"}))), Some(43_200.0));
        assert_eq!(threshold(Some(&json!({"count": 1, "period": "fortnight"}))), None);
    }
}
