// Lets `dvtr` (and every binary linking the runtime) find the DuckDB library it links (see scripts/duckdb_lib.sh)
// without LD_LIBRARY_PATH.

fn main() {
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        let abs = std::fs::canonicalize(&dir).map(|p| p.display().to_string()).unwrap_or(dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{abs}");
    }
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
}
