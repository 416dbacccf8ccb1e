//! Unit tests: the model's SQL rendered over fixture CTEs — one per input,
//! named as the input renders in federation mode — run on the model's own
//! target (so it means what it means in its dialect, federated or not), with
//! the expected rows recorded for `dvtr` to compare.
//!
//! Fixture values are cast to the input relation's column types when a live
//! database can tell them (`dvtr`); offline they are plain literals and the
//! node renders again at run time.

use dvt_schema::plan::{ExecutionPath, Materialization, PlanNode, PushdownPlan, Statement, UnitTestPlan};
use serde_json::Value as Json;

use super::render::{Mode, THIS, fragment_name};
use super::{Ctx, NodeOut};
use crate::config::ConfigExt;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, UnitTest};

fn err(node: &Node, unit: &UnitTest, msg: String) -> DvtError {
    DvtError::new(ErrorCode::UnitTestInvalid, msg).at(Location::new(&node.file, unit.line, 0))
}

/// A value as a SQL literal of `dialect`.
fn literal(dialect: Dialect, v: &Json) -> String {
    let text = |s: &str| {
        let s = s.replace('\'', "''");
        // MySQL strings also take backslash escapes.
        if dialect == Dialect::Mysql { format!("'{}'", s.replace('\\', "\\\\")) } else { format!("'{s}'") }
    };
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => text(s),
        other => text(&other.to_string()),
    }
}

/// A CSV fixture value: empty is NULL; plain numbers are numbers (a type from the
/// database casts them anyway), everything else text.
fn csv_value(s: &str) -> Json {
    if s.is_empty() || s.eq_ignore_ascii_case("null") {
        return Json::Null;
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    let plain_number = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.')
        && !(digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."));
    match plain_number.then(|| serde_json::from_str::<serde_json::Number>(s).ok()).flatten() {
        Some(n) => Json::Number(n),
        None => Json::String(s.to_string()),
    }
}

/// The type a fixture value is cast to, from the input relation's column type as the
/// database names it; None where a literal is already right or no cast can name the type.
fn cast_type(dialect: Dialect, db_type: &str) -> Option<String> {
    let t = db_type.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("USER-DEFINED") || t.eq_ignore_ascii_case("ARRAY") {
        return None;
    }
    if dialect == Dialect::Mysql {
        // MySQL's CAST takes few type names: literals already carry numbers and text.
        let base = t.split('(').next().unwrap_or(t).to_ascii_lowercase();
        return match base.as_str() {
            "date" => Some("date".into()),
            "datetime" | "timestamp" => Some("datetime(6)".into()),
            "time" => Some("time".into()),
            _ => None,
        };
    }
    Some(t.to_string())
}

/// Rows of a `given:`/`expect:` as (columns, rows of values); `sql` has none.
fn rows_of(node: &Node, unit: &UnitTest, format: &str, rows: &Json) -> Result<(Vec<String>, Vec<Vec<Json>>)> {
    match format {
        "csv" => {
            let text = rows.as_str().ok_or_else(|| err(node, unit, format!("unit test `{}`: csv rows must be a text block", node.name)))?;
            let mut r = crate::seeds::CsvReader::new(text.trim().as_bytes(), b',');
            let bad = |m: String| err(node, unit, format!("unit test `{}`: csv rows: {m}", node.name));
            let header = r.next_record().map_err(|(_, m)| bad(m))?.map(|h| h.fields).unwrap_or_default();
            let mut out = Vec::new();
            while let Some(rec) = r.next_record().map_err(|(_, m)| bad(m))? {
                out.push(header.iter().enumerate().map(|(i, _)| rec.fields.get(i).map_or(Json::Null, |s| csv_value(s))).collect());
            }
            Ok((header.into_iter().map(|h| h.trim().to_string()).collect(), out))
        }
        _ => {
            let list = match rows {
                Json::Array(a) => a.as_slice(),
                Json::Null => &[],
                _ => return Err(err(node, unit, format!("unit test `{}`: dict rows must be a list of mappings", node.name))),
            };
            let mut columns: Vec<String> = Vec::new();
            for r in list {
                let Json::Object(m) = r else {
                    return Err(err(node, unit, format!("unit test `{}`: each dict row must be a mapping, got {r}", node.name)));
                };
                for k in m.keys() {
                    if !columns.contains(k) {
                        columns.push(k.clone());
                    }
                }
            }
            let out = list.iter().map(|r| columns.iter().map(|c| r.get(c).cloned().unwrap_or(Json::Null)).collect()).collect();
            Ok((columns, out))
        }
    }
}

/// `select … union all select …` of fixture rows; `types` (column → type) from the database
/// add the input's other columns as typed NULLs, as dbt does.
fn fixture_sql(dialect: Dialect, columns: &[String], rows: &[Vec<Json>], types: &[(String, String)]) -> String {
    let mut cols: Vec<(String, Option<String>)> = types.iter().map(|(c, t)| (c.clone(), cast_type(dialect, t))).collect();
    for c in columns {
        if !cols.iter().any(|(k, _)| k.eq_ignore_ascii_case(c)) {
            cols.push((c.clone(), None));
        }
    }
    if cols.is_empty() {
        return "select null as __dvt_no_columns where 1 = 0".into();
    }
    let value = |row: Option<&Vec<Json>>, col: &str, ty: &Option<String>| {
        let v = row.and_then(|r| columns.iter().position(|c| c.eq_ignore_ascii_case(col)).map(|i| r[i].clone())).unwrap_or(Json::Null);
        let lit = literal(dialect, &v);
        match ty {
            Some(t) => format!("cast({lit} as {t})"),
            None => lit,
        }
    };
    let select = |row: Option<&Vec<Json>>| {
        let items: Vec<String> =
            cols.iter().map(|(c, t)| format!("{} as {}", value(row, c, t), super::contract::ident(dialect, c))).collect();
        format!("select {}", items.join(", "))
    };
    if rows.is_empty() {
        return format!("{} where 1 = 0", select(None));
    }
    rows.iter().map(|r| select(Some(r))).collect::<Vec<_>>().join("\nunion all\n")
}

/// Compiles one unit test.
pub(super) fn compile(cx: &Ctx<'_>, node: &Node, unit: &UnitTest) -> Result<NodeOut> {
    let project = cx.project;
    let model = &project.nodes[&unit.model];
    let route = cx.route(model);
    let target = route.target.clone();
    let dialect = cx.dialect_of(&target.value);
    let incremental = unit.overrides.pointer("/macros/is_incremental").and_then(Json::as_bool).unwrap_or(false);
    let mut needs_types = false;
    let mut ctes = Vec::new();
    for (uid, format, rows) in &unit.given {
        let key = if uid == "this" { THIS } else { uid.as_str() };
        // An ephemeral input is the CTE the model's SQL reads (dbt's `__dbt__cte__<name>`).
        let name = match cx.index.cte_names.get(key) {
            Some(cte) => cte.clone(),
            None => dialect.quote(&fragment_name(project, key)),
        };
        let body = if format == "sql" {
            rows.as_str().unwrap_or_default().trim().to_string()
        } else {
            let (columns, values) = rows_of(node, unit, format, rows)?;
            needs_types = true;
            fixture_sql(dialect, &columns, &values, &input_types(cx, uid, model, &target.value))
        };
        ctes.push(format!("{name} as (\n{body}\n)"));
    }
    let (out, render_reason) = match cx.renderer.render_overridden(model, None, Mode::Federation(dialect), incremental, &unit.overrides)? {
        Ok(o) => (o.sql, None),
        Err(super::render::RuntimeOnly(reason)) => (String::new(), Some(reason)),
    };
    let (expect_format, expect_rows) = &unit.expect;
    let (columns, rows, expected_sql) = if expect_format == "sql" {
        (vec![], vec![], Some(expect_rows.as_str().unwrap_or_default().trim().to_string()))
    } else {
        let (c, r) = rows_of(node, unit, expect_format, expect_rows)?;
        (c, r, None)
    };
    let select = if columns.is_empty() {
        "*".to_string()
    } else {
        columns.iter().map(|c| super::contract::ident(dialect, c)).collect::<Vec<_>>().join(", ")
    };
    let with = if ctes.is_empty() { String::new() } else { format!("with {}\n", ctes.join(",\n")) };
    let sql = format!("{with}select {select} from (\n{out}\n) as __dvt_unit_actual");
    let render_at_runtime = render_reason.or_else(|| {
        (needs_types && cx.opts.live.is_none()).then(|| "unit test fixtures are typed from the input relations' columns".to_string())
    });
    let plan = PlanNode {
        unique_id: node.unique_id.clone(),
        resource_type: "unit_test".into(),
        name: node.name.clone(),
        package_name: node.package.clone(),
        fqn: node.fqn.clone(),
        file: node.file.clone(),
        // It runs after the model's inputs exist (their types), before the model (`build`).
        depends_on: model.depends_on.clone(),
        target,
        relation: None,
        compute: None,
        bucket: None,
        materialization: Materialization { requested: "unit".into(), effective: "unit".into(), coercion: None },
        path: ExecutionPath::Pushdown,
        upstreams: vec![],
        render_at_runtime,
        language: None,
        compiled_sql: Some(sql.clone()),
        pushdown: Some(PushdownPlan {
            dialect: dialect.name().into(),
            full_refresh: vec![Statement { kind: "unit_test".into(), sql }],
            incremental: None,
            replace: None,
        }),
        federation: None,
        write: None,
        tests: vec![],
        seed: None,
        test: None,
        pre_hooks: vec![],
        post_hooks: vec![],
        runtime_hooks: None,
        microbatch: None,
        grants: Default::default(),
        tags: node.config.tags(),
        checksum: Some(cx.checksum(node)),
        contract: None,
        unit: Some(Box::new(UnitTestPlan { model: model.unique_id.clone(), columns, rows, expected_sql })),
    };
    // Like `dbt compile`, no file under target/compiled/: the SQL is in the plan.
    Ok(NodeOut { node: Box::new(plan), warnings: vec![], file: None })
}

/// Column types of an input relation, from the live database, when it is on an output
/// of the model's dialect (another dialect's type names would not cast here).
fn input_types(cx: &Ctx<'_>, uid: &str, model: &Node, model_target: &str) -> Vec<(String, String)> {
    let Some(live) = &cx.opts.live else { return vec![] };
    let project = cx.project;
    let (output, schema, ident) = if uid == "this" {
        match cx.index.placements.get(&model.unique_id).and_then(|p| p.relation.clone()) {
            Some(r) => (model_target.to_string(), r.schema, r.identifier),
            None => return vec![],
        }
    } else if let Some(s) = project.sources.get(uid) {
        (s.connection.clone(), Some(s.schema.clone()), s.identifier.clone())
    } else {
        match cx.index.placements.get(uid) {
            Some(p) => match &p.relation {
                Some(r) => (p.target.value.clone(), r.schema.clone(), r.identifier.clone()),
                None => return vec![],
            },
            None => return vec![],
        }
    };
    let dialect_of = |o: &str| project.profile.outputs.get(o).and_then(|o| Dialect::from_adapter(&o.kind));
    let columns = live.columns(&output, schema.as_deref(), &ident).unwrap_or_default();
    match (dialect_of(&output), dialect_of(model_target)) {
        (Some(from), Some(to)) if from != to => {
            // Another engine's type names, through DVT's logical types (unknown ones stay uncast).
            columns
                .into_iter()
                .map(|(c, t)| (c, crate::seeds::parse_type(&t).map(|lt| to.sql().type_name(&lt)).unwrap_or_default()))
                .collect()
        }
        _ => columns,
    }
}
