//! Mutable lists and dicts. dbt code mutates collections in place
//! (`{% do cols.append(c) %}`, `{% do d.update(x) %}`), which minijinja's
//! immutable values do not allow. List and dict literals in templates are
//! rewritten to these objects (see [`super::compat`]), which support Python's
//! mutating methods.

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

/// `__dvt_list(items?)`: a mutable copy of `items` (the rewritten `[...]` literal).
pub fn new_list(items: Option<Value>) -> Result<Value, Error> {
    let v: Vec<Value> = match items {
        Some(i) if !i.is_undefined() && !i.is_none() => i.try_iter()?.collect(),
        _ => Vec::new(),
    };
    Ok(Value::from_object(MutList(Mutex::new(v))))
}

/// `__dvt_dict(map?)`: a mutable copy of `map` (the rewritten `{...}` literal).
pub fn new_dict(map: Option<Value>) -> Result<Value, Error> {
    let mut m = IndexMap::new();
    if let Some(map) = map.filter(|m| !m.is_undefined() && !m.is_none()) {
        for k in map.try_iter()? {
            let v = map.get_item(&k)?;
            m.insert(k, v);
        }
    }
    Ok(Value::from_object(MutDict(Mutex::new(m))))
}

/// JSON as Python would hold it: every dict and list mutable, all the way down
/// (packages update the `meta` dicts of the graph's columns in place).
pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Object(m) => {
            Value::from_object(MutDict(Mutex::new(m.iter().map(|(k, x)| (Value::from(k.as_str()), from_json(x))).collect())))
        }
        serde_json::Value::Array(a) => Value::from_object(MutList(Mutex::new(a.iter().map(from_json).collect()))),
        other => super::to_value(other),
    }
}

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
                if let Some(v) = m.get(&k) {
                    return Ok(v.clone());
                }
                // What is stored is usually mutated next (`d.setdefault(k, {}).update(…)`).
                let default = args.get(1).cloned().unwrap_or_default();
                let v = if default.kind() == minijinja::value::ValueKind::Map { new_dict(Some(default))? } else { default };
                Ok(m.entry(k).or_insert(v).clone())
            }
            "clear" => {
                m.clear();
                Ok(Value::from(()))
            }
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_dicts_mutate_in_place() {
        let mut env = minijinja::Environment::new();
        env.add_function("__dvt_list", new_list);
        env.add_function("__dvt_dict", new_dict);
        let tmpl = "{% set a = __dvt_list(['x']) %}{% set _ = a.append('y') %}{% set d = __dvt_dict({'k': 1}) %}{% set _ = d.update({'j': 2}) %}{{ a | join(',') }} {{ d | list | join(',') }} {{ a | length }}";
        assert_eq!(env.render_str(tmpl, ()).unwrap(), "x,y k,j 2");
    }
}
