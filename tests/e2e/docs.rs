//! `dvtr docs generate` / `docs serve`: a catalog read from each node's own
//! database (DuckDB and SQLite here; PostgreSQL and MariaDB in multi_db),
//! dbt's artifacts as dbt tooling reads them, and the static site opened in
//! headless Chromium: every node and edge drawn, federated edges marked, the
//! search box finding a model.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn chromium() -> String {
    std::env::var("DVT_TEST_CHROMIUM").expect("DVT_TEST_CHROMIUM is not set: run `make test`, which installs chromium")
}

/// The DOM after the page's scripts ran.
fn dump_dom(url: &str) -> String {
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--dump-dom", url])
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn python(code: &str) -> String {
    let py = std::env::var("DVT_TEST_PYTHON").expect("DVT_TEST_PYTHON is not set: run `make test`");
    let out = Command::new(py).args(["-c", code]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn quickstart_dvtr(dir: &Path, root: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("dvtr"));
    cmd.current_dir(root).args(args).args(["--profiles-dir", "."]).env("HOME", root).env("QUICKSTART_DIR", dir.join("quickstart"));
    cmd.output().unwrap().into()
}

#[test]
fn docs_generate_catalog_and_site_with_lineage_across_databases() {
    let (dir, root) = scratch_copy(&example("quickstart"));
    let r = quickstart_dvtr(dir.path(), &root, &["build"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = quickstart_dvtr(dir.path(), &root, &["docs", "generate"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let target = root.join("target");
    let catalog: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(target.join("catalog.json")).unwrap()).unwrap();
    // From DuckDB: the warehouse's table, its types and rows.
    let customers = &catalog["nodes"]["model.quickstart.customers"];
    assert_eq!(customers["metadata"]["type"], "BASE TABLE");
    assert_eq!(customers["columns"]["customer_id"]["type"], "INTEGER");
    assert_eq!(customers["columns"]["customer_id"]["index"], 1);
    assert_eq!(customers["stats"]["row_count"]["value"], 5);
    // From SQLite: the federated model's table in the reporting file.
    let report = &catalog["nodes"]["model.quickstart.order_report"];
    assert_eq!(report["metadata"]["type"], "BASE TABLE", "{catalog}");
    assert!(report["columns"].as_object().unwrap().len() >= 2, "{report}");
    assert_eq!(catalog["nodes"]["model.quickstart.stg_orders"]["metadata"]["type"], "VIEW");
    assert!(catalog["errors"].is_null());
    // One invocation: the catalog and the manifest it wrote carry the same id, a UUID as dbt's.
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(target.join("manifest.json")).unwrap()).unwrap();
    let id = catalog["metadata"]["invocation_id"].as_str().expect("an invocation id");
    assert_eq!(manifest["metadata"]["invocation_id"], id);
    assert!(id.len() == 36 && id.split('-').map(str::len).eq([8, 4, 4, 4, 12]) && id.as_bytes()[14] == b'4', "{id}");

    // dbt's own tooling reads every artifact, with the same counts DVT has.
    let t = target.display();
    let parsed = python(&format!(
        "import json\nfrom dbt_artifacts_parser.parser import parse_catalog, parse_manifest, parse_run_results\n\
         c = parse_catalog(json.load(open('{t}/catalog.json')))\n\
         m = parse_manifest(json.load(open('{t}/manifest.json')))\n\
         print(type(c).__name__, len(c.nodes), type(m).__name__, len(m.nodes), sorted(m.nodes['model.quickstart.customers'].depends_on.nodes))"
    ));
    let models = catalog["nodes"].as_object().unwrap().len();
    assert!(parsed.starts_with(&format!("CatalogV1 {models} ManifestV12 ")), "{parsed}");
    assert!(
        parsed.ends_with("['model.quickstart.stg_customers', 'model.quickstart.stg_orders', 'model.quickstart.stg_payments']"),
        "{parsed}"
    );

    // The site, drawn by a real browser.
    let html = target.join("docs/index.html");
    let page = std::fs::read_to_string(&html).unwrap();
    let data_start = page.find("const DATA = ").unwrap() + "const DATA = ".len();
    let data_end = data_start + page[data_start..].find(";\nconst COLORS").unwrap();
    let data: serde_json::Value = serde_json::from_str(&page[data_start..data_end].replace("<\\/", "</")).unwrap();
    let url = format!("file://{}", html.display());
    let page_dom = dump_dom(&url);
    // The drawing only (the page's script text mentions the same markup).
    let svg_at = page_dom.find("<svg id=\"lineage\"").expect("lineage drawn");
    let dom = &page_dom[svg_at..svg_at + page_dom[svg_at..].find("</svg>").unwrap()];
    for n in data["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-id=\"{id}\"")), "node {id} not drawn");
    }
    let drawn_nodes = dom.matches("<g class=\"node").count();
    assert_eq!(drawn_nodes, data["nodes"].as_array().unwrap().len());
    let edges = data["edges"].as_array().unwrap();
    assert_eq!(dom.matches("<path class=\"edge").count(), edges.len());
    for e in edges {
        let class = if e["federated"].as_bool().unwrap() { "edge federated" } else { "edge" };
        let drawn =
            format!("<path class=\"{class}\" data-from=\"{}\" data-to=\"{}\"", e["from"].as_str().unwrap(), e["to"].as_str().unwrap());
        assert!(dom.contains(&drawn), "edge not drawn: {drawn}");
    }
    // order_report is written to SQLite from DuckDB's customers: a federated read.
    assert!(
        dom.contains("<path class=\"edge federated\" data-from=\"model.quickstart.customers\" data-to=\"model.quickstart.order_report\"")
    );
    // The search box finds a model by name (and only what matches).
    let found = dump_dom(&format!("{url}#search=customers"));
    let list = &found[found.find("<ul id=\"results\">").unwrap()..];
    let list = &list[..list.find("</ul>").unwrap()];
    assert!(list.contains("data-id=\"model.quickstart.customers\""), "{list}");
    assert!(!list.contains("stg_orders"), "{list}");
    // A node's page: columns with types from the catalog, and its fragments.
    let node = dump_dom(&format!("{url}#node=model.quickstart.order_report"));
    assert!(node.contains("fragment") && node.contains("federation"), "details of order_report missing");
    // A screenshot of the lineage view.
    let png = dir.path().join("lineage.png");
    let out = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--window-size=1600,1000"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 20_000, "screenshot of {} bytes", bytes.len());

    // `docs serve` serves the site on 127.0.0.1.
    let mut child = Command::new(bin("dvtr"))
        .current_dir(&root)
        .args(["docs", "serve", "--port", "0", "--profiles-dir", "."])
        .env("HOME", &root)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
    let port = first.rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    let served = dump_dom(&format!("http://127.0.0.1:{port}/#search=orders"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(served.contains("data-id=\"model.quickstart.orders\""), "{}", &served[..served.len().min(500)]);
}
