//! Values between the databases and the compute. Drivers hand values over as
//! text with the engine's type name; they become typed Arrow columns here, and
//! Arrow results become text rows again for a target's bulk path. Every
//! conversion is exact or fails with the column and value: nothing is
//! silently truncated (SPEC §3).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{CastOptions, cast_with_options, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use dvt_compiler::dialect::{Dialect, LogicalType};

use crate::connectors::{RowSink, Rows};

const UTC: &str = "UTC";

/// The Arrow type of a column from its engine type name (`numeric(12,2)`,
/// `int4`, `timestamptz`, …) and, where the name does not fix it (unbounded
/// numeric, untyped SQLite expressions), from the values themselves.
pub fn arrow_type(engine_type: &str, values: &[Option<&str>]) -> DataType {
    fixed_type(engine_type).unwrap_or_else(|| {
        let mut fold = TypeFold::new(engine_type);
        values.iter().flatten().for_each(|v| fold.add(v));
        fold.data_type()
    })
}

/// The Arrow type an engine type name fixes by itself; None when the values
/// decide (unbounded numeric, no type at all).
fn fixed_type(engine_type: &str) -> Option<DataType> {
    let t = engine_type.trim().to_ascii_lowercase();
    let (base, args) = t.split_once('(').map_or((t.as_str(), ""), |(b, a)| (b.trim(), a.trim_end_matches(')')));
    Some(match base {
        "bool" | "boolean" => DataType::Boolean,
        // Every integer reads as Int64: lossless, and joins between engines compare like with like
        // (DataFusion 55 can fail to coerce Int32 = Int64 inside join filters).
        "int2" | "int4" | "smallint" | "int" | "integer" | "tinyint" | "mediumint" | "utinyint" | "usmallint" | "int8" | "bigint"
        | "long" | "uinteger" => DataType::Int64,
        "hugeint" | "ubigint" | "uhugeint" => DataType::Decimal128(38, 0),
        "float4" | "real" | "float" | "float8" | "double" | "double precision" => DataType::Float64,
        "numeric" | "decimal" => {
            let mut it = args.split(',').map(|x| x.trim().parse::<u8>().ok());
            match (it.next().flatten(), it.next().flatten()) {
                (Some(p), s) if p <= 38 => DataType::Decimal128(p, s.unwrap_or(0) as i8),
                _ => return None,
            }
        }
        "date" => DataType::Date32,
        "timestamp" | "datetime" | "timestamp without time zone" | "timestamp_ns" | "timestamp_ms" | "timestamp_s" => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        "timestamptz" | "timestamp with time zone" => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        "" => return None,
        _ => DataType::Utf8,
    })
}

/// The type a declared (plan) or engine-given Arrow type is read as:
/// integers widen to Int64 and zoned timestamps are UTC, as when the
/// engines' type names decide (see [`fixed_type`]).
pub fn compute_type(declared: DataType) -> DataType {
    match declared {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::Int64,
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(unit, Some(UTC.into())),
        other => other,
    }
}

/// A text column as `to`, failing on any value that does not convert exactly.
fn convert(column: &str, values: Vec<Option<String>>, to: &DataType) -> Result<ArrayRef, String> {
    let strict = CastOptions { safe: false, ..Default::default() };
    match to {
        DataType::Boolean => {
            let mut out = Vec::with_capacity(values.len());
            for v in &values {
                out.push(match v.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
                    None => None,
                    Some(s) if matches!(s.as_str(), "t" | "true" | "1" | "y" | "yes" | "on") => Some(true),
                    Some(s) if matches!(s.as_str(), "f" | "false" | "0" | "n" | "no" | "off") => Some(false),
                    Some(s) => return Err(format!("column `{column}`: `{s}` is not a boolean")),
                });
            }
            Ok(Arc::new(BooleanArray::from(out)))
        }
        DataType::Utf8 => Ok(Arc::new(StringArray::from(values))),
        DataType::Timestamp(_, Some(_)) => {
            // PostgreSQL and DuckDB print zones as `+00`; Arrow wants `+00:00`.
            let fixed: Vec<Option<String>> = values
                .into_iter()
                .map(|v| {
                    v.map(|s| {
                        let b = s.as_bytes();
                        let short_zone =
                            b.len() > 3 && matches!(b[b.len() - 3], b'+' | b'-') && b[b.len() - 2..].iter().all(u8::is_ascii_digit);
                        if short_zone { format!("{s}:00") } else { s }
                    })
                })
                .collect();
            cast_with_options(&StringArray::from(fixed), to, &strict).map_err(|e| format!("column `{column}`: {e}"))
        }
        _ => cast_with_options(&StringArray::from(values), to, &strict).map_err(|e| format!("column `{column}`: {e}")),
    }
}

/// The type of a column the values decide, folded chunk by chunk so the
/// values need not be kept (see [`arrow_type`]: untyped columns are integers,
/// then floats, else text; unbounded numerics the narrowest exact decimal).
#[derive(Debug, Clone)]
struct TypeFold {
    untyped: bool,
    all_int: bool,
    all_float: bool,
    decimal: bool,
    int_digits: usize,
    scale: usize,
}

impl TypeFold {
    fn new(engine_type: &str) -> Self {
        TypeFold { untyped: engine_type.trim().is_empty(), all_int: true, all_float: true, decimal: true, int_digits: 1, scale: 0 }
    }

    fn add(&mut self, v: &str) {
        if self.untyped {
            let int = v.parse::<i64>().is_ok();
            self.all_int &= int;
            self.all_float &= int || v.parse::<f64>().is_ok();
            return;
        }
        if !self.decimal {
            return;
        }
        let digits = v.strip_prefix('-').unwrap_or(v);
        let (i, f) = digits.split_once('.').unwrap_or((digits, ""));
        if i.is_empty() && f.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) || !f.bytes().all(|b| b.is_ascii_digit()) {
            self.decimal = false;
            return;
        }
        self.int_digits = self.int_digits.max(i.trim_start_matches('0').len());
        self.scale = self.scale.max(f.len());
    }

    fn data_type(&self) -> DataType {
        if self.untyped {
            return if self.all_int {
                DataType::Int64
            } else if self.all_float {
                DataType::Float64
            } else {
                DataType::Utf8
            };
        }
        if self.decimal && self.int_digits + self.scale <= 38 { DataType::Decimal128(38, self.scale as i8) } else { DataType::Utf8 }
    }
}

/// Builds record batches from a query's chunks (a [`RowSink`]). Columns
/// whose type the plan declares or the engine's type name fixes convert chunk
/// by chunk; columns typed by their values (unbounded numerics, untyped
/// SQLite expressions) stay text until [`BatchBuilder::finish`], when every
/// value has been seen, and are converted then. [`BatchBuilder::take_raw`]
/// hands the chunks over early (text columns still text) so a caller can
/// spill them and convert when reading them back.
pub struct BatchBuilder {
    /// Declared types by lower-case column name.
    declared: BTreeMap<String, DataType>,
    columns: Vec<String>,
    /// Per column: the type the plan or the engine fixes, or the fold of its values.
    fixed: Vec<Option<DataType>>,
    folds: Vec<TypeFold>,
    /// Chunks not taken yet, value-typed columns as text.
    chunks: Vec<RecordBatch>,
    raw_schema: SchemaRef,
    /// Bytes of Arrow memory in `chunks`.
    held: usize,
}

impl BatchBuilder {
    /// `declared`: the plan's types by lower-case column name; they win over the engine's.
    pub fn new(declared: BTreeMap<String, DataType>) -> Self {
        BatchBuilder {
            declared,
            columns: vec![],
            fixed: vec![],
            folds: vec![],
            chunks: vec![],
            raw_schema: Arc::new(Schema::empty()),
            held: 0,
        }
    }

    /// Bytes the chunks not taken yet hold.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Whether every column's type is fixed up front (by the plan or the
    /// engine), so chunks are final as they come (valid after `start`).
    pub fn all_fixed(&self) -> bool {
        self.fixed.iter().all(Option::is_some)
    }

    /// The schema of [`BatchBuilder::take_raw`]'s batches: value-typed columns as text.
    pub fn raw_schema(&self) -> SchemaRef {
        self.raw_schema.clone()
    }

    /// The chunks read so far, value-typed columns still text.
    pub fn take_raw(&mut self) -> Vec<RecordBatch> {
        self.held = 0;
        std::mem::take(&mut self.chunks)
    }

    /// Each column's final type (valid once every row has been read).
    pub fn final_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| Field::new(name, self.fixed[i].clone().unwrap_or_else(|| self.folds[i].data_type()), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The batches (one per chunk) and their schema.
    pub fn finish(mut self) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
        let schema = self.final_schema();
        let batches = self.take_raw().into_iter().map(|b| finish_raw(&schema, b)).collect::<Result<Vec<_>, _>>()?;
        Ok((schema, batches))
    }
}

/// A raw chunk (value-typed columns as text) in its final types.
pub fn finish_raw(schema: &SchemaRef, b: RecordBatch) -> Result<RecordBatch, String> {
    let columns = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(a, f)| {
            if a.data_type() == f.data_type() {
                return Ok(a.clone());
            }
            let text = a.as_any().downcast_ref::<StringArray>().ok_or_else(|| format!("column `{}` is not text", f.name()))?;
            convert(f.name(), text.iter().map(|v| v.map(str::to_string)).collect(), f.data_type())
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

impl RowSink for BatchBuilder {
    fn start(&mut self, columns: Vec<String>, types: Vec<String>) -> Result<(), String> {
        let engine_type = |i: usize| types.get(i).map_or("", String::as_str);
        self.fixed = columns
            .iter()
            .enumerate()
            .map(|(i, c)| self.declared.get(&c.to_ascii_lowercase()).cloned().or_else(|| fixed_type(engine_type(i))))
            .collect();
        self.folds = (0..columns.len()).map(|i| TypeFold::new(engine_type(i))).collect();
        let fields: Vec<Field> =
            columns.iter().enumerate().map(|(i, c)| Field::new(c, self.fixed[i].clone().unwrap_or(DataType::Utf8), true)).collect();
        self.raw_schema = Arc::new(Schema::new(fields));
        self.columns = columns;
        Ok(())
    }

    fn rows(&mut self, rows: Vec<Vec<Option<String>>>) -> Result<(), String> {
        let n = self.columns.len();
        let mut cols: Vec<Vec<Option<String>>> = (0..n).map(|_| Vec::with_capacity(rows.len())).collect();
        for row in rows {
            for (i, v) in row.into_iter().enumerate().take(n) {
                cols[i].push(v);
            }
        }
        let mut arrays = Vec::with_capacity(n);
        for (i, values) in cols.into_iter().enumerate() {
            match &self.fixed[i] {
                Some(dt) => arrays.push(convert(&self.columns[i], values, dt)?),
                None => {
                    for v in values.iter().flatten() {
                        self.folds[i].add(v);
                    }
                    arrays.push(Arc::new(StringArray::from(values)) as ArrayRef);
                }
            }
        }
        let batch = RecordBatch::try_new(self.raw_schema.clone(), arrays).map_err(|e| e.to_string())?;
        self.held += batch.get_array_memory_size();
        self.chunks.push(batch);
        Ok(())
    }
}

/// A query result as one record batch. `declared` types (from the plan, by
/// position) win over the engine's names.
pub fn to_batch(rows: Rows, engine_types: &[String], declared: &[Option<DataType>]) -> Result<RecordBatch, String> {
    let by_name = rows.columns.iter().zip(declared).filter_map(|(c, d)| d.clone().map(|d| (c.to_ascii_lowercase(), d))).collect();
    let mut b = BatchBuilder::new(by_name);
    b.start(rows.columns, engine_types.to_vec())?;
    if !rows.rows.is_empty() {
        b.rows(rows.rows)?;
    }
    let (schema, batches) = b.finish()?;
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema)),
        _ => concat_batches(&schema, &batches).map_err(|e| e.to_string()),
    }
}

/// The SQL type a result column is written as.
pub fn logical_type(dt: &DataType) -> LogicalType {
    match dt {
        DataType::Boolean => LogicalType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => LogicalType::Integer,
        DataType::Int64 | DataType::UInt32 => LogicalType::BigInt,
        DataType::UInt64 => LogicalType::Decimal(20, 0),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => LogicalType::Float,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            LogicalType::Decimal(*p, (*s).max(0) as u8)
        }
        DataType::Date32 | DataType::Date64 => LogicalType::Date,
        DataType::Timestamp(_, None) => LogicalType::Timestamp,
        DataType::Timestamp(_, Some(_)) => LogicalType::TimestampTz,
        _ => LogicalType::Text,
    }
}

/// Record batches as text rows for `dialect`'s bulk path: booleans as 1/0
/// where the engine has no boolean literal, zoned timestamps in UTC without
/// an offset where the engine has no zone type.
pub fn text_rows<'a>(
    batches: &'a [RecordBatch],
    schema: &SchemaRef,
    dialect: Dialect,
) -> Result<impl Iterator<Item = Result<Vec<Option<String>>, String>> + 'a, String> {
    let numeric_bools = matches!(dialect, Dialect::Mysql | Dialect::Sqlite);
    let ts_tz = if matches!(dialect, Dialect::Mysql) { "%Y-%m-%d %H:%M:%S%.f" } else { "%Y-%m-%d %H:%M:%S%.f%:z" };
    let opts = FormatOptions::new()
        .with_date_format(Some("%Y-%m-%d"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some(ts_tz));
    let kinds: Vec<bool> = schema.fields().iter().map(|f| f.data_type() == &DataType::Boolean).collect();
    let mut per_batch = Vec::with_capacity(batches.len());
    for b in batches {
        let fmts: Vec<ArrayFormatter<'a>> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
        per_batch.push((b, fmts));
    }
    Ok(per_batch.into_iter().flat_map(move |(b, fmts)| {
        let kinds = kinds.clone();
        (0..b.num_rows()).map(move |row| {
            Ok(fmts
                .iter()
                .zip(b.columns())
                .zip(&kinds)
                .map(|((f, col), is_bool)| {
                    if col.is_null(row) {
                        None
                    } else {
                        let s = f.value(row).to_string();
                        Some(if *is_bool && numeric_bools { if s == "true" { "1".into() } else { "0".into() } } else { s })
                    }
                })
                .collect())
        })
    }))
}

/// Batches as text rows for a bulk load, one batch converted at a time.
pub struct TextRows<I> {
    batches: I,
    schema: SchemaRef,
    dialect: Dialect,
    rows: std::vec::IntoIter<Vec<Option<String>>>,
}

impl<I> TextRows<I> {
    pub fn new(batches: I, schema: SchemaRef, dialect: Dialect) -> Self {
        TextRows { batches, schema, dialect, rows: Vec::new().into_iter() }
    }
}

impl<I: Iterator<Item = Result<RecordBatch, String>>> Iterator for TextRows<I> {
    type Item = Result<Vec<Option<String>>, String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.rows.next() {
                return Some(Ok(r));
            }
            let batch = match self.batches.next()? {
                Ok(b) => b,
                Err(e) => return Some(Err(e)),
            };
            match text_rows(std::slice::from_ref(&batch), &self.schema, self.dialect).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
                Ok(rows) => self.rows = rows.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Casts of columns to declared types (an error, never a truncation).
pub struct Cast {
    pub schema: SchemaRef,
    /// Per column: the type to cast to, when it differs.
    to: Vec<Option<DataType>>,
}

impl Cast {
    pub fn new(schema: &SchemaRef, casts: &BTreeMap<String, DataType>) -> Self {
        let to: Vec<Option<DataType>> =
            schema.fields().iter().map(|f| casts.get(&f.name().to_ascii_lowercase()).filter(|t| *t != f.data_type()).cloned()).collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&to)
            .map(|(f, t)| Field::new(f.name(), t.clone().unwrap_or_else(|| f.data_type().clone()), true))
            .collect();
        Cast { schema: Arc::new(Schema::new(fields)), to }
    }

    /// `b` with the casts applied.
    pub fn batch(&self, b: RecordBatch) -> Result<RecordBatch, String> {
        let strict = CastOptions { safe: false, ..Default::default() };
        let mut cols = Vec::with_capacity(b.num_columns());
        for ((c, t), f) in b.columns().iter().zip(&self.to).zip(self.schema.fields()) {
            cols.push(match t {
                Some(t) => cast_with_options(c, t, &strict).map_err(|e| format!("column `{}` as {t}: {e}", f.name()))?,
                None => c.clone(),
            });
        }
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| e.to_string())
    }
}

/// Declared SQL types (`numeric(12,2)`, …) by column as Arrow types, by lower-case name.
pub fn declared_types<'a>(types: impl Iterator<Item = (&'a String, &'a String)>) -> BTreeMap<String, DataType> {
    types
        .filter_map(|(k, t)| {
            dvt_compiler::compile::arrow_type(t).and_then(|a| DataType::from_str(&a).ok()).map(|a| (k.to_ascii_lowercase(), a))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(vals: &[[Option<&str>; 3]]) -> Vec<Vec<Option<String>>> {
        vals.iter().map(|r| r.iter().map(|v| v.map(str::to_string)).collect()).collect()
    }

    #[test]
    fn chunks_keep_one_exact_type_per_column() {
        // `n` is untyped (SQLite expression) and `d` an unbounded numeric: their types need every chunk.
        let mut b = BatchBuilder::new(BTreeMap::from([("k".to_string(), DataType::Int64)]));
        b.start(vec!["k".into(), "n".into(), "d".into()], vec!["int4".into(), String::new(), "numeric".into()]).unwrap();
        b.rows(rows(&[[Some("1"), Some("2"), Some("1.5")], [None, Some("3"), None]])).unwrap();
        b.rows(rows(&[[Some("3"), Some("4.25"), Some("2.125")]])).unwrap();
        let (schema, batches) = b.finish().unwrap();
        let types: Vec<_> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(types, [DataType::Int64, DataType::Float64, DataType::Decimal128(38, 3)]);
        assert_eq!(batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), [2, 1]);
        let text: Vec<_> = text_rows(&batches, &schema, Dialect::Postgres).unwrap().map(Result::unwrap).collect();
        assert_eq!(text[0], [Some("1".to_string()), Some("2.0".to_string()), Some("1.500".to_string())]);
        assert_eq!(text[2], [Some("3".to_string()), Some("4.25".to_string()), Some("2.125".to_string())]);
        // A value that does not fit a declared type is an error naming the column.
        let mut b = BatchBuilder::new(BTreeMap::from([("k".to_string(), DataType::Int64)]));
        b.start(vec!["k".into()], vec![String::new()]).unwrap();
        assert!(b.rows(vec![vec![Some("x".into())]]).unwrap_err().contains("`k`"));
        // No rows: a schema and no batches.
        let mut b = BatchBuilder::new(BTreeMap::new());
        b.start(vec!["k".into()], vec!["text".into()]).unwrap();
        let (schema, batches) = b.finish().unwrap();
        assert_eq!((schema.field(0).data_type(), batches.len()), (&DataType::Utf8, 0));
    }
}
