//! The relation object that `ref()`, `source()` and `this` return.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, State};

use crate::dialect::{Dialect, QuotePolicy};

/// A table or view in a database, rendered in its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub database: Option<String>,
    pub schema: Option<String>,
    pub identifier: String,
    pub dialect: Dialect,
    /// `table`, `view`, `cte` …, if known.
    pub kind: Option<String>,
    /// Set for ephemeral models: rendered as the CTE name instead.
    pub cte_name: Option<String>,
    pub quote: QuotePolicy,
}

impl Relation {
    /// A relation with all parts.
    pub fn new(database: Option<String>, schema: Option<String>, identifier: String, dialect: Dialect) -> Self {
        Relation { database, schema, identifier, dialect, kind: None, cte_name: None, quote: QuotePolicy::default() }
    }

    /// The rendered name.
    pub fn render(&self) -> String {
        if let Some(cte) = &self.cte_name {
            return cte.clone();
        }
        self.dialect.relation_with(self.database.as_deref(), self.schema.as_deref(), &self.identifier, self.quote)
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::from(()), |s| Value::from(s.as_str()))
}

/// dbt's relation class name per adapter: packages check
/// `obj.get('metadata', {}).get('type', '').endswith('Relation')`.
fn class_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "PostgresRelation",
        Dialect::Mysql => "MySQLRelation",
        Dialect::Sqlite => "SQLiteRelation",
        Dialect::Duckdb => "DuckDBRelation",
        Dialect::Snowflake => "SnowflakeRelation",
        Dialect::Databricks => "DatabricksRelation",
        Dialect::DataFusion => "BaseRelation",
    }
}

impl Object for Relation {
    /// A mapping, as dbt's relations are (`relation is mapping` holds in packages' checks).
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "database" => opt(&self.database),
            "schema" => opt(&self.schema),
            "identifier" | "name" | "table" => Value::from(self.identifier.as_str()),
            "type" => opt(&self.kind),
            "is_table" => Value::from(self.kind.as_deref() == Some("table")),
            "is_view" => Value::from(self.kind.as_deref() == Some("view")),
            "is_materialized_view" => Value::from(self.kind.as_deref() == Some("materialized_view")),
            "is_cte" => Value::from(self.cte_name.is_some()),
            "can_be_renamed" | "can_be_replaced" => Value::from(true),
            "path" => crate::jinja::to_value(serde_json::json!({
                "database": self.database, "schema": self.schema, "identifier": self.identifier,
            })),
            "metadata" => crate::jinja::to_value(serde_json::json!({ "type": class_name(self.dialect) })),
            "quote_policy" => crate::jinja::to_value(serde_json::json!({
                "database": self.quote.database, "schema": self.quote.schema, "identifier": self.quote.identifier,
            })),
            "include_policy" => crate::jinja::to_value(serde_json::json!({
                "database": self.database.is_some(), "schema": self.schema.is_some(), "identifier": true,
            })),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["path", "type", "quote_policy", "include_policy", "metadata"])
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "render" => Ok(Value::from(Relation::render(self))),
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                Ok(self.get_value(&key).or_else(|| args.get(1).cloned()).unwrap_or_default())
            }
            "quote" | "incorporate" | "include" | "replace_path" => {
                // `include(database=False)` drops parts; `incorporate(path={...}, type=...)`
                // and `replace_path(identifier=...)` change them; `quote()` keeps the relation.
                let mut r = (**self).clone();
                let Some(kw) = args.last().and_then(|a| minijinja::value::Kwargs::try_from(a.clone()).ok()) else {
                    return Ok(Value::from_object(r));
                };
                let part = |kw: &minijinja::value::Kwargs, k: &str| kw.get::<Option<Value>>(k).ok().flatten();
                match method {
                    "include" => {
                        if part(&kw, "database").is_some_and(|v| !v.is_true()) {
                            r.database = None;
                        }
                        if part(&kw, "schema").is_some_and(|v| !v.is_true()) {
                            r.schema = None;
                        }
                    }
                    "incorporate" | "replace_path" => {
                        let path = if method == "incorporate" { part(&kw, "path") } else { Some(Value::from(kw.clone())) };
                        if let Some(path) = path {
                            let field = |k: &str| path.get_attr(k).ok().filter(|v| !v.is_undefined());
                            if let Some(v) = field("database") {
                                r.database = v.as_str().map(str::to_string);
                            }
                            if let Some(v) = field("schema") {
                                r.schema = v.as_str().map(str::to_string);
                            }
                            if let Some(v) = field("identifier").and_then(|v| v.as_str().map(str::to_string)) {
                                r.identifier = v;
                            }
                        }
                        if let Some(t) = part(&kw, "type").and_then(|v| v.as_str().map(str::to_string)) {
                            r.kind = Some(t);
                        }
                    }
                    _ => {}
                }
                // Every keyword was looked at; unused ones (quote policies) are fine.
                let _ = kw.assert_all_used();
                Ok(Value::from_object(r))
            }
            _ => Err(Error::new(minijinja::ErrorKind::UnknownMethod, format!("relation has no method `{method}`"))),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Relation::render(self))
    }
}
