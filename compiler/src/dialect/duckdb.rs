//! DuckDB.

use super::sql::{LogicalType, SqlDialect};

pub struct Duckdb;

impl SqlDialect for Duckdb {
    fn grant(&self, _privilege: &str, _rel: &str, _grantee: &str) -> Option<String> {
        None
    }
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Float => "double".into(),
            LogicalType::Decimal(p, s) => format!("decimal({p}, {s})"),
            LogicalType::Text => "varchar".into(),
            other => super::postgres::Postgres.type_name(other),
        }
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("appender {rel}")
    }
}
