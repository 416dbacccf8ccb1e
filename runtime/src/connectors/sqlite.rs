//! SQLite, through `rusqlite` (bundled SQLite).

use rusqlite::types::ValueRef;

use super::{BatchStream, Connection, RelationKind, RowSink, RowStream, Rows};
use crate::credentials::Credentials;

pub struct Lite(rusqlite::Connection, Option<std::fs::File>);

pub fn open(c: &Credentials) -> Result<Lite, String> {
    let path = c.path("path").ok_or_else(|| format!("output `{}` has no `path:`", c.name))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let conn = rusqlite::Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
    Ok(Lite(conn, None))
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

    /// SQLite locks per statement: a run's write (staging, load, swap) is kept
    /// whole by an exclusive lock on `<database>.dvt-lock`, which the OS drops
    /// if the process dies.
    fn lock_relation(&mut self, _rendered: &str) -> Result<(), String> {
        let Some(path) = self.0.path().filter(|p| !p.is_empty()).map(|p| format!("{p}.dvt-lock")) else { return Ok(()) };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        f.lock().map_err(|e| format!("cannot lock {path}: {e}"))?;
        self.1 = Some(f);
        Ok(())
    }

    fn unlock_relation(&mut self, _rendered: &str) -> Result<(), String> {
        self.1 = None;
        Ok(())
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

    /// Numbers are bound as SQLite integers and reals, not as text: SQLite's own
    /// text-to-real conversion is not correctly rounded (`2e300` read back one ULP
    /// off), and a double must round-trip exactly.
    fn load_arrow(&mut self, rel: &str, batches: &mut BatchStream<'_>) -> Option<Result<u64, String>> {
        Some(load_typed(&mut self.0, rel, batches))
    }
}

fn load_typed(conn: &mut rusqlite::Connection, rel: &str, batches: &mut BatchStream<'_>) -> Result<u64, String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{
        DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    };
    use rusqlite::types::Value;
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for batch in batches {
        let batch = batch?;
        let schema = batch.schema();
        let text: Vec<Vec<Option<String>>> =
            crate::arrow_rows::text_rows(std::slice::from_ref(&batch), &schema, dvt_compiler::dialect::Dialect::Sqlite)?
                .collect::<Result<_, _>>()?;
        let marks = vec!["?"; batch.num_columns()].join(", ");
        let mut st = tx.prepare_cached(&format!("insert into {rel} values ({marks})")).map_err(|e| e.to_string())?;
        for (row, texts) in text.into_iter().enumerate() {
            let values: Vec<Value> = batch
                .columns()
                .iter()
                .zip(texts)
                .map(|(col, t)| {
                    if col.is_null(row) {
                        return Ok(Value::Null);
                    }
                    Ok(match col.data_type() {
                        DataType::Int8 => Value::Integer(col.as_primitive::<Int8Type>().value(row).into()),
                        DataType::Int16 => Value::Integer(col.as_primitive::<Int16Type>().value(row).into()),
                        DataType::Int32 => Value::Integer(col.as_primitive::<Int32Type>().value(row).into()),
                        DataType::Int64 => Value::Integer(col.as_primitive::<Int64Type>().value(row)),
                        DataType::UInt8 => Value::Integer(col.as_primitive::<UInt8Type>().value(row).into()),
                        DataType::UInt16 => Value::Integer(col.as_primitive::<UInt16Type>().value(row).into()),
                        DataType::UInt32 => Value::Integer(col.as_primitive::<UInt32Type>().value(row).into()),
                        DataType::UInt64 => Value::Integer(i64::try_from(col.as_primitive::<UInt64Type>().value(row)).map_err(|_| {
                            format!("value {} does not fit SQLite's 64-bit integer", col.as_primitive::<UInt64Type>().value(row))
                        })?),
                        DataType::Float32 => Value::Real(col.as_primitive::<Float32Type>().value(row).into()),
                        DataType::Float64 => Value::Real(col.as_primitive::<Float64Type>().value(row)),
                        DataType::Boolean => Value::Integer(col.as_boolean().value(row).into()),
                        _ => t.map(Value::Text).unwrap_or(Value::Null),
                    })
                })
                .collect::<Result<_, String>>()?;
            st.execute(rusqlite::params_from_iter(values)).map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(n)
}
