//! Reading fragments (SPEC §2.6): from a database connection or files in a
//! bucket into Arrow with the plan's types, kept in memory while the node's
//! budget allows and spilled to its bucket as Parquet beyond it; in parallel
//! ranges where the plan asks for them.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::TableReference;
use dvt_compiler::dialect::Dialect;
use dvt_schema::plan::{Fragment, Plan, ReadPartitions};

use super::{Input, Table, is_bucket, next_batch};
use crate::arrow_rows;
use crate::compute::{self, block_on};
use crate::connectors::{self, Connection, RowSink};
use crate::spill::{NodeSpill, SpillWriter};
use crate::write::Env;

/// Reads one fragment into Arrow, chunk by chunk, with the types the plan declares.
pub fn read_fragment(conn: &mut dyn Connection, f: &Fragment) -> Result<Table, String> {
    match read_input(conn, f, None)?.0 {
        Input::Memory(t) => Ok(t),
        _ => Err("a fragment read in parts without a spill area".into()),
    }
}

/// What reading one fragment took.
#[derive(Debug, Clone, Default)]
pub struct FragmentStats {
    pub rows: u64,
    /// Arrow bytes in memory, or Parquet bytes in the bucket when spilled.
    pub bytes: u64,
    pub seconds: f64,
    pub spilled: bool,
    /// Ranges read in parallel (0: one read).
    pub parts: usize,
    /// Read while the compute ran, never held whole.
    pub streamed: bool,
}

/// The plan's declared Arrow types of a fragment's columns, by lower-case name.
pub(super) fn declared_types(f: &Fragment) -> BTreeMap<String, DataType> {
    f.columns
        .iter()
        .filter_map(|c| {
            c.arrow_type
                .as_deref()
                .and_then(|t| DataType::from_str(t).ok())
                .map(|t| (c.name.to_ascii_lowercase(), arrow_rows::compute_type(t)))
        })
        .collect()
}

/// The cast of Arrow read from an engine or files: the plan's declared types,
/// else the compute's reading of the given ones (integers as Int64, zones as UTC).
pub(super) fn arrow_cast(schema: &SchemaRef, declared: &BTreeMap<String, DataType>) -> arrow_rows::Cast {
    let to: BTreeMap<String, DataType> = schema
        .fields()
        .iter()
        .map(|c| {
            let name = c.name().to_ascii_lowercase();
            let t = declared.get(&name).cloned().unwrap_or_else(|| arrow_rows::compute_type(c.data_type().clone()));
            (name, t)
        })
        .collect();
    arrow_rows::Cast::new(schema, &to)
}

/// Reads one fragment; with a spill area, chunks beyond the node's memory
/// budget go to its bucket as Parquet instead of staying in memory.
pub fn read_input(conn: &mut dyn Connection, f: &Fragment, spill: Option<&NodeSpill>) -> Result<(Input, FragmentStats), String> {
    let start = Instant::now();
    let declared = declared_types(f);
    let place = |e: String| format!("fragment `{}` on `{}`: {e}", f.name, f.target);
    let mut arrow = ArrowCollector { declared: &declared, spill, fragment: &f.name, out: None };
    let (input, mut stats) = if let Some(result) = conn.query_arrow(&f.sql, &mut arrow) {
        // Already Arrow, batch by batch as the engine produces it.
        result.map_err(place)?;
        let (_, out) = arrow.out.ok_or_else(|| place("the engine sent no schema".into()))?;
        out.finish().map_err(place)?
    } else {
        let mut sink = SpillingSink::new(arrow_rows::BatchBuilder::new(declared), spill, &f.name);
        conn.query_into(&f.sql, &mut sink).map_err(place)?;
        sink.finish().map_err(place)?
    };
    stats.seconds = start.elapsed().as_secs_f64();
    Ok((input, stats))
}

/// Arrow from an engine, cast to the declared types as it arrives, into a [`Collector`].
struct ArrowCollector<'a> {
    declared: &'a BTreeMap<String, DataType>,
    spill: Option<&'a NodeSpill>,
    fragment: &'a str,
    out: Option<(arrow_rows::Cast, Collector<'a>)>,
}

impl connectors::ArrowSink for ArrowCollector<'_> {
    fn start(&mut self, schema: SchemaRef) -> Result<(), String> {
        let cast = arrow_cast(&schema, self.declared);
        let out = Collector::new(cast.schema.clone(), self.spill, self.fragment);
        self.out = Some((cast, out));
        Ok(())
    }

    fn batch(&mut self, b: RecordBatch) -> Result<(), String> {
        let (cast, out) = self.out.as_mut().ok_or("a batch before the schema")?;
        out.push(cast.batch(b)?)
    }
}

/// Typed batches of one fragment, kept in memory until the node's budget is
/// passed, then (all of them) written to its spill area.
struct Collector<'a> {
    schema: SchemaRef,
    spill: Option<&'a NodeSpill>,
    fragment: &'a str,
    batches: Vec<RecordBatch>,
    bytes: u64,
    rows: u64,
    writer: Option<SpillWriter>,
}

impl<'a> Collector<'a> {
    fn new(schema: SchemaRef, spill: Option<&'a NodeSpill>, fragment: &'a str) -> Self {
        Collector { schema, spill, fragment, batches: vec![], bytes: 0, rows: 0, writer: None }
    }

    fn push(&mut self, b: RecordBatch) -> Result<(), String> {
        self.rows += b.num_rows() as u64;
        crate::events::rows_read(b.num_rows() as u64);
        if let Some(w) = &mut self.writer {
            return w.write(vec![b]);
        }
        self.bytes += b.get_array_memory_size() as u64;
        self.batches.push(b);
        if let Some(s) = self.spill.filter(|s| s.held() + self.bytes > s.budget()) {
            let mut w = s.writer(self.fragment, self.schema.clone())?;
            w.write(std::mem::take(&mut self.batches))?;
            self.writer = Some(w);
        }
        Ok(())
    }

    fn finish(self) -> Result<(Input, FragmentStats), String> {
        let rows = self.rows;
        if let Some(w) = self.writer {
            let file = w.finish()?;
            let bytes = file.bytes;
            return Ok((Input::Spilled { file, schema: self.schema }, FragmentStats { rows, bytes, spilled: true, ..Default::default() }));
        }
        if let Some(s) = self.spill {
            s.hold(self.bytes);
        }
        let stats = FragmentStats { rows, bytes: self.bytes, ..Default::default() };
        Ok((Input::Memory(Table { schema: self.schema, batches: self.batches }), stats))
    }
}

/// Reads a fragment over files in a bucket: its sources' files registered as
/// tables (Parquet, CSV or JSON lines, through the bucket's operator), the
/// fragment's SQL run by the compute, batches kept or spilled as they come.
pub(super) fn read_bucket(env: &Env, plan: &Plan, f: &Fragment, spill: Option<&NodeSpill>) -> Result<(Input, FragmentStats), String> {
    use datafusion::catalog::MemorySchemaProvider;
    use datafusion::datasource::file_format::{csv::CsvFormat, json::JsonFormat, parquet::ParquetFormat};
    use datafusion::datasource::listing::ListingOptions;
    let start = Instant::now();
    let place = |e: String| format!("fragment `{}` on bucket `{}`: {e}", f.name, f.target);
    let bucket = env.buckets.get(&f.target, plan.buckets.get(&f.target)).map_err(place)?;
    let ctx = compute::session(&compute::Limits::default()).map_err(place)?;
    let root = bucket.register(&ctx).map_err(place)?;
    let declared = declared_types(f);
    let read = block_on(async {
        for t in &f.files {
            let ext = &t.files;
            let (format, extension): (Arc<dyn datafusion::datasource::file_format::FileFormat>, &str) = match ext.format.as_str() {
                "parquet" => (Arc::new(ParquetFormat::default()), ".parquet"),
                "csv" => {
                    let delimiter = ext.delimiter.as_deref().and_then(|d| d.bytes().next()).unwrap_or(b',');
                    (Arc::new(CsvFormat::default().with_has_header(ext.header.unwrap_or(true)).with_delimiter(delimiter)), ".csv")
                }
                _ => (Arc::new(JsonFormat::default()), ""),
            };
            let catalog = ctx.catalog("datafusion").ok_or("the compute has no default catalog")?;
            if catalog.schema(&t.schema).is_none() {
                catalog.register_schema(&t.schema, Arc::new(MemorySchemaProvider::new())).map_err(|e| e.to_string())?;
            }
            let options = ListingOptions::new(format).with_file_extension(extension);
            let table = TableReference::partial(t.schema.as_str(), t.identifier.as_str());
            ctx.register_listing_table(table, format!("{root}{}", ext.location), options, None, None)
                .await
                .map_err(|e| format!("cannot read `{}` ({}): {e}", ext.location, ext.format))?;
        }
        let df = ctx.sql(&f.sql).await.map_err(|e| e.to_string())?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((schema, stream))
    });
    let (schema, mut stream) = read.map_err(place)?;
    let cast = arrow_cast(&schema, &declared);
    let mut out = Collector::new(cast.schema.clone(), spill, &f.name);
    while let Some(b) = next_batch(&mut stream).map_err(place)? {
        out.push(cast.batch(b).map_err(place)?).map_err(place)?;
    }
    let (input, mut stats) = out.finish().map_err(place)?;
    stats.seconds = start.elapsed().as_secs_f64();
    Ok((input, stats))
}

/// A fragment's chunks into Arrow, spilling once the node's budget is passed.
pub(super) struct SpillingSink<'a> {
    builder: arrow_rows::BatchBuilder,
    spill: Option<&'a NodeSpill>,
    fragment: &'a str,
    writer: Option<SpillWriter>,
    rows: u64,
}

impl RowSink for SpillingSink<'_> {
    fn start(&mut self, columns: Vec<String>, types: Vec<String>) -> Result<(), String> {
        self.builder.start(columns, types)
    }

    fn rows(&mut self, rows: Vec<Vec<Option<String>>>) -> Result<(), String> {
        self.rows += rows.len() as u64;
        crate::events::rows_read(rows.len() as u64);
        self.builder.rows(rows)?;
        let Some(spill) = self.spill else { return Ok(()) };
        if self.writer.is_none() && spill.held() + self.builder.held_bytes() as u64 > spill.budget() {
            self.writer = Some(spill.writer(self.fragment, self.builder.raw_schema())?);
        }
        if let Some(w) = &mut self.writer {
            w.write(self.builder.take_raw())?;
        }
        Ok(())
    }
}

impl<'a> SpillingSink<'a> {
    /// A sink over `builder` (already started or not).
    pub(super) fn new(builder: arrow_rows::BatchBuilder, spill: Option<&'a NodeSpill>, fragment: &'a str) -> Self {
        SpillingSink { builder, spill, fragment, writer: None, rows: 0 }
    }

    pub(super) fn finish(mut self) -> Result<(Input, FragmentStats), String> {
        let rows = self.rows;
        if let Some(mut w) = self.writer.take() {
            w.write(self.builder.take_raw())?;
            let file = w.finish()?;
            let bytes = file.bytes;
            let schema = self.builder.final_schema();
            return Ok((Input::Spilled { file, schema }, FragmentStats { rows, bytes, spilled: true, ..Default::default() }));
        }
        let (schema, batches) = self.builder.finish()?;
        let bytes: u64 = batches.iter().map(|b| b.get_array_memory_size() as u64).sum();
        if let Some(s) = self.spill {
            s.hold(bytes);
        }
        Ok((Input::Memory(Table { schema, batches }), FragmentStats { rows, bytes, ..Default::default() }))
    }
}

/// Reads a fragment from its output (the target's own connection when it is
/// the same output), retrying transient faults on a new connection.
pub(super) fn read_from(
    env: &Env,
    plan: &Plan,
    target_output: &str,
    target: Option<&mut dyn Connection>,
    f: &Fragment,
    spill: &NodeSpill,
) -> Result<(Input, FragmentStats), String> {
    if is_bucket(plan, &f.target) {
        return crate::retry::run(&format!("fragment `{}` on bucket `{}`", f.name, f.target), || read_bucket(env, plan, f, Some(spill)));
    }
    if let Some(p) = &f.partitions {
        return read_partitioned(env, f, p, spill);
    }
    if let Some(target) = target.filter(|_| f.target == target_output) {
        return read_input(target, f, Some(spill));
    }
    crate::retry::run(&format!("fragment `{}` on `{}`", f.name, f.target), || {
        let mut c = env.pool.get(&f.target)?;
        let read = read_input(&mut *c, f, Some(spill))?;
        c.release();
        Ok(read)
    })
}

/// Rows per range when `read_partitions` leaves the count to dvtr, and the most ranges then.
const ROWS_PER_RANGE: u64 = 250_000;
const MAX_AUTO_RANGES: u64 = 16;

/// A range column's bound: a number, or a date (days since 1970-01-01; a
/// timestamp counts by its date).
fn bound(v: &str) -> Option<(i128, bool)> {
    if let Ok(x) = v.parse::<f64>() {
        return x.is_finite().then(|| (x.floor() as i128, false));
    }
    let d = chrono::NaiveDate::parse_from_str(v.get(..10)?, "%Y-%m-%d").ok()?;
    Some((i128::from(d.signed_duration_since(chrono::NaiveDate::default()).num_days()), true))
}

/// Reads a fragment as ranges of one numeric or date column, each on its own
/// connection at once: bounds (and, for `count: auto`, the row count) from one
/// query over the fragment, the last range open-ended, NULLs with the first.
/// Each range is the fragment's SQL filtered, so together they are exactly its rows.
fn read_partitioned(env: &Env, f: &Fragment, p: &ReadPartitions, spill: &NodeSpill) -> Result<(Input, FragmentStats), String> {
    let start = Instant::now();
    let dialect = Dialect::from_adapter(&f.dialect).unwrap_or(Dialect::Postgres);
    let col = dialect.quote(&p.column);
    let place = |e: String| format!("fragment `{}` on `{}`: {e}", f.name, f.target);
    let bounds = crate::retry::run(&format!("bounds of fragment `{}`", f.name), || {
        let mut c = env.pool.get(&f.target)?;
        let rows = c.query(&format!("select min({col}), max({col}), count(*) from (\n{}\n) dvt_bounds", f.sql))?;
        c.release();
        Ok(rows.rows.into_iter().next().unwrap_or_default())
    })
    .map_err(place)?;
    let at = |i: usize| bounds.get(i).cloned().flatten();
    let rows: u64 = at(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let count = match p.count {
        0 => rows.div_ceil(ROWS_PER_RANGE).clamp(1, MAX_AUTO_RANGES) as i128,
        n => i128::from(n),
    };
    let (Some((lo, dates)), Some((hi, _))) = (at(0).as_deref().and_then(bound), at(1).as_deref().and_then(bound)) else {
        // No rows (or a column neither numeric nor a date): one read.
        let mut c = env.pool.get(&f.target)?;
        let read = read_input(&mut *c, f, Some(spill))?;
        c.release();
        return Ok(read);
    };
    let literal = |v: i128| -> String {
        if !dates {
            return v.to_string();
        }
        let day = chrono::NaiveDate::default() + chrono::Duration::days(v as i64);
        // SQLite keeps dates as ISO text, which compares in date order.
        if dialect == Dialect::Sqlite { format!("'{day}'") } else { format!("DATE '{day}'") }
    };
    let n = count.min(hi - lo + 1).max(1);
    let step = (hi - lo + 1).div_euclid(n) + i128::from((hi - lo + 1).rem_euclid(n) != 0);
    let ranges: Vec<String> = (0..n)
        .map(|k| {
            let (a, b) = (literal(lo + k * step), literal(lo + (k + 1) * step));
            match (k == 0, k == n - 1) {
                (true, true) => "true".to_string(),
                (true, false) => format!("({col} < {b} or {col} is null)"),
                (false, true) => format!("{col} >= {a}"),
                (false, false) => format!("{col} >= {a} and {col} < {b}"),
            }
        })
        .collect();
    if ranges.len() == 1 {
        let mut c = env.pool.get(&f.target)?;
        let read = read_input(&mut *c, f, Some(spill))?;
        c.release();
        return Ok(read);
    }
    let reads: Vec<Result<(Input, FragmentStats), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|cond| {
                let part = Fragment { sql: format!("select * from (\n{}\n) dvt_part where {cond}", f.sql), partitions: None, ..f.clone() };
                s.spawn(move || {
                    crate::retry::run(&format!("a range of fragment `{}`", f.name), || {
                        let mut c = env.pool.get(&f.target)?;
                        let read = read_input(&mut *c, &part, Some(spill))?;
                        c.release();
                        Ok(read)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a range reader panicked".into()))).collect()
    });
    let mut parts = Vec::new();
    let mut stats = FragmentStats { parts: ranges.len(), ..Default::default() };
    for r in reads {
        let (input, s) = r?;
        stats.rows += s.rows;
        stats.bytes += s.bytes;
        stats.spilled |= s.spilled;
        parts.push(input);
    }
    stats.seconds = start.elapsed().as_secs_f64();
    Ok((Input::Parts(parts), stats))
}

/// Reads `fragments` of a node that writes to `target_output`: those on that
/// output through the target's own connection (`target`, when given), the
/// others one thread per database, all at the same time. Results in the order
/// of `fragments`; a database's later fragments are skipped once one failed.
pub(super) fn read_all(
    env: &Env,
    plan: &Plan,
    target_output: &str,
    mut target: Option<&mut dyn Connection>,
    fragments: &[&Fragment],
    spill: &NodeSpill,
) -> Vec<Result<(Input, FragmentStats), String>> {
    type Read = Result<(Input, FragmentStats), String>;
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in fragments.iter().enumerate() {
        groups.entry(f.target.as_str()).or_default().push(i);
    }
    let own = target.is_some().then_some(target_output);
    let read_group = |idx: &[usize], mut conn: Option<&mut dyn Connection>| -> Vec<(usize, Read)> {
        let mut out = Vec::new();
        for &i in idx {
            let read = read_from(env, plan, target_output, conn.as_mut().map(|c| &mut **c as &mut dyn Connection), fragments[i], spill);
            let failed = read.is_err();
            out.push((i, read));
            if failed {
                break;
            }
        }
        out
    };
    let mut out: Vec<Option<Read>> = (0..fragments.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = groups.iter().filter(|(o, _)| Some(**o) != own).map(|(_, idx)| s.spawn(|| read_group(idx, None))).collect();
        if let Some(idx) = own.and_then(|o| groups.get(o)) {
            for (i, r) in read_group(idx, target.as_mut().map(|t| &mut **t as &mut dyn Connection)) {
                out[i] = Some(r);
            }
        }
        for h in handles {
            for (i, r) in h.join().unwrap_or_default() {
                out[i] = Some(r);
            }
        }
    });
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err("a fragment was not read (an earlier one on its database failed, or its reader panicked)".into())))
        .collect()
}
