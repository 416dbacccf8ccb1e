//! Parquet and JSON-lines seeds: read as Arrow record batches, streamed
//! (bounded memory), with `column_types` applied as exact casts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use dvt_compiler::dialect::LogicalType;

use crate::arrow_rows;

const BATCH_ROWS: usize = 8192;

/// A seed file as a stream of batches with its (cast) schema.
pub struct ArrowSeed {
    pub schema: SchemaRef,
    pub columns: Vec<(String, LogicalType)>,
    batches: Box<dyn Iterator<Item = Result<RecordBatch, String>> + Send>,
    cast: arrow_rows::Cast,
}

/// Opens a Parquet or JSON-lines seed; `column_types` override the file's types.
pub fn open(path: &Path, format: &str, column_types: &BTreeMap<String, String>) -> Result<ArrowSeed, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (schema, batches): (SchemaRef, Box<dyn Iterator<Item = Result<RecordBatch, String>> + Send>) = match format {
        "parquet" => {
            let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| format!("{}: not a readable Parquet file: {e}", path.display()))?
                .with_batch_size(BATCH_ROWS);
            let schema = b.schema().clone();
            let reader = b.build().map_err(|e| e.to_string())?;
            (schema, Box::new(reader.map(|r| r.map_err(|e| e.to_string()))))
        }
        "jsonl" => {
            let mut r = BufReader::new(file);
            let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(&mut r, None)
                .map_err(|e| format!("{}: not valid JSON lines: {e}", path.display()))?;
            r.rewind().map_err(|e| e.to_string())?;
            let schema = Arc::new(schema);
            let reader = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(BATCH_ROWS).build(r).map_err(|e| e.to_string())?;
            let shown = path.display().to_string();
            (schema, Box::new(reader.map(move |b| b.map_err(|e| format!("{shown}: {e}")))))
        }
        other => return Err(format!("{}: seeds in `{other}` format are not readable as Arrow", path.display())),
    };
    let cast = arrow_rows::Cast::new(&schema, &arrow_rows::declared_types(column_types.iter()));
    let schema = cast.schema.clone();
    let columns = schema.fields().iter().map(|f| (f.name().clone(), arrow_rows::logical_type(f.data_type()))).collect();
    Ok(ArrowSeed { schema, columns, batches, cast })
}

impl Iterator for ArrowSeed {
    type Item = Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = match self.batches.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        Some(self.cast.batch(batch))
    }
}
