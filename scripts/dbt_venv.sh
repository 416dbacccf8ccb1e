#!/usr/bin/env bash
# Installs dbt-core 1.11 with the DuckDB and PostgreSQL adapters into build/dbtvenv (once).
set -euo pipefail
build=${1:?build dir}
if [ ! -x "$build/dbtvenv/bin/dbt" ]; then
  python3 -m venv "$build/dbtvenv"
  "$build/dbtvenv/bin/pip" install -q 'dbt-core~=1.11.0' 'dbt-duckdb~=1.11.0' 'dbt-postgres~=1.11.0'
fi
