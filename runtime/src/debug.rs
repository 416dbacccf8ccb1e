//! `dvtr debug`: checks everything a run needs, one row per item with OK/FAIL
//! and the reason — where the profile was found, the project (it parses),
//! every output (connects, `select 1`, server version, latency), every compute
//! and every bucket (a probe object written, read back and deleted). Secrets
//! are never printed: connection errors come from the drivers, which do not
//! echo passwords, and settings are not listed.

use std::time::Instant;

use crate::connectors;
use crate::credentials::Credentials;

/// One checked item.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub item: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(item: impl Into<String>, result: Result<String, String>) -> Self {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, e),
        };
        Check { item: item.into(), ok, detail }
    }
}

/// The server version query of an output type.
fn version_sql(kind: &str) -> &'static str {
    match kind {
        "postgres" | "postgresql" => "select version()",
        "sqlite" => "select 'SQLite ' || sqlite_version()",
        "duckdb" => "select 'DuckDB ' || version()",
        _ => "select version()",
    }
}

/// Connects to one output and measures a round trip.
pub fn check_output(c: &Credentials) -> Check {
    let started = Instant::now();
    let result = (|| {
        let mut conn = connectors::connect(c)?;
        let connected = started.elapsed();
        let t = Instant::now();
        conn.query("select 1")?;
        let roundtrip = t.elapsed();
        let version = conn.query(version_sql(&c.kind))?.rows.first().and_then(|r| r.first().cloned().flatten()).unwrap_or_default();
        let version: String = version.chars().take(60).collect();
        Ok(format!("{} · connect {:.1} ms · select 1 {:.1} ms", version, connected.as_secs_f64() * 1e3, roundtrip.as_secs_f64() * 1e3))
    })();
    Check::new(format!("output {} ({})", c.name, c.kind), result)
}

/// A compute: DataFusion is embedded; Ballista's scheduler must answer on its port.
pub fn check_compute(name: &str, kind: &str, endpoint: Option<&str>) -> Check {
    let result = match kind {
        "datafusion" => Ok(format!("embedded DataFusion {}", datafusion::DATAFUSION_VERSION)),
        "ballista" => match endpoint {
            None => Err("no `endpoint:` for the Ballista scheduler".to_string()),
            Some(e) => {
                let addr = e.trim_start_matches("df://").trim_start_matches("http://").trim_end_matches('/').to_string();
                match std::net::ToSocketAddrs::to_socket_addrs(&addr).ok().and_then(|mut a| a.next()) {
                    None => Err(format!("cannot resolve scheduler address `{addr}`")),
                    Some(sa) => std::net::TcpStream::connect_timeout(&sa, std::time::Duration::from_secs(3))
                        .map(|_| format!("scheduler reachable at {addr}"))
                        .map_err(|e| format!("scheduler at {addr} unreachable: {e}")),
                }
            }
        },
        other => Err(format!("unknown compute type `{other}`")),
    };
    Check::new(format!("compute {name} ({kind})"), result)
}

/// A bucket: a probe object written, read back and deleted through its operator.
pub fn check_bucket(buckets: &crate::buckets::Buckets, name: &str, kind: &str) -> Check {
    let started = Instant::now();
    let result = buckets
        .get(name, None)
        .and_then(|b| b.probe())
        .map(|()| format!("write, read, delete {:.1} ms", started.elapsed().as_secs_f64() * 1e3));
    Check::new(format!("bucket {name} ({kind})"), result)
}
