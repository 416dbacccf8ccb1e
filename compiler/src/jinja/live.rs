//! Live rendering: `run_query`, `statement`/`load_result` and the catalog
//! methods of `adapter` answered by a real database. The compiler never
//! connects anywhere; `dvtr` hands in a [`LiveDatabase`] when it renders a node
//! marked "render at run time", at that node's turn in the run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};
use serde_json::Value as Json;

/// A query result: column names and rows of JSON scalars.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Json>>,
}

/// A database reachable while rendering.
pub trait LiveDatabase: Send + Sync + std::fmt::Debug {
    /// Runs `sql` on the output `target`.
    fn query(&self, target: &str, sql: &str) -> Result<QueryResult, String>;
    /// Columns (name, data type) of a relation on `target`; empty when it does not exist.
    fn columns(&self, target: &str, schema: Option<&str>, identifier: &str) -> Result<Vec<(String, String)>, String>;
}

/// The live database of one node's rendering, with its `statement` results.
#[derive(Debug)]
pub struct LiveSession {
    pub db: Arc<dyn LiveDatabase>,
    /// The output the node runs on.
    pub target: String,
    results: Mutex<BTreeMap<String, Value>>,
}

impl LiveSession {
    pub fn new(db: Arc<dyn LiveDatabase>, target: String) -> Self {
        LiveSession { db, target, results: Mutex::new(BTreeMap::new()) }
    }

    fn run(&self, sql: &str) -> Result<Value, Error> {
        let r = self.db.query(&self.target, sql).map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("run_query failed: {e}")))?;
        Ok(Value::from_object(Table::new(r)))
    }

    /// `run_query(sql)`: an agate-like table.
    pub fn run_query(&self, sql: &str) -> Result<Value, Error> {
        self.run(sql)
    }

    /// `{% call statement(name, fetch_result=True) %}sql{% endcall %}`.
    pub fn statement(&self, name: &str, sql: &str, fetch: bool) -> Result<Value, Error> {
        let table = self.run(sql)?;
        let data = if fetch { table.get_attr("rows").unwrap_or_default() } else { Value::from(Vec::<Value>::new()) };
        let mut m = BTreeMap::new();
        m.insert("table", if fetch { table } else { Value::from(()) });
        m.insert("data", data);
        m.insert("response", crate::jinja::to_value(serde_json::json!({"code": "SUCCESS", "_message": "OK"})));
        self.results.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), Value::from(m));
        Ok(Value::from(""))
    }

    /// `load_result(name)`.
    pub fn load_result(&self, name: &str) -> Value {
        self.results.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned().unwrap_or_default()
    }

    /// `adapter.get_columns_in_relation(relation)`: column objects (`name`, `data_type`, `dtype`).
    pub fn columns_of(&self, schema: Option<&str>, identifier: &str) -> Result<Value, Error> {
        let cols = self
            .db
            .columns(&self.target, schema, identifier)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("get_columns_in_relation failed: {e}")))?;
        Ok(Value::from(
            cols.into_iter()
                .map(|(n, t)| crate::jinja::to_value(serde_json::json!({"name": n, "column": n, "data_type": t, "dtype": t})))
                .collect::<Vec<_>>(),
        ))
    }
}

/// dbt's agate table as far as macros use it: iterate rows, index rows,
/// `rows`, `columns[i].values()`, `column_names`, `|length`.
#[derive(Debug)]
struct Table {
    names: Arc<Vec<String>>,
    rows: Vec<Value>,
    columns: Vec<Value>,
}

impl Table {
    fn new(r: QueryResult) -> Self {
        let names = Arc::new(r.columns);
        let columns = (0..names.len())
            .map(|i| {
                Value::from_object(Column {
                    name: names[i].clone(),
                    values: r.rows.iter().map(|row| crate::jinja::to_value(row.get(i).cloned().unwrap_or(Json::Null))).collect(),
                })
            })
            .collect();
        let rows = r
            .rows
            .into_iter()
            .map(|row| Value::from_object(Row { names: names.clone(), values: row.into_iter().map(crate::jinja::to_value).collect() }))
            .collect();
        Table { names, rows, columns }
    }
}

impl Object for Table {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(i) = key.as_usize() {
            return self.rows.get(i).cloned();
        }
        Some(match key.as_str()? {
            "rows" => Value::from(self.rows.clone()),
            "columns" => Value::from(self.columns.clone()),
            "column_names" => Value::from(self.names.iter().map(|n| Value::from(n.as_str())).collect::<Vec<_>>()),
            _ => return None,
        })
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.rows.len())
    }
}

#[derive(Debug)]
struct Row {
    names: Arc<Vec<String>>,
    values: Vec<Value>,
}

impl Object for Row {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(i) = key.as_usize() {
            return self.values.get(i).cloned();
        }
        let name = key.as_str()?;
        self.names.iter().position(|n| n == name).and_then(|i| self.values.get(i).cloned())
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.values.len())
    }
}

#[derive(Debug)]
struct Column {
    name: String,
    values: Vec<Value>,
}

impl Object for Column {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        (key.as_str()? == "name").then(|| Value::from(self.name.as_str()))
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, _args: &[Value]) -> Result<Value, Error> {
        match method {
            "values" | "values_distinct" => Ok(Value::from(self.values.clone())),
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("column has no method `{method}`"))),
        }
    }
}
