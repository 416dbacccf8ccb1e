//! MySQL and MariaDB: backtick quoting, schemas are databases, DDL is not transactional.

use super::sql::{LogicalType, SqlDialect};

pub struct Mysql;

impl SqlDialect for Mysql {
    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }
    /// MariaDB drops an ORDER BY inside a derived table, so a query without its
    /// own LIMIT gets the limit appended (its order kept); others are wrapped.
    fn limit(&self, sql: &str, n: u64) -> String {
        let parsed = sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::MySqlDialect {}, sql);
        match parsed.as_deref() {
            Ok([sqlparser::ast::Statement::Query(q)]) if q.limit_clause.is_none() && q.fetch.is_none() && q.locks.is_empty() => {
                format!("{sql}\nlimit {n}")
            }
            _ => format!("select * from (\n{sql}\n) dvt_limited limit {n}"),
        }
    }
    fn create_schema(&self, _database: Option<&str>, schema: &str) -> Option<String> {
        // The server default may be latin1: text must hold any Unicode.
        Some(format!("create database if not exists {} character set utf8mb4", self.quote(schema)))
    }
    fn create_table(&self, rel: &str, columns: &[(String, LogicalType)]) -> String {
        let cols: Vec<String> = columns.iter().map(|(n, t)| format!("{} {}", self.quote(n), self.type_name(t))).collect();
        format!("create table {rel} (\n  {}\n) character set utf8mb4", cols.join(",\n  "))
    }
    fn transactional_ddl(&self) -> bool {
        false
    }
    fn create_table_as(&self, rel: &str, sql: &str) -> String {
        format!("create table {rel} as\n{sql}")
    }
    fn replace_view(&self, rel: &str, sql: &str) -> Vec<String> {
        vec![format!("create or replace view {rel} as\n{sql}")]
    }
    fn rename_table(&self, rel: &str, new_ident: &str) -> String {
        // RENAME TABLE takes a qualified target; keep the schema of `rel`.
        let schema = rel.rsplit_once('.').map(|(s, _)| format!("{s}.")).unwrap_or_default();
        format!("rename table {rel} to {schema}{}", self.quote(new_ident))
    }
    fn distinct(&self, a: &str, b: &str) -> String {
        format!("not ({a} <=> {b})")
    }
    fn concat(&self, parts: &[String]) -> String {
        format!("concat({})", parts.join(", "))
    }
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Boolean => "boolean".into(),
            LogicalType::Integer => "int".into(),
            LogicalType::BigInt => "bigint".into(),
            LogicalType::Decimal(p, s) => format!("decimal({p}, {s})"),
            LogicalType::Float => "double".into(),
            LogicalType::Date => "date".into(),
            LogicalType::Timestamp => "datetime(6)".into(),
            LogicalType::TimestampTz => "datetime(6)".into(),
            LogicalType::Text => "text".into(),
        }
    }
    fn text_cast(&self, expr: &str) -> String {
        format!("cast({expr} as char)")
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("load data local infile '<stream>' into table {rel}")
    }
}
