//! Microbatch models (dbt ≥ 1.9, `incremental_strategy: microbatch`): the
//! window a run rebuilds, written into the node's SQL where `dvtc` left its
//! bounds. A full build covers `begin` up to the end of the current batch; an
//! incremental run the current batch and `lookback` batches before it (or the
//! window `--event-time-start`/`--event-time-end` give). The window's rows of
//! the target are replaced in one transaction (delete + insert by
//! `event_time`), with every upstream that has an `event_time` read through
//! the same window — the result of dbt's batch-by-batch run, in one statement.

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime, Timelike};
use dvt_schema::plan::{MICROBATCH_END, MICROBATCH_START, MicrobatchPlan, PlanNode, Statement};

/// `[start, end)`, UTC.
pub type Window = (NaiveDateTime, NaiveDateTime);

/// The start of the batch `t` falls in.
fn truncate(t: NaiveDateTime, size: &str) -> NaiveDateTime {
    let d = t.date();
    match size {
        "hour" => d.and_hms_opt(t.hour(), 0, 0),
        "day" => d.and_hms_opt(0, 0, 0),
        "month" => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).and_then(|d| d.and_hms_opt(0, 0, 0)),
        _ => NaiveDate::from_ymd_opt(d.year(), 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)),
    }
    .unwrap_or(t)
}

/// `t` moved by `n` batches (negative: back).
fn shift(t: NaiveDateTime, size: &str, n: i64) -> NaiveDateTime {
    let months = |m: i64| {
        let by = Months::new(m.unsigned_abs() as u32);
        if m >= 0 { t.checked_add_months(by) } else { t.checked_sub_months(by) }
    };
    match size {
        "hour" => Some(t + Duration::hours(n)),
        "day" => Some(t + Duration::days(n)),
        "month" => months(n),
        _ => months(12 * n),
    }
    .unwrap_or(t)
}

/// The windows of a run at `now`: the full build's and the incremental run's
/// (`given` overrides both, as dbt's `--event-time-start/--event-time-end`).
pub fn windows(mb: &MicrobatchPlan, now: NaiveDateTime, given: Option<Window>) -> Result<(Window, Window), String> {
    if let Some(w) = given {
        return Ok((w, w));
    }
    let begin =
        NaiveDateTime::parse_from_str(&mb.begin, "%Y-%m-%d %H:%M:%S").map_err(|e| format!("microbatch `begin: {}`: {e}", mb.begin))?;
    let current = truncate(now, &mb.batch_size);
    let end = shift(current, &mb.batch_size, 1);
    let start = shift(current, &mb.batch_size, -i64::from(mb.lookback));
    let full = (truncate(begin, &mb.batch_size), end);
    Ok((full, (start.max(full.0), end)))
}

fn text(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A window as the node's message shows it.
pub fn describe(w: Window) -> String {
    format!("[{}, {})", text(w.0), text(w.1))
}

/// `sql` with the window's bounds where the plan left them.
pub fn bind_text(sql: &str, w: Window) -> String {
    sql.replace(MICROBATCH_START, &text(w.0)).replace(MICROBATCH_END, &text(w.1))
}

fn bind_statements(stmts: &mut [Statement], w: Window) {
    for st in stmts {
        st.sql = bind_text(&st.sql, w);
    }
}

/// `node` with its windows written in: the full build's into its full-refresh
/// statements, the incremental run's into its incremental ones (a federated
/// node's are written in when it knows which it runs: see `federation::run`).
pub fn bind(node: &PlanNode, full: Window, incremental: Window) -> PlanNode {
    let mut node = node.clone();
    if let Some(p) = node.pushdown.as_mut() {
        bind_statements(&mut p.full_refresh, full);
        if let Some(inc) = p.incremental.as_mut() {
            bind_statements(inc, incremental);
        }
    }
    node
}

/// A `--event-time-start`/`--event-time-end` value: a date or a timestamp.
pub fn parse_bound(v: &str) -> Result<NaiveDateTime, String> {
    let v = v.trim().replace('T', " ");
    NaiveDateTime::parse_from_str(v.trim_end_matches('Z'), "%Y-%m-%d %H:%M:%S")
        .ok()
        .or_else(|| NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
        .ok_or_else(|| format!("`{v}` is not a date (2024-01-31) or a timestamp (2024-01-31 06:00:00)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        parse_bound(s).unwrap()
    }

    fn plan(size: &str, begin: &str, lookback: u32) -> MicrobatchPlan {
        MicrobatchPlan { event_time: "ts".into(), batch_size: size.into(), begin: begin.into(), lookback }
    }

    #[test]
    fn windows_follow_dbt_batches() {
        let now = at("2024-03-15 13:45:10");
        let (full, inc) = windows(&plan("day", "2024-01-01 00:00:00", 1), now, None).unwrap();
        assert_eq!((full, inc), ((at("2024-01-01"), at("2024-03-16")), (at("2024-03-14"), at("2024-03-16"))));
        let (full, inc) = windows(&plan("hour", "2024-03-15 06:30:00", 2), now, None).unwrap();
        assert_eq!(
            (full, inc),
            ((at("2024-03-15 06:00:00"), at("2024-03-15 14:00:00")), (at("2024-03-15 11:00:00"), at("2024-03-15 14:00:00")))
        );
        let (full, inc) = windows(&plan("month", "2023-11-20 00:00:00", 3), now, None).unwrap();
        assert_eq!((full, inc), ((at("2023-11-01"), at("2024-04-01")), (at("2023-12-01"), at("2024-04-01"))));
        let (_, inc) = windows(&plan("year", "2020-01-01 00:00:00", 0), now, None).unwrap();
        assert_eq!(inc, (at("2024-01-01"), at("2025-01-01")));
        // The lookback never reaches before `begin`.
        let (_, inc) = windows(&plan("day", "2024-03-15 00:00:00", 5), now, None).unwrap();
        assert_eq!(inc.0, at("2024-03-15"));
        let given = (at("2024-02-01"), at("2024-02-03"));
        assert_eq!(windows(&plan("day", "2024-01-01 00:00:00", 1), now, Some(given)).unwrap(), (given, given));
        assert!(parse_bound("yesterday").is_err());
    }
}
