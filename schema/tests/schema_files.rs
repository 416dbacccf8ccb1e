//! The committed JSON Schemas match the Rust types. Regenerate with
//! `make schema` (or `DVT_UPDATE_SCHEMA=1 cargo test -p dvt-schema`).

use std::path::Path;

fn check(file: &str, generated: String) {
    // The run-time value: a build cached from a clone elsewhere must read this checkout.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = Path::new(&dir).join(file);
    if std::env::var_os("DVT_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "schema/{file} is stale: run `make schema` and commit the result");
}

#[test]
fn manifest_schema_is_current() {
    check("manifest.schema.json", dvt_schema::schema_json::<dvt_schema::Manifest>());
}

#[test]
fn plan_schema_is_current() {
    check("plan.schema.json", dvt_schema::schema_json::<dvt_schema::Plan>());
}

#[test]
fn run_results_schema_is_current() {
    check("run_results.schema.json", dvt_schema::schema_json::<dvt_schema::run_results::RunResults>());
}
