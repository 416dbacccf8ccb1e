//! PostgreSQL.

use super::sql::SqlDialect;

pub struct Postgres;

impl SqlDialect for Postgres {
    fn replace_view(&self, rel: &str, sql: &str) -> Vec<String> {
        // CREATE OR REPLACE VIEW cannot drop or retype columns; DDL is transactional, so drop + create is atomic.
        vec![self.drop_view(rel), format!("create view {rel} as (\n{sql}\n)")]
    }
    fn merge(&self, target: &str, stage: &str, keys: &[String]) -> Option<String> {
        let _ = (target, stage, keys);
        // MERGE needs the column list for UPDATE SET, known only at run time: delete + insert.
        None
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("copy {rel} from stdin with (format binary)")
    }
}
