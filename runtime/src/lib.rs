//! The DVT runtime: executes plans written by `dvtc` against real databases.
//!
//! `credentials` reads connection settings at run time only, `connectors`
//! holds one file per engine, `executor` runs a plan's nodes in DAG order.

pub mod connectors;
pub mod credentials;
pub mod executor;
pub mod plan_file;
