//! YAML reading with located, coded errors (serde-saphyr underneath).

use serde::de::DeserializeOwned;
use serde_saphyr::options::DuplicateKeyPolicy;

use crate::error::{DvtError, ErrorCode, Location, Result};

fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    // A duplicate key is an error with its line (PyYAML silently keeps the last
    // one, which hides mistakes); it is also the streaming, fast path.
    o.duplicate_keys = DuplicateKeyPolicy::Error;
    o.with_snippet = false;
    o
}

/// Parses `text` (the content of `file`, a project-relative path) into `T`.
/// An empty document parses as `T::default()`.
pub fn parse<T: DeserializeOwned + Default>(text: &str, file: &str) -> Result<T> {
    if text.trim().is_empty() || text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---") {
        return Ok(T::default());
    }
    serde_saphyr::from_str_with_options::<Option<T>>(text, options()).map(Option::unwrap_or_default).map_err(|e| yaml_error(&e, file))
}

fn yaml_error(e: &serde_saphyr::Error, file: &str) -> DvtError {
    let msg = e.without_snippet().to_string();
    // The library prefixes messages with its own location; ours goes in front.
    let msg = msg.split_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_string();
    let loc = match e.location() {
        Some(l) => Location::new(file, l.line() as u32, l.column() as u32),
        None => Location::file(file),
    };
    DvtError::new(ErrorCode::YamlInvalid, format!("invalid YAML: {msg}")).at(loc).hint("fix the YAML syntax or shape at this position")
}

/// Line of a spanned value, 0 if unknown.
pub fn line_of<T>(s: &serde_saphyr::Spanned<T>) -> u32 {
    s.referenced.line() as u32
}
