//! Jinja2 constructs that minijinja does not accept as dbt writes them,
//! rewritten before parsing (one linear pass over the tags; text outside
//! tags and string literals inside them are never touched):
//!
//! - list and dict literals become mutable objects (`[a]` → `__dvt_list([a])`,
//!   `{}` → `__dvt_dict({})`), because dbt code mutates them in place
//!   (`{% do cols.append(c) %}`);
//! - `{% do <expr> %}` accepts any expression in Jinja2 (`{% do x.append(1)
//!   if flag %}`), minijinja only a call: it becomes `{% set __dvt_do = <expr> %}`,
//!   which evaluates the expression for its effect in the same way;
//! - a macro parameter whose default names another parameter (`name=schema_name`)
//!   gets it at call time, as in Jinja2: minijinja evaluates defaults before the
//!   other arguments are bound, so the default moves into the body
//!   (`{% if name is undefined %}{% set name = schema_name %}{% endif %}`).

use std::borrow::Cow;

/// A macro whose body uses `kwargs`/`varargs` gets them as parameters (Jinja2
/// collects extra arguments into them; [`super::macros`] packs them at call time).
pub fn declare_extra_arguments(src: &str) -> Cow<'_, str> {
    use std::sync::LazyLock;
    static OPEN: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"^(\{%[-+]?\s*macro\s+\w+\s*\()([^)]*)(\)\s*[-+]?%\})").expect("valid regex"));
    static WORD: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r"\b(kwargs|varargs)\b").expect("valid regex"));
    let Some(c) = OPEN.captures(src) else { return Cow::Borrowed(src) };
    let body = &src[c[0].len()..];
    let params = &c[2];
    let mut extra = String::new();
    for (name, default) in [("varargs", "[]"), ("kwargs", "{}")] {
        if WORD.captures_iter(body).any(|m| &m[1] == name) && !WORD.captures_iter(params).any(|m| &m[1] == name) {
            let sep = if params.trim().is_empty() && extra.is_empty() { "" } else { ", " };
            extra.push_str(&format!("{sep}{name}={default}"));
        }
    }
    if extra.is_empty() {
        return Cow::Borrowed(src);
    }
    Cow::Owned(format!("{}{params}{extra}{}{body}", &c[1], &c[3]))
}

/// Rewrites `src` so that minijinja parses it as Jinja2 would.
pub fn to_minijinja(src: &str) -> Cow<'_, str> {
    if !src.contains("{%") && !src.contains("{{") {
        return Cow::Borrowed(src);
    }
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 32);
    let mut last = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        let open = b[i] == b'{' && (b[i + 1] == b'{' || b[i + 1] == b'%');
        if !open {
            // `{# … #}` comments are skipped whole.
            if b[i] == b'{' && b[i + 1] == b'#' {
                i = find(b, i + 2, b"#}").map_or(b.len(), |e| e + 2);
                continue;
            }
            i += 1;
            continue;
        }
        let statement = b[i + 1] == b'%';
        let close: &[u8] = if statement { b"%}" } else { b"}}" };
        let mut j = i + 2;
        if statement {
            // `{% raw %}` blocks are left alone up to `endraw`.
            let kw = keyword_at(b, j);
            if kw.0 == "raw" {
                i = find(b, j, b"endraw").map_or(b.len(), |e| e + 6);
                continue;
            }
            if kw.0 == "macro"
                && let Some(end) = tag_end(b, j)
                && let Some(header) = macro_defaults_in_body(&src[i..end + 2])
            {
                out.push_str(&src[last..i]);
                out.push_str(&to_minijinja(&header));
                last = end + 2;
                i = last;
                continue;
            }
            if kw.0 == "do" {
                out.push_str(&src[last..kw.1]);
                out.push_str("set __dvt_do =");
                last = kw.1 + 2;
                j = last;
            }
        }
        // Brackets opened inside this tag: true for a literal we rewrote.
        let mut stack: Vec<bool> = Vec::new();
        let mut quote: Option<u8> = None;
        while j < b.len() {
            let c = b[j];
            if let Some(q) = quote {
                if c == b'\\' {
                    j += 1;
                } else if c == q {
                    quote = None;
                }
                j += 1;
                continue;
            }
            match c {
                b'\'' | b'"' => quote = Some(c),
                _ if stack.is_empty() && b[j..].starts_with(close) => break,
                b'[' | b'{' => {
                    let literal = c == b'{' || !prev_is_operand(b, j);
                    if literal {
                        out.push_str(&src[last..j]);
                        out.push_str(if c == b'[' { "__dvt_list([" } else { "__dvt_dict({" });
                        last = j + 1;
                    }
                    stack.push(literal);
                }
                b'(' => stack.push(false),
                b']' | b'}' | b')' if stack.pop() == Some(true) => {
                    out.push_str(&src[last..=j]);
                    out.push(')');
                    last = j + 1;
                }
                _ => {}
            }
            j += 1;
        }
        i = j + 2;
    }
    if last == 0 {
        return Cow::Borrowed(src);
    }
    out.push_str(&src[last..]);
    Cow::Owned(out)
}

/// Where the statement tag whose body starts at `j` closes (`%}`), skipping string literals.
fn tag_end(b: &[u8], mut j: usize) -> Option<usize> {
    while j + 1 < b.len() {
        match b[j] {
            b'\'' | b'"' => j = string_end(b, j),
            b'%' if b[j + 1] == b'}' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

/// The index after the string literal that opens at `start` (backslash escapes honoured).
fn string_end(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == q => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Identifiers outside string literals.
fn identifiers(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let c = b[i];
        if c == b'\'' || c == b'"' {
            i = string_end(b, i);
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            // `x.name` is an attribute, not the parameter `name`.
            if start == 0 || b[start - 1] != b'.' {
                out.push(&s[start..i]);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// `{% macro f(a, b=a) %}` → `{% macro f(a, b=__dvt_unset) %}{% if b is undefined %}{% set b = a %}{% endif %}`;
/// None when no default names another parameter.
fn macro_defaults_in_body(tag: &str) -> Option<String> {
    let b = tag.as_bytes();
    let open = tag.find('(')?;
    // Parameters: split at top-level commas up to the matching `)`.
    let (mut depth, mut params, mut start, mut close) = (0usize, Vec::new(), open + 1, None);
    let mut j = open + 1;
    while j < b.len() {
        match b[j] {
            b'\'' | b'"' => {
                j = string_end(b, j);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' if depth == 0 => {
                params.push(&tag[start..j]);
                close = Some(j);
                break;
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                params.push(&tag[start..j]);
                start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    let close = close?;
    let split: Vec<(&str, Option<&str>)> =
        params.iter().map(|p| p.split_once('=').map_or((p.trim(), None), |(n, d)| (n.trim(), Some(d.trim())))).collect();
    let names: Vec<&str> = split.iter().map(|(n, _)| *n).collect();
    let moved: Vec<(&str, &str)> = split
        .iter()
        .filter_map(|(n, d)| d.filter(|d| identifiers(d).iter().any(|w| w != n && names.contains(w))).map(|d| (*n, d)))
        .collect();
    if moved.is_empty() {
        return None;
    }
    let params: Vec<String> = split
        .iter()
        .map(|(n, d)| match d {
            Some(_) if moved.iter().any(|(m, _)| m == n) => format!("{n}=__dvt_unset"),
            Some(d) => format!("{n}={d}"),
            None => n.to_string(),
        })
        .collect();
    let tail = &tag[close + 1..];
    let trim = if tail.trim_end_matches("%}").trim_end().ends_with('-') { "-" } else { "" };
    let mut out = format!("{}{}){tail}", &tag[..=open], params.join(", "));
    for (k, (n, d)) in moved.iter().enumerate() {
        let last = if k + 1 == moved.len() { trim } else { "" };
        out.push_str(&format!("{{% if {n} is undefined %}}{{% set {n} = {d} %}}{{% endif {last}%}}"));
    }
    Some(out)
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The keyword after a tag's `{%` (skipping `-`/`+` and spaces), and where it starts.
fn keyword_at(b: &[u8], mut j: usize) -> (&str, usize) {
    if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
        j += 1;
    }
    while j < b.len() && b[j].is_ascii_whitespace() {
        j += 1;
    }
    let start = j;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        j += 1;
    }
    // A keyword is followed by whitespace (`do(x)` is not the `do` tag).
    if j < b.len() && !b[j].is_ascii_whitespace() {
        return ("", start);
    }
    (std::str::from_utf8(&b[start..j]).unwrap_or(""), start)
}

/// `x[0]` is a subscript, `[0]` after an operator a literal.
fn prev_is_operand(b: &[u8], j: usize) -> bool {
    b[..j]
        .iter()
        .rev()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b')' || *c == b']' || *c == b'}' || *c == b'\'' || *c == b'"')
}

#[cfg(test)]
mod tests {
    use super::to_minijinja;

    #[test]
    fn defaults_naming_other_parameters_are_bound_in_the_body() {
        assert_eq!(
            to_minijinja("{% macro m(a, b=a, c='x', d=a ~ 'y') -%}{{ b }}{% endmacro %}"),
            "{% macro m(a, b=__dvt_unset, c='x', d=__dvt_unset) -%}{% if b is undefined %}{% set b = a %}{% endif %}\
             {% if d is undefined %}{% set d = a ~ 'y' %}{% endif -%}{{ b }}{% endmacro %}"
        );
        // Strings, attributes and a parameter's own name are not references.
        assert_eq!(to_minijinja("{% macro m(a, b='a', c=x.a) %}{% endmacro %}"), "{% macro m(a, b='a', c=x.a) %}{% endmacro %}");
    }

    #[test]
    fn literals_become_mutable_only_inside_tags_and_outside_strings() {
        let s = "select '[]' {% set a = [] %}{% set b = {} %}{{ '[]' }}{{ x[0] }}{% set c = ['p', [1]] %}";
        assert_eq!(
            to_minijinja(s),
            "select '[]' {% set a = __dvt_list([]) %}{% set b = __dvt_dict({}) %}{{ '[]' }}{{ x[0] }}{% set c = __dvt_list(['p', __dvt_list([1])]) %}"
        );
    }

    #[test]
    fn dict_literal_in_an_expression_tag_keeps_its_closing_braces() {
        assert_eq!(to_minijinja("{{ f({'a': 1}) }}"), "{{ f(__dvt_dict({'a': 1})) }}");
        assert_eq!(to_minijinja("{{ {'a': 1}}}"), "{{ __dvt_dict({'a': 1})}}");
    }

    #[test]
    fn do_takes_any_expression() {
        assert_eq!(to_minijinja("{%- do opts.append(1) if m == true -%}"), "{%- set __dvt_do = opts.append(1) if m == true -%}");
        assert_eq!(to_minijinja("{% do x.update({}) %}"), "{% set __dvt_do = x.update(__dvt_dict({})) %}");
    }

    #[test]
    fn macros_using_kwargs_take_extra_arguments() {
        let src = "{% macro t(model, by=[]) %}{{ f(model, **kwargs) }}{% endmacro %}";
        assert_eq!(super::declare_extra_arguments(src), "{% macro t(model, by=[], kwargs={}) %}{{ f(model, **kwargs) }}{% endmacro %}");
        let plain = "{% macro t(model) %}{{ model }}{% endmacro %}";
        assert_eq!(super::declare_extra_arguments(plain), plain);
    }

    #[test]
    fn comments_and_raw_blocks_are_untouched() {
        let s = "{# {% do [x] %} #}{% raw %}{{ [1] }}{% endraw %}";
        assert_eq!(to_minijinja(s), s);
    }

    #[test]
    fn rewritten_templates_render_like_jinja2() {
        let mut env = minijinja::Environment::new();
        env.add_function("__dvt_list", super::super::mutable::new_list);
        env.add_function("__dvt_dict", super::super::mutable::new_dict);
        let src = "{% set opts = ['a'] %}{% do opts.append('b') if flag %}{% do opts.append('c') if not flag %}{{ opts | join(',') }}";
        let out = env.render_str(&to_minijinja(src), minijinja::context! { flag => true }).unwrap();
        assert_eq!(out, "a,b");
    }
}
