#!/usr/bin/env bash
# Memory per idle keep-alive connection (issue 19) — a benchmark, not a test: nothing asserts.
#
#   benches/load/idle.sh            # from the repository root; prints a Markdown table
#
# For each server, started fresh with one worker in front of nginx `return 200`: a warm-up of
# 200 requests, RSS (VmRSS of the serving process; nginx: its worker), then N connections each
# sending one GET and reading its answer, then idle (idle.py); after SETTLE s RSS again, one more
# request on a new connection (must be 2xx: the server still serves), and a count of the idle
# connections still open. Reported: RSS growth per idle connection = (after − before) / N, and RSS
# after all are closed again. Servers: nginx plain proxy, HAProxy (1 thread), the Pingora floor
# (mimalloc and glibc malloc), sigproxy (mode MODE), plus EXTRA_PROXIES / EXTRA_SIGPROXY as in
# run.sh. ROUNDS rounds (fresh process each), medians.
#
# Knobs: N=4000, ROUNDS=1, SETTLE=2 (s), MODE=off (sigproxy's mode; its idle connections carry no
# verification state), FLOOR_ARGS (e.g. "--l4-read-buffer 4096 --l4-write-buffer 1460": the
# floor's listener buffer sizes), SIGPROXY_EXTRA_POLICY (YAML lines for sigproxy, e.g. listener
# settings once it has them), EXTRA_PROXIES="name|cmd {LISTEN} {UPSTREAM};...",
# EXTRA_SIGPROXY="name=/path/to/sigproxy;...", KEEP=1, SIGPROXY, FLOOR, FLOOR_SYSALLOC,
# SIGPROXY_NO_BUILD (see lib.sh), ONLY_SIGPROXY=1 (sigproxy and EXTRA_SIGPROXY only: HAProxy needs
# ~2 N open files, more than the limit here at N=10000). Needs nginx, haproxy, python3; about 10 s
# per server per round.
set -euo pipefail

N=${N:-4000}
ROUNDS=${ROUNDS:-1}
SETTLE=${SETTLE:-2}
MODE=${MODE:-off}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

if ! need nginx || ! need haproxy; then
  apt-get update -qq && apt-get install -y -qq nginx-light haproxy >/dev/null
fi
[ "$(ulimit -n)" -ge $((N + 200)) ] || ulimit -n $((N + 200)) 2>/dev/null \
  || { echo "open-file limit $(ulimit -n) is below N + 200; lower N" >&2; exit 1; }
build
export NGINX_CONNECTIONS=$((N + 1024)) HAPROXY_MAXCONN=$((N + 1024))

UP=$(free_port); PX=$(free_port); SP=$(free_port); ADM=$(free_port)
nginx_upstream "$UP"; wait_port "$UP"
(cd "$T" && "$SIGPROXY" keygen --key-id idle-v1 --client-id idle >"$T/keys.yaml" 2>/dev/null)

CASES=()
declare -A GROWTH BASE AFTER CLOSED CHECK
# measure NAME PID PORT: one round against an already started server.
measure() {
  local name=$1 pid=$2 port=$3
  [[ " ${CASES[*]} " == *" $name "* ]] || CASES+=("$name")
  python3 "$HERE/drive.py" "$port" 200 >/dev/null
  sleep 0.5
  local r0 r1 r2 ready chk
  r0=$(rss_kib "$pid")
  coproc IDLE { python3 "$HERE/idle.py" "$port" "$N"; }
  read -r -t 180 ready <&"${IDLE[0]}" || ready="timeout"
  [[ $ready == ready* ]] || { echo "$name: idle connections: $ready" >&2; exit 1; }
  sleep "$SETTLE"
  r1=$(rss_kib "$pid")
  echo check >&"${IDLE[1]}"
  read -r -t 30 chk <&"${IDLE[0]}" || chk="check timeout"
  echo quit >&"${IDLE[1]}"
  wait "$IDLE_PID" 2>/dev/null || true
  sleep 1
  r2=$(rss_kib "$pid")
  local g
  g=$(awk -v a="$r0" -v b="$r1" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / n}')
  GROWTH[$name]="${GROWTH[$name]:-} $g"; BASE[$name]="${BASE[$name]:-} $r0"
  AFTER[$name]="${AFTER[$name]:-} $r1"; CLOSED[$name]="${CLOSED[$name]:-} $r2"
  CHECK[$name]="${chk#check }"
  echo "$name: RSS $r0 → $r1 KiB with $N idle ($g KiB each), $r2 KiB after closing; $chk" >&2
}
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{v[NR] = $1} END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for round in $(seq "$ROUNDS"); do
  if [ -z "${ONLY_SIGPROXY:-}" ]; then
  nginx_proxy "proxy$round" "$PX"; wait_port "$PX"
  measure "nginx proxy" "$(nginx_worker "proxy$round")" "$PX"
  kill "$(cat "$T/proxy$round/nginx.pid")" 2>/dev/null || true
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PX") 2>/dev/null || break; sleep 0.1; done
  start_haproxy "$PX"; measure "HAProxy (1 thread)" "$HPID" "$PX"; stop_pid "$HPID" "$PX"
  start_proxy_cmd floor "$PX" "$(floor_cmd)"
  measure "Pingora floor, mimalloc${FLOOR_ARGS:+ ($FLOOR_ARGS)}" "$PROXY_PID" "$PX"; stop_pid "$PROXY_PID" "$PX"
  start_proxy_cmd floor-sysalloc "$PX" "$(floor_sysalloc_cmd)"
  measure "Pingora floor, glibc malloc${FLOOR_ARGS:+ ($FLOOR_ARGS)}" "$PROXY_PID" "$PX"; stop_pid "$PROXY_PID" "$PX"
  while IFS=$'\t' read -r name cmd; do
    start_proxy_cmd "$name" "$PX" "$cmd"; measure "$name" "$PROXY_PID" "$PX"; stop_pid "$PROXY_PID" "$PX"
  done < <(extra_proxies)
  fi
  start_sigproxy "$MODE"; measure "sigproxy $MODE" "$SPID" "$SP"; stop_sigproxy
  while IFS=$'\t' read -r name bin; do
    SP_BIN=$bin start_sigproxy "$MODE"; measure "$name $MODE" "$SPID" "$SP"; stop_sigproxy
  done < <(extra_sigproxies)
done

echo "RSS per idle keep-alive connection ($N connections, one request each then idle; $ROUNDS round(s),"
echo "medians), $(date -u '+%Y-%m-%d %H:%M UTC'); sigproxy binary $SIGPROXY_SRC ($(sha256sum "$SIGPROXY" | cut -c1-12),"
echo "checkout $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)); $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v 2>&1 | head -1 | awk '{print "HAProxy", $3}');"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)${SIGPROXY_EXTRA_POLICY:+; sigproxy extra policy: \`$(echo "$SIGPROXY_EXTRA_POLICY" | tr '\n' ' ')\`}:"
echo
echo "| process | RSS before (KiB) | with $N idle (KiB) | growth per idle connection (KiB) | each round | after closing (KiB) | still serving; idle still open |"
echo "|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
  echo "| $c | $(echo "${BASE[$c]}" | median) | $(echo "${AFTER[$c]}" | median) | **$(echo "${GROWTH[$c]}" | median)** | $(echo "${GROWTH[$c]}" | sed 's/^ //; s/ / · /g') | $(echo "${CLOSED[$c]}" | median) | ${CHECK[$c]} |"
done
