//! SQLite: one schema per attached file (`main` by default), no grants.

use super::sql::{LogicalType, SqlDialect};

pub struct Sqlite;

impl SqlDialect for Sqlite {
    fn create_schema(&self, _database: Option<&str>, _schema: &str) -> Option<String> {
        // Schemas are attached database files; the runtime attaches them.
        None
    }
    fn create_table_as(&self, rel: &str, sql: &str) -> String {
        format!("create table {rel} as\n{sql}")
    }
    fn replace_view(&self, rel: &str, sql: &str) -> Vec<String> {
        vec![self.drop_view(rel), format!("create view {rel} as\n{sql}")]
    }
    fn rename_table(&self, rel: &str, new_ident: &str) -> String {
        format!("alter table {rel} rename to {}", self.quote(new_ident))
    }
    fn grant(&self, _privilege: &str, _rel: &str, _grantee: &str) -> Option<String> {
        None
    }
    fn distinct(&self, a: &str, b: &str) -> String {
        format!("{a} is not {b}")
    }
    fn now(&self) -> &'static str {
        "datetime('now')"
    }
    fn md5(&self, expr: &str) -> String {
        // SQLite has no md5; hex of the text is a stable, unique-enough id.
        format!("hex({expr})")
    }
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Boolean | LogicalType::Integer | LogicalType::BigInt => "integer".into(),
            LogicalType::Decimal(p, s) => format!("numeric({p}, {s})"),
            LogicalType::Float => "real".into(),
            LogicalType::Date => "date".into(),
            LogicalType::Timestamp => "timestamp".into(),
            LogicalType::TimestampTz => "timestamptz".into(),
            LogicalType::Text => "text".into(),
        }
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("insert into {rel} values (?, ...) -- prepared, one transaction")
    }
}
