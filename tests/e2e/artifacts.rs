//! dbt-shaped artifacts read by dbt's own tooling: `target/manifest.json` loads
//! with `dbt-artifacts-parser` as manifest v12, and what it holds (nodes,
//! dependencies, relations) agrees with DVT's own manifest; `run_results.json`
//! loads as run results v6.

use std::process::Command;

use crate::support::*;

/// Parses `manifest` with dbt-artifacts-parser; prints "<class> <nodes> <sources> <macros>" and
/// the parents of `probe`.
fn parse_with_dbt_tooling(manifest: &std::path::Path, probe: &str) -> String {
    let py = std::env::var("DVT_TEST_PYTHON")
        .expect("DVT_TEST_PYTHON is not set: run `make test` (scripts/py_duckdb.sh installs dbt-artifacts-parser)");
    let script = format!(
        "import json\nfrom dbt_artifacts_parser.parser import parse_manifest\nm = parse_manifest(json.load(open({:?})))\n\
         print(type(m).__name__, len(m.nodes), len(m.sources), len(m.macros))\nprint(sorted(m.parent_map[{probe:?}]))\n\
         print(m.nodes[{probe:?}].relation_name)",
        manifest.display().to_string()
    );
    let out = Command::new(py).arg("-c").arg(script).output().expect("python runs");
    assert!(out.status.success(), "dbt-artifacts-parser rejected {}: {}", manifest.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn manifest_is_dbt_v12_for_dbt_tooling() {
    for (example, probe) in [("quickstart", "model.quickstart.orders"), ("multi_db", "model.multi_db.fact_transactions")] {
        let (_tmp, dir) = scratch_copy(&crate::support::example(example));
        let r = dvtc_env(&dir, &["parse"], &[("DVT_PG_PASSWORD", "x")]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let ours: dvt_schema::Manifest =
            serde_json::from_str(&std::fs::read_to_string(dir.join("target/dvt_manifest.json")).unwrap()).unwrap();
        let out = parse_with_dbt_tooling(&dir.join("target/manifest.json"), probe);
        let lines: Vec<&str> = out.lines().collect();
        let counts = format!("ManifestV12 {} {} {}", ours.nodes.len(), ours.sources.len(), ours.macros.len());
        assert_eq!(lines[0], counts, "{example}: {out}");
        let parents: Vec<String> = ours.parent_map[probe].iter().map(|p| format!("'{p}'")).collect();
        assert_eq!(lines[1], format!("[{}]", parents.join(", ")), "{example}: {out}");
        assert!(lines[2].starts_with('"') || lines[2].contains('.'), "relation_name of {probe}: {out}");
        // dbt's own overview page, as every dbt manifest lists it.
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
        let overview = &m["docs"]["doc.dbt.__overview__"];
        assert_eq!(overview["original_file_path"], "docs/overview.md");
        assert!(overview["block_contents"].as_str().unwrap().starts_with("### Welcome!"), "{overview}");
    }
}

#[test]
fn run_results_are_dbt_v6_for_dbt_tooling() {
    let (_tmp, dir) = scratch_copy(&crate::support::example("quickstart"));
    let r = dvtr_in(&dir, &["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let py = std::env::var("DVT_TEST_PYTHON").expect("DVT_TEST_PYTHON is not set: run `make test`");
    let script = format!(
        "import json\nfrom dbt_artifacts_parser.parser import parse_run_results\nr = parse_run_results(json.load(open({:?})))\n\
         print(type(r).__name__, len(r.results))\n\
         print(sorted({{x.status.value for x in r.results}}))\n\
         o = [x for x in r.results if x.unique_id == 'model.quickstart.order_report'][0]\n\
         print(o.adapter_response['rendering'], o.relation_name, o.thread_id.startswith('Thread-'), o.timing[0].name, o.compiled_code is not None)",
        dir.join("target/run_results.json").display().to_string()
    );
    let out = Command::new(py).arg("-c").arg(script).output().expect("python runs");
    assert!(out.status.success(), "dbt-artifacts-parser rejected run_results.json: {}", String::from_utf8_lossy(&out.stderr));
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "RunResultsV6 21", "{out}");
    assert_eq!(lines[1], "['pass', 'success']", "{out}");
    assert_eq!(lines[2], "full_refresh \"main\".\"order_report\" True execute True", "{out}");
    // `dvtr retry` reads it back: nothing failed, nothing to retry.
    let r = dvtr_in(&dir, &["retry"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Nothing to retry"), "{}", r.stdout);
}

/// After `dvtc compile`, the manifest's compiled nodes carry their code and path (as after
/// `dbt compile`), equal to the files under target/compiled/, and dbt tooling still reads it.
#[test]
fn compile_writes_compiled_code_into_the_manifest() {
    let (_tmp, dir) = scratch_copy(&crate::support::example("quickstart"));
    let r = dvtc(&dir, &["compile"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/manifest.json")).unwrap()).unwrap();
    let n = &m["nodes"]["model.quickstart.customers"];
    assert_eq!(n["compiled"], true);
    let path = n["compiled_path"].as_str().unwrap();
    assert_eq!(path, "target/compiled/quickstart/models/marts/customers.sql");
    assert_eq!(n["compiled_code"].as_str().unwrap(), std::fs::read_to_string(dir.join(path)).unwrap());
    let out = parse_with_dbt_tooling(&dir.join("target/manifest.json"), "model.quickstart.customers");
    assert!(out.starts_with("ManifestV12"), "{out}");
}

/// `--log-format json`: every line a run prints is one JSON object in dbt's
/// structured-log shape; a start and a finish event per node, and the stats agree
/// with run_results.json.
#[test]
fn json_log_format_emits_dbt_shaped_events() {
    let (_tmp, dir) = scratch_copy(&crate::support::example("quickstart"));
    let r = dvtr_in(&dir, &["--log-format", "json", "build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let named = |n: &str| events.iter().filter(|e| e["info"]["name"] == n).collect::<Vec<_>>();
    let finished = named("NodeFinished");
    let results: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("target/run_results.json")).unwrap()).unwrap();
    let total = results["results"].as_array().unwrap().len();
    assert!(total > 5, "{total}");
    assert_eq!(named("NodeStart").len(), total);
    assert_eq!(finished.len(), total);
    for e in &finished {
        assert_eq!(e["info"]["code"], "Q025");
        assert!(e["info"]["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
        let id = e["data"]["node_info"]["unique_id"].as_str().unwrap();
        let status = &results["results"].as_array().unwrap().iter().find(|r| r["unique_id"] == id).unwrap()["status"];
        assert_eq!(&e["data"]["run_result"]["status"], status, "{e}");
    }
    let stats = &named("StatsLine")[0]["data"]["stats"];
    assert_eq!(stats["total"], total);
    assert_eq!(stats["error"], 0);
    assert_eq!(named("ConcurrencyLine")[0]["data"]["node_count"], total);
    // Every other command speaks JSON lines too.
    let json_lines = |out: &str, what: &str| -> Vec<serde_json::Value> {
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {l}")))
            .collect()
    };
    for args in [&["parse"][..], &["compile"], &["clean"]] {
        let r = dvtc(&dir, &[&["--log-format", "json"][..], args].concat());
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!json_lines(&r.stdout, &format!("dvtc {args:?}")).is_empty());
    }
    for args in [&["debug"][..], &["seed", "--show"], &["show", "-s", "customers", "--limit", "2"], &["docs", "generate"], &["build"]] {
        let r = dvtr_in(&dir, &[&["--log-format", "json"][..], args].concat());
        assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stdout, r.stderr);
        let events = json_lines(&r.stdout, &format!("dvtr {args:?}"));
        assert!(events.iter().all(|e| e["info"]["name"].is_string() && e["info"]["ts"].is_string()), "{args:?}");
        if args[0] == "show" {
            assert!(events.iter().any(|e| e["info"]["name"] == "ShowNode" && e["data"]["rows"].as_array().is_some_and(|r| r.len() == 2)));
        }
    }
}

/// On a terminal the run shows a progress bar under the finished lines; piped,
/// plain lines only (no control characters for logs and CI).
#[test]
fn progress_bar_on_a_terminal_plain_lines_otherwise() {
    let (_tmp, dir) = scratch_copy(&crate::support::example("quickstart"));
    let piped = dvtr_in(&dir, &["build"]);
    assert_eq!(piped.code, 0, "{}\n{}", piped.stdout, piped.stderr);
    assert!(!piped.stdout.contains('\u{1b}') && !piped.stdout.contains("rows read ["), "{}", piped.stdout);
    // `script` gives dvtr a pseudo-terminal.
    let cmd = format!("{} build", bin("dvtr").display());
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).current_dir(&dir).env("HOME", &dir).output().expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rows read [") && text.contains('\u{1b}'), "no bar on a terminal:\n{text}");
    assert!(text.contains("OK    model orders") || text.contains("OK    model"), "{text}");
    assert!(text.contains("PASS="), "{text}");
}
