#!/usr/bin/env bash
# fuzz/run.sh SECONDS [TARGET...] — the fuzzing campaign: run every cargo-fuzz target (or the ones
# named) in turn for SECONDS each, starting from the committed seeds (fuzz/seeds/<target>/) and
# dictionary (fuzz/dicts/<target>.dict, when there is one) plus
# whatever earlier runs left in fuzz/corpus/<target>/ (git-ignored), and print one line per target:
# executions, exec/s, coverage (edges), features, corpus size, and the crash file if any.
# Logs go to fuzz/logs/<target>.log. Exit status 1 if any target crashed (its input is kept in
# fuzz/artifacts/<target>/; make it a regression test). Not run by CI: tests/run.sh only builds
# the targets. Be kind to a shared machine: `nice -n 19 fuzz/run.sh 600`.
set -euo pipefail

secs=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    # A separate target dir keeps the build of the tool out of the project's.
    CARGO_TARGET_DIR=${TMPDIR:-/tmp}/cargo-fuzz-build cargo install cargo-fuzz
fi
# libFuzzer needs nightly -Z flags; this lets the stable toolchain take them (see fuzz/README.md).
export RUSTC_BOOTSTRAP=1

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p fuzz/logs
crashed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    log="fuzz/logs/$t.log"
    echo "== $t: ${secs}s" >&2
    # -timeout: one input taking > 10 s is a finding (a hang), not just slow.
    # -a: debug assertions (integer overflow checks) on, as in `cargo fuzz build -a`.
    dict=()
    [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
    if cargo fuzz run -a "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- "${dict[@]}" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        crashed+=("$t")
    fi
    execs=$(grep -oP 'stat::number_of_executed_units:\s*\K\d+' "$log" | tail -1 || true)
    rate=$(grep -oP 'stat::average_exec_per_sec:\s*\K\d+' "$log" | tail -1 || true)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(grep -oP 'cov: \K\d+' <<<"$last" || true)
    ft=$(grep -oP 'ft: \K\d+' <<<"$last" || true)
    corp=$(grep -oP 'corp: \K\d+' <<<"$last" || true)
    artifact=$(grep -oP 'Test unit written to \K\S+' "$log" | tail -1 || true)
    summary+=("$(printf '%-16s %-6s execs=%-10s exec/s=%-7s cov=%-6s ft=%-6s corpus=%-6s %s' \
        "$t" "$status" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$artifact")")
done

printf '%s\n' "${summary[@]}"
if [ ${#crashed[@]} -gt 0 ]; then
    echo "crashed: ${crashed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
