#!/usr/bin/env bash
# Issue 14's benchmark: three 1,046,572-row tables, two on PostgreSQL and one on
# MariaDB, joined and aggregated by a federated model written to PostgreSQL, against
# the physical reference in the same run (best of 3): `psql \copy (...) to` and
# `mariadb -e` exports of the same rows, plus `psql \copy from` of the result.
# Then the model with a 64 MiB budget spilling to a `file` bucket and to the local
# S3 server. Reports time, peak RSS and ratio of each.
# Needs the test servers (scripts/services.sh start) and a release build.
set -euo pipefail
build=$(realpath "${1:?build dir}")
. "$build/services/env"
dvtr="${DVTR:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/dvtr}"
export PGHOST=127.0.0.1 PGPORT=$DVT_TEST_PG_PORT PGUSER=postgres PGDATABASE=dvt
maria() { mariadb --no-defaults -h 127.0.0.1 -P "$DVT_TEST_MARIA_PORT" -u root "$@"; }
N=${BENCH_ROWS:-1046572}
tfile=$(mktemp)
out="$build/bench_large_last.log"
timed() {
  /usr/bin/time -o "$tfile" -f '%e %M' "$@" >"$out" 2>&1 || { echo "failed: $*" >&2; tail -5 "$out" >&2; exit 1; }
  read -r T K < "$tfile"
}
better() { [ -z "$1" ] || awk "BEGIN{exit !($2 < $1)}"; }

psql -q -c "drop schema if exists bench_large cascade" -c "create schema bench_large" \
  -c "create table bench_large.orders as select g::bigint as id, (g % 100)::int as k, (g * 0.01)::numeric(12,2) as amount,
        'customer ' || g as name from generate_series(1, $N) g" \
  -c "create table bench_large.events as select g::bigint as id, (g % 7)::int as cat,
        timestamp '2024-01-01' + g * interval '1 second' as ts from generate_series(1, $N) g" \
  -c "analyze bench_large.orders" -c "analyze bench_large.events" >/dev/null
maria -e "drop database if exists bench_large; create database bench_large; use bench_large;
  create table bench_large.scores (id bigint primary key, region varchar(20), score double);
  insert into bench_large.scores select seq, concat('region ', seq % 10), seq / 7 from seq_1_to_$N;"

proj="$build/bench_fed_large"
rm -rf "$proj"; mkdir -p "$proj/models"
printf "name: bench_large\nversion: '1.0'\nprofile: bench_large\n" > "$proj/dbt_project.yml"
cat > "$proj/profiles.yml" <<EOF
bench_large:
  target: pg
  outputs:
    pg: {type: postgres, host: 127.0.0.1, port: $PGPORT, user: postgres, dbname: dvt, schema: bench_large}
    maria: {type: mysql, host: 127.0.0.1, port: $DVT_TEST_MARIA_PORT, user: root, schema: bench_large}
EOF
cat > "$proj/models/sources.yml" <<EOF
version: 2
sources:
  - {name: shop, connection: pg, schema: bench_large, tables: [{name: orders}, {name: events}]}
  - {name: crm, connection: maria, schema: bench_large, tables: [{name: scores}]}
EOF
cat > "$proj/models/summary.sql" <<'EOF'
{{ config(materialized='table') }}
select o.k, s.region, count(*) as n, sum(o.amount) as total, max(e.ts) as last_ts, max(s.score) as top_score
from {{ source('shop', 'orders') }} o
join {{ source('shop', 'events') }} e on e.id = o.id
join {{ source('crm', 'scores') }} s on s.id = o.id
group by o.k, s.region
EOF

budget() {
  rm -f "$proj/computes.yml" "$proj/buckets.yml"
  [ -z "$1" ] || printf "bench_large:\n  target: df\n  computes:\n    df: {type: datafusion, memory_budget: %s}\n" "$1" > "$proj/computes.yml"
  if [ "${2:-}" = s3 ]; then
    printf "bench_large:\n  target: s3\n  buckets:\n    s3: {type: s3, bucket: dvt-test, region: us-east-1, prefix: bench/, endpoint: 'http://127.0.0.1:%s', access_key_id: bench, secret_access_key: bench}\n" \
      "$DVT_TEST_S3_PORT" > "$proj/buckets.yml"
  fi
}

# The reference: export the rows the model reads, then load its result.
"$dvtr" --project-dir "$proj" --profiles-dir "$proj" run >/dev/null
psql -qc "\\copy bench_large.summary to '$build/bench_large_result.csv' csv"
psql -q -c "drop table if exists bench_large.summary_ref" \
  -c "create table bench_large.summary_ref (like bench_large.summary)" >/dev/null
best_ref=""
for _ in 1 2 3; do
  psql -qc "truncate bench_large.summary_ref"
  timed bash -c "psql -qc \"\\copy (select o.id, o.k, o.amount, e.ts from bench_large.orders o join bench_large.events e on e.id = o.id) to '$build/bench_large_a.csv' csv\" \
    && mariadb --no-defaults -h 127.0.0.1 -P $DVT_TEST_MARIA_PORT -u root -B -N -e 'select id, region, score from bench_large.scores' > '$build/bench_large_b.tsv' \
    && psql -qc \"\\copy bench_large.summary_ref from '$build/bench_large_result.csv' csv\""
  if better "$best_ref" "$T"; then best_ref=$T; fi
done

report() {
  local label=$1 best="" rss=""
  for _ in 1 2 3; do
    timed "$dvtr" --project-dir "$proj" --profiles-dir "$proj" run --full-refresh
    if better "$best" "$T"; then best=$T; rss=$K; fi
  done
  local diff
  diff=$(psql -qtAc "select count(*) from (select * from bench_large.summary except all select * from bench_large.summary_ref) d")
  [ "$diff" = 0 ] || { echo "$label: result differs from the first run's ($diff rows)" >&2; exit 1; }
  printf '%-44s dvtr %6ss  peak RSS %5.0f MiB  reference %6ss  ratio %.2fx\n' "$label" "$best" \
    "$(awk "BEGIN{print $rss/1024}")" "$best_ref" "$(awk "BEGIN{print $best/$best_ref}")"
}
echo "3 x $N rows (PostgreSQL x2 + MariaDB) joined and aggregated into PostgreSQL:"
budget ""; report "default budget (256 MiB)"
budget 64MiB; report "64 MiB budget, spill to file bucket"
budget 64MiB s3; report "64 MiB budget, spill to S3 (local moto)"
psql -qc "drop schema if exists bench_large cascade" >/dev/null
maria -e "drop database if exists bench_large"
rm -f "$build"/bench_large_*
