#!/usr/bin/env bash
# Does the load generator's idle CPU cost the proxy CPU? A benchmark, not a test.
#
#   benches/load/awake.sh       # from the repository root; prints a Markdown table
#
# run.sh measures the proxy's CPU per request while wrk and the upstream share the other vCPU.
# In `off` that vCPU is busy all the time; with signed requests (a quarter of the rate) it idles
# most of the time, and every request then wakes wrk and the upstream on a halted vCPU — in a VM
# an inter-processor interrupt and an exit to the host, paid in the sender's (the proxy's)
# kernel time. This runs sigproxy off and required (pre-signed GETs, fresh nonces) with the proxy
# pinned to CPU 0 and wrk + nginx on CPU 1, each case twice per round: as is, and with a
# `nice 19` spinner on CPU 1 that keeps it from halting (it yields to wrk and nginx). If the
# proxy's CPU per request drops with the spinner, that part of it was waking an idle vCPU.
#
# Knobs: ROUNDS=3, DURATION=5, CONNS=32, BOOST=1, SIGPROXY_NO_BUILD (see lib.sh). Needs wrk,
# nginx, python3 with `cryptography`; 2 CPUs. About 2 minutes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs" >&2; exit 1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
build
boost
TCK=$(getconf CLK_TCK)

UP=$(free_port); SP=$(free_port); ADM=$(free_port)
need taskset || { echo "needs taskset (util-linux)" >&2; exit 1; }
nginx_upstream "$UP"
wait_port "$UP"
for p in $(pgrep -f "nginx.*$T" || true); do taskset -a -p -c 1 "$p" >/dev/null; done
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
python3 "$HERE/presign.py" "$T/bench-v1.key" bench-v1 "127.0.0.1:$SP" GET '/api/item?x=1' 0 \
  $((DURATION * 20000)) "$(date +%s)" w "$T/get.reqs"

declare -A CPU
spin_pid=""
spin_on() { taskset -c 1 nice -n 19 sh -c 'while :; do :; done' & spin_pid=$!; PIDS+=("$spin_pid"); }
spin_off() { kill "$spin_pid" 2>/dev/null || true; wait "$spin_pid" 2>/dev/null || true; }
one() { # name mode spin(0|1) [reqs]
  local name=$1 mode=$2 spin=$3 reqs=${4:-} script=()
  [ -n "$reqs" ] && script=(-s "$HERE/cycle.lua" -- "$reqs")
  start_sigproxy "$mode"
  taskset -a -p -c 0 "$SPID" >/dev/null
  [ "$spin" = 1 ] && spin_on
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$SP/api/warmup" >/dev/null 2>&1 || true
  local t0 t1 n
  t0=$(cpu_ticks "$SPID")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$SP/api/item?x=1" "${script[@]}" >"$T/wrk.txt" 2>&1 || true
  t1=$(cpu_ticks "$SPID")
  [ "$spin" = 1 ] && spin_off
  stop_sigproxy
  n=$(awk '/requests in/ {print $1}' "$T/wrk.txt")
  local cpu
  cpu=$(awk -v d=$((t1 - t0)) -v n="${n:-0}" -v hz="$TCK" 'BEGIN {if (n > 0) printf "%.1f", d * 1e6 / hz / n; else print "-"}')
  CPU[$name]="${CPU[$name]:-} $cpu"
  echo "[$r] $name: $n requests, $cpu µs/req" >&2
}
for r in $(seq "$ROUNDS"); do
  one "off" off 0
  one "off, CPU 1 kept awake" off 1
  one "signed GET" required 0 "$T/get.reqs"
  one "signed GET, CPU 1 kept awake" required 1 "$T/get.reqs"
done
median() { tr ' ' '\n' | awk 'NF && $1 != "-"' | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else print v[int((NR + 1) / 2)]}'; }
echo
echo "awake.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $ROUNDS rounds, wrk -c$CONNS ${DURATION} s; sigproxy on CPU 0, wrk + nginx on CPU 1"
echo
echo "| case | proxy CPU µs/req (median) | each round |"
echo "|---|---|---|"
for c in "off" "off, CPU 1 kept awake" "signed GET" "signed GET, CPU 1 kept awake"; do
  echo "| $c | **$(echo "${CPU[$c]}" | median)** | $(echo "${CPU[$c]}" | xargs | sed 's/ / · /g') |"
done
