//! `dvtr docs generate`: `catalog.json` in dbt's v1 shape, read from each
//! node's **own** database (so one catalog spans PostgreSQL, MariaDB, DuckDB
//! and SQLite), and a static documentation site in `target/docs/` (one
//! `index.html`, everything inline, no network at view time) with a lineage
//! graph coloured by database in which federated reads are marked.
//! `dvtr docs serve` serves that folder on 127.0.0.1.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use dvt_schema::Plan;
use dvt_schema::plan::{ExecutionPath, RelationRef};
use serde_json::{Value as Json, json};

use crate::connectors::{self, RelationKind};
use crate::write::Env;

/// dbt's catalog schema the file follows.
pub const CATALOG_SCHEMA: &str = "https://schemas.getdbt.com/dbt/catalog/v1.json";

/// A relation to describe: (unique id, output, relation).
pub struct CatalogItem<'a> {
    pub unique_id: &'a str,
    pub output: &'a str,
    pub relation: &'a RelationRef,
}

/// The catalog entry of one relation, or None when it does not exist.
fn entry(env: &Env, item: &CatalogItem<'_>) -> Result<Option<Json>, String> {
    let mut conn = env.pool.get(item.output)?;
    let (schema, ident) = connectors::parts(item.relation);
    let Some(kind) = conn.relation_kind(schema, ident)? else { return Ok(None) };
    let columns = conn.columns(schema, ident)?;
    let rows = if kind == RelationKind::Table { conn.row_estimate(schema, ident) } else { None };
    conn.release();
    let cols: serde_json::Map<String, Json> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| (name.clone(), json!({"type": ty, "index": i + 1, "name": name, "comment": null})))
        .collect();
    let mut stats = serde_json::Map::new();
    stats.insert(
        "has_stats".into(),
        json!({"id": "has_stats", "label": "Has Stats?", "value": rows.is_some(), "include": false, "description": "Indicates whether there are statistics for this table"}),
    );
    if let Some(n) = rows {
        stats.insert(
            "row_count".into(),
            json!({"id": "row_count", "label": "Row Count", "value": n, "include": true, "description": "Rows in the table (the engine's estimate where it keeps one)"}),
        );
    }
    Ok(Some(json!({
        "metadata": {
            "type": if kind == RelationKind::View { "VIEW" } else { "BASE TABLE" },
            "schema": item.relation.schema.clone().unwrap_or_default(),
            "name": item.relation.identifier,
            "database": item.relation.database,
            "comment": null,
            "owner": null,
        },
        "columns": cols,
        "stats": stats,
        "unique_id": item.unique_id,
    })))
}

/// `catalog.json`: every node and source relation that exists, from its own database.
/// A database that cannot be read is listed in `errors`; the others are still described.
pub fn catalog(env: &Env, nodes: &[CatalogItem<'_>], sources: &[CatalogItem<'_>], metadata: Json) -> Json {
    let mut errors = Vec::new();
    let mut describe = |items: &[CatalogItem<'_>]| -> serde_json::Map<String, Json> {
        let mut out = serde_json::Map::new();
        for item in items {
            match entry(env, item) {
                Ok(Some(e)) => {
                    out.insert(item.unique_id.to_string(), e);
                }
                Ok(None) => {}
                Err(e) => errors.push(format!("{} ({} on {}): {e}", item.unique_id, item.relation.rendered, item.output)),
            }
        }
        out
    };
    let nodes = describe(nodes);
    let sources = describe(sources);
    json!({
        "metadata": metadata,
        "nodes": nodes,
        "sources": sources,
        "errors": if errors.is_empty() { Json::Null } else { json!(errors) },
    })
}

/// The site's data: nodes (with columns, tests, SQL, where and how they run), sources and
/// the lineage edges, each marked federated when it crosses databases.
pub fn site_data(project: &dvt_compiler::nodes::Project, plan: &Plan, catalog: &Json) -> Json {
    use dvt_compiler::nodes::ResourceType;
    let output_type = |o: &str| project.profile.outputs.get(o).map_or_else(String::new, |x| x.kind.clone());
    // The database's columns in its order: (lower-case name, type).
    let catalog_cols = |section: &str, id: &str| -> Vec<(String, String)> {
        let mut cols: Vec<(u64, String, String)> = catalog[section][id]["columns"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (v["index"].as_u64().unwrap_or(0), k.to_ascii_lowercase(), v["type"].as_str().unwrap_or_default().to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        cols.sort();
        cols.into_iter().map(|(_, n, t)| (n, t)).collect()
    };
    let tests_of = |id: &str| -> BTreeMap<Option<String>, Vec<String>> {
        let mut m: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for t in project.nodes.values() {
            if let Some(info) = t.test.as_ref().filter(|i| i.attached_node == id) {
                m.entry(info.column_name.clone()).or_default().push(info.name.clone());
            }
        }
        m
    };
    let columns = |declared: &dvt_compiler::sorted_map::SortedMap<String, dvt_compiler::nodes::Column>,
                   section: &str,
                   id: &str|
     -> Vec<Json> {
        let found = catalog_cols(section, id);
        let tests = tests_of(id);
        let mut names: Vec<(usize, String)> = declared.values().map(|c| (c.position, c.name.clone())).collect();
        names.sort();
        let mut out: Vec<Json> = names
            .iter()
            .map(|(_, n)| {
                let c = &declared[n];
                json!({
                    "name": n,
                    "type": found.iter().find(|(k, _)| *k == n.to_ascii_lowercase()).map(|(_, t)| t.clone()).or_else(|| c.data_type.clone()),
                    "description": c.description,
                    "tests": tests.get(&Some(n.clone())).cloned().unwrap_or_default(),
                })
            })
            .collect();
        let declared_lower: Vec<String> = declared.keys().map(|k| k.to_ascii_lowercase()).collect();
        for (n, t) in &found {
            if !declared_lower.contains(n) {
                out.push(json!({"name": n, "type": t, "description": "", "tests": []}));
            }
        }
        out
    };
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    let location = |id: &str| -> Option<String> {
        project.sources.get(id).map(|s| s.connection.clone()).or_else(|| plan.nodes.get(id).map(|n| n.target.value.clone()))
    };
    for n in project.nodes.values().filter(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed | ResourceType::Snapshot))
    {
        let p = plan.nodes.get(&n.unique_id);
        let target = p.map(|p| p.target.value.clone()).unwrap_or_default();
        let fed = p.and_then(|p| p.federation.as_ref());
        nodes.push(json!({
            "id": n.unique_id,
            "name": n.name,
            "type": n.resource_type.as_str(),
            "package": n.package,
            "file": n.file,
            "description": n.description,
            "tags": n.config.get("tags").cloned().unwrap_or(json!([])),
            "materialized": p.map(|p| p.materialization.effective.clone()),
            "target": target,
            "target_type": output_type(&target),
            "relation": p.and_then(|p| p.relation.as_ref().map(|r| r.rendered.clone())),
            "path": p.map(|p| if p.path == ExecutionPath::Federation { "federation" } else { "pushdown" }),
            "compute": p.and_then(|p| p.compute.as_ref().map(|c| c.value.clone())),
            "columns": columns(&n.columns, "nodes", &n.unique_id),
            "tests": tests_of(&n.unique_id).get(&None).cloned().unwrap_or_default(),
            "raw_sql": n.raw,
            "compiled_sql": p.and_then(|p| p.compiled_sql.clone()),
            "fragments": fed.map(|f| f.fragments.iter().map(|x| json!({"name": x.name, "target": x.target, "dialect": x.dialect, "sql": x.sql})).collect::<Vec<_>>()),
            "remainder": fed.map(|f| f.remainder.clone()),
            "rows": catalog["nodes"][&n.unique_id]["stats"]["row_count"]["value"],
        }));
        for d in &n.depends_on {
            let Some(from) = location(d) else { continue };
            // Ephemeral models and sources draw as nodes too; tests never do.
            if project.nodes.get(d).is_some_and(|u| u.resource_type == ResourceType::Test) {
                continue;
            }
            edges.push(json!({"from": d, "to": n.unique_id, "federated": from != target}));
        }
    }
    for s in project.sources.values() {
        nodes.push(json!({
            "id": s.unique_id,
            "name": format!("{}.{}", s.source_name, s.name),
            "type": "source",
            "package": s.package,
            "file": s.file,
            "description": s.description,
            "tags": s.tags,
            "target": s.connection,
            "target_type": output_type(&s.connection),
            "relation": plan.sources.get(&s.unique_id).map(|p| p.relation.rendered.clone()),
            "columns": columns(&s.columns, "sources", &s.unique_id),
            "tests": tests_of(&s.unique_id).get(&None).cloned().unwrap_or_default(),
            "rows": catalog["sources"][&s.unique_id]["stats"]["row_count"]["value"],
        }));
    }
    nodes.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let outputs: BTreeMap<String, String> = project.profile.outputs.iter().map(|(k, o)| (k.clone(), o.kind.clone())).collect();
    json!({"project": project.name, "nodes": nodes, "edges": edges, "outputs": outputs})
}

/// The site: one self-contained page with its data inline.
pub fn site_html(data: &Json) -> String {
    // `</` inside a script would end it early: JSON keeps its meaning with `<\/`.
    let data = data.to_string().replace("</", "<\\/");
    include_str!("docs_site.html").replace("/*DVT_DATA*/null", &data)
}

/// Serves `dir` on 127.0.0.1:`port` until the process is stopped.
pub fn serve(dir: &Path, port: u16, ready: impl FnOnce(u16)) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    ready(port);
    let root = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            continue;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").split(['?', '#']).next().unwrap_or("/").to_string();
        let rel = if path == "/" { "index.html".to_string() } else { path.trim_start_matches('/').to_string() };
        // Only files inside the site folder, never `..` out of it.
        let file = root.join(&rel);
        let body = std::fs::canonicalize(&file).ok().filter(|f| f.starts_with(&root)).and_then(|f| std::fs::read(f).ok());
        let (status, ctype, body) = match body {
            Some(b) => {
                let ctype = match rel.rsplit('.').next() {
                    Some("html") => "text/html; charset=utf-8",
                    Some("json") => "application/json",
                    Some("png") => "image/png",
                    _ => "application/octet-stream",
                };
                ("200 OK", ctype, b)
            }
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        };
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
    }
    Ok(())
}
