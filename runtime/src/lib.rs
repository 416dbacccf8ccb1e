//! The DVT runtime: executes plans written by `dvtc` against real databases.
//!
//! `credentials` reads connection settings at run time only, `connectors`
//! holds one file per engine, `executor` runs a plan's nodes in DAG order,
//! `federation` runs federated nodes through DataFusion (`arrow_rows` moves
//! values between drivers and Arrow).

pub mod arrow_rows;
pub mod buckets;
pub mod clone;
pub mod compute;
/// The Arrow implementation the runtime uses (re-exported for embedders and tests).
pub use datafusion::arrow;
pub mod connectors;
pub mod credentials;
pub mod debug;
pub mod dialect_semantics;
pub mod docs;
pub mod events;
pub mod executor;
pub mod federation;
pub mod freshness;
pub mod live;
pub mod microbatch;
pub mod retry;
pub mod seed_files;
mod seed_load;
pub mod spill;
pub mod sync;
pub mod unit_test;
pub mod write;
