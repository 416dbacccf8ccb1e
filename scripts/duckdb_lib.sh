#!/usr/bin/env bash
# Provides DuckDB 2.0's shared library in build/duckdb, which the runtime links
# (DUCKDB_LIB_DIR in .cargo/config.toml) instead of compiling DuckDB's C++ in
# every target directory. No registry ships a prebuilt libduckdb.so 2.0 (the
# npm bindings stop at 1.5.6; PyPI's wheel is a Python extension that needs
# libpython), so it is compiled once from DuckDB's own sources, as PyPI's
# source distribution of `duckdb` carries them (CMake, with the extensions
# DuckDB's releases link in: core_functions, parquet, json and icu — time zones
# and collations, which users' files and dbt packages rely on), into a cache
# outside the clone ($DVT_CACHE, default ~/.cache/dvt), reused by every later
# build, clone and CI run on the machine (~30 minutes on 2 idle cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=2.0.1
sha256=5b3f493140e35b75298ee0fc606d98e3065e8601e64fe81b09326de7a6fd68e0
url="https://files.pythonhosted.org/packages/49/d8/ebb8ff07c617d1a8c25e7f7718a6955d2d5f7e539ec5219be1da478c0a42/duckdb-$version.tar.gz"
stamp="$version+icu"
dir="$root/build/duckdb"
cache="${DVT_CACHE:-$HOME/.cache/dvt}/duckdb/$stamp"

if [ -f "$dir/libduckdb.so" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$stamp" ]; then exit 0; fi

if [ ! -f "$cache/libduckdb.so" ]; then
    echo "duckdb_lib: compiling DuckDB $version (with icu, parquet, json) once into $cache (about 30 minutes on 2 cores)" >&2
    if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
        (apt-get install -y cmake ninja-build >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y cmake ninja-build >/dev/null; })
    fi
    work="$cache/work"
    rm -rf "$work"
    mkdir -p "$work"
    curl -fsSL --retry 3 -o "$work/src.tar.gz" "$url"
    echo "$sha256  $work/src.tar.gz" | sha256sum -c --quiet
    tar xzf "$work/src.tar.gz" -C "$work"
    src="$work/duckdb-$version/external/duckdb"
    cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDUCKDB_EXPLICIT_VERSION="v$version" \
        -DBUILD_SHELL=0 -DBUILD_UNITTESTS=0 -DENABLE_EXTENSION_AUTOINSTALL=0 >/dev/null
    ninja -C "$work/build" duckdb >/dev/null
    cp "$src/src/include/duckdb.h" "$cache/duckdb.h"
    cp "$work/build/src/libduckdb.so" "$cache/libduckdb.so.tmp"
    mv "$cache/libduckdb.so.tmp" "$cache/libduckdb.so"
    rm -rf "$work"
fi

mkdir -p "$dir"
cp "$cache/libduckdb.so" "$cache/duckdb.h" "$dir/"
echo "$stamp" > "$dir/VERSION"
