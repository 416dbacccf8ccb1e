//! The plan reader of `dvtr execute`: JSON, version check, references.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dvt_compiler::plan_file::parse(text, "plan.json");
    }
});
