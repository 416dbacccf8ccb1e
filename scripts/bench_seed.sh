#!/usr/bin/env bash
# dvtr seed of a 1,000,000-row, 6-column CSV into PostgreSQL vs psql \copy of
# the same file into a table of the same types, same run. Needs the test
# PostgreSQL (scripts/services.sh start).
set -euo pipefail
build=$(realpath "${1:?build dir}"); shared=$(realpath "${2:?shared dir}")
. "$build/services/env"
proj="$build/bench_seed_1m"
[ -d "$proj" ] || python3 "$shared/bench/gen_project.py" --out "$proj" --models 0 --big-seed-rows 1000000 --big-seed-typed --adapter postgres >/dev/null
export PGHOST=127.0.0.1 PGPORT=$DVT_TEST_PG_PORT PGUSER=postgres PGDATABASE=dvt SYNTH_SCHEMA=bench_seed
dvtr="$(pwd)/target/release/dvtr"
tfile=$(mktemp)
psql -qc "drop schema if exists bench_seed cascade" -qc "drop schema if exists bench_copy cascade" -qc "create schema bench_copy" >/dev/null 2>&1
best_copy=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  psql -qc "drop table if exists bench_copy.big_seed" -qc "create table bench_copy.big_seed (id bigint, name varchar, event_date date, amount numeric(12,2), category varchar, created_at timestamp)" >/dev/null
  /usr/bin/time -o "$tfile" -f '%e %M' psql -qc "\\copy bench_copy.big_seed from '$proj/seeds/big_seed.csv' csv header" >/dev/null
  read -r s _ < "$tfile"; if [ -z "$best_copy" ] || awk "BEGIN{exit !($s < $best_copy)}"; then best_copy=$s; fi
  (cd "$proj" && /usr/bin/time -o "$tfile" -f '%e %M' "$dvtr" seed --full-refresh >/dev/null)
  read -r s kb < "$tfile"; if [ -z "$best_dvt" ] || awk "BEGIN{exit !($s < $best_dvt)}"; then best_dvt=$s; rss=$kb; fi
done
n=$(psql -qtAc "select count(*) from bench_seed.big_seed")
printf 'seed 1M rows -> PostgreSQL: dvtr %ss (peak %.0f MB, %s rows), psql \\copy %ss, ratio %.2fx\n' "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$n" "$best_copy" "$(awk "BEGIN{print $best_dvt/$best_copy}")"
