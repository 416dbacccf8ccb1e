//! dbt's Jinja context: `ref`, `source`, `config`, `var`, `env_var`, `adapter`,
//! `exceptions`, `modules` and the small helpers dbt projects call.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde_json::Value as Json;

use super::context::{self, RefCall};
use super::macros::{MacroFn, MacroIndex};
use super::relation::Relation;
use crate::dialect::Dialect;

/// Marker in error messages for "needs a live database"; see [`is_runtime_only`].
pub const RUNTIME_MARKER: &str = "needs a live database at run time";

/// True when a render error means "render this node at run time".
pub fn is_runtime_only(e: &Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains(RUNTIME_MARKER) {
            return true;
        }
        cur = err.source();
    }
    false
}

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn node() -> Result<Arc<context::NodeCtx>, Error> {
    context::current().ok_or_else(|| err("this function is only available while rendering a node"))
}

/// Called by functions that need a database: marks the node and stops rendering
/// when `execute` is true; returns `None` while parsing, as dbt does.
fn runtime_only(what: &str) -> Result<Value, Error> {
    let n = node()?;
    n.record(|r| r.runtime_only.get_or_insert_with(|| what.to_string()).clone());
    if n.execute { Err(err(format!("`{what}` {RUNTIME_MARKER}"))) } else { Ok(Value::from(())) }
}

/// `load_relation(relation)`: the relation if it exists in the live database
/// (`none` otherwise), as dbt's cache answers; offline, "render at run time".
fn load_relation_fn(what: &str, args: Rest<Value>) -> Result<Value, Error> {
    let n = node()?;
    let Some(live) = n.live.as_ref() else { return runtime_only(what) };
    let rel = args.first().cloned().unwrap_or_default();
    let part = |k: &str| rel.get_attr(k).ok().filter(|v| !v.is_none() && !v.is_undefined()).map(|v| v.to_string());
    let ident = part("identifier").ok_or_else(|| err(format!("{what}() needs a relation")))?;
    let cols = live.db.columns(&live.target, part("schema").as_deref(), &ident).map_err(|e| err(format!("{what} failed: {e}")))?;
    Ok(if cols.is_empty() { Value::from(()) } else { rel })
}

/// `run_query(sql)`: live when `dvtr` renders, otherwise "render at run time".
fn run_query_fn(args: Rest<Value>) -> Result<Value, Error> {
    match node()?.live.clone() {
        Some(live) => live.run_query(&args.first().map(|v| v.to_string()).unwrap_or_default()),
        None => runtime_only("run_query"),
    }
}

/// `{% call statement(name, fetch_result=True) %}…{% endcall %}`.
fn statement_fn(state: &mut State<'_, '_>, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let Some(live) = node()?.live.clone() else { return runtime_only("statement") };
    let name = args.first().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "main".into());
    let fetch = kwargs.get::<Option<bool>>("fetch_result")?.unwrap_or(false);
    let _ = (kwargs.get::<Option<Value>>("auto_begin")?, kwargs.get::<Option<Value>>("language")?);
    let caller: Value =
        kwargs.get::<Option<Value>>("caller")?.ok_or_else(|| err("statement() is used as `{% call statement(...) %}sql{% endcall %}`"))?;
    let sql = caller.call(state, &[])?.to_string();
    live.statement(&name, &sql, fetch)
}

/// `load_result(name)`.
fn load_result_fn(name: String) -> Result<Value, Error> {
    match node()?.live.clone() {
        Some(live) => Ok(live.load_result(&name)),
        None => runtime_only("load_result"),
    }
}

pub fn to_json(v: &Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

fn split_kwargs(args: &[Value]) -> (Vec<Value>, Option<Kwargs>) {
    match args.last().map(|a| Kwargs::try_from(a.clone())) {
        Some(Ok(kw)) => (args[..args.len() - 1].to_vec(), Some(kw)),
        _ => (args.to_vec(), None),
    }
}

fn ref_fn(args: Rest<Value>, kw: Kwargs) -> Result<Value, Error> {
    let strs: Vec<String> =
        args.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| err("ref() takes string arguments"))).collect::<Result<_, _>>()?;
    // Both spellings are read (which marks them used); none means unversioned.
    let (v, version) = (kw.get::<Option<Value>>("v")?, kw.get::<Option<Value>>("version")?);
    let version = v.or(version).filter(|x| !x.is_none() && !x.is_undefined()).map(|v| v.to_string());
    let call = match strs.as_slice() {
        [name] => RefCall { package: None, name: name.clone(), version },
        [pkg, name] => RefCall { package: Some(pkg.clone()), name: name.clone(), version },
        _ => return Err(err(format!("ref() takes 1 or 2 arguments, got {}", strs.len()))),
    };
    let n = node()?;
    n.record(|r| r.refs.push(call.clone()));
    let from = context::current_package().unwrap_or_else(|| n.package.clone());
    n.resolver.resolve_ref(&from, &call).map(Value::from_object).map_err(err)
}

fn source_fn(source: String, table: String) -> Result<Value, Error> {
    let n = node()?;
    n.record(|r| r.sources.push((source.clone(), table.clone())));
    n.resolver.resolve_source(&source, &table).map(Value::from_object).map_err(err)
}

/// `var(name, default)`: a default given as `none` counts (dbt's `var('x', none)`).
fn var_fn(state: &State<'_, '_>, name: String, default: Rest<Value>) -> Result<Value, Error> {
    let n = node()?;
    // dbt scopes vars by the node being rendered, also inside another package's macros.
    match n.vars.get(&n.package, &name) {
        // As dbt, a string var holding Jinja renders when read (`'{{ run_started_at.strftime("%Y") }}'`).
        Some(serde_json::Value::String(s)) if s.contains("{{") || s.contains("{%") => {
            state.env().render_str(s, context::current_ctx()).map(Value::from)
        }
        Some(v) => Ok(crate::jinja::to_value(v)),
        // As dbt's parser: a missing var is None while parsing (the node may turn out disabled);
        // it is an error when the node is compiled.
        None if !n.execute && default.is_empty() => Ok(Value::from(())),
        None => default.first().cloned().ok_or_else(|| {
            err(format!("required var `{name}` is not set; define it under `vars:` in the project file or pass --vars '{{{name}: ...}}'"))
        }),
    }
}

/// Prefixes of environment variables that hold secrets (DVT's and dbt's): readable only
/// where connections are configured (profiles.yml, computes.yml, buckets.yml, packages.yml).
pub const SECRET_ENV_PREFIXES: [&str; 2] = ["DVT_ENV_SECRET_", "DBT_ENV_SECRET_"];

/// `env_var` in models, macros, properties and dbt_project.yml: secrets are refused
/// (they would reach compiled SQL, the plan and logs), as dbt refuses them.
pub fn project_env_var_fn(name: String, default: Option<Value>) -> Result<Value, Error> {
    if SECRET_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(err(format!(
            "`{name}` is a secret environment variable: secrets (DVT_ENV_SECRET_*, DBT_ENV_SECRET_*) can only be used in \
             profiles.yml, computes.yml, buckets.yml and packages.yml, never in SQL or project config"
        )));
    }
    env_var_fn(name, default)
}

/// `env_var(name, default)`: the environment, or the default, or an error.
pub fn env_var_fn(name: String, default: Option<Value>) -> Result<Value, Error> {
    let overridden = context::current().and_then(|n| n.overrides.as_ref().and_then(|o| o.env_vars.get(&name).cloned()));
    if let Some(v) = overridden {
        return Ok(Value::from(v.as_str().map_or_else(|| v.to_string(), str::to_string)));
    }
    let value = std::env::var(&name);
    crate::partial::record_env(&name, value.as_deref().ok());
    match value {
        Ok(v) => Ok(Value::from(v)),
        Err(_) => default.map(|d| Value::from(d.to_string())).ok_or_else(|| {
            err(format!("environment variable `{name}` is not set and has no default; export it or write env_var('{name}', 'default')"))
        }),
    }
}

fn return_fn(v: Rest<Value>) -> Result<Value, Error> {
    // `return(none)` returns none (an `Option` argument would turn it into undefined).
    if context::set_return(v.first().cloned().unwrap_or_else(|| Value::from(()))) {
        // Unwinds the macro; the macro call turns this into its return value.
        Err(Error::new(ErrorKind::InvalidOperation, "return() outside of a macro body"))
    } else {
        Err(err("return() can only be used inside a macro"))
    }
}

fn log_fn(msg: Value, _kw: Kwargs) -> Result<String, Error> {
    if let Some(n) = context::current() {
        n.record(|r| r.logs.push(msg.to_string()));
    }
    Ok(String::new())
}

fn doc_fn(args: Rest<String>) -> Result<Value, Error> {
    let n = node()?;
    let (pkg, name) = match args.as_slice() {
        [name] => (None, name.as_str()),
        [pkg, name] => (Some(pkg.as_str()), name.as_str()),
        _ => return Err(err("doc() takes 1 or 2 arguments")),
    };
    n.resolver
        .doc(pkg, name, &n.package)
        .map(|(_, text)| Value::from(text))
        .ok_or_else(|| err(format!("docs block `{name}` is not defined; add `{{% docs {name} %}}...{{% enddocs %}}` to a .md file")))
}

fn tojson_fn(v: Value, kw: Kwargs) -> Result<String, Error> {
    let sort: Option<bool> = kw.get("sort_keys").ok().flatten();
    let _ = sort;
    serde_json::to_string(&to_json(&v)).map_err(|e| err(e.to_string()))
}

fn fromjson_fn(s: String, default: Option<Value>) -> Result<Value, Error> {
    match serde_json::from_str::<Json>(&s) {
        Ok(v) => Ok(crate::jinja::to_value(&v)),
        Err(e) => default.ok_or_else(|| err(format!("fromjson: {e}"))),
    }
}

fn fromyaml_fn(s: String, default: Option<Value>) -> Result<Value, Error> {
    match serde_saphyr::from_str::<Json>(&s) {
        Ok(v) => Ok(crate::jinja::to_value(&v)),
        Err(e) => default.ok_or_else(|| err(format!("fromyaml: {}", e.without_snippet()))),
    }
}

fn zip_fn(args: Rest<Value>) -> Result<Value, Error> {
    let lists: Vec<Vec<Value>> = args.iter().map(|a| a.try_iter().map(|i| i.collect())).collect::<Result<_, _>>()?;
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Value::from((0..n).map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>())).collect::<Vec<_>>()))
}

/// dbt's `set(value, default=None)`: the distinct items in first-seen order (a
/// deterministic stand-in for Python's set), `default` when `value` is not iterable.
fn set_fn(v: Option<Value>, default: Option<Value>) -> Result<Value, Error> {
    set_strict_fn(v).or_else(|e| if e.kind() == ErrorKind::InvalidOperation { Ok(default.unwrap_or_default()) } else { Err(e) })
}

/// dbt's `set_strict(value)`: as `set`, raising when `value` is not iterable.
fn set_strict_fn(v: Option<Value>) -> Result<Value, Error> {
    let mut out: Vec<Value> = Vec::new();
    if let Some(v) = v {
        for item in v.try_iter()? {
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    Ok(Value::from(out))
}

fn local_md5(s: String) -> String {
    use md5::{Digest, Md5};
    let d = Md5::digest(s.as_bytes());
    crate::hex::encode(&d)
}

fn is_incremental_fn() -> Result<bool, Error> {
    Ok(context::current().is_some_and(|n| n.incremental))
}

/// `config` — callable (`config(materialized='table')`) with `get`/`require`.
#[derive(Debug)]
struct ConfigObj;

impl fmt::Display for ConfigObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("")
    }
}

impl Object for ConfigObj {
    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let n = node()?;
        let (pos, kw) = split_kwargs(args);
        let mut pairs: Vec<(String, Json)> = Vec::new();
        for p in pos {
            match to_json(&p) {
                Json::Object(m) => pairs.extend(m),
                Json::Null => {}
                other => return Err(err(format!("config() takes keyword arguments or a dict, got {other}"))),
            }
        }
        if let Some(kw) = kw {
            for k in kw.args() {
                let v: Value = kw.peek(k)?;
                pairs.push((k.to_string(), to_json(&v)));
            }
        }
        n.record(|r| r.configs.extend(pairs));
        Ok(Value::from(""))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let n = node()?;
        let (pos, kw) = split_kwargs(args);
        let key = pos
            .first()
            .and_then(|k| k.as_str())
            .map(crate::config::normalize_key)
            .ok_or_else(|| err(format!("config.{method}() needs a key")))?;
        let default = pos.get(1).cloned().or_else(|| kw.as_ref().and_then(|k| k.get::<Option<Value>>("default").ok().flatten()));
        // Values set by config() earlier in this render win over the known config.
        let recorded = n.record(|r| r.configs.iter().rev().find(|(k, _)| crate::config::normalize_key(k) == key).map(|(_, v)| v.clone()));
        let found = recorded.or_else(|| n.config.get(&key).cloned());
        match method {
            "get" => Ok(found.map(|v| crate::jinja::to_value(&v)).or(default).unwrap_or_default()),
            "require" => found.map(|v| crate::jinja::to_value(&v)).ok_or_else(|| err(format!("config `{key}` is required but not set"))),
            "set" => Ok(Value::from("")),
            "meta_get" => {
                let meta = n.config.get("meta").and_then(|m| m.get(&key)).cloned();
                Ok(meta.map(|v| crate::jinja::to_value(&v)).or(default).unwrap_or_default())
            }
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("config has no method `{method}`"))),
        }
    }
}

/// `adapter` — dispatch, quoting and (at run time) catalog queries.
#[derive(Debug)]
struct AdapterObj {
    index: Arc<MacroIndex>,
}

impl Object for AdapterObj {
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let n = node()?;
        let (pos, kw) = split_kwargs(args);
        let arg_str = |i: usize, name: &str| -> Option<String> {
            pos.get(i)
                .and_then(|v| v.as_str().map(str::to_string))
                .or_else(|| kw.as_ref().and_then(|k| k.get::<Option<String>>(name).ok().flatten()))
        };
        // The relation argument (first, or `relation=`) and one of its parts, for the methods that take one.
        let rel = || {
            pos.first().cloned().or_else(|| kw.as_ref().and_then(|k| k.get::<Option<Value>>("relation").ok().flatten())).unwrap_or_default()
        };
        let part = |rel: &Value, k: &str| rel.get_attr(k).ok().filter(|v| !v.is_none() && !v.is_undefined()).map(|v| v.to_string());
        match method {
            "dispatch" => {
                let name = arg_str(0, "macro_name").ok_or_else(|| err("adapter.dispatch() needs a macro name"))?;
                let ns = arg_str(1, "macro_namespace");
                let from = context::current_package().unwrap_or_else(|| n.package.clone());
                let def = self.index.dispatch(&name, ns.as_deref(), n.dialect, &from).ok_or_else(|| {
                    Error::new(
                        ErrorKind::UnknownFunction,
                        format!("no implementation of `{name}` for {} (looked for {}__{name} and default__{name})", n.dialect, n.dialect),
                    )
                })?;
                Ok(Value::from_object(MacroFn { index: self.index.clone(), package: Some(def.package.clone()), name: def.name.clone() }))
            }
            "quote" => Ok(Value::from(n.dialect.quote(&arg_str(0, "identifier").unwrap_or_default()))),
            "quote_as_configured" | "quote_seed_column" => Ok(Value::from(n.dialect.quote(&arg_str(0, "identifier").unwrap_or_default()))),
            "type" => Ok(Value::from(n.dialect.name())),
            "get_columns_in_relation" if n.live.is_some() => {
                let rel = rel();
                let ident = part(&rel, "identifier").ok_or_else(|| err("get_columns_in_relation() needs a relation"))?;
                n.live.as_ref().expect("checked").columns_of(part(&rel, "schema").as_deref(), &ident)
            }
            // Each `run_query` commits on its own: there is nothing open to commit.
            "commit" => Ok(Value::from(())),
            "create_schema" if n.live.is_some() => {
                let rel = rel();
                let schema = part(&rel, "schema").ok_or_else(|| err("create_schema() needs a relation with a schema"))?;
                // SQLite has no schemas to create (they are attached files).
                if let Some(sql) = n.dialect.sql().create_schema(part(&rel, "database").as_deref(), &schema) {
                    n.live.as_ref().expect("checked").run_query(&sql)?;
                }
                Ok(Value::from(()))
            }
            "get_relation" if n.live.is_some() => {
                let (db, schema, ident) = (arg_str(0, "database"), arg_str(1, "schema"), arg_str(2, "identifier"));
                let ident = ident.ok_or_else(|| err("get_relation() needs an identifier"))?;
                let live = n.live.as_ref().expect("checked");
                let cols =
                    live.db.columns(&live.target, schema.as_deref(), &ident).map_err(|e| err(format!("get_relation failed: {e}")))?;
                Ok(if cols.is_empty() { Value::from(()) } else { Value::from_object(Relation::new(db, schema, ident, n.dialect)) })
            }
            "get_relation"
            | "get_columns_in_relation"
            | "get_missing_columns"
            | "list_relations_without_caching"
            | "get_relations_by_pattern"
            | "check_schema_exists"
            | "list_schemas"
            | "drop_relation"
            | "truncate_relation"
            | "rename_relation"
            | "execute"
            | "create_schema"
            | "drop_schema"
            | "expand_target_column_types"
            | "already_exists"
            | "cache_added" => runtime_only(&format!("adapter.{method}")),
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("adapter has no method `{method}`"))),
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let n = context::current()?;
        match key.as_str()? {
            "type" => Some(Value::from(n.dialect.name())),
            _ => None,
        }
    }
}

/// `exceptions` — raising errors from Jinja.
#[derive(Debug)]
struct ExceptionsObj;

impl Object for ExceptionsObj {
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let msg = args.first().map(|m| m.to_string()).unwrap_or_default();
        match method {
            "raise_compiler_error" | "raise_not_implemented" | "raise_database_error" | "raise_fail_fast_error" => {
                if let Some(n) = context::current() {
                    n.record(|r| r.compiler_error = Some(msg.clone()));
                }
                Err(err(format!("compilation error: {msg}")))
            }
            "warn" | "warn_deprecated" => {
                if let Some(n) = context::current() {
                    n.record(|r| r.logs.push(format!("warning: {msg}")));
                }
                Ok(Value::from(""))
            }
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("exceptions has no method `{method}`"))),
        }
    }
}

/// `api.Relation.create(...)`.
#[derive(Debug)]
struct RelationFactory;

impl Object for RelationFactory {
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        if method != "create" {
            return Err(Error::new(ErrorKind::UnknownMethod, format!("api.Relation has no method `{method}`")));
        }
        let dialect = context::current().map_or(Dialect::Postgres, |n| n.dialect);
        let (_, kw) = split_kwargs(args);
        let get = |k: &str| kw.as_ref().and_then(|kw| kw.get::<Option<String>>(k).ok().flatten());
        let mut r = Relation::new(get("database"), get("schema"), get("identifier").unwrap_or_default(), dialect);
        r.kind = get("type");
        Ok(Value::from_object(r))
    }
}

/// `api.Column`: the adapter's column class methods that macros call to name types.
#[derive(Debug)]
struct ColumnClass;

impl Object for ColumnClass {
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        match method {
            // dbt's base Column.TYPE_LABELS, which the PostgreSQL and DuckDB adapters keep.
            "translate_type" => {
                let t = arg(0).to_string();
                Ok(Value::from(if t.eq_ignore_ascii_case("string") { "TEXT".to_string() } else { t }))
            }
            "numeric_type" => {
                let (t, p, s) = (arg(0), arg(1), arg(2));
                if p.is_none() || p.is_undefined() || s.is_none() || s.is_undefined() {
                    Ok(t)
                } else {
                    Ok(Value::from(format!("{t}({p},{s})")))
                }
            }
            "string_type" => Ok(Value::from(format!("character varying({})", arg(0)))),
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("api.Column has no method `{method}`"))),
        }
    }
}

/// `modules.re`: `search`, `match`, `fullmatch`, `sub`, `findall`, `split` and the
/// flag constants, on the regex crate with Python's syntax translated
/// ([`python_regex`]); `\\g<1>`/`\\1` in replacements; `findall` returns groups
/// as Python's does.
#[derive(Debug)]
struct ReModule;

/// Python `re` pattern syntax → the regex crate's: a `{` that does not open a
/// `{m}`/`{m,}`/`{m,n}` quantifier is literal, `\'` and `\"` are plain quotes.
fn python_regex(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let b: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        let c = b[i];
        match c {
            '\\' if i + 1 < b.len() => {
                let n = b[i + 1];
                if n == '\'' || n == '"' {
                    out.push(n);
                } else {
                    out.push(c);
                    out.push(n);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => {
                let rest: String = b[i + 1..].iter().take_while(|x| **x != '}').collect();
                let quantifier = i + 1 + rest.len() < b.len()
                    && !rest.is_empty()
                    && rest.split(',').count() <= 2
                    && rest
                        .split(',')
                        .enumerate()
                        .all(|(k, part)| part.chars().all(|d| d.is_ascii_digit()) && (k == 1 || !part.is_empty()));
                if !quantifier {
                    out.push_str("\\{");
                    i += 1;
                    continue;
                }
            }
            '}' if !in_class && !out.ends_with(|x: char| x.is_ascii_digit() || x == ',') => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Python's `\\g<name>` / `\\1` replacement references → `${name}`.
fn python_replacement(r: &str) -> String {
    static REF: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\\g<(\w+)>|\\(\d+)").expect("valid regex"));
    let escaped = r.replace('$', "$$");
    REF.replace_all(&escaped, |c: &regex::Captures<'_>| format!("${{{}}}", c.get(1).or(c.get(2)).map_or("", |m| m.as_str()))).into_owned()
}

impl Object for ReModule {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        // Flags as inline-group letters, combined with `|` as integers would be.
        let bit = match key.as_str()? {
            "I" | "IGNORECASE" => 1,
            "M" | "MULTILINE" => 2,
            "S" | "DOTALL" => 4,
            "X" | "VERBOSE" => 8,
            _ => return None,
        };
        Some(Value::from(bit))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let (pos, kw) = split_kwargs(args);
        let s = |i: usize| pos.get(i).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let flag_arg = |i: usize, name: &str| {
            pos.get(i)
                .cloned()
                .or_else(|| kw.as_ref().and_then(|k| k.get::<Option<Value>>(name).ok().flatten()))
                .and_then(|v| i64::try_from(v).ok())
        };
        let flags_at = match method {
            "sub" => 4,
            "split" => 3,
            _ => 2,
        };
        let flags = flag_arg(flags_at, "flags").unwrap_or(0);
        let inline: String = [(1, 'i'), (2, 'm'), (4, 's'), (8, 'x')].iter().filter(|(b, _)| flags & b != 0).map(|(_, c)| *c).collect();
        let pattern = if inline.is_empty() { python_regex(&s(0)) } else { format!("(?{inline}){}", python_regex(&s(0))) };
        let re = fancy_regex::Regex::new(&pattern).map_err(|e| err(format!("modules.re: {e}")))?;
        let re_err = |e: fancy_regex::Error| err(format!("modules.re: {e}"));
        let text = |i: usize| s(i);
        match method {
            "search" => Ok(re.find(&text(1)).map_err(re_err)?.map_or(Value::from(()), |m| Value::from(m.as_str()))),
            "match" | "fullmatch" => {
                let t = text(1);
                Ok(re
                    .find(&t)
                    .map_err(re_err)?
                    .filter(|m| m.start() == 0 && (method == "match" || m.end() == t.len()))
                    .map_or(Value::from(()), |m| Value::from(m.as_str())))
            }
            "sub" => {
                let count = flag_arg(3, "count").unwrap_or(0).max(0) as usize;
                let rep = python_replacement(&s(1));
                let t = text(2);
                Ok(Value::from(re.try_replacen(&t, count, rep.as_str()).map_err(re_err)?.into_owned()))
            }
            "findall" => {
                let t = text(1);
                let groups = re.captures_len() - 1;
                let mut out = Vec::new();
                for c in re.captures_iter(&t) {
                    let c = c.map_err(re_err)?;
                    let g = |i: usize| Value::from(c.get(i).map_or("", |m| m.as_str()));
                    out.push(match groups {
                        0 => g(0),
                        1 => g(1),
                        n => Value::from((1..=n).map(g).collect::<Vec<_>>()),
                    });
                }
                Ok(Value::from(out))
            }
            "split" => {
                let parts: Vec<Value> = re.split(&text(1)).map(|p| p.map(Value::from)).collect::<Result<_, _>>().map_err(re_err)?;
                Ok(Value::from(parts))
            }
            _ => Err(Error::new(ErrorKind::UnknownMethod, format!("modules.re has no function `{method}`"))),
        }
    }
}

pub(crate) fn as_bool(v: Value) -> bool {
    match v.kind() {
        ValueKind::String => matches!(v.as_str().map(str::to_ascii_lowercase).as_deref(), Some("true" | "yes" | "1")),
        _ => v.is_true(),
    }
}

pub(crate) fn as_number(v: Value) -> Result<Value, Error> {
    match v.kind() {
        ValueKind::Number => Ok(v),
        _ => {
            let s = v.to_string();
            s.trim()
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| s.trim().parse::<f64>().map(Value::from))
                .map_err(|_| err(format!("`{s}` is not a number")))
        }
    }
}

/// `__dvt_where(relation, condition)`: the relation filtered by a test's `where` config.
fn where_fn(rel: Value, condition: String) -> Result<Value, Error> {
    let base = rel.downcast_object::<Relation>().map(|r| (*r).clone()).ok_or_else(|| err("__dvt_where expects a relation"))?;
    let mut r = base.clone();
    r.cte_name = Some(format!("(select * from {} where {condition}) dbt_subquery", base.render()));
    Ok(Value::from_object(r))
}

/// `builtins.ref`: the `ref` function, with the runtime config as its `config` attribute.
#[derive(Debug)]
struct BuiltinRef {
    config: Value,
}

impl Object for BuiltinRef {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        Value::from_function(ref_fn).call(state, args)
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        (key.as_str() == Some("config")).then(|| self.config.clone())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }
}

/// dbt's `builtins` namespace: the context's own `ref`, `source` and `config`, which
/// projects reach for when they override `ref` or read the runtime config.
pub fn builtins(config: serde_json::Value) -> Value {
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("ref", Value::from_object(BuiltinRef { config: to_value(config) }));
    m.insert("source", Value::from_function(source_fn));
    m.insert("config", Value::from_object(ConfigObj));
    Value::from(m)
}

/// Registers the context on `env`. Package namespaces and macro names are
/// registered by the caller, which knows the packages.
pub fn register(env: &mut Environment<'static>, index: &Arc<MacroIndex>) {
    env.add_function("ref", ref_fn);
    env.add_function("source", source_fn);
    env.add_function("var", var_fn);
    env.add_function("env_var", project_env_var_fn);
    env.add_function("return", return_fn);
    env.add_function("log", log_fn);
    env.add_function("print", |_v: Value| String::new());
    env.add_function("doc", doc_fn);
    env.add_function("tojson", tojson_fn);
    env.add_function("fromjson", fromjson_fn);
    env.add_function("toyaml", |v: Value| serde_json::to_string(&to_json(&v)).unwrap_or_default());
    env.add_function("fromyaml", fromyaml_fn);
    env.add_function("zip", zip_fn);
    env.add_function("set", set_fn);
    env.add_function("set_strict", set_strict_fn);
    env.add_function("zip_strict", zip_fn);
    env.add_function("local_md5", local_md5);
    env.add_function("__dvt_where", where_fn);
    env.add_function("is_incremental", is_incremental_fn);
    env.add_function("run_query", run_query_fn);
    env.add_function("statement", statement_fn);
    env.add_function("load_result", load_result_fn);
    env.add_function("load_relation", |args: Rest<Value>| load_relation_fn("load_relation", args));
    env.add_function("load_cached_relation", |args: Rest<Value>| load_relation_fn("load_cached_relation", args));
    env.add_global("config", Value::from_object(ConfigObj));
    env.add_global("builtins", builtins(serde_json::json!({})));
    env.add_global("adapter", Value::from_object(AdapterObj { index: index.clone() }));
    env.add_global("exceptions", Value::from_object(ExceptionsObj));
    let mut api = BTreeMap::new();
    api.insert("Relation", Value::from_object(RelationFactory));
    api.insert("Column", Value::from_object(ColumnClass));
    env.add_global("api", Value::from(api));
    let mut modules: BTreeMap<&str, Value> = super::pydatetime::modules().into_iter().collect();
    modules.insert("re", Value::from_object(ReModule));
    env.add_global("modules", Value::from(modules));
    // While parsing, `graph` is empty but, as in dbt, a dict packages may use as a cache.
    let graph = crate::jinja::to_value(serde_json::json!({"nodes": {}, "sources": {}, "exposures": {}, "macros": {}}));
    env.add_global("graph", super::mutable::new_dict(Some(graph.clone())).unwrap_or(graph));
    env.add_global("run_started_at", super::pydatetime::run_started_at());
    env.add_global("dbt_version", Value::from(env!("CARGO_PKG_VERSION")));
    env.add_global("invocation_id", Value::from("00000000-0000-0000-0000-000000000000"));
    // Python lists are mutable: `(xs | list).pop()`.
    env.add_filter("list", |v: Value| super::mutable::new_list(Some(v)));
    env.add_filter("as_bool", as_bool);
    env.add_filter("as_number", as_number);
    env.add_filter("as_text", |v: Value| v.to_string());
    env.add_filter("as_native", |v: Value| v);
    let _ = Enumerator::Empty;
}

/// A serialisable Rust value as a Jinja value.
pub fn to_value<T: serde::Serialize>(v: T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

#[cfg(test)]
mod re_tests {
    use super::{python_regex, python_replacement};

    #[test]
    fn python_patterns_and_replacements_translate() {
        assert_eq!(python_regex(r#"({{\s*ref\s*\(\s*[\'\"]?)"#), r#"(\{\{\s*ref\s*\(\s*['"]?)"#);
        assert_eq!(python_regex(r"a{2,3}b{4}"), r"a{2,3}b{4}");
        assert!(fancy_regex::Regex::new(&python_regex(r"(\)\s*}})")).is_ok());
        assert!(fancy_regex::Regex::new(&python_regex(r"(?<!\w)from(?=\s)")).is_ok());
        assert_eq!(python_replacement(r"\g<1> source_\g<7>"), "${1} source_${7}");
    }
}
