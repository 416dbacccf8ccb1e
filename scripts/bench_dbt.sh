#!/usr/bin/env bash
# dvtc <cmd> vs dbt <cmd> (parse or compile), same machine, same run. Prints wall time, peak RSS and ratios.
# usage: bench_dbt.sh <build dir> <shared dir> <parse|compile|incremental> [model counts...]
#   compile:     a whole compile (`--no-partial-parse`, files of target/ present) vs dbt's.
#   incremental: one model file changed since the last compile (DVT reuses the rest) vs
#                dbt compile with its partial parsing after the same change.
set -euo pipefail
trap 'echo "bench_dbt.sh: stopped at line $LINENO (exit $?)" >&2' ERR
build=$(realpath "${1:?build dir}"); shared=$(realpath "${2:?shared dir}"); cmd=${3:-parse}; shift 3 || true
counts=${*:-1000 5000}
mkdir -p "$build"
bash "$(dirname "$0")/dbt_venv.sh" "$build"
dvtc="${DVTC:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/dvtc}"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false
tfile=$(mktemp)
measure() { # prints "seconds max_rss_kb" of a command
  /usr/bin/time -o "$tfile" -f '%e %M' "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  tail -1 "$tfile"
}
printf '%-8s %-8s %10s %10s %10s %10s %8s\n' models command dvt_s dvt_MB dbt_s dbt_MB ratio
for n in $counts; do
  proj="$build/bench_parse_$n"
  [ -d "$proj" ] || python3 "$shared/bench/gen_project.py" --out "$proj" --models "$n" >/dev/null
  # dbt rejects DVT's `connection:` key: give it the same project without it.
  dbtproj="$proj-dbt"
  if [ ! -d "$dbtproj" ]; then
    cp -r "$proj" "$dbtproj"
    grep -rl --include='*.yml' 'connection:' "$dbtproj/models" | xargs sed -i '/^ *connection: /d'
  fi
  args=("$cmd"); dbt_args=("$cmd" --no-partial-parse)
  [ "$cmd" = compile ] && args=(compile --no-partial-parse)
  [ "$cmd" = incremental ] && args=(compile) && dbt_args=(compile)
  # The file each incremental run edits, older than the last compile's 2-s window.
  # A glob, not `ls | head` (whose SIGPIPE stops the script under pipefail).
  models=("$proj"/models/int_001/*.sql); edited="${models[0]}"; edited_dbt="$dbtproj/models/int_001/$(basename "$edited")"
  touch -d '-1 minute' "$edited" "$edited_dbt"
  edit() { printf -- '-- edit %s\n' "$RANDOM" >>"$1"; }
  (cd "$proj" && "$dvtc" compile >/dev/null)          # warm caches (and target/compiled/)
  best=""; best_rss=""
  for _ in 1 2 3; do
    if [ "$cmd" = incremental ]; then edit "$edited"; fi
    read -r s kb < <(cd "$proj" && measure "$dvtc" "${args[@]}")
    if [ -z "$best" ] || awk "BEGIN{exit !($s < $best)}"; then best=$s; best_rss=$kb; fi
  done
  if [ "$cmd" = incremental ]; then
    # dbt's partial parsing needs its state from a first run.
    (cd "$dbtproj" && DBT_PROFILES_DIR="$dbtproj" "$build/dbtvenv/bin/dbt" compile >/dev/null 2>&1)
    edit "$edited_dbt"
  else
    rm -rf "$dbtproj/target/partial_parse.msgpack"
  fi
  read -r ds dkb < <(cd "$dbtproj" && DBT_PROFILES_DIR="$dbtproj" measure "$build/dbtvenv/bin/dbt" "${dbt_args[@]}")
  ratio=$(awk "BEGIN{printf \"%.0fx\", $ds / ($best > 0 ? $best : 0.001)}")
  printf '%-8s %-8s %10s %10.1f %10s %10.1f %8s\n' "$n" "$cmd" "$best" "$(awk "BEGIN{print $best_rss/1024}")" "$ds" "$(awk "BEGIN{print $dkb/1024}")" "$ratio"
done
