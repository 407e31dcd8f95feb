#!/usr/bin/env bash
# Where a request's CPU time goes, natively (the companion of instructions.sh, which counts
# instructions under valgrind) — a benchmark, not a test: nothing asserts.
#
#   benches/load/perfstat.sh        # from the repository root; prints Markdown tables
#
# 1. `perf stat -p` on the serving process while wrk -c32 drives it for DURATION s, per request:
#    CPU time (task-clock), context switches (and how many were involuntary, from
#    /proc/<pid>/status), CPU migrations, page faults, syscalls, and — where the machine exposes
#    hardware counters — cycles, instructions (IPC), cache references/misses, LLC load misses,
#    dTLB/iTLB load misses, branch misses. Cases: nginx proxy (reference), the Pingora floor,
#    sigproxy off, sigproxy required with pre-signed GETs (fresh nonces).
# 2. `perf record` (cpu-clock sampling, works without hardware counters) on sigproxy off and the
#    signed GET: the samples grouped into where they fall (verify, hashing, replay store, audit and
#    metrics, allocator, memcpy, Pingora, tokio, kernel, ...), as % and as µs per request.
# 3. The micro-benchmarks behind issue 14's hypotheses (BENCHES=1): bare verify_strict hot vs
#    after evicting 256 KiB / 8 MiB of cache; the replay store's fresh-nonce insert at 10k, 250k and
#    1M live nonces; the observe path (metrics + audit line + migration sample) at 1 and 2 threads.
#
# Knobs: DURATION=5, WARMUP=1, CONNS=32, ROUNDS=1 (perf stat rounds; medians), RECORD=1, BENCHES=1,
# FREQ=2999 (perf record Hz), BOOST=1 (see lib.sh), EXTRA_SIGPROXY (as in run.sh), KEEP=1, SIGPROXY, FLOOR,
# SIGPROXY_NO_BUILD (see lib.sh). Needs perf (Debian linux-perf, installed when missing), wrk,
# nginx, python3 with `cryptography`. About 1.5 min, plus ~2.5 min of micro-benchmarks.
set -euo pipefail

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-1}
FREQ=${FREQ:-2999}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

if ! need perf || ! need wrk || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq linux-perf wrk nginx-light >/dev/null
fi
python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
build
boost
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC'); T_START=$(date +%s)

# Hardware counters: a VM often has none ("<not supported>"); then software events only.
HW=0
if perf stat -x, -e cycles,instructions -- true 2>&1 | grep -q '^[0-9]'; then HW=1; fi
SW_EVENTS=task-clock,context-switches,cpu-migrations,page-faults,raw_syscalls:sys_enter
HW_EVENTS=cycles,instructions,cache-references,cache-misses,LLC-load-misses,dTLB-load-misses,iTLB-load-misses,branch-misses
EVENTS=$SW_EVENTS
[ "$HW" = 1 ] && EVENTS=$SW_EVENTS,$HW_EVENTS

UP=$(free_port); NPX=$(free_port); FLP=$(free_port); SP=$(free_port); ADM=$(free_port)
nginx_upstream "$UP"; nginx_proxy proxy "$NPX"; wait_port "$UP"; wait_port "$NPX"
start_proxy_cmd floor "$FLP" "$(floor_cmd)"; FLOOR_PID=$PROXY_PID
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
echo "pre-signing requests..." >&2
python3 "$HERE/presign.py" "$T/bench-v1.key" bench-v1 "127.0.0.1:$SP" GET '/api/item?x=1' 0 \
  $((DURATION * 25000)) "$(date +%s)" p "$T/get.reqs"

# Involuntary context switches of every thread of the process (a thread's own status counts
# only itself; threads that exited are not counted).
invol() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/^nonvoluntary_ctxt_switches/ {s += $2} END {print s + 0}'; }
CASES=()
declare -A VAL  # "case|event" -> " per-request values"
# stat NAME PID PORT [reqs]: one perf-stat'ed wrk run.
stat_case() {
  local name=$1 pid=$2 port=$3 script=() out=$T/stat-$RANDOM
  [[ " ${CASES[*]} " == *" $name "* ]] || CASES+=("$name")
  if [ $# -ge 4 ]; then script=(-s "$HERE/cycle.lua" -- "$4"); fi
  wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/api/warmup" >/dev/null 2>&1 || true
  local i0; i0=$(invol "$pid")
  perf stat -x, -e "$EVENTS" -p "$pid" -o "$out.perf" &
  local pp=$!
  sleep 0.2
  wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/api/item?x=1" "${script[@]}" >"$out.wrk" 2>&1
  kill -INT "$pp"; wait "$pp" 2>/dev/null || true
  local reqs i1; reqs=$(awk '/requests in/ {print $1}' "$out.wrk"); i1=$(invol "$pid")
  VAL["$name|requests"]+=" $reqs"
  VAL["$name|involuntary-cs"]+=" $(awk -v a="$i0" -v b="$i1" -v n="$reqs" 'BEGIN {printf "%.3f", (b - a) / n}')"
  # CSV: value,unit,event,...; task-clock is in ms.
  while IFS=, read -r v _ ev _; do
    [[ $v =~ ^[0-9.]+$ ]] || continue
    VAL["$name|$ev"]+=" $(awk -v v="$v" -v n="$reqs" -v e="$ev" 'BEGIN { if (e == "task-clock") printf "%.2f", v * 1000 / n; else printf "%.4f", v / n }')"
  done <"$out.perf"
  echo "$name: $reqs requests; $(tr '\n' ' ' <"$out.perf" | cut -c1-300)" >&2
}

for round in $(seq "$ROUNDS"); do
  stat_case "nginx proxy" "$(nginx_worker proxy)" "$NPX"
  stat_case "Pingora floor" "$FLOOR_PID" "$FLP"
  start_sigproxy off; stat_case "sigproxy off" "$SPID" "$SP"; stop_sigproxy
  start_sigproxy required; stat_case "sigproxy required, signed GET" "$SPID" "$SP" "$T/get.reqs"; stop_sigproxy
  while IFS=$'\t' read -r name bin; do
    SP_BIN=$bin start_sigproxy off; stat_case "$name off" "$SPID" "$SP"; stop_sigproxy
    SP_BIN=$bin start_sigproxy required; stat_case "$name required, signed GET" "$SPID" "$SP" "$T/get.reqs"; stop_sigproxy
  done < <(extra_sigproxies)
done

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
get() { echo "${VAL["$1|$2"]:-}" | median; }

# --- perf record: where the samples fall.
declare -A PROFILE
record_case() { # name pid port [reqs]
  local name=$1 pid=$2 port=$3 script=() out=$T/rec-$RANDOM
  if [ $# -ge 4 ]; then script=(-s "$HERE/cycle.lua" -- "$4"); fi
  wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/api/warmup" >/dev/null 2>&1 || true
  perf record -e cpu-clock -F "$FREQ" -p "$pid" -o "$out.data" >/dev/null 2>&1 &
  local pp=$!
  sleep 0.2
  wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$port/api/item?x=1" "${script[@]}" >"$out.wrk" 2>&1
  kill -INT "$pp"; wait "$pp" 2>/dev/null || true
  perf report -i "$out.data" --no-children --sort dso,sym --stdio --percent-limit 0 2>/dev/null >"$out.txt" || true
  PROFILE[$name]=$out.txt
}
if [ "${RECORD:-1}" != 0 ]; then
  start_sigproxy off; record_case "sigproxy off" "$SPID" "$SP"; stop_sigproxy
  start_sigproxy required; record_case "sigproxy required, signed GET" "$SPID" "$SP" "$T/get.reqs"; stop_sigproxy
  record_case "Pingora floor" "$FLOOR_PID" "$FLP"
fi

# --- micro-benchmarks for the hypotheses.
BENCH_OUT=""
if [ "${BENCHES:-1}" != 0 ]; then
  (cd "$ROOT" && nice -n "${BUILD_NICE:-10}" cargo bench -q --bench verify --bench replay --bench observe --no-run >"$T/bench-build.txt" 2>&1) || true
  (cd "$ROOT" && cargo bench -q --bench verify -- --warm-up-time 1 --measurement-time 3 >"$T/bench-verify.txt" 2>&1) || true
  (cd "$ROOT" && cargo bench -q --bench replay -- 'fresh_nonce$|fresh_nonce_10k_live|fresh_nonce_250k_live' --warm-up-time 3 --measurement-time 3 >"$T/bench-replay.txt" 2>&1) || true
  (cd "$ROOT" && cargo bench -q --bench observe -- --warm-up-time 1 --measurement-time 3 >"$T/bench-observe.txt" 2>&1) || true
  BENCH_OUT=1
fi
T_END=$(date +%s)

crit() { # criterion's directory for a bench id ("/" in a group name becomes "_") -> median µs
  local f=$TARGET_DIR/criterion/$1/new/estimates.json
  [ -f "$f" ] && python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["median"]["point_estimate"] / 1000))' "$f" || echo "-"
}

echo "## perf stat: per request (benches/load/perfstat.sh, $STARTED, took $((T_END - T_START)) s)"
echo
echo "sigproxy binary $SIGPROXY_SRC (sha256 $(sha256sum "$SIGPROXY" | cut -c1-12), checkout $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null));"
echo "wrk -t1 -c$CONNS, ${DURATION} s per case, $ROUNDS round(s) (medians);"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg); priority boost (BOOST=1): $(boosted); $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)."
if [ "$HW" = 1 ]; then
  echo "Hardware counters: available."
else
  echo "Hardware counters: **not available on this machine** (\`perf stat -e cycles\` says <not supported>: a VM"
  echo "without a virtual PMU), so no cycles, IPC, cache or TLB misses; software events only."
fi
echo
cols=(task-clock context-switches involuntary-cs cpu-migrations page-faults raw_syscalls:sys_enter)
[ "$HW" = 1 ] && cols+=(cycles instructions cache-misses LLC-load-misses dTLB-load-misses iTLB-load-misses branch-misses)
printf '| case | CPU µs/req (task-clock) | context switches/req | of which involuntary | migrations/req | page faults/req | syscalls/req |'
[ "$HW" = 1 ] && printf ' cycles/req | IPC | cache misses/req | LLC load misses/req | dTLB misses/req | iTLB misses/req | branch misses/req |'
echo
printf '|---|---|---|---|---|---|---|'; [ "$HW" = 1 ] && printf -- '---|---|---|---|---|---|---|'; echo
for c in "${CASES[@]}"; do
  printf '| %s |' "$c"
  for e in "${cols[@]}"; do
    [ "$e" = instructions ] && { printf ' %s |' "$(awk -v i="$(get "$c" instructions)" -v y="$(get "$c" cycles)" 'BEGIN {printf "%.2f", i / y}')"; continue; }
    printf ' %s |' "$(get "$c" "$e")"
  done
  echo
done

if [ "${RECORD:-1}" != 0 ]; then
  echo
  echo "## perf record: where the CPU samples fall (cpu-clock, ${FREQ} Hz, ${DURATION} s of wrk -c$CONNS)"
  echo
  echo "Samples grouped by symbol (groups.py; first matching group wins); µs/req = share × the case's"
  echo "task-clock per request above. Functions inlined into a caller count for the caller (release"
  echo "build, thin LTO). instructions.sh prints the same groups in instructions per request."
  echo
  python3 "$HERE/groups.py" perf \
    "sigproxy off" "$(get "sigproxy off" task-clock)" "${PROFILE["sigproxy off"]}" \
    "sigproxy required, signed GET" "$(get "sigproxy required, signed GET" task-clock)" "${PROFILE["sigproxy required, signed GET"]}" \
    "Pingora floor" "$(get "Pingora floor" task-clock)" "${PROFILE["Pingora floor"]}"
fi

if [ -n "$BENCH_OUT" ]; then
  echo
  echo "## Micro-benchmarks for the hypotheses (criterion medians, same run, µs)"
  echo
  echo "| hypothesis | measurement | µs |"
  echo "|---|---|---|"
  echo "| verify tables cold between requests | verify_strict, hot loop | $(crit verify/bare_ed25519_verify_strict) |"
  echo "| | verify_strict after evicting 256 KiB (L1 + part of L2) | $(crit verify_cold/after_evicting_256KiB) |"
  echo "| | verify_strict after evicting 8 MiB (most of the LLC) | $(crit verify_cold/after_evicting_8MiB) |"
  echo "| | sigproxy's whole verify path (parse, base, key, verify), hot | $(crit verify/full_verify_path) |"
  echo "| replay map random access | fresh nonce insert, ~10k live | $(crit memory_fresh_nonce_10k_live) |"
  echo "| | fresh nonce insert, ~250k live | $(crit memory_fresh_nonce_250k_live) |"
  echo "| | fresh nonce insert, ~1M live | $(crit memory_fresh_nonce) |"
  echo "| audit/metrics path | observe path (metrics + audit line + migration sample), signed request, 1 thread | $(crit observe_signed/threads/1) per 1 |"
  echo "| | the same, 2 threads at once (time per 2 requests; ≤ 1 thread's means ≥ 2× the work) | $(crit observe_signed/threads/2) per 2 |"
  echo
  grep -A4 '^observe path' "$T/bench-observe.txt" 2>/dev/null || true
fi
