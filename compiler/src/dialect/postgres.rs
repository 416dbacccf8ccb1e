//! PostgreSQL.

use super::sql::SqlDialect;

pub struct Postgres;

impl SqlDialect for Postgres {
    fn merge(&self, target: &str, stage: &str, keys: &[String]) -> Option<String> {
        let _ = (target, stage, keys);
        // MERGE needs the column list for UPDATE SET, known only at run time: delete + insert.
        None
    }
    fn bulk_load(&self, rel: &str) -> String {
        format!("copy {rel} from stdin with (format binary)")
    }
}
