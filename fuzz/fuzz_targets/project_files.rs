//! Project YAML: the first byte picks the file (dbt_project.yml, properties,
//! profiles.yml, packages.yml, selectors.yml), the rest is its content.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let files = ["dbt_project.yml", "models/sources.yml", "profiles.yml", "packages.yml", "selectors.yml"];
    let dir = common::project();
    common::reset(dir);
    let _ = std::fs::remove_file(dir.join("packages.yml"));
    let _ = std::fs::remove_file(dir.join("selectors.yml"));
    std::fs::write(dir.join(files[which as usize % files.len()]), rest).expect("writes");
    common::compile_project(dir);
});
