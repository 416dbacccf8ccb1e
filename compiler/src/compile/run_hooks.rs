//! `on-run-start` / `on-run-end`: the hooks of the project and of every package,
//! as dbt declares them (operation nodes `operation.<pkg>.<pkg>-on-run-start-<i>`,
//! packages by name and the root project last) and renders them (at compile time
//! for `target/compiled/<pkg>/dbt_project.yml/hooks/`, and again when they run,
//! with the run's `results`).

use dvt_schema::plan::{PlanWarning, RunHook};
use serde_json::Value as Json;

use super::render::{Mode, Renderer, RuntimeOnly};
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::nodes::{Node, Project};

/// `on-run-start` or `on-run-end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Start,
    End,
}

impl HookKind {
    pub fn key(self) -> &'static str {
        match self {
            HookKind::Start => "on-run-start",
            HookKind::End => "on-run-end",
        }
    }
}

/// The declared hooks of `kind`, in dbt's run order: (package, index, template).
pub fn declared(project: &Project, kind: HookKind) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for p in &project.packages {
        let list = match kind {
            HookKind::Start => p.file.on_run_start.as_ref(),
            HookKind::End => p.file.on_run_end.as_ref(),
        };
        let hooks = super::hook_list(list);
        out.extend(hooks.into_iter().enumerate().map(|(i, t)| (p.name.clone(), i, t)));
    }
    // dbt sorts by (package name, index) with the root project's name sorting last.
    out.sort_by(|a, b| ((a.0 == project.name), &a.0, a.1).cmp(&((b.0 == project.name), &b.0, b.1)));
    out
}

/// The node a hook renders as (dbt's `HookNode`).
pub fn node(project: &Project, kind: HookKind, package: &str, index: usize, template: &str) -> Node {
    let name = format!("{package}-{}-{index}", kind.key());
    let rel = project.packages.iter().find(|p| p.name == package).map_or("", |p| p.rel.as_str());
    Node {
        unique_id: format!("operation.{package}.{name}"),
        package: package.to_string(),
        fqn: vec![package.to_string(), "hooks".into(), name.clone()],
        name,
        file: format!("{rel}dbt_project.yml"),
        raw: template.to_string(),
        raw_line: 1,
        ..Default::default()
    }
}

/// Path under `target/compiled/`, as dbt writes it.
pub fn compiled_path(hook: &RunHook) -> String {
    format!("{}/dbt_project.yml/hooks/{}.sql", hook.package_name, hook.unique_id.rsplit('.').next().unwrap_or_default())
}

/// Every hook of `kind`, rendered now where it can be (offline: unless it needs
/// the database; with no run `results` yet). One that fails to render now is
/// left for the run with a `DVTW501` warning: dbt renders hooks when they run.
pub fn plan(
    project: &Project,
    renderer: &Renderer,
    dialect: Dialect,
    kind: HookKind,
    selected: &[String],
    warnings: &mut Vec<PlanWarning>,
) -> Vec<RunHook> {
    let context = serde_json::json!({"context": {
        "results": [], "schemas": [], "database_schemas": [], "selected_resources": selected,
    }});
    declared(project, kind)
        .into_iter()
        .map(|(package, index, template)| {
            let n = node(project, kind, &package, index, &template);
            let compiled_sql = match renderer.render_overridden(&n, None, Mode::Pushdown(dialect), false, &context) {
                Ok(Ok(out)) => Some(out.text),
                Ok(Err(RuntimeOnly(_))) => None,
                Err(e) => {
                    let message = format!("{} did not render at compile time ({e}); it renders when it runs", n.name);
                    warnings.push(PlanWarning { code: "DVTW501".into(), node: n.unique_id.clone(), message });
                    None
                }
            };
            let target = project.active_target.clone();
            RunHook { unique_id: n.unique_id, package_name: package, index, target, template, compiled_sql }
        })
        .collect()
}

/// Renders `hook` when it runs (`renderer` has the live database), with `context`
/// (`results`, `schemas`, `database_schemas`, `selected_resources`, `flags`) added to dbt's.
pub(super) fn render_live(renderer: &Renderer, hook: &RunHook, context: &Json) -> Result<String> {
    let project = renderer.project;
    let kind = if hook.unique_id.contains("-on-run-end-") { HookKind::End } else { HookKind::Start };
    let n = node(project, kind, &hook.package_name, hook.index, &hook.template);
    let dialect = project.profile.outputs.get(&hook.target).and_then(|o| Dialect::from_adapter(&o.kind)).unwrap_or(Dialect::Postgres);
    let overrides = serde_json::json!({ "context": context });
    match renderer.render_overridden(&n, None, Mode::Pushdown(dialect), false, &overrides)? {
        Ok(out) => Ok(out.text),
        Err(RuntimeOnly(reason)) => {
            Err(DvtError::new(ErrorCode::JinjaRender, format!("`{}` still needs `{reason}`", n.name)).at(Location::file(&n.file)))
        }
    }
}
