//! dbt 1.8 unit tests (`unit_tests:` in properties YAML) as nodes: each tests
//! one model on fixture rows given for every one of its inputs.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::config;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, Project, ResourceType, UnitTest};

/// A `unit_tests:` entry as read, with where it was read.
pub(crate) struct UnitDecl {
    pub package: String,
    /// Properties file, as displayed (package-relative path prefix included).
    pub file: String,
    pub folders: Vec<String>,
    pub text: String,
    pub value: Json,
    /// `<test-path>/fixtures/` folders, where `fixture: <name>` files live.
    pub fixture_dirs: Vec<std::path::PathBuf>,
}

const FORMATS: [&str; 3] = ["dict", "csv", "sql"];

pub(crate) fn line_of(text: &str, name: &str) -> u32 {
    let re = regex::Regex::new(&format!(r#"(?m)^\s*-?\s*name:\s*['"]?{}['"]?\s*$"#, regex::escape(name))).expect("escaped");
    re.find(text).map_or(0, |m| text[..m.start()].matches('\n').count() as u32 + 1)
}

/// Builds the unit test nodes of `decls` against the loaded project.
pub(crate) fn build(project: &Project, decls: Vec<UnitDecl>) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    for d in decls {
        let name = d.value.get("name").and_then(Json::as_str).unwrap_or_default().to_string();
        let line = line_of(&d.text, &name);
        let at = Location::new(&d.file, line, 0);
        let bad = |msg: String, hint: &str| DvtError::new(ErrorCode::UnitTestInvalid, msg).at(at.clone()).hint(hint.to_string());
        if name.is_empty() {
            return Err(bad("a unit test has no `name:`".into(), "give every entry of `unit_tests:` a name"));
        }
        let model_name = d.value.get("model").and_then(Json::as_str).unwrap_or_default();
        let model = find_model(project, &d.package, model_name).ok_or_else(|| {
            bad(
                format!("unit test `{name}` tests model `{model_name}`, which was not found"),
                "set `model:` to the name of an enabled model",
            )
        })?;
        let mut given = Vec::new();
        for g in d.value.get("given").and_then(Json::as_array).into_iter().flatten() {
            let input = g.get("input").and_then(Json::as_str).unwrap_or_default();
            let uid = resolve_input(project, &model.package, input).ok_or_else(|| {
                bad(
                    format!("unit test `{name}`: input `{input}` is not a ref, source or `this` that names a node of this project"),
                    "write inputs as ref('model'), source('source', 'table') or this",
                )
            })?;
            if uid != "this" && !model.depends_on.contains(&uid) {
                return Err(bad(
                    format!("unit test `{name}`: `{input}` is not an input of model `{}`", model.name),
                    "give fixtures only for the refs and sources the model reads",
                ));
            }
            let format = g.get("format").and_then(Json::as_str).unwrap_or("dict").to_string();
            if !FORMATS.contains(&format.as_str()) {
                return Err(bad(format!("unit test `{name}`: unknown fixture format `{format}`"), "use dict, csv or sql"));
            }
            let rows = rows_of(&d, g, &format).map_err(|m| bad(format!("unit test `{name}`: {m}"), FIXTURE_HINT))?;
            given.push((uid, format, rows));
        }
        let missing: Vec<String> = model
            .depends_on
            .iter()
            .filter(|p| !given.iter().any(|(u, _, _)| u == *p))
            .filter_map(|p| match (project.sources.get(p), project.nodes.get(p)) {
                (Some(s), _) => Some(format!("source('{}', '{}')", s.source_name, s.name)),
                (_, Some(n)) => Some(format!("ref('{}')", n.name)),
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            return Err(bad(
                format!("unit test `{name}` gives no rows for these inputs of model `{}`: {}", model.name, missing.join(", ")),
                "add a `given:` entry for every ref and source of the model (`rows: []` for an empty one)",
            ));
        }
        let Some(expect) = d.value.get("expect") else {
            return Err(bad(format!("unit test `{name}` has no `expect:`"), "add `expect: {rows: [...]}`"));
        };
        let format = expect.get("format").and_then(Json::as_str).unwrap_or("dict").to_string();
        if !FORMATS.contains(&format.as_str()) {
            return Err(bad(format!("unit test `{name}`: unknown expect format `{format}`"), "use dict, csv or sql"));
        }
        let expect_rows = rows_of(&d, expect, &format).map_err(|m| bad(format!("unit test `{name}`: {m}"), FIXTURE_HINT))?;
        let mut fqn = vec![d.package.clone()];
        fqn.extend(d.folders.iter().cloned());
        fqn.push(model.name.clone());
        fqn.push(name.clone());
        let mut cfg = config::Config::new();
        cfg.insert("enabled".into(), Json::Bool(true));
        if let Some(Json::Object(c)) = d.value.get("config") {
            config::apply_all(&mut cfg, c);
        }
        out.push(Node {
            unique_id: format!("unit_test.{}.{}.{name}", d.package, model.name),
            resource_type: ResourceType::UnitTest,
            package: d.package.clone(),
            name: name.clone(),
            fqn,
            file: d.file.clone(),
            raw_line: line,
            description: d.value.get("description").and_then(Json::as_str).unwrap_or_default().to_string(),
            config: cfg,
            depends_on: vec![model.unique_id.clone()],
            unit: Some(Box::new(UnitTest {
                model: model.unique_id.clone(),
                given,
                expect: (format, expect_rows),
                overrides: d.value.get("overrides").cloned().unwrap_or(Json::Null),
                line,
            })),
            ..Default::default()
        });
    }
    Ok(out)
}

const FIXTURE_HINT: &str = "put fixture files under <test-path>/fixtures/ as <name>.csv or <name>.sql";

/// The rows of a `given:`/`expect:` entry: inline `rows:`, or a `fixture:` file's text.
fn rows_of(d: &UnitDecl, entry: &Json, format: &str) -> std::result::Result<Json, String> {
    match entry.get("fixture").and_then(Json::as_str) {
        Some(f) if entry.get("rows").is_none() => fixture(d, f, format).map(Json::String),
        _ => Ok(entry.get("rows").cloned().unwrap_or(Json::Array(vec![]))),
    }
}

/// The text of fixture file `<name>.csv` / `<name>.sql` (by format) under the fixture folders.
fn fixture(d: &UnitDecl, name: &str, format: &str) -> std::result::Result<String, String> {
    let ext = match format {
        "csv" => "csv",
        "sql" => "sql",
        _ => return Err(format!("fixture `{name}`: `{format}` rows cannot come from a file (use csv or sql)")),
    };
    let file = format!("{name}.{ext}");
    for dir in &d.fixture_dirs {
        let found = super::files::walk(dir, dir, &[ext])
            .map_err(|e| e.message)?
            .into_iter()
            .find(|p| p.file_name().is_some_and(|f| f == file.as_str()));
        if let Some(p) = found {
            return std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        }
    }
    Err(format!("fixture file `{file}` was not found under the fixtures folders"))
}

fn find_model<'a>(project: &'a Project, package: &str, name: &str) -> Option<&'a Node> {
    let models = || project.nodes.values().filter(move |n| n.resource_type == ResourceType::Model && n.name == name);
    models().find(|n| n.package == package).or_else(|| models().next())
}

/// `ref('m')`, `ref('pkg', 'm')`, `source('s', 't')` or `this` → the unique id (`this` as is).
fn resolve_input(project: &Project, package: &str, input: &str) -> Option<String> {
    let input = input.trim();
    if input == "this" {
        return Some("this".into());
    }
    let re = regex::Regex::new(r#"^(ref|source)\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"]\s*)?(?:,\s*v(?:ersion)?\s*=\s*[^)]*)?\)$"#)
        .expect("valid");
    let c = re.captures(input)?;
    let (kind, a, b) = (&c[1], c[2].to_string(), c.get(3).map(|m| m.as_str().to_string()));
    if kind == "source" {
        let t = b?;
        return project.sources.values().find(|s| s.source_name == a && s.name == t).map(|s| s.unique_id.clone());
    }
    let (pkg, name) = match b {
        Some(n) => (Some(a), n),
        None => (None, a),
    };
    let refable: BTreeMap<(&str, &str), &str> = project
        .nodes
        .values()
        .filter(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed | ResourceType::Snapshot))
        .map(|n| ((n.package.as_str(), n.name.as_str()), n.unique_id.as_str()))
        .collect();
    match pkg {
        Some(p) => refable.get(&(p.as_str(), name.as_str())).map(|s| s.to_string()),
        None => refable
            .get(&(package, name.as_str()))
            .or_else(|| refable.iter().find(|((_, n), _)| *n == name).map(|(_, id)| id))
            .map(|s| s.to_string()),
    }
}
