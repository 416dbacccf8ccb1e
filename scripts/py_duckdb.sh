#!/usr/bin/env bash
# Installs the current DuckDB Python package (2.x) into build/pyduckdb (once): the
# end-to-end tests make .duckdb files with it, as users' tools do, and read back
# what dvtr wrote; and dbt-artifacts-parser, which reads dbt's artifacts as dbt's tools do.
set -euo pipefail
build=$(mkdir -p "${1:?build dir}" && cd "$1" && pwd)
if [ ! -x "$build/pyduckdb/bin/python" ] || ! "$build/pyduckdb/bin/python" -c 'import duckdb, dbt_artifacts_parser' 2>/dev/null; then
  python3 -m venv "$build/pyduckdb"
  # dbt-artifacts-parser: the tests load DVT's dbt-shaped artifacts with it, as dbt's tools do.
  "$build/pyduckdb/bin/pip" install -q 'duckdb~=2.0' 'dbt-artifacts-parser==0.15.0'
fi
echo "export DVT_TEST_PYTHON=$build/pyduckdb/bin/python" > "$build/pyduckdb/env"
