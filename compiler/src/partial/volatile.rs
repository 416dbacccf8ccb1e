//! Templates whose output depends on more than the project's files: a project
//! that has one is always compiled whole.

use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde_json::Value as Json;

use crate::nodes::{Node, Project};

/// Template text whose output depends on more than the project's files: the
/// graph, the selection, the invocation, the clock (`datetime.now()`), chance.
/// ASCII word boundaries keep the regex on its DFA.
const VOLATILE: &str =
    r"(?-u:\b)(graph|selected_resources|run_started_at|invocation_id)(?-u:\b)|\.(now|utcnow|today)\s*\(|modules\.(time|random)(?-u:\b)";

static VOLATILE_TEXT: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(VOLATILE).expect("valid pattern"));

/// Set when a string rendered while loading (project file configs, properties
/// descriptions) reads what [`VOLATILE`] names: its rendered value is baked
/// into nodes that a reusing compile would not render again.
static VOLATILE_SEEN: AtomicBool = AtomicBool::new(false);

/// Notes a template string rendered while loading (see [`VOLATILE_SEEN`]).
pub fn note_rendered(text: &str) {
    if VOLATILE_TEXT.is_match(text) {
        VOLATILE_SEEN.store(true, Ordering::Relaxed);
    }
}

/// Why no node of `project` can be reused, if so: some template reads what
/// [`VOLATILE`] names, directly or through a macro.
pub(super) fn volatile(project: &Project) -> Option<String> {
    if VOLATILE_SEEN.load(Ordering::Relaxed) {
        return Some("a project or properties file renders with state beyond its files".into());
    }
    let direct = &*VOLATILE_TEXT;
    // Macros that read it, and macros calling those (by name, as text).
    let mut names: BTreeSet<&str> = project.macros.iter().filter(|m| direct.is_match(&m.source)).map(|m| m.name.as_str()).collect();
    loop {
        let calls = |src: &str| names.iter().any(|n| src.contains(n));
        let more: Vec<&str> =
            project.macros.iter().filter(|m| !names.contains(m.name.as_str()) && calls(&m.source)).map(|m| m.name.as_str()).collect();
        if more.is_empty() {
            break;
        }
        names.extend(more);
    }
    let calls: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
    let pattern = if calls.is_empty() { VOLATILE.to_string() } else { format!(r"{VOLATILE}|(?-u:\b)({})(?-u:\b)", calls.join("|")) };
    let any = regex::Regex::new(&pattern).ok()?;
    // Values are searched where they hold text (keys and strings), with no JSON written per node.
    let reads = |v: &Json| any_text(v, &mut |s| any.is_match(s));
    let hooks = |n: &Node| ["pre-hook", "post-hook"].iter().filter_map(|k| n.config.get(*k)).any(reads);
    // A generic test renders its macro (`test_<name>` or `<name>`), with its arguments (which may hold Jinja).
    let test_macros: HashSet<&str> = names.iter().flat_map(|n| [*n, n.strip_prefix("test_").unwrap_or(n)]).collect();
    let test = |n: &Node| n.test.as_ref().is_some_and(|t| test_macros.contains(t.name.as_str()) || t.kwargs.values().any(reads));
    if let Some(n) = project.nodes.par_iter().map(|(_, n)| n).find_any(|n| any.is_match(&n.raw) || hooks(n) || test(n)) {
        return Some(format!("{} renders with state beyond its files", n.unique_id));
    }
    let run_hooks = project.packages.iter().flat_map(|p| [&p.file.on_run_start, &p.file.on_run_end]).flatten();
    run_hooks.clone().any(reads).then(|| "a run hook renders with state beyond its files".to_string())
}

/// Whether `found` holds for some text of `v`: a string, or an object's key.
fn any_text(v: &Json, found: &mut impl FnMut(&str) -> bool) -> bool {
    match v {
        Json::String(s) => found(s),
        Json::Array(items) => items.iter().any(|x| any_text(x, found)),
        Json::Object(m) => m.iter().any(|(k, x)| found(k) || any_text(x, found)),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}
