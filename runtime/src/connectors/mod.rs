//! Database connections, one file per engine, behind one small interface.

mod duckdb;
mod mysql;
mod pg_binary;
mod pool;
mod postgres;
mod sqlite;
mod tls;

pub use pool::{Pool, Pooled};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use dvt_schema::plan::RelationRef;

use crate::credentials::Credentials;

pub use duckdb::release as release_embedded;

/// What exists at a relation's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    Table,
    View,
}

/// A query result, values rendered as text (NULL as None).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Rows per chunk handed to a [`RowSink`]: big enough to amortize per-chunk
/// work, small enough that a chunk's text is a few MB.
pub const CHUNK_ROWS: usize = 8192;

/// Receives a query's result chunk by chunk (see [`Connection::query_into`]).
pub trait RowSink {
    /// Column names and the engine's type names, before any rows.
    fn start(&mut self, columns: Vec<String>, types: Vec<String>) -> Result<(), String>;
    /// The next rows, at most [`CHUNK_ROWS`] of them.
    fn rows(&mut self, rows: Vec<Vec<Option<String>>>) -> Result<(), String>;
}

/// Receives a query's result as Arrow (see [`Connection::query_arrow`]).
pub trait ArrowSink {
    /// The result's schema, before any batch.
    fn start(&mut self, schema: SchemaRef) -> Result<(), String>;
    /// The next batch.
    fn batch(&mut self, batch: RecordBatch) -> Result<(), String>;
}

/// A sink that keeps everything: what `query_typed` returns.
#[derive(Default)]
struct Collect {
    types: Vec<String>,
    rows: Rows,
}

impl RowSink for Collect {
    fn start(&mut self, columns: Vec<String>, types: Vec<String>) -> Result<(), String> {
        self.rows.columns = columns;
        self.types = types;
        Ok(())
    }
    fn rows(&mut self, mut rows: Vec<Vec<Option<String>>>) -> Result<(), String> {
        self.rows.rows.append(&mut rows);
        Ok(())
    }
}

/// Chunks of a row iterator into `sink`.
pub(crate) fn feed<E: std::fmt::Display>(
    rows: impl Iterator<Item = Result<Vec<Option<String>>, E>>,
    sink: &mut dyn RowSink,
) -> Result<(), String> {
    let mut chunk = Vec::with_capacity(CHUNK_ROWS);
    for row in rows {
        chunk.push(row.map_err(|e| e.to_string())?);
        if chunk.len() == CHUNK_ROWS {
            sink.rows(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS)))?;
        }
    }
    if !chunk.is_empty() {
        sink.rows(chunk)?;
    }
    Ok(())
}

/// Rows pulled one at a time by a bulk load (values as text, NULL as None).
pub type RowStream<'a> = dyn Iterator<Item = Result<Vec<Option<String>>, String>> + 'a;

/// A CSV seed as an engine's native reader needs it.
#[derive(Debug, Clone)]
pub struct CsvFile {
    pub path: std::path::PathBuf,
    /// As shown in messages (relative to the project).
    pub display: String,
    pub delimiter: u8,
    /// Header names, in file order, with their portable SQL types.
    pub columns: Vec<(String, String)>,
    /// Empty fields (quoted or not) load as NULL.
    pub empty_as_null: bool,
}

/// One open connection.
pub trait Connection: Send {
    /// Runs one statement.
    fn execute(&mut self, sql: &str) -> Result<(), String>;
    /// Runs a query and returns its rows.
    fn query(&mut self, sql: &str) -> Result<Rows, String>;
    /// Runs a query and streams its rows into `sink` chunk by chunk (the whole
    /// result is never held as text), after the column names and each column's
    /// type as the engine names it (`numeric`, `decimal(12,2)`, `int4`, …;
    /// empty when the engine does not say, as for SQLite expressions).
    fn query_into(&mut self, sql: &str, sink: &mut dyn RowSink) -> Result<(), String>;
    /// Runs a query and streams its result into `sink` as Arrow batches while the
    /// engine produces them, when it hands results over as Arrow in types DVT
    /// reads exactly (None: it does not, `sink` is untouched; use [`Connection::query_into`]).
    fn query_arrow(&mut self, sql: &str, sink: &mut dyn ArrowSink) -> Option<Result<(), String>> {
        let _ = (sql, sink);
        None
    }
    /// Runs a query and returns its rows with each column's engine type (as [`Connection::query_into`]).
    fn query_typed(&mut self, sql: &str) -> Result<(Vec<String>, Rows), String> {
        let mut all = Collect::default();
        self.query_into(sql, &mut all)?;
        Ok((all.types, all.rows))
    }
    /// What exists at `schema.identifier`, if anything.
    fn relation_kind(&mut self, schema: Option<&str>, identifier: &str) -> Result<Option<RelationKind>, String>;
    /// Columns of `schema.identifier` in order: name and the engine's type name.
    fn columns(&mut self, schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String>;
    /// Rows of a table where that is cheap to know (a small table's count, or the
    /// engine's own estimate); None otherwise.
    fn row_estimate(&mut self, schema: Option<&str>, identifier: &str) -> Option<u64> {
        let _ = (schema, identifier);
        None
    }
    /// Loads a CSV file straight through the engine's own CSV reader, when it has
    /// one that reads the file exactly as DVT's reader does (None: it has not).
    fn load_csv(&mut self, rel: &str, csv: &CsvFile) -> Option<Result<u64, String>> {
        let _ = (rel, csv);
        None
    }
    /// Loads rows into `rel` (rendered) through the engine's bulk path, in one
    /// transaction, streaming (rows are pulled one at a time). Returns the count.
    fn load(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String>;
    /// Waits until no other run (another `dvtr`, another machine) writes the
    /// relation `rendered`, then holds it until [`Connection::unlock_relation`] or
    /// until the connection closes (a crashed run releases it): PostgreSQL's
    /// advisory locks, MariaDB's `GET_LOCK`, a lock file next to a SQLite file.
    /// DuckDB needs none: one process at a time opens a file.
    fn lock_relation(&mut self, rendered: &str) -> Result<(), String> {
        let _ = rendered;
        Ok(())
    }
    /// Releases what [`Connection::lock_relation`] took.
    fn unlock_relation(&mut self, rendered: &str) -> Result<(), String> {
        let _ = rendered;
        Ok(())
    }
    /// Loads Arrow batches into `rel` when the engine takes Arrow directly (None:
    /// it does not, and `batches` is untouched; use [`Connection::load`]).
    fn load_arrow(&mut self, rel: &str, batches: &mut BatchStream<'_>) -> Option<Result<u64, String>> {
        let _ = (rel, batches);
        None
    }
}

/// The lock name of a relation: `dvt:` and 16 hex digits of its SHA-256 (fits
/// every engine's limit on lock names, and names no secret).
pub(crate) fn lock_name(rendered: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(rendered.as_bytes());
    format!("dvt:{}", h.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>())
}

/// Arrow batches pulled one at a time by a bulk load.
pub type BatchStream<'a> = dyn Iterator<Item = Result<RecordBatch, String>> + 'a;

/// information_schema lookups shared by PostgreSQL, MariaDB and DuckDB
/// (parameters: schema, table name).
pub(crate) const TABLE_TYPE_SQL: &str = "select table_type from information_schema.tables where table_schema = ? and table_name = ?";
/// Tables smaller than this are counted exactly for the docs catalog.
pub(crate) const CHEAP_COUNT_BYTES: u64 = 64 << 20;

pub(crate) const COLUMNS_SQL: &str =
    "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? order by ordinal_position";

/// An information_schema `table_type` as a relation kind.
pub(crate) fn kind_of(table_type: &str) -> RelationKind {
    if table_type.eq_ignore_ascii_case("view") { RelationKind::View } else { RelationKind::Table }
}

/// Opens a connection to an output.
pub fn connect(c: &Credentials) -> Result<Box<dyn Connection>, String> {
    match c.kind.as_str() {
        "postgres" | "postgresql" => postgres::open(c).map(|x| Box::new(x) as Box<dyn Connection>),
        "mysql" | "mariadb" => mysql::open(c).map(|x| Box::new(x) as Box<dyn Connection>),
        "sqlite" => sqlite::open(c).map(|x| Box::new(x) as Box<dyn Connection>),
        "duckdb" => duckdb::open(c).map(|x| Box::new(x) as Box<dyn Connection>),
        other => Err(format!(
            "output `{}` has type `{other}`, which dvtr cannot connect to (postgres, mysql, sqlite and duckdb are built in)",
            c.name
        )),
    }
}

/// Appends `v` in the escaped text format PostgreSQL's COPY and MySQL's LOAD
/// DATA share (backslash escapes for backslash, tab, newline, carriage return).
pub(crate) fn escape_text(v: &str, out: &mut String) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The schema/identifier pair of a relation for catalog lookups.
pub fn parts(r: &RelationRef) -> (Option<&str>, &str) {
    (r.schema.as_deref(), r.identifier.as_str())
}

/// Whether `sql` is a query that returns rows (SELECT, WITH, VALUES, FROM-first,
/// TABLE, SHOW, DESCRIBE…), as opposed to a statement (INSERT, CREATE, …), going
/// by its first keyword after comments and parentheses.
pub(crate) fn is_select(sql: &str) -> bool {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after).trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after).trim_start();
        } else if let Some(r) = rest.strip_prefix('(') {
            rest = r.trim_start();
        } else {
            break;
        }
    }
    let word: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_lowercase();
    matches!(word.as_str(), "select" | "with" | "values" | "from" | "table" | "show" | "describe" | "summarize" | "pivot" | "unpivot")
}

#[cfg(test)]
mod is_select_tests {
    #[test]
    fn queries_and_statements_by_first_keyword() {
        for q in ["select 1", " (select 1)", "-- c\nWITH x as (select 1) select * from x", "/* c */ values (1)", "from t", "describe t"] {
            assert!(super::is_select(q), "{q}");
        }
        for s in ["insert into t values (1)", "\n  create table t (a int)", "-- select\ndelete from t", "update t set a = 1"] {
            assert!(!super::is_select(s), "{s}");
        }
    }
}
