//! A fragment streamed into the compute (issue 14): a reader thread runs the
//! fragment's query and hands each Arrow batch to DataFusion as the engine
//! produces it, through a bounded channel, so the node never holds the whole
//! fragment and the compute (and the target's load) start with the first rows.
//!
//! Used where the remainder allows it: it reads exactly one fragment, once
//! (a second scan would need the rows again), from a database other than the
//! target. Columns whose type only all values decide (unbounded numerics,
//! untyped SQLite expressions) cannot stream: the reader then keeps or spills
//! the fragment as a whole read does, and the node proceeds as before.

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use dvt_schema::plan::Fragment;
use tokio::sync::mpsc;

use super::Input;
use super::read::{FragmentStats, SpillingSink, arrow_cast, declared_types};
use crate::arrow_rows;
use crate::connectors::{ArrowSink, RowSink};
use crate::spill::NodeSpill;
use crate::write::Env;

/// The reader's error when the compute dropped the stream (the compute's own
/// failure, or it needed no more rows): not the reason the node failed.
pub const STOPPED: &str = "the compute stopped reading";

/// Batches in flight between the reader and the compute: enough to keep both
/// busy, few enough that memory stays at a few chunks.
const IN_FLIGHT: usize = 4;

/// How a fragment reaches the compute.
pub enum Opened<'scope> {
    /// As a stream: register it, then [`Reader::finish`] once the compute is done.
    Streaming(StreamedTable, Reader<'scope>),
    /// Read whole (its types needed every value): kept in memory or spilled.
    Whole(Input, FragmentStats),
}

/// What the reader thread ends with: the fragment when it was read whole,
/// and what the read took.
type ReadResult = Result<(Option<(Input, FragmentStats)>, FragmentStats), String>;

/// The reader thread of a streamed fragment.
pub struct Reader<'scope> {
    handle: ScopedJoinHandle<'scope, ReadResult>,
}

impl Reader<'_> {
    /// What the read took, once the stream ended (or was dropped); the
    /// reader's own error if it failed.
    pub fn finish(self) -> Result<FragmentStats, String> {
        join(self.handle).map(|(_, stats)| stats)
    }
}

fn join(handle: ScopedJoinHandle<'_, ReadResult>) -> ReadResult {
    handle.join().unwrap_or_else(|_| Err("the fragment reader panicked".into()))
}

/// What the reader thread tells first.
enum Started {
    Streaming(SchemaRef),
    Whole,
}

/// Starts reading `f` on its own connection in `scope`. Returns once the
/// engine has described the result (or the read failed, or finished whole).
pub fn open<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    env: &'env Env,
    f: &'env Fragment,
    spill: &'env NodeSpill,
) -> Result<Opened<'scope>, String> {
    let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let handle = scope.spawn(move || -> ReadResult {
        let start = Instant::now();
        let place = |e: String| format!("fragment `{}` on `{}`: {e}", f.name, f.target);
        let declared = declared_types(f);
        let mut sink = StreamSink {
            declared: &declared,
            started: Some(started_tx),
            streaming: None,
            tx,
            mode: Mode::Unstarted,
            spill,
            fragment: &f.name,
            stats: FragmentStats::default(),
        };
        // Until the first rows reach the compute, a transient fault is retried here.
        crate::retry::run_where(|| {
            let read = env.pool.get(&f.target).and_then(|mut conn| {
                let read = match conn.query_arrow(&f.sql, &mut sink) {
                    Some(r) => r,
                    None => conn.query_into(&f.sql, &mut sink),
                };
                if read.is_ok() {
                    conn.release();
                }
                read
            });
            read.map_err(|e| {
                let retry = (sink.streaming != Some(true)).then(|| format!("fragment `{}` on `{}`", f.name, f.target));
                sink.mode = Mode::Unstarted;
                (place(e), retry)
            })
        })
        .inspect_err(|e| sink.fail(e))?;
        let whole = match std::mem::replace(&mut sink.mode, Mode::Unstarted) {
            Mode::Whole(s) => Some(s.finish().map_err(place)?),
            _ => None,
        };
        let mut stats = FragmentStats { streamed: whole.is_none(), ..sink.stats };
        stats.seconds = start.elapsed().as_secs_f64();
        Ok((whole, stats))
    });
    match started_rx.recv() {
        Ok(Started::Streaming(schema)) => Ok(Opened::Streaming(StreamedTable { schema, batches: Mutex::new(Some(rx)) }, Reader { handle })),
        // Read whole, or failed before the engine described the result.
        Ok(Started::Whole) | Err(_) => match join(handle)? {
            (Some((input, read)), stats) => Ok(Opened::Whole(input, FragmentStats { seconds: stats.seconds, ..read })),
            (None, _) => Err(format!("fragment `{}` on `{}`: the engine sent no result", f.name, f.target)),
        },
    }
}

type Sent = Result<RecordBatch, DataFusionError>;

/// A streamed fragment as a table the compute scans once.
pub struct StreamedTable {
    schema: SchemaRef,
    batches: Mutex<Option<mpsc::Receiver<Sent>>>,
}

impl std::fmt::Debug for StreamedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedTable").field("schema", &self.schema).finish()
    }
}

impl StreamedTable {
    /// Registers the stream as table `name`.
    pub fn register(self, ctx: &SessionContext, name: &str) -> Result<(), String> {
        let schema = self.schema.clone();
        let table = StreamingTable::try_new(schema, vec![Arc::new(self)]).map_err(|e| e.to_string())?;
        ctx.register_table(TableReference::bare(name), Arc::new(table)).map(|_| ()).map_err(|e| e.to_string())
    }
}

impl PartitionStream for StreamedTable {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rx = self.batches.lock().ok().and_then(|mut b| b.take());
        let stream = futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            rx.recv().await.map(|b| (b, Some(rx)))
        });
        // A second scan would find nothing: the planner never asks for one
        // (streaming is chosen only for a fragment the remainder reads once).
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

enum Mode<'a> {
    Unstarted,
    /// Arrow from the engine, cast to the plan's types.
    Arrow(arrow_rows::Cast),
    /// Text chunks converted to Arrow (every column's type fixed up front).
    Rows(arrow_rows::BatchBuilder),
    /// Read whole: some column's type depends on every value.
    Whole(Box<SpillingSink<'a>>),
}

/// The reader's sink: each chunk to the compute as it arrives.
struct StreamSink<'a> {
    declared: &'a BTreeMap<String, DataType>,
    started: Option<SyncSender<Started>>,
    /// Whether the fragment streams, once the first read's columns decided it.
    streaming: Option<bool>,
    tx: mpsc::Sender<Sent>,
    mode: Mode<'a>,
    spill: &'a NodeSpill,
    fragment: &'a str,
    stats: FragmentStats,
}

impl StreamSink<'_> {
    fn tell(&mut self, s: Started) {
        self.streaming = Some(matches!(s, Started::Streaming(_)));
        if let Some(tx) = self.started.take() {
            let _ = tx.send(s);
        }
    }

    fn send(&mut self, b: RecordBatch) -> Result<(), String> {
        self.stats.rows += b.num_rows() as u64;
        self.stats.bytes += b.get_array_memory_size() as u64;
        crate::events::rows_read(b.num_rows() as u64);
        // A closed channel: the compute stopped (it failed, or needs no more rows).
        self.tx.blocking_send(Ok(b)).map_err(|_| STOPPED.to_string())
    }

    /// Passes the reader's error to the compute, so the node fails with it.
    fn fail(&mut self, message: &str) {
        let _ = self.tx.blocking_send(Err(DataFusionError::External(message.into())));
    }
}

impl ArrowSink for StreamSink<'_> {
    fn start(&mut self, schema: SchemaRef) -> Result<(), String> {
        let cast = arrow_cast(&schema, self.declared);
        self.tell(Started::Streaming(cast.schema.clone()));
        self.mode = Mode::Arrow(cast);
        Ok(())
    }

    fn batch(&mut self, b: RecordBatch) -> Result<(), String> {
        let Mode::Arrow(cast) = &self.mode else { return Err("a batch before the schema".into()) };
        let b = cast.batch(b)?;
        self.send(b)
    }
}

impl RowSink for StreamSink<'_> {
    fn start(&mut self, columns: Vec<String>, types: Vec<String>) -> Result<(), String> {
        let mut builder = arrow_rows::BatchBuilder::new(self.declared.clone());
        builder.start(columns, types)?;
        // A retried read keeps the first read's decision (the compute waits on it).
        if builder.all_fixed() && self.streaming != Some(false) {
            self.tell(Started::Streaming(builder.raw_schema()));
            self.mode = Mode::Rows(builder);
        } else {
            self.tell(Started::Whole);
            self.mode = Mode::Whole(Box::new(SpillingSink::new(builder, Some(self.spill), self.fragment)));
        }
        Ok(())
    }

    fn rows(&mut self, rows: Vec<Vec<Option<String>>>) -> Result<(), String> {
        match &mut self.mode {
            Mode::Rows(builder) => {
                builder.rows(rows)?;
                for b in builder.take_raw() {
                    self.send(b)?;
                }
                Ok(())
            }
            Mode::Whole(sink) => sink.rows(rows),
            _ => Err("rows before the columns".into()),
        }
    }
}
