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
        let r = self.db.query(&self.target, sql).map_err(|e| {
            Error::new(ErrorKind::InvalidOperation, format!("run_query failed: {e}\nquery: {}", crate::jinja::live::excerpt(sql)))
        })?;
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

    /// `adapter.get_columns_in_relation(relation)`: dbt's `Column` objects.
    pub fn columns_of(&self, schema: Option<&str>, identifier: &str) -> Result<Value, Error> {
        let cols = self
            .db
            .columns(&self.target, schema, identifier)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("get_columns_in_relation failed: {e}")))?;
        Ok(Value::from(cols.into_iter().map(|(column, dtype)| Value::from_object(AdapterColumn { column, dtype })).collect::<Vec<_>>()))
    }
}

/// dbt's agate table as far as macros use it: iterate rows, index rows,
/// `rows`, `columns[i].values()`, `column_names`, `|length`.
#[derive(Debug)]
struct Table {
    /// The result as read (for `rename`).
    result: QueryResult,
    names: Arc<Vec<String>>,
    rows: Vec<Value>,
    columns: Vec<Value>,
}

impl Table {
    fn new(r: QueryResult) -> Self {
        let result = r.clone();
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
            .map(|row| Value::from_object(Mapped { names: names.clone(), values: row.into_iter().map(crate::jinja::to_value).collect() }))
            .collect();
        Table { result, names, rows, columns }
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
            "columns" => Value::from_object(Mapped { names: self.names.clone(), values: self.columns.clone() }),
            "column_names" => Value::from(self.names.iter().map(|n| Value::from(n.as_str())).collect::<Vec<_>>()),
            _ => return None,
        })
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.rows.len())
    }
    /// agate's `rename(column_names)`: a dict of old -> new names, or the new names in order.
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        if method != "rename" {
            return Err(Error::new(ErrorKind::UnknownMethod, format!("table has no method `{method}`")));
        }
        let spec = args.first().cloned().unwrap_or_default();
        let mut r = self.result.clone();
        if spec.kind() == minijinja::value::ValueKind::Map {
            for name in r.columns.iter_mut() {
                if let Ok(new) = spec.get_item(&Value::from(name.as_str()))
                    && !new.is_undefined()
                    && !new.is_none()
                {
                    *name = new.to_string();
                }
            }
        } else if let Ok(iter) = spec.try_iter() {
            for (name, new) in r.columns.iter_mut().zip(iter) {
                *name = new.to_string();
            }
        }
        Ok(Value::from_object(Table::new(r)))
    }
}

/// agate's `MappedSequence` (a table's rows, and its `columns`): indexed by
/// position or name, iterated as values, with `keys()`, `values()`, `items()` and `get()`.
#[derive(Debug)]
struct Mapped {
    names: Arc<Vec<String>>,
    values: Vec<Value>,
}

impl Object for Mapped {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        mapped_get(&self.names, &self.values, key)
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.values.len())
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        mapped_method(&self.names, &self.values, method, args)
    }
}

fn mapped_get(names: &[String], values: &[Value], key: &Value) -> Option<Value> {
    if let Some(i) = key.as_usize() {
        return values.get(i).cloned();
    }
    let name = key.as_str()?;
    names.iter().position(|n| n == name).and_then(|i| values.get(i).cloned())
}

fn mapped_method(names: &[String], values: &[Value], method: &str, args: &[Value]) -> Result<Value, Error> {
    let name = |n: &String| Value::from(n.as_str());
    Ok(match method {
        "keys" => Value::from(names.iter().map(name).collect::<Vec<_>>()),
        "values" => Value::from(values.to_vec()),
        "items" => Value::from(names.iter().zip(values).map(|(n, v)| Value::from(vec![name(n), v.clone()])).collect::<Vec<_>>()),
        "get" => {
            let key = args.first().ok_or_else(|| Error::new(ErrorKind::MissingArgument, "get() needs a key"))?;
            mapped_get(names, values, key).unwrap_or_else(|| args.get(1).cloned().unwrap_or_default())
        }
        "dict" => Value::from_iter(names.iter().zip(values).map(|(n, v)| (n.clone(), v.clone()))),
        _ => return Err(Error::new(ErrorKind::UnknownMethod, format!("row or column set has no method `{method}`"))),
    })
}

/// dbt's adapter `Column` (dbt-adapters' base class, with DuckDB's extra integer
/// and float names): what `adapter.get_columns_in_relation` returns.
#[derive(Debug)]
struct AdapterColumn {
    column: String,
    dtype: String,
}

impl AdapterColumn {
    fn is(&self, names: &[&str]) -> bool {
        let t = self.dtype.to_lowercase();
        names.contains(&t.as_str())
    }
    fn is_string(&self) -> bool {
        self.is(&["text", "character varying", "character", "varchar"])
    }
    fn is_float(&self) -> bool {
        self.is(&["real", "float4", "float", "double precision", "float8", "double"])
    }
    fn is_integer(&self) -> bool {
        self.is(&[
            "smallint",
            "integer",
            "bigint",
            "smallserial",
            "serial",
            "bigserial",
            "int2",
            "int4",
            "int8",
            "serial2",
            "serial4",
            "serial8",
            "tinyint",
            "hugeint",
            "utinyint",
            "usmallint",
            "uinteger",
            "ubigint",
            "int1",
            "short",
            "int",
            "signed",
            "long",
        ])
    }
    fn is_numeric(&self) -> bool {
        self.is(&["numeric", "decimal"])
    }
    /// `char_size` is not read: dbt's default for an unknown size.
    const STRING_SIZE: i64 = 256;
    fn data_type(&self) -> String {
        if self.is_string() { format!("character varying({})", Self::STRING_SIZE) } else { self.dtype.clone() }
    }
}

impl Object for AdapterColumn {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "name" | "column" => Value::from(self.column.as_str()),
            "dtype" => Value::from(self.dtype.as_str()),
            "data_type" | "expanded_data_type" => Value::from(self.data_type()),
            "quoted" => Value::from(format!("\"{}\"", self.column)),
            "char_size" | "numeric_precision" | "numeric_scale" => Value::from(()),
            _ => return None,
        })
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        Ok(match method {
            "is_string" => Value::from(self.is_string()),
            "is_float" => Value::from(self.is_float()),
            "is_integer" => Value::from(self.is_integer()),
            "is_numeric" => Value::from(self.is_numeric()),
            "is_number" => Value::from(self.is_integer() || self.is_numeric() || self.is_float()),
            "is_struct" => Value::from(self.dtype.to_lowercase().starts_with("struct")),
            "string_size" if self.is_string() => Value::from(Self::STRING_SIZE),
            "string_size" => return Err(Error::new(ErrorKind::InvalidOperation, "Called string_size() on non-string field!")),
            "can_expand_to" => Value::from(false),
            "literal" => Value::from(format!("{}::{}", args.first().cloned().unwrap_or_default(), self.data_type())),
            _ => return Err(Error::new(ErrorKind::UnknownMethod, format!("Column has no method `{method}`"))),
        })
    }
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<Column {} ({})>", self.column, self.data_type())
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

/// The start of a query, for error messages.
pub(crate) fn excerpt(sql: &str) -> String {
    let sql = sql.trim();
    match sql.char_indices().nth(600) {
        Some((i, _)) => format!("{} …", &sql[..i]),
        None => sql.to_string(),
    }
}
