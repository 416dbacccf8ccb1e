//! The embedded compute (DataFusion): its async runtime, shared by every
//! worker thread of a run, and sessions bounded by a node's memory budget.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Memory a federated node may hold when computes.yml sets no `memory_budget`.
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 * 1024 * 1024;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().thread_name("dvt-compute").build().expect("tokio runtime")
});

/// Runs a future to completion on the compute's runtime (from a worker thread, never from inside it).
pub fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.block_on(f)
}

/// How a session may use memory and disk.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes the compute's operators may hold before they spill (None: unbounded).
    pub memory: Option<u64>,
    /// Where operators spill (None: the OS temporary folder).
    pub spill_dir: Option<PathBuf>,
    /// Join with sort-merge joins, which spill, instead of hash joins, which
    /// hold their build side in memory (set when inputs did not fit the budget).
    pub sort_merge_joins: bool,
}

/// The least memory the compute's operators get, whatever the budget: sorts
/// reserve room to merge their spill files, and a batch must fit.
const MIN_OPERATOR_MEMORY: u64 = 32 * 1024 * 1024;

/// Session settings. Under a memory budget each sort reserves at most an
/// eighth of it for merging its spill files (DataFusion's 10 MiB default
/// starves a small pool), and once inputs did not fit, one partition per
/// operator, so a join's sorts do not split the pool between them.
fn config(limits: &Limits) -> SessionConfig {
    let mut c = SessionConfig::new().set_bool("datafusion.optimizer.prefer_hash_join", !limits.sort_merge_joins);
    if let Some(bytes) = limits.memory {
        let reserve = (bytes.max(MIN_OPERATOR_MEMORY) / 8).min(10 * 1024 * 1024);
        c = c.set_usize("datafusion.execution.sort_spill_reservation_bytes", reserve as usize);
    }
    if limits.sort_merge_joins {
        c = c.with_target_partitions(1);
    }
    c
}

/// A DataFusion session. The physical FilterPushdown rules are left out: in
/// DataFusion 55 they push a filter into the wrong input of a join that
/// JoinSelection swapped (a right join with `IS NULL` on its null-supplying
/// side returned no rows; see federation's tests). Logical filter pushdown
/// still applies. With a memory limit, joins, sorts and aggregates spill to
/// disk instead of failing.
pub fn session(limits: &Limits) -> Result<SessionContext, String> {
    let rules = PhysicalOptimizer::new().rules.into_iter().filter(|r| !r.name().starts_with("FilterPushdown")).collect();
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(bytes) = limits.memory {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(bytes.max(MIN_OPERATOR_MEMORY) as usize)));
    }
    let mode = match &limits.spill_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| format!("cannot create the spill folder {}: {e}", d.display()))?;
            DiskManagerMode::Directories(vec![d.clone()])
        }
        None => DiskManagerMode::OsTmpDirectory,
    };
    runtime = runtime.with_disk_manager_builder(DiskManagerBuilder::default().with_mode(mode));
    let runtime = runtime.build_arc().map_err(|e| e.to_string())?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config(limits))
        .with_runtime_env(runtime)
        .with_physical_optimizer_rules(rules)
        .build();
    Ok(SessionContext::new_with_state(state))
}
