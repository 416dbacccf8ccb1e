#!/usr/bin/env bash
# `make fuzz`: each libFuzzer target of fuzz/ for FUZZ_SECONDS (default 1200)
# on the nightly toolchain (installed with rustup if missing), with cargo-fuzz
# (installed from crates.io if missing). Seeds come from fuzz/corpus/<target>
# (committed); what the fuzzer finds goes to build/fuzz/. Prints execs per target;
# exits 1 when a target crashed (its input is under build/fuzz/artifacts/).
# Usage: scripts/fuzz.sh [target ...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-1200}
work="$root/build/fuzz"
export CARGO_TARGET_DIR="${DVT_FUZZ_TARGET_DIR:-${DVT_CACHE:-$HOME/.cache/dvt}/fuzz-target}"
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal || exit 1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked || exit 1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(project_files model_jinja federation_split seed_csv plan_reader)
cd "$root" && cargo +nightly fuzz build -O || exit 1
mkdir -p "$work"
report="$work/report.tsv"
# FUZZ_JOBS targets at a time (default 1).
run_one() {
    local t=$1 log="$work/$1.log" rc execs cov status
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    # The binaries built above run directly: editing sources meanwhile changes nothing.
    "$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$t" "$work/corpus/$t" "fuzz/corpus/$t" \
        -max_total_time="$seconds" -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 -rss_limit_mb=4096 > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    status=ok; [ $rc = 0 ] || status="crash (rc $rc, see $log)"
    printf '%s\t%s s\t%s execs\tcov %s\t%s\t%s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" "$status" "$(date -u +%F)" | tee -a "$report"
    [ $rc = 0 ]
}
export -f run_one
export work seconds report
printf '%s\n' "${targets[@]}" | xargs -P "${FUZZ_JOBS:-1}" -I{} bash -c 'run_one {}'
