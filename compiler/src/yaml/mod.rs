//! YAML reading with located, coded errors: the subset dbt projects are written in
//! by [`fast`], anything else (and every error) by serde-saphyr.

mod fast;
#[cfg(test)]
mod tests;
mod tree;

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
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
    if let Some(value) = parse_fast(text) {
        return Ok(value);
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

/// `text` read by the fast reader, when it is in its subset and reads as `T`.
fn parse_fast<T: DeserializeOwned>(text: &str) -> Option<T> {
    T::deserialize(fast::parse(text)?).ok()
}

/// A value and where it is written (1-based line and column; 0 when unknown).
#[derive(Debug, Clone, PartialEq)]
pub struct Lined<T> {
    pub value: T,
    pub line: u32,
    pub column: u32,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lined<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct LinedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for LinedVisitor<T> {
            type Value = Lined<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a value")
            }
            // serde-saphyr: its own spanned value.
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Lined<T>, D::Error> {
                let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
                Ok(Lined { value: s.value, line: s.referenced.line() as u32, column: s.referenced.column() as u32 })
            }
            // The fast reader: line, column, value.
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Lined<T>, A::Error> {
                let missing = || de::Error::custom("a positioned value");
                let line = a.next_element()?.ok_or_else(missing)?;
                let column = a.next_element()?.ok_or_else(missing)?;
                let value = a.next_element()?.ok_or_else(missing)?;
                Ok(Lined { value, line, column })
            }
        }
        deserializer.deserialize_newtype_struct(tree::LINED, LinedVisitor(PhantomData))
    }
}
