//! Jinja in `dbt_project.yml` config values (`+enabled: "{{ var('load', false) }}"`,
//! `+schema: "{{ env_var('S') }}"`), rendered when the project loads, as dbt
//! does, with `var`, `env_var` and `target`; the text becomes a value the way
//! dbt's native rendering does (`False` → false, `10` → 10). Hooks are rendered
//! later, per node, like every node's SQL.

use minijinja::{Environment, Value};
use serde_json::Value as Json;

use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::jinja::{Vars, project_env_var_fn};
use crate::nodes::Package;

/// Renders config values of one package at load time: `var` (the package's view
/// of the project vars), `env_var` and `target`, with dbt's native rendering.
pub struct ConfigRenderer {
    env: Environment<'static>,
}

impl ConfigRenderer {
    pub fn new(package: &str, vars: &Vars, target: &Value) -> Self {
        let mut env = Environment::new();
        env.set_formatter(crate::jinja::pyrepr::formatter);
        env.add_function("env_var", project_env_var_fn);
        // dbt's native-type filters, as in models.
        env.add_filter("as_bool", crate::jinja::functions::as_bool);
        env.add_filter("as_number", crate::jinja::functions::as_number);
        env.add_filter("as_text", |v: Value| v.to_string());
        env.add_filter("as_native", |v: Value| v);
        let (package, globals) = (package.to_string(), vars.clone());
        env.add_function(
            "var",
            move |name: String, default: minijinja::value::Rest<Value>| -> std::result::Result<Value, minijinja::Error> {
                match globals.get(&package, &name) {
                    Some(v) => Ok(crate::jinja::to_value(v)),
                    None => default.first().cloned().ok_or_else(|| {
                        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("required var `{name}` is not set"))
                    }),
                }
            },
        );
        env.add_global("target", target.clone());
        ConfigRenderer { env }
    }

    /// `s` rendered when it holds Jinja, as a value; `None` when it holds none.
    pub fn render_str(&self, s: &str, at: &Location) -> Result<Option<Json>> {
        if !(s.contains("{{") || s.contains("{%")) {
            return Ok(None);
        }
        crate::partial::note_rendered(s);
        let text = self.env.render_str(s, ()).map_err(|e| {
            DvtError::new(ErrorCode::JinjaRender, format!("config value `{s}`: {}", e.detail().unwrap_or(&e.kind().to_string())))
                .at(at.clone())
        })?;
        Ok(Some(native(&text)))
    }

    /// Every string of a config tree rendered in place (hooks stay raw: they render per node).
    pub fn render_tree(&self, v: &mut Json, at: &Location) -> Result<()> {
        match v {
            Json::Object(m) => {
                for (k, x) in m.iter_mut() {
                    let key = k.trim_start_matches('+');
                    if !matches!(key, "pre-hook" | "post-hook" | "pre_hook" | "post_hook") {
                        self.render_tree(x, at)?;
                    }
                }
            }
            Json::Array(a) => {
                for x in a {
                    self.render_tree(x, at)?;
                }
            }
            Json::String(s) => {
                if let Some(r) = self.render_str(s, at)? {
                    *v = r;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Renders the config trees of `pkg`'s project file in place.
pub fn render(pkg: &mut Package, vars: &Vars, target: &Value) -> Result<()> {
    let renderer = ConfigRenderer::new(&pkg.name, vars, target);
    let at = Location::file(format!("{}dbt_project.yml", pkg.rel));
    let f = &mut pkg.file;
    for tree in [&mut f.models, &mut f.seeds, &mut f.snapshots, &mut f.tests, &mut f.sources, &mut f.analyses].into_iter().flatten() {
        renderer.render_tree(tree, &at)?;
    }
    Ok(())
}

/// dbt's native rendering: Python literals become values, other text stays text.
fn native(text: &str) -> Json {
    match text.trim() {
        "True" | "true" => Json::Bool(true),
        "False" | "false" => Json::Bool(false),
        "None" | "none" => Json::Null,
        t => t.parse::<i64>().map(Json::from).or_else(|_| t.parse::<f64>().map(Json::from)).unwrap_or_else(|_| Json::from(text)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rendered_text_becomes_a_value() {
        assert_eq!(super::native("False"), serde_json::json!(false));
        assert_eq!(super::native("10"), serde_json::json!(10));
        assert_eq!(super::native("raw"), serde_json::json!("raw"));
    }
}
