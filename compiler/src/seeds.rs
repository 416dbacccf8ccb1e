//! Seed files: formats, a streaming RFC 4180 CSV reader, type inference that
//! never changes a value, and content hashes.
//!
//! Inference rules (documented in the README): a column is the narrowest of
//! boolean (`true`/`false`), integer (fits 32 bits), bigint (64 bits),
//! decimal(p, s) (plain digits with a point; p ≤ 38), float (exponent form),
//! date (`YYYY-MM-DD`), timestamp (`YYYY-MM-DD HH:MM:SS[.ffffff]`, `T` allowed)
//! that every non-empty value parses as **and prints back identically**;
//! otherwise text. So `007`, `+5`, `1.50e`, `12%` stay text. Empty fields are
//! NULL (configurable with `empty_as_null: false`, then they are empty text).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::dialect::LogicalType;
use crate::error::{DvtError, ErrorCode, Location, Result};

/// Columns and their types, in order.
pub type Columns = Vec<(String, LogicalType)>;

/// A CSV seed's columns as they load: each inferred type, or its
/// `column_types` override; names as `dialect` creates them (`quote`), and
/// each column's portable type name by header name. Err: the first override
/// that is not a type DVT can load.
pub fn typed_columns(
    inferred: Columns,
    overrides: &BTreeMap<String, String>,
    dialect: crate::dialect::Dialect,
    quote: bool,
) -> std::result::Result<(Columns, BTreeMap<String, String>), String> {
    let mut columns = Vec::with_capacity(inferred.len());
    let mut type_names = BTreeMap::new();
    for (name, inferred) in inferred {
        let t = match overrides.get(&name) {
            Some(o) => parse_type(o).ok_or_else(|| format!("column_types `{name}: {o}` is not a type DVT can load"))?,
            None => inferred,
        };
        type_names.insert(name.clone(), crate::dialect::Dialect::Postgres.sql().type_name(&t));
        columns.push((dialect.column_name(&name, quote), t));
    }
    Ok((columns, type_names))
}

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

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::hex::encode(&h.finalize()))
}

/// A CSV record with the line it started on.
pub struct Record {
    pub line: u64,
    pub fields: Vec<String>,
}

/// Streaming CSV reader: quoted fields with delimiters, quotes and newlines,
/// CRLF, a UTF-8 BOM. Bounded memory: one record at a time.
pub struct CsvReader<R: Read> {
    input: std::io::BufReader<R>,
    delimiter: u8,
    line: u64,
    started: bool,
    done: bool,
}

impl<R: Read> CsvReader<R> {
    pub fn new(input: R, delimiter: u8) -> Self {
        CsvReader { input: std::io::BufReader::with_capacity(1 << 16, input), delimiter, line: 1, started: false, done: false }
    }

    fn byte(&mut self) -> std::io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        match self.input.read(&mut b)? {
            0 => Ok(None),
            _ => Ok(Some(b[0])),
        }
    }

    /// The next record, `None` at end of input. Errors name the line.
    pub fn next_record(&mut self) -> std::result::Result<Option<Record>, (u64, String)> {
        if self.done {
            return Ok(None);
        }
        let io = |e: std::io::Error| (0u64, e.to_string());
        if !self.started {
            self.started = true;
            // Skip a UTF-8 BOM.
            let buf = self.input.fill_buf_compat().map_err(io)?;
            if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                self.input.consume_compat(3);
            }
        }
        let start_line = self.line;
        let mut fields: Vec<String> = Vec::new();
        let mut field: Vec<u8> = Vec::new();
        let mut in_quotes = false;
        let mut quoted = false;
        let mut any = false;
        loop {
            let Some(b) = self.byte().map_err(io)? else {
                self.done = true;
                if in_quotes {
                    return Err((start_line, "a quoted field is never closed".into()));
                }
                if !any {
                    return Ok(None);
                }
                fields.push(utf8(field, start_line)?);
                return Ok(Some(Record { line: start_line, fields }));
            };
            any = true;
            if in_quotes {
                if b == b'"' {
                    // A doubled quote is a literal quote; a single one ends the quoted part.
                    let next = self.input.fill_buf_compat().map_err(io)?.first().copied();
                    if next == Some(b'"') {
                        self.input.consume_compat(1);
                        field.push(b'"');
                    } else {
                        in_quotes = false;
                    }
                } else {
                    if b == b'\n' {
                        self.line += 1;
                    }
                    field.push(b);
                }
                continue;
            }
            match b {
                b'"' if field.is_empty() && !quoted => {
                    in_quotes = true;
                    quoted = true;
                }
                b'\r' => {}
                b'\n' => {
                    self.line += 1;
                    fields.push(utf8(field, start_line)?);
                    return Ok(Some(Record { line: start_line, fields }));
                }
                d if d == self.delimiter => {
                    fields.push(utf8(std::mem::take(&mut field), start_line)?);
                    quoted = false;
                }
                other => field.push(other),
            }
        }
    }
}

fn utf8(v: Vec<u8>, line: u64) -> std::result::Result<String, (u64, String)> {
    String::from_utf8(v).map_err(|_| (line, "a field is not valid UTF-8".into()))
}

/// `fill_buf`/`consume` without importing `BufRead` into every caller.
trait BufCompat {
    fn fill_buf_compat(&mut self) -> std::io::Result<&[u8]>;
    fn consume_compat(&mut self, n: usize);
}

impl<R: Read> BufCompat for std::io::BufReader<R> {
    fn fill_buf_compat(&mut self) -> std::io::Result<&[u8]> {
        std::io::BufRead::fill_buf(self)
    }
    fn consume_compat(&mut self, n: usize) {
        std::io::BufRead::consume(self, n)
    }
}

/// Candidate types, narrowest first; a column keeps the set still possible.
#[derive(Debug, Clone)]
struct Candidates {
    boolean: bool,
    integer: bool,
    bigint: bool,
    decimal: bool,
    float: bool,
    date: bool,
    timestamp: bool,
    int_digits: u8,
    scale: u8,
    seen: bool,
}

impl Default for Candidates {
    fn default() -> Self {
        Candidates {
            boolean: true,
            integer: true,
            bigint: true,
            decimal: true,
            float: true,
            date: true,
            timestamp: true,
            int_digits: 1,
            scale: 0,
            seen: false,
        }
    }
}

fn is_canonical_int(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && (d == "0" || !d.starts_with('0')) && s != "-0"
}

fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(y), Some(m), Some(d)) if (1..=12).contains(&m) && d >= 1 => {
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
            d <= days && s[0..4].bytes().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Whether a CSV value can load into a column of type `t` (syntax and range
/// the way databases read text: leading zeros and `+` are fine, `12%` is not).
/// Loaders check this where the engine itself would not (SQLite stores any
/// value in any column), so a bad row fails with its line and column.
pub fn value_fits(t: &LogicalType, v: &str) -> bool {
    let v = v.trim();
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match t {
        LogicalType::Text => true,
        LogicalType::Integer => v.parse::<i32>().is_ok(),
        LogicalType::BigInt => v.parse::<i64>().is_ok(),
        LogicalType::Decimal(p, s) => match unsigned.split_once('.') {
            Some((i, f)) => {
                (digits(i) || i.is_empty() && digits(f))
                    && (f.is_empty() || digits(f))
                    && i.trim_start_matches('0').len() <= usize::from(p.saturating_sub(*s))
            }
            None => digits(unsigned) && unsigned.trim_start_matches('0').len() <= usize::from(p.saturating_sub(*s)),
        },
        LogicalType::Float => v.parse::<f64>().is_ok(),
        LogicalType::Boolean => matches!(v.to_ascii_lowercase().as_str(), "true" | "false" | "t" | "f" | "1" | "0" | "yes" | "no"),
        LogicalType::Date => valid_date(v),
        LogicalType::Timestamp => valid_timestamp(v),
        LogicalType::TimestampTz => {
            let base = v.trim_end_matches('Z');
            let base = match base.rfind(['+', '-']) {
                Some(i) if i > 18 => &base[..i],
                _ => base,
            };
            valid_timestamp(base)
        }
    }
}

fn valid_timestamp(s: &str) -> bool {
    // Timestamps are ASCII; anything else (a BOM inside a value, say) is text, and the
    // byte positions below are then character boundaries.
    if !s.is_ascii() || s.len() < 19 || !valid_date(&s[..10]) {
        return false;
    }
    let b = s.as_bytes();
    if b[10] != b' ' && b[10] != b'T' {
        return false;
    }
    let t = &s[11..];
    let (hms, frac) = t.split_once('.').map_or((t, None), |(a, b)| (a, Some(b)));
    let parts: Vec<&str> = hms.split(':').collect();
    let ok_hms = parts.len() == 3
        && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()))
        && parts[0].parse::<u32>().is_ok_and(|h| h < 24)
        && parts[1].parse::<u32>().is_ok_and(|m| m < 60)
        && parts[2].parse::<u32>().is_ok_and(|x| x < 60);
    ok_hms && frac.is_none_or(|f| (1..=6).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()))
}

impl Candidates {
    fn observe(&mut self, v: &str) {
        self.seen = true;
        let lower = v.to_ascii_lowercase();
        if !(lower == "true" || lower == "false") || v != lower {
            self.boolean = false;
        }
        if is_canonical_int(v) {
            if v.parse::<i32>().is_err() {
                self.integer = false;
            }
            if v.parse::<i64>().is_err() {
                self.bigint = false;
            }
            let digits = v.trim_start_matches('-').len() as u8;
            self.int_digits = self.int_digits.max(digits);
        } else {
            self.integer = false;
            self.bigint = false;
            match v.split_once('.') {
                Some((i, f)) if is_canonical_int(i) || i == "-0" => {
                    if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                        self.decimal = false;
                    } else {
                        self.int_digits = self.int_digits.max(i.trim_start_matches('-').len() as u8);
                        self.scale = self.scale.max(f.len().min(255) as u8);
                    }
                }
                _ => self.decimal = false,
            }
        }
        let has_exp = v.contains(['e', 'E']);
        if !(is_canonical_int(v) || self.decimal || has_exp && v.parse::<f64>().is_ok_and(f64::is_finite)) {
            self.float = false;
        }
        if !valid_date(v) {
            self.date = false;
        }
        if !valid_timestamp(v) {
            self.timestamp = false;
        }
    }

    fn result(&self) -> LogicalType {
        if !self.seen {
            return LogicalType::Text;
        }
        let p = u16::from(self.int_digits) + u16::from(self.scale);
        if self.boolean {
            LogicalType::Boolean
        } else if self.integer {
            LogicalType::Integer
        } else if self.bigint {
            LogicalType::BigInt
        } else if self.decimal && p <= 38 {
            LogicalType::Decimal(p as u8, self.scale)
        } else if self.float {
            LogicalType::Float
        } else if self.date {
            LogicalType::Date
        } else if self.timestamp {
            LogicalType::Timestamp
        } else {
            LogicalType::Text
        }
    }
}

/// The header row of a CSV seed.
pub fn csv_header(path: &Path, display: &str, delimiter: u8) -> Result<Vec<String>> {
    let f = std::fs::File::open(path).map_err(|e| DvtError::io(path, e))?;
    let mut r = CsvReader::new(f, delimiter);
    match r.next_record() {
        Ok(Some(h)) => Ok(h.fields),
        Ok(None) => {
            Err(DvtError::new(ErrorCode::SeedInvalid, "the seed file is empty (a header row is required)").at(Location::new(display, 1, 0)))
        }
        Err((l, m)) => Err(DvtError::new(ErrorCode::SeedInvalid, m).at(Location::new(display, l as u32, 0))),
    }
}

/// Header and inferred types of a CSV seed.
pub fn infer_csv(path: &Path, display: &str, delimiter: u8) -> Result<Vec<(String, LogicalType)>> {
    let f = std::fs::File::open(path).map_err(|e| DvtError::io(path, e))?;
    let mut r = CsvReader::new(f, delimiter);
    let bad = |line: u64, msg: String| DvtError::new(ErrorCode::SeedInvalid, msg).at(Location::new(display, line as u32, 0));
    let Some(header) = r.next_record().map_err(|(l, m)| bad(l, m))? else {
        return Err(bad(1, "the seed file is empty (a header row is required)".into()));
    };
    let names = header.fields;
    if names.iter().any(String::is_empty) {
        return Err(bad(1, "a header column has an empty name".into()));
    }
    let mut cands = vec![Candidates::default(); names.len()];
    while let Some(rec) = r.next_record().map_err(|(l, m)| bad(l, m))? {
        if rec.fields.len() == 1 && rec.fields[0].is_empty() {
            continue; // blank line
        }
        if rec.fields.len() != names.len() {
            return Err(bad(rec.line, format!("row has {} fields, the header has {}", rec.fields.len(), names.len())));
        }
        for (c, v) in cands.iter_mut().zip(&rec.fields) {
            if !v.is_empty() {
                c.observe(v);
            }
        }
    }
    Ok(names.into_iter().zip(cands.iter().map(Candidates::result)).collect())
}

/// Parses a `column_types` value (`numeric(12,2)`, `bigint`, …) into a logical type, if it is one we know.
pub fn parse_type(s: &str) -> Option<LogicalType> {
    let t = s.trim().to_ascii_lowercase();
    let (base, args) = match t.split_once('(') {
        Some((b, a)) => (b.trim().to_string(), a.trim_end_matches(')').split(',').map(|x| x.trim().parse::<u8>().ok()).collect::<Vec<_>>()),
        None => (t.clone(), vec![]),
    };
    Some(match base.as_str() {
        "bool" | "boolean" => LogicalType::Boolean,
        "int" | "integer" | "int4" | "smallint" => LogicalType::Integer,
        "bigint" | "int8" | "long" => LogicalType::BigInt,
        "numeric" | "decimal" | "number" => match args.as_slice() {
            [Some(p), Some(s)] => LogicalType::Decimal(*p, *s),
            [Some(p)] => LogicalType::Decimal(*p, 0),
            _ => LogicalType::Decimal(38, 9),
        },
        "float" | "double" | "double precision" | "real" | "float8" => LogicalType::Float,
        "date" => LogicalType::Date,
        "timestamp" | "datetime" | "timestamp without time zone" | "timestamp_ntz" => LogicalType::Timestamp,
        "timestamptz" | "timestamp with time zone" | "timestamp_tz" => LogicalType::TimestampTz,
        "text" | "varchar" | "string" | "char" | "character varying" => LogicalType::Text,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(text: &str) -> Vec<(String, LogicalType)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, text).unwrap();
        infer_csv(&p, "s.csv", b',').unwrap()
    }

    /// Found by `make fuzz` (seed_csv): a multi-byte character where a timestamp's
    /// date ends made type inference slice inside it and panic.
    #[test]
    fn non_ascii_inside_a_timestamp_like_value_is_text() {
        let t = infer("ts\n2024-07-10 14:57:00\n2024-06-\u{feff}21:45:00\n");
        assert_eq!(t, vec![("ts".to_string(), LogicalType::Text)]);
        assert!(!value_fits(&LogicalType::Timestamp, "2024-06-\u{feff}21:45:00"));
        assert!(!value_fits(&LogicalType::TimestampTz, "2024-06-1\u{e9}21:45:00+01"));
    }

    #[test]
    fn inference_never_changes_values() {
        let t = infer(
            "\u{feff}id,code,price,pct,flag,d,ts,big,e, Price \r\n1,007,1.50,12%,true,2024-02-29,2024-01-01 10:00:00,9999999999,1e3,x\r\n2,010,10.25,3%,false,2023-01-01,2024-01-01T10:00:00.5,1,2.5E-1,\"a,\"\"b\"\"\nc\"\r\n",
        );
        use LogicalType::*;
        assert_eq!(
            t,
            vec![
                ("id".into(), Integer),
                ("code".into(), Text),
                ("price".into(), Decimal(4, 2)),
                ("pct".into(), Text),
                ("flag".into(), Boolean),
                ("d".into(), Date),
                ("ts".into(), Timestamp),
                ("big".into(), BigInt),
                ("e".into(), Float),
                (" Price ".into(), Text),
            ]
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, "a,b\n1,2\n\"x\ny\",3\n4\n").unwrap();
        let e = infer_csv(&p, "seeds/s.csv", b',').unwrap_err();
        assert_eq!(e.code, ErrorCode::SeedInvalid);
        assert_eq!(e.location.unwrap().line, 5);
        assert!(!valid_date("2023-02-29"));
    }
}
