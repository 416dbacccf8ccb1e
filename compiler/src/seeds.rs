//! Seed files: which formats DVT loads.

use std::path::Path;

/// File extensions recognised as seeds.
pub const SEED_EXTENSIONS: [&str; 5] = ["csv", "parquet", "json", "jsonl", "ndjson"];

/// The format of a seed file, from its extension.
pub fn format_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("parquet") => "parquet",
        Some("json" | "jsonl" | "ndjson") => "jsonl",
        _ => "csv",
    }
}
