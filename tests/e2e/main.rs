//! End-to-end tests: the real binaries on the example projects and on
//! throwaway projects written into temporary directories.

mod artifacts;
mod buckets;
mod builtin_tests;
mod contracts;
mod dbt_compat;
mod deps;
mod dialects;
mod differential;
mod docs;
mod duckdb_files;
mod errors;
mod faults;
mod federated;
mod golden;
mod hooks;
mod hostile;
mod incremental;
mod init;
mod multi_db;
mod parse_ls;
mod python_models;
mod robustness;
mod runtime;
mod secrets;
mod seeds;
mod semantic;
mod state;
mod support;
mod tls;
mod unit_tests;
mod versions;
