//! The fast reader against serde-saphyr: wherever it answers, it answers the same.

use serde_json::Value as Json;

use super::fast;
use crate::loader::properties::PropertiesFile;

fn saphyr<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_saphyr::from_str_with_options::<Option<T>>(text, super::options()).ok().flatten()
}

fn fast<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    super::parse_fast(text)
}

/// Checks `text` both ways; true when the fast reader answered.
fn same(text: &str, what: &str) -> bool {
    let quick: Option<Json> = fast(text);
    if let Some(q) = &quick {
        assert_eq!(Some(q), saphyr::<Json>(text).as_ref(), "{what}: the fast reader differs from serde-saphyr on:\n{text}");
    }
    if let Some(q) = fast::<PropertiesFile>(text) {
        let full = saphyr::<PropertiesFile>(text);
        assert_eq!(Some(format!("{q:?}")), full.map(|f| format!("{f:?}")), "{what}: properties differ on:\n{text}");
    }
    quick.is_some()
}

#[test]
fn reads_what_dbt_projects_write_as_serde_saphyr_does() {
    let cases = [
        "version: 2\nmodels:\n  - name: a\n    description: '{{ doc(\"x\") }}'\n    columns:\n      - name: id\n        data_tests:\n          - unique\n          - not_null\n      - name: c\n        data_tests:\n          - accepted_values:\n              values: ['a', 'b''s', \"c\\\"d\"]\n          - relationships:\n              to: ref('m')\n              field: id\n",
        "models:\n- name: a\n  config:\n    materialized: table\n    tags: [x, z]\n    meta: {owner: me, n: 3, f: 1.5, neg: -2, t: true, nothing: null, tilde: ~}\n",
        "x:\n  - a # comment\n  - 'b' # comment\n  -\n    k: v\n  - k2: v2\n    k3:\n      - 1\n      - 0\n",
        "# leading comment\n\nname: p\nversion: '1.0.0'\nconfig-version: 2\nmodels:\n  p:\n    +materialized: view\n    staging:\n      +schema: stg\n",
        "d: |\n  line one\n    indented\n\n  after blank\ne: 1\n",
        "d: |-\n  stripped\ne: 1\n",
        "d: >\n  folded one\n  folded two\n\n  para\ne: 1\n",
        "d: >-\n  folded\n  text\ne: 1\n",
        "a: http://x.y/z\nb: a:b\nc: x # y\nd: 'q' #c\n",
        "seq:\n- a\n- b\nnext: 1\n",
        "e: []\nf: {}\ng: [[1, 2], {a: b}]\n",
        "k: \"tab\\tnew\\nline\\\\ \\/\"\n",
        "n: 0\nm: 18446744073709551615\nq: -9223372036854775807\nr: 0.25\n",
        "a: ../x\nb: ./duck.db\nc: 2=2\nd: + col_b = 1\ne: 1:20\nf: 2024-01-01 10:00:00\ng: -x y\nh: .hidden/\n",
        "a: multi\n  line\n\n  para\n   deeper\nb: 1\n",
        "x:\n  - multi\n    line\n  - k: v\n      w\n",
        "a: 'multi\n    line''s\n\n    end'\nb: \"two\n    lines \\\"q\\\"\" # c\n",
        "caf\u{e9}: \u{fc}ber\nname: \u{e9}t\u{e9}\n",
    ];
    for (i, text) in cases.iter().enumerate() {
        assert!(same(text, &format!("case {i}")), "case {i} should be read by the fast reader:\n{text}");
    }
}

#[test]
fn leaves_everything_else_to_serde_saphyr() {
    // Valid YAML outside the subset, and invalid YAML: never answered here.
    let cases = [
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "---\na: 1\n",
        "a: 1\n...\n",
        "a: yes\n",
        "a: [x, y]\n",
        "a: On\n",
        "a: 0x1F\n",
        "a: 1_000\n",
        "a: 007\n",
        "a: .inf\n",
        "a: 1e3\n",
        "a: +1\n",
        "a: 2024-01-01\n",
        "a: 127.0.0.1\n",
        "a: .5\n",
        "a: 1.\n",
        "a: -.inf\n",
        "a: multi\n  - line\n",
        "a: multi # c\n  line\n",
        "a: multi\n  # c\n  line\n",
        "a: 'multi\nline'\n",
        "a: \"multi\\\n  line\"\n",
        "a: 'multi\n  line' x\n",
        "a:\tb\n",
        "a: 1\na: 2\n",
        "a: b: c\n",
        "a:\n  - x\n   - y\n",
        "a:\n    b: 1\n  c: 2\n",
        "a: [1, 2\n",
        "a: [1, 2,]\n",
        "a: 'unterminated\n",
        "a: \"\\x41\"\n",
        "a: |+\n  keep\nb: 1\n",
        "a: |2\n  x\nb: 1\n",
        "a: |\n  at the end\n",
        "? complex\n: key\n",
        "<<: {a: 1}\n",
        "~: 1\n",
        "a: {{ doc('x') }}\n",
        "just a scalar\n",
        "- - nested\n",
        "a: - b\n",
        "a : 1\n",
        "a: @x\n",
        "a: b\r\n",
    ];
    for text in cases {
        assert!(
            fast::parse(text).is_none_or(|n| <Json as serde::Deserialize>::deserialize(n).is_err()),
            "the fast reader should decline:\n{text}"
        );
        same(text, "declined case");
    }
}

#[test]
fn keeps_the_position_of_names() {
    let text = "models:\n  - name: first\n  - description: x\n    name: 'second'\n  - {name: third}\n";
    let props: PropertiesFile = fast(text).expect("in the subset");
    let at: Vec<(u32, u32)> = props.models.iter().map(|m| (m.name.line, m.name.column)).collect();
    let full: PropertiesFile = saphyr(text).expect("valid");
    let expected: Vec<(u32, u32)> = full.models.iter().map(|m| (m.name.line, m.name.column)).collect();
    assert_eq!(at, expected);
    assert_eq!(at[0], (2, 11));
}

/// Every YAML file of this repository (examples, tests, fixtures, and the projects the
/// compatibility suite fetched, when present), read both ways.
#[test]
fn reads_every_yaml_file_of_the_repository_as_serde_saphyr_does() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut stack = vec![root];
    let (mut files, mut answered) = (0, 0);
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if !matches!(name.as_str(), "target" | ".git" | "node_modules" | "dbtvenv" | "pyduckdb" | "services") {
                    stack.push(p);
                }
            } else if name.ends_with(".yml") || name.ends_with(".yaml") {
                let Ok(text) = std::fs::read_to_string(&p) else { continue };
                files += 1;
                answered += usize::from(same(&text, &p.display().to_string()));
            }
        }
    }
    eprintln!("the fast reader answered {answered} of {files} YAML files");
    assert!(files > 20, "found {files} YAML files");
    // Most files are in the subset (the rest are read by serde-saphyr).
    assert!(answered * 2 > files, "the fast reader answered {answered} of {files} files");
}
