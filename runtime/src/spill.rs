//! Spilling a federated node's fragments to its bucket (issue 14): while a
//! fragment is read, its chunks stay in memory until the node's fragments
//! together pass the memory budget; from then on they are streamed to the
//! bucket as Parquet (zstd) under a per-run, per-node prefix and DataFusion
//! reads them back through the same OpenDAL operator. The prefix is removed
//! when the node ends, failed or not; a crashed run's prefixes are removed by
//! the next run that uses the bucket.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::{ParquetReadOptions, SessionContext, cast, ident};
use opendal::Buffer;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::buckets::Bucket;
use crate::compute::block_on;

/// The folder of a bucket that holds spilled fragments, one sub-folder per run.
const SPILL_DIR: &str = "_dvt_spill";
/// Bytes handed to the bucket per request while a Parquet file is written.
const UPLOAD_PART: usize = 8 * 1024 * 1024;
/// Rows per Parquet row group: small groups keep the writer's buffer small.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// A run folder older than this is removed whoever made it.
const STALE_SECS: u64 = 24 * 3600;

/// This process's run folder name: host, pid and start time, so the next run
/// can tell a crashed run's leftovers from a live run's files.
static RUN_ID: LazyLock<String> = LazyLock::new(|| {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{}-{}-{secs}", host(), std::process::id())
});

/// Buckets already swept by this process.
static SWEPT: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(|| Mutex::new(BTreeSet::new()));

fn host() -> String {
    let h = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let h: String = h.trim().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if h.is_empty() { "host".into() } else { h }
}

/// Where one federated node may spill, and how much it may hold in memory.
pub struct NodeSpill {
    bucket: Arc<Bucket>,
    /// `_dvt_spill/<run>/<node>/`.
    prefix: String,
    budget: u64,
    /// Bytes of fragments the node holds in memory now.
    held: AtomicU64,
    used: std::sync::atomic::AtomicBool,
}

impl NodeSpill {
    /// A spill area for `node` (its unique id) in `bucket`. Nothing touches the
    /// bucket until the first fragment spills.
    pub fn new(bucket: Arc<Bucket>, node: &str, budget: u64) -> Result<Self, String> {
        let safe: String = node.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
        Ok(NodeSpill { bucket, prefix: format!("{SPILL_DIR}/{}/{safe}/", *RUN_ID), budget, held: AtomicU64::new(0), used: false.into() })
    }

    /// The memory budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of fragments in memory now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Counts `bytes` of a fragment kept in memory.
    pub fn hold(&self, bytes: u64) {
        self.held.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The bucket's name (for messages).
    pub fn bucket_name(&self) -> &str {
        &self.bucket.name
    }

    /// A Parquet file for one fragment (a new name per call: a retried read never appends to a failed one).
    pub fn writer(&self, fragment: &str, schema: SchemaRef) -> Result<SpillWriter, String> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let path = format!("{}{fragment}-{}.parquet", self.prefix, SEQ.fetch_add(1, Ordering::Relaxed));
        // The first spill to this bucket in this process removes crashed runs' leftovers.
        sweep(&self.bucket);
        self.used.store(true, Ordering::Relaxed);
        SpillWriter::create(self.bucket.clone(), path, schema)
    }

    /// Registers a spilled fragment as table `name`, its text columns cast to `final_schema`.
    pub fn register(&self, ctx: &SessionContext, name: &str, file: &SpilledFile, final_schema: &SchemaRef) -> Result<(), String> {
        let url = format!("{}{}", self.bucket.register(ctx)?, file.path);
        block_on(async {
            let df =
                ctx.read_parquet(url, ParquetReadOptions::default()).await.map_err(|e| format!("reading spilled `{name}` back: {e}"))?;
            let exprs: Vec<_> = final_schema
                .fields()
                .iter()
                .zip(df.schema().fields())
                .map(|(want, have)| {
                    let c = ident(want.name());
                    if want.data_type() == have.data_type() { c } else { cast(c, want.data_type().clone()).alias(want.name()) }
                })
                .collect();
            let df = df.select(exprs).map_err(|e| e.to_string())?;
            ctx.register_table(name, df.into_view()).map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}

impl Drop for NodeSpill {
    fn drop(&mut self) {
        if self.used.load(Ordering::Relaxed) {
            // Best effort: what stays (the bucket unreachable now) goes with the next run's sweep.
            let _ = remove_tree(&self.bucket, &self.prefix);
        }
    }
}

/// Removes the run folders of runs that ended without cleaning up: on this
/// host with a pid that no longer runs, or older than a day. Once per bucket per process.
fn sweep(bucket: &Bucket) {
    if !SWEPT.lock().is_ok_and(|mut s| s.insert(bucket.name.clone())) {
        return;
    }
    let Ok(entries) = block_on(bucket.op.list(&format!("{SPILL_DIR}/"))) else { return };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let me = host();
    for e in entries {
        let name = e.name().trim_end_matches('/');
        let mut parts = name.rsplitn(3, '-');
        let (Some(secs), Some(pid), Some(h)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (Ok(secs), Ok(pid)) = (secs.parse::<u64>(), pid.parse::<u32>()) else { continue };
        let dead = h == me && pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if dead || now.saturating_sub(secs) > STALE_SECS {
            let _ = remove_tree(bucket, &format!("{SPILL_DIR}/{name}/"));
        }
    }
}

/// Deletes a folder of a bucket with everything under it.
fn remove_tree(bucket: &Bucket, prefix: &str) -> opendal::Result<()> {
    block_on(async { bucket.op.delete_with(prefix).recursive(true).await })
}

/// One fragment being written to the bucket.
pub struct SpillWriter {
    writer: Option<ArrowWriter<BucketWrite>>,
    path: String,
    rows: u64,
}

/// A fragment in the bucket.
#[derive(Debug, Clone)]
pub struct SpilledFile {
    pub path: String,
    pub rows: u64,
    /// Parquet bytes written.
    pub bytes: u64,
}

impl SpillWriter {
    /// A Parquet file (zstd, 64k-row groups) at `path` in `bucket`, uploaded in
    /// parts as it is written; it exists only once [`SpillWriter::finish`] completes
    /// (dropped before that, the upload is aborted).
    pub fn create(bucket: Arc<Bucket>, path: String, schema: SchemaRef) -> Result<Self, String> {
        let upload = block_on(bucket.op.writer(&path)).map_err(|e| bucket.error("opening a file", &e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| e.to_string())?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let sink = BucketWrite { bucket, upload: Some(upload), buf: Vec::with_capacity(UPLOAD_PART), written: 0 };
        let writer = ArrowWriter::try_new(sink, schema, Some(props)).map_err(|e| e.to_string())?;
        Ok(SpillWriter { writer: Some(writer), path, rows: 0 })
    }

    /// Appends batches.
    pub fn write(&mut self, batches: Vec<RecordBatch>) -> Result<(), String> {
        let w = self.writer.as_mut().ok_or("the spill file is closed")?;
        for b in batches {
            self.rows += b.num_rows() as u64;
            w.write(&b).map_err(|e| format!("spilling: {e}"))?;
        }
        Ok(())
    }

    /// Completes the file (footer written, upload committed).
    pub fn finish(mut self) -> Result<SpilledFile, String> {
        let w = self.writer.take().ok_or("the spill file is closed")?;
        let mut sink = w.into_inner().map_err(|e| format!("spilling: {e}"))?;
        let bytes = sink.close()?;
        Ok(SpilledFile { path: self.path.clone(), rows: self.rows, bytes })
    }
}

/// `std::io::Write` over an OpenDAL writer: parts of [`UPLOAD_PART`] bytes.
struct BucketWrite {
    bucket: Arc<Bucket>,
    upload: Option<opendal::Writer>,
    buf: Vec<u8>,
    written: u64,
}

impl BucketWrite {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let part = Buffer::from(std::mem::replace(&mut self.buf, Vec::with_capacity(UPLOAD_PART)));
        self.written += part.len() as u64;
        let up = self.upload.as_mut().ok_or_else(|| std::io::Error::other("the spill file is closed"))?;
        block_on(up.write(part)).map_err(|e| std::io::Error::other(self.bucket.error("writing a spill file", &e)))
    }

    fn close(&mut self) -> Result<u64, String> {
        self.send().map_err(|e| e.to_string())?;
        let mut up = self.upload.take().ok_or("the spill file is closed")?;
        block_on(up.close()).map_err(|e| self.bucket.error("completing a spill file", &e))?;
        Ok(self.written)
    }
}

impl Write for BucketWrite {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= UPLOAD_PART {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        // Parts go out when full or at close: S3 multipart parts must be ≥ 5 MiB.
        Ok(())
    }
}

impl Drop for BucketWrite {
    fn drop(&mut self) {
        if let Some(mut up) = self.upload.take() {
            let _ = block_on(up.abort());
        }
    }
}
