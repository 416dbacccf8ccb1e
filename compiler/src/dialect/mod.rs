//! SQL dialects of the databases DVT targets: identifier quoting, naming and
//! the DDL/DML each materialization needs. One file per database; the
//! [`Dialect`] enum is the single source of truth every SQL emitter asks.

mod databricks;
mod datafusion;
mod duckdb;
mod mysql;
mod postgres;
mod snowflake;
mod sql;
mod sqlite;

use std::fmt;

pub use sql::{LogicalType, SqlDialect};

/// A target database's SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
    Duckdb,
    Snowflake,
    Databricks,
    /// The embedded federation engine's SQL (DataFusion).
    DataFusion,
}

impl Dialect {
    /// The dialect of an adapter type from `profiles.yml`.
    pub fn from_adapter(kind: &str) -> Option<Dialect> {
        Some(match kind {
            "postgres" | "postgresql" | "redshift" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::Mysql,
            "sqlite" => Dialect::Sqlite,
            "duckdb" => Dialect::Duckdb,
            "snowflake" => Dialect::Snowflake,
            "databricks" | "spark" => Dialect::Databricks,
            // Files in a bucket are read by the compute.
            "datafusion" | "ballista" | "bucket" => Dialect::DataFusion,
            _ => return None,
        })
    }

    /// Adapter type name.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
            Dialect::Duckdb => "duckdb",
            Dialect::Snowflake => "snowflake",
            Dialect::Databricks => "databricks",
            Dialect::DataFusion => "datafusion",
        }
    }

    /// Adapter types whose `<type>__` macros dispatch falls back to, most specific first.
    pub fn dispatch_prefixes(self) -> &'static [&'static str] {
        match self {
            Dialect::Databricks => &["databricks", "spark"],
            Dialect::Postgres => &["postgres"],
            Dialect::Mysql => &["mysql"],
            Dialect::Sqlite => &["sqlite"],
            Dialect::Duckdb => &["duckdb"],
            Dialect::Snowflake => &["snowflake"],
            Dialect::DataFusion => &["datafusion"],
        }
    }

    /// Quotes an identifier so that any name (spaces, quotes, case, unicode) survives.
    pub fn quote(self, ident: &str) -> String {
        self.sql().quote(ident)
    }

    /// The name a column gets: as written when quoted (dbt's `quote_columns`,
    /// DVT's default), else what the engine makes of it unquoted (PostgreSQL
    /// folds to lower case, Snowflake to upper). Names that are not plain
    /// identifiers keep their spelling either way.
    pub fn column_name(self, name: &str, quoted: bool) -> String {
        let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        match self {
            _ if quoted || !plain => name.to_string(),
            Dialect::Postgres | Dialect::DataFusion => name.to_ascii_lowercase(),
            Dialect::Snowflake => name.to_ascii_uppercase(),
            _ => name.to_string(),
        }
    }

    /// The DDL/DML generator of this dialect.
    pub fn sql(self) -> &'static dyn SqlDialect {
        match self {
            Dialect::Postgres => &postgres::Postgres,
            Dialect::Mysql => &mysql::Mysql,
            Dialect::Sqlite => &sqlite::Sqlite,
            Dialect::Duckdb => &duckdb::Duckdb,
            Dialect::Snowflake => &snowflake::Snowflake,
            Dialect::Databricks => &databricks::Databricks,
            Dialect::DataFusion => &datafusion::DataFusion,
        }
    }

    /// Whether relations are written with a database part (`db.schema.table`).
    pub fn three_part_names(self) -> bool {
        !matches!(self, Dialect::Mysql | Dialect::Sqlite | Dialect::DataFusion)
    }

    /// Renders a relation name in this dialect, every part quoted.
    pub fn relation(self, database: Option<&str>, schema: Option<&str>, identifier: &str) -> String {
        self.relation_with(database, schema, identifier, QuotePolicy::default())
    }

    /// Renders a relation name, quoting the parts `quote` says (dbt's `quoting:`).
    pub fn relation_with(self, database: Option<&str>, schema: Option<&str>, identifier: &str, quote: QuotePolicy) -> String {
        let part = |name: &str, quoted: bool| if quoted { self.quote(name) } else { name.to_string() };
        let mut parts = Vec::with_capacity(3);
        if self.three_part_names()
            && let Some(d) = database.filter(|d| !d.is_empty())
        {
            parts.push(part(d, quote.database));
        }
        if let Some(s) = schema.filter(|s| !s.is_empty()) {
            parts.push(part(s, quote.schema));
        }
        parts.push(part(identifier, quote.identifier));
        parts.join(".")
    }
}

/// Which parts of relation names are quoted: dbt's `quoting:` (project, source,
/// source table). Everything is quoted unless a project says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuotePolicy {
    pub database: bool,
    pub schema: bool,
    pub identifier: bool,
}

impl Default for QuotePolicy {
    fn default() -> Self {
        QuotePolicy { database: true, schema: true, identifier: true }
    }
}

impl QuotePolicy {
    /// This policy with the parts a `quoting:` mapping sets (`{database: false}`).
    pub fn overlay(mut self, quoting: Option<&serde_json::Value>) -> Self {
        let get = |k: &str| quoting.and_then(|q| q.get(k)).and_then(serde_json::Value::as_bool);
        if let Some(b) = get("database") {
            self.database = b;
        }
        if let Some(b) = get("schema") {
            self.schema = b;
        }
        if let Some(b) = get("identifier") {
            self.identifier = b;
        }
        self
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_nasty_names() {
        assert_eq!(Dialect::Postgres.quote("a \"b\" c"), "\"a \"\"b\"\" c\"");
        assert_eq!(Dialect::Mysql.quote("we`ird"), "`we``ird`");
        assert_eq!(Dialect::Duckdb.quote("Ünïcødé"), "\"Ünïcødé\"");
        assert_eq!(Dialect::Mysql.relation(Some("db"), Some("s"), "t"), "`s`.`t`");
        assert_eq!(Dialect::Postgres.relation(Some("db"), Some("s"), "t"), "\"db\".\"s\".\"t\"");
    }
}
