#!/usr/bin/env bash
# Installs the current DuckDB Python package (2.x) into build/pyduckdb (once): the
# end-to-end tests make .duckdb files with it, as users' tools do, and read back
# what dvtr wrote.
set -euo pipefail
build=$(mkdir -p "${1:?build dir}" && cd "$1" && pwd)
if [ ! -x "$build/pyduckdb/bin/python" ] || ! "$build/pyduckdb/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$build/pyduckdb"
  "$build/pyduckdb/bin/pip" install -q 'duckdb~=2.0'
fi
echo "export DVT_TEST_PYTHON=$build/pyduckdb/bin/python" > "$build/pyduckdb/env"
