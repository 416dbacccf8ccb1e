//! dbt's Jinja on minijinja: the environment with every package's macros and
//! the dbt context, and rendering of one node with error locations that point
//! at the user's file and line.

mod blocks;
mod compat;
mod context;
mod db_reach;
mod dbt_macros;
pub(crate) mod functions;
pub mod live;
mod macros;
pub(crate) mod mutable;
mod pydatetime;
pub mod pyrepr;
mod relation;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, OnceLock};

use minijinja::{Environment, Value};

pub use blocks::{Block, BlockKind, scan};
pub use context::{Docs, NodeCtx, Recorder, RefCall, RenderOverrides, Resolver, Scope, Vars, find_doc};
pub use functions::{SECRET_ENV_PREFIXES, env_var_fn, is_runtime_only, project_env_var_fn, to_json, to_value};
pub use macros::{BUILTIN_PACKAGE, MacroDef, MacroIndex};
pub use relation::Relation;

use crate::error::{DvtError, ErrorCode, Location, Result};

/// dbt's global-project macros that projects and packages call.
const BUILTINS: &str = include_str!("builtins.sql");

/// Names of shared templates: the prefix, then the template's source.
const SHARED_PREFIX: &str = "__dvt_shared__:";

/// The outcome of rendering one template.
#[derive(Debug)]
pub enum Rendered {
    /// The SQL.
    Sql(String),
    /// Rendering needs a live database (reason).
    RuntimeOnly(String),
}

/// The Jinja environment of a project.
pub struct Jinja {
    env: Environment<'static>,
    pub index: Arc<MacroIndex>,
    /// Built on first use (only projects with templated hooks need it).
    db_reach: OnceLock<db_reach::DbReach>,
}

/// Parses the built-in macros into definitions of package `dbt`: dbt's own
/// files first, then DVT's (which add other adapters' forms).
pub fn builtin_macros() -> Vec<MacroDef> {
    let files = dbt_macros::FILES.iter().map(|(path, text)| (*path, *text)).chain([("<builtins>", BUILTINS)]);
    let mut out = Vec::new();
    for (path, text) in files {
        let blocks = scan(text, path).expect("built-in macros are well-formed");
        out.extend(blocks.iter().filter_map(|b| macro_def(text, b, BUILTIN_PACKAGE, "")));
    }
    out
}

/// Turns a `macro`/`test` block into a definition (tests become `test_<name>` macros).
pub fn macro_def(text: &str, b: &Block, package: &str, file: &str) -> Option<MacroDef> {
    let src = &text[b.start..b.end];
    let (name, source) = match b.kind {
        BlockKind::Macro => (b.name.clone(), src.to_string()),
        BlockKind::Test => {
            let name = format!("test_{}", b.name);
            let open = &text[b.start..b.open_tag_end];
            let renamed_open = open.replacen("test", "macro", 1).replacen(&b.name, &name, 1);
            let body = &text[b.body_start..b.body_end];
            // The closing tag keeps its whitespace control (`{%- endtest -%}`).
            let close = text[b.body_end..b.end].replacen("endtest", "endmacro", 1);
            (name, format!("{renamed_open}{body}{close}"))
        }
        _ => return None,
    };
    Some(MacroDef { package: package.to_string(), name, file: file.to_string(), line: b.line, source })
}

impl Jinja {
    /// Builds the environment. `packages` are all package names (root first).
    /// dbt's `builtins` (`builtins.ref(...)`, `builtins.source(...)`, `builtins.config`), with
    /// `builtins.ref.config` the runtime config packages read (`dependencies[<pkg>].version`, …).
    pub fn set_runtime_config(&mut self, config: serde_json::Value) {
        self.env.add_global("builtins", functions::builtins(config));
    }

    pub fn new(defs: Vec<MacroDef>, root: &str, packages: &[String], dispatch: HashMap<String, Vec<String>>) -> Result<Jinja> {
        Self::build(defs, root, packages, dispatch, false)
    }

    /// Like [`Jinja::new`], each macro parsed when first called: for a compile that
    /// reuses the last one, whose macros all parsed and are unchanged (`crate::partial`).
    pub fn new_lazy(defs: Vec<MacroDef>, root: &str, packages: &[String], dispatch: HashMap<String, Vec<String>>) -> Result<Jinja> {
        Self::build(defs, root, packages, dispatch, true)
    }

    fn build(defs: Vec<MacroDef>, root: &str, packages: &[String], dispatch: HashMap<String, Vec<String>>, lazy: bool) -> Result<Jinja> {
        let mut env = Environment::new();
        // dbt never escapes; minijinja would JSON-escape templates named `*.yml`.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_formatter(pyrepr::formatter);
        env.set_unknown_method_callback(|state, value, method, args| match (value.kind(), method) {
            // Python's `.copy()` gives a new object the caller mutates (`d.copy().pop("k")`).
            (minijinja::value::ValueKind::Map, "copy") if args.is_empty() => mutable::new_dict(Some(value.clone())),
            (minijinja::value::ValueKind::Seq, "copy") if args.is_empty() => mutable::new_list(Some(value.clone())),
            _ => minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args),
        });
        env.add_function("__dvt_list", mutable::new_list);
        env.add_function("__dvt_dict", mutable::new_dict);
        let mut index = MacroIndex { root: root.to_string(), dispatch, ..Default::default() };
        index.packages = packages.iter().cloned().chain([root.to_string(), BUILTIN_PACKAGE.to_string()]).collect();
        for d in defs {
            index.packages.insert(d.package.clone());
            index.defs.insert(d);
        }
        // Shared templates (see `render_shared`) carry their source in their name; the
        // environment compiles each once and keeps it. Lazy: macros load when first called;
        // so do the built-ins always (known to parse, and most go unused).
        let is_lazy = move |d: &MacroDef| lazy || d.package == BUILTIN_PACKAGE;
        let sources: HashMap<String, String> =
            index.defs.values().filter(|d| is_lazy(d)).map(|d| (d.template_name(), d.source.clone())).collect();
        env.set_loader(move |name| match name.strip_prefix(SHARED_PREFIX) {
            Some(source) => Ok(Some(compat::to_minijinja(source).into_owned())),
            None => Ok(sources.get(name).map(|s| compat::to_minijinja(&compat::declare_extra_arguments(s)).into_owned())),
        });
        for d in index.defs.values().filter(|d| !is_lazy(d)) {
            let src = compat::to_minijinja(&compat::declare_extra_arguments(&d.source)).into_owned();
            env.add_template_owned(d.template_name(), src).map_err(|e| {
                let line = e.line().map_or(d.line, |l| d.line + l as u32 - 1);
                DvtError::new(ErrorCode::JinjaSyntax, format!("macro `{}`: {}", d.name, e.detail().unwrap_or(&e.kind().to_string())))
                    .at(Location::new(if d.file.is_empty() { "<builtins>" } else { &d.file }, line, 0))
            })?;
        }
        let index = Arc::new(index);
        functions::register(&mut env, &index);
        let reserved: BTreeSet<String> = env.globals().map(|(k, _)| k.to_string()).collect();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for d in index.defs.values() {
            names.insert(&d.name);
        }
        for name in names {
            if !reserved.contains(name) {
                env.add_global(
                    name.to_string(),
                    Value::from_object(macros::MacroFn { index: index.clone(), package: None, name: name.to_string() }),
                );
            }
        }
        let mut pkgs: Vec<String> = packages.to_vec();
        pkgs.push(BUILTIN_PACKAGE.to_string());
        for p in pkgs {
            if !reserved.contains(&p) {
                env.add_global(p.clone(), Value::from_object(macros::PackageNs { index: index.clone(), package: p }));
            }
        }
        Ok(Jinja { env, index, db_reach: OnceLock::new() })
    }

    /// Whether rendering `template` may query the database (it calls, directly
    /// or through macros, `run_query`, `statement` or an introspecting `adapter`
    /// method): the first name that may.
    pub fn may_query<'a>(&self, template: &'a str) -> Option<&'a str> {
        self.db_reach.get_or_init(|| db_reach::DbReach::new(&self.index)).may_query(template)
    }

    /// Renders `source` (the content of project-relative `file`) for `node`.
    pub fn render(&self, node: Arc<NodeCtx>, ctx: Value, file: &str, source: &str) -> Result<Rendered> {
        let src = compat::to_minijinja(source);
        let _scope = Scope::enter(node.clone(), ctx.clone());
        let result = self.env.render_named_str(file, &src, ctx);
        self.rendered(result, &node, file)
    }

    /// A render's outcome: the SQL, "needs the database", or an error at the user's line.
    fn rendered(&self, result: std::result::Result<String, minijinja::Error>, node: &NodeCtx, file: &str) -> Result<Rendered> {
        match result {
            Ok(s) => {
                if let Some(reason) = node.record(|r| r.runtime_only.clone()) {
                    return Ok(Rendered::RuntimeOnly(reason));
                }
                Ok(Rendered::Sql(s))
            }
            Err(e) => {
                if is_runtime_only(&e) {
                    let reason = node.record(|r| r.runtime_only.clone()).unwrap_or_default();
                    return Ok(Rendered::RuntimeOnly(reason));
                }
                Err(self.map_error(&e, file, node.record(|r| r.compiler_error.clone())))
            }
        }
    }

    /// Renders `source` like [`Jinja::render`], compiling it only the first time:
    /// for templates many nodes share, which read what differs from `ctx`
    /// (a generic test's call with its arguments as variables).
    pub fn render_shared(&self, node: Arc<NodeCtx>, ctx: Value, file: &str, source: &str) -> Result<Rendered> {
        let _scope = Scope::enter(node.clone(), ctx.clone());
        let result = self.env.get_template(&format!("{SHARED_PREFIX}{source}")).and_then(|t| t.render(ctx));
        self.rendered(result, &node, file)
    }

    /// Calls a macro by name for `node` and returns its value (rendered output or `return()`).
    pub fn call_macro(&self, node: Arc<NodeCtx>, ctx: Value, name: &str, args: &[Value]) -> Result<Value> {
        let _scope = Scope::enter(node.clone(), ctx);
        let f = macros::MacroFn { index: self.index.clone(), package: None, name: name.to_string() };
        let tmpl = self.env.template_from_str("").map_err(|e| self.map_error(&e, "<call>", None))?;
        let mut state = tmpl.new_state();
        f.invoke(&mut state, args).map_err(|e| self.map_error(&e, "<call>", node.record(|r| r.compiler_error.clone())))
    }

    /// Maps a minijinja error to a coded error at the innermost user location.
    fn map_error(&self, e: &minijinja::Error, file: &str, raised: Option<String>) -> DvtError {
        // Find the innermost error that knows its template and line.
        let mut loc = Location::file(file);
        let mut detail = e.detail().map(str::to_string).unwrap_or_else(|| e.kind().to_string());
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(me) = err.downcast_ref::<minijinja::Error>()
                && let (Some(name), Some(line)) = (me.name(), me.line())
                && !name.starts_with(SHARED_PREFIX)
            {
                loc = self.location_of(name, line as u32);
                detail = me.detail().map(str::to_string).unwrap_or_else(|| me.kind().to_string());
            }
            cur = err.source();
        }
        if let Some(msg) = raised {
            return DvtError::new(ErrorCode::CompilerErrorRaised, msg).at(loc);
        }
        let code = match e.kind() {
            minijinja::ErrorKind::SyntaxError | minijinja::ErrorKind::BadEscape => ErrorCode::JinjaSyntax,
            minijinja::ErrorKind::UnknownFunction if detail.contains("macro") => ErrorCode::MacroNotFound,
            _ => ErrorCode::JinjaRender,
        };
        DvtError::new(code, detail).at(loc)
    }

    fn location_of(&self, template: &str, line: u32) -> Location {
        if let Some(rest) = template.strip_prefix("__macro__/")
            && let Some((pkg, name)) = rest.split_once('/')
            && let Some(d) = self.index.get(pkg, name)
        {
            let file = if d.file.is_empty() { "<builtins>".to_string() } else { d.file.clone() };
            return Location::new(file, d.line + line - 1, 0);
        }
        Location::new(template, line, 0)
    }
}

static CONFIG_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_function("env_var", env_var_fn);
    env.add_filter("as_number", |v: Value| v);
    env.add_filter("as_text", |v: Value| v.to_string());
    env.add_filter("as_bool", |v: Value| v);
    env.add_filter("as_native", |v: Value| v);
    env
});

/// Renders a string from a connection file: only `env_var()` and the `as_*`
/// filters are available, so nothing else (and no secret) is evaluated.
pub fn render_config_string(s: &str) -> std::result::Result<String, String> {
    CONFIG_ENV.render_str(s, ()).map_err(|e| e.detail().map(str::to_string).unwrap_or_else(|| e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_strings_render_env_var_defaults_raw() {
        assert_eq!(super::render_config_string("{{ env_var('DVT_SURELY_UNSET_VAR', 'dev_schema') }}").unwrap(), "dev_schema");
    }

    #[test]
    fn every_built_in_macro_compiles() {
        // Built-ins compile when first called: each must parse, as a project's macros are checked at load.
        let defs = super::builtin_macros();
        let jinja = super::Jinja::new(defs.clone(), "p", &["p".to_string()], Default::default()).unwrap();
        for d in &defs {
            if let Err(e) = jinja.env.get_template(&d.template_name()) {
                panic!("built-in macro `{}` does not compile: {e}", d.name);
            }
        }
        assert!(defs.len() > 100, "{} built-in macros", defs.len());
    }

    #[test]
    fn json_values_convert_to_plain_jinja_values() {
        let v = super::to_value(serde_json::json!({"schema": "s", "n": 1}));
        let env = minijinja::Environment::new();
        assert_eq!(env.render_str("{{ t.schema }}-{{ t.n }}", minijinja::context! { t => v }).unwrap(), "s-1");
    }
}

#[cfg(test)]
mod test_block_tests {
    #[test]
    fn test_blocks_become_macros_keeping_whitespace_control() {
        let text = "{% test t(model) -%}\n  select 1\n{%- endtest -%}\n";
        let blocks = super::scan(text, "t.sql").unwrap();
        let def = super::macro_def(text, &blocks[0], "p", "t.sql").unwrap();
        assert_eq!(def.name, "test_t");
        assert_eq!(def.source, "{% macro test_t(model) -%}\n  select 1\n{%- endmacro -%}");
    }
}
