//! Jinja rendering: the input is a model file (SQL with Jinja) in the project.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::project();
    common::reset(dir);
    std::fs::write(dir.join("models/m.sql"), data).expect("writes");
    common::compile_project(dir);
});
