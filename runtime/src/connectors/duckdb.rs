//! DuckDB, through the `duckdb` driver linked to DuckDB's shared library.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use datafusion::arrow::array::{Array, Decimal128Array, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};

use super::{BatchStream, Connection, CsvFile, RelationKind, RowSink, RowStream, Rows};
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

    fn query_arrow(&mut self, sql: &str, sink: &mut dyn super::ArrowSink) -> Option<Result<(), String>> {
        use duckdb::arrow::datatypes::{DataType as D, TimeUnit};
        let mut st = match self.0.prepare(sql) {
            Ok(st) => st,
            Err(e) => return Some(Err(e.to_string())),
        };
        // Streaming: chunks are fetched as the sink takes them, not buffered whole.
        let result = match st.stream_arrow([]) {
            Ok(r) => r,
            Err(e) => return Some(Err(e.to_string())),
        };
        let schema = result.get_schema();
        // Types that mean the same as DVT's reading of DuckDB's text; others (floats, which
        // text would widen from their printed digits, nested types, …) go through text.
        let exact = |t: &D| {
            matches!(
                t,
                D::Boolean
                    | D::Int8
                    | D::Int16
                    | D::Int32
                    | D::Int64
                    | D::UInt8
                    | D::UInt16
                    | D::UInt32
                    | D::Float64
                    | D::Decimal128(..)
                    | D::Date32
                    | D::Timestamp(TimeUnit::Microsecond, _)
                    | D::Utf8
            )
        };
        if !schema.fields().iter().all(|f| exact(f.data_type())) {
            return None;
        }
        Some((|| {
            sink.start(from_duckdb_schema(&schema)?)?;
            for b in result {
                sink.batch(from_duckdb_arrow(&b.map_err(|e| e.to_string())?)?)?;
            }
            Ok(())
        })())
    }

    fn query_into(&mut self, sql: &str, sink: &mut dyn RowSink) -> Result<(), String> {
        if !super::is_select(sql) {
            // `run_query("insert …")`, DDL: run as written (a statement cannot be wrapped), no rows.
            self.0.execute_batch(sql).map_err(|e| e.to_string())?;
            sink.start(vec![], vec![])?;
            return super::feed(std::iter::empty::<Result<_, String>>(), sink);
        }
        let described = strings(&self.0, &format!("describe select * from (\n{sql}\n) dvt_describe"), &[])?;
        let (columns, types): (Vec<String>, Vec<String>) = described
            .rows
            .into_iter()
            .map(|r| (r.first().cloned().flatten().unwrap_or_default(), r.get(1).cloned().flatten().unwrap_or_default()))
            .unzip();
        let n = columns.len();
        sink.start(columns, types)?;
        // Every value as text, whatever its type.
        let mut st = self.0.prepare(&format!("select columns(*)::varchar from (\n{sql}\n) dvt_show")).map_err(|e| e.to_string())?;
        let mut rows = st.query([]).map_err(|e| e.to_string())?;
        let iter = std::iter::from_fn(|| match rows.next() {
            Ok(Some(r)) => Some(Ok((0..n).map(|i| r.get::<_, Option<String>>(i).unwrap_or(None)).collect())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        });
        super::feed(iter, sink)
    }

    fn relation_kind(&mut self, schema: Option<&str>, identifier: &str) -> Result<Option<RelationKind>, String> {
        let r = strings(&self.0, super::TABLE_TYPE_SQL, &[schema.unwrap_or("main"), identifier])?;
        Ok(r.rows.first().and_then(|row| row[0].clone()).map(|k| super::kind_of(&k)))
    }

    fn columns(&mut self, schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String> {
        let r = strings(&self.0, super::COLUMNS_SQL, &[schema.unwrap_or("main"), identifier])?;
        Ok(r.rows.into_iter().map(|row| (row[0].clone().unwrap_or_default(), row[1].clone().unwrap_or_default())).collect())
    }

    fn row_estimate(&mut self, schema: Option<&str>, identifier: &str) -> Option<u64> {
        // DuckDB keeps the row count of each table.
        let r = strings(
            &self.0,
            "select estimated_size::varchar from duckdb_tables() where schema_name = ? and table_name = ?",
            &[schema.unwrap_or("main"), identifier],
        )
        .ok()?;
        r.rows.first()?.first()?.as_ref()?.parse().ok()
    }

    fn load_csv(&mut self, rel: &str, csv: &CsvFile) -> Option<Result<u64, String>> {
        // DuckDB's parallel CSV reader with DVT's column names and types, no sniffing.
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let cols: Vec<String> = csv.columns.iter().map(|(n, t)| format!("{}: {}", lit(n), lit(t))).collect();
        let nulls = if csv.empty_as_null { "nullstr = '', allow_quoted_nulls = true" } else { "nullstr = [], allow_quoted_nulls = false" };
        let sql = format!(
            "insert into {rel} select * from read_csv({}, header = true, delim = {}, quote = '\"', escape = '\"', columns = {{{}}}, auto_detect = false, strict_mode = true, {nulls})",
            lit(&csv.path.display().to_string()),
            lit(&(csv.delimiter as char).to_string()),
            cols.join(", ")
        );
        Some(self.0.prepare(&sql).and_then(|mut st| st.execute([])).map(|n| n as u64).map_err(|e| format!("{}: {e}", csv.display)))
    }

    fn load(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String> {
        // DuckDB's appender: values go in as text and DuckDB casts each to its column's
        // type (an error names the value), far faster than prepared INSERTs.
        let mut app = appender(&self.0, rel)?;
        let mut n = 0u64;
        for r in rows {
            let r = r?;
            if r.len() != ncols {
                return Err(format!("row {} has {} values, the table has {ncols} columns", n + 1, r.len()));
            }
            app.append_row(duckdb::appender_params_from_iter(r.iter())).map_err(|e| format!("row {}: {e}", n + 1))?;
            n += 1;
        }
        app.flush().map_err(|e| e.to_string())?;
        Ok(n)
    }

    fn load_arrow(&mut self, rel: &str, batches: &mut BatchStream<'_>) -> Option<Result<u64, String>> {
        // Arrow columns go into DuckDB's vectors as they are: no text, no casts.
        Some((|| {
            let mut app = appender(&self.0, rel)?;
            let mut n = 0u64;
            for b in batches {
                let b = b?;
                for (c, f) in b.columns().iter().zip(b.schema().fields()) {
                    // DuckDB stores narrow decimals in 64 bits: a value over its precision must not wrap.
                    if let DataType::Decimal128(p, _) = f.data_type() {
                        c.as_any()
                            .downcast_ref::<Decimal128Array>()
                            .map_or(Ok(()), |d| d.validate_decimal_precision(*p))
                            .map_err(|e| format!("column `{}`: {e}", f.name()))?;
                    }
                }
                n += b.num_rows() as u64;
                app.append_record_batch(to_duckdb_arrow(&b)?).map_err(|e| e.to_string())?;
            }
            app.flush().map_err(|e| e.to_string())?;
            Ok(n)
        })())
    }
}

/// An appender for a rendered relation.
fn appender<'c>(conn: &'c duckdb::Connection, rel: &str) -> Result<duckdb::Appender<'c>, String> {
    let parts = identifiers(rel);
    let (catalog, schema, table) = match parts.as_slice() {
        [c, s, t] => (Some(c.as_str()), s.as_str(), t.as_str()),
        [s, t] => (None, s.as_str(), t.as_str()),
        [t] => (None, "main", t.as_str()),
        _ => return Err(format!("cannot append to `{rel}`")),
    };
    match catalog {
        Some(c) => conn.appender_to_catalog_and_db(table, c, schema),
        None => conn.appender_to_db(table, schema),
    }
    .map_err(|e| e.to_string())
}

/// A batch of DuckDB's crate's Arrow as DataFusion's (the reverse of [`to_duckdb_arrow`]).
fn from_duckdb_arrow(b: &duckdb::arrow::record_batch::RecordBatch) -> Result<RecordBatch, String> {
    let data = duckdb::arrow::array::Array::into_data(duckdb::arrow::array::StructArray::from(b.clone()));
    let (array, schema) = duckdb::arrow::ffi::to_ffi(&data).map_err(|e| e.to_string())?;
    // SAFETY: as in `to_duckdb_arrow`, the other way round.
    let array: arrow::ffi::FFI_ArrowArray = unsafe { std::mem::transmute(array) };
    let schema: arrow::ffi::FFI_ArrowSchema = unsafe { std::mem::transmute(schema) };
    // SAFETY: `array` and `schema` are valid C Data Interface structs produced just above.
    let data = unsafe { arrow::ffi::from_ffi(array, &schema) }.map_err(|e| e.to_string())?;
    Ok(RecordBatch::from(StructArray::from(data)))
}

/// DuckDB's crate's Arrow schema as DataFusion's.
fn from_duckdb_schema(s: &duckdb::arrow::datatypes::Schema) -> Result<SchemaRef, String> {
    let ffi = duckdb::arrow::ffi::FFI_ArrowSchema::try_from(s).map_err(|e| e.to_string())?;
    // SAFETY: the C Data Interface's ArrowSchema in both crates (see `to_duckdb_arrow`).
    let ffi: arrow::ffi::FFI_ArrowSchema = unsafe { std::mem::transmute(ffi) };
    Ok(std::sync::Arc::new(datafusion::arrow::datatypes::Schema::try_from(&ffi).map_err(|e| e.to_string())?))
}

/// A batch of DataFusion's Arrow as the Arrow DuckDB's crate is built on (another
/// major version), through the Arrow C Data Interface: the buffers are shared, not copied.
fn to_duckdb_arrow(b: &RecordBatch) -> Result<duckdb::arrow::record_batch::RecordBatch, String> {
    let data = StructArray::from(b.clone()).into_data();
    let (array, schema) = arrow::ffi::to_ffi(&data).map_err(|e| e.to_string())?;
    // SAFETY: both crates' FFI_ArrowArray/FFI_ArrowSchema are the C Data Interface's
    // #[repr(C)] ArrowArray/ArrowSchema (same layout; transmute checks the size); the
    // release callbacks travel with them, so the buffers are freed exactly once.
    let array: duckdb::arrow::ffi::FFI_ArrowArray = unsafe { std::mem::transmute(array) };
    let schema: duckdb::arrow::ffi::FFI_ArrowSchema = unsafe { std::mem::transmute(schema) };
    // SAFETY: `array` and `schema` are valid C Data Interface structs produced just above.
    let data = unsafe { duckdb::arrow::ffi::from_ffi(array, &schema) }.map_err(|e| e.to_string())?;
    Ok(duckdb::arrow::record_batch::RecordBatch::from(duckdb::arrow::array::StructArray::from(data)))
}

/// The identifiers of a rendered relation (`"db"."schema"."table"`).
fn identifiers(rel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = rel.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use crate::connectors::Connection;

    #[test]
    fn arrow_batches_append_exactly_and_overflowing_decimals_are_refused() {
        let mut duck = super::Duck(duckdb::Connection::open_in_memory().unwrap());
        duck.execute("create table t (d decimal(4, 2), s varchar, b boolean, ts timestamptz)").unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Decimal128(4, 2), true),
            Field::new("s", DataType::Utf8, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]));
        let batch = |d: i128| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Decimal128Array::from(vec![Some(d), None]).with_precision_and_scale(4, 2).unwrap()),
                    Arc::new(StringArray::from(vec![Some("a\tb"), None])),
                    Arc::new(BooleanArray::from(vec![Some(true), None])),
                    Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None]).with_timezone("UTC")),
                ],
            )
            .unwrap()
        };
        let mut ok = vec![Ok(batch(1234))].into_iter();
        assert_eq!(duck.load_arrow("t", &mut ok).unwrap().unwrap(), 2);
        let rows = duck.query("select d, s, b, epoch_us(ts) from t order by d nulls last").unwrap().rows;
        assert_eq!(rows[0], [Some("12.34".into()), Some("a\tb".into()), Some("true".into()), Some("1700000000000000".into())]);
        assert_eq!(rows[1], [None, None, None, None]);
        // 123.45 does not fit decimal(4, 2): refused, never wrapped.
        let mut over = vec![Ok(batch(12345))].into_iter();
        assert!(duck.load_arrow("t", &mut over).unwrap().unwrap_err().contains("`d`"));
    }

    #[test]
    fn results_come_back_as_arrow_only_in_types_read_exactly() {
        let mut duck = super::Duck(duckdb::Connection::open_in_memory().unwrap());
        #[derive(Default)]
        struct Keep(Option<super::SchemaRef>, Vec<RecordBatch>);
        impl super::super::ArrowSink for Keep {
            fn start(&mut self, schema: super::SchemaRef) -> Result<(), String> {
                self.0 = Some(schema);
                Ok(())
            }
            fn batch(&mut self, b: RecordBatch) -> Result<(), String> {
                self.1.push(b);
                Ok(())
            }
        }
        let mut keep = Keep::default();
        duck.query_arrow(
            "select 1::integer as i, 12.5::decimal(4, 2) as d, 'x' as s, null::date as dt, timestamptz '2024-01-01 00:00:00+00' as tz",
            &mut keep,
        )
        .unwrap()
        .unwrap();
        let (schema, batches) = (keep.0.unwrap(), keep.1);
        let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
        assert_eq!(types[..4], ["Int32", "Decimal128(4, 2)", "Utf8", "Date32"]);
        assert!(types[4].starts_with("Timestamp(µs") || types[4].starts_with("Timestamp(Microsecond"), "{types:?}");
        let rows: Vec<_> = crate::arrow_rows::text_rows(&batches, &schema, dvt_compiler::dialect::Dialect::Postgres)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows[0][..4], [Some("1".to_string()), Some("12.50".to_string()), Some("x".to_string()), None]);
        // Floats (text keeps their printed digits) and nested types go through text.
        assert!(duck.query_arrow("select 1.5::float as f", &mut Keep::default()).is_none());
        assert!(duck.query_arrow("select [1, 2] as l", &mut Keep::default()).is_none());
        // A failing query is an error, not a panic; so is one that fails while it streams.
        assert!(duck.query_arrow("select * from missing_table", &mut Keep::default()).unwrap().is_err());
        let failing = "select case when i < 300000 then i else error('boom at ' || i) end as i from range(400000) t(i)";
        let err = duck.query_arrow(failing, &mut Keep::default()).unwrap().unwrap_err();
        assert!(err.contains("boom"), "{err}");
    }

    #[test]
    fn identifiers_of_rendered_relations() {
        assert_eq!(super::identifiers("\"w\".\"main\".\"a \"\"b\"\".c\""), ["w", "main", "a \"b\".c"]);
        assert_eq!(super::identifiers("\"t\""), ["t"]);
    }
}
