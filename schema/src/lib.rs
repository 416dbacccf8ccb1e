//! Typed artifacts of DVT: the parse manifest and the execution plan.
//!
//! Everything an external tool reads from DVT is defined here, serialised with
//! serde and described by a JSON Schema generated with schemars. The compiler
//! and the runtime share these types; neither defines artifact shapes of its own.

pub mod manifest;
pub mod plan;
pub mod run_results;

pub use manifest::Manifest;
pub use plan::Plan;

/// Generates the JSON Schema of a type as pretty-printed JSON with a trailing newline.
pub fn schema_json<T: schemars::JsonSchema>() -> String {
    let schema = schemars::schema_for!(T);
    let mut s = serde_json::to_string_pretty(&schema).expect("a JSON Schema always serialises");
    s.push('\n');
    s
}
