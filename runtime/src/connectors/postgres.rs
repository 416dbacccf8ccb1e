//! PostgreSQL, through the `postgres` driver.

use postgres::config::SslMode;

use super::tls::Verify;
use super::{BatchStream, Connection, CsvFile, RelationKind, RowSink, RowStream, Rows};
use crate::credentials::Credentials;

pub struct Pg(postgres::Client);

pub fn open(c: &Credentials) -> Result<Pg, String> {
    let mut cfg = postgres::Config::new();
    cfg.host(c.get_or("host", "127.0.0.1"))
        .port(c.get_or("port", "5432").parse().map_err(|_| format!("output `{}`: port is not a number", c.name))?)
        .user(c.get_or("user", "postgres"))
        .dbname(c.get("dbname").or(c.get("database")).unwrap_or("postgres"))
        .connect_timeout(std::time::Duration::from_secs(c.get_or("connect_timeout", "10").parse().unwrap_or(10)))
        .application_name("dvtr");
    if let Some(p) = c.get("password").filter(|p| !p.is_empty()) {
        cfg.password(p);
    }
    if let Some(t) = c.get("statement_timeout").or(c.get("query_timeout")) {
        // Milliseconds, as PostgreSQL's setting reads a bare number.
        cfg.options(&format!("-c statement_timeout={t}"));
    }
    let fail = |e: postgres::Error| {
        let cause = std::error::Error::source(&e).map(|s| format!(" ({s})")).unwrap_or_default();
        format!("cannot connect to output `{}`: {e}{cause}", c.name)
    };
    // libpq's sslmode; `prefer` (its default) tries TLS and falls back to plain.
    let root = c.path("sslrootcert");
    let verify = match c.get_or("sslmode", "prefer") {
        "disable" => return cfg.ssl_mode(SslMode::Disable).connect(postgres::NoTls).map(Pg).map_err(fail),
        "allow" | "prefer" => {
            cfg.ssl_mode(SslMode::Prefer);
            Verify::Nothing
        }
        "require" => {
            cfg.ssl_mode(SslMode::Require);
            if root.is_some() { Verify::Chain } else { Verify::Nothing }
        }
        "verify-ca" => {
            cfg.ssl_mode(SslMode::Require);
            Verify::Chain
        }
        "verify-full" => {
            cfg.ssl_mode(SslMode::Require);
            Verify::Full
        }
        other => {
            return Err(format!(
                "output `{}`: sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full",
                c.name
            ));
        }
    };
    let tls = super::tls::client_config(verify, root.as_deref()).map_err(|e| format!("output `{}`: {e}", c.name))?;
    cfg.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls)).map(Pg).map_err(fail)
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`, ….
fn numbered(sql: &str) -> String {
    let mut n = 0;
    sql.chars()
        .map(|c| {
            if c == '?' {
                n += 1;
                format!("${n}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A read error of a COPY stream: the server's error inside it, with its code and message.
fn io_err(e: std::io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<postgres::Error>()) {
        Some(pg) => describe(pg),
        None => e.to_string(),
    }
}

pub(super) fn err(e: postgres::Error) -> String {
    describe(&e)
}

/// The server's code and message (the driver's Display says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        // `where` names the COPY line and column of a bad value.
        Some(db) => match db.where_() {
            Some(w) => format!("{}: {} ({w})", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => e.to_string(),
    }
}

impl Connection for Pg {
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.0.batch_execute(sql).map_err(err)
    }

    fn query(&mut self, sql: &str) -> Result<Rows, String> {
        // The simple protocol returns every value as text, whatever its type.
        let msgs = self.0.simple_query(sql).map_err(err)?;
        let mut out = Rows::default();
        for m in msgs {
            if let postgres::SimpleQueryMessage::Row(r) = m {
                if out.columns.is_empty() {
                    out.columns = r.columns().iter().map(|c| c.name().to_string()).collect();
                }
                out.rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            } else if let postgres::SimpleQueryMessage::RowDescription(cols) = m {
                out.columns = cols.iter().map(|c| c.name().to_string()).collect();
            }
        }
        Ok(out)
    }

    fn query_into(&mut self, sql: &str, sink: &mut dyn RowSink) -> Result<(), String> {
        let st = self.0.prepare(sql).map_err(err)?;
        let columns = st.columns().iter().map(|c| c.name().to_string()).collect();
        let types = st.columns().iter().map(type_name).collect();
        let n = st.columns().len();
        // COPY streams the result as text (each type's own output, as the simple protocol
        // gives it) without the server or the driver holding it all; what COPY cannot
        // wrap (SHOW, …) goes through the simple protocol.
        let copy = format!("copy (\n{}\n) to stdout", sql.trim_end().trim_end_matches(';'));
        if let Ok(reader) = self.0.copy_out(&copy) {
            sink.start(columns, types)?;
            let lines = std::io::BufRead::split(std::io::BufReader::with_capacity(1 << 16, reader), b'\n');
            return super::feed(lines.map(|l| l.map_err(io_err).and_then(|l| copy_text_row(&l, n))), sink);
        }
        let rows = self.query(sql)?;
        sink.start(columns, types)?;
        super::feed(rows.rows.into_iter().map(Ok::<_, String>), sink)
    }

    fn relation_kind(&mut self, schema: Option<&str>, identifier: &str) -> Result<Option<RelationKind>, String> {
        let rows = self.0.query(&numbered(super::TABLE_TYPE_SQL), &[&schema.unwrap_or("public"), &identifier]).map_err(err)?;
        Ok(rows.first().map(|r| super::kind_of(&r.get::<_, String>(0))))
    }

    fn columns(&mut self, schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String> {
        let rows = self.0.query(&numbered(super::COLUMNS_SQL), &[&schema.unwrap_or("public"), &identifier]).map_err(err)?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect())
    }

    fn row_estimate(&mut self, schema: Option<&str>, identifier: &str) -> Option<u64> {
        // Small tables are counted; large ones take the planner's estimate (if analyzed).
        let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let sql = format!(
            "select case when pg_relation_size(c.oid) < {} then (select count(*) from {}.{}) when c.reltuples >= 0 then c.reltuples::bigint end \
             from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = {} and c.relname = {}",
            super::CHEAP_COUNT_BYTES,
            ident(schema.unwrap_or("public")),
            ident(identifier),
            lit(schema.unwrap_or("public")),
            lit(identifier)
        );
        self.query(&sql).ok()?.rows.first()?.first()?.as_ref()?.parse().ok()
    }

    fn load_csv(&mut self, rel: &str, csv: &CsvFile) -> Option<Result<u64, String>> {
        // The server parses the file itself (COPY ... CSV): no second parse here.
        // FORCE_NULL makes quoted empty fields NULL too, as DVT's reader does.
        let cols: Vec<String> = csv.columns.iter().map(|(n, _)| format!("\"{}\"", n.replace('"', "\"\""))).collect();
        let nulls = if csv.empty_as_null {
            format!(", force_null ({})", cols.join(", "))
        } else {
            format!(", force_not_null ({})", cols.join(", "))
        };
        // Binary COPY, parsed and encoded here while the server stores; the text
        // path below when a value or type has no certain binary form.
        match super::pg_binary::load(&mut self.0, rel, csv) {
            Ok(loaded) => return Some(loaded),
            Err(why) if std::env::var_os("DVT_TRACE").is_some() => eprintln!("{}: text COPY ({})", csv.display, why.0),
            Err(_) => {}
        }
        let delim = (csv.delimiter as char).to_string().replace('\'', "''");
        let sql = format!("copy {rel} from stdin with (format csv, header true, delimiter '{delim}'{nulls})");
        Some((|| {
            use std::io::{Read, Write};
            let mut f = std::fs::File::open(&csv.path).map_err(|e| format!("cannot read {}: {e}", csv.display))?;
            let mut tx = self.0.transaction().map_err(err)?;
            let mut w = tx.copy_in(&sql).map_err(err)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", csv.display))?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).map_err(|e| e.to_string())?;
            }
            let rows = w.finish().map_err(|e| format!("{}: {}", csv.display, err(e)))?;
            tx.commit().map_err(err)?;
            Ok(rows)
        })())
    }

    fn lock_relation(&mut self, rendered: &str) -> Result<(), String> {
        self.0.execute("select pg_advisory_lock(hashtext($1))", &[&super::lock_name(rendered)]).map(|_| ()).map_err(err)
    }

    fn unlock_relation(&mut self, rendered: &str) -> Result<(), String> {
        self.0.execute("select pg_advisory_unlock(hashtext($1))", &[&super::lock_name(rendered)]).map(|_| ()).map_err(err)
    }

    /// Binary COPY when every Arrow column goes exactly into its table column;
    /// otherwise text COPY of the same batches.
    fn load_arrow(&mut self, rel: &str, batches: &mut BatchStream<'_>) -> Option<Result<u64, String>> {
        let first = match batches.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(e)),
        };
        match super::pg_binary::load_arrow(&mut self.0, rel, first, batches) {
            Ok(loaded) => Some(loaded),
            Err(first) => {
                let schema = first.schema();
                if std::env::var_os("DVT_TRACE").is_some() {
                    let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
                    eprintln!("{rel}: text COPY of Arrow batches ({})", types.join(", "));
                }
                let ncols = schema.fields().len();
                let all = std::iter::once(Ok(first)).chain(batches);
                let mut rows = crate::arrow_rows::TextRows::new(all, schema, dvt_compiler::dialect::Dialect::Postgres);
                Some(self.load(rel, ncols, &mut rows))
            }
        }
    }

    fn load(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String> {
        // COPY in text format: the server parses each value with its column's type.
        use std::io::Write;
        let mut tx = self.0.transaction().map_err(err)?;
        let mut n = 0u64;
        {
            let w = tx.copy_in(&format!("copy {rel} from stdin")).map_err(err)?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
            let mut line = String::new();
            for row in rows {
                let row = row?;
                n += 1;
                line.clear();
                for i in 0..ncols {
                    if i > 0 {
                        line.push('\t');
                    }
                    match row.get(i).and_then(Option::as_deref) {
                        None => line.push_str("\\N"),
                        Some(v) => super::escape_text(v, &mut line),
                    }
                }
                line.push('\n');
                w.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())?.finish().map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }
}

/// A result column's type as PostgreSQL would declare it: `numeric(12,2)`
/// keeps its precision and scale (the type modifier), so it reads as an exact
/// Decimal128(12, 2) rather than a decimal sized from the values.
fn type_name(c: &postgres::Column) -> String {
    let name = c.type_().name();
    let tm = c.type_modifier();
    if name == "numeric" && tm >= 4 {
        let tm = tm - 4;
        let (p, s) = ((tm >> 16) & 0xffff, ((tm & 0x7ff) ^ 1024) - 1024);
        if (0..=p).contains(&s) {
            return format!("numeric({p},{s})");
        }
    }
    name.to_string()
}

/// One line of COPY's text format: tab-separated fields, `\N` for NULL,
/// backslash escapes for tab, newline and friends.
fn copy_text_row(line: &[u8], n: usize) -> Result<Vec<Option<String>>, String> {
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return Ok(out);
    }
    for field in line.split(|b| *b == b'\t') {
        if field == b"\\N" {
            out.push(None);
            continue;
        }
        let mut v = Vec::with_capacity(field.len());
        let mut it = field.iter().copied().peekable();
        while let Some(b) = it.next() {
            if b != b'\\' {
                v.push(b);
                continue;
            }
            match it.next() {
                Some(b'b') => v.push(8),
                Some(b'f') => v.push(12),
                Some(b'n') => v.push(b'\n'),
                Some(b'r') => v.push(b'\r'),
                Some(b't') => v.push(b'\t'),
                Some(b'v') => v.push(11),
                Some(d @ b'0'..=b'7') => {
                    let mut x = u32::from(d - b'0');
                    for _ in 0..2 {
                        match it.peek() {
                            Some(d @ b'0'..=b'7') => {
                                x = x * 8 + u32::from(*d - b'0');
                                it.next();
                            }
                            _ => break,
                        }
                    }
                    v.push(x as u8);
                }
                Some(b'x') => {
                    let mut x = 0u32;
                    for _ in 0..2 {
                        match it.peek().and_then(|h| (*h as char).to_digit(16)) {
                            Some(h) => {
                                x = x * 16 + h;
                                it.next();
                            }
                            None => break,
                        }
                    }
                    v.push(x as u8);
                }
                Some(other) => v.push(other),
                None => return Err("COPY output ends with a lone backslash".into()),
            }
        }
        out.push(Some(String::from_utf8(v).map_err(|e| format!("COPY output is not UTF-8: {e}"))?));
    }
    if out.len() != n {
        return Err(format!("COPY output has {} fields where {n} columns were expected", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_text_format_decodes_nulls_and_escapes() {
        let row = super::copy_text_row(b"1\t\\N\ta\\tb\\nc\\\\d\t\\101\\x42\t", 5).unwrap();
        assert_eq!(row, [Some("1".into()), None, Some("a\tb\nc\\d".into()), Some("AB".into()), Some(String::new())]);
        assert!(super::copy_text_row(b"1\t2", 3).is_err());
    }
}
