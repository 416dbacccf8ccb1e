//! Macros as callable values: package lookup, `adapter.dispatch`, `return()`
//! and `caller()`. Each macro is its own template, so a call renders it in a
//! fresh state with the active node's context (dbt macros see the caller's
//! `ref`, `this`, `config`…).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, Value};
use minijinja::{Error, ErrorKind, State};

use super::context;
use crate::dialect::Dialect;

/// The package name of DVT's built-in macros (dbt's global project).
pub const BUILTIN_PACKAGE: &str = "dbt";

/// A macro found in a project or package.
#[derive(Debug, Clone)]
pub struct MacroDef {
    pub package: String,
    /// Name as called (`test_<x>` for `{% test x %}`).
    pub name: String,
    /// Project-relative file (empty for built-ins).
    pub file: String,
    /// Line of the opening tag in `file`.
    pub line: u32,
    /// The macro's own source text (one `{% macro %}` block).
    pub source: String,
}

impl MacroDef {
    /// Template name in the environment.
    pub fn template_name(&self) -> String {
        template_name(&self.package, &self.name)
    }
    /// `macro.<package>.<name>`.
    pub fn unique_id(&self) -> String {
        ["macro.", self.package.as_str(), ".", self.name.as_str()].concat()
    }
}

/// Template name of a macro.
pub fn template_name(package: &str, name: &str) -> String {
    format!("__macro__/{package}/{name}")
}

/// Maps looked up at every macro call: foldhash, not SipHash (keys are the project's own names).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Macros by package, then name: looked up at every call without building a key.
#[derive(Debug, Default)]
pub struct Defs(FastMap<String, FastMap<String, MacroDef>>);

impl Defs {
    pub fn insert(&mut self, d: MacroDef) {
        self.0.entry(d.package.clone()).or_default().insert(d.name.clone(), d);
    }

    pub fn get(&self, package: &str, name: &str) -> Option<&MacroDef> {
        self.0.get(package)?.get(name)
    }

    pub fn values(&self) -> impl Iterator<Item = &MacroDef> {
        self.0.values().flat_map(FastMap::values)
    }
}

/// `adapter.dispatch` answers by (macro, namespace, dialect, calling package).
type DispatchKey = (String, Option<String>, Dialect, String);

/// All macros, by package, and the lookup rules between packages.
#[derive(Debug, Default)]
pub struct MacroIndex {
    pub defs: Defs,
    /// What `dispatch` found, as (package, name): every test and model asks again.
    pub(super) dispatched: std::sync::RwLock<FastMap<DispatchKey, Option<(String, String)>>>,
    pub root: String,
    /// `dispatch:` search orders by namespace.
    pub dispatch: HashMap<String, Vec<String>>,
    /// Packages that define macros (the built-ins included).
    pub packages: std::collections::BTreeSet<String>,
}

impl MacroIndex {
    /// Finds a macro by name as seen from code in `from_package`, as dbt does:
    /// that package, then the root project, then the built-ins. Other
    /// packages' macros need their namespace (`pkg.macro`).
    pub fn lookup(&self, from_package: &str, name: &str) -> Option<&MacroDef> {
        [from_package, self.root.as_str(), BUILTIN_PACKAGE].into_iter().find_map(|p| self.defs.get(p, name))
    }

    /// A macro of exactly this package.
    pub fn get(&self, package: &str, name: &str) -> Option<&MacroDef> {
        self.defs.get(package, name)
    }

    /// `adapter.dispatch(name, namespace)` for `dialect`.
    pub fn dispatch(&self, name: &str, namespace: Option<&str>, dialect: Dialect, from_package: &str) -> Option<&MacroDef> {
        let key = (name.to_string(), namespace.map(str::to_string), dialect, from_package.to_string());
        let known = self.dispatched.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let found = match known {
            Some(found) => found,
            None => {
                let found = self.find_dispatched(name, namespace, dialect, from_package).map(|d| (d.package.clone(), d.name.clone()));
                self.dispatched.write().unwrap_or_else(|p| p.into_inner()).insert(key, found.clone());
                found
            }
        };
        found.and_then(|(package, name)| self.get(&package, &name))
    }

    fn find_dispatched(&self, name: &str, namespace: Option<&str>, dialect: Dialect, from_package: &str) -> Option<&MacroDef> {
        // dbt: a namespace that has a `dispatch:` order uses it; one that is a package is searched
        // after the root project; any other name (`dispatch('x', 'macros')`) searches as no namespace.
        let mut order: Vec<String> = match namespace {
            Some(ns) if self.dispatch.contains_key(ns) => self.dispatch[ns].clone(),
            Some(ns) if self.packages.contains(ns) => vec![self.root.clone(), ns.to_string()],
            _ => vec![self.root.clone(), from_package.to_string()],
        };
        order.push(BUILTIN_PACKAGE.to_string());
        let mut prefixes: Vec<&str> = dialect.dispatch_prefixes().to_vec();
        prefixes.push("default");
        for package in &order {
            for prefix in &prefixes {
                if let Some(d) = self.get(package, &format!("{prefix}__{name}")) {
                    return Some(d);
                }
            }
            // An un-prefixed implementation counts only in the namespace itself: a root
            // project's own `test_x` must not answer a package's `dispatch('test_x', 'pkg')`.
            if namespace == Some(package.as_str())
                && let Some(d) = self.get(package, name).filter(|d| d.package != BUILTIN_PACKAGE || package == BUILTIN_PACKAGE)
                && !d.source.contains(&format!("dispatch('{name}'"))
                && !d.source.contains(&format!("dispatch(\"{name}\""))
            {
                return Some(d);
            }
        }
        None
    }
}

/// A callable macro value: bound to a package, or resolved by name at call time.
#[derive(Debug)]
pub struct MacroFn {
    pub index: Arc<MacroIndex>,
    /// `None`: resolve `name` from the calling package.
    pub package: Option<String>,
    pub name: String,
}

impl fmt::Display for MacroFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<macro {}>", self.name)
    }
}

/// `caller()` of a `{% call %}` block belongs to the caller's state, which the
/// macro's state cannot reach: render it once here and pass the text on.
fn resolve_caller(state: &mut State<'_, '_>, args: &[Value]) -> Result<Vec<Value>, Error> {
    let Some(last) = args.last() else { return Ok(Vec::new()) };
    let Ok(kwargs) = Kwargs::try_from(last.clone()) else { return Ok(args.to_vec()) };
    if !kwargs.has("caller") {
        return Ok(args.to_vec());
    }
    let mut new: Vec<(String, Value)> = Vec::new();
    for key in kwargs.args() {
        let v: Value = kwargs.peek(key)?;
        if key == "caller" {
            let body = v.call(state, &[])?;
            new.push((key.to_string(), Value::from_function(move |_: minijinja::value::Rest<Value>| Ok::<_, Error>(body.clone()))));
        } else {
            new.push((key.to_string(), v));
        }
    }
    let mut out = args[..args.len() - 1].to_vec();
    out.push(Value::from(Kwargs::from_iter(new)));
    Ok(out)
}

impl MacroFn {
    fn def(&self) -> Result<&MacroDef, Error> {
        let found = match &self.package {
            Some(p) => self.index.get(p, &self.name),
            None => {
                let from = context::current_package().unwrap_or_else(|| self.index.root.clone());
                self.index.lookup(&from, &self.name)
            }
        };
        found.ok_or_else(|| {
            Error::new(
                ErrorKind::UnknownFunction,
                match &self.package {
                    Some(p) => format!("macro `{p}.{}` is not defined", self.name),
                    None => format!("macro `{}` is not defined", self.name),
                },
            )
        })
    }

    /// Calls the macro with already-evaluated arguments.
    pub fn invoke(&self, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let def = self.def()?;
        if let Some(node) = context::current() {
            node.record(|r| r.macros.insert(def.unique_id()));
            // A unit test's `overrides: {macros: {name: value}}`.
            if let Some(o) = &node.overrides {
                let full = format!("{}.{}", def.package, def.name);
                if let Some(v) = o.macros.get(&def.name).or_else(|| o.macros.get(&full)) {
                    return Ok(super::to_value(v.clone()));
                }
            }
        }
        let args = resolve_caller(state, args)?;
        let tmpl = state.env().get_template(&def.template_name())?;
        let mut captured = tmpl.render_captured(context::current_ctx())?;
        context::enter_macro(&def.package);
        let result = captured.with_state_mut(|st| match st.lookup(&def.name) {
            Some(m) => m.call(st, &pack_extra_arguments(&m, args)?),
            None => Err(Error::new(ErrorKind::UnknownFunction, format!("macro `{}` did not define itself", def.name))),
        });
        let returned = context::leave_macro();
        match (result, returned) {
            (_, Some(v)) => Ok(v),
            (Ok(v), None) => Ok(v),
            (Err(e), None) => Err(e),
        }
    }
}

/// Jinja2 hands a macro's extra arguments to it as `varargs` (positional) and
/// `kwargs` (keyword) when its body uses them; [`super::compat`] declares those
/// two as parameters, and here the extras are packed into them.
fn pack_extra_arguments(m: &Value, mut args: Vec<Value>) -> Result<Vec<Value>, Error> {
    let Ok(names) = m.get_attr("arguments") else { return Ok(args) };
    let names: Vec<String> = names.try_iter().map(|it| it.map(|v| v.to_string()).collect()).unwrap_or_default();
    let (takes_kwargs, takes_varargs) = (names.iter().any(|n| n == "kwargs"), names.iter().any(|n| n == "varargs"));
    if !takes_kwargs && !takes_varargs {
        return Ok(args);
    }
    let mut kw: Vec<(String, Value)> = match args.last().map(|a| Kwargs::try_from(a.clone())) {
        Some(Ok(k)) => {
            args.pop();
            k.args().map(|a| Ok((a.to_string(), k.peek::<Value>(a)?))).collect::<Result<_, Error>>()?
        }
        _ => Vec::new(),
    };
    let declared = |k: &str| names.iter().any(|n| n == k) && k != "kwargs" && k != "varargs";
    if takes_kwargs {
        let extra: Vec<(Value, Value)> =
            kw.iter().filter(|(k, _)| !declared(k) && k != "caller").map(|(k, v)| (Value::from(k.as_str()), v.clone())).collect();
        kw.retain(|(k, _)| declared(k) || k == "caller");
        let dict = super::mutable::new_dict(Some(Value::from_iter(extra)))?;
        kw.push(("kwargs".into(), dict));
    }
    if takes_varargs {
        let positional = names.iter().take_while(|n| *n != "kwargs" && *n != "varargs").count();
        if args.len() > positional {
            let extra = args.split_off(positional);
            kw.push(("varargs".into(), Value::from(extra)));
        }
    }
    args.push(Value::from(Kwargs::from_iter(kw)));
    Ok(args)
}

impl Object for MacroFn {
    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        self.invoke(state, args)
    }

    // A macro is truthy, as in Jinja2 (`dbt.type_timestamp or dbt_utils.type_timestamp`).
    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<macro {}>", self.name)
    }
}

/// A package namespace (`dbt_utils.star(...)`, `dbt.type_string()`).
#[derive(Debug)]
pub struct PackageNs {
    pub index: Arc<MacroIndex>,
    pub package: String,
}

impl Object for PackageNs {
    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    /// `pkg.macro(...)`; in `dbt.` also dbt's context functions that dbt defines as macros
    /// of its global project and DVT as functions (`dbt.run_query(...)`).
    fn call_method(self: &Arc<Self>, state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        if let Some(m) = self.get_value(&Value::from(method)) {
            return m.call(state, args);
        }
        // The environment's global (not a same-named macro of the calling template).
        if self.package == BUILTIN_PACKAGE
            && let Some(f) = state.env().globals().find(|(k, _)| *k == method).map(|(_, v)| v)
        {
            return f.call(state, args);
        }
        Err(Error::new(ErrorKind::UnknownMethod, format!("package `{}` has no macro named `{method}`", self.package)))
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        self.index.get(&self.package, name)?;
        Some(Value::from_object(MacroFn { index: self.index.clone(), package: Some(self.package.clone()), name: name.to_string() }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}
