//! DuckDB, through the `duckdb` driver linked to DuckDB's shared library.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use super::{Connection, RelationKind, Rows};
use crate::credentials::Credentials;

pub struct Duck(duckdb::Connection);

/// One database instance per file and process: a second instance of the same
/// file would not see the first one's writes. Workers get clones of it.
static INSTANCES: LazyLock<Mutex<HashMap<PathBuf, duckdb::Connection>>> = LazyLock::new(Default::default);

pub fn open(c: &Credentials) -> Result<Duck, String> {
    let path = c.path("path").ok_or_else(|| format!("output `{}` has no `path:`", c.name))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut instances = INSTANCES.lock().map_err(|_| "DuckDB instance registry poisoned".to_string())?;
    let base = match instances.entry(path.clone()) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(duckdb::Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?)
        }
    };
    base.try_clone().map(Duck).map_err(|e| e.to_string())
}

/// Closes the cached database instances (open connections keep theirs), so
/// another process can open the files. For embedders and tests; `dvtr` keeps
/// its instances for the whole run.
pub fn release() {
    if let Ok(mut m) = INSTANCES.lock() {
        m.clear();
    }
}

fn strings(conn: &duckdb::Connection, sql: &str, params: &[&str]) -> Result<Rows, String> {
    let mut st = conn.prepare(sql).map_err(|e| e.to_string())?;
    let mut rows = st.query(duckdb::params_from_iter(params.iter())).map_err(|e| e.to_string())?;
    // Names are known once the statement ran, even when it returns no rows.
    let columns = rows.as_ref().map(|st| st.column_names().into_iter().map(|s| s.to_string()).collect()).unwrap_or_default();
    let mut out = Rows { columns, rows: vec![] };
    while let Some(r) = rows.next().map_err(|e| e.to_string())? {
        let n = out.columns.len();
        out.rows.push((0..n).map(|i| r.get::<_, Option<String>>(i).unwrap_or(None)).collect());
    }
    Ok(out)
}

impl Connection for Duck {
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|e| e.to_string())
    }

    fn query(&mut self, sql: &str) -> Result<Rows, String> {
        // Every value as text, whatever its type; column names are kept.
        let wrapped = format!("select columns(*)::varchar from (\n{sql}\n) dvt_show");
        let mut out = strings(&self.0, &wrapped, &[])?;
        if out.columns.is_empty() {
            // No rows: read the names from a described statement.
            let st = self.0.prepare(&wrapped).map_err(|e| e.to_string())?;
            out.columns = st.column_names().into_iter().map(|s| s.to_string()).collect();
        }
        Ok(out)
    }

    fn query_typed(&mut self, sql: &str) -> Result<(Vec<String>, Rows), String> {
        let described = strings(&self.0, &format!("describe select * from (\n{sql}\n) dvt_describe"), &[])?;
        let types = described.rows.into_iter().map(|r| r.get(1).cloned().flatten().unwrap_or_default()).collect();
        Ok((types, self.query(sql)?))
    }

    fn relation_kind(&mut self, schema: Option<&str>, identifier: &str) -> Result<Option<RelationKind>, String> {
        let r = strings(&self.0, super::TABLE_TYPE_SQL, &[schema.unwrap_or("main"), identifier])?;
        Ok(r.rows.first().and_then(|row| row[0].clone()).map(|k| super::kind_of(&k)))
    }

    fn columns(&mut self, schema: Option<&str>, identifier: &str) -> Result<Vec<String>, String> {
        let r = strings(&self.0, super::COLUMNS_SQL, &[schema.unwrap_or("main"), identifier])?;
        Ok(r.rows.into_iter().filter_map(|row| row.into_iter().next().flatten()).collect())
    }

    fn load(
        &mut self,
        rel: &str,
        ncols: usize,
        rows: &mut dyn Iterator<Item = Result<Vec<Option<String>>, String>>,
    ) -> Result<u64, String> {
        let marks = vec!["?"; ncols].join(", ");
        self.0.execute_batch("begin").map_err(|e| e.to_string())?;
        let mut n = 0u64;
        let result = (|| {
            let mut st = self.0.prepare(&format!("insert into {rel} values ({marks})")).map_err(|e| e.to_string())?;
            for r in rows {
                st.execute(duckdb::params_from_iter(r?.iter())).map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok::<(), String>(())
        })();
        match result {
            Ok(()) => self.0.execute_batch("commit").map_err(|e| e.to_string()).map(|()| n),
            Err(e) => {
                let _ = self.0.execute_batch("rollback");
                Err(e)
            }
        }
    }
}
