//! DataFusion, the embedded federation engine (remainder queries).

use super::sql::{LogicalType, SqlDialect};

pub struct DataFusion;

impl SqlDialect for DataFusion {
    fn create_schema(&self, _database: Option<&str>, _schema: &str) -> Option<String> {
        None
    }
    fn grant(&self, _privilege: &str, _rel: &str, _grantee: &str) -> Option<String> {
        None
    }
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Decimal(p, s) => format!("decimal({p}, {s})"),
            LogicalType::Text => "varchar".into(),
            LogicalType::Float => "double".into(),
            other => super::postgres::Postgres.type_name(other),
        }
    }
}
