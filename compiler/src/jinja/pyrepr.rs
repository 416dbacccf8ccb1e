//! Values printed as Python prints them, because dbt's Jinja is Python's:
//! `{{ true }}` is `True`, `{{ none }}` is `None`, `{{ ['a', 1] }}` is
//! `['a', 1]`, `{{ {'k': 'v'} }}` is `{'k': 'v'}` — minijinja would print
//! `true`, ``, `["a", 1]` and `{"k": "v"}`. Compiled SQL (and Python models'
//! compiled code) must match dbt's byte for byte.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, Output, State};

use super::relation::Relation;

/// Python's `repr()` of a string: single quotes unless it holds `'` and no `"`.
pub fn str_repr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    str_repr_into(&mut out, s);
    out
}

/// [`str_repr`], appended to `out`.
pub fn str_repr_into(out: &mut String, s: &str) {
    let q = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(q);
}

/// Whether `v` prints differently in Python (and is plain data, not a relation).
fn is_python_shaped(v: &Value) -> bool {
    match v.kind() {
        ValueKind::Bool | ValueKind::None => true,
        ValueKind::Seq | ValueKind::Map => v.downcast_object_ref::<Relation>().is_none(),
        _ => false,
    }
}

/// Python's `repr()` of a value.
pub fn repr(v: &Value) -> String {
    match v.kind() {
        ValueKind::Bool => if v.is_true() { "True" } else { "False" }.into(),
        ValueKind::None => "None".into(),
        ValueKind::String => str_repr(v.as_str().unwrap_or_default()),
        ValueKind::Seq if is_python_shaped(v) => {
            let items: Vec<String> = v.try_iter().map(|it| it.map(|x| repr(&x)).collect()).unwrap_or_default();
            // A tuple literal (`('a', 'b')`, `in ('x',)`) prints as Python prints tuples.
            match (v.is_tuple(), items.len()) {
                (true, 1) => format!("({},)", items[0]),
                (true, _) => format!("({})", items.join(", ")),
                (false, _) => format!("[{}]", items.join(", ")),
            }
        }
        ValueKind::Map if is_python_shaped(v) => {
            let items: Vec<String> = v
                .try_iter()
                .map(|it| it.map(|k| format!("{}: {}", repr(&k), repr(&v.get_item(&k).unwrap_or_default()))).collect())
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => v.to_string(),
    }
}

/// The environment's formatter: Python's `str()` for booleans, None, lists and
/// dicts; everything else as minijinja prints it.
pub fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if is_python_shaped(value) && !value.is_undefined() {
        return out.write_str(&repr(value)).map_err(Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_print_as_python_prints_them() {
        let mut env = minijinja::Environment::new();
        env.set_formatter(super::formatter);
        let out = env
            .render_str(
                "{{ true }} {{ none }} {{ ['a', 1, none] }} {{ {'k': \"it's\"} }} {{ 1.5 }} {{ 'x' }} [{{ undefined_var }}] {{ ('a', 'b') }} {{ ('a',) }}",
                (),
            )
            .unwrap();
        assert_eq!(out, "True None ['a', 1, None] {'k': \"it's\"} 1.5 x [] ('a', 'b') ('a',)");
    }
}
