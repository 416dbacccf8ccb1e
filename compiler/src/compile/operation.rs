//! `run-operation`: calls a macro with arguments against the live databases
//! (`dvtr run-operation grant_select --args '{role: reporter}'`), as dbt does:
//! `execute` is true, `run_query`/`statement` run on the active target, and
//! `log(…, info=True)` messages are returned for printing.

use std::sync::Arc;

use serde_json::Value as Json;

use super::render::{Index, Mode, Renderer};
use super::resolve;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Result};
use crate::jinja::Jinja;
use crate::nodes::{Node, Project, ResourceType};

/// What the operation printed and rendered.
#[derive(Debug)]
pub struct OperationOutput {
    pub logs: Vec<String>,
    /// The macro's rendered text, trimmed (dbt discards it; shown with `--log-level debug` there).
    pub output: String,
}

/// Runs macro `name` (optionally `package.macro`) with `args` (a YAML/JSON mapping).
pub fn run_operation(
    project: &Project,
    jinja: &Jinja,
    name: &str,
    args: Option<&str>,
    live: Arc<dyn crate::jinja::live::LiveDatabase>,
) -> Result<OperationOutput> {
    let (package, macro_name) = match name.split_once('.') {
        Some((p, m)) => (Some(p), m),
        None => (None, name),
    };
    let known = match package {
        Some(p) => jinja.index.get(p, macro_name).is_some(),
        None => jinja.index.lookup(&project.name, macro_name).is_some(),
    };
    if !known || macro_name.is_empty() || !macro_name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(DvtError::new(ErrorCode::MacroNotFound, format!("run-operation: no macro named `{name}`"))
            .hint("name a macro of the project or a package (`package.macro`)"));
    }
    let args: Json = match args {
        None => Json::Object(Default::default()),
        Some(text) => match serde_saphyr::from_str::<Json>(text) {
            Ok(v @ Json::Object(_)) => v,
            Ok(Json::Null) => Json::Object(Default::default()),
            Ok(other) => return Err(DvtError::new(ErrorCode::Usage, format!("--args must be a mapping, got {other}"))),
            Err(e) => return Err(DvtError::new(ErrorCode::Usage, format!("--args is not valid YAML: {e}"))),
        },
    };
    let args_literal = serde_json::to_string(&args.to_string()).unwrap_or_default();
    let callee = package.map_or_else(|| macro_name.to_string(), |p| format!("{p}.{macro_name}"));
    let placements = resolve::place_all(project, jinja, &Default::default())?;
    let index = Arc::new(Index::new(project, placements));
    let renderer = Renderer::new(project, jinja, index, false, Some(live));
    let node = Node {
        unique_id: format!("operation.{}.{macro_name}", project.name),
        resource_type: ResourceType::Model,
        package: project.name.clone(),
        name: macro_name.to_string(),
        fqn: vec![project.name.clone(), macro_name.to_string()],
        file: "<run-operation>".into(),
        raw: format!("{{{{ {callee}(**fromjson({args_literal})) }}}}"),
        raw_line: 1,
        ..Default::default()
    };
    let dialect = Dialect::from_adapter(&project.profile.outputs[&project.active_target].kind).unwrap_or(Dialect::Postgres);
    match renderer.render(&node, None, Mode::Pushdown(dialect), false)? {
        Ok(out) => Ok(OperationOutput { logs: out.logs, output: out.sql }),
        Err(r) => Err(DvtError::new(ErrorCode::JinjaRender, format!("run-operation `{name}` could not run: {}", r.0))),
    }
}
