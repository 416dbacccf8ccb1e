//! Node selection: dbt's grammar (SPEC §6) — names, `method:value`, wildcards,
//! `+`/`n+`/`@` graph operators, space unions, comma intersections,
//! `--exclude`, `--selector` from `selectors.yml`, `--resource-type`, and
//! indirect selection of tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value as Json;

use crate::config::ConfigExt;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::graph::Graph;
use crate::nodes::{Project, ResourceType};

/// How tests attached to selected nodes are picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IndirectSelection {
    /// A test is selected when any of its parents is (dbt's default).
    #[default]
    Eager,
    /// Only when all of its parents are selected.
    Cautious,
    /// When all of its parents are selected or are ancestors of selected nodes.
    Buildable,
    /// Never.
    Empty,
}

impl IndirectSelection {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eager" => IndirectSelection::Eager,
            "cautious" => IndirectSelection::Cautious,
            "buildable" => IndirectSelection::Buildable,
            "empty" => IndirectSelection::Empty,
            _ => return None,
        })
    }
}

/// What the user asked to select.
#[derive(Debug, Clone, Default)]
pub struct SelectionSpec {
    pub select: Vec<String>,
    pub exclude: Vec<String>,
    pub selector: Option<String>,
    pub resource_types: Vec<ResourceType>,
    pub exclude_resource_types: Vec<ResourceType>,
    pub indirect: IndirectSelection,
    /// `--state`: what `state:`, `result:` and `source_status:` compare with.
    pub state: Option<std::sync::Arc<crate::state::State>>,
}

/// The selected unique ids, and the criteria that matched nothing.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub ids: BTreeSet<String>,
    pub unmatched: Vec<String>,
}

/// Node attributes that selectors look at, for nodes and sources alike.
struct Item<'a> {
    id: &'a str,
    rt: ResourceType,
    name: &'a str,
    fqn: &'a [String],
    package: &'a str,
    file: &'a str,
    tags: Vec<String>,
    config: &'a crate::config::Config,
    source_name: Option<&'a str>,
    test: Option<&'a crate::nodes::TestInfo>,
    version: Option<&'a str>,
    latest: Option<&'a str>,
}

/// Versions compare as numbers when both are, else as text.
fn cmp_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    }
}

fn items(project: &Project) -> Vec<Item<'_>> {
    let mut out: Vec<Item<'_>> = project
        .nodes
        .values()
        .map(|n| Item {
            id: &n.unique_id,
            rt: n.resource_type,
            name: &n.name,
            fqn: &n.fqn,
            package: &n.package,
            file: &n.file,
            tags: n.config.tags(),
            config: &n.config,
            source_name: None,
            test: n.test.as_deref(),
            version: n.version.as_deref(),
            latest: n.latest_version.as_deref(),
        })
        .collect();
    out.extend(project.sources.values().map(|s| Item {
        id: &s.unique_id,
        rt: ResourceType::Source,
        name: &s.name,
        fqn: &s.fqn,
        package: &s.package,
        file: &s.file,
        tags: s.tags.clone(),
        config: &s.config,
        source_name: Some(&s.source_name),
        test: None,
        version: None,
        latest: None,
    }));
    out
}

/// Shell-style wildcard match (`*`, `?`, `[abc]`).
pub fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?', '[']) {
        return pattern == text;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    fn rec(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| rec(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && rec(&p[1..], &t[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|c| *c == ']') else { return !t.is_empty() && t[0] == '[' && rec(&p[1..], &t[1..]) };
                let set = &p[1..end];
                let (neg, set) = if set.first() == Some(&'!') { (true, &set[1..]) } else { (false, set) };
                !t.is_empty() && (set.contains(&t[0]) != neg) && rec(&p[end + 1..], &t[1..])
            }
            Some(c) => !t.is_empty() && t[0] == *c && rec(&p[1..], &t[1..]),
        }
    }
    rec(&p, &t)
}

/// One selection atom: `[@][n+]method:value[+n]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atom {
    at: bool,
    parents: Option<Option<usize>>,
    children: Option<Option<usize>>,
    method: String,
    value: String,
}

fn parse_atom(raw: &str) -> Result<Atom> {
    let bad = |why: &str| {
        DvtError::new(ErrorCode::SelectorInvalid, format!("invalid selector `{raw}`: {why}"))
            .hint("see `dvtc ls --help` for the selection grammar")
    };
    let mut s = raw.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let at = s.starts_with('@');
    if at {
        s = &s[1..];
    }
    let mut parents = None;
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if s[digits.len()..].starts_with('+') {
        parents = Some(if digits.is_empty() { None } else { Some(digits.parse().map_err(|_| bad("depth is too large"))?) });
        s = &s[digits.len() + 1..];
    }
    let mut children = None;
    let tail_digits: String = s.chars().rev().take_while(char::is_ascii_digit).collect::<String>().chars().rev().collect();
    let body = &s[..s.len() - tail_digits.len()];
    if let Some(b) = body.strip_suffix('+') {
        children = Some(if tail_digits.is_empty() { None } else { Some(tail_digits.parse().map_err(|_| bad("depth is too large"))?) });
        s = b;
    }
    if at && (parents.is_some() || children.is_some()) {
        return Err(bad("`@` cannot be combined with `+`"));
    }
    let (method, value) = match s.split_once(':') {
        Some((m, v)) if !m.is_empty() && m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') => {
            (m.to_string(), v.to_string())
        }
        _ => {
            let default = if s.contains('/') || s.contains('\\') || [".sql", ".csv", ".py", ".yml"].iter().any(|e| s.ends_with(e)) {
                "path"
            } else {
                "fqn"
            };
            (default.to_string(), s.to_string())
        }
    };
    if value.is_empty() {
        return Err(bad("the value after `:` is empty"));
    }
    Ok(Atom { at, parents, children, method, value })
}

fn fqn_match(fqn: &[String], name: &str, sel: &str) -> bool {
    if glob(sel, name) {
        return true;
    }
    let flat: Vec<&str> = fqn.iter().flat_map(|s| s.split('.')).collect();
    let parts: Vec<&str> = sel.split('.').collect();
    if flat.len() < parts.len() {
        return false;
    }
    for (i, part) in parts.iter().enumerate() {
        if *part == "*" {
            return true;
        }
        if !glob(part, flat[i]) {
            return false;
        }
    }
    true
}

fn path_match(file: &str, sel: &str, root: &Path) -> bool {
    let sel = sel.trim_start_matches("./").trim_end_matches('/');
    // Absolute paths inside the project are accepted too.
    let sel_rel = Path::new(sel).strip_prefix(root).map_or_else(|_| sel.to_string(), |p| p.to_string_lossy().replace('\\', "/"));
    let sel = sel_rel.as_str();
    if glob(sel, file) || file == sel {
        return true;
    }
    file.starts_with(&format!("{sel}/"))
}

fn json_matches(v: &Json, sel: &str) -> bool {
    match v {
        Json::String(s) => glob(sel, s),
        Json::Array(a) => a.iter().any(|x| json_matches(x, sel)),
        Json::Bool(b) => sel.eq_ignore_ascii_case(&b.to_string()),
        Json::Null => sel == "none" || sel == "null",
        other => *other == sel,
    }
}

fn method_matches(item: &Item<'_>, method: &str, value: &str, root: &Path) -> Result<bool> {
    Ok(match method {
        "fqn" => {
            item.rt != ResourceType::Source
                && (fqn_match(item.fqn, item.name, value)
                    // A version by `<name>.v<v>` or `<name>_v<v>`.
                    || item.version.is_some_and(|v| {
                        let v = v.replace('.', "_");
                        value == format!("{}.v{v}", item.name) || value == format!("{}_v{v}", item.name)
                    }))
        }
        "tag" => item.tags.iter().any(|t| glob(value, t)),
        "path" => path_match(item.file, value, root),
        "file" => {
            item.file.rsplit('/').next().is_some_and(|f| glob(value, f) || f.rsplit_once('.').is_some_and(|(stem, _)| glob(value, stem)))
        }
        "package" => glob(value, item.package),
        "resource_type" => ResourceType::parse(value).is_some_and(|rt| rt == item.rt),
        "source" => {
            if item.rt != ResourceType::Source {
                return Ok(false);
            }
            let parts: Vec<&str> = value.split('.').collect();
            let src = item.source_name.unwrap_or_default();
            match parts.as_slice() {
                [s] => glob(s, src),
                [s, t] => glob(s, src) && glob(t, item.name),
                [p, s, t] => glob(p, item.package) && glob(s, src) && glob(t, item.name),
                _ => false,
            }
        }
        "test_type" => match (value, item.test) {
            ("unit", _) => item.rt == ResourceType::UnitTest,
            ("generic" | "schema", Some(_)) => true,
            ("singular" | "data", None) => item.rt == ResourceType::Test,
            _ => false,
        },
        "test_name" => item
            .test
            .is_some_and(|t| glob(value, &t.name) || t.namespace.as_ref().is_some_and(|ns| glob(value, &format!("{ns}.{}", t.name)))),
        m if m.starts_with("config.") => {
            let key = crate::config::normalize_key(&m["config.".len()..]);
            item.config.get(&key).is_some_and(|v| json_matches(v, value))
        }
        "state" | "result" | "source_status" => {
            return Err(DvtError::new(ErrorCode::SelectorInvalid, format!("`{method}:` selection needs `--state <plan.json|dir>`"))
                .hint("pass the plan (or its folder, with run_results.json and sources.json) of the run to compare with"));
        }
        "unit_test" => item.rt == ResourceType::UnitTest && (glob(value, item.name) || fqn_match(item.fqn, item.name, value)),
        "version" => match (value, item.version, item.latest) {
            ("latest", Some(v), Some(l)) => v == l,
            ("old", Some(v), Some(l)) => cmp_versions(v, l).is_lt(),
            ("prerelease", Some(v), Some(l)) => cmp_versions(v, l).is_gt(),
            ("none", None, _) => item.rt == ResourceType::Model,
            ("latest" | "old" | "prerelease" | "none", _, _) => false,
            _ => {
                return Err(DvtError::new(ErrorCode::SelectorInvalid, format!("unknown `version:{value}`"))
                    .hint("use version:latest, version:old, version:prerelease or version:none"));
            }
        },
        "access" => item.rt == ResourceType::Model && item.config.str("access").unwrap_or("protected") == value,
        "group" => item.config.str("group").is_some_and(|g| glob(value, g)),
        "exposure" | "metric" | "semantic_model" | "saved_query" => false,
        other => {
            return Err(DvtError::new(ErrorCode::SelectorInvalid, format!("unknown selection method `{other}`"))
                .hint("methods: fqn, tag, path, file, package, resource_type, source, config.<key>, test_type, test_name"));
        }
    })
}

struct Selector<'a> {
    project: &'a Project,
    graph: &'a Graph,
    /// Built on first use: selecting everything needs no node's attributes.
    items: std::sync::OnceLock<Vec<Item<'a>>>,
    state: Option<&'a crate::state::State>,
    facts: Option<&'a crate::state::Facts>,
}

impl<'a> Selector<'a> {
    fn matches(&self, item: &Item<'_>, method: &str, value: &str) -> Result<bool> {
        match (method, self.state, self.facts) {
            ("state", Some(state), Some(facts)) => facts.state_matches(state, item.id, value),
            ("result", Some(state), _) => Ok(state.results.get(item.id).is_some_and(|s| glob(value, s))),
            ("source_status", Some(state), _) => {
                if value != "fresher" {
                    return Err(DvtError::new(ErrorCode::SelectorInvalid, format!("unknown `source_status:{value}`"))
                        .hint("use source_status:fresher (after `dvtr source freshness`)"));
                }
                Ok(item.rt == ResourceType::Source && self.facts.is_some_and(|f| f.fresher(state, item.id)))
            }
            _ => method_matches(item, method, value, &self.project.root),
        }
    }

    fn atom(&self, raw: &str) -> Result<BTreeSet<String>> {
        let a = parse_atom(raw)?;
        if a.method == "selector" {
            let def = self.project.selectors.get(&a.value).ok_or_else(|| {
                DvtError::new(ErrorCode::SelectorInvalid, format!("selector `{}` is not defined in selectors.yml", a.value))
            })?;
            return self.definition(def, 0);
        }
        if let Some(kind) =
            crate::semantic::Kind::ALL.into_iter().find(|k| k.resource_type() == a.method && *k != crate::semantic::Kind::Group)
        {
            let base: BTreeSet<String> = self
                .project
                .semantic
                .resources
                .values()
                .filter(|r| r.kind == kind)
                .filter(|r| {
                    let name = r.entry.get("name").and_then(Json::as_str).unwrap_or_default();
                    let package = r.entry.get("package_name").and_then(Json::as_str).unwrap_or_default();
                    glob(&a.value, name) || glob(&a.value, &format!("{package}.{name}"))
                })
                .map(|r| r.unique_id.clone())
                .collect();
            return Ok(self.expand(base, a.parents, a.children, a.at));
        }
        let mut base = BTreeSet::new();
        for item in self.items() {
            if self.matches(item, &a.method, &a.value)? {
                base.insert(item.id.to_string());
            }
        }
        Ok(self.expand(base, a.parents, a.children, a.at))
    }

    fn expand(
        &self,
        base: BTreeSet<String>,
        parents: Option<Option<usize>>,
        children: Option<Option<usize>>,
        at: bool,
    ) -> BTreeSet<String> {
        let semantic = &self.project.semantic.resources;
        let mut out = base.clone();
        // An exposure, metric, … reads nodes through the resources it depends on.
        let mut base = base;
        if parents.is_some() {
            let mut stack: Vec<String> = base.iter().filter(|id| semantic.contains_key(*id)).cloned().collect();
            while let Some(id) = stack.pop() {
                for d in semantic.get(&id).map(|r| r.depends_on.as_slice()).unwrap_or_default() {
                    if out.insert(d.clone()) {
                        base.insert(d.clone());
                        stack.push(d.clone());
                    }
                }
            }
        }
        for id in &base {
            if let Some(d) = parents {
                out.extend(self.graph.reach(id, true, d));
            }
            if let Some(d) = children {
                out.extend(self.graph.reach(id, false, d));
            }
            if at {
                for c in self.graph.reach(id, false, None) {
                    out.extend(self.graph.reach(&c, true, None));
                    out.insert(c);
                }
                out.extend(self.graph.reach(id, true, None));
            }
        }
        // ... and what the selected nodes feed: the resources downstream of them.
        if children.is_some() || at {
            loop {
                let more: Vec<String> = semantic
                    .values()
                    .filter(|r| !out.contains(&r.unique_id) && r.depends_on.iter().any(|d| out.contains(d)))
                    .map(|r| r.unique_id.clone())
                    .collect();
                if more.is_empty() {
                    break;
                }
                out.extend(more);
            }
        }
        out
    }

    /// A space-separated union of comma-separated intersections.
    fn expression(&self, expr: &str, unmatched: &mut Vec<String>) -> Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        for term in expr.split_whitespace() {
            let mut acc: Option<BTreeSet<String>> = None;
            for part in term.split(',') {
                let s = self.atom(part)?;
                acc = Some(match acc {
                    None => s,
                    Some(prev) => prev.intersection(&s).cloned().collect(),
                });
            }
            let s = acc.unwrap_or_default();
            if s.is_empty() {
                unmatched.push(term.to_string());
            }
            out.extend(s);
        }
        Ok(out)
    }

    fn definition(&self, def: &Json, depth: usize) -> Result<BTreeSet<String>> {
        if depth > 32 {
            return Err(DvtError::new(
                ErrorCode::SelectorInvalid,
                "selectors.yml definitions nest too deeply (a selector refers to itself?)",
            ));
        }
        match def {
            Json::String(s) => self.expression(s, &mut Vec::new()),
            Json::Object(m) => {
                if let Some(list) = m.get("union").and_then(Json::as_array) {
                    let mut inc = BTreeSet::new();
                    let mut exc = BTreeSet::new();
                    for d in list {
                        if let Some(e) = d.get("exclude").and_then(Json::as_array) {
                            for x in e {
                                exc.extend(self.definition(x, depth + 1)?);
                            }
                        } else {
                            inc.extend(self.definition(d, depth + 1)?);
                        }
                    }
                    return Ok(inc.difference(&exc).cloned().collect());
                }
                if let Some(list) = m.get("intersection").and_then(Json::as_array) {
                    let mut acc: Option<BTreeSet<String>> = None;
                    let mut exc = BTreeSet::new();
                    for d in list {
                        if let Some(e) = d.get("exclude").and_then(Json::as_array) {
                            for x in e {
                                exc.extend(self.definition(x, depth + 1)?);
                            }
                            continue;
                        }
                        let s = self.definition(d, depth + 1)?;
                        acc = Some(match acc {
                            None => s,
                            Some(p) => p.intersection(&s).cloned().collect(),
                        });
                    }
                    return Ok(acc.unwrap_or_default().difference(&exc).cloned().collect());
                }
                let (method, value) = match (m.get("method").and_then(Json::as_str), m.get("value")) {
                    (Some(method), Some(v)) => (method.to_string(), v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                    _ if m.len() == 1 => {
                        let (k, v) = m.iter().next().expect("one entry");
                        (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    }
                    _ => {
                        return Err(DvtError::new(
                            ErrorCode::SelectorInvalid,
                            format!("selector definition needs `method` and `value`, or union/intersection: {def}"),
                        ));
                    }
                };
                let base = if method == "selector" {
                    let d = self
                        .project
                        .selectors
                        .get(&value)
                        .ok_or_else(|| DvtError::new(ErrorCode::SelectorInvalid, format!("selector `{value}` is not defined")))?;
                    self.definition(d, depth + 1)?
                } else {
                    let mut set = BTreeSet::new();
                    for item in self.items() {
                        if self.matches(item, &method, &value)? {
                            set.insert(item.id.to_string());
                        }
                    }
                    set
                };
                let flag = |k: &str| m.get(k).and_then(Json::as_bool).unwrap_or(false);
                let depth_of = |k: &str| m.get(k).and_then(Json::as_u64).map(|d| d as usize);
                let parents = (flag("parents") || depth_of("parents_depth").is_some()).then(|| depth_of("parents_depth"));
                let children = (flag("children") || depth_of("childrens_depth").is_some()).then(|| depth_of("childrens_depth"));
                let mut out = self.expand(base, parents, children, flag("childrens_parents"));
                if let Some(e) = m.get("exclude").and_then(Json::as_array) {
                    for x in e {
                        for id in self.definition(x, depth + 1)? {
                            out.remove(&id);
                        }
                    }
                }
                Ok(out)
            }
            other => Err(DvtError::new(ErrorCode::SelectorInvalid, format!("invalid selector definition: {other}"))),
        }
    }

    fn items(&self) -> &[Item<'a>] {
        self.items.get_or_init(|| items(self.project))
    }

    fn add_tests(&self, selected: &BTreeSet<String>, mode: IndirectSelection) -> BTreeSet<String> {
        let mut out = selected.clone();
        // Every node selected: its tests are among them.
        if mode == IndirectSelection::Empty || contains_sorted(selected.iter(), self.project.nodes.keys()) {
            return out;
        }
        let ancestors: BTreeSet<String> = if mode == IndirectSelection::Buildable {
            selected.iter().flat_map(|id| self.graph.reach(id, true, None)).collect()
        } else {
            BTreeSet::new()
        };
        for n in self.project.nodes.values().filter(|n| matches!(n.resource_type, ResourceType::Test | ResourceType::UnitTest)) {
            let parents = &n.depends_on;
            if parents.is_empty() {
                continue;
            }
            let pick = match mode {
                IndirectSelection::Eager => parents.iter().any(|p| selected.contains(p)),
                IndirectSelection::Cautious => parents.iter().all(|p| selected.contains(p)),
                IndirectSelection::Buildable => {
                    parents.iter().any(|p| selected.contains(p)) && parents.iter().all(|p| selected.contains(p) || ancestors.contains(p))
                }
                IndirectSelection::Empty => false,
            };
            if pick {
                out.insert(n.unique_id.clone());
            }
        }
        out
    }
}

/// Applies a selection to the project (without `--state`).
pub fn select(project: &Project, graph: &Graph, spec: &SelectionSpec) -> Result<Selection> {
    select_with(project, graph, spec, None)
}

/// Applies a selection; `facts` (the current project's, for every node) answer `state:` methods.
pub fn select_with(project: &Project, graph: &Graph, spec: &SelectionSpec, facts: Option<&crate::state::Facts>) -> Result<Selection> {
    let sel = Selector { project, graph, items: std::sync::OnceLock::new(), state: spec.state.as_deref(), facts };
    let mut unmatched = Vec::new();
    let mut ids: BTreeSet<String> = if let Some(name) = &spec.selector {
        let def = project.selectors.get(name).ok_or_else(|| {
            DvtError::new(ErrorCode::SelectorInvalid, format!("selector `{name}` is not defined in selectors.yml"))
                .hint(format!("defined selectors: {}", project.selectors.keys().cloned().collect::<Vec<_>>().join(", ")))
        })?;
        let s = sel.definition(def, 0)?;
        if s.is_empty() {
            unmatched.push(format!("selector:{name}"));
        }
        s
    } else if spec.select.is_empty() {
        match project.selectors.get("__default__") {
            Some(def) => sel.definition(def, 0)?,
            // Everything dbt lists: nodes, sources, exposures, metrics, semantic models, saved queries.
            None => project
                .nodes
                .keys()
                .chain(project.sources.keys())
                .chain(project.semantic.resources.values().filter(|r| r.kind != crate::semantic::Kind::Group).map(|r| &r.unique_id))
                .cloned()
                .collect(),
        }
    } else {
        let mut all = BTreeSet::new();
        for s in &spec.select {
            all.extend(sel.expression(s, &mut unmatched)?);
        }
        all
    };
    ids = sel.add_tests(&ids, spec.indirect);
    let mut excluded = BTreeSet::new();
    for e in &spec.exclude {
        excluded.extend(sel.expression(e, &mut Vec::new())?);
    }
    // Tests of excluded nodes go with them.
    let excluded = if excluded.is_empty() { excluded } else { sel.add_tests(&excluded, IndirectSelection::Eager) };
    ids.retain(|id| !excluded.contains(id));
    let rt_of = |id: &str| -> Option<ResourceType> {
        project.nodes.get(id).map(|n| n.resource_type).or_else(|| project.sources.get(id).map(|_| ResourceType::Source))
    };
    if !spec.resource_types.is_empty() {
        ids.retain(|id| rt_of(id).is_some_and(|rt| spec.resource_types.contains(&rt)));
    }
    if !spec.exclude_resource_types.is_empty() {
        ids.retain(|id| rt_of(id).is_some_and(|rt| !spec.exclude_resource_types.contains(&rt)));
    }
    Ok(Selection { ids, unmatched })
}

/// Whether sorted `all` holds every item of sorted `some` (one merge walk).
fn contains_sorted<'s>(mut all: impl Iterator<Item = &'s String>, some: impl Iterator<Item = &'s String>) -> bool {
    some.into_iter().all(|x| all.by_ref().find(|a| *a >= x).is_some_and(|a| a == x))
}

/// Reads `selectors.yml` (name → definition). A `default: true` selector is
/// also stored as `__default__`.
pub fn load_selectors(root: &Path) -> Result<BTreeMap<String, Json>> {
    let path = root.join("selectors.yml");
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
    let doc: BTreeMap<String, Json> = crate::yaml::parse(&text, "selectors.yml")?;
    let mut out = BTreeMap::new();
    for s in doc.get("selectors").and_then(Json::as_array).into_iter().flatten() {
        let Some(name) = s.get("name").and_then(Json::as_str) else {
            return Err(
                DvtError::new(ErrorCode::SelectorInvalid, "a selector in selectors.yml has no `name:`").at(Location::file("selectors.yml"))
            );
        };
        let Some(def) = s.get("definition") else {
            return Err(DvtError::new(ErrorCode::SelectorInvalid, format!("selector `{name}` has no `definition:`"))
                .at(Location::file("selectors.yml")));
        };
        if s.get("default").and_then(Json::as_bool) == Some(true) {
            out.insert("__default__".to_string(), def.clone());
        }
        out.insert(name.to_string(), def.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_parse_graph_operators() {
        let a = parse_atom("2+tag:nightly+").unwrap();
        assert_eq!((a.parents, a.children, a.method.as_str(), a.value.as_str()), (Some(Some(2)), Some(None), "tag", "nightly"));
        let a = parse_atom("@my_model").unwrap();
        assert!(a.at);
        assert_eq!(a.method, "fqn");
        assert_eq!(parse_atom("models/staging").unwrap().method, "path");
        assert_eq!(parse_atom("config.materialized:table").unwrap().method, "config.materialized");
        assert!(parse_atom("@+x").is_err());
        assert!(parse_atom("tag:").is_err());
    }

    #[test]
    fn sorted_containment_is_a_merge_walk() {
        let set = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<BTreeSet<String>>();
        let all = set(&["a", "b", "c", "e"]);
        assert!(contains_sorted(all.iter(), set(&["a", "c", "e"]).iter()));
        assert!(contains_sorted(all.iter(), set(&[]).iter()));
        assert!(!contains_sorted(all.iter(), set(&["a", "d"]).iter()));
        assert!(!contains_sorted(all.iter(), set(&["f"]).iter()));
        assert!(!contains_sorted(set(&[]).iter(), set(&["a"]).iter()));
    }

    #[test]
    fn globs_and_fqn() {
        assert!(glob("stg_*", "stg_orders"));
        assert!(!glob("stg_*", "int_orders"));
        assert!(glob("m_0000[12]", "m_00001"));
        let fqn: Vec<String> = ["p", "staging", "stg_orders"].iter().map(|s| s.to_string()).collect();
        assert!(fqn_match(&fqn, "stg_orders", "stg_orders"));
        assert!(fqn_match(&fqn, "stg_orders", "p.staging"));
        assert!(fqn_match(&fqn, "stg_orders", "p.staging.*"));
        assert!(!fqn_match(&fqn, "stg_orders", "p.marts"));
    }
}
