#!/usr/bin/env bash
# dvtr run vs dbt run on the generated 1,000-model project, on DuckDB and on
# PostgreSQL, same machine, same run (seeds loaded first by each tool, not timed).
# usage: bench_run.sh <build dir> <shared dir> [models]
set -euo pipefail
build=$(realpath "${1:?build dir}"); shared=$(realpath "${2:?shared dir}"); n=${3:-1000}
. "$build/services/env"
dvtr="$(pwd)/target/release/dvtr"
dbt="$build/dbtvenv/bin/dbt"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false PGHOST=127.0.0.1 PGPORT=$DVT_TEST_PG_PORT PGUSER=postgres PGDATABASE=dvt
tfile=$(mktemp)
measure() { # "seconds max_rss_kb" of a command that must succeed
  /usr/bin/time -o "$tfile" -f '%e %M' "$@" >"$tfile.out" 2>&1 || { tail -20 "$tfile.out" >&2; echo "failed: $*" >&2; exit 1; }
  tail -1 "$tfile"
}
printf '%-10s %7s %10s %10s %10s %10s %8s\n' engine models dvtr_s dvtr_MB dbt_s dbt_MB ratio
for adapter in duckdb postgres; do
  proj="$build/bench_run_${adapter}_$n"
  [ -d "$proj" ] || python3 "$shared/bench/gen_project.py" --out "$proj" --models "$n" --adapter "$adapter" >/dev/null
  # dbt rejects DVT's `connection:` key: give it the same project without it.
  dbtproj="$proj-dbt"
  if [ ! -d "$dbtproj" ]; then
    cp -r "$proj" "$dbtproj"
    grep -rl --include='*.yml' 'connection:' "$dbtproj/models" | xargs -r sed -i '/^ *connection: /d'
  fi
  psql -qc "drop schema if exists bench_dvtr cascade" -qc "drop schema if exists bench_dbt cascade" >/dev/null 2>&1 || true
  rm -f "$proj"/*.duckdb* "$dbtproj"/*.duckdb*
  export SYNTH_SCHEMA=bench_dvtr SYNTH_DUCKDB_PATH="$proj/dvtr.duckdb"
  (cd "$proj" && "$dvtr" --profiles-dir "$proj" seed >/dev/null)
  read -r ds dkb < <(cd "$proj" && measure "$dvtr" --profiles-dir "$proj" run --threads 4)
  grep -E "^Done" "$tfile.out" >&2
  export SYNTH_SCHEMA=bench_dbt SYNTH_DUCKDB_PATH="$dbtproj/dbt.duckdb"
  (cd "$dbtproj" && DBT_PROFILES_DIR="$dbtproj" "$dbt" seed >/dev/null)
  read -r bs bkb < <(cd "$dbtproj" && DBT_PROFILES_DIR="$dbtproj" measure "$dbt" run --threads 4)
  grep -E "^Done|Completed" "$tfile.out" | tail -1 >&2
  printf '%-10s %7s %10s %10.1f %10s %10.1f %8s\n' "$adapter" "$n" "$ds" "$(awk "BEGIN{print $dkb/1024}")" "$bs" "$(awk "BEGIN{print $bkb/1024}")" \
    "$(awk "BEGIN{printf \"%.3fx\", $ds / $bs}")"
done
psql -qc "drop schema if exists bench_dvtr cascade" -qc "drop schema if exists bench_dbt cascade" >/dev/null 2>&1 || true
