//! The live database behind `run_query`, `statement` and `adapter.get_*` when
//! `dvtr` renders a node marked "render at run time" (one connection per
//! output, opened on first use).

use std::collections::BTreeMap;
use std::sync::Mutex;

use datafusion::arrow::datatypes::DataType;
use dvt_compiler::jinja::live::{LiveDatabase, QueryResult};
use serde_json::Value as Json;

use crate::arrow_rows;
use crate::connectors::{self, Connection};
use crate::credentials::Credentials;

pub struct Live {
    creds: BTreeMap<String, Credentials>,
    conns: Mutex<BTreeMap<String, Box<dyn Connection>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("outputs", &self.creds.keys().collect::<Vec<_>>()).finish()
    }
}

impl Live {
    pub fn new(creds: BTreeMap<String, Credentials>) -> Self {
        Live { creds, conns: Mutex::new(BTreeMap::new()) }
    }

    fn with<R>(&self, target: &str, f: impl FnOnce(&mut dyn Connection) -> Result<R, String>) -> Result<R, String> {
        let mut conns = self.conns.lock().map_err(|_| "live connections poisoned".to_string())?;
        if !conns.contains_key(target) {
            let c = self.creds.get(target).ok_or_else(|| format!("output `{target}` is not in profiles.yml"))?;
            conns.insert(target.to_string(), connectors::connect(c)?);
        }
        f(conns.get_mut(target).expect("connected").as_mut())
    }
}

/// A value as Jinja sees it: numbers stay numbers, booleans booleans.
fn json(v: Option<String>, dt: &DataType, engine_type: &str) -> Json {
    let Some(v) = v else { return Json::Null };
    // A 4-byte float reaches dbt's Python drivers widened to a double (3.3 -> 3.299999952316284).
    if matches!(engine_type.to_ascii_lowercase().as_str(), "float4" | "real" | "float") {
        return v.parse::<f32>().map(|f| Json::from(f64::from(f))).unwrap_or(Json::String(v));
    }
    match dt {
        DataType::Int64 => v.parse::<i64>().map(Json::from).unwrap_or(Json::String(v)),
        DataType::Float64 | DataType::Decimal128(..) => v.parse::<f64>().map(Json::from).unwrap_or(Json::String(v)),
        DataType::Boolean => Json::Bool(matches!(v.as_str(), "t" | "true" | "1")),
        _ => Json::String(v),
    }
}

impl LiveDatabase for Live {
    fn query(&self, target: &str, sql: &str) -> Result<QueryResult, String> {
        self.with(target, |c| {
            let (types, rows) = c.query_typed(sql)?;
            let dts: Vec<DataType> = (0..rows.columns.len())
                .map(|i| {
                    let values: Vec<Option<&str>> = rows.rows.iter().map(|r| r.get(i).and_then(|v| v.as_deref())).collect();
                    arrow_rows::arrow_type(types.get(i).map_or("", String::as_str), &values)
                })
                .collect();
            let engine_type = |i: usize| types.get(i).map_or("", String::as_str);
            let out =
                rows.rows.into_iter().map(|r| r.into_iter().enumerate().map(|(i, v)| json(v, &dts[i], engine_type(i))).collect()).collect();
            Ok(QueryResult { columns: rows.columns, rows: out })
        })
    }

    fn columns(&self, target: &str, schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String> {
        self.with(target, |c| c.columns(schema, identifier))
    }
}
