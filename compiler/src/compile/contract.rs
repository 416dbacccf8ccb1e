//! Model contracts (`contract: {enforced: true}`): the declared columns with
//! their types and constraints, checked against the model's SQL at compile
//! time where its columns are visible (and by `dvtr` before writing where the
//! SQL selects `*`), and used to create the table with declared types.

use dvt_schema::plan::{Contract, ContractColumn};
use serde_json::Value as Json;
use sqlparser::ast::{Expr, SelectItem, SetExpr, Statement};

use crate::config::ConfigExt;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::Node;

fn err(node: &Node, msg: String, hint: &str) -> DvtError {
    DvtError::new(ErrorCode::ContractViolation, msg).at(Location::file(&node.file)).hint(hint)
}

/// The node's enforced contract, or None when it has none.
pub fn of(node: &Node, dialect: Dialect) -> Result<Option<Contract>> {
    if !crate::state::contract_enforced(node) {
        return Ok(None);
    }
    let materialized = node.config.str("materialized").unwrap_or("view");
    if materialized == "ephemeral" {
        return Err(err(
            node,
            format!("model `{}` is ephemeral: it cannot have an enforced contract", node.name),
            "materialize it as a table, incremental or view",
        ));
    }
    let mut cols: Vec<&crate::nodes::Column> = node.columns.values().collect();
    cols.sort_by_key(|c| c.position);
    if cols.is_empty() {
        return Err(err(
            node,
            format!("model `{}` enforces a contract but declares no columns", node.name),
            "list every column with its data_type under `columns:` in the model's properties file",
        ));
    }
    let untyped: Vec<&str> = cols.iter().filter(|c| c.data_type.as_deref().is_none_or(str::is_empty)).map(|c| c.name.as_str()).collect();
    if !untyped.is_empty() {
        return Err(err(
            node,
            format!("model `{}` enforces a contract, but these columns have no data_type: {}", node.name, untyped.join(", ")),
            "give every column of a contracted model a `data_type:`",
        ));
    }
    let columns = cols
        .iter()
        .map(|c| -> Result<ContractColumn> {
            let constraints = c.constraints.iter().map(|k| column_constraint(node, &c.name, k, dialect)).collect::<Result<Vec<_>>>()?;
            Ok(ContractColumn {
                name: c.name.clone(),
                data_type: c.data_type.clone().unwrap_or_default(),
                constraints: constraints.into_iter().flatten().collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let model_level = match node.config.get("constraints") {
        Some(Json::Array(list)) => list.iter().map(|k| model_constraint(node, k, dialect)).collect::<Result<Vec<_>>>()?,
        _ => vec![],
    };
    Ok(Some(Contract { columns, constraints: model_level.into_iter().flatten().collect() }))
}

fn kind_of<'a>(node: &Node, k: &'a Json) -> Result<&'a str> {
    k.get("type").and_then(Json::as_str).ok_or_else(|| {
        err(
            node,
            format!("a constraint of model `{}` has no `type:`: {k}", node.name),
            "use not_null, unique, primary_key, foreign_key, check or custom",
        )
    })
}

fn expression<'a>(node: &Node, k: &'a Json, what: &str) -> Result<&'a str> {
    k.get("expression").and_then(Json::as_str).filter(|e| !e.trim().is_empty()).ok_or_else(|| {
        err(node, format!("a `{what}` constraint of model `{}` needs an `expression:`", node.name), "e.g. `expression: \"amount >= 0\"`")
    })
}

/// A column constraint as SQL (`not null`, `check (…)`, …).
fn column_constraint(node: &Node, column: &str, k: &Json, _dialect: Dialect) -> Result<Option<String>> {
    Ok(Some(match kind_of(node, k)? {
        "not_null" => "not null".into(),
        "unique" => "unique".into(),
        "primary_key" => "primary key".into(),
        "check" => format!("check ({})", expression(node, k, "check")?),
        "foreign_key" => format!("references {}", expression(node, k, "foreign_key")?),
        "custom" => expression(node, k, "custom")?.to_string(),
        other => {
            return Err(err(
                node,
                format!("column `{column}` of model `{}` has an unknown constraint type `{other}`", node.name),
                "use not_null, unique, primary_key, foreign_key, check or custom",
            ));
        }
    }))
}

/// A model-level constraint as SQL (`primary key (a, b)`, …).
fn model_constraint(node: &Node, k: &Json, dialect: Dialect) -> Result<Option<String>> {
    let cols: Vec<String> = k
        .get("columns")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).map(|c| ident(dialect, c)).collect())
        .unwrap_or_default();
    let need_cols = |what: &str| -> Result<String> {
        if cols.is_empty() {
            return Err(err(
                node,
                format!("a model-level `{what}` constraint of `{}` needs `columns:`", node.name),
                "e.g. `columns: [id, day]`",
            ));
        }
        Ok(cols.join(", "))
    };
    Ok(Some(match kind_of(node, k)? {
        "primary_key" => format!("primary key ({})", need_cols("primary_key")?),
        "unique" => format!("unique ({})", need_cols("unique")?),
        "check" => format!("check ({})", expression(node, k, "check")?),
        "foreign_key" => format!("foreign key ({}) references {}", need_cols("foreign_key")?, expression(node, k, "foreign_key")?),
        "custom" => expression(node, k, "custom")?.to_string(),
        // dbt accepts not_null only on columns.
        "not_null" => return Ok(None),
        other => {
            return Err(err(
                node,
                format!("model `{}` has an unknown constraint type `{other}`", node.name),
                "use unique, primary_key, foreign_key, check or custom",
            ));
        }
    }))
}

/// The output column names of a SELECT as written (None when `*` makes them unknown
/// until run time, or the SQL is not a plain query).
pub fn select_columns(sql: &str, dialect: Dialect) -> Option<Vec<String>> {
    let parser = crate::federate::parser_dialect(dialect);
    let stmts = sqlparser::parser::Parser::parse_sql(parser.as_ref(), sql).ok()?;
    let [Statement::Query(q)] = stmts.as_slice() else { return None };
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::Select(s) => {
                return s
                    .projection
                    .iter()
                    .map(|item| match item {
                        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                        SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
                        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(|i| i.value.clone()),
                        _ => None,
                    })
                    .collect();
            }
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(q) => body = q.body.as_ref(),
            _ => return None,
        }
    }
}

/// Compares the model's columns with the contract's (names, in order, case-insensitively).
pub fn check(node_name: &str, contract: &Contract, actual: &[String]) -> std::result::Result<(), String> {
    let norm = |s: &str| s.trim_matches(|c| c == '"' || c == '`').to_ascii_lowercase();
    let declared: Vec<String> = contract.columns.iter().map(|c| norm(&c.name)).collect();
    let actual: Vec<String> = actual.iter().map(|c| norm(c)).collect();
    if declared == actual {
        return Ok(());
    }
    let missing: Vec<&str> = declared.iter().filter(|c| !actual.contains(c)).map(String::as_str).collect();
    let extra: Vec<&str> = actual.iter().filter(|c| !declared.contains(c)).map(String::as_str).collect();
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("declared but not selected: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        why.push(format!("selected but not declared: {}", extra.join(", ")));
    }
    if why.is_empty() {
        why.push(format!("declared order {} but selected {}", declared.join(", "), actual.join(", ")));
    }
    Err(format!("the columns of model `{node_name}` do not match its contract: {}", why.join("; ")))
}

/// A column name as SQL: as written when it needs no quotes (the engine folds it as
/// it folds the model's own columns), quoted otherwise.
pub(crate) fn ident(dialect: Dialect, name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { name.to_string() } else { dialect.sql().quote(name) }
}

/// `check_contract` statement: a query that returns no rows but the model's columns.
pub fn probe_sql(select: &str) -> String {
    format!("select * from (\n{select}\n) as __dvt_contract where 1 = 0")
}

/// `create table` with the contract's types and constraints.
pub fn create_table(dialect: Dialect, rel: &str, contract: &Contract) -> String {
    let mut lines: Vec<String> = contract
        .columns
        .iter()
        .map(|c| {
            let mut l = format!("{} {}", ident(dialect, &c.name), c.data_type);
            for k in &c.constraints {
                l.push(' ');
                l.push_str(k);
            }
            l
        })
        .collect();
    lines.extend(contract.constraints.iter().cloned());
    format!("create table {rel} (\n  {}\n)", lines.join(",\n  "))
}

/// `insert into <rel> (<declared columns>) select <declared columns> from (<select>)`.
pub fn insert_select(dialect: Dialect, rel: &str, contract: &Contract, select: &str) -> String {
    let cols: Vec<String> = contract.columns.iter().map(|c| ident(dialect, &c.name)).collect();
    let cols = cols.join(", ");
    format!("insert into {rel} ({cols})\nselect {cols} from (\n{select}\n) as __dvt_contract")
}
