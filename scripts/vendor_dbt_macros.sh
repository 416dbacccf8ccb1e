#!/usr/bin/env bash
# Copies dbt's own macros (dbt-adapters' global project, dbt-postgres and
# dbt-duckdb; Apache-2.0) that render SQL without a database into
# compiler/src/jinja/dbt/, so generic tests and cross-database macros render
# byte for byte as dbt-core does. Run after changing the dbt versions in
# scripts/dbt_venv.sh; the list of files is compiler/src/jinja/dbt_macros.rs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/dbt_venv.sh" "$root/build"
inc=$(echo "$root"/build/dbtvenv/lib/python3*/site-packages/dbt/include)
out="$root/compiler/src/jinja/dbt"
rm -rf "$out"
mkdir -p "$out"
copy() { mkdir -p "$out/$(dirname "$1")"; cp "$inc/$1" "$out/$1"; }
copy global_project/tests/generic/builtin.sql
for f in "$inc"/global_project/macros/{generic_test_sql,utils,get_custom_name}/*.sql; do copy "${f#"$inc"/}"; done
copy global_project/macros/adapters/relation.sql
copy global_project/macros/materializations/configs.sql
copy global_project/macros/materializations/tests/where_subquery.sql
copy global_project/macros/etc/datetime.sql
copy global_project/macros/python_model/python.sql
for f in "$inc"/postgres/macros/utils/*.sql; do copy "${f#"$inc"/}"; done
copy postgres/macros/timestamps.sql
for f in "$inc"/duckdb/macros/utils/{any_value,date,dateadd,datediff,generate_series,lastday,listagg,splitpart}.sql; do copy "${f#"$inc"/}"; done
"$root"/build/dbtvenv/bin/pip list 2>/dev/null | grep -E '^dbt-(adapters|postgres|duckdb|core) ' > "$out/VERSIONS"
(cd "$out" && find . -name '*.sql' | sort | sed 's|^\./||') > "$out/FILES"
{
    echo "//! dbt's own macros (see \`scripts/vendor_dbt_macros.sh\`, which writes this file):"
    echo "//! versions in \`dbt/VERSIONS\`, Apache-2.0 (\`dbt/NOTICE\`)."
    echo
    echo "/// (path under \`dbt/\`, contents) of every vendored macro file."
    echo "pub const FILES: &[(&str, &str)] = &["
    while read -r f; do echo "    (\"$f\", include_str!(\"dbt/$f\")),"; done < "$out/FILES"
    echo "];"
} > "$root/compiler/src/jinja/dbt_macros.rs"
cat > "$out/NOTICE" <<'TXT'
The .sql files under this folder are copied unchanged from dbt-adapters,
dbt-postgres and dbt-duckdb (versions in VERSIONS), Copyright dbt Labs, Inc.
and contributors, licensed under the Apache License, Version 2.0:
https://www.apache.org/licenses/LICENSE-2.0
TXT
