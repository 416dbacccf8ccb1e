//! Finds dbt's top-level blocks in a file: `macro`, `test`, `materialization`,
//! `docs` and `snapshot`, each with its name, span and line.

use crate::error::{DvtError, ErrorCode, Location, Result, line_col};

/// Kind of a top-level block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Macro,
    Test,
    Materialization,
    Docs,
    Snapshot,
}

impl BlockKind {
    fn from_tag(tag: &str) -> Option<(BlockKind, bool)> {
        Some(match tag {
            "macro" => (BlockKind::Macro, true),
            "endmacro" => (BlockKind::Macro, false),
            "test" => (BlockKind::Test, true),
            "endtest" => (BlockKind::Test, false),
            "materialization" => (BlockKind::Materialization, true),
            "endmaterialization" => (BlockKind::Materialization, false),
            "docs" => (BlockKind::Docs, true),
            "enddocs" => (BlockKind::Docs, false),
            "snapshot" => (BlockKind::Snapshot, true),
            "endsnapshot" => (BlockKind::Snapshot, false),
            _ => return None,
        })
    }
}

/// One block found in a file.
#[derive(Debug, Clone)]
pub struct Block {
    pub kind: BlockKind,
    /// Name after the keyword (macro name, docs name, …).
    pub name: String,
    /// Byte range of the whole block, tags included.
    pub start: usize,
    pub end: usize,
    /// Byte range between the opening and closing tags.
    pub body_start: usize,
    pub body_end: usize,
    /// Byte range of the opening tag.
    pub open_tag_end: usize,
    /// 1-based line of the opening tag.
    pub line: u32,
}

struct Tag<'a> {
    start: usize,
    end: usize,
    content: &'a str,
}

/// Iterates over `{% … %}` tags, skipping comments and raw blocks.
fn tags(text: &str) -> impl Iterator<Item = Tag<'_>> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_raw = false;
    std::iter::from_fn(move || {
        while i + 1 < bytes.len() {
            if bytes[i] == b'{' && bytes[i + 1] == b'#' && !in_raw {
                i = text[i + 2..].find("#}").map_or(bytes.len(), |p| i + 2 + p + 2);
                continue;
            }
            if bytes[i] == b'{' && bytes[i + 1] == b'%' {
                let start = i;
                let Some(p) = text[i + 2..].find("%}") else {
                    i = bytes.len();
                    return None;
                };
                let end = i + 2 + p + 2;
                let content = text[i + 2..i + 2 + p].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
                i = end;
                let word = content.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("");
                if word == "raw" {
                    in_raw = true;
                    continue;
                }
                if word == "endraw" {
                    in_raw = false;
                    continue;
                }
                if in_raw {
                    continue;
                }
                return Some(Tag { start, end, content });
            }
            i += 1;
        }
        None
    })
}

/// Scans `text` (of project-relative `file`) for top-level blocks.
pub fn scan(text: &str, file: &str) -> Result<Vec<Block>> {
    let mut out = Vec::new();
    let mut open: Option<(BlockKind, String, usize, usize, u32)> = None;
    for tag in tags(text) {
        let word = tag.content.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or("");
        let Some((kind, opening)) = BlockKind::from_tag(word) else { continue };
        match (&open, opening) {
            (None, true) => {
                let rest = tag.content[word.len()..].trim_start();
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                let (line, col) = line_col(text, tag.start);
                if name.is_empty() {
                    return Err(
                        DvtError::new(ErrorCode::JinjaSyntax, format!("`{{% {word} %}}` needs a name")).at(Location::new(file, line, col))
                    );
                }
                open = Some((kind, name, tag.start, tag.end, line));
            }
            (Some((k, ..)), false) if *k == kind => {
                let (k, name, start, open_end, line) = open.take().expect("checked above");
                out.push(Block {
                    kind: k,
                    name,
                    start,
                    end: tag.end,
                    body_start: open_end,
                    body_end: tag.start,
                    open_tag_end: open_end,
                    line,
                });
            }
            (Some((k, n, s, ..)), true) if *k == BlockKind::Materialization || kind == *k => {
                // Nested blocks of the same kind are not valid Jinja for dbt.
                let (line, col) = line_col(text, tag.start);
                let _ = (n, s);
                return Err(DvtError::new(ErrorCode::JinjaSyntax, format!("`{word}` block opened inside another `{word}` block"))
                    .at(Location::new(file, line, col))
                    .hint("close the previous block first"));
            }
            (None, false) => {
                let (line, col) = line_col(text, tag.start);
                return Err(DvtError::new(ErrorCode::JinjaSyntax, format!("`{word}` without a matching opening tag"))
                    .at(Location::new(file, line, col)));
            }
            _ => {}
        }
    }
    if let Some((kind, name, _, _, line)) = open {
        let end = match kind {
            BlockKind::Macro => "endmacro",
            BlockKind::Test => "endtest",
            BlockKind::Materialization => "endmaterialization",
            BlockKind::Docs => "enddocs",
            BlockKind::Snapshot => "endsnapshot",
        };
        return Err(DvtError::new(ErrorCode::JinjaSyntax, format!("block `{name}` is never closed"))
            .at(Location::new(file, line, 0))
            .hint(format!("add `{{% {end} %}}`")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_macros_tests_and_docs() {
        let t = "{# {% macro no() %} #}\n{% macro a(x) -%} {{ x }} {%- endmacro %}\n{% test t(model) %}select 1{% endtest %}\n{% docs d %}hi{% enddocs %}";
        let b = scan(t, "f.sql").unwrap();
        let names: Vec<_> = b.iter().map(|b| (b.kind, b.name.as_str(), b.line)).collect();
        assert_eq!(names, vec![(BlockKind::Macro, "a", 2), (BlockKind::Test, "t", 3), (BlockKind::Docs, "d", 4)]);
        assert_eq!(&t[b[2].body_start..b[2].body_end], "hi");
    }

    #[test]
    fn unclosed_block_is_an_error_with_line() {
        let e = scan("\n{% macro a() %}x", "m.sql").unwrap_err();
        assert_eq!(e.code, ErrorCode::JinjaSyntax);
        assert_eq!(e.location.unwrap().line, 2);
    }
}
