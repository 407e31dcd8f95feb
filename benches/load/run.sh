#!/usr/bin/env bash
# sigproxy load harness — a benchmark, not a test: nothing here asserts timings, and CI never runs it.
#
#   benches/load/run.sh            # from the repository root; writes benches/RESULTS.md
#
# One run, one machine, one worker each, wrk over 127.0.0.1 only:
#   a  direct        wrk -> nginx `return 200` (1 worker, its own config in a temp dir)
#   b  nginx-proxy   wrk -> nginx plain keep-alive reverse proxy -> a
#   c  off           wrk -> sigproxy mode off -> a
#   d  hybrid        wrk -> sigproxy mode hybrid, unsigned GETs -> a
#   e  required      wrk -> sigproxy mode required, every GET signed with a fresh nonce -> a
#   f  POST 1K/64K   signed POSTs with a Content-Digest'd body, through nginx-proxy and sigproxy required
# Reported: requests/s, p50/p99 latency (wrk --latency), and the proxy's CPU µs per request:
# utime+stime deltas of the proxy process from /proc/<pid>/stat (nginx: its worker) over the
# measured run, divided by the requests wrk completed. Signed requests are pre-signed by
# presign.py (checked byte for byte against `sigproxy sign --emit-request` first) and cycled
# by cycle.lua, so the client spends no time signing.
#
# Knobs (environment): DURATION=5 (s per case), WARMUP=1 (s, unsigned GETs, not measured),
# CONNS=32 (wrk -c), KEEP=1 (keep the temp dir: configs, logs, wrk outputs), SIGPROXY=target/release/sigproxy (built with `cargo build --release` when
# missing; honours CARGO_TARGET_DIR; SIGPROXY_NO_BUILD=1 skips `cargo build`), OUT=benches/RESULTS.md. Needs wrk, nginx, python3 with
# `cryptography`; installs wrk and nginx-light with apt-get when missing. Total: ~10 cases x
# (WARMUP+DURATION) plus pre-signing, about 1.5 minutes with the defaults.
set -euo pipefail

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
OUT=${OUT:-$ROOT/benches/RESULTS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SIGPROXY=${SIGPROXY:-$TARGET_DIR/release/sigproxy}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
if [ -z "${SIGPROXY_NO_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin sigproxy)
fi
[ -x "$SIGPROXY" ] || { echo "no sigproxy binary at $SIGPROXY (set SIGPROXY or CARGO_TARGET_DIR)" >&2; exit 1; }

T=$(mktemp -d /tmp/sigproxy-load.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # bounded: 10 s
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; exit 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

UP=$(free_port); NPX=$(free_port); SP=$(free_port); ADM=$(free_port)

# --- nginx: the trivial upstream and the plain reverse proxy, 1 worker each, loopback only.
nginx_conf() { # name, server block
  mkdir -p "$T/$1"
  cat >"$T/$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $T/$1/nginx.pid;
error_log $T/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_max_body_size 10m;
  client_body_buffer_size 128k;  # keep 64 KiB bodies in memory, as sigproxy does
  client_body_temp_path $T/$1/body;
  proxy_temp_path $T/$1/proxy;
  fastcgi_temp_path $T/$1/fcgi;
  uwsgi_temp_path $T/$1/uwsgi;
  scgi_temp_path $T/$1/scgi;
  $2
}
EOF
  nginx -p "$T/$1" -c "$T/$1/nginx.conf" >"$T/$1/out.log" 2>&1 &
  PIDS+=($!)
}
nginx_conf upstream "server { listen 127.0.0.1:$UP; location / { return 200 \"ok\\n\"; } }"
nginx_conf proxy "upstream be { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NPX; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
wait_port "$UP"; wait_port "$NPX"
nginx_worker() { # the worker of the nginx whose master is $1 (the master sits idle)
  pgrep -P "$(cat "$T/$1/nginx.pid")" | head -1
}

# --- keys and pre-signed requests.
(cd "$T" && "$SIGPROXY" keygen --key-id bench-v1 --client-id bench >"$T/keys.yaml" 2>/dev/null)
KEY=$T/bench-v1.key
AUTH=127.0.0.1:$SP
# self-check: presign.py must build exactly what `sigproxy sign` builds (GET and POST).
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" GET '/api/item?x=1' 0 1 1700000000 selfcheck "$T/chk.get"
"$SIGPROXY" sign --key "$KEY" --key-id bench-v1 --created 1700000000 --nonce selfcheck \
  --emit-request "$T/ref.get" "http://$AUTH/api/item?x=1" >/dev/null
cmp -s "$T/chk.get" "$T/ref.get" || { echo "presign.py drifted from sigproxy sign (GET)" >&2; exit 1; }
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" POST /api/upload 1024 1 1700000000 selfcheck "$T/chk.post"
"$SIGPROXY" sign --key "$KEY" --key-id bench-v1 -X POST -H 'Content-Type: application/octet-stream' \
  -d "@$T/chk.post.body" --created 1700000000 --nonce selfcheck --emit-request "$T/ref.post" \
  "http://$AUTH/api/upload" >/dev/null
cat "$T/chk.post" "$T/chk.post.body" | cmp -s - "$T/ref.post" \
  || { echo "presign.py drifted from sigproxy sign (POST)" >&2; exit 1; }

NOW=$(date +%s)
# Enough distinct nonces for a fast proxy: 25k requests/s for the whole run (wraps are reported).
N=$((DURATION * 25000))
echo "pre-signing $((3 * N)) requests..." >&2
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" GET '/api/item?x=1' 0 "$N" "$NOW" g "$T/get.reqs" & g1=$!
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" POST /api/upload 1024 "$N" "$NOW" a "$T/post1k.reqs" & g2=$!
python3 "$HERE/presign.py" "$KEY" bench-v1 "$AUTH" POST /api/upload 65536 "$N" "$NOW" b "$T/post64k.reqs" & g3=$!
wait "$g1" "$g2" "$g3"

# --- sigproxy, one instance per mode, threads: 1, audit lines to /dev/null.
start_sigproxy() { # mode [extra policy YAML]
  cat >"$T/sigproxy-$1.yaml" <<EOF
${2:-}
mode: $1
listen: "127.0.0.1:$SP"
admin_listen: "127.0.0.1:$ADM"
upstream: "127.0.0.1:$UP"
threads: 1
shutdown_grace_seconds: 0
signature:
  max_age_seconds: 3600
$(cat "$T/keys.yaml")
EOF
  "$SIGPROXY" run --config "$T/sigproxy-$1.yaml" >/dev/null 2>"$T/sigproxy-$1.err" &
  SPID=$!
  PIDS+=("$SPID")
  wait_port "$SP"
}
stop_sigproxy() {
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SP") 2>/dev/null || return 0; sleep 0.1; done
}

ROWS=()
declare -A CPU
measure() { # case-name, proxy-pid ("-" for none), port, [reqs-file [body-file]]
  local name=$1 pid=$2 port=$3 script=() wo="$T/wrk-$1.txt"
  if [ $# -ge 4 ]; then script=(-s "$HERE/cycle.lua" -- "$4" ${5:+"$5"}); fi
  wrk -t1 -c"$CONNS" -d"${WARMUP}s" "http://127.0.0.1:$port/api/warmup" >/dev/null 2>&1 || true
  local t0=0 t1=0
  [ "$pid" != - ] && t0=$(cpu_ticks "$pid")
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/api/item?x=1" "${script[@]}" >"$wo" 2>&1
  [ "$pid" != - ] && t1=$(cpu_ticks "$pid")
  local reqs rps p50 p99 non2xx cpu
  reqs=$(awk '/requests in/ {print $1}' "$wo")
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$wo")
  p50=$(awk '$1=="50%" {print $2}' "$wo")
  p99=$(awk '$1=="99%" {print $2}' "$wo")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$wo"); non2xx=${non2xx:-0}
  if [ "$pid" = - ]; then cpu=-; else
    cpu=$(awk -v d=$((t1 - t0)) -v n="$reqs" -v hz="$TCK" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  fi
  CPU[$name]=$cpu
  ROWS+=("| $name | $rps | $p50 | $p99 | $cpu | $reqs | $non2xx |")
  echo "$name: ${rps} req/s p50 $p50 p99 $p99 cpu ${cpu} µs/req non-2xx $non2xx" >&2
}

measure "a direct (nginx return 200)" "$(nginx_worker upstream)" "$UP"
measure "b nginx proxy" "$(nginx_worker proxy)" "$NPX"
measure "f nginx proxy, POST 1 KiB (unsigned headers ignored)" "$(nginx_worker proxy)" "$NPX" "$T/post1k.reqs" "$T/post1k.reqs.body"
measure "f nginx proxy, POST 64 KiB" "$(nginx_worker proxy)" "$NPX" "$T/post64k.reqs" "$T/post64k.reqs.body"
start_sigproxy off;      measure "c sigproxy off" "$SPID" "$SP"; stop_sigproxy
start_sigproxy hybrid;   measure "d sigproxy hybrid, unsigned" "$SPID" "$SP"; stop_sigproxy
start_sigproxy required
measure "e sigproxy required, signed GET" "$SPID" "$SP" "$T/get.reqs"
measure "f sigproxy required, signed POST 1 KiB" "$SPID" "$SP" "$T/post1k.reqs" "$T/post1k.reqs.body"
measure "f sigproxy required, signed POST 64 KiB" "$SPID" "$SP" "$T/post64k.reqs" "$T/post64k.reqs.body"
stop_sigproxy

# --- the same signed GETs with the replay store on a local redis-server (issue 7): one
# SET NX PX round trip per request. A fresh Redis has seen none of the nonces.
REDIS_ROW=""
if command -v redis-server >/dev/null 2>&1; then
  RP=$(free_port)
  redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$T/redis.log" 2>&1 &
  PIDS+=($!)
  wait_port "$RP"
  start_sigproxy required "replay: { store: redis, redis_url: \"redis://127.0.0.1:$RP/0\" }"
  measure "e sigproxy required + Redis replay store, signed GET" "$SPID" "$SP" "$T/get.reqs"
  stop_sigproxy
  REDIS_ROW=1
fi

# --- bare Ed25519 verify_strict in the same run (criterion, benches/verify.rs, ~5 s; the bench
# binary is built on first use). VERIFY_BENCH=0 skips it and leaves that ratio open.
VERIFY_NS=""
if [ "${VERIFY_BENCH:-1}" != 0 ]; then
  touch "$T/verify.stamp"
  (cd "$ROOT" && cargo bench -q --bench verify -- bare_ed25519_verify_strict \
    --warm-up-time 1 --measurement-time 4 >"$T/verify-bench.txt" 2>&1) || true
  f=$TARGET_DIR/criterion/verify/bare_ed25519_verify_strict/new/estimates.json
  if [ -f "$f" ] && [ "$f" -nt "$T/verify.stamp" ]; then
    VERIFY_NS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$f")
  fi
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
OFF=${CPU["c sigproxy off"]}; NGX=${CPU["b nginx proxy"]}; REQ=${CPU["e sigproxy required, signed GET"]}
SIGN_EXTRA=$(awk -v a="$REQ" -v b="$OFF" 'BEGIN {printf "%.1f", a - b}')
{
  echo "# sigproxy load results"
  echo
  echo "Written by \`benches/load/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'). One run, one machine;"
  echo "wrk -t1 -c$CONNS, ${DURATION} s per case after ${WARMUP} s of warm-up; every server 1 worker; 127.0.0.1."
  echo
  echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo),"
  echo "kernel $(uname -r), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "sigproxy $("$SIGPROXY" --version 2>/dev/null | awk '{print $2}') ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)), $(nginx -v 2>&1 | sed 's/.*: //'), $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}')."
  echo
  echo "| case | req/s | p50 | p99 | proxy CPU µs/req | requests | non-2xx |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "CPU µs/req counts the whole proxy process (all threads; for nginx its one worker) in"
  echo "1/$TCK s ticks, divided by the requests wrk completed; for \`a\` it is the upstream nginx itself."
  echo
  echo "## Goals (issue 6), ratios from this run"
  echo
  echo "| goal | value | target |"
  echo "|---|---|---|"
  echo "| passthrough CPU: sigproxy off / nginx proxy | $(ratio "$OFF" "$NGX") ($OFF / $NGX µs) | ≤ 1.0 |"
  if [ -n "$VERIFY_NS" ]; then
    V=$(awk -v n="$VERIFY_NS" 'BEGIN {printf "%.1f", n / 1000}')
    echo "| signed extra CPU: (required − off) / bare verify_strict (criterion median, same run) | $(ratio "$SIGN_EXTRA" "$V") ($SIGN_EXTRA / $V µs) | ≤ 1.15 |"
  else
    echo "| signed extra CPU: required − off | $SIGN_EXTRA µs (bare verify not measured: VERIFY_BENCH=0 or the bench failed) | ≤ 1.15× verify |"
  fi
  if [ -n "$REDIS_ROW" ]; then
    RED=${CPU["e sigproxy required + Redis replay store, signed GET"]}
    echo "| Redis replay store, signed GET: extra CPU µs/req over the memory store (latency: rows e) | $(awk -v a="$RED" -v b="$REQ" 'BEGIN {printf "%.1f", a - b}') µs | (issue 7: measured, no target) |"
  fi
  echo "| p99 at half saturation / nginx | not measured (needs a constant-rate client such as wrk2) | ≤ 1.5 |"
  echo "| RSS per nonce at 1 M, soak | not measured by this harness | ≤ 64 B, flat |"
  echo
  echo "The machine is shared (see the load average): compare ratios within one run, not absolute"
  echo "numbers across runs. CPU µs/req is less sensitive to a busy machine than req/s or latency."
  # hand-written notes below the marker survive a re-run
  if [ -f "$OUT" ] && grep -q '^<!-- notes -->' "$OUT"; then
    echo; sed -n '/^<!-- notes -->/,$p' "$OUT"
  fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT" >&2
