#!/usr/bin/env bash
# A federated move, against its two-step reference in the same run (best of 3):
# 1,000,000 rows x 6 typed columns filtered to 900,000 from PostgreSQL into DuckDB
# through a federated model (`dvtr run`: fragment read, DataFusion remainder, DuckDB
# appender) vs `psql \copy (select ...) to` a CSV file followed by DuckDB's own
# read_csv into a table of the same types (DuckDB's Python package from the dbt venv).
# And back: the same 900,000 rows from DuckDB into PostgreSQL (`dvtr run`: DuckDB fragment,
# PostgreSQL COPY) vs DuckDB's COPY to a CSV file followed by `psql \copy` into a table of the same types.
# Needs the test PostgreSQL (scripts/services.sh start) and build/dbtvenv (scripts/dbt_venv.sh).
set -euo pipefail
build=$(realpath "${1:?build dir}")
. "$build/services/env"
dvtr="${DVTR:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/dvtr}"
py="$build/dbtvenv/bin/python"
export PGHOST=127.0.0.1 PGPORT=$DVT_TEST_PG_PORT PGUSER=postgres PGDATABASE=dvt
tfile=$(mktemp)
timed() { /usr/bin/time -o "$tfile" -f '%e %M' "$@" >/dev/null; read -r T K < "$tfile"; }
better() { [ -z "$1" ] || awk "BEGIN{exit !($2 < $1)}"; }

psql -q -c "drop schema if exists bench_fed cascade" -c "create schema bench_fed" \
  -c "create table bench_fed.src as select g::bigint as id, (g % 100)::int as k, (g * 0.01)::numeric(12,2) as amount,
        'customer ' || g as name, timestamp '2024-01-01' + g * interval '1 second' as ts, g % 2 = 0 as flag
      from generate_series(1, 1000000) g" -c "analyze bench_fed.src" >/dev/null
proj="$build/bench_fed"
rm -rf "$proj"; mkdir -p "$proj/models"
printf "name: bench_fed\nversion: '1.0'\nprofile: bench_fed\n" > "$proj/dbt_project.yml"
cat > "$proj/profiles.yml" <<EOF
bench_fed:
  target: duck
  outputs:
    duck: {type: duckdb, path: $proj/fed.duckdb}
    pg: {type: postgres, host: 127.0.0.1, port: $PGPORT, user: postgres, dbname: dvt, schema: bench_fed}
EOF
printf "version: 2\nsources:\n  - name: crm\n    connection: pg\n    schema: bench_fed\n    tables: [{name: src}]\n" > "$proj/models/sources.yml"
query="select id, k, amount, name, ts, flag from bench_fed.src where k < 90"
printf "{{ config(materialized='table') }}\nselect id, k, amount, name, ts, flag from {{ source('crm', 'src') }} where k < 90\n" > "$proj/models/moved.sql"

best_ref=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  rm -f "$proj"/*.duckdb* "$build/bench_fed_ref.duckdb" "$build/bench_fed.csv"
  timed bash -c "psql -qc \"\\copy ($query) to '$build/bench_fed.csv' csv\" && '$py' -c \"
import duckdb
c = duckdb.connect('$build/bench_fed_ref.duckdb')
c.execute('create table moved (id bigint, k integer, amount decimal(12,2), name varchar, ts timestamp, flag boolean)')
c.execute(\\\"insert into moved select * from read_csv('$build/bench_fed.csv', header=false, columns={'id':'bigint','k':'integer','amount':'decimal(12,2)','name':'varchar','ts':'timestamp','flag':'boolean'})\\\")
\""
  if better "$best_ref" "$T"; then best_ref=$T; fi
  timed "$dvtr" --project-dir "$proj" --profiles-dir "$proj" run
  if better "$best_dvt" "$T"; then best_dvt=$T; rss=$K; fi
done
n=$("$py" -c "import duckdb; print(duckdb.connect('$proj/fed.duckdb', read_only=True).execute('select count(*) from main.moved').fetchone()[0])")
m=$("$py" -c "import duckdb; print(duckdb.connect('$build/bench_fed_ref.duckdb', read_only=True).execute('select count(*) from moved').fetchone()[0])")
[ "$n" = "$m" ] || { echo "row counts differ: dvtr $n, reference $m" >&2; exit 1; }
printf 'federated move 1M -> %s rows PostgreSQL -> DuckDB: dvtr %ss (peak %.0f MB), psql \\copy + DuckDB read_csv %ss, ratio %.2fx\n' \
  "$n" "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$best_ref" "$(awk "BEGIN{print $best_dvt/$best_ref}")"

## Back: DuckDB -> PostgreSQL.
printf "version: 2\nsources:\n  - name: lake\n    connection: duck\n    schema: main\n    tables: [{name: moved}]\n" > "$proj/models/sources.yml"
printf "{{ config(materialized='table', target='pg') }}\nselect id, k, amount, name, ts, flag from {{ source('lake', 'moved') }}\n" > "$proj/models/back.sql"
rm "$proj/models/moved.sql"
cols="id bigint, k integer, amount numeric(12,2), name text, ts timestamp, flag boolean"
best_ref=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  psql -q -c "drop table if exists bench_fed.back" -c "drop table if exists bench_fed.back_ref" -c "create table bench_fed.back_ref ($cols)" >/dev/null
  rm -f "$build/bench_fed.csv"
  timed bash -c "'$py' -c \"
import duckdb
duckdb.connect('$proj/fed.duckdb', read_only=True).execute(\\\"copy (select * from main.moved) to '$build/bench_fed.csv' (header false)\\\")
\" && psql -qc \"\\copy bench_fed.back_ref from '$build/bench_fed.csv' csv\""
  if better "$best_ref" "$T"; then best_ref=$T; fi
  timed "$dvtr" --project-dir "$proj" --profiles-dir "$proj" run
  if better "$best_dvt" "$T"; then best_dvt=$T; rss=$K; fi
done
n=$(psql -qtAc "select count(*) from bench_fed.back")
m=$(psql -qtAc "select count(*) from bench_fed.back_ref")
[ "$n" = "$m" ] || { echo "row counts differ: dvtr $n, reference $m" >&2; exit 1; }
printf 'federated move %s rows DuckDB -> PostgreSQL: dvtr %ss (peak %.0f MB), DuckDB COPY to CSV + psql \\copy %ss, ratio %.2fx\n' \
  "$n" "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$best_ref" "$(awk "BEGIN{print $best_dvt/$best_ref}")"
psql -qc "drop schema if exists bench_fed cascade" >/dev/null
rm -f "$build/bench_fed.csv" "$build/bench_fed_ref.duckdb"
