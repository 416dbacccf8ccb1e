//! The DVT runtime: reads execution plans written by `dvtc` and runs them.
//!
//! For now it validates and summarises plans; connectors and execution land
//! with the runtime issue.

pub mod plan_file;
