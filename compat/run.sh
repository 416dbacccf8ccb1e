#!/usr/bin/env bash
# The compatibility suite (`make compat`): each pinned project of projects.tsv is
# compiled by dbt-core 1.11 (the reference, DuckDB adapter) and by `dvtc compile`,
# and every file under target/compiled/ is compared; then `dvtr compile` (connected to the
# DuckDB file dbt built, so nodes that query the database render too) is compared the same way. Usage:
#   compat/run.sh <build dir> <dvtc binary> [project names...]
# Checkouts come from $COMPAT_SRC (default /work/.mirror); see projects.tsv.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(mkdir -p "${1:?build dir}" && cd "$1" && pwd); dvtc=$(realpath "${2:?dvtc binary}"); shift 2
dvtr="$(dirname "$dvtc")/dvtr"  # built beside dvtc; optional
src=${COMPAT_SRC:-/work/.mirror}
dbt="$build/dbtvenv/bin/dbt"
work="$build/compat"
mkdir -p "$work"
export DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1 DVT_REQUIRE_SOURCE_CONNECTION=false

gitdir() { # owner/name -> git dir
    local d="$src/${1/\//+}"
    if [ -d "$d/repo" ]; then echo "$d/repo"; elif [ -d "$d/.git" ]; then echo "$d/.git"; else echo "$d"; fi
}
extract() { # owner/name commit subdir dest
    local g; g=$(gitdir "$1")
    git --git-dir="$g" cat-file -e "$2^{commit}" 2>/dev/null || { echo "missing checkout of $1@$2 under $src" >&2; return 1; }
    rm -rf "$5.tmp"; mkdir -p "$5.tmp"
    python3 "$here/extract.py" "$g" "$2" "$5.tmp" || return 1
    rm -rf "$4"; mkdir -p "$(dirname "$4")"; if [ "$3" = . ]; then mv "$5.tmp" "$4"; else mv "$5.tmp/$3" "$4"; rm -rf "$5.tmp"; fi
}

# compare_with <binary> <report label> <log name> <diff file>: compiles $p with the binary
# and adds a row comparing its target/compiled/ with dbt's (uses $p, $dbt_rc, $ref_s).
compare_with() {
    rm -rf "$p/target"
    local start rc secs
    start=$(date +%s.%N)
    "$1" --project-dir "$p" --profiles-dir "$p" compile > "$p/$3_compile.log" 2>&1
    rc=$?
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    python3 "$here/compare.py" "$2" "$p/ref" "$p/target/compiled" "$p/$4" "$dbt_rc" "$rc" "$ref_s" "$secs" >> "$report"
    tail -1 "$report"
    [ "$rc" = 0 ] || tail -5 "$p/$3_compile.log"
}

report="$work/report.tsv"
: > "$report"
while IFS=$'\t' read -r name repo commit subdir packages; do
    case "$name" in ''|'#'*) continue;; esac
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
    echo "== $name ($repo@${commit:0:10}/$subdir)"
    # The whole repository is extracted (integration tests use `local: ../`).
    extract "$repo" "$commit" . "$work/$name.repo" "$work/.x" || { printf '%s\tmissing checkout\n' "$name" >> "$report"; continue; }
    p="$work/$name.repo/$subdir"; p=$(cd "$p" && pwd)
    mkdir -p "$p/dbt_packages"
    for spec in $packages; do
        pkg=${spec%%=*}; rest=${spec#*=}; prepo=${rest%@*}; pref=${rest#*@}; psub=.
        case "$pref" in *:*) psub=${pref#*:}; pref=${pref%%:*};; esac
        extract "$prepo" "$pref" "$psub" "$p/dbt_packages/$pkg" "$work/.x" || true
    done
    # `local:` packages are installed as `dbt deps` does: into dbt_packages/, by their project name.
    python3 - "$p" <<'PY'
import os, re, shutil, sys
p = sys.argv[1]
for f in ("packages.yml", "dependencies.yml"):
    path = os.path.join(p, f)
    if not os.path.exists(path):
        continue
    for local in re.findall(r"^\s*-?\s*local:\s*['\"]?([^'\"\n]+?)['\"]?\s*$", open(path).read(), re.M):
        src = os.path.normpath(os.path.join(p, local))
        m = re.search(r"^name:\s*['\"]?([\w-]+)", open(os.path.join(src, "dbt_project.yml")).read(), re.M)
        dest = os.path.join(p, "dbt_packages", m.group(1))
        if not os.path.exists(dest):
            shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("integration_tests", "integration_test_project", "dbt_packages", "target", "logs", ".git"))
PY
    profile=$(python3 - "$p/dbt_project.yml" <<'PY'
import re, sys
m = re.search(r"^profile:\s*['\"]?([\w-]+)", open(sys.argv[1]).read(), re.M)
print(m.group(1) if m else "default")
PY
)
    cat > "$p/profiles.yml" <<YML
$profile:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: "$p/dev.duckdb"
      schema: main
      database: dev
YML
    # The reference: dbt seeds (so introspective macros can run) and compiles.
    (cd "$p" && DBT_PROFILES_DIR="$p" timeout 900 "$dbt" seed --no-partial-parse -q >/dev/null 2>&1 || true)
    (cd "$p" && DBT_PROFILES_DIR="$p" timeout 900 "$dbt" run --no-partial-parse -q >/dev/null 2>&1 || true)
    ref_start=$(date +%s.%N)
    (cd "$p" && DBT_PROFILES_DIR="$p" timeout 1800 "$dbt" compile --no-partial-parse -q > "$p/dbt_compile.log" 2>&1)
    dbt_rc=$?
    ref_s=$(echo "$(date +%s.%N) - $ref_start" | bc)
    rm -rf "$p/ref"; [ -d "$p/target/compiled" ] && mv "$p/target/compiled" "$p/ref"
    [ -f "$p/target/manifest.json" ] && mv "$p/target/manifest.json" "$p/ref_manifest.json"
    compare_with "$dvtc" "$name" dvtc compat_diff.txt
    # `dvtr compile` also renders the nodes that query the database (the DuckDB file dbt built).
    [ -x "$dvtr" ] && compare_with "$dvtr" "$name (dvtr, live)" dvtr compat_diff_live.txt
done < "$here/projects.tsv"
echo
python3 "$here/compare.py" --table "$report"
