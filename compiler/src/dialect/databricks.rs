//! Databricks (SQL generation only): backticks, Delta MERGE and INSERT OVERWRITE.

use super::sql::{LogicalType, SqlDialect};

pub struct Databricks;

impl SqlDialect for Databricks {
    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }
    fn create_table_as(&self, rel: &str, sql: &str) -> String {
        format!("create table {rel} using delta as\n{sql}")
    }
    fn replace_view(&self, rel: &str, sql: &str) -> Vec<String> {
        vec![format!("create or replace view {rel} as\n{sql}")]
    }
    fn merge(&self, target: &str, stage: &str, keys: &[String]) -> Option<String> {
        let cond: Vec<String> = keys.iter().map(|k| format!("t.{k} = s.{k}", k = self.quote(k))).collect();
        Some(format!(
            "merge into {target} t using {stage} s on {}\nwhen matched then update set *\nwhen not matched then insert *",
            cond.join(" and ")
        ))
    }
    fn insert_overwrite(&self, target: &str, sql: &str) -> Option<String> {
        Some(format!("insert overwrite table {target}\n{sql}"))
    }
    fn distinct(&self, a: &str, b: &str) -> String {
        format!("not ({a} <=> {b})")
    }
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Boolean => "boolean".into(),
            LogicalType::Integer => "int".into(),
            LogicalType::BigInt => "bigint".into(),
            LogicalType::Decimal(p, s) => format!("decimal({p}, {s})"),
            LogicalType::Float => "double".into(),
            LogicalType::Date => "date".into(),
            LogicalType::Timestamp => "timestamp".into(),
            LogicalType::TimestampTz => "timestamp".into(),
            LogicalType::Text => "string".into(),
        }
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("copy into {rel} from '<bucket path>' fileformat = parquet")
    }
}
