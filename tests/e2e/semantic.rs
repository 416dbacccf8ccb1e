//! Exposures, groups and dbt's semantic layer (semantic models, metrics, saved
//! queries) in `manifest.json` and in dbt's `graph` variable, checked against what
//! dbt-core 1.11 writes for the same project (`fixtures/semantic_layer/expected`).

use std::process::Command;

use crate::support::*;

fn without_created_at(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            m.iter().filter(|(k, _)| *k != "created_at").map(|(k, x)| (k.clone(), without_created_at(x))).collect()
        }
        serde_json::Value::Array(a) => a.iter().map(without_created_at).collect(),
        other => other.clone(),
    }
}

#[test]
fn semantic_layer_exposures_and_groups_are_listed_as_dbt_lists_them() {
    let (_tmp, dir) = scratch_copy(&fixture("semantic_layer"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("semantic_layer").join("expected/manifest_sections.json")).unwrap()).unwrap();
    for command in ["parse", "compile"] {
        let r = dvtc(&dir, &[command]);
        assert_eq!(r.code, 0, "{command}: {} {}", r.stdout, r.stderr);
        if command == "parse" {
            assert!(r.stdout.contains("1 exposure, 6 metrics, 1 group, 1 semantic model, 1 saved query"), "{}", r.stdout);
        }
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
        for (section, want) in expected.as_object().unwrap() {
            match section.as_str() {
                "parent_map" | "child_map" => {
                    for (id, edges) in want.as_object().unwrap() {
                        assert_eq!(&m[section][id], edges, "{command}: {section}[{id}]");
                    }
                }
                _ => {
                    let got = without_created_at(&m[section]);
                    for (id, entry) in want.as_object().unwrap() {
                        assert_eq!(&got[id], entry, "{command}: {section}[{id}] differs from dbt's");
                    }
                    assert_eq!(got.as_object().map(|o| o.len()), want.as_object().map(|o| o.len()), "{command}: {section}");
                }
            }
        }
    }
    // MetricFlow's input, as dbt writes it (lists compared by name: dbt's follow its file walk).
    let by_name = |v: &serde_json::Value| -> serde_json::Value {
        let mut v = v.clone();
        for list in ["semantic_models", "metrics", "saved_queries"] {
            if let Some(a) = v[list].as_array_mut() {
                a.sort_by(|x, y| x["name"].as_str().cmp(&y["name"].as_str()));
            }
        }
        v
    };
    let read = |p: std::path::PathBuf| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    assert_eq!(
        by_name(&read(dir.join("target/semantic_manifest.json"))),
        by_name(&read(fixture("semantic_layer").join("expected/semantic_manifest.json")))
    );
    // dbt's `graph` holds them too (what dbt-project-evaluator and friends read).
    let got = std::fs::read_to_string(dir.join("target/compiled/semantic_proj/models/marts/graph_counts.sql")).unwrap();
    let want = std::fs::read_to_string(fixture("semantic_layer").join("expected/graph_counts.sql")).unwrap();
    assert_eq!(got, want);

    // `ls` lists them, and selects through them, in dbt's order.
    for (args, file) in [
        (vec!["ls"], "ls_all.txt"),
        (vec!["ls", "-s", "+exposure:finance_dashboard"], "ls_upstream_of_exposure.txt"),
        (vec!["ls", "-s", "raw_orders+"], "ls_downstream_of_raw_orders.txt"),
    ] {
        let r = dvtc(&dir, &args);
        let want = std::fs::read_to_string(fixture("semantic_layer").join("expected").join(file)).unwrap();
        assert_eq!(r.stdout, want, "{args:?}: {}", r.stderr);
    }
    // A run selected upstream of an exposure compiles exactly the models it reads.
    let r = dvtc(&dir, &["compile", "-s", "+exposure:finance_dashboard", "--output", "upstream.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("upstream.json")).unwrap()).unwrap();
    let order: Vec<&str> = plan["order"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(order, ["model.semantic_proj.raw_orders", "model.semantic_proj.orders", "model.semantic_proj.customers"]);

    // dbt's own artifact reader accepts the sections.
    let py = std::env::var("DVT_TEST_PYTHON")
        .expect("DVT_TEST_PYTHON is not set: run `make test` (scripts/py_duckdb.sh installs dbt-artifacts-parser)");
    let script = format!(
        "import json\nfrom dbt_artifacts_parser.parser import parse_manifest\nm = parse_manifest(json.load(open({:?})))\n\
         print(len(m.semantic_models), len(m.metrics), len(m.saved_queries), len(m.exposures), len(m.groups))\n\
         print(m.metrics['metric.semantic_proj.revenue_growth'].type_params.metrics[1].offset_window.granularity)",
        dir.join("target/manifest.json").display().to_string()
    );
    let out = Command::new(py).arg("-c").arg(script).output().expect("python runs");
    assert!(out.status.success(), "dbt-artifacts-parser rejected the manifest: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 6 1 1 1\nmonth\n");
}

/// `config: {enabled: false}`: listed under `disabled` (unresolved), as dbt lists it, and nowhere else.
#[test]
fn disabled_metrics_and_exposures_are_listed_disabled() {
    let (_tmp, dir) = scratch_copy(&fixture("semantic_layer"));
    let file = dir.join("models/marts/orders.yml");
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "  - name: revenue_7d",
        "  - name: old_metric\n    label: Old\n    type: simple\n    type_params:\n      measure: order_total\n    config:\n      enabled: false\n  - name: revenue_7d",
        1,
    ) + "  - name: old_dashboard\n    type: dashboard\n    owner:\n      email: x@example.com\n    depends_on:\n      - ref('orders')\n    config:\n      enabled: false\n";
    std::fs::write(&file, text).unwrap();
    let r = dvtc(&dir, &["parse"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("semantic_layer").join("expected/disabled.json")).unwrap()).unwrap();
    for (id, entry) in want.as_object().unwrap() {
        assert_eq!(&without_created_at(&m["disabled"][id]), entry, "disabled[{id}] differs from dbt's");
        let section = if id.starts_with("metric.") { "metrics" } else { "exposures" };
        assert!(m[section].get(id).is_none() && m["parent_map"].get(id).is_none(), "{id} is listed as enabled");
    }
    let ls = dvtc(&dir, &["ls"]).stdout;
    assert!(!ls.contains("old_metric") && !ls.contains("old_dashboard"), "{ls}");
}

#[test]
fn semantic_declarations_naming_what_does_not_exist_are_located_errors() {
    for (needle, replacement, code, message) in [
        ("model: ref('orders')", "model: ref('no_such_model')", "DVT130", "semantic model `orders` refers to `no_such_model`"),
        (
            "      measure: order_total\n  - name: food_revenue",
            "      measure: no_such_measure\n  - name: food_revenue",
            "DVT102",
            "`no_such_measure`",
        ),
        ("      - ref('customers')", "      - ref('nobody')", "DVT130", "exposure `finance_dashboard` refers to `nobody`"),
        ("        - food_share", "        - no_such_metric", "DVT102", "metric `no_such_metric`"),
    ] {
        let (_tmp, dir) = scratch_copy(&fixture("semantic_layer"));
        let file = dir.join("models/marts/orders.yml");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(needle), "{needle}");
        std::fs::write(&file, text.replacen(needle, replacement, 1)).unwrap();
        let r = dvtc(&dir, &["compile"]);
        assert_eq!(r.code, 2, "{replacement}: {} {}", r.stdout, r.stderr);
        assert!(r.stderr.contains(code) && r.stderr.contains(message), "{replacement}: {}", r.stderr);
        assert!(r.stderr.contains("models/marts/orders.yml:"), "located: {}", r.stderr);
        assert!(!dir.join("target/manifest.json").exists(), "no manifest after a failed parse");
    }
}
