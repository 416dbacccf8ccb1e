//! Snowflake (SQL generation only).

use super::sql::{LogicalType, SqlDialect};

pub struct Snowflake;

impl SqlDialect for Snowflake {
    fn create_schema(&self, database: Option<&str>, schema: &str) -> Option<String> {
        Some(match database {
            Some(d) => format!("create schema if not exists {}.{}", self.quote(d), self.quote(schema)),
            None => format!("create schema if not exists {}", self.quote(schema)),
        })
    }
    fn replace_view(&self, rel: &str, sql: &str) -> Vec<String> {
        vec![format!("create or replace view {rel} as (\n{sql}\n)")]
    }
    fn delete_matching(&self, target: &str, stage: &str, keys: &[String]) -> String {
        let cond: Vec<String> = keys.iter().map(|k| format!("{target}.{k} = s.{k}", k = self.quote(k))).collect();
        format!("delete from {target} using {stage} s where {}", cond.join(" and "))
    }
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Boolean => "boolean".into(),
            LogicalType::Integer | LogicalType::BigInt => "number(38, 0)".into(),
            LogicalType::Decimal(p, s) => format!("number({p}, {s})"),
            LogicalType::Float => "float".into(),
            LogicalType::Date => "date".into(),
            LogicalType::Timestamp => "timestamp_ntz".into(),
            LogicalType::TimestampTz => "timestamp_tz".into(),
            LogicalType::Text => "varchar".into(),
        }
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("copy into {rel} from @dvt_stage file_format = (type = parquet) match_by_column_name = case_insensitive")
    }
}
