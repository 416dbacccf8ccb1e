//! MySQL and MariaDB, through the `mysql` driver.

use mysql::prelude::Queryable;

use super::{Connection, RelationKind, RowSink, RowStream, Rows};
use crate::credentials::Credentials;

pub struct My(mysql::Conn);

pub fn open(c: &Credentials) -> Result<My, String> {
    let base = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(c.get_or("host", "127.0.0.1")))
        .tcp_port(c.get_or("port", "3306").parse().map_err(|_| format!("output `{}`: port is not a number", c.name))?)
        .user(Some(c.get_or("user", "root")))
        .pass(c.get("password").filter(|p| !p.is_empty()))
        .tcp_connect_timeout(Some(std::time::Duration::from_secs(c.get_or("connect_timeout", "10").parse().unwrap_or(10))));
    // MySQL's ssl-mode names (dbt-mysql's `ssl_mode`); `sslmode` is accepted too.
    let ca = c.path("ssl_ca").or(c.path("sslrootcert"));
    let ssl = |accept_any: bool, skip_name: bool| {
        let mut o = mysql::SslOpts::default().with_danger_accept_invalid_certs(accept_any).with_danger_skip_domain_validation(skip_name);
        if let Some(p) = &ca {
            o = o.with_root_cert_path(Some(p.clone()));
        }
        o
    };
    let mode = c.get("ssl_mode").or(c.get("sslmode")).unwrap_or("disabled").to_ascii_lowercase().replace('-', "_");
    let attempts: Vec<Option<mysql::SslOpts>> = match mode.as_str() {
        "disabled" | "disable" => vec![None],
        "preferred" | "prefer" => vec![Some(ssl(true, true)), None],
        "required" | "require" => vec![Some(ssl(ca.is_none(), ca.is_none()))],
        "verify_ca" => vec![Some(ssl(false, true))],
        "verify_identity" | "verify_full" => vec![Some(ssl(false, false))],
        other => {
            return Err(format!(
                "output `{}`: ssl_mode `{other}` is not one of disabled, preferred, required, verify_ca, verify_identity",
                c.name
            ));
        }
    };
    let mut last = String::new();
    for tls in attempts {
        // The driver would switch to the server's Unix socket (never encrypted) when it can.
        let opts = base.clone().prefer_socket(tls.is_none()).ssl_opts(tls);
        match mysql::Conn::new(opts) {
            Ok(mut conn) => {
                conn.query_drop("set session sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY'")
                    .map_err(|e| e.to_string())?;
                return Ok(My(conn));
            }
            Err(e) => last = format!("cannot connect to output `{}`: {e}", c.name),
        }
    }
    Err(last)
}

fn text(v: mysql::Value) -> Option<String> {
    match v {
        mysql::Value::NULL => None,
        mysql::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        mysql::Value::Int(i) => Some(i.to_string()),
        mysql::Value::UInt(u) => Some(u.to_string()),
        mysql::Value::Float(f) => Some(f.to_string()),
        mysql::Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// A result column's type in MySQL's words (DECIMAL keeps its precision and scale).
fn type_name(c: &mysql::Column) -> String {
    use mysql::consts::{ColumnFlags, ColumnType as T};
    let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    match c.column_type() {
        T::MYSQL_TYPE_TINY if c.column_length() == 1 => "boolean".into(),
        T::MYSQL_TYPE_TINY | T::MYSQL_TYPE_SHORT | T::MYSQL_TYPE_INT24 => "int".into(),
        T::MYSQL_TYPE_LONG if !unsigned => "int".into(),
        T::MYSQL_TYPE_LONG | T::MYSQL_TYPE_LONGLONG | T::MYSQL_TYPE_YEAR => "bigint".into(),
        T::MYSQL_TYPE_FLOAT | T::MYSQL_TYPE_DOUBLE => "double".into(),
        T::MYSQL_TYPE_NEWDECIMAL | T::MYSQL_TYPE_DECIMAL => {
            // The display length counts the sign and the point.
            let scale = u32::from(c.decimals());
            let precision = c.column_length().saturating_sub(u32::from(!unsigned) + u32::from(scale > 0));
            format!("decimal({precision},{scale})")
        }
        T::MYSQL_TYPE_DATE | T::MYSQL_TYPE_NEWDATE => "date".into(),
        T::MYSQL_TYPE_DATETIME | T::MYSQL_TYPE_DATETIME2 | T::MYSQL_TYPE_TIMESTAMP | T::MYSQL_TYPE_TIMESTAMP2 => "datetime".into(),
        _ => "text".into(),
    }
}

impl Connection for My {
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.0.query_drop(sql).map_err(|e| e.to_string())
    }

    fn query(&mut self, sql: &str) -> Result<Rows, String> {
        self.query_typed(sql).map(|(_, rows)| rows)
    }

    fn query_into(&mut self, sql: &str, sink: &mut dyn RowSink) -> Result<(), String> {
        let mut result = self.0.query_iter(sql).map_err(|e| e.to_string())?;
        match result.iter() {
            Some(set) => {
                let columns = set.columns().as_ref().iter().map(|c| c.name_str().into_owned()).collect();
                let types = set.columns().as_ref().iter().map(type_name).collect();
                sink.start(columns, types)?;
                super::feed(set.map(|row| row.map(|r| r.unwrap().into_iter().map(text).collect())), sink)
            }
            None => sink.start(vec![], vec![]),
        }
    }

    fn relation_kind(&mut self, schema: Option<&str>, identifier: &str) -> Result<Option<RelationKind>, String> {
        let kind: Option<String> =
            self.0.exec_first(super::TABLE_TYPE_SQL, (schema.unwrap_or_default(), identifier)).map_err(|e| e.to_string())?;
        Ok(kind.map(|k| super::kind_of(&k)))
    }

    fn columns(&mut self, schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String> {
        self.0.exec(super::COLUMNS_SQL, (schema.unwrap_or_default(), identifier)).map_err(|e| e.to_string())
    }

    fn row_estimate(&mut self, schema: Option<&str>, identifier: &str) -> Option<u64> {
        // Small tables are counted; InnoDB's `table_rows` is an estimate for the others.
        let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let schema = schema.unwrap_or_default();
        let meta = format!(
            "select data_length, table_rows from information_schema.tables where table_schema = {} and table_name = {}",
            lit(schema),
            lit(identifier)
        );
        let rows = self.query(&meta).ok()?;
        let row = rows.rows.first()?;
        let bytes: u64 = row.first()?.as_ref()?.parse().ok()?;
        if bytes < super::CHEAP_COUNT_BYTES {
            let count = format!("select count(*) from `{}`.`{}`", schema.replace('`', "``"), identifier.replace('`', "``"));
            return self.query(&count).ok()?.rows.first()?.first()?.as_ref()?.parse().ok();
        }
        row.get(1)?.as_ref()?.parse().ok()
    }

    fn lock_relation(&mut self, rendered: &str) -> Result<(), String> {
        // One hour, then a clear failure rather than waiting for ever.
        let got: Option<Option<i64>> =
            self.0.exec_first("select get_lock(?, 3600)", (super::lock_name(rendered),)).map_err(|e| e.to_string())?;
        match got.flatten() {
            Some(1) => Ok(()),
            _ => Err(format!("another run has been writing {rendered} for an hour (lock `{}`)", super::lock_name(rendered))),
        }
    }

    fn unlock_relation(&mut self, rendered: &str) -> Result<(), String> {
        self.0.exec_drop("select release_lock(?)", (super::lock_name(rendered),)).map_err(|e| e.to_string())
    }

    fn load(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String> {
        let local_infile: Option<String> = self.0.query_first("select @@local_infile").map_err(|e| e.to_string())?;
        if local_infile.as_deref() == Some("1") {
            return self.load_data(rel, ncols, rows);
        }
        self.insert_batches(rel, ncols, rows)
    }
}

/// Rows in MySQL's escaped text format, sent in 1 MiB chunks; the row count.
fn send_rows(rows: &mut RowStream<'_>, ncols: usize, tx: &std::sync::mpsc::SyncSender<Result<Vec<u8>, String>>) -> Result<u64, String> {
    let mut count = 0u64;
    let mut line = String::new();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let closed = || "the server stopped reading the rows".to_string();
    for row in rows {
        let row = row?;
        if row.len() != ncols {
            return Err(format!("row {} has {} values, the table has {ncols} columns", count + 1, row.len()));
        }
        line.clear();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            match v {
                None => line.push_str("\\N"),
                Some(v) => super::escape_text(v, &mut line),
            }
        }
        line.push('\n');
        buf.extend_from_slice(line.as_bytes());
        count += 1;
        if buf.len() >= 1 << 20 {
            tx.send(Ok(std::mem::replace(&mut buf, Vec::with_capacity(1 << 20)))).map_err(|_| closed())?;
        }
    }
    if !buf.is_empty() {
        tx.send(Ok(buf)).map_err(|_| closed())?;
    }
    Ok(count)
}

impl My {
    /// LOAD DATA LOCAL INFILE, the server's bulk path, fed with DVT's own rows in
    /// MySQL's escaped text format (`\N` is NULL, so every value arrives as DVT
    /// read it), streamed: this thread reads and escapes the rows while another
    /// runs the statement, whose file handler takes them in 1 MiB chunks as they
    /// come — the server ingests while the file is still being read.
    /// LOCAL turns bad values into warnings: any warning fails the load.
    fn load_data(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String> {
        use std::sync::mpsc;
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>, String>>(8);
        self.0.set_local_infile_handler(Some(mysql::LocalInfileHandler::new(move |_, out| {
            for chunk in rx.iter() {
                match chunk {
                    Ok(bytes) => std::io::Write::write_all(out, &bytes)?,
                    // A bad row: the statement fails rather than loading part of the file.
                    Err(e) => return Err(std::io::Error::other(e)),
                }
            }
            Ok(())
        })));
        let sql = format!(
            "load data local infile 'dvt' into table {rel} character set utf8mb4 fields terminated by '\\t' escaped by '\\\\' lines terminated by '\\n'"
        );
        let conn = &mut self.0;
        let (result, produced) = std::thread::scope(|s| {
            let loader = s.spawn(move || {
                let r = conn.query_iter(&sql).map_err(|e| e.to_string()).map(|r| (r.affected_rows(), r.warnings()));
                // Dropping the handler closes the channel: the producer stops if the server gave up early.
                conn.set_local_infile_handler(None);
                r
            });
            let produced = send_rows(rows, ncols, &tx);
            if let Err(e) = &produced {
                let _ = tx.send(Err(e.clone()));
            }
            drop(tx);
            (loader.join().unwrap_or_else(|_| Err("the LOAD DATA thread panicked".into())), produced)
        });
        let count = produced?;
        let (loaded, warnings) = result?;
        if warnings > 0 {
            let shown: Vec<(String, u32, String)> = self.0.query("show warnings limit 3").map_err(|e| e.to_string())?;
            let list: Vec<String> = shown.into_iter().map(|(_, code, msg)| format!("{code}: {msg}")).collect();
            return Err(format!("{warnings} values did not load exactly: {}", list.join("; ")));
        }
        if loaded != count {
            return Err(format!("{count} rows sent, {loaded} loaded"));
        }
        Ok(count)
    }

    /// Batched prepared INSERTs, for servers that refuse LOCAL INFILE.
    fn insert_batches(&mut self, rel: &str, ncols: usize, rows: &mut RowStream<'_>) -> Result<u64, String> {
        // As many rows per prepared INSERT as the protocol's 65,535 placeholders allow
        // (at most 4,096): fewer round trips and statement executions.
        let batch = (65_535 / ncols.max(1)).clamp(1, 4096);
        let mut tx = self.0.start_transaction(mysql::TxOpts::default()).map_err(|e| e.to_string())?;
        let row_marks = format!("({})", vec!["?"; ncols].join(", "));
        let full =
            tx.prep(format!("insert into {rel} values {}", vec![row_marks.as_str(); batch].join(", "))).map_err(|e| e.to_string())?;
        let mut buf: Vec<mysql::Value> = Vec::with_capacity(batch * ncols);
        let mut n = 0u64;
        let mut in_buf = 0usize;
        let to_value = |v: Option<String>| v.map_or(mysql::Value::NULL, |s| mysql::Value::Bytes(s.into_bytes()));
        for row in rows {
            buf.extend(row?.into_iter().map(to_value));
            in_buf += 1;
            n += 1;
            if in_buf == batch {
                tx.exec_drop(&full, std::mem::take(&mut buf)).map_err(|e| e.to_string())?;
                in_buf = 0;
            }
        }
        if in_buf > 0 {
            let st =
                tx.prep(format!("insert into {rel} values {}", vec![row_marks.as_str(); in_buf].join(", "))).map_err(|e| e.to_string())?;
            tx.exec_drop(&st, buf).map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(n)
    }
}
