//! The DVT compiler: loads a dbt-compatible project offline (no credentials,
//! no drivers) and turns it into a manifest and a deterministic execution plan.
//!
//! Modules, one concern each: [`loader`] reads files, [`jinja`] renders,
//! [`graph`] holds the DAG, [`select`] picks nodes, [`dialect`] knows SQL
//! flavours, [`manifest`] writes the parse artifact, [`deps`] installs packages.

pub mod artifact_write;
pub mod bundle;
pub mod cli;
pub mod compile;
pub mod compiled_files;
pub mod config;
pub mod deps;
pub mod dialect;
pub mod error;
pub mod federate;
pub mod graph;
pub mod hex;
pub mod init;
pub mod jinja;
mod json_pretty;
mod json_str;
pub mod loader;
pub mod manifest;
pub mod manifest_dbt;
pub mod nodes;
pub mod partial;
pub mod plan_file;
pub mod profiles;
pub mod project;
pub mod seed_cache;
pub mod seeds;
pub mod select;
pub mod semantic;
pub mod sorted_map;
pub mod state;
pub mod timing;
pub mod yaml;

pub use error::{DvtError, ErrorCode, Result};
