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
# then, open loop at a constant rate (loadgen, benches/load/loadgen.rs, not wrk): b and c both at half
# of c's wrk req/s (the "p99 at half saturation" goal), b at half its own, e at half its own.
# Reported: requests/s, p50/p99 latency (wrk --latency), and the proxy's CPU µs per request:
# utime+stime deltas of the proxy process from /proc/<pid>/stat (nginx: its worker) over the
# measured run, divided by the requests wrk completed. Signed requests are pre-signed by
# presign.py (checked byte for byte against `sigproxy sign --emit-request` first) and cycled
# by cycle.lua, so the client spends no time signing.
#
# Knobs (environment): DURATION=5 (s per case), WARMUP=1 (s, unsigned GETs, not measured),
# HALF_RATE (req/s for the open-loop b/c comparison; default half of c's wrk req/s),
# CONNS=32 (wrk -c, loadgen --connections), KEEP=1 (keep the temp dir: configs, logs, wrk outputs),
# SIGPROXY=target/release/sigproxy and LOADGEN=target/release/examples/loadgen (both built with
# `cargo build --release`; honours CARGO_TARGET_DIR; SIGPROXY_NO_BUILD=1 skips `cargo build`),
# OUT=benches/RESULTS.md. Needs wrk, nginx, python3 with `cryptography`; installs wrk and
# nginx-light with apt-get when missing. Total: ~14 cases x (WARMUP+DURATION) plus pre-signing,
# about 2 minutes with the defaults. Shared functions: lib.sh (also used by soak.sh).
set -euo pipefail

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-32}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/load
OUT=${OUT:-$ROOT/benches/RESULTS.md}
# shellcheck source=benches/load/lib.sh
. "$HERE/lib.sh"

if ! need wrk || ! need nginx; then
  apt-get update -qq && apt-get install -y -qq wrk nginx-light >/dev/null
fi
python3 -c 'import cryptography' 2>/dev/null || { echo "python3 with the cryptography module is needed" >&2; exit 1; }
build

UP=$(free_port); NPX=$(free_port); SP=$(free_port); ADM=$(free_port)

# --- nginx: the trivial upstream and the plain reverse proxy, 1 worker each, loopback only.
nginx_upstream "$UP"
nginx_conf proxy "upstream be { server 127.0.0.1:$UP; keepalive 64; }
  server { listen 127.0.0.1:$NPX; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
wait_port "$UP"; wait_port "$NPX"

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

# --- sigproxy: one instance per mode (start_sigproxy / stop_sigproxy in lib.sh).
ROWS=()
declare -A CPU RPS
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
  RPS[$name]=$rps
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

# --- half saturation, open loop: wrk above is closed-loop (a slow response delays the next request,
# so its p99 hides stalls). loadgen (benches/load/loadgen.rs) sends at a fixed rate and counts each
# latency from the request's scheduled time. nginx proxy and sigproxy off both face half of
# sigproxy off's wrk req/s (the goal's ratio), and each also runs at half of its own.
HROWS=()
declare -A P99 ACH
half() { # case-name, proxy-pid, port, rate, [reqs-file]
  local name=$1 pid=$2 port=$3 rate=$4 lo src=(--path '/api/item?x=1')
  lo="$T/loadgen-${#HROWS[@]}.json"
  if [ $# -ge 5 ]; then src=(--requests "$5"); fi
  local t0 t1 lg cpu
  t0=$(cpu_ticks "$pid")
  "$LOADGEN" --addr "127.0.0.1:$port" --rate "$rate" --connections "$CONNS" --duration "$DURATION" \
    --warmup "$WARMUP" "${src[@]}" >"$lo" 2>"$lo.err" || { cat "$lo.err" >&2; exit 1; }
  t1=$(cpu_ticks "$pid")
  read -r -a lg < <(json_fields "$lo" achieved_rps p50_us p90_us p99_us p999_us max_us non_2xx errors unsent responses_total send_lag_p99_us)
  cpu=$(awk -v d=$((t1 - t0)) -v n="${lg[9]}" -v hz="$TCK" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')
  P99[$name]=${lg[3]}; ACH[$name]=${lg[0]}
  HROWS+=("| $name | $rate | ${lg[0]} | ${lg[1]} | ${lg[2]} | ${lg[3]} | ${lg[4]} | ${lg[5]} | $cpu | ${lg[6]} | $((lg[7] + lg[8])) | ${lg[10]} |")
  echo "$name @ $rate/s: p50 ${lg[1]} p99 ${lg[3]} max ${lg[5]} µs, non-2xx ${lg[6]}, errors+unsent $((lg[7] + lg[8]))" >&2
}
halfrate() { awk -v r="$1" 'BEGIN {printf "%d", r / 2}'; }
COMMON=${HALF_RATE:-$(halfrate "${RPS["c sigproxy off"]}")}
NGX_HALF=$(halfrate "${RPS["b nginx proxy"]}")
REQ_HALF=$(halfrate "${RPS["e sigproxy required, signed GET"]}")
HB="b nginx proxy @ ½ off's saturation"
HC="c sigproxy off @ ½ own saturation"
half "$HB" "$(nginx_worker proxy)" "$NPX" "$COMMON"
start_sigproxy off; half "$HC" "$SPID" "$SP" "$COMMON"; stop_sigproxy
half "b nginx proxy @ ½ own saturation" "$(nginx_worker proxy)" "$NPX" "$NGX_HALF"
# a fresh instance: its replay store has seen none of get.reqs's nonces
start_sigproxy required
half "e sigproxy required, signed GET @ ½ own saturation" "$SPID" "$SP" "$REQ_HALF" "$T/get.reqs"
stop_sigproxy

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
  echo "### Open loop at half saturation (loadgen, constant rate)"
  echo
  echo "\`loadgen --rate R --connections $CONNS\`, ${DURATION} s after ${WARMUP} s at the same rate. Latency (µs) is counted"
  echo "from each request's scheduled send time (coordinated omission corrected); saturation is the wrk"
  echo "req/s above. \"gen lag p99\": scheduled time → write, the generator's own or a busy connection's delay."
  echo
  echo "| case | offered req/s | achieved | p50 | p90 | p99 | p99.9 | max | proxy CPU µs/req | non-2xx | errors+unsent | gen lag p99 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${HROWS[@]}"
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
  kept=$(awk -v a="${ACH[$HC]}" -v r="$COMMON" 'BEGIN { if (a < 0.98 * r) printf "; sigproxy off kept up with only %d of %d req/s: overloaded", a, r }')
  echo "| p99 at half saturation / nginx: sigproxy off / nginx proxy, both at $COMMON req/s (loadgen) | $(ratio "${P99[$HC]}" "${P99[$HB]}") (${P99[$HC]} / ${P99[$HB]} µs$kept) | ≤ 1.5 |"
  echo "| RSS per nonce at 1 M, soak | not measured by this harness (tests/replay_memory.rs, benches/load/soak.sh; see notes) | ≤ 64 B, flat |"
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
