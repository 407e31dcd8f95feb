#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind: the repeatable companion of run.sh's
# CPU µs/req, which a shared machine moves by ±30% between runs. A benchmark, not a test.
#
#   benches/load/instructions.sh      # from the repository root; prints a table, writes nothing
#
# Each server runs under `valgrind --tool=callgrind` (all threads counted), gets WARM requests,
# has its counters zeroed, then N sequential keep-alive requests from drive.py over one
# connection, and is dumped: Ir/req = the dump's total / N. Cases: nginx plain proxy (one
# process, master_process off), the Pingora floor (benches/load/floor.rs), sigproxy `off`,
# sigproxy `required` with pre-signed GETs (fresh nonces), and EXTRA_SIGPROXY builds (as in
# run.sh), and (REDIS=1, the default, when redis-server is installed) sigproxy `required` with
# `replay.store: redis` on a fresh local redis-server per pass. From the `required` profile: the inclusive Ir of `VerifyingKey::verify_strict` per
# request — the bare Ed25519 verify, measured inside the same run. From every profile: calls into
# the allocator per request (cgcalls.py). Kernel work is not counted by callgrind: syscalls per
# request come from a second, native pass (perf stat, when perf exists).
#
# Knobs: N=2000, WARM=300, REDIS=0 (skip the Redis case), CACHE_SIM=1 (callgrind's cache simulation: simulated L1 and last-level
# misses per request by group; slower), KEEP=1 (keep the temp dir and the callgrind files), SIGPROXY=...,
# SIGPROXY_NO_BUILD=1 (see lib.sh). Needs valgrind (installed with apt-get when missing), nginx,
# python3 with `cryptography`; redis-server for the Redis case. About 3.5 minutes (one CPU).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"
N=${N:-2000}
WARM=${WARM:-300}

if ! need valgrind || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq valgrind nginx-light >/dev/null
fi
python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
build
boost

UP=$(free_port); NPX=$(free_port); SP=$(free_port); ADM=$(free_port)
nginx_upstream "$UP"
wait_port "$UP"
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
python3 "$HERE/presign.py" "$T/bench-v1.key" bench-v1 "127.0.0.1:$SP" GET '/api/item?x=1' 0 \
  $((2 * (WARM + N))) "$(date +%s)" i "$T/get.reqs"

# The plain proxy as one process, so callgrind sees the worker.
mkdir -p "$T/cgproxy"
cat >"$T/cgproxy/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $T/cgproxy/nginx.pid;
error_log $T/cgproxy/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 10000000;
  client_body_temp_path $T/cgproxy/body;
  proxy_temp_path $T/cgproxy/proxy;
  fastcgi_temp_path $T/cgproxy/fcgi;
  uwsgi_temp_path $T/cgproxy/uwsgi;
  scgi_temp_path $T/cgproxy/scgi;
  upstream be { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NPX; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF

# name port reqs-offset-or-"-" command... : prints Ir per request, leaves $T/cg-<name>.1
REDIS_OK=""
if [ "${REDIS:-1}" != 0 ] && need redis-server; then REDIS_OK=1; fi
# A fresh redis-server (it has seen none of the nonces); sets RPID and writes
# $T/sigproxy-redis.yaml for it.
fresh_redis() {
  [ -n "${RPID:-}" ] && stop_pid "$RPID"
  local rp
  rp=$(free_port)
  redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no >>"$T/redis.log" 2>&1 &
  RPID=$!; PIDS+=("$RPID")
  wait_port "$rp"
  sigproxy_config required "replay: { store: redis, redis_url: \"redis://127.0.0.1:$rp/0\" }"
  mv "$T/sigproxy-required.yaml" "$T/sigproxy-redis.yaml"
}
if [ -n "$REDIS_OK" ]; then fresh_redis; fi
sigproxy_config off
sigproxy_config required
declare -A IR ALLOCS
callgrind() {
  local name=$1 port=$2 off=$3; shift 3
  local reqs=() out=$T/cg-$name
  if [ "$off" != - ]; then reqs=("$T/get.reqs"); fi
  valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no ${CACHE_SIM:+--cache-sim=yes} "$@" \
    >"$T/cg-$name.stdout" 2>"$T/cg-$name.stderr" &
  local vp=$!
  PIDS+=("$vp")
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  python3 "$HERE/drive.py" "$port" "$WARM" ${reqs[@]+"${reqs[@]}"} ${reqs[@]+"$off"}
  callgrind_control -z "$vp" >/dev/null
  python3 "$HERE/drive.py" "$port" "$N" ${reqs[@]+"${reqs[@]}"} ${reqs[@]+"$((off + WARM))"}
  callgrind_control -d "$vp" >/dev/null
  kill -INT "$vp" 2>/dev/null || true
  wait "$vp" 2>/dev/null || true
  local total
  total=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  IR[$name]=$((total / N))
  ALLOCS[$name]=$(python3 "$HERE/cgcalls.py" "$out.1" "$N" | awk '{print $1 " / " $2}')
  echo "$name: ${IR[$name]} instructions/request, allocations/frees per request ${ALLOCS[$name]}" >&2
}

callgrind nginx "$NPX" - nginx -p "$T/cgproxy" -c "$T/cgproxy/nginx.conf"
FLP=$(free_port)
callgrind floor "$FLP" - $(floor_cmd | sed "s/{LISTEN}/127.0.0.1:$FLP/; s/{UPSTREAM}/127.0.0.1:$UP/")
callgrind off "$SP" - "$SIGPROXY" run --config "$T/sigproxy-off.yaml"
callgrind required "$SP" 0 "$SIGPROXY" run --config "$T/sigproxy-required.yaml"
if [ -n "$REDIS_OK" ]; then
  callgrind redis "$SP" 0 "$SIGPROXY" run --config "$T/sigproxy-redis.yaml"
fi
EXTRA_ROWS=()
while IFS=$'\t' read -r name bin; do
  callgrind "$name off" "$SP" - "$bin" run --config "$T/sigproxy-off.yaml"
  callgrind "$name required" "$SP" 0 "$bin" run --config "$T/sigproxy-required.yaml"
  EXTRA_ROWS+=("$name")
done < <(extra_sigproxies)
VERIFY=$(callgrind_annotate --inclusive=yes "$T/cg-required.1" 2>/dev/null \
  | awk '/ed25519_dalek::verifying::VerifyingKey::verify_strict \[/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
VERIFY=$((${VERIFY:-0} / N))

# Native pass: syscalls per request (the kernel side callgrind does not see).
declare -A SYS
syscalls() { # name pid port reqs-offset-or-"-"
  local reqs=()
  if [ "$4" != - ]; then reqs=("$T/get.reqs" "$4"); fi
  if ! need perf; then SYS[$1]=-; return; fi
  perf stat -e raw_syscalls:sys_enter -p "$2" -o "$T/perf-$1.txt" &
  local pp=$!
  sleep 0.3
  python3 "$HERE/drive.py" "$3" "$N" ${reqs[@]+"${reqs[@]}"}
  kill -INT "$pp"; wait "$pp" 2>/dev/null || true
  SYS[$1]=$(awk -v n="$N" '/raw_syscalls/ {gsub(",", "", $1); printf "%.1f", $1 / n}' "$T/perf-$1.txt")
}
nginx_proxy proxy "$NPX"
wait_port "$NPX"
python3 "$HERE/drive.py" "$NPX" "$WARM"
syscalls nginx "$(nginx_worker proxy)" "$NPX" -
start_proxy_cmd floor "$FLP" "$(floor_cmd)"
python3 "$HERE/drive.py" "$FLP" "$WARM"
syscalls floor "$PROXY_PID" "$FLP" -
stop_pid "$PROXY_PID" "$FLP"
for mode in off required ${REDIS_OK:+redis}; do
  if [ "$mode" = redis ]; then fresh_redis; fi
  "$SIGPROXY" run --config "$T/sigproxy-$mode.yaml" >/dev/null 2>>"$T/native.err" &
  SPID=$!; PIDS+=("$SPID"); wait_port "$SP"
  if [ "$mode" = off ]; then
    python3 "$HERE/drive.py" "$SP" "$WARM"; syscalls off "$SPID" "$SP" -
  else
    python3 "$HERE/drive.py" "$SP" "$WARM" "$T/get.reqs" $((WARM + N))
    syscalls "$mode" "$SPID" "$SP" $((2 * WARM + N))
  fi
  stop_sigproxy
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
EXTRA=$((IR[required] - IR[off]))
cat <<TABLE
Instructions per request (callgrind, user space, all threads; $N sequential keep-alive requests
after $WARM), sigproxy binary $SIGPROXY_SRC (sha256 $(sha256sum "$SIGPROXY" | cut -c1-12), checkout
$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)), $(nginx -v 2>&1 | sed 's/.*: //'), $(date -u '+%Y-%m-%d %H:%M UTC'):

| case | instructions/request | allocations / frees per request | syscalls/request (native) |
|---|---|---|---|
| nginx proxy | ${IR[nginx]} | ${ALLOCS[nginx]} | ${SYS[nginx]} |
| Pingora floor | ${IR[floor]} | ${ALLOCS[floor]} | ${SYS[floor]} |
| sigproxy off | ${IR[off]} | ${ALLOCS[off]} | ${SYS[off]} |
| sigproxy required, signed GET | ${IR[required]} | ${ALLOCS[required]} | ${SYS[required]} |
| of which \`verify_strict\` | $VERIFY | | |
$(if [ -n "$REDIS_OK" ]; then echo "| sigproxy required + Redis replay store (one local redis-server), signed GET | ${IR[redis]} | ${ALLOCS[redis]} | ${SYS[redis]} |"; fi)
$(for n in "${EXTRA_ROWS[@]}"; do echo "| $n off | ${IR["$n off"]} | ${ALLOCS["$n off"]} | |"; echo "| $n required, signed GET | ${IR["$n required"]} | ${ALLOCS["$n required"]} | |"; done)

| ratio | value | goal (issue 14, in CPU time) |
|---|---|---|
| passthrough: sigproxy off / Pingora floor | $(ratio "${IR[off]}" "${IR[floor]}") | ≤ 1.05 |
| signed GET over the floor: (required − floor) / verify_strict | $(ratio "$((IR[required] - IR[floor]))" "$VERIFY") ($((IR[required] - IR[floor])) / $VERIFY) | ≤ 1.15 |
| signed extra over off: (required − off) / verify_strict | $(ratio "$EXTRA" "$VERIFY") ($EXTRA / $VERIFY) | (issue 6: ≤ 1.15) |
| passthrough: sigproxy off / nginx proxy | $(ratio "${IR[off]}" "${IR[nginx]}") | (issue 6: ≤ 1.0) |
| floor / nginx proxy | $(ratio "${IR[floor]}" "${IR[nginx]}") | |
$(if [ -n "$REDIS_OK" ]; then echo "| Redis replay store over the memory store: instructions/request (syscalls/request) | $((IR[redis] - IR[required])) ($(awk -v a="${SYS[redis]}" -v b="${SYS[required]}" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.1f", a - b }')) | (issue 7: measured, no target) |"; fi)
TABLE

echo
echo "Instructions per request by group of functions (groups.py; self cost; the same groups as"
echo "perfstat.sh's CPU samples):"
echo
EXTRA_GROUPS=()
for n in "${EXTRA_ROWS[@]}"; do EXTRA_GROUPS+=("$n off" "$T/cg-$n off.1" "$n signed GET" "$T/cg-$n required.1"); done
if [ -n "$REDIS_OK" ]; then EXTRA_GROUPS+=("signed GET + Redis" "$T/cg-redis.1"); fi
python3 "$HERE/groups.py" callgrind "$N" floor "$T/cg-floor.1" "sigproxy off" "$T/cg-off.1" \
  "sigproxy required, signed GET" "$T/cg-required.1" ${EXTRA_GROUPS[@]+"${EXTRA_GROUPS[@]}"}
