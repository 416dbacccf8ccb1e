//! SQLite, through `rusqlite` (bundled SQLite).

use rusqlite::types::ValueRef;

use super::{Connection, RelationKind, RowSink, RowStream, Rows};
use crate::credentials::Credentials;

pub struct Lite(rusqlite::Connection);

pub fn open(c: &Credentials) -> Result<Lite, String> {
    let path = c.path("path").ok_or_else(|| format!("output `{}` has no `path:`", c.name))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = rusqlite::Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
    Ok(Lite(conn))
}

fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Some(format!("<{} bytes>", b.len())),
    }
}

impl Connection for Lite {
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|e| e.to_string())
    }

    fn query(&mut self, sql: &str) -> Result<Rows, String> {
        self.query_typed(sql).map(|(_, rows)| rows)
    }

    fn query_into(&mut self, sql: &str, sink: &mut dyn RowSink) -> Result<(), String> {
        let mut st = self.0.prepare(sql).map_err(|e| e.to_string())?;
        // Declared types of plain column references; expressions have none.
        // SQLite integers are 64-bit whatever the declared name.
        let types: Vec<String> = st
            .columns()
            .iter()
            .map(|c| match c.decl_type().unwrap_or_default().to_ascii_lowercase() {
                t if t.contains("int") => "bigint".to_string(),
                t => t,
            })
            .collect();
        let columns: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
        let n = columns.len();
        sink.start(columns, types)?;
        let mut rows = st.query([]).map_err(|e| e.to_string())?;
        let iter = std::iter::from_fn(|| match rows.next() {
            Ok(Some(r)) => Some(Ok((0..n).map(|i| r.get_ref(i).map(text).unwrap_or(None)).collect())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        });
        super::feed(iter, sink)
    }

    fn relation_kind(&mut self, _schema: Option<&str>, identifier: &str) -> Result<Option<RelationKind>, String> {
        let kind: Option<String> = self
            .0
            .query_row("select type from sqlite_master where name = ?1 and type in ('table', 'view')", [identifier], |r| r.get(0))
            .map(Some)
            .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e.to_string()) })?;
        Ok(kind.map(|k| if k == "view" { RelationKind::View } else { RelationKind::Table }))
    }

    fn columns(&mut self, _schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String> {
        let mut st = self.0.prepare("select name, type from pragma_table_info(?1) order by cid").map_err(|e| e.to_string())?;
        let names = st.query_map([identifier], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| e.to_string())?;
        names.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())
    }

    fn row_estimate(&mut self, _schema: Option<&str>, identifier: &str) -> Option<u64> {
        // SQLite keeps no count: only a small database file is counted.
        let bytes: u64 =
            self.0.query_row("select page_count * page_size from pragma_page_count(), pragma_page_size()", [], |r| r.get(0)).ok()?;
        if bytes >= super::CHEAP_COUNT_BYTES {
            return None;
        }
        let sql = format!("select count(*) from \"{}\"", identifier.replace('"', "\"\""));
        self.0.query_row(&sql, [], |r| r.get::<_, i64>(0)).ok().map(|n| n as u64)
    }

    fn load(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String> {
        let marks = vec!["?"; ncols].join(", ");
        let tx = self.0.transaction().map_err(|e| e.to_string())?;
        let mut n = 0u64;
        {
            let mut st = tx.prepare(&format!("insert into {rel} values ({marks})")).map_err(|e| e.to_string())?;
            for r in rows {
                st.execute(rusqlite::params_from_iter(r?.iter())).map_err(|e| e.to_string())?;
                n += 1;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(n)
    }
}
