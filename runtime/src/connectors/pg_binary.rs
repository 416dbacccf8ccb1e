//! Seeds into PostgreSQL as binary COPY (issue 20): the CSV is parsed and each
//! value encoded in its column's binary form here, on one core, while the server
//! stores tuples on the other — instead of the server parsing text itself (what
//! `psql \copy` makes it do). The columns' real types are read from the staging
//! table, so every value is sent exactly as the column takes it.
//!
//! Only values whose meaning is certain are encoded (`2024-01-05`, `12.50`,
//! `true`, …). Anything else — a date in another style, an exponent, a field
//! count that does not match, a type without an encoder — declines the binary
//! path before anything is committed, and the caller loads the file as text,
//! where the server applies its own rules and errors.

use std::io::{Read, Write};
use std::sync::mpsc;

use super::CsvFile;

/// The binary form of one column.
#[derive(Debug, Clone, Copy)]
pub(super) enum Enc {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
    Text,
    Date,
    Timestamp,
    /// Only from Arrow (a CSV value's zone depends on the session): UTC microseconds.
    TimestampTz,
    Numeric {
        precision: i32,
        scale: i32,
    },
}

/// Why the binary path stepped aside (the text path takes over).
#[derive(Debug)]
pub struct Declined(pub String);

/// The encoders for the columns of `rel`, if every column has one and the
/// database stores UTF-8.
pub(super) fn encoders(client: &mut postgres::Client, rel: &str) -> Result<Vec<Enc>, Declined> {
    let no = |e: postgres::Error| Declined(e.to_string());
    let enc: String = client.query_one("show server_encoding", &[]).map_err(no)?.get(0);
    if enc != "UTF8" {
        return Err(Declined(format!("server encoding {enc}")));
    }
    let rows = client
        .query(
            "select a.atttypid::regtype::text, a.atttypmod from pg_attribute a \
             where a.attrelid = $1::text::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum",
            &[&rel],
        )
        .map_err(no)?;
    rows.iter()
        .map(|r| {
            let (t, typmod): (String, i32) = (r.get(0), r.get(1));
            Ok(match t.as_str() {
                "smallint" => Enc::Int2,
                "integer" => Enc::Int4,
                "bigint" => Enc::Int8,
                "real" => Enc::Float4,
                "double precision" => Enc::Float8,
                "boolean" => Enc::Bool,
                "text" | "character varying" | "character" => Enc::Text,
                "date" => Enc::Date,
                "timestamp without time zone" => Enc::Timestamp,
                "timestamp with time zone" => Enc::TimestampTz,
                "numeric" if typmod >= 4 => Enc::Numeric { precision: ((typmod - 4) >> 16) & 0xffff, scale: (typmod - 4) & 0xffff },
                other => return Err(Declined(format!("no binary encoder for `{other}`"))),
            })
        })
        .collect()
}

/// Loads `csv` into `rel` through binary COPY in one transaction. `Err(Declined)`
/// leaves `rel` as it was (nothing committed); `Ok(Err(..))` is a real failure.
pub fn load(client: &mut postgres::Client, rel: &str, csv: &CsvFile) -> Result<Result<u64, String>, Declined> {
    let encs = encoders(client, rel)?;
    if encs.len() != csv.columns.len() {
        return Err(Declined("the file's columns differ from the table's".into()));
    }
    let file = std::fs::File::open(&csv.path).map_err(|e| Declined(e.to_string()))?;
    let mut tx = client.transaction().map_err(|e| Declined(e.to_string()))?;
    let mut w = tx.copy_in(&format!("copy {rel} from stdin with (format binary)")).map_err(|e| Declined(e.to_string()))?;
    // Parse and encode on another core; this one feeds the socket.
    let (tx_chunks, rx_chunks) = mpsc::sync_channel::<Vec<u8>>(4);
    let (delimiter, empty_as_null) = (csv.delimiter, csv.empty_as_null);
    let parsed = std::thread::scope(|s| {
        let parser = s.spawn(move || encode_file(file, delimiter, empty_as_null, &encs, &tx_chunks));
        let mut sent: Result<(), String> = Ok(());
        for chunk in rx_chunks {
            if sent.is_ok() {
                sent = w.write_all(&chunk).map_err(|e| e.to_string());
            }
        }
        let parsed = parser.join().unwrap_or_else(|_| Err(Declined("the CSV encoder panicked".into())));
        (parsed, sent)
    });
    match parsed {
        (Err(d), _) => Err(d),
        (Ok(rows), Ok(())) => {
            let r = w.finish().map_err(|e| format!("{}: {}", csv.display, super::postgres::err(e))).and_then(|n| {
                tx.commit().map_err(super::postgres::err)?;
                debug_assert_eq!(n, rows);
                Ok(n)
            });
            Ok(r)
        }
        (Ok(_), Err(e)) => Ok(Err(format!("{}: {e}", csv.display))),
    }
}

/// Reads the whole file, sends binary COPY data in chunks; returns the row count.
fn encode_file(
    mut file: std::fs::File,
    delimiter: u8,
    empty_as_null: bool,
    encs: &[Enc],
    out: &mpsc::SyncSender<Vec<u8>>,
) -> Result<u64, Declined> {
    let mut p = Parser {
        delimiter,
        empty_as_null,
        encs,
        buf: Vec::with_capacity(1 << 20),
        field: Vec::new(),
        col: 0,
        rows: 0,
        header: true,
        quoted: false,
    };
    p.buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    p.buf.extend_from_slice(&0i32.to_be_bytes());
    p.buf.extend_from_slice(&0i32.to_be_bytes());
    let mut state = State::FieldStart;
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut chunk).map_err(|e| Declined(e.to_string()))?;
        if n == 0 {
            break;
        }
        for &b in &chunk[..n] {
            state = p.step(state, b)?;
        }
        if p.buf.len() >= 1 << 20 {
            let full = std::mem::replace(&mut p.buf, Vec::with_capacity(1 << 20));
            out.send(full).map_err(|_| Declined("the COPY stream closed".into()))?;
        }
    }
    match state {
        State::FieldStart if p.col == 0 && p.field.is_empty() => {}
        State::Quoted => return Err(Declined("an unterminated quoted field".into())),
        _ => p.end_record()?,
    }
    p.buf.extend_from_slice(&(-1i16).to_be_bytes());
    let rows = p.rows;
    out.send(std::mem::take(&mut p.buf)).map_err(|_| Declined("the COPY stream closed".into()))?;
    Ok(rows)
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the end of it, or the first of `""`;
    /// after a closing quote only a delimiter or the end of the line may follow.
    QuoteInQuoted,
    Cr,
}

struct Parser<'a> {
    delimiter: u8,
    empty_as_null: bool,
    encs: &'a [Enc],
    buf: Vec<u8>,
    field: Vec<u8>,
    col: usize,
    rows: u64,
    header: bool,
    quoted: bool,
}

impl Parser<'_> {
    fn step(&mut self, s: State, b: u8) -> Result<State, Declined> {
        Ok(match (s, b) {
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, _) => {
                self.field.push(b);
                State::Quoted
            }
            (State::QuoteInQuoted, b'"') => {
                self.field.push(b'"');
                State::Quoted
            }
            (State::QuoteInQuoted, _) if b == self.delimiter => {
                self.end_field()?;
                State::FieldStart
            }
            (State::QuoteInQuoted | State::FieldStart | State::Unquoted, b'\n') => {
                self.end_record()?;
                State::FieldStart
            }
            (State::QuoteInQuoted | State::FieldStart | State::Unquoted, b'\r') => State::Cr,
            (State::Cr, b'\n') => {
                self.end_record()?;
                State::FieldStart
            }
            (State::Cr, _) => return Err(Declined("a carriage return outside quotes".into())),
            (State::QuoteInQuoted, _) => return Err(Declined("text after a closing quote".into())),
            (State::FieldStart, b'"') => {
                self.quoted = true;
                State::Quoted
            }
            (State::FieldStart | State::Unquoted, _) if b == self.delimiter => {
                self.end_field()?;
                State::FieldStart
            }
            (State::FieldStart | State::Unquoted, _) => {
                self.field.push(b);
                State::Unquoted
            }
        })
    }

    fn end_field(&mut self) -> Result<(), Declined> {
        if !self.header {
            let Some(enc) = self.encs.get(self.col).copied() else {
                return Err(Declined("a row with more fields than columns".into()));
            };
            if self.col == 0 {
                self.buf.extend_from_slice(&(self.encs.len() as i16).to_be_bytes());
            }
            // FORCE_NULL on every column, or FORCE_NOT_NULL: empty is NULL, or never.
            if self.field.is_empty() && self.empty_as_null {
                self.buf.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                encode(enc, &self.field, &mut self.buf)?;
            }
        }
        self.col += 1;
        self.field.clear();
        self.quoted = false;
        Ok(())
    }

    fn end_record(&mut self) -> Result<(), Declined> {
        self.end_field()?;
        if self.col != self.encs.len() {
            return Err(Declined(format!("a row with {} fields for {} columns", self.col, self.encs.len())));
        }
        if self.header {
            self.header = false;
        } else {
            self.rows += 1;
        }
        self.col = 0;
        Ok(())
    }
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn no(what: &str, v: &[u8]) -> Declined {
    Declined(format!("{what} `{}`", String::from_utf8_lossy(v)))
}

/// Days from 2000-01-01 (PostgreSQL's epoch) of a strict `YYYY-MM-DD`.
fn pg_days(v: &[u8]) -> Option<i32> {
    let s = std::str::from_utf8(v).ok()?;
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !s.bytes().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()) {
        return None;
    }
    let d = chrono::NaiveDate::from_ymd_opt(s[..4].parse().ok()?, s[5..7].parse().ok()?, s[8..].parse().ok()?)?;
    if d.year_ce().1 == 0 || !d.year_ce().0 {
        return None;
    }
    Some((d - chrono::NaiveDate::from_ymd_opt(2000, 1, 1)?).num_days() as i32)
}

use chrono::Datelike;

fn encode(enc: Enc, v: &[u8], buf: &mut Vec<u8>) -> Result<(), Declined> {
    let text = || std::str::from_utf8(v).map_err(|_| no("invalid UTF-8", v));
    let int = || text().ok().map(str::trim).and_then(|t| t.parse::<i64>().ok());
    match enc {
        Enc::Text => {
            text()?;
            put(buf, v);
        }
        Enc::Int2 => put(buf, &i16::try_from(int().ok_or_else(|| no("smallint", v))?).map_err(|_| no("smallint", v))?.to_be_bytes()),
        Enc::Int4 => put(buf, &i32::try_from(int().ok_or_else(|| no("integer", v))?).map_err(|_| no("integer", v))?.to_be_bytes()),
        Enc::Int8 => put(buf, &int().ok_or_else(|| no("bigint", v))?.to_be_bytes()),
        Enc::Float8 | Enc::Float4 => {
            let t = text()?.trim();
            let word = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
            let special = matches!(word.as_str(), "inf" | "infinity" | "nan");
            let mantissa_nonzero = t.split(['e', 'E']).next().is_some_and(|m| m.bytes().any(|c| (b'1'..=b'9').contains(&c)));
            // Out of range, or a non-zero value that underflows to zero, is an error in
            // PostgreSQL: its text path reports it.
            let bad = |finite: bool, zero: bool| (!finite && !special) || (zero && mantissa_nonzero);
            if matches!(enc, Enc::Float4) {
                let g: f32 = t.parse().map_err(|_| no("real", v))?;
                if bad(g.is_finite(), g == 0.0) {
                    return Err(no("real", v));
                }
                put(buf, &g.to_be_bytes());
            } else {
                let f: f64 = t.parse().map_err(|_| no("double precision", v))?;
                if bad(f.is_finite(), f == 0.0) {
                    return Err(no("double precision", v));
                }
                put(buf, &f.to_be_bytes());
            }
        }
        Enc::Bool => {
            let t = text()?.trim().to_ascii_lowercase();
            let b = match t.as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => true,
                "f" | "false" | "n" | "no" | "off" | "0" => false,
                _ => return Err(no("boolean", v)),
            };
            put(buf, &[u8::from(b)]);
        }
        Enc::Date => put(buf, &pg_days(v).ok_or_else(|| no("date", v))?.to_be_bytes()),
        Enc::Timestamp => {
            let t = text()?;
            if t.len() < 19 || !matches!(t.as_bytes()[10], b' ' | b'T') {
                return Err(no("timestamp", v));
            }
            let days = pg_days(&v[..10]).ok_or_else(|| no("timestamp", v))?;
            let clock = &t[11..];
            let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
            let hb = hms.as_bytes();
            if hb.len() != 8 || hb[2] != b':' || hb[5] != b':' || frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) {
                return Err(no("timestamp", v));
            }
            let num = |s: &str| s.parse::<i64>().ok().filter(|_| s.bytes().all(|c| c.is_ascii_digit()));
            let (Some(h), Some(m), Some(s)) = (num(&hms[..2]), num(&hms[3..5]), num(&hms[6..])) else { return Err(no("timestamp", v)) };
            if h > 23 || m > 59 || s > 59 {
                return Err(no("timestamp", v));
            }
            let micros = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse::<i64>().map_err(|_| no("timestamp", v))? };
            let total = i64::from(days) * 86_400_000_000 + ((h * 60 + m) * 60 + s) * 1_000_000 + micros;
            put(buf, &total.to_be_bytes());
        }
        Enc::Numeric { precision, scale } => put(buf, &numeric(text()?, precision, scale).ok_or_else(|| no("numeric", v))?),
        Enc::TimestampTz => return Err(no("timestamp with time zone", v)),
    }
    Ok(())
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Whether Arrow type `t` goes into a column of `enc` exactly, value for value.
fn arrow_fits(t: &arrow::datatypes::DataType, enc: Enc) -> bool {
    use arrow::datatypes::{DataType as D, TimeUnit};
    matches!(
        (t, enc),
        (D::Int8 | D::Int16 | D::UInt8, Enc::Int2 | Enc::Int4 | Enc::Int8)
            | (D::Int32 | D::UInt16, Enc::Int4 | Enc::Int8)
            | (D::Int64 | D::UInt32, Enc::Int8)
            | (D::Float32, Enc::Float4 | Enc::Float8)
            | (D::Float64, Enc::Float8)
            | (D::Boolean, Enc::Bool)
            | (D::Utf8 | D::LargeUtf8 | D::Utf8View, Enc::Text)
            | (D::Date32, Enc::Date)
            | (D::Timestamp(TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond, None), Enc::Timestamp)
            | (D::Timestamp(TimeUnit::Second | TimeUnit::Millisecond | TimeUnit::Microsecond, Some(_)), Enc::TimestampTz)
            | (D::Decimal128(..), Enc::Numeric { .. })
    )
}

/// Loads Arrow batches into `rel` through binary COPY, when every column's type
/// goes exactly into its column (checked on the first batch, before anything is
/// sent); `Err(first batch)` hands the batch back for the text path.
pub fn load_arrow(
    client: &mut postgres::Client,
    rel: &str,
    first: arrow::array::RecordBatch,
    rest: &mut super::BatchStream<'_>,
) -> Result<Result<u64, String>, arrow::array::RecordBatch> {
    let Ok(encs) = encoders(client, rel) else { return Err(first) };
    let schema = first.schema();
    if encs.len() != schema.fields().len() || !schema.fields().iter().zip(&encs).all(|(f, e)| arrow_fits(f.data_type(), *e)) {
        return Err(first);
    }
    Ok((|| {
        let mut tx = client.transaction().map_err(super::postgres::err)?;
        let mut w = tx.copy_in(&format!("copy {rel} from stdin with (format binary)")).map_err(super::postgres::err)?;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        let mut n = 0u64;
        for batch in std::iter::once(Ok(first)).chain(rest) {
            let batch = batch?;
            encode_batch(&batch, &encs, &mut buf)?;
            n += batch.num_rows() as u64;
            if buf.len() >= 1 << 20 {
                w.write_all(&buf).map_err(|e| e.to_string())?;
                buf.clear();
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        w.write_all(&buf).map_err(|e| e.to_string())?;
        let loaded = w.finish().map_err(super::postgres::err)?;
        tx.commit().map_err(super::postgres::err)?;
        debug_assert_eq!(loaded, n);
        Ok(n)
    })())
}

fn encode_batch(b: &arrow::array::RecordBatch, encs: &[Enc], buf: &mut Vec<u8>) -> Result<(), String> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType as D, *};
    let cols = b.columns();
    for row in 0..b.num_rows() {
        buf.extend_from_slice(&(encs.len() as i16).to_be_bytes());
        for (c, enc) in cols.iter().zip(encs) {
            if c.is_null(row) {
                buf.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let int = || -> i64 {
                match c.data_type() {
                    D::Int8 => c.as_primitive::<Int8Type>().value(row).into(),
                    D::Int16 => c.as_primitive::<Int16Type>().value(row).into(),
                    D::Int32 => c.as_primitive::<Int32Type>().value(row).into(),
                    D::Int64 => c.as_primitive::<Int64Type>().value(row),
                    D::UInt8 => c.as_primitive::<UInt8Type>().value(row).into(),
                    D::UInt16 => c.as_primitive::<UInt16Type>().value(row).into(),
                    D::UInt32 => c.as_primitive::<UInt32Type>().value(row).into(),
                    _ => unreachable!("checked by arrow_fits"),
                }
            };
            match enc {
                Enc::Int2 => put(buf, &(int() as i16).to_be_bytes()),
                Enc::Int4 => put(buf, &(int() as i32).to_be_bytes()),
                Enc::Int8 => put(buf, &int().to_be_bytes()),
                Enc::Float4 => put(buf, &c.as_primitive::<Float32Type>().value(row).to_be_bytes()),
                Enc::Float8 => {
                    let f = match c.data_type() {
                        D::Float32 => f64::from(c.as_primitive::<Float32Type>().value(row)),
                        _ => c.as_primitive::<Float64Type>().value(row),
                    };
                    put(buf, &f.to_be_bytes())
                }
                Enc::Bool => put(buf, &[u8::from(c.as_boolean().value(row))]),
                Enc::Text => {
                    let s = match c.data_type() {
                        D::Utf8 => c.as_string::<i32>().value(row),
                        D::LargeUtf8 => c.as_string::<i64>().value(row),
                        _ => c.as_string_view().value(row),
                    };
                    put(buf, s.as_bytes())
                }
                Enc::Date => put(buf, &(c.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS).to_be_bytes()),
                Enc::Timestamp | Enc::TimestampTz => {
                    let micros = match c.data_type() {
                        D::Timestamp(TimeUnit::Second, _) => c.as_primitive::<TimestampSecondType>().value(row).checked_mul(1_000_000),
                        D::Timestamp(TimeUnit::Millisecond, _) => {
                            c.as_primitive::<TimestampMillisecondType>().value(row).checked_mul(1_000)
                        }
                        _ => Some(c.as_primitive::<TimestampMicrosecondType>().value(row)),
                    }
                    .and_then(|m| m.checked_sub(PG_EPOCH_MICROS))
                    .ok_or("a timestamp out of PostgreSQL's range")?;
                    put(buf, &micros.to_be_bytes())
                }
                Enc::Numeric { precision, scale } => {
                    let D::Decimal128(_, s) = c.data_type() else { unreachable!("checked by arrow_fits") };
                    let text = Decimal128Type::format_decimal(c.as_primitive::<Decimal128Type>().value(row), 38, *s);
                    let bytes = numeric(&text, *precision, *scale)
                        .ok_or_else(|| format!("value {text} does not fit numeric({precision},{scale})"))?;
                    put(buf, &bytes)
                }
            }
        }
    }
    Ok(())
}

/// PostgreSQL's binary numeric of a plain decimal, rounded half away from zero
/// to `scale` as the column does; None when it does not fit `precision` (the
/// server reports that) or is not a plain decimal.
fn numeric(t: &str, precision: i32, scale: i32) -> Option<Vec<u8>> {
    let t = t.trim();
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let scale = usize::try_from(scale).ok()?;
    // All digits, the last `scale` of them after the point, rounded.
    let mut digits: Vec<u8> = int.bytes().map(|c| c - b'0').collect();
    let mut f: Vec<u8> = frac.bytes().map(|c| c - b'0').collect();
    let round_up = f.get(scale).is_some_and(|d| *d >= 5);
    f.resize(scale, 0);
    digits.extend_from_slice(&f);
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let int_len = digits.len() - scale;
    let int_digits = &digits[..int_len];
    let significant_int = int_digits.iter().skip_while(|d| **d == 0).count();
    if significant_int as i32 > precision - scale as i32 {
        return None;
    }
    // Base-10000 groups aligned on the decimal point.
    let pad_left = (4 - int_len % 4) % 4;
    let pad_right = (4 - scale % 4) % 4;
    let mut all = vec![0u8; pad_left];
    all.extend_from_slice(&digits);
    all.extend(std::iter::repeat_n(0, pad_right));
    let groups: Vec<i16> = all.chunks(4).map(|c| c.iter().fold(0i16, |a, d| a * 10 + i16::from(*d))).collect();
    let int_groups = (int_len + pad_left) / 4;
    let first = groups.iter().position(|g| *g != 0);
    let mut out = Vec::with_capacity(8 + groups.len() * 2);
    let Some(first) = first else {
        // Zero: no digits, positive.
        for x in [0i16, 0, 0, scale as i16] {
            out.extend_from_slice(&x.to_be_bytes());
        }
        return Some(out);
    };
    let last = groups.iter().rposition(|g| *g != 0).expect("a non-zero group");
    let kept = &groups[first..=last];
    let weight = int_groups as i16 - 1 - first as i16;
    let sign: u16 = if neg { 0x4000 } else { 0 };
    out.extend_from_slice(&(kept.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as i16).to_be_bytes());
    for g in kept {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(b: &[u8]) -> Vec<i16> {
        b.chunks(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect()
    }

    #[test]
    fn numerics_encode_as_postgres_stores_them() {
        // 12345.678 in numeric(12,2) → 12345.68: digits 1 2345 6800, weight 1.
        assert_eq!(words(&numeric("12345.678", 12, 2).unwrap()), [3, 1, 0, 2, 1, 2345, 6800]);
        assert_eq!(words(&numeric("-0.01", 12, 2).unwrap()), [1, -1, 0x4000, 2, 100]);
        assert_eq!(words(&numeric("0.00", 12, 2).unwrap()), [0, 0, 0, 2]);
        assert_eq!(words(&numeric("99.995", 4, 2).unwrap_or_default()), Vec::<i16>::new(), "rounds to 100.00: too wide");
        assert_eq!(words(&numeric("10000", 12, 0).unwrap()), [1, 1, 0, 0, 1]);
        assert!(numeric("1e3", 12, 2).is_none() && numeric("", 12, 2).is_none() && numeric("1.2.3", 12, 2).is_none());
    }

    #[test]
    fn dates_and_timestamps_are_strict() {
        assert_eq!(pg_days(b"2000-01-01"), Some(0));
        assert_eq!(pg_days(b"1999-12-31"), Some(-1));
        assert_eq!(pg_days(b"2024-02-30"), None);
        assert_eq!(pg_days(b"Jan 5 2024"), None);
        let mut buf = Vec::new();
        encode(Enc::Timestamp, b"2000-01-02 00:00:01.5", &mut buf).unwrap();
        assert_eq!(i64::from_be_bytes(buf[4..].try_into().unwrap()), 86_400_000_000 + 1_500_000);
        assert!(encode(Enc::Timestamp, b"2000-01-02 00:00:01+02", &mut Vec::new()).is_err());
        assert!(encode(Enc::Bool, b"tr", &mut Vec::new()).is_err());
        assert!(encode(Enc::Int4, b"3000000000", &mut Vec::new()).is_err());
    }
}
