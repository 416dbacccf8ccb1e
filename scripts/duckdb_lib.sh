#!/usr/bin/env bash
# Provides DuckDB 2.0's shared library in build/duckdb, which the runtime links
# (DUCKDB_LIB_DIR in .cargo/config.toml) instead of compiling DuckDB's C++ in
# every target directory. No registry ships a prebuilt libduckdb.so 2.0 (the
# npm bindings stop at 1.5.6; PyPI's wheel needs libpython), so it is compiled
# once from the libduckdb-sys crate's bundled sources (~25 minutes on 2 cores)
# into a cache outside the clone ($DVT_CACHE, default ~/.cache/dvt) and reused
# by every later build, clone and CI run on the machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
crate_version=1.20000.1 # libduckdb-sys: DuckDB 2.0.0 (storage versions up to 69)
dir="$root/build/duckdb"
cache="${DVT_CACHE:-$HOME/.cache/dvt}/duckdb/$crate_version"

if [ -f "$dir/libduckdb.so" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$crate_version" ]; then exit 0; fi

if [ ! -f "$cache/libduckdb.so" ]; then
    echo "duckdb_lib: compiling DuckDB $crate_version once into $cache (about 25 minutes on 2 cores)" >&2
    work="$cache/work"
    rm -rf "$work"
    mkdir -p "$work/src"
    cat > "$work/Cargo.toml" <<TOML
[package]
name = "duckdb-lib-build"
version = "0.0.0"
edition = "2021"
publish = false
[lib]
path = "src/lib.rs"
[dependencies]
libduckdb-sys = { version = "=$crate_version", features = ["bundled", "parquet", "json"] }
[profile.release]
opt-level = 2
debug = false
[workspace]
TOML
    : > "$work/src/lib.rs"
    (cd "$work" && CARGO_TARGET_DIR="$work/target" cargo build --release --quiet)
    out=$(dirname "$(find "$work/target/release/build" -name libduckdb.a | head -1)")
    g++ -shared -o "$cache/libduckdb.so.tmp" \
        -Wl,--whole-archive "$out"/*.a -Wl,--no-whole-archive -lpthread -ldl -lm
    cp "$(find "$work/target" -path '*/src/include/duckdb.h' | head -1)" "$cache/duckdb.h"
    mv "$cache/libduckdb.so.tmp" "$cache/libduckdb.so"
    rm -rf "$work"
fi

mkdir -p "$dir"
cp "$cache/libduckdb.so" "$cache/duckdb.h" "$dir/"
echo "$crate_version" > "$dir/VERSION"
