//! Pushdown statements for each materialization, in the target's dialect.
//!
//! Every path is written so that a failure leaves the target as it was
//! (SPEC §4): new data goes into a staging relation first; only when it is
//! complete is it swapped in (atomic DDL where the engine has it) or copied in
//! with delete + insert inside one transaction, which keeps grants and
//! dependent views. `dvtr` runs `begin`/`commit` statements as transaction
//! boundaries and checks the staging columns against the target before
//! `replace`/`incremental` swaps (a changed column set errors unless
//! `--full-refresh` or `on_schema_change` says otherwise). Of a
//! `drop_target_table`/`drop_target_view` pair, `dvtr` runs the one that
//! matches what the catalog holds (engines refuse `DROP TABLE` on a view).

use dvt_schema::plan::{Contract, RelationRef, Statement, WriteStrategy};
use serde_json::Value as Json;

use crate::config::{Config, ConfigExt};
use crate::dialect::{Dialect, LogicalType, SqlDialect};
use crate::error::{DvtError, ErrorCode, Location, Result};

fn st(kind: &str, sql: impl Into<String>) -> Statement {
    Statement { kind: kind.to_string(), sql: sql.into() }
}

/// A sibling relation with a suffix (staging, backup).
pub fn sibling(dialect: Dialect, r: &RelationRef, suffix: &str) -> (String, String) {
    let ident = format!("{}{suffix}", r.identifier);
    (dialect.relation(r.database.as_deref(), r.schema.as_deref(), &ident), ident)
}

/// The three renderings of a pushdown node.
pub struct Statements {
    pub full_refresh: Vec<Statement>,
    pub incremental: Option<Vec<Statement>>,
    pub replace: Option<Vec<Statement>>,
    pub write: Option<WriteStrategy>,
}

fn schema_stmt(sql: &dyn SqlDialect, r: &RelationRef) -> Option<Statement> {
    r.schema.as_deref().and_then(|s| sql.create_schema(r.database.as_deref(), s)).map(|s| st("create_schema", s))
}

/// Fills a new staging table with `select`: `create table … as`, or with an enforced
/// contract, the declared columns checked, then created typed with their constraints
/// and filled by name.
fn fill_staging(dialect: Dialect, stage: &str, select: &str, contract: Option<&Contract>) -> Vec<Statement> {
    match contract {
        None => vec![st("create_staging", dialect.sql().create_table_as(stage, select))],
        Some(c) => vec![
            st("check_contract", super::contract::probe_sql(select)),
            st("create_staging", super::contract::create_table(dialect, stage, c)),
            st("insert_staging", super::contract::insert_select(dialect, stage, c, select)),
        ],
    }
}

/// Build into a staging table, then swap it in.
fn build_and_swap(dialect: Dialect, r: &RelationRef, select: &str, contract: Option<&Contract>, out: &mut Vec<Statement>) {
    let sql = dialect.sql();
    let (stage, _) = sibling(dialect, r, "__dvt_tmp");
    out.push(st("drop_staging", sql.drop_table(&stage)));
    out.extend(fill_staging(dialect, &stage, select, contract));
    swap_in(dialect, r, &stage, out);
}

fn swap_in(dialect: Dialect, r: &RelationRef, stage: &str, out: &mut Vec<Statement>) {
    let sql = dialect.sql();
    if sql.transactional_ddl() {
        out.push(st("begin", "begin"));
        out.push(st("drop_target_table", sql.drop_table(&r.rendered)));
        out.push(st("drop_target_view", sql.drop_view(&r.rendered)));
        out.push(st("swap", sql.rename_table(stage, &r.identifier)));
        out.push(st("commit", "commit"));
    } else {
        // MySQL: DDL commits implicitly; the data is complete in the staging table before the old one goes.
        out.push(st("drop_target_table", sql.drop_table(&r.rendered)));
        out.push(st("drop_target_view", sql.drop_view(&r.rendered)));
        out.push(st("swap", sql.rename_table(stage, &r.identifier)));
    }
}

/// Rows of an existing table replaced in one transaction (grants, dependent views survive).
fn replace_rows(dialect: Dialect, r: &RelationRef, select: &str, contract: Option<&Contract>) -> Vec<Statement> {
    let sql = dialect.sql();
    let (stage, _) = sibling(dialect, r, "__dvt_tmp");
    let mut out = vec![st("drop_staging", sql.drop_table(&stage))];
    out.extend(fill_staging(dialect, &stage, select, contract));
    out.extend([
        st("check_columns", format!("-- dvtr compares the columns of {stage} with {}", r.rendered)),
        st("begin", "begin"),
        st("delete", sql.delete_all(&r.rendered)),
        st("insert", sql.insert_select(&r.rendered, &stage)),
        st("commit", "commit"),
        st("drop_staging", sql.drop_table(&stage)),
    ]);
    out
}

fn unique_key(cfg: &Config) -> Vec<String> {
    match cfg.get("unique_key") {
        Some(Json::String(s)) => s.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect(),
        Some(Json::Array(a)) => a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

/// `view` (an enforced contract checks its columns; views take no constraints).
pub fn view(dialect: Dialect, r: &RelationRef, select: &str, contract: Option<&Contract>) -> Statements {
    let sql = dialect.sql();
    let probe = contract.map(|_| st("check_contract", super::contract::probe_sql(select)));
    let mut full: Vec<Statement> = probe.iter().cloned().collect();
    full.extend(schema_stmt(sql, r));
    let tx = sql.transactional_ddl();
    if tx {
        full.push(st("begin", "begin"));
    }
    full.push(st("drop_target_table", sql.drop_table(&r.rendered)));
    let replace = sql.replace_view(&r.rendered, select);
    // A full refresh may change the columns, which CREATE OR REPLACE refuses: drop first.
    if !replace[0].starts_with("drop") {
        full.push(st("drop_target_view", sql.drop_view(&r.rendered)));
    }
    for s in replace {
        full.push(st(if s.starts_with("drop") { "drop_target_view" } else { "create_view" }, s));
    }
    if tx {
        full.push(st("commit", "commit"));
    }
    Statements {
        full_refresh: full,
        incremental: None,
        replace: Some(
            probe
                .into_iter()
                .chain(
                    sql.replace_view(&r.rendered, select)
                        .into_iter()
                        .map(|s| st(if s.starts_with("drop") { "drop_target_view" } else { "create_view" }, s)),
                )
                .collect(),
        ),
        write: Some(WriteStrategy {
            strategy: "view".into(),
            unique_key: vec![],
            on_schema_change: "ignore".into(),
            this_subqueries: vec![],
        }),
    }
}

/// `table`.
pub fn table(dialect: Dialect, r: &RelationRef, select: &str, contract: Option<&Contract>) -> Statements {
    let mut full = Vec::new();
    full.extend(schema_stmt(dialect.sql(), r));
    build_and_swap(dialect, r, select, contract, &mut full);
    Statements {
        full_refresh: full,
        incremental: None,
        replace: Some(replace_rows(dialect, r, select, contract)),
        write: Some(WriteStrategy {
            strategy: "replace".into(),
            unique_key: vec![],
            on_schema_change: "fail".into(),
            this_subqueries: vec![],
        }),
    }
}

/// `incremental`: the full rendering builds the table; the incremental one adds to it.
pub fn incremental(
    dialect: Dialect,
    r: &RelationRef,
    full_select: &str,
    incr_select: &str,
    cfg: &Config,
    file: &str,
    contract: Option<&Contract>,
) -> Result<Statements> {
    let sql = dialect.sql();
    let keys = unique_key(cfg);
    let default_strategy = if keys.is_empty() { "append" } else { "merge" };
    let strategy = cfg.str("incremental_strategy").unwrap_or(default_strategy).to_string();
    let on_schema_change = cfg.str("on_schema_change").unwrap_or("ignore").to_string();
    if !["ignore", "fail", "append_new_columns", "sync_all_columns"].contains(&on_schema_change.as_str()) {
        return Err(DvtError::new(
            ErrorCode::ConfigInvalid,
            format!("on_schema_change `{on_schema_change}` is not one of ignore, fail, append_new_columns, sync_all_columns"),
        )
        .at(Location::file(file)));
    }
    let mut full = Vec::new();
    full.extend(schema_stmt(sql, r));
    build_and_swap(dialect, r, full_select, contract, &mut full);
    let (stage, _) = sibling(dialect, r, "__dvt_incr");
    let mut inc = vec![st("drop_staging", sql.drop_table(&stage))];
    inc.extend(fill_staging(dialect, &stage, incr_select, contract));
    inc.push(st(
        "check_columns",
        format!("-- dvtr compares the columns of {stage} with {} (on_schema_change: {on_schema_change})", r.rendered),
    ));
    match strategy.as_str() {
        "append" | "merge" | "delete+insert" => match apply_staged(dialect, r, &stage, &strategy, &keys) {
            Ok(stmts) => inc.extend(stmts),
            Err(e) => {
                return Err(DvtError::new(ErrorCode::ConfigInvalid, e)
                    .at(Location::file(file))
                    .hint("set unique_key in config(), or use incremental_strategy='append'"));
            }
        },
        "microbatch" => inc.extend(microbatch_apply(dialect, r, &stage, cfg.str("event_time").unwrap_or_default())),
        "insert_overwrite" => match sql.insert_overwrite(&r.rendered, incr_select) {
            Some(s) => {
                inc.truncate(0);
                inc.push(st("insert_overwrite", s));
            }
            None => {
                return Err(DvtError::new(
                    ErrorCode::MaterializationInvalid,
                    format!("incremental_strategy `insert_overwrite` is not supported on {dialect}"),
                )
                .at(Location::file(file))
                .hint("use merge, delete+insert or append on this engine"));
            }
        },
        other => {
            return Err(DvtError::new(ErrorCode::MaterializationInvalid, format!("unknown incremental_strategy `{other}`"))
                .at(Location::file(file))
                .hint("use append, merge, delete+insert, insert_overwrite or microbatch"));
        }
    }
    if strategy != "insert_overwrite" {
        inc.push(st("drop_staging", sql.drop_table(&stage)));
    }
    Ok(Statements {
        full_refresh: full,
        incremental: Some(inc),
        replace: None,
        write: Some(WriteStrategy { strategy, unique_key: keys, on_schema_change, this_subqueries: vec![] }),
    })
}

/// A microbatch window's rows of `r` replaced by the staging table's (dbt's
/// delete+insert by event time), in one transaction; the window's bounds are
/// the plan's placeholders, filled in by `dvtr`.
pub fn microbatch_apply(dialect: Dialect, r: &RelationRef, stage: &str, event_time: &str) -> Vec<Statement> {
    use dvt_schema::plan::{MICROBATCH_END, MICROBATCH_START};
    vec![
        st("begin", "begin"),
        st(
            "delete",
            format!("delete from {} where {event_time} >= '{MICROBATCH_START}' and {event_time} < '{MICROBATCH_END}'", r.rendered),
        ),
        st("insert", dialect.sql().insert_select(&r.rendered, stage)),
        st("commit", "commit"),
    ]
}

/// Moves the rows of a complete staging table into the existing table `r` by
/// `strategy` (`append`, `merge`, `delete+insert`) in one transaction.
pub fn apply_staged(
    dialect: Dialect,
    r: &RelationRef,
    stage: &str,
    strategy: &str,
    keys: &[String],
) -> std::result::Result<Vec<Statement>, String> {
    let sql = dialect.sql();
    let mut out = vec![st("begin", "begin")];
    match strategy {
        "append" => out.push(st("insert", sql.insert_select(&r.rendered, stage))),
        "merge" | "delete+insert" if keys.is_empty() => return Err(format!("incremental_strategy `{strategy}` needs a `unique_key`")),
        "merge" | "delete+insert" => match (strategy, sql.merge(&r.rendered, stage, keys)) {
            ("merge", Some(m)) => out.push(st("merge", m)),
            _ => {
                out.push(st("delete", sql.delete_matching(&r.rendered, stage, keys)));
                out.push(st("insert", sql.insert_select(&r.rendered, stage)));
            }
        },
        other => return Err(format!("incremental_strategy `{other}` cannot apply a staged table")),
    }
    out.push(st("commit", "commit"));
    Ok(out)
}

/// `seed`: typed staging table, bulk load, swap or row replace.
pub fn seed(dialect: Dialect, r: &RelationRef, columns: &[(String, LogicalType)]) -> Statements {
    let sql = dialect.sql();
    let (stage, _) = sibling(dialect, r, "__dvt_tmp");
    let mut full = Vec::new();
    full.extend(schema_stmt(sql, r));
    full.push(st("drop_staging", sql.drop_table(&stage)));
    if !columns.is_empty() {
        full.push(st("create_staging", sql.create_table(&stage, columns)));
    }
    full.push(st("bulk_load", sql.bulk_load(&stage)));
    let mut replace = full.clone();
    swap_in(dialect, r, &stage, &mut full);
    replace.push(st("check_columns", format!("-- dvtr compares the columns of {stage} with {}", r.rendered)));
    replace.push(st("begin", "begin"));
    replace.push(st("delete", sql.delete_all(&r.rendered)));
    replace.push(st("insert", sql.insert_select(&r.rendered, &stage)));
    replace.push(st("commit", "commit"));
    replace.push(st("drop_staging", sql.drop_table(&stage)));
    Statements {
        full_refresh: full,
        incremental: None,
        replace: Some(replace),
        write: Some(WriteStrategy {
            strategy: "seed".into(),
            unique_key: vec![],
            on_schema_change: "fail".into(),
            this_subqueries: vec![],
        }),
    }
}

/// `snapshot` (timestamp and check strategies, dbt's `dbt_*` columns).
pub fn snapshot(dialect: Dialect, r: &RelationRef, select: &str, cfg: &Config, file: &str) -> Result<Statements> {
    let sql = dialect.sql();
    let q = |c: &str| dialect.quote(c);
    let keys = unique_key(cfg);
    if keys.is_empty() {
        return Err(DvtError::new(ErrorCode::ConfigInvalid, "a snapshot needs `unique_key`").at(Location::file(file)));
    }
    let strategy = cfg.str("strategy").unwrap_or("timestamp");
    let key_expr = |alias: &str| -> String {
        let parts: Vec<String> = keys.iter().map(|k| sql.text_cast(&format!("{alias}.{}", q(k)))).collect();
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            sql.concat(&parts.iter().flat_map(|p| [p.clone(), "'|'".into()]).take(parts.len() * 2 - 1).collect::<Vec<_>>())
        }
    };
    let (updated_at, changed): (String, String) = match strategy {
        "timestamp" => {
            let col = cfg.str("updated_at").ok_or_else(|| {
                DvtError::new(ErrorCode::ConfigInvalid, "a timestamp snapshot needs `updated_at`")
                    .at(Location::file(file))
                    .hint("config(strategy='timestamp', updated_at='<column>')")
            })?;
            (format!("s.{}", q(col)), format!("s.{} > t.{}", q(col), q("dbt_updated_at")))
        }
        "check" => {
            let cols: Vec<String> = match cfg.get("check_cols") {
                Some(Json::Array(a)) => a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect(),
                Some(Json::String(s)) if s != "all" => vec![s.clone()],
                _ => {
                    return Err(DvtError::new(ErrorCode::ConfigInvalid, "a check snapshot needs `check_cols` as a list of columns")
                        .at(Location::file(file))
                        .hint("config(strategy='check', check_cols=['status', 'amount'])"));
                }
            };
            let cond: Vec<String> = cols.iter().map(|c| sql.distinct(&format!("s.{}", q(c)), &format!("t.{}", q(c)))).collect();
            (sql.now().to_string(), format!("({})", cond.join(" or ")))
        }
        other => {
            return Err(DvtError::new(ErrorCode::ConfigInvalid, format!("unknown snapshot strategy `{other}`"))
                .at(Location::file(file))
                .hint("use timestamp or check"));
        }
    };
    let scd_id = sql.md5(&sql.concat(&[key_expr("s"), "'|'".into(), sql.text_cast(&updated_at)]));
    let meta = |upd: &str| {
        format!(
            "{scd_id} as {}, {upd} as {}, {upd} as {}, cast(null as {}) as {}",
            q("dbt_scd_id"),
            q("dbt_updated_at"),
            q("dbt_valid_from"),
            sql.type_name(&LogicalType::Timestamp),
            q("dbt_valid_to")
        )
    };
    let source = format!("(\n{select}\n)");
    let mut full = Vec::new();
    full.extend(schema_stmt(sql, r));
    build_and_swap(dialect, r, &format!("select s.*, {} from {source} s", meta(&updated_at)), None, &mut full);
    let (changes, _) = sibling(dialect, r, "__dvt_changes");
    let join_cond: Vec<String> = keys.iter().map(|k| format!("t.{k} = s.{k}", k = q(k))).collect();
    let join_cond = join_cond.join(" and ");
    let first_key = q(&keys[0]);
    let current = format!("t.{} is null", q("dbt_valid_to"));
    let inc = vec![
        st("drop_staging", sql.drop_table(&changes)),
        st(
            "create_staging",
            sql.create_table_as(
                &changes,
                &format!(
                    "select s.*, {} from {source} s left join {} t on {join_cond} and {current} where t.{first_key} is null or {changed}",
                    meta(&updated_at),
                    r.rendered
                ),
            ),
        ),
        st("begin", "begin"),
        st(
            "close_changed",
            format!(
                "update {} set {} = (select c.{} from {changes} c where {}) where {} is null and exists (select 1 from {changes} c where {})",
                r.rendered,
                q("dbt_valid_to"),
                q("dbt_valid_from"),
                keys.iter().map(|k| format!("c.{k} = {}.{k}", r.rendered, k = q(k))).collect::<Vec<_>>().join(" and "),
                q("dbt_valid_to"),
                keys.iter().map(|k| format!("c.{k} = {}.{k}", r.rendered, k = q(k))).collect::<Vec<_>>().join(" and "),
            ),
        ),
        st("insert", sql.insert_select(&r.rendered, &changes)),
        st("commit", "commit"),
        st("drop_staging", sql.drop_table(&changes)),
    ];
    Ok(Statements {
        full_refresh: full,
        incremental: Some(inc),
        replace: None,
        write: Some(WriteStrategy {
            strategy: format!("snapshot_{strategy}"),
            unique_key: keys,
            on_schema_change: "append_new_columns".into(),
            this_subqueries: vec![],
        }),
    })
}

/// Hooks and grants after the main statements.
pub fn grants(dialect: Dialect, r: &RelationRef, grants: &std::collections::BTreeMap<String, Vec<String>>) -> Vec<Statement> {
    let sql = dialect.sql();
    grants
        .iter()
        .flat_map(|(privilege, grantees)| grantees.iter().filter_map(move |g| sql.grant(privilege, &r.rendered, g)).map(|s| st("grant", s)))
        .collect()
}
