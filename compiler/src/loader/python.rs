//! Python models (`models/*.py`), read as dbt reads them: the file is parsed
//! (ruff's Python parser), and the `dbt.ref(...)`, `dbt.source(...)`,
//! `dbt.config(...)` and `dbt.config.get(...)` calls made on the first
//! parameter of `def model(dbt, session)` give the node its upstreams and
//! configuration. Arguments must be literals, as dbt requires.

use ruff_python_ast::visitor::{Visitor, walk_expr};
use ruff_python_ast::{Expr, Number, Stmt};
use serde_json::Value as Json;

use crate::error::{DvtError, ErrorCode, Location, Result, line_col};
use crate::jinja::RefCall;

/// What a Python model's source declares.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PythonModel {
    /// `dbt.ref(...)` calls with their lines.
    pub refs: Vec<(RefCall, u32)>,
    /// `dbt.source(...)` calls with their lines.
    pub sources: Vec<(String, String, u32)>,
    /// `dbt.config(key=value)` settings, in order.
    pub configs: Vec<(String, Json)>,
    /// `dbt.config.get(key, default)` keys and defaults, in order (dbt's `config_keys_used`).
    pub config_keys_used: Vec<(String, Json)>,
}

/// Parses `source` (the content of `file` from line `first_line` on).
pub fn parse(source: &str, file: &str, first_line: u32) -> Result<PythonModel> {
    let parsed = ruff_python_parser::parse_module(source).map_err(|e| {
        let (line, col) = line_col(source, usize::from(e.location.start()));
        DvtError::new(ErrorCode::PythonModelInvalid, format!("Python model does not parse: {}", e.error)).at(Location::new(
            file,
            line + first_line - 1,
            col,
        ))
    })?;
    let body = &parsed.syntax().body;
    let model_fn = body.iter().find_map(|s| match s {
        Stmt::FunctionDef(f) if f.name.as_str() == "model" => Some(f),
        _ => None,
    });
    let Some(model_fn) = model_fn else {
        return Err(DvtError::new(ErrorCode::PythonModelInvalid, "a Python model must define `def model(dbt, session):`")
            .at(Location::file(file))
            .hint("define the model as a function `model(dbt, session)` that returns a DataFrame"));
    };
    let dbt_name = model_fn.parameters.args.first().map_or("dbt".to_string(), |p| p.parameter.name.to_string());
    let mut v = Calls { dbt: dbt_name, source, file, offset: first_line - 1, out: PythonModel::default(), error: None };
    for s in body {
        v.visit_stmt(s);
    }
    match v.error {
        Some(e) => Err(e),
        None => Ok(v.out),
    }
}

struct Calls<'a> {
    dbt: String,
    source: &'a str,
    file: &'a str,
    /// Lines of the file before `source`.
    offset: u32,
    out: PythonModel,
    error: Option<DvtError>,
}

impl Calls<'_> {
    fn line(&self, e: &Expr) -> u32 {
        line_col(self.source, usize::from(ruff_text_size_start(e))).0 + self.offset
    }

    fn fail(&mut self, e: &Expr, msg: String) {
        if self.error.is_none() {
            let (line, col) = line_col(self.source, usize::from(ruff_text_size_start(e)));
            self.error = Some(
                DvtError::new(ErrorCode::PythonModelInvalid, msg)
                    .at(Location::new(self.file, line + self.offset, col))
                    .hint("dbt reads these calls without running the model: pass literal strings, numbers, booleans, lists or dicts"),
            );
        }
    }

    /// `dbt.<method>` or `dbt.config.<method>`: the method path after `dbt`.
    fn dbt_path(&self, func: &Expr) -> Option<Vec<String>> {
        let mut path = Vec::new();
        let mut cur = func;
        loop {
            match cur {
                Expr::Attribute(a) => {
                    path.push(a.attr.to_string());
                    cur = &a.value;
                }
                Expr::Name(n) if n.id.as_str() == self.dbt => break,
                _ => return None,
            }
        }
        path.reverse();
        Some(path)
    }
}

fn ruff_text_size_start(e: &Expr) -> ruff_text_size::TextSize {
    use ruff_text_size::Ranged;
    e.range().start()
}

/// A literal argument as JSON (`None` when it is not a literal).
fn literal(e: &Expr) -> Option<Json> {
    Some(match e {
        Expr::StringLiteral(s) => Json::from(s.value.to_str()),
        Expr::NumberLiteral(n) => match &n.value {
            Number::Int(i) => i.as_i64().map(Json::from)?,
            Number::Float(f) => Json::from(*f),
            Number::Complex { .. } => return None,
        },
        Expr::BooleanLiteral(b) => Json::from(b.value),
        Expr::NoneLiteral(_) => Json::Null,
        Expr::List(l) => Json::Array(l.elts.iter().map(literal).collect::<Option<_>>()?),
        Expr::Tuple(t) => Json::Array(t.elts.iter().map(literal).collect::<Option<_>>()?),
        Expr::Dict(d) => {
            let mut m = serde_json::Map::new();
            for item in &d.items {
                let k = literal(item.key.as_ref()?)?;
                m.insert(k.as_str()?.to_string(), literal(&item.value)?);
            }
            Json::Object(m)
        }
        _ => return None,
    })
}

impl<'a> Visitor<'a> for Calls<'_> {
    fn visit_expr(&mut self, expr: &'a Expr) {
        if let Expr::Call(call) = expr
            && let Some(path) = self.dbt_path(&call.func)
        {
            let args: Vec<Option<Json>> = call.arguments.args.iter().map(literal).collect();
            let strs: Option<Vec<String>> = args.iter().map(|a| a.as_ref().and_then(|j| j.as_str().map(str::to_string))).collect();
            let kw = |name: &str| call.arguments.keywords.iter().find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == name));
            let line = self.line(expr);
            match path.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["ref"] => match strs.as_deref() {
                    Some([name]) | Some([_, name]) => {
                        let package = if let Some([pkg, _]) = strs.as_deref() { Some(pkg.clone()) } else { None };
                        let version = kw("v").or_else(|| kw("version")).and_then(|k| literal(&k.value)).map(|v| match v {
                            Json::String(s) => s,
                            other => other.to_string(),
                        });
                        self.out.refs.push((RefCall { package, name: name.clone(), version }, line));
                    }
                    _ => self.fail(expr, "dbt.ref() takes one or two literal strings".into()),
                },
                ["source"] => match strs.as_deref() {
                    Some([s, t]) => self.out.sources.push((s.clone(), t.clone(), line)),
                    _ => self.fail(expr, "dbt.source() takes two literal strings".into()),
                },
                ["config"] => {
                    for k in &call.arguments.keywords {
                        match (k.arg.as_ref(), literal(&k.value)) {
                            (Some(name), Some(v)) => self.out.configs.push((name.to_string(), v)),
                            _ => return self.fail(expr, "dbt.config() takes keyword arguments with literal values".into()),
                        }
                    }
                }
                ["config", "get"] => match (args.first().cloned().flatten(), args.get(1).cloned().flatten()) {
                    (Some(Json::String(key)), default) => self.out.config_keys_used.push((key, default.unwrap_or(Json::Null))),
                    _ => self.fail(expr, "dbt.config.get() takes a literal key".into()),
                },
                _ => {}
            }
        }
        walk_expr(self, expr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_sources_and_configs_are_read_from_the_tree() {
        let src = "import pandas as pd\n\ndef model(dbt, session):\n    dbt.config(materialized='table', tags=['py'])\n    \
                   games = dbt.ref('nba_elo_rollforward')\n    other = dbt.ref('pkg', 'm', v=2)\n    raw = dbt.source('raw', 'games')\n    \
                   limit = dbt.config.get('limit', 10)\n    # dbt.ref('in_a_comment') is not a call\n    s = \"dbt.ref('in_a_string')\"\n    return games\n";
        let m = parse(src, "models/py.py", 1).unwrap();
        let refs: Vec<_> = m.refs.iter().map(|(r, l)| (r.package.clone(), r.name.clone(), r.version.clone(), *l)).collect();
        assert_eq!(refs, [(None, "nba_elo_rollforward".into(), None, 5), (Some("pkg".into()), "m".into(), Some("2".into()), 6)]);
        assert_eq!(m.sources, [("raw".to_string(), "games".to_string(), 7)]);
        assert_eq!(m.configs, [("materialized".to_string(), Json::from("table")), ("tags".to_string(), serde_json::json!(["py"]))]);
        assert_eq!(m.config_keys_used, [("limit".to_string(), Json::from(10))]);
    }

    #[test]
    fn bad_python_and_non_literal_arguments_are_errors_with_lines() {
        let e = parse("def model(dbt, session):\n    return dbt.ref(\n", "models/a.py", 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::PythonModelInvalid);
        let e = parse("def model(dbt, session):\n    name = 'x'\n    return dbt.ref(name)\n", "models/a.py", 3).unwrap_err();
        assert!(e.to_string().contains("models/a.py:5"), "{e}");
        let e = parse("x = 1\n", "models/a.py", 1).unwrap_err();
        assert!(e.to_string().contains("def model(dbt, session)"), "{e}");
    }
}
