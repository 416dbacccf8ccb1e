//! Which templates may query the database while they render: a conservative
//! reading of the macro call graph. dbt renders hooks only when their node
//! runs, so a hook that calls `run_query` (elementary's `upload_dbt_columns`,
//! a `grant` macro that reads the catalog, …) must not be rendered by the
//! compiler: offline it cannot finish, and with a live connection it would
//! write to the database at compile time.
//!
//! Names are matched without packages, and `adapter.dispatch('x')` is followed
//! to every `<adapter>__x`: a template is flagged if anything it might call
//! reaches a database call. A false "may query" only moves a hook to run time.

use std::collections::{HashMap, HashSet};

use super::macros::MacroIndex;

/// Functions of the context that talk to the database.
const DB_FUNCTIONS: &[&str] = &["run_query", "statement", "load_result", "load_relation", "load_cached_relation"];

/// `adapter.<method>` calls that talk to the database (as `functions::Adapter` answers them).
const DB_ADAPTER_METHODS: &[&str] = &[
    "get_relation",
    "get_columns_in_relation",
    "get_missing_columns",
    "list_relations_without_caching",
    "get_relations_by_pattern",
    "check_schema_exists",
    "list_schemas",
    "drop_relation",
    "truncate_relation",
    "rename_relation",
    "execute",
    "create_schema",
    "drop_schema",
    "expand_target_column_types",
    "already_exists",
];

/// Macro names (any package) whose rendering may reach the database.
#[derive(Debug, Default)]
pub struct DbReach {
    reaching: HashSet<String>,
}

impl DbReach {
    /// Reads every macro of the index once.
    pub fn new(index: &MacroIndex) -> DbReach {
        // token -> names of the macros that mention it
        let mut mentioned_by: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut reaching: HashSet<String> = HashSet::new();
        let mut queue: Vec<String> = Vec::new();
        for d in index.defs.values() {
            let mut direct = false;
            for_each_token(&d.source, |t, adapter_method| {
                direct |= is_db_call(t, adapter_method);
                mentioned_by.entry(t).or_default().push(&d.name);
            });
            if direct && reaching.insert(d.name.clone()) {
                queue.push(d.name.clone());
            }
        }
        while let Some(name) = queue.pop() {
            // `default__x` reaching the database means `adapter.dispatch('x')` may too.
            let mut also: Vec<&str> = mentioned_by.get(name.as_str()).map(|v| v.to_vec()).unwrap_or_default();
            let dispatched = name.split_once("__").map(|(_, x)| x.to_string());
            if let Some(x) = &dispatched {
                also.extend(mentioned_by.get(x.as_str()).into_iter().flatten());
            }
            for caller in also {
                if reaching.insert(caller.to_string()) {
                    queue.push(caller.to_string());
                }
            }
            if let Some(x) = dispatched
                && reaching.insert(x.clone())
            {
                queue.push(x);
            }
        }
        DbReach { reaching }
    }

    /// The first name in `template` whose rendering may query the database.
    pub fn may_query<'a>(&self, template: &'a str) -> Option<&'a str> {
        let mut hit = None;
        for_each_token(template, |t, adapter_method| {
            if hit.is_none() && (is_db_call(t, adapter_method) || self.reaching.contains(t)) {
                hit = Some(t);
            }
        });
        hit
    }
}

fn is_db_call(token: &str, adapter_method: bool) -> bool {
    if adapter_method { DB_ADAPTER_METHODS.contains(&token) } else { DB_FUNCTIONS.contains(&token) }
}

/// Calls `f` with each identifier and each word of a string literal inside the
/// Jinja tags of `text` (`{{ }}`, `{% %}`; SQL around them is not code), and
/// whether the identifier follows `adapter.`.
fn for_each_token<'a>(text: &'a str, mut f: impl FnMut(&'a str, bool)) {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(open) = find_open(b, i) {
        let close_tag: &[u8] = if b[open + 1] == b'{' { b"}}" } else { b"%}" };
        let end = find(b, open + 2, close_tag).unwrap_or(b.len());
        let mut j = open + 2;
        let mut prev_adapter = false;
        while j < end {
            let c = b[j];
            if c.is_ascii_alphabetic() || c == b'_' {
                let s = j;
                while j < end && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let word = &text[s..j];
                let after_dot = s > 0 && b[s - 1] == b'.';
                f(word, after_dot && prev_adapter);
                prev_adapter = word == "adapter";
            } else {
                if c != b'.' && !c.is_ascii_whitespace() {
                    prev_adapter = false;
                }
                j += 1;
            }
        }
        i = (end + 2).min(b.len());
    }
}

fn find_open(b: &[u8], from: usize) -> Option<usize> {
    (from..b.len().saturating_sub(1)).find(|&k| b[k] == b'{' && (b[k + 1] == b'{' || b[k + 1] == b'%'))
}

fn find(b: &[u8], from: usize, pat: &[u8]) -> Option<usize> {
    b.get(from..)?.windows(pat.len()).position(|w| w == pat).map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jinja::MacroDef;

    fn index(macros: &[(&str, &str)]) -> MacroIndex {
        let mut ix = MacroIndex::default();
        for (name, source) in macros {
            let d = MacroDef { package: "p".into(), name: name.to_string(), file: String::new(), line: 1, source: source.to_string() };
            ix.defs.insert(d);
        }
        ix
    }

    #[test]
    fn follows_calls_and_dispatch_to_database_calls() {
        let ix = index(&[
            ("upload", "{% macro upload() %}{% do p.insert_rows(1) %}{% endmacro %}"),
            ("insert_rows", "{% macro insert_rows(x) %}{{ return(adapter.dispatch('insert_rows', 'p')(x)) }}{% endmacro %}"),
            ("default__insert_rows", "{% macro default__insert_rows(x) %}{% do run_query('insert') %}{% endmacro %}"),
            ("cols", "{% macro cols(r) %}{{ adapter.get_columns_in_relation(r) }}{% endmacro %}"),
            ("quoted", "{% macro quoted(x) %}select run_query from t where {{ x }}{% endmacro %}"),
            ("pure", "{% macro pure(x) %}{{ adapter.quote(x) }} -- run_query{% endmacro %}"),
        ]);
        let reach = DbReach::new(&ix);
        assert_eq!(reach.may_query("{{ p.upload() }}"), Some("upload"));
        assert_eq!(reach.may_query("{{ insert_rows(3) }}"), Some("insert_rows"));
        assert_eq!(reach.may_query("{% set c = cols(this) %}"), Some("cols"));
        assert_eq!(reach.may_query("{% call statement('x') %}select 1{% endcall %}"), Some("statement"));
        assert_eq!(reach.may_query("{{ quoted('a') }}"), None, "SQL text outside tags is not code");
        assert_eq!(reach.may_query("{{ pure('a') }}"), None);
        assert_eq!(reach.may_query("grant select on {{ this }} to reporter"), None);
        assert_eq!(reach.may_query("{{ adapter.quote('get_relation') }}"), None, "a quoted word is a call only after `adapter.`");
    }
}
