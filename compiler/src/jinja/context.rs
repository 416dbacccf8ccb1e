//! Per-render state: what a node's Jinja called (refs, sources, config, macros)
//! and how it resolves names. Rendering is single-threaded per node, so the
//! active node lives in a thread-local frame stack that the global functions read.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use minijinja::Value;
use serde_json::Value as Json;

use super::relation::Relation;
use crate::config::Config;
use crate::dialect::Dialect;

/// A `ref()` call as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct RefCall {
    pub package: Option<String>,
    pub name: String,
    pub version: Option<String>,
}

/// What rendering a node observed.
#[derive(Debug, Default)]
pub struct Recorder {
    pub refs: Vec<RefCall>,
    pub sources: Vec<(String, String)>,
    /// `config(...)` calls, in order.
    pub configs: Vec<(String, Json)>,
    /// Macro unique ids called.
    pub macros: BTreeSet<String>,
    /// Set when the node needs a live database to render, with the reason.
    pub runtime_only: Option<String>,
    /// Message of `exceptions.raise_compiler_error`.
    pub compiler_error: Option<String>,
    /// `log()` messages.
    pub logs: Vec<String>,
}

/// Name resolution for `ref`, `source`, `doc` while rendering.
pub trait Resolver: Send + Sync {
    /// The relation a `ref()` renders to, or an error message.
    fn resolve_ref(&self, from_package: &str, call: &RefCall) -> Result<Relation, String>;
    /// The relation a `source()` renders to, or an error message.
    fn resolve_source(&self, source: &str, table: &str) -> Result<Relation, String>;
    /// The docs block `doc(package, name)` names from a node of `node_package`:
    /// its package and text (see [`find_doc`]).
    fn doc(&self, package: Option<&str>, name: &str, node_package: &str) -> Option<(String, String)>;
}

/// Docs blocks by (package, name).
pub type Docs = std::collections::BTreeMap<(String, String), String>;

/// The docs block `doc(package, name)` names from a node of `node_package`, in
/// dbt's search order (`_packages_to_search`): the given package only; else the
/// root project, the node's package, then any package.
pub fn find_doc<'d>(docs: &'d Docs, package: Option<&str>, name: &str, root: &str, node_package: &str) -> Option<(&'d str, &'d str)> {
    let in_package = |p: &str| docs.get_key_value(&(p.to_string(), name.to_string())).map(|((p, _), text)| (p.as_str(), text.as_str()));
    match package {
        Some(p) => in_package(p),
        None => in_package(root)
            .or_else(|| in_package(node_package))
            .or_else(|| docs.iter().find(|((_, n), _)| n == name).map(|((p, _), text)| (p.as_str(), text.as_str()))),
    }
}

/// Variables visible to `var()`.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    /// `--vars` on the command line (highest precedence).
    pub cli: serde_json::Map<String, Json>,
    /// Project-wide vars of the root project.
    pub global: serde_json::Map<String, Json>,
    /// Vars the root project scopes to a package (`vars: {pkg: {...}}`).
    pub by_package: HashMap<String, serde_json::Map<String, Json>>,
    /// Vars a package declares in its own project file.
    pub own: HashMap<String, serde_json::Map<String, Json>>,
}

impl Vars {
    /// Looks a var up for a node of `package`, in dbt's precedence: `--vars`, the root
    /// project's scope for the package, the root project's global vars, the package's own.
    pub fn get(&self, package: &str, name: &str) -> Option<&Json> {
        self.cli
            .get(name)
            .or_else(|| self.by_package.get(package).and_then(|m| m.get(name)))
            .or_else(|| self.global.get(name))
            .or_else(|| self.own.get(package).and_then(|m| m.get(name)))
    }
}

/// Everything the Jinja functions need to know about the node being rendered.
pub struct NodeCtx {
    pub package: String,
    pub name: String,
    pub unique_id: String,
    pub resource_type: String,
    /// dbt's `execute`: false while parsing.
    pub execute: bool,
    /// What `is_incremental()` returns.
    pub incremental: bool,
    pub dialect: Dialect,
    pub this: Option<Relation>,
    pub resolver: Arc<dyn Resolver>,
    pub vars: Arc<Vars>,
    /// Config known before rendering (for `config.get`).
    pub config: Config,
    /// The `target` variable.
    pub target: Value,
    pub recorder: Mutex<Recorder>,
    /// A live database when `dvtr` renders the node at run time.
    pub live: Option<Arc<super::live::LiveSession>>,
    /// A unit test's `overrides:` of macros (`{name: value}`) and env vars.
    pub overrides: Option<Arc<RenderOverrides>>,
}

/// What a unit test replaces while its model renders.
#[derive(Debug, Default)]
pub struct RenderOverrides {
    /// Macro name (or `package.name`) → the value the call returns.
    pub macros: serde_json::Map<String, Json>,
    /// `env_var()` name → value.
    pub env_vars: serde_json::Map<String, Json>,
}

impl NodeCtx {
    /// Runs `f` on the recorder.
    pub fn record<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        f(&mut self.recorder.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

struct Frame {
    node: Arc<NodeCtx>,
    ctx: Value,
    packages: Vec<String>,
    returns: Vec<Option<Value>>,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// Makes `node` the active node until the guard drops.
pub struct Scope(());

impl Scope {
    pub fn enter(node: Arc<NodeCtx>, ctx: Value) -> Scope {
        let package = node.package.clone();
        FRAMES.with(|f| f.borrow_mut().push(Frame { node, ctx, packages: vec![package], returns: Vec::new() }));
        Scope(())
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        FRAMES.with(|f| {
            f.borrow_mut().pop();
        });
    }
}

/// The active node, if any.
pub fn current() -> Option<Arc<NodeCtx>> {
    FRAMES.with(|f| f.borrow().last().map(|fr| fr.node.clone()))
}

/// The template context of the active node.
pub fn current_ctx() -> Value {
    FRAMES.with(|f| f.borrow().last().map(|fr| fr.ctx.clone())).unwrap_or_default()
}

/// The package whose code is running (the macro's package inside a macro).
pub fn current_package() -> Option<String> {
    FRAMES.with(|f| f.borrow().last().and_then(|fr| fr.packages.last().cloned()))
}

/// Enters a macro of `package`: pushes its package and a return slot.
pub fn enter_macro(package: &str) {
    FRAMES.with(|f| {
        if let Some(fr) = f.borrow_mut().last_mut() {
            fr.packages.push(package.to_string());
            fr.returns.push(None);
        }
    });
}

/// Leaves a macro; gives back the value passed to `return()`, if any.
pub fn leave_macro() -> Option<Value> {
    FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        let fr = f.last_mut()?;
        fr.packages.pop();
        fr.returns.pop().flatten()
    })
}

/// Stores the value of `return()` for the innermost macro. False outside macros.
pub fn set_return(v: Value) -> bool {
    FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        match f.last_mut().and_then(|fr| fr.returns.last_mut()) {
            Some(slot) => {
                *slot = Some(v);
                true
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_without_a_package_searches_the_root_then_the_nodes_package_then_any() {
        let docs: Docs = [("a_pkg", "shared"), ("a_pkg", "only_a"), ("root", "shared"), ("z_pkg", "shared"), ("z_pkg", "mine")]
            .into_iter()
            .map(|(p, n)| ((p.to_string(), n.to_string()), format!("{p}:{n}")))
            .collect();
        let find =
            |package: Option<&str>, name: &str, node_package: &str| find_doc(&docs, package, name, "root", node_package).map(|(p, _)| p);
        assert_eq!(find(None, "shared", "z_pkg"), Some("root"), "the root project first");
        assert_eq!(find(None, "mine", "z_pkg"), Some("z_pkg"), "then the node's package");
        assert_eq!(find(None, "only_a", "z_pkg"), Some("a_pkg"), "then any package");
        assert_eq!(find(Some("z_pkg"), "shared", "root"), Some("z_pkg"), "a named package only");
        assert_eq!(find(Some("z_pkg"), "only_a", "root"), None);
        assert_eq!(find_doc(&docs, None, "mine", "root", "z_pkg").map(|(_, t)| t), Some("z_pkg:mine"));
    }
}
