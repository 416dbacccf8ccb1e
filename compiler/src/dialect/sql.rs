//! The statements a materialization needs, with ANSI defaults that each
//! database file overrides where its SQL differs.

/// A column type DVT infers (seeds) or maps between engines.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogicalType {
    Boolean,
    Integer,
    BigInt,
    /// Precision and scale.
    Decimal(u8, u8),
    Float,
    Date,
    Timestamp,
    /// A point in time with its zone (stored normalised to UTC where the engine has no zone type).
    TimestampTz,
    Text,
}

/// SQL generation for one database. `rel` arguments are rendered relation
/// names (already quoted); `ident` arguments are bare identifiers.
pub trait SqlDialect: Sync {
    /// Quotes an identifier (double quotes, doubled inside).
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    /// `CREATE SCHEMA IF NOT EXISTS`, or none where schemas are not created.
    fn create_schema(&self, database: Option<&str>, schema: &str) -> Option<String> {
        let _ = database;
        Some(format!("create schema if not exists {}", self.quote(schema)))
    }

    /// Whether DDL is transactional, so a drop+rename swap can be atomic.
    fn transactional_ddl(&self) -> bool {
        true
    }

    /// `CREATE TABLE … AS <sql>`.
    fn create_table_as(&self, rel: &str, sql: &str) -> String {
        format!("create table {rel} as (\n{sql}\n)")
    }

    /// `CREATE TABLE rel (cols…)`.
    fn create_table(&self, rel: &str, columns: &[(String, LogicalType)]) -> String {
        let cols: Vec<String> = columns.iter().map(|(n, t)| format!("{} {}", self.quote(n), self.type_name(t))).collect();
        format!("create table {rel} (\n  {}\n)", cols.join(",\n  "))
    }

    /// Statements that replace a view with `sql`.
    fn replace_view(&self, rel: &str, sql: &str) -> Vec<String> {
        vec![format!("create or replace view {rel} as (\n{sql}\n)")]
    }

    /// `DROP TABLE IF EXISTS`.
    fn drop_table(&self, rel: &str) -> String {
        format!("drop table if exists {rel}")
    }

    /// `DROP VIEW IF EXISTS`.
    fn drop_view(&self, rel: &str) -> String {
        format!("drop view if exists {rel}")
    }

    /// Renames a table within its schema (`new_ident` is bare).
    fn rename_table(&self, rel: &str, new_ident: &str) -> String {
        format!("alter table {rel} rename to {}", self.quote(new_ident))
    }

    /// Deletes every row (transactional, unlike TRUNCATE on some engines).
    fn delete_all(&self, rel: &str) -> String {
        format!("delete from {rel}")
    }

    /// Inserts all rows of `from` into `into` (same column order, checked at run time).
    fn insert_select(&self, into: &str, from: &str) -> String {
        format!("insert into {into} select * from {from}")
    }

    /// Deletes the rows of `target` whose key appears in `stage`.
    fn delete_matching(&self, target: &str, stage: &str, keys: &[String]) -> String {
        let cond: Vec<String> = keys.iter().map(|k| format!("{target}.{k} = s.{k}", k = self.quote(k))).collect();
        format!("delete from {target} where exists (select 1 from {stage} s where {})", cond.join(" and "))
    }

    /// A MERGE statement if the engine has one that needs no column list; else none
    /// (the plan then uses delete + insert in one transaction, same result for unique keys).
    fn merge(&self, target: &str, stage: &str, keys: &[String]) -> Option<String> {
        let _ = (target, stage, keys);
        None
    }

    /// `INSERT OVERWRITE`, where the engine has it.
    fn insert_overwrite(&self, target: &str, sql: &str) -> Option<String> {
        let _ = (target, sql);
        None
    }

    /// `GRANT`, or none where the engine has no grants.
    fn grant(&self, privilege: &str, rel: &str, grantee: &str) -> Option<String> {
        Some(format!("grant {privilege} on {rel} to {}", self.quote(grantee)))
    }

    /// True when `a` and `b` differ, NULLs compared as values.
    fn distinct(&self, a: &str, b: &str) -> String {
        format!("{a} is distinct from {b}")
    }

    /// The current timestamp expression.
    fn now(&self) -> &'static str {
        "current_timestamp"
    }

    /// A hash of text as text (snapshot ids).
    fn md5(&self, expr: &str) -> String {
        format!("md5({expr})")
    }

    /// Casts to text.
    fn text_cast(&self, expr: &str) -> String {
        format!("cast({expr} as {})", self.type_name(&LogicalType::Text))
    }

    /// String concatenation.
    fn concat(&self, parts: &[String]) -> String {
        parts.join(" || ")
    }

    /// `LIMIT n` clause.
    fn limit(&self, sql: &str, n: u64) -> String {
        format!("select * from (\n{sql}\n) dvt_limited limit {n}")
    }

    /// A column type in this dialect.
    fn type_name(&self, t: &LogicalType) -> String {
        match t {
            LogicalType::Boolean => "boolean".into(),
            LogicalType::Integer => "integer".into(),
            LogicalType::BigInt => "bigint".into(),
            LogicalType::Decimal(p, s) => format!("numeric({p}, {s})"),
            LogicalType::Float => "double precision".into(),
            LogicalType::Date => "date".into(),
            LogicalType::Timestamp => "timestamp".into(),
            LogicalType::TimestampTz => "timestamptz".into(),
            LogicalType::Text => "text".into(),
        }
    }

    /// How a seed is bulk-loaded (a reference for the runtime and the reader).
    fn bulk_load(&self, rel: &str) -> String {
        format!("insert into {rel} values (...) -- prepared, batched")
    }
}
