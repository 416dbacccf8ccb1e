#!/usr/bin/env bash
# Seed benchmarks, each against its physical reference in the same run (best of 3):
#  1. a 1,000,000-row, 6-column CSV into PostgreSQL: dvtr seed vs psql \copy into a
#     table of the same types;
#  2. the same file into DuckDB: dvtr seed vs DuckDB's own read_csv (DuckDB's Python
#     package from the dbt venv) into a table of the same types;
#  3. three 1,046,572-row CSVs into PostgreSQL at once: dvtr seed --threads 3 vs three
#     psql \copy in parallel;
#  4. the 1M-row file into MariaDB: dvtr seed (batched prepared inserts) vs the
#     client's LOAD DATA LOCAL INFILE into a table of the same types.
# Needs the test PostgreSQL (scripts/services.sh start) and build/dbtvenv (scripts/dbt_venv.sh).
set -euo pipefail
build=$(realpath "${1:?build dir}"); shared=$(realpath "${2:?shared dir}")
. "$build/services/env"
gen="$shared/bench/gen_project.py"
dvtr="$(pwd)/target/release/dvtr"
py="$build/dbtvenv/bin/python"
export PGHOST=127.0.0.1 PGPORT=$DVT_TEST_PG_PORT PGUSER=postgres PGDATABASE=dvt
tfile=$(mktemp)
types="id bigint, name varchar, event_date date, amount numeric(12,2), category varchar, created_at timestamp"

# timed cmd...: sets T (wall seconds) and K (peak RSS, KB) of one run; the caller keeps the best.
timed() { /usr/bin/time -o "$tfile" -f '%e %M' "$@" >/dev/null; read -r T K < "$tfile"; }
better() { [ -z "$1" ] || awk "BEGIN{exit !($2 < $1)}"; }

## 1. PostgreSQL
proj="$build/bench_seed_1m"
[ -d "$proj" ] || python3 "$gen" --out "$proj" --models 0 --big-seed-rows 1000000 --big-seed-typed --adapter postgres >/dev/null
export SYNTH_SCHEMA=bench_seed
psql -qc "drop schema if exists bench_seed cascade" -qc "drop schema if exists bench_copy cascade" -qc "create schema bench_copy" >/dev/null 2>&1
best_copy=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  psql -qc "drop table if exists bench_copy.big_seed" -qc "create table bench_copy.big_seed ($types)" >/dev/null
  timed psql -qc "\\copy bench_copy.big_seed from '$proj/seeds/big_seed.csv' csv header"
  if better "$best_copy" "$T"; then best_copy=$T; fi
  timed "$dvtr" --project-dir "$proj" --profiles-dir "$proj" seed --full-refresh
  if better "$best_dvt" "$T"; then best_dvt=$T; rss=$K; fi
done
n=$(psql -qtAc "select count(*) from bench_seed.big_seed")
printf 'seed 1M rows -> PostgreSQL: dvtr %ss (peak %.0f MB, %s rows), psql \\copy %ss, ratio %.2fx\n' \
  "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$n" "$best_copy" "$(awk "BEGIN{print $best_dvt/$best_copy}")"

## 2. DuckDB
dproj="$build/bench_seed_1m_duck"
[ -d "$dproj" ] || python3 "$gen" --out "$dproj" --models 0 --big-seed-rows 1000000 --big-seed-typed --adapter duckdb >/dev/null
best_ref=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  rm -f "$build/bench_ref.duckdb" "$dproj"/*.duckdb*
  timed "$py" -c "
import duckdb
c = duckdb.connect('$build/bench_ref.duckdb')
c.execute(\"create table big_seed ($types)\")
c.execute(\"insert into big_seed select * from read_csv('$dproj/seeds/big_seed.csv', header=true, columns={'id':'bigint','name':'varchar','event_date':'date','amount':'decimal(12,2)','category':'varchar','created_at':'timestamp'})\")
"
  if better "$best_ref" "$T"; then best_ref=$T; fi
  timed "$dvtr" --project-dir "$dproj" --profiles-dir "$dproj" seed --full-refresh
  if better "$best_dvt" "$T"; then best_dvt=$T; rss=$K; fi
done
n=$("$py" -c "import duckdb; print(duckdb.connect('$(ls "$dproj"/*.duckdb)', read_only=True).execute('select count(*) from big_seed').fetchone()[0])")
printf 'seed 1M rows -> DuckDB: dvtr %ss (peak %.0f MB, %s rows), DuckDB read_csv %ss, ratio %.2fx\n' \
  "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$n" "$best_ref" "$(awk "BEGIN{print $best_dvt/$best_ref}")"

## 3. Three 1,046,572-row seeds in parallel into PostgreSQL
pproj="$build/bench_seed_3x"
if [ ! -d "$pproj" ]; then
  python3 "$gen" --out "$pproj" --models 0 --big-seed-rows 1046572 --big-seed-typed --adapter postgres >/dev/null
  for i in 2 3; do cp "$pproj/seeds/big_seed.csv" "$pproj/seeds/big_seed_$i.csv"; done
fi
export SYNTH_SCHEMA=bench_seed3
psql -qc "drop schema if exists bench_seed3 cascade" >/dev/null 2>&1
best_copy=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  for i in 1 2 3; do psql -qc "drop table if exists bench_copy.p$i" -qc "create table bench_copy.p$i ($types)" >/dev/null; done
  start=$(date +%s.%N)
  for i in 1 2 3; do psql -qc "\\copy bench_copy.p$i from '$pproj/seeds/big_seed.csv' csv header" >/dev/null & done
  wait
  T=$(awk "BEGIN{print $(date +%s.%N) - $start}")
  if better "$best_copy" "$T"; then best_copy=$T; fi
  timed "$dvtr" --project-dir "$pproj" --profiles-dir "$pproj" seed --full-refresh --threads 3
  if better "$best_dvt" "$T"; then best_dvt=$T; rss=$K; fi
done
n=$(psql -qtAc "select (select count(*) from bench_seed3.big_seed) + (select count(*) from bench_seed3.big_seed_2) + (select count(*) from bench_seed3.big_seed_3)")
printf 'seed 3 x 1,046,572 rows in parallel -> PostgreSQL: dvtr %ss (peak %.0f MB, %s rows), 3 x psql \\copy %.2fs, ratio %.2fx\n' \
  "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$n" "$best_copy" "$(awk "BEGIN{print $best_dvt/$best_copy}")"
## 4. MariaDB
mproj="$build/bench_seed_maria"
mkdir -p "$mproj"
cp -r "$proj/seeds" "$proj/dbt_project.yml" "$mproj/"
printf 'synth:\n  target: dev\n  outputs:\n    dev:\n      type: mysql\n      host: 127.0.0.1\n      port: %s\n      user: root\n      schema: bench_maria\n' \
  "$DVT_TEST_MARIA_PORT" > "$mproj/profiles.yml"
maria=(mariadb --no-defaults --local-infile=1 -h 127.0.0.1 -P "$DVT_TEST_MARIA_PORT" -u root)
best_ref=""; best_dvt=""; rss=""
for _ in 1 2 3; do
  "${maria[@]}" -e "create database if not exists bench_load; drop table if exists bench_load.big;
    create table bench_load.big (id bigint, name varchar(255), event_date date, amount decimal(12,2), category varchar(255),
    created_at datetime(6)) character set utf8mb4"
  timed "${maria[@]}" -e "load data local infile '$mproj/seeds/big_seed.csv' into table bench_load.big fields terminated by ','
    optionally enclosed by '\"' lines terminated by '\n' ignore 1 lines"
  if better "$best_ref" "$T"; then best_ref=$T; fi
  timed "$dvtr" --project-dir "$mproj" --profiles-dir "$mproj" seed --full-refresh
  if better "$best_dvt" "$T"; then best_dvt=$T; rss=$K; fi
done
n=$("${maria[@]}" -N -e "select count(*) from bench_maria.big_seed")
printf 'seed 1M rows -> MariaDB: dvtr %ss (peak %.0f MB, %s rows), LOAD DATA LOCAL INFILE %ss, ratio %.2fx\n' \
  "$best_dvt" "$(awk "BEGIN{print $rss/1024}")" "$n" "$best_ref" "$(awk "BEGIN{print $best_dvt/$best_ref}")"
"${maria[@]}" -e "drop database if exists bench_load; drop database if exists bench_maria"

psql -qc "drop schema if exists bench_seed cascade" -qc "drop schema if exists bench_seed3 cascade" -qc "drop schema if exists bench_copy cascade" >/dev/null 2>&1
