//! The relation object that `ref()`, `source()` and `this` return.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Value};
use minijinja::{Error, State};

use crate::dialect::Dialect;

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
}

impl Relation {
    /// A relation with all parts.
    pub fn new(database: Option<String>, schema: Option<String>, identifier: String, dialect: Dialect) -> Self {
        Relation { database, schema, identifier, dialect, kind: None, cte_name: None }
    }

    /// The rendered name.
    pub fn render(&self) -> String {
        if let Some(cte) = &self.cte_name {
            return cte.clone();
        }
        self.dialect.relation(self.database.as_deref(), self.schema.as_deref(), &self.identifier)
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

impl Object for Relation {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "database" => opt(&self.database),
            "schema" => opt(&self.schema),
            "identifier" | "name" | "table" => Value::from(self.identifier.as_str()),
            "type" => opt(&self.kind),
            "is_table" => Value::from(self.kind.as_deref() == Some("table")),
            "is_view" => Value::from(self.kind.as_deref() == Some("view")),
            "is_cte" => Value::from(self.cte_name.is_some()),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["database", "schema", "identifier", "name", "type"])
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "render" => Ok(Value::from(Relation::render(self))),
            "quote" | "incorporate" | "include" => {
                // `include(database=False)` drops parts; other options keep the relation.
                let mut r = (**self).clone();
                if method == "include"
                    && let Some(kw) = args.last().and_then(|a| minijinja::value::Kwargs::try_from(a.clone()).ok())
                {
                    if kw.get::<Option<bool>>("database").ok().flatten() == Some(false) {
                        r.database = None;
                    }
                    if kw.get::<Option<bool>>("schema").ok().flatten() == Some(false) {
                        r.schema = None;
                    }
                }
                Ok(Value::from_object(r))
            }
            _ => Err(Error::new(minijinja::ErrorKind::UnknownMethod, format!("relation has no method `{method}`"))),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Relation::render(self))
    }
}
