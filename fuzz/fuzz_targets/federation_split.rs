//! The federation splitter through dvtc: the input is the SQL of a model whose
//! target is DuckDB, reading `t` (DuckDB) and `u` (SQLite) as `{{ source(...) }}`
//! where it says `T` and `U`, so most inputs federate.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    // Jinja is not what this target explores: braces and `%` are taken literally.
    if sql.contains(['{', '}', '%', '#']) {
        return;
    }
    let model = sql.replace('T', "{{ source('d', 't') }}").replace('U', "{{ source('l', 'u') }}");
    let dir = common::project();
    common::reset(dir);
    std::fs::write(dir.join("models/m.sql"), model).expect("writes");
    common::compile_project(dir);
});
