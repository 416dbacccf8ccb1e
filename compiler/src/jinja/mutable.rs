//! Mutable lists and dicts. dbt code mutates collections in place
//! (`{% do cols.append(c) %}`, `{% do d.update(x) %}`), which minijinja's
//! immutable values do not allow. Empty literals `[]`/`{}` in templates are
//! rewritten to these objects, which support Python's mutating methods.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

/// A list with `append`, `extend`, `insert`, `pop`, `remove`.
#[derive(Debug, Default)]
pub struct MutList(Mutex<Vec<Value>>);

/// A dict with `update`, `pop`, `setdefault` and item assignment via `update`.
#[derive(Debug, Default)]
pub struct MutDict(Mutex<IndexMap<Value, Value>>);

fn unknown() -> Error {
    Error::from(ErrorKind::UnknownMethod)
}

impl Object for MutList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let v = self.0.lock().ok()?;
        let i = i64::try_from(key.clone()).ok()?;
        let i = if i < 0 { v.len() as i64 + i } else { i };
        v.get(usize::try_from(i).ok()?).cloned()
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.lock().map(|v| v.clone()).unwrap_or_default())
    }
    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.0.lock().ok().map(|v| v.len())
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let mut v = self.0.lock().map_err(|_| unknown())?;
        match method {
            "append" => v.push(args.first().cloned().unwrap_or_default()),
            "extend" => {
                if let Some(a) = args.first() {
                    v.extend(a.try_iter()?);
                }
            }
            "insert" => {
                let i = args.first().and_then(|i| usize::try_from(i.clone()).ok()).unwrap_or(0).min(v.len());
                v.insert(i, args.get(1).cloned().unwrap_or_default());
            }
            "pop" => {
                let out = match args.first().and_then(|i| i64::try_from(i.clone()).ok()) {
                    Some(i) if i >= 0 && (i as usize) < v.len() => Some(v.remove(i as usize)),
                    _ => v.pop(),
                };
                return out.ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "pop from empty list"));
            }
            "remove" => {
                if let Some(pos) = args.first().and_then(|x| v.iter().position(|e| e == x)) {
                    v.remove(pos);
                }
            }
            "clear" => v.clear(),
            "reverse" => v.reverse(),
            "index" => {
                return args
                    .first()
                    .and_then(|x| v.iter().position(|e| e == x))
                    .map(Value::from)
                    .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "value not in list"));
            }
            "count" => return Ok(Value::from(args.first().map_or(0, |x| v.iter().filter(|e| *e == x).count()))),
            _ => return Err(unknown()),
        }
        Ok(Value::from(()))
    }
}

impl Object for MutDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.lock().ok()?.get(key).cloned()
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }
    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.0.lock().ok().map(|m| m.len())
    }
    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        let mut m = self.0.lock().map_err(|_| unknown())?;
        match method {
            "update" => {
                for a in args {
                    if let Ok(kw) = minijinja::value::Kwargs::try_from(a.clone()) {
                        for k in kw.args() {
                            m.insert(Value::from(k), kw.peek::<Value>(k)?);
                        }
                    } else {
                        for k in a.try_iter()? {
                            let v = a.get_item(&k)?;
                            m.insert(k, v);
                        }
                    }
                }
                Ok(Value::from(()))
            }
            "pop" => {
                let k = args.first().cloned().unwrap_or_default();
                Ok(m.shift_remove(&k).or_else(|| args.get(1).cloned()).unwrap_or_default())
            }
            "setdefault" => {
                let k = args.first().cloned().unwrap_or_default();
                Ok(m.entry(k).or_insert_with(|| args.get(1).cloned().unwrap_or_default()).clone())
            }
            "clear" => {
                m.clear();
                Ok(Value::from(()))
            }
            _ => Err(unknown()),
        }
    }
}

/// Rewrites empty `[]` / `{}` literals inside Jinja tags to mutable objects.
/// Text outside tags and string literals inside them are left untouched.
pub fn rewrite_empty_literals(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains("[]") && !src.contains("{}") {
        return std::borrow::Cow::Borrowed(src);
    }
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 16);
    let mut i = 0;
    let mut last = 0;
    while i + 1 < b.len() {
        let open = b[i] == b'{' && (b[i + 1] == b'{' || b[i + 1] == b'%');
        if !open {
            i += 1;
            continue;
        }
        let close: &[u8] = if b[i + 1] == b'{' { b"}}" } else { b"%}" };
        let mut j = i + 2;
        let mut quote: Option<u8> = None;
        while j < b.len() {
            let c = b[j];
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) if c == b'\\' => j += 1,
                Some(_) => {}
                None if c == b'\'' || c == b'"' => quote = Some(c),
                None if b[j..].starts_with(close) => break,
                None if b[j..].starts_with(b"[]") && !prev_is_operand(b, j) => {
                    out.push_str(&src[last..j]);
                    out.push_str("__dvt_list()");
                    j += 2;
                    last = j;
                    continue;
                }
                None if b[j..].starts_with(b"{}") => {
                    out.push_str(&src[last..j]);
                    out.push_str("__dvt_dict()");
                    j += 2;
                    last = j;
                    continue;
                }
                None => {}
            }
            j += 1;
        }
        i = j + 2;
    }
    out.push_str(&src[last..]);
    std::borrow::Cow::Owned(out)
}

/// `x[]` is not a literal (and not valid Jinja either); only rewrite after an operator.
fn prev_is_operand(b: &[u8], j: usize) -> bool {
    b[..j]
        .iter()
        .rev()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b')' || *c == b']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_inside_tags_and_outside_strings() {
        let s = "select '[]' {% set a = [] %}{% set b = {} %}{{ '[]' }}{{ x[0] }}";
        assert_eq!(rewrite_empty_literals(s), "select '[]' {% set a = __dvt_list() %}{% set b = __dvt_dict() %}{{ '[]' }}{{ x[0] }}");
    }
}
