#!/usr/bin/env bash
# Fetches DuckDB's prebuilt shared library (from the npm package DuckDB
# publishes) into build/duckdb, so the runtime links it instead of compiling
# DuckDB's C++ (~23 minutes on 2 cores). Release builds can use the bundled
# feature instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build/duckdb"
version=1.5.6-r.1
if [ -f "$dir/libduckdb.so" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$version" ]; then exit 0; fi
mkdir -p "$dir"
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent "@duckdb/node-bindings-linux-x64@$version" >/dev/null 2>&1 && tar xzf ./*.tgz)
cp "$tmp/package/libduckdb.so" "$dir/"
echo "$version" > "$dir/VERSION"
rm -rf "$tmp"
