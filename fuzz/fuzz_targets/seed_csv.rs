//! Seed files: CSV header and type inference, every record, every value against
//! the inferred types, and `column_types` strings.
#![no_main]
use libfuzzer_sys::fuzz_target;

use dvt_compiler::seeds;

fuzz_target!(|data: &[u8]| {
    let Some((&delim, rest)) = data.split_first() else { return };
    let delimiter = [b',', b';', b'\t', b'|'][delim as usize % 4];
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), rest).expect("writes");
    let _ = seeds::csv_header(file.path(), "s.csv", delimiter);
    if let Ok(columns) = seeds::infer_csv(file.path(), "s.csv", delimiter) {
        let mut reader = seeds::CsvReader::new(rest, delimiter);
        while let Ok(Some(record)) = reader.next_record() {
            for ((_, t), v) in columns.iter().zip(&record.fields) {
                let _ = seeds::value_fits(t, v);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = seeds::parse_type(text);
    }
});
